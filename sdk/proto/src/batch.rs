//! Kafka's record batch format v2 ("magic 2"), byte for byte.
//!
//! A producer builds a batch ([`BatchBuilder`]); the broker validates it
//! ([`validate`]), gives it offsets by rewriting the base offset in place
//! ([`set_base_offset`], outside the CRC), and stores the bytes as they came;
//! consumers receive those same bytes and read them ([`BatchView`]).
//!
//! ```text
//! RecordBatch (integers big-endian)
//! offset size field
//!      0    8 base_offset             offset of the first record; set by the broker
//!      8    4 batch_length            bytes after this field (whole batch - 12)
//!     12    4 partition_leader_epoch  -1 until replication arrives
//!     16    1 magic                   2
//!     17    4 crc                     CRC-32C of bytes 21..end
//!     21    2 attributes              bits 0-2 compression (0 = none), bit 3 timestamp
//!                                     type (1 = LogAppendTime, set by the broker),
//!                                     bit 4 transactional, bit 5 control
//!     23    4 last_offset_delta       record_count - 1
//!     27    8 base_timestamp          ms since the epoch; record timestamps are deltas
//!                                     from it. We (and Java's producer) write the first
//!                                     record's; some encoders write the smallest
//!     35    8 max_timestamp           largest record timestamp
//!     43    8 producer_id             -1 (idempotence reserved)
//!     51    2 producer_epoch          -1
//!     53    4 base_sequence           -1
//!     57    4 record_count
//!     61    . records
//!
//! Record (zig-zag varints, see [`crate::varint`])
//!   length            varint   bytes after this field
//!   attributes        int8     0
//!   timestamp_delta   varlong  timestamp - base_timestamp
//!   offset_delta      varint   0, 1, 2, ... within the batch
//!   key_length        varint   -1 for no key
//!   key               bytes
//!   value_length      varint   -1 for null (a tombstone, not an empty value)
//!   value             bytes
//!   header_count      varint
//!     header_key_length   varint, header_key (UTF-8)
//!     header_value_length varint (-1 = null), header_value
//! ```
//!
//! A batch of 1,000 records of 100 bytes without keys is at most
//! 61 + 1,000 x 110 bytes: 1.10 bytes on the wire per payload byte.

use std::borrow::Cow;

use bytes::Bytes;

use crate::limits::{MAX_BATCH_BYTES, MAX_HEADERS_PER_RECORD, MAX_RECORDS_PER_BATCH};
use crate::varint::{
    VarintError, read_varint, read_varlong, varint_len, varlong_len, write_varint, write_varlong,
};

mod compression;

pub use compression::{Compression, UnknownCompression};
#[cfg(feature = "compression")]
pub use compression::{compress, decompress, recompress};

/// Bytes before the first record.
pub const HEADER_BYTES: usize = 61;
/// The only magic byte this crate reads and writes.
pub const MAGIC: i8 = 2;
/// Bytes before `batch_length`'s coverage starts (`base_offset` + `batch_length`).
pub const LOG_OVERHEAD: usize = 12;

