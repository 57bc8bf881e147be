//! Compressed batches: the codec in a batch's attributes, and (feature
//! `compression`) turning a compressed batch into a plain one and back.
//!
//! Kafka compresses a batch's records section as one stream; the 61-byte
//! header stays as it is, with the codec in attribute bits 0-2:
//!
//! ```text
//! header (61 bytes, attributes & 7 = codec) | codec(record 0 | record 1 | ...)
//! ```
//!
//! The stream formats are Kafka's own: gzip (RFC 1952, possibly several
//! members), snappy in the xerial framing the Java client writes (raw snappy,
//! which other clients may send, is read too), the LZ4 frame format, and
//! zstd frames.
//!
//! Decompression is bounded by [`MAX_DECOMPRESSED_BATCH_BYTES`]: a batch
//! whose records would decompress past it is refused with
//! [`BatchError::DecompressedTooLarge`] as soon as they do (the buffer
//! grows by doubling, so it holds at most about twice the limit; zstd
//! windows are capped at the limit too).
//!
//! [`MAX_DECOMPRESSED_BATCH_BYTES`]: crate::limits::MAX_DECOMPRESSED_BATCH_BYTES

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ATTRIBUTES_AT, BatchError, COMPRESSION_MASK};

/// A batch's compression codec, as Kafka numbers them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Compression {
    /// Records as they are (codec 0).
    #[default]
    None,
    /// gzip (codec 1).
    Gzip,
    /// snappy (codec 2).
    Snappy,
    /// LZ4 frames (codec 3).
    Lz4,
    /// zstd (codec 4).
    Zstd,
}

impl Compression {
    /// Every codec, in Kafka's numbering.
    pub const ALL: [Self; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    /// The codec in a batch's attributes field; 5-7 are not codecs.
    pub fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        let id = (attributes & COMPRESSION_MASK) as u8;
        Self::ALL
            .get(usize::from(id))
            .copied()
            .ok_or(BatchError::UnsupportedCompression(id))
    }

    /// Kafka's number for the codec (attribute bits 0-2).
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The codec's name in Kafka's settings (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression {0:?}; expected none, gzip, snappy, lz4 or zstd")]
pub struct UnknownCompression(pub String);

impl FromStr for Compression {
    type Err = UnknownCompression;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Kafka's topic setting says "uncompressed" where producers say "none".
        match s {
            "none" | "uncompressed" => Ok(Self::None),
            other => Self::ALL
                .into_iter()
                .find(|codec| codec.name() == other)
                .ok_or_else(|| UnknownCompression(s.to_owned())),
        }
    }
}

/// Reads a batch's codec from its header (whose length and magic
/// [`super::BatchView::parse`] has checked).
pub(super) fn codec_of(batch: &[u8]) -> Result<Compression, BatchError> {
    Compression::from_attributes(super::be_i16(batch, ATTRIBUTES_AT))
}

#[cfg(feature = "compression")]
pub use codecs::{compress, decompress, recompress};

#[cfg(feature = "compression")]
mod codecs {
    use std::borrow::Cow;
    use std::io::{Read, Write};

    use super::{Compression, codec_of};
    use crate::batch::{
        ATTRIBUTES_AT, BATCH_LENGTH_AT, BatchError, BatchView, COMPRESSION_MASK, CRC_AT,
        HEADER_BYTES, LOG_OVERHEAD, be_i16,
    };
    use crate::limits::{MAX_BATCH_BYTES, MAX_DECOMPRESSED_BATCH_BYTES};

    /// The xerial framing's 16-byte header: magic, version 1, compatible
    /// version 1. Blocks of `[u32 length][raw snappy]` follow.
    pub(super) const XERIAL_HEADER: [u8; 16] = *b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
    /// Uncompressed bytes per xerial block, as the Java client writes them.
    const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
    /// zstd's default level, which Kafka's clients use too.
    const ZSTD_LEVEL: i32 = 3;
    /// The largest zstd window accepted: 2^25 bytes, the decompression limit.
    const ZSTD_WINDOW_LOG_MAX: u32 = 25;

