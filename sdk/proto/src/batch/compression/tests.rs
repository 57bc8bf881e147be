use std::io::Write;

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::batch::{BatchBuilder, BatchView, HEADER_BYTES, NewRecord, validate};
use crate::limits::MAX_DECOMPRESSED_BATCH_BYTES;

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A batch of `n` keyed click events, the kind that compresses well.
fn clicks(n: u32) -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    for i in 0..n {
        let key = format!("user-{}", i % 17);
        let value = format!(r#"{{"page":"/p/{}","kind":"click","n":{i}}}"#, i % 5);
        builder
            .push(&NewRecord {
                key: Some(key.as_bytes()),
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp: 1_700_000_000_000 + i64::from(i),
            })
            .expect("fits");
    }
    builder.finish()
}

/// `batch`'s header with `records` as its (compressed) records section.
fn with_records(batch: &[u8], codec: u8, records: &[u8]) -> Vec<u8> {
    let mut out = batch[..HEADER_BYTES].to_vec();
    out.extend_from_slice(records);
    let attributes = i16::from(codec);
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&length.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

#[test]
fn every_codec_round_trips_and_validates() {
    let plain = clicks(1_000);
    for codec in CODECS {
        let compressed = compress(&plain, codec).unwrap();
        assert!(
            compressed.len() < plain.len() / 3,
            "{codec}: {} bytes",
            compressed.len()
        );
        let summary = validate(&compressed).unwrap();
        assert_eq!(summary.compression, codec);
        assert_eq!(summary.record_count, 1_000);
        let view = BatchView::parse(&compressed).unwrap();
        assert_eq!(view.compression(), Ok(codec));
        // Decompressing gives back the very bytes that were compressed.
        assert_eq!(&*decompress(&compressed).unwrap(), &plain[..], "{codec}");
    }
}

#[test]
fn recompressing_changes_the_codec_and_keeps_the_records() {
    let plain = clicks(200);
    let gzip = compress(&plain, Compression::Gzip).unwrap();
    let zstd = recompress(&gzip, Compression::Zstd).unwrap();
    assert_eq!(validate(&zstd).unwrap().compression, Compression::Zstd);
    assert_eq!(&*decompress(&zstd).unwrap(), &plain[..]);
    assert!(matches!(
        recompress(&zstd, Compression::Zstd),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
    assert_eq!(&*recompress(&gzip, Compression::None).unwrap(), &plain[..]);
}

#[test]
fn an_uncompressed_batch_is_borrowed_not_copied() {
    let plain = clicks(3);
    assert!(matches!(
        decompress(&plain),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
    assert_eq!(compress(&plain, Compression::None).unwrap(), plain);
}

#[test]
fn a_compressed_batch_is_not_compressed_twice() {
    let zstd = compress(&clicks(3), Compression::Zstd).unwrap();
    assert_eq!(
        compress(&zstd, Compression::Gzip),
        Err(BatchError::UnsupportedCompression(4))
    );
}

#[test]
fn raw_snappy_without_the_xerial_framing_is_read_too() {
    let plain = clicks(50);
    let raw = snap::raw::Encoder::new()
        .compress_vec(&plain[HEADER_BYTES..])
        .unwrap();
    let batch = with_records(&plain, 2, &raw);
    assert_eq!(validate(&batch).unwrap().record_count, 50);
    assert_eq!(&*decompress(&batch).unwrap(), &plain[..]);
}

#[test]
fn bombs_are_refused_for_every_codec() {
    // 33 MiB of zeros compresses to a few KiB with every codec.
    let zeros = vec![0u8; MAX_DECOMPRESSED_BATCH_BYTES as usize + 1024 * 1024];
    let plain = clicks(1);
    let streams: [(u8, Vec<u8>); 4] = [
        (1, {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&zeros).unwrap();
            e.finish().unwrap()
        }),
        (2, {
            // Snappy's raw blocks declare their length: refused before allocating.
            let mut stream = codecs::XERIAL_HEADER.to_vec();
            for chunk in zeros.chunks(1 << 20) {
                let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
                stream.extend_from_slice(&(block.len() as u32).to_be_bytes());
                stream.extend_from_slice(&block);
            }
            stream
        }),
        (3, {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(&zeros).unwrap();
            e.finish().unwrap()
        }),
        (4, zstd::bulk::compress(&zeros, 19).unwrap()),
    ];
    for (codec, stream) in streams {
        assert!(
            stream.len() < 4 * 1024 * 1024,
            "codec {codec}: {}",
            stream.len()
        );
        let bomb = with_records(&plain, codec, &stream);
        assert_eq!(
            validate(&bomb),
            Err(BatchError::DecompressedTooLarge {
                max: MAX_DECOMPRESSED_BATCH_BYTES
            }),
            "codec {codec}"
        );
    }
}

#[test]
fn a_raw_snappy_block_declaring_a_huge_length_is_refused_before_allocating() {
    // A varint length of 2^31 and no data.
    let batch = with_records(&clicks(1), 2, &[0x80, 0x80, 0x80, 0x80, 0x08]);
    assert!(matches!(
        validate(&batch),
        Err(BatchError::DecompressedTooLarge { .. } | BatchError::Decompress { .. })
    ));
}

#[test]
fn records_that_are_not_the_codec_s_stream_are_typed_errors() {
    let plain = clicks(3);
    for codec in CODECS {
        let batch = with_records(&plain, codec.id(), &plain[HEADER_BYTES..]);
        match validate(&batch) {
            Err(BatchError::Decompress { codec: id, .. }) => assert_eq!(id, codec.id()),
            other => panic!("{codec}: {other:?}"),
        }
    }
}

#[test]
fn compressed_records_must_still_be_well_formed() {
    // A valid stream of one record too few for the header's count.
    let plain = clicks(3);
    let two = clicks(2);
    let stream = zstd::bulk::compress(&two[HEADER_BYTES..], 3).unwrap();
    let batch = with_records(&plain, 4, &stream);
    assert!(matches!(
        validate(&batch),
        Err(BatchError::Varint { index: 2, .. })
    ));
}

#[test]
fn names_parse_as_kafka_spells_them() {
    for codec in Compression::ALL {
        assert_eq!(codec.name().parse(), Ok(codec));
        assert_eq!(
            Compression::from_attributes(i16::from(codec.id())),
            Ok(codec)
        );
    }
    assert_eq!("uncompressed".parse(), Ok(Compression::None));
    assert!("brotli".parse::<Compression>().is_err());
    assert_eq!(
        Compression::from_attributes(7),
        Err(BatchError::UnsupportedCompression(7))
    );
}

proptest! {
    #[test]
    fn arbitrary_compressed_bytes_never_panic(codec in 1u8..=4, stream in vec(any::<u8>(), 0..2048)) {
        let batch = with_records(&clicks(1), codec, &stream);
        let _ = validate(&batch);
        let _ = decompress(&batch);
    }

    #[test]
    fn mutated_streams_never_panic(codec in 0usize..4, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let codec = CODECS[codec];
        let mut batch = compress(&clicks(20), codec).unwrap();
        let i = HEADER_BYTES + at.index(batch.len() - HEADER_BYTES);
        batch[i] ^= 1 << bit;
        let _ = decompress(&batch);
    }
}