const BATCH_LENGTH_AT: usize = 8;
const LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const LOG_APPEND_TIME_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than the layout needs at this point.
    #[error("batch truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// `batch_length` disagrees with the bytes given.
    #[error("batch_length says {declared} bytes follow, but {actual} do")]
    LengthMismatch {
        /// What `batch_length` says.
        declared: i64,
        /// What is there.
        actual: usize,
    },
    /// The batch is larger than [`MAX_BATCH_BYTES`].
    #[error("batch of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The batch size.
        size: usize,
        /// The limit.
        max: u32,
    },
    /// Not magic 2.
    #[error("unsupported batch magic {0}; only 2 is accepted")]
    BadMagic(i8),
    /// The CRC does not match the bytes.
    #[error("CRC-32C mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch {
        /// The CRC in the header.
        expected: u32,
        /// The CRC of the bytes.
        actual: u32,
    },
    /// A codec number that is not one of Kafka's (5-7), or a compressed
    /// batch where this build reads none (without the `compression` feature).
    #[error("compression codec {0} is not supported")]
    UnsupportedCompression(u8),
    /// The records section does not decompress with the batch's codec.
    #[error("records do not decompress as {}: {reason}", codec_name(*codec))]
    Decompress {
        /// The codec's number.
        codec: u8,
        /// What the decoder said.
        reason: String,
    },
    /// The records would decompress past the limit (a compression bomb, or
    /// a batch far larger than any client builds).
    #[error("records decompress to more than {max} bytes")]
    DecompressedTooLarge {
        /// [`crate::limits::MAX_DECOMPRESSED_BATCH_BYTES`].
        max: u32,
    },
    /// An encoder failed while compressing (not expected: it writes to memory).
    #[error("compressing as {}: {reason}", codec_name(*codec))]
    Compress {
        /// The codec's number.
        codec: u8,
        /// What the encoder said.
        reason: String,
    },
    /// Transactional or control batches, which producers may not send yet.
    #[error("transactional and control batches are not supported (attributes {0:#06x})")]
    UnsupportedAttributes(i16),
    /// `record_count` is zero, negative or above [`MAX_RECORDS_PER_BATCH`].
    #[error("record count {0} is outside 1..={MAX_RECORDS_PER_BATCH}")]
    RecordCount(i32),
    /// A batch with a producer id but no epoch or sequence number.
    #[error(
        "a batch with a producer id needs an epoch and a sequence (got {epoch} and {base_sequence})"
    )]
    ProducerFields {
        /// The epoch field.
        epoch: i16,
        /// The base sequence field.
        base_sequence: i32,
    },
    /// `last_offset_delta` is not `record_count - 1`.
    #[error("last_offset_delta {declared} does not match {records} records")]
    LastOffsetDelta {
        /// The declared delta.
        declared: i32,
        /// The record count.
        records: i32,
    },
    /// A record's offset delta is not its position in the batch.
    #[error("record {index} has offset delta {found}")]
    OffsetDelta {
        /// The record's position.
        index: u32,
        /// Its offset delta.
        found: i32,
    },
    /// `max_timestamp` is not the largest record timestamp.
    #[error("max_timestamp {declared} but the records' largest timestamp is {actual}")]
    MaxTimestamp {
        /// The declared maximum.
        declared: i64,
        /// The records' maximum.
        actual: i64,
    },
    /// A record's fields do not fill exactly its declared length, or a
    /// length field is negative where it may not be.
    #[error("record {index} is malformed: {reason}")]
    MalformedRecord {
        /// The record's position.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A varint ran out of bytes or was too long.
    #[error("record {index}: {source}")]
    Varint {
        /// The record's position.
        index: u32,
        /// The varint error.
        source: VarintError,
    },
    /// Bytes left over after the last record.
    #[error("{0} bytes follow the last record")]
    TrailingBytes(usize),
    /// A single record is too large to fit any batch.
    #[error("record of {size} bytes cannot fit a batch of at most {max} bytes")]
    RecordTooLarge {
        /// The encoded record size.
        size: usize,
        /// The batch limit.
        max: u32,
    },
}

/// A record header: a UTF-8 key and an optional value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// The header's value; `None` is Kafka's null.
    pub value: Option<Bytes>,
}

/// What [`validate`] learned about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// Records in the batch.
    pub record_count: u32,
    /// The header's base timestamp: the first record's in batches
    /// [`BatchBuilder`] writes, the smallest in some other encoders'
    /// (`kafka-protocol`'s, for one).
    pub base_timestamp: i64,
    /// The largest record timestamp.
    pub max_timestamp: i64,
    /// The idempotent producer that wrote it, if any.
    pub producer: Option<ProducerFields>,
    /// How its records are compressed.
    pub compression: Compression,
    /// Bytes of its records once decompressed (as they are when
    /// uncompressed).
    pub records_bytes: usize,
}

/// An idempotent producer's fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    /// The producer id (from Kafka's `InitProducerId`).
    pub producer_id: u64,
    /// Its epoch.
    pub epoch: i16,
    /// The first record's sequence number.
    pub base_sequence: i32,
}