    /// The batch with its records decompressed: the header kept (producer
    /// fields, timestamps, base offset), the codec bits cleared, the length
    /// and CRC recomputed. An uncompressed batch is returned as it is.
    ///
    /// The CRC of a compressed batch is not checked here; callers that
    /// received it from a peer call [`BatchView::verify_crc`] first.
    pub fn decompress(batch: &[u8]) -> Result<Cow<'_, [u8]>, BatchError> {
        let view = BatchView::parse(batch)?;
        let codec = codec_of(view.as_bytes())?;
        if codec == Compression::None {
            return Ok(Cow::Borrowed(batch));
        }
        let records = &batch[HEADER_BYTES..];
        // Records are decompressed straight after a copy of the header.
        let mut out = batch[..HEADER_BYTES].to_vec();
        match codec {
            Compression::None => {}
            Compression::Gzip => {
                read_bounded(flate2::read::MultiGzDecoder::new(records), codec, &mut out)?;
            }
            Compression::Snappy => snappy_decompress(records, &mut out)?,
            Compression::Lz4 => {
                read_bounded(lz4_flex::frame::FrameDecoder::new(records), codec, &mut out)?;
            }
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::new(records)
                    .map_err(|e| corrupt(codec, &e.to_string()))?;
                // A frame may ask for a window of up to 2^27 bytes, which
                // the decoder would allocate; no batch needs more than the
                // limit.
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(|e| corrupt(codec, &e.to_string()))?;
                read_bounded(decoder, codec, &mut out)?;
            }
        }
        let attributes = be_i16(&out, ATTRIBUTES_AT) & !COMPRESSION_MASK;
        out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        reseal(&mut out);
        Ok(Cow::Owned(out))
    }

    /// The uncompressed `batch` with its records compressed by `codec`
    /// (header kept, length and CRC recomputed). Fails only when the
    /// compressed batch would exceed [`MAX_BATCH_BYTES`] (records that do
    /// not compress).
    pub fn compress(batch: &[u8], codec: Compression) -> Result<Vec<u8>, BatchError> {
        let view = BatchView::parse(batch)?;
        let current = codec_of(view.as_bytes())?;
        if current != Compression::None {
            return Err(BatchError::UnsupportedCompression(current.id()));
        }
        let records = &batch[HEADER_BYTES..];
        let mut out = batch[..HEADER_BYTES].to_vec();
        match codec {
            Compression::None => out.extend_from_slice(records),
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(out, flate2::Compression::default());
                encoder.write_all(records).map_err(|e| failed(codec, &e))?;
                out = encoder.finish().map_err(|e| failed(codec, &e))?;
            }
            Compression::Snappy => snappy_compress(records, &mut out),
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
                encoder.write_all(records).map_err(|e| failed(codec, &e))?;
                out = encoder.finish().map_err(|e| failed(codec, &e))?;
            }
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
                    .map_err(|e| failed(codec, &e))?;
                encoder.write_all(records).map_err(|e| failed(codec, &e))?;
                out = encoder.finish().map_err(|e| failed(codec, &e))?;
            }
        }
        if out.len() > MAX_BATCH_BYTES as usize {
            return Err(BatchError::TooLarge {
                size: out.len(),
                max: MAX_BATCH_BYTES,
            });
        }
        let attributes = (be_i16(&out, ATTRIBUTES_AT) & !COMPRESSION_MASK) | i16::from(codec.id());
        out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        reseal(&mut out);
        Ok(out)
    }

    /// The batch with its records compressed by `codec`, whatever they are
    /// compressed with now; itself when that is already `codec`.
    pub fn recompress(batch: &[u8], codec: Compression) -> Result<Cow<'_, [u8]>, BatchError> {
        if codec_of(BatchView::parse(batch)?.as_bytes())? == codec {
            return Ok(Cow::Borrowed(batch));
        }
        let plain = decompress(batch)?;
        compress(&plain, codec).map(Cow::Owned)
    }

    /// Writes `batch_length` and the CRC for the bytes now in `batch`.
    fn reseal(batch: &mut [u8]) {
        let length = (batch.len() - LOG_OVERHEAD) as i32;
        batch[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&length.to_be_bytes());
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
        batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    }

    /// Appends a decoder's output to `out` (which holds the header), refusing
    /// to go past the limit.
    fn read_bounded(
        decoder: impl Read,
        codec: Compression,
        out: &mut Vec<u8>,
    ) -> Result<(), BatchError> {
        let limit = u64::from(MAX_DECOMPRESSED_BATCH_BYTES);
        let read = decoder
            .take(limit + 1)
            .read_to_end(out)
            .map_err(|e| corrupt(codec, &e.to_string()))?;
        if read as u64 > limit {
            return Err(too_large());
        }
        Ok(())
    }

    /// Snappy in the xerial framing or, without its header, one raw block,
    /// appended to `out` (which holds the header).
    fn snappy_decompress(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
        let Some(mut blocks) = bytes.strip_prefix(&XERIAL_HEADER[..8]) else {
            return snappy_block(bytes, out);
        };
        // The two version fields; Kafka writes 1 and 1 and readers ignore them.
        blocks = blocks
            .get(8..)
            .ok_or_else(|| corrupt(Compression::Snappy, "xerial header cut short"))?;
        while !blocks.is_empty() {
            let (len, rest) = blocks
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt(Compression::Snappy, "xerial block length cut short"))?;
            let len = u32::from_be_bytes(*len) as usize;
            let block = rest
                .get(..len)
                .ok_or_else(|| corrupt(Compression::Snappy, "xerial block runs past the batch"))?;
            snappy_block(block, out)?;
            blocks = &rest[len..];
        }
        Ok(())
    }

    /// Appends one raw snappy block's contents, checking its declared size
    /// against what is left of the limit before allocating.
    fn snappy_block(block: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
        let corrupt_block = |e: snap::Error| corrupt(Compression::Snappy, &e.to_string());
        let len = snap::raw::decompress_len(block).map_err(corrupt_block)?;
        if out.len() - HEADER_BYTES + len > MAX_DECOMPRESSED_BATCH_BYTES as usize {
            return Err(too_large());
        }
        let start = out.len();
        out.resize(start + len, 0);
        let written = snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(corrupt_block)?;
        out.truncate(start + written);
        Ok(())
    }

    fn snappy_compress(records: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&XERIAL_HEADER);
        let mut encoder = snap::raw::Encoder::new();
        for chunk in records.chunks(XERIAL_BLOCK_BYTES) {
            let block = encoder
                .compress_vec(chunk)
                .expect("a 32 KiB block is far below snappy's input limit");
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
    }

    fn corrupt(codec: Compression, reason: &str) -> BatchError {
        BatchError::Decompress {
            codec: codec.id(),
            reason: reason.to_owned(),
        }
    }

    fn too_large() -> BatchError {
        BatchError::DecompressedTooLarge {
            max: MAX_DECOMPRESSED_BATCH_BYTES,
        }
    }

    /// Writing into a `Vec` cannot fail; an encoder that does anyway is
    /// reported rather than unwrapped.
    fn failed(codec: Compression, e: &dyn std::error::Error) -> BatchError {
        BatchError::Compress {
            codec: codec.id(),
            reason: e.to_string(),
        }
    }
}

#[cfg(all(test, feature = "compression"))]
mod tests;
