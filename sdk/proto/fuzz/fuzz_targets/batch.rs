//! Fuzzes record batch reading: `validate`, `BatchView` and its records and
//! headers, and `split_batches` over concatenated batches.
//!
//! The first input byte chooses a mode; the rest is the batch. In "reseal"
//! mode (low bit set) the target writes a matching `batch_length`, magic 2,
//! no compression and a correct CRC before anything reads the bytes, so the
//! fuzzer spends its time in record parsing instead of guessing CRCs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_proto::batch::{self, BatchView, HEADER_BYTES, LOG_OVERHEAD, MAGIC};
use quiver_proto::limits::MAX_HEADERS_PER_RECORD;

const BATCH_LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 && bytes.len() >= HEADER_BYTES {
        let mut bytes = bytes.to_vec();
        reseal(&mut bytes);
        check_one(&bytes);
        check_split(&bytes);
    } else {
        check_one(bytes);
        check_split(bytes);
    }
});

/// Fixes the header fields that stand between arbitrary bytes and the
/// record parser. The attribute bits above compression are left to the
/// fuzzer.
fn reseal(bytes: &mut [u8]) {
    let len = i32::try_from(bytes.len() - LOG_OVERHEAD).unwrap_or(i32::MAX);
    bytes[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&len.to_be_bytes());
    bytes[MAGIC_AT] = MAGIC as u8;
    bytes[ATTRIBUTES_AT + 1] &= !0x07;
    let crc = crc32c::crc32c(&bytes[ATTRIBUTES_AT..]);
    bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// `bytes` as exactly one batch.
fn check_one(bytes: &[u8]) {
    let validated = batch::validate(bytes);
    let Ok(view) = BatchView::parse(bytes) else {
        assert!(validated.is_err(), "validate accepted what parse refused");
        return;
    };
    let clean = read_everything(&view);
    let Ok(summary) = validated else {
        return;
    };
    // What validate promises about a batch it accepts.
    assert_eq!(summary.record_count as usize, clean);
    assert_eq!(summary.record_count, view.record_count());
    assert_eq!(summary.base_timestamp, view.base_timestamp());
    assert_eq!(summary.max_timestamp, view.max_timestamp());
    assert!(view.verify_crc().is_ok());
    let max = view
        .records()
        .map(|r| r.expect("validated").timestamp)
        .max();
    assert_eq!(max, Some(summary.max_timestamp));

    // The broker's offset rewrite keeps it valid.
    let mut copy = bytes.to_vec();
    batch::set_base_offset(&mut copy, 42);
    assert_eq!(batch::validate(&copy), Ok(summary));
    let view = BatchView::parse(&copy).expect("still parses");
    assert_eq!(view.base_offset(), 42);
    assert_eq!(view.last_offset(), 42 + u64::from(summary.record_count) - 1);
}

/// `bytes` as a fetch body: batches back to back.
fn check_split(bytes: &[u8]) {
    let mut covered = 0usize;
    let mut failed = false;
    for view in batch::split_batches(bytes) {
        assert!(!failed, "split_batches went on after an error");
        match view {
            Ok(view) => {
                covered += view.as_bytes().len();
                read_everything(&view);
                let _ = batch::validate(view.as_bytes());
            }
            Err(_) => failed = true,
        }
    }
    assert!(covered <= bytes.len());
    if !failed {
        assert_eq!(covered, bytes.len(), "split_batches dropped bytes");
    }
}

/// Every accessor and every record and header of a view. Returns how many
/// records read before the first error.
fn read_everything(view: &BatchView<'_>) -> usize {
    let _ = (
        view.base_offset(),
        view.last_offset(),
        view.partition_leader_epoch(),
        view.attributes(),
        view.last_offset_delta(),
        view.base_timestamp(),
        view.max_timestamp(),
        view.producer_id(),
        view.verify_crc(),
    );
    let mut clean = 0;
    for record in view.records() {
        let Ok(record) = record else {
            break;
        };
        clean += 1;
        assert!(record.header_count() <= MAX_HEADERS_PER_RECORD);
        let mut headers = 0;
        for (key, value) in record.headers() {
            headers += 1;
            let _ = (key.len(), value.map(<[u8]>::len));
        }
        assert_eq!(
            headers,
            record.header_count(),
            "a header read once failed to read again"
        );
        let _ = (
            record.key.map(<[u8]>::len),
            record.value.map(<[u8]>::len),
            record.timestamp,
        );
    }
    assert!(clean <= view.record_count() as usize);
    clean
}