/// Checks a producer's batch completely: length, magic, attributes, CRC,
/// counts, offset deltas, each record's framing and the max timestamp. A
/// compressed batch is decompressed (within
/// [`crate::limits::MAX_DECOMPRESSED_BATCH_BYTES`]) to check its records, as
/// Kafka does; without the `compression` feature it is refused.
///
/// `batch` must hold exactly one batch.
pub fn validate(batch: &[u8]) -> Result<BatchSummary, BatchError> {
    if batch.len() > MAX_BATCH_BYTES as usize {
        return Err(BatchError::TooLarge {
            size: batch.len(),
            max: MAX_BATCH_BYTES,
        });
    }
    let view = BatchView::parse(batch)?;
    let attributes = view.attributes();
    let compression = view.compression()?;
    // Producers send CreateTime; only the broker marks LogAppendTime.
    if attributes & (TRANSACTIONAL_BIT | CONTROL_BIT | LOG_APPEND_TIME_BIT) != 0 {
        return Err(BatchError::UnsupportedAttributes(attributes));
    }
    view.verify_crc()?;
    let count = view.record_count_raw();
    if count < 1 || count as u32 > MAX_RECORDS_PER_BATCH {
        return Err(BatchError::RecordCount(count));
    }
    if view.last_offset_delta() != count - 1 {
        return Err(BatchError::LastOffsetDelta {
            declared: view.last_offset_delta(),
            records: count,
        });
    }
    // The header's checks come first: decompressing costs far more.
    let plain = plain_batch(batch, compression)?;
    let plain_view = BatchView::parse(&plain)?;
    let mut records = plain_view.records();
    let mut max_timestamp = i64::MIN;
    for index in 0..count as u32 {
        let record = records.next().ok_or(BatchError::Truncated {
            need: plain.len() + 1,
            have: plain.len(),
        })??;
        if record.offset_delta != index as i32 {
            return Err(BatchError::OffsetDelta {
                index,
                found: record.offset_delta,
            });
        }
        max_timestamp = max_timestamp.max(record.timestamp);
    }
    if records.pos != plain.len() {
        return Err(BatchError::TrailingBytes(plain.len() - records.pos));
    }
    if max_timestamp != view.max_timestamp() {
        return Err(BatchError::MaxTimestamp {
            declared: view.max_timestamp(),
            actual: max_timestamp,
        });
    }
    // A producer id of -1 is a producer without idempotence; one that
    // has an id must number its batches and carry an epoch.
    let producer = match u64::try_from(view.producer_id()) {
        Ok(producer_id) => {
            let (epoch, base_sequence) = (view.producer_epoch(), view.base_sequence());
            if epoch < 0 || base_sequence < 0 {
                return Err(BatchError::ProducerFields {
                    epoch,
                    base_sequence,
                });
            }
            Some(ProducerFields {
                producer_id,
                epoch,
                base_sequence,
            })
        }
        Err(_) => None,
    };
    Ok(BatchSummary {
        record_count: count as u32,
        base_timestamp: view.base_timestamp(),
        max_timestamp,
        producer,
        compression,
        records_bytes: plain.len() - HEADER_BYTES,
    })
}

/// The batch with its records readable: itself when uncompressed.
fn plain_batch(batch: &[u8], compression: Compression) -> Result<Cow<'_, [u8]>, BatchError> {
    match compression {
        Compression::None => Ok(Cow::Borrowed(batch)),
        #[cfg(feature = "compression")]
        _ => decompress(batch),
        #[cfg(not(feature = "compression"))]
        codec => Err(BatchError::UnsupportedCompression(codec.id())),
    }
}

/// Writes the base offset into a batch's first 8 bytes. The CRC does not
/// cover them, so the batch stays valid.
///
/// # Panics
/// If `batch` is shorter than 8 bytes; callers pass validated batches.
pub fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    batch[..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
}

/// Stamps a batch with an idempotent producer's id, epoch and the first
/// record's sequence number, and recomputes the CRC (the fields lie inside
/// it). The broker stores a retried batch with the same stamp once.
///
/// # Panics
/// If `batch` is shorter than the header; callers pass batches they built.
pub fn set_producer(batch: &mut [u8], producer_id: u64, epoch: i16, base_sequence: i32) {
    batch[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&(producer_id as i64).to_be_bytes());
    batch[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&epoch.to_be_bytes());
    batch[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Marks a validated batch as `LogAppendTime` stamped `now_ms`, as Kafka
/// does for such topics: the timestamp-type bit is set, `max_timestamp`
/// becomes the append time (every record reads as having it), and the CRC is
/// recomputed since both fields lie inside it.
///
/// # Panics
/// If `batch` is shorter than the header; callers pass validated batches.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_AT) | LOG_APPEND_TIME_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// A read-only view of one batch whose header has been checked for length
/// and magic. Reading records checks each record's framing as it goes.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Checks the header's length fields and magic. `bytes` must hold exactly
    /// one batch.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated {
                need: HEADER_BYTES,
                have: bytes.len(),
            });
        }
        let declared = i64::from(be_i32(bytes, BATCH_LENGTH_AT));
        let actual = bytes.len() - LOG_OVERHEAD;
        if declared != actual as i64 {
            return Err(BatchError::LengthMismatch { declared, actual });
        }
        let magic = bytes[MAGIC_AT] as i8;
        if magic != MAGIC {
            return Err(BatchError::BadMagic(magic));
        }
        Ok(Self { bytes })
    }

    /// The batch's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> u64 {
        be_i64(self.bytes, 0) as u64
    }

    /// Offset of the last record. Saturates at `u64::MAX` rather than
    /// overflow when a corrupt or hostile header carries a huge base offset
    /// (which [`validate`] does not check: the broker assigns it).
    pub fn last_offset(&self) -> u64 {
        self.base_offset()
            .saturating_add(u64::from(self.last_offset_delta().max(0) as u32))
    }

    /// The partition leader epoch field.
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, LEADER_EPOCH_AT)
    }

    /// The attributes field.
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, ATTRIBUTES_AT)
    }

    /// How the records are compressed; their bytes read as records only
    /// when this is [`Compression::None`] (see `decompress`).
    pub fn compression(&self) -> Result<Compression, BatchError> {
        compression::codec_of(self.bytes)
    }

    /// The last offset delta field.
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, LAST_OFFSET_DELTA_AT)
    }

    /// The timestamp record deltas are relative to; see
    /// [`BatchSummary::base_timestamp`].
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, BASE_TIMESTAMP_AT)
    }

    /// The largest record timestamp.
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, MAX_TIMESTAMP_AT)
    }

    /// The producer id field (-1 without idempotence).
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, PRODUCER_ID_AT)
    }

    /// The producer epoch field (-1 without idempotence).
    pub fn producer_epoch(&self) -> i16 {
        i16::from_be_bytes([
            self.bytes[PRODUCER_EPOCH_AT],
            self.bytes[PRODUCER_EPOCH_AT + 1],
        ])
    }

    /// The first record's sequence number (-1 without idempotence).
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, BASE_SEQUENCE_AT)
    }

    /// Records in the batch, as declared by the header.
    pub fn record_count(&self) -> u32 {
        self.record_count_raw().max(0) as u32
    }

    fn record_count_raw(&self) -> i32 {
        be_i32(self.bytes, RECORD_COUNT_AT)
    }

    /// Checks the CRC-32C over bytes 21..end against the header.
    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let expected = be_u32(self.bytes, CRC_AT);
        let actual = crc32c::crc32c(&self.bytes[ATTRIBUTES_AT..]);
        if expected == actual {
            Ok(())
        } else {
            Err(BatchError::CrcMismatch { expected, actual })
        }
    }

    /// The records, each checked for framing as it is read.
    pub fn records(&self) -> Records<'a> {
        Records {
            bytes: self.bytes,
            pos: HEADER_BYTES,
            index: 0,
            remaining: self.record_count(),
            base_timestamp: self.base_timestamp(),
            log_append_time: self.is_log_append_time().then(|| self.max_timestamp()),
        }
    }

    /// Whether the broker stamped the batch with its append time, which
    /// then is every record's timestamp.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & LOG_APPEND_TIME_BIT != 0
    }
}

/// A record as it lies in a batch, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Position within the batch (0, 1, 2, ...).
    pub offset_delta: i32,
    /// Absolute timestamp, ms since the epoch.
    pub timestamp: i64,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is Kafka's null value (a tombstone), which is not
    /// the same as an empty one.
    pub value: Option<&'a [u8]>,
    header_count: u32,
    headers: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The record's headers as (key, value) pairs.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + use<'a> {
        let mut pos = 0;
        let bytes = self.headers;
        (0..self.header_count).map_while(move |_| {
            // The record was validated when it was read, so this cannot fail;
            // map_while stops quietly if it ever did.
            let (key, value) = read_header(bytes, &mut pos).ok()?;
            Some((std::str::from_utf8(key).ok()?, value))
        })
    }

    /// How many headers the record has.
    pub fn header_count(&self) -> u32 {
        self.header_count
    }
}

/// Iterator over a batch's records; see [`BatchView::records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    bytes: &'a [u8],
    pos: usize,
    index: u32,
    remaining: u32,
    base_timestamp: i64,
    log_append_time: Option<i64>,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let result = self.read_record();
        if result.is_err() {
            // Stop after the first error: the framing is lost.
            self.remaining = 0;
        }
        self.index += 1;
        Some(result)
    }
}

impl<'a> Records<'a> {
    fn read_record(&mut self) -> Result<RecordView<'a>, BatchError> {
        let index = self.index;
        let varint = |source| BatchError::Varint { index, source };
        let malformed = |reason| BatchError::MalformedRecord { index, reason };

        let length = read_varint(self.bytes, &mut self.pos).map_err(varint)?;
        let length = usize::try_from(length).map_err(|_| malformed("negative length"))?;
        let end = self
            .pos
            .checked_add(length)
            .filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(BatchError::Truncated {
            need: self.pos.saturating_add(length),
            have: self.bytes.len(),
        })?;
        // Parse within the record's own bytes so no field can run past it.
        let record = &self.bytes[..end];
        let mut pos = self.pos;
        if record.get(pos).is_none() {
            return Err(malformed("empty record"));
        }
        pos += 1; // attributes, unused in v2
        let timestamp_delta = read_varlong(record, &mut pos).map_err(varint)?;
        let offset_delta = read_varint(record, &mut pos).map_err(varint)?;
        let key = read_nullable(record, &mut pos).map_err(|e| e.at(index))?;
        let value = read_nullable(record, &mut pos).map_err(|e| e.at(index))?;
        let header_count = read_varint(record, &mut pos).map_err(varint)?;
        let header_count = u32::try_from(header_count)
            .ok()
            .filter(|&n| n <= MAX_HEADERS_PER_RECORD)
            .ok_or(malformed("header count negative or above the limit"))?;
        let headers_start = pos;
        for _ in 0..header_count {
            let (key, _) = read_header(record, &mut pos).map_err(|e| e.at(index))?;
            std::str::from_utf8(key).map_err(|_| malformed("header key is not UTF-8"))?;
        }
        if pos != end {
            return Err(malformed("fields do not fill the record length"));
        }
        self.pos = end;
        Ok(RecordView {
            offset_delta,
            timestamp: self
                .log_append_time
                .unwrap_or(self.base_timestamp.wrapping_add(timestamp_delta)),
            key,
            value,
            header_count,
            headers: &record[headers_start..end],
        })
    }
}

/// A field error inside a record, before the record index is known.
enum FieldError {
    Varint(VarintError),
    Malformed(&'static str),
}

impl FieldError {
    fn at(self, index: u32) -> BatchError {
        match self {
            Self::Varint(source) => BatchError::Varint { index, source },
            Self::Malformed(reason) => BatchError::MalformedRecord { index, reason },
        }
    }
}

fn read_nullable<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, FieldError> {
    let len = read_varint(buf, pos).map_err(FieldError::Varint)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| FieldError::Malformed("length below -1"))?;
    let bytes = pos
        .checked_add(len)
        .and_then(|end| buf.get(*pos..end))
        .ok_or(FieldError::Malformed("field runs past the record"))?;
    *pos += len;
    Ok(Some(bytes))
}

#[allow(clippy::type_complexity)]
fn read_header<'a>(
    buf: &'a [u8],
    pos: &mut usize,
) -> Result<(&'a [u8], Option<&'a [u8]>), FieldError> {
    let key = read_nullable(buf, pos)?.ok_or(FieldError::Malformed("null header key"))?;
    let value = read_nullable(buf, pos)?;
    Ok((key, value))
}

/// Splits concatenated batches (a fetch response's body) into single batches,
/// checking each one's header. Stops at the first error.
pub fn split_batches(mut bytes: &[u8]) -> impl Iterator<Item = Result<BatchView<'_>, BatchError>> {
    std::iter::from_fn(move || {
        if bytes.is_empty() {
            return None;
        }
        if bytes.len() < LOG_OVERHEAD {
            let have = bytes.len();
            bytes = &[];
            return Some(Err(BatchError::Truncated {
                need: LOG_OVERHEAD,
                have,
            }));
        }
        let declared = be_i32(bytes, BATCH_LENGTH_AT);
        let total = usize::try_from(declared)
            .ok()
            .and_then(|len| len.checked_add(LOG_OVERHEAD))
            .filter(|&total| total <= bytes.len());
        let Some(total) = total else {
            let actual = bytes.len() - LOG_OVERHEAD;
            bytes = &[];
            return Some(Err(BatchError::LengthMismatch {
                declared: i64::from(declared),
                actual,
            }));
        };
        let (batch, rest) = bytes.split_at(total);
        bytes = rest;
        let view = BatchView::parse(batch);
        if view.is_err() {
            bytes = &[];
        }
        Some(view)
    })
}

/// A record to add to a batch.
#[derive(Debug, Clone, Copy)]
pub struct NewRecord<'a> {
    /// The key, if any; keyed records are partitioned by it.
    pub key: Option<&'a [u8]>,
    /// The value; `None` writes Kafka's null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// Headers.
    pub headers: &'a [Header],
    /// Timestamp, ms since the epoch.
    pub timestamp: i64,
}

impl NewRecord<'_> {
    /// An upper bound of the bytes this record takes in any batch (the
    /// deltas counted at their widest).
    pub fn max_encoded_len(&self) -> usize {
        let body = self.body_len(i64::MIN, i32::MIN);
        varint_len(i32::MIN) + body
    }

    fn body_len(&self, timestamp_delta: i64, offset_delta: i32) -> usize {
        let mut len = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
        len += nullable_len(self.key);
        len += nullable_len(self.value);
        len += varint_len(self.headers.len() as i32);
        for header in self.headers {
            len += nullable_len(Some(header.key.as_bytes()));
            len += nullable_len(header.value.as_deref());
        }
        len
    }
}

/// Builds one batch record by record, then seals it with [`finish`](Self::finish).
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: u32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl BatchBuilder {
    /// An empty batch with room for `bytes` of records.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(HEADER_BYTES + bytes);
        buf.resize(HEADER_BYTES, 0);
        Self {
            buf,
            count: 0,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
        }
    }

    /// Records so far.
    pub fn record_count(&self) -> u32 {
        self.count
    }

    /// The largest record timestamp so far (`i64::MIN` when empty).
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Whether no record has been added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if it were sealed now.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Size `record` would add to this batch.
    pub fn encoded_len(&self, record: &NewRecord<'_>) -> usize {
        let body = record.body_len(self.timestamp_delta(record), self.count as i32);
        varint_len(body as i32) + body
    }

    /// Appends a record. Fails, leaving the batch unchanged, when the batch
    /// would exceed [`MAX_BATCH_BYTES`] or [`MAX_RECORDS_PER_BATCH`].
    pub fn push(&mut self, record: &NewRecord<'_>) -> Result<(), BatchError> {
        if self.count >= MAX_RECORDS_PER_BATCH {
            return Err(BatchError::RecordCount(self.count as i32 + 1));
        }
        if record.headers.len() > MAX_HEADERS_PER_RECORD as usize {
            return Err(BatchError::MalformedRecord {
                index: self.count,
                reason: "too many headers",
            });
        }
        let timestamp_delta = self.timestamp_delta(record);
        let offset_delta = self.count as i32;
        // Computed once: it walks the key, value and headers.
        let body = record.body_len(timestamp_delta, offset_delta);
        let size = varint_len(body as i32) + body;
        if self.buf.len() + size > MAX_BATCH_BYTES as usize {
            return Err(BatchError::RecordTooLarge {
                size,
                max: MAX_BATCH_BYTES,
            });
        }
        if self.count == 0 {
            self.base_timestamp = record.timestamp;
        }
        let buf = &mut self.buf;
        buf.reserve(size);
        write_varint(buf, body as i32);
        buf.push(0);
        write_varlong(buf, timestamp_delta);
        write_varint(buf, offset_delta);
        write_nullable(buf, record.key);
        write_nullable(buf, record.value);
        write_varint(buf, record.headers.len() as i32);
        for header in record.headers {
            write_nullable(buf, Some(header.key.as_bytes()));
            write_nullable(buf, header.value.as_deref());
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        Ok(())
    }

    /// Writes the header and CRC and returns the batch, with base offset 0.
    ///
    /// # Panics
    /// If no record was added; an empty batch is not a valid batch.
    pub fn finish(mut self) -> Vec<u8> {
        assert!(self.count > 0, "a batch needs at least one record");
        let len = self.buf.len();
        let b = &mut self.buf;
        b[0..8].copy_from_slice(&0i64.to_be_bytes());
        b[BATCH_LENGTH_AT..12].copy_from_slice(&((len - LOG_OVERHEAD) as i32).to_be_bytes());
        b[LEADER_EPOCH_AT..16].copy_from_slice(&(-1i32).to_be_bytes());
        b[MAGIC_AT] = MAGIC as u8;
        b[ATTRIBUTES_AT..23].copy_from_slice(&0i16.to_be_bytes());
        b[LAST_OFFSET_DELTA_AT..27].copy_from_slice(&(self.count as i32 - 1).to_be_bytes());
        b[BASE_TIMESTAMP_AT..35].copy_from_slice(&self.base_timestamp.to_be_bytes());
        b[MAX_TIMESTAMP_AT..43].copy_from_slice(&self.max_timestamp.to_be_bytes());
        b[PRODUCER_ID_AT..51].copy_from_slice(&(-1i64).to_be_bytes());
        b[PRODUCER_EPOCH_AT..53].copy_from_slice(&(-1i16).to_be_bytes());
        b[BASE_SEQUENCE_AT..57].copy_from_slice(&(-1i32).to_be_bytes());
        b[RECORD_COUNT_AT..61].copy_from_slice(&(self.count as i32).to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..21].copy_from_slice(&crc.to_be_bytes());
        self.buf
    }

    fn timestamp_delta(&self, record: &NewRecord<'_>) -> i64 {
        if self.count == 0 {
            0
        } else {
            record.timestamp.wrapping_sub(self.base_timestamp)
        }
    }
}

fn nullable_len(field: Option<&[u8]>) -> usize {
    match field {
        None => varint_len(-1),
        Some(bytes) => varint_len(bytes.len() as i32) + bytes.len(),
    }
}

fn write_nullable(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => write_varint(out, -1),
        Some(bytes) => {
            write_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}

fn codec_name(id: u8) -> &'static str {
    Compression::ALL
        .get(usize::from(id))
        .map_or("an unknown codec", |codec| codec.name())
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(x)
}

#[cfg(test)]
mod tests;
