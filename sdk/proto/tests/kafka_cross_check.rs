//! Cross-checks `quiver_proto::batch` against an independent implementation
//! of Kafka's `RecordBatch` v2, the `kafka-protocol` crate, in both directions:
//! batches we build must decode there, and batches it encodes must pass our
//! validator and read back the same through [`BatchView`].
//!
//! Known differences between the two codecs, each pinned by a test below:
//! - `kafka-protocol` writes the *smallest* record timestamp as
//!   `base_timestamp`; we (like the Java producer) write the first record's.
//!   Both are valid v2, since timestamp deltas are signed. When the first
//!   record has the smallest timestamp the two encoders agree byte for byte.
//! - `kafka-protocol` keeps headers in an `IndexMap`, so repeated header keys
//!   (legal in Kafka) collapse to one entry, last value winning.
//! - `kafka-protocol` starts a new batch whenever `offset - sequence` changes
//!   between records, so a single batch with `base_sequence = -1` needs the
//!   records' `sequence` set to `offset - base_offset - 1`, not to -1.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Record,
    RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use quiver_proto::batch::{
    BatchBuilder, BatchView, Header, NewRecord, set_base_offset, split_batches, validate,
};

/// A generated record, in a form both codecs can be fed from.
#[derive(Debug, Clone)]
struct TestRecord {
    key: Option<Vec<u8>>,
    /// `None` is a null value (a tombstone), which both codecs keep apart
    /// from an empty one.
    value: Option<Vec<u8>>,
    /// Distinct keys, in generated order.
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

/// 2017-07-14 .. 2033-05-18 in ms: far from any overflow, but wide enough that
/// timestamp deltas take varlongs of several widths and either sign.
const TIMESTAMPS: std::ops::RangeInclusive<i64> = 1_500_000_000_000..=2_000_000_000_000;

fn bytes_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

/// Up to three headers with distinct keys (see the module docs for why
/// distinct) and nullable values; keys are arbitrary UTF-8, empty included.
fn headers_strategy() -> impl Strategy<Value = Vec<(String, Option<Vec<u8>>)>> {
    vec(("\\PC{0,6}", option::of(bytes_strategy(12))), 0..=3).prop_map(|mut headers| {
        let mut seen = std::collections::HashSet::new();
        headers.retain(|(key, _)| seen.insert(key.clone()));
        headers
    })
}

fn record_strategy() -> impl Strategy<Value = TestRecord> {
    (
        option::of(bytes_strategy(24)),
        option::weighted(0.9, bytes_strategy(64)),
        headers_strategy(),
        TIMESTAMPS,
    )
        .prop_map(|(key, value, headers, timestamp)| TestRecord {
            key,
            value,
            headers,
            timestamp,
        })
}

fn records_strategy() -> impl Strategy<Value = Vec<TestRecord>> {
    vec(record_strategy(), 1..=24)
}

/// Builds a batch with our builder and gives it `base_offset`.
fn build_quiver(records: &[TestRecord], base_offset: u64) -> Vec<u8> {
    let headers: Vec<Vec<Header>> = records
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .map(|(key, value)| Header {
                    key: key.clone(),
                    value: value.clone().map(Bytes::from),
                })
                .collect()
        })
        .collect();
    let mut builder = BatchBuilder::default();
    for (record, headers) in records.iter().zip(&headers) {
        builder
            .push(&NewRecord {
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers,
                timestamp: record.timestamp,
            })
            .expect("generated records fit a batch");
    }
    let mut batch = builder.finish();
    set_base_offset(&mut batch, base_offset);
    batch
}

/// The `kafka-protocol` records for one non-transactional, non-idempotent
/// batch starting at `base_offset`.
fn kafka_records(records: &[TestRecord], base_offset: i64) -> Vec<Record> {
    records
        .iter()
        .zip(0i32..)
        .map(|(r, i)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: base_offset + i64::from(i),
            // base_sequence = sequence of the first record = -1 (no
            // sequence); see the module docs.
            sequence: i - 1,
            timestamp: r.timestamp,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                .collect(),
        })
        .collect()
}

fn encode_kafka(records: &[Record]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("kafka-protocol encodes uncompressed v2");
    buf.to_vec()
}

fn decode_kafka(bytes: &[u8]) -> Vec<Record> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes our batch");
    assert!(buf.is_empty(), "{} bytes left after one batch", buf.len());
    assert_eq!(set.version, 2);
    assert_eq!(set.compression, Compression::None);
    set.records
}

/// Checks every record `kafka-protocol` decoded against what was built.
fn assert_kafka_sees(decoded: &[Record], records: &[TestRecord], base_offset: i64) {
    assert_eq!(decoded.len(), records.len());
    for ((got, want), i) in decoded.iter().zip(records).zip(0i32..) {
        assert_eq!(got.offset, base_offset + i64::from(i), "record {i}");
        assert_eq!(got.timestamp, want.timestamp, "record {i}");
        assert_eq!(got.timestamp_type, TimestampType::Creation);
        assert_eq!(got.key.as_deref(), want.key.as_deref(), "record {i}");
        assert_eq!(got.value.as_deref(), want.value.as_deref(), "record {i}");
        let headers: Vec<(&str, Option<&[u8]>)> = got
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let expected: Vec<(&str, Option<&[u8]>)> = want
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(headers, expected, "record {i}");
        assert!(!got.transactional && !got.control && !got.delete_horizon);
        assert_eq!(got.producer_id, NO_PRODUCER_ID);
        assert_eq!(got.producer_epoch, NO_PRODUCER_EPOCH);
        assert_eq!(got.partition_leader_epoch, NO_PARTITION_LEADER_EPOCH);
        // base_sequence is -1, and kafka-protocol adds the offset delta.
        assert_eq!(got.sequence, i - 1, "record {i}");
    }
}

/// Checks a batch through our validator and reader against the records it
/// was encoded from.
fn assert_quiver_sees(batch: &[u8], records: &[TestRecord], base_offset: u64) {
    let summary = validate(batch).expect("our validator accepts the batch");
    assert_eq!(summary.record_count as usize, records.len());
    let max = records.iter().map(|r| r.timestamp).max();
    assert_eq!(Some(summary.max_timestamp), max);

    let view = BatchView::parse(batch).expect("header parses");
    assert_eq!(view.base_offset(), base_offset);
    assert_eq!(view.last_offset(), base_offset + records.len() as u64 - 1);
    assert_eq!(view.record_count() as usize, records.len());
    assert_eq!(view.producer_id(), NO_PRODUCER_ID);
    assert_eq!(view.partition_leader_epoch(), NO_PARTITION_LEADER_EPOCH);
    assert_eq!(view.attributes(), 0);

    let read: Vec<_> = view
        .records()
        .collect::<Result<_, _>>()
        .expect("records read back");
    assert_eq!(read.len(), records.len());
    for ((got, want), i) in read.iter().zip(records).zip(0i32..) {
        assert_eq!(got.offset_delta, i);
        assert_eq!(got.timestamp, want.timestamp, "record {i}");
        assert_eq!(got.key, want.key.as_deref(), "record {i}");
        assert_eq!(got.value, want.value.as_deref(), "record {i}");
        let headers: Vec<_> = got.headers().collect();
        let expected: Vec<_> = want
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(got.header_count() as usize, expected.len(), "record {i}");
        assert_eq!(headers, expected, "record {i}");
    }

    let split: Vec<_> = split_batches(batch)
        .collect::<Result<_, _>>()
        .expect("one batch splits");
    assert_eq!(split.len(), 1);
    assert_eq!(split[0].as_bytes(), batch);
}

fn base_offsets() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0u64..1_000_000, 0u64..(1u64 << 62)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Our batches decode in `kafka-protocol` to the same records.
    #[test]
    fn quiver_batches_decode_in_kafka_protocol(
        records in records_strategy(),
        base_offset in base_offsets(),
    ) {
        let batch = build_quiver(&records, base_offset);
        validate(&batch).expect("our own batch validates");
        assert_kafka_sees(&decode_kafka(&batch), &records, base_offset as i64);
    }

    /// (b) `kafka-protocol`'s batches pass our validator and read back the
    /// same, null values as null.
    #[test]
    fn kafka_protocol_batches_validate_and_read_back(
        records in records_strategy(),
        base_offset in base_offsets(),
    ) {
        let kafka = kafka_records(&records, base_offset as i64);
        let batch = encode_kafka(&kafka);
        assert_quiver_sees(&batch, &records, base_offset);
        let view = BatchView::parse(&batch).expect("header parses");
        // kafka-protocol's choice of base timestamp (see the module docs).
        let min = records.iter().map(|r| r.timestamp).min();
        prop_assert_eq!(Some(view.base_timestamp()), min);
        // And it round-trips through kafka-protocol itself, nulls included.
        assert_kafka_sees(&decode_kafka(&batch), &records, base_offset as i64);
    }

    /// When the first record carries the smallest timestamp, both encoders
    /// choose the same base timestamp and must agree on every byte.
    #[test]
    fn encoders_agree_byte_for_byte(
        mut records in records_strategy(),
        base_offset in base_offsets(),
    ) {
        let min = records.iter().map(|r| r.timestamp).min().expect("non-empty");
        records[0].timestamp = min;
        let ours = build_quiver(&records, base_offset);
        let theirs = encode_kafka(&kafka_records(&records, base_offset as i64));
        prop_assert_eq!(ours, theirs);
    }

    /// Otherwise they differ only in the base timestamp and what follows from
    /// it: both still describe the same records.
    #[test]
    fn out_of_order_timestamps_differ_only_in_base(
        records in records_strategy(),
    ) {
        let ours = build_quiver(&records, 0);
        let ours_view = BatchView::parse(&ours).expect("header parses");
        prop_assert_eq!(ours_view.base_timestamp(), records[0].timestamp);
        let theirs = encode_kafka(&kafka_records(&records, 0));
        assert_quiver_sees(&theirs, &records, 0);
        assert_kafka_sees(&decode_kafka(&ours), &records, 0);
    }

    /// Concatenated batches from either side split the same way.
    #[test]
    fn concatenated_batches_split_alike(
        batches in vec(records_strategy(), 1..=4),
    ) {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        let mut offset = 0u64;
        for records in &batches {
            ours.extend_from_slice(&build_quiver(records, offset));
            theirs.extend_from_slice(&encode_kafka(&kafka_records(records, offset as i64)));
            offset += records.len() as u64;
        }
        for bytes in [&ours, &theirs] {
            let views: Vec<_> = split_batches(bytes)
                .collect::<Result<_, _>>()
                .expect("batches split");
            prop_assert_eq!(views.len(), batches.len());
            let mut offset = 0u64;
            for (view, records) in views.iter().zip(&batches) {
                assert_quiver_sees(view.as_bytes(), records, offset);
                offset += records.len() as u64;
            }
            let sets = RecordBatchDecoder::decode_all(&mut Bytes::copy_from_slice(bytes))
                .expect("kafka-protocol decodes the concatenation");
            prop_assert_eq!(sets.len(), batches.len());
        }
    }
}

/// Kafka allows a header key to repeat; we keep every occurrence, in order.
/// `kafka-protocol` decodes headers into a map and so keeps one entry per
/// key, at the first occurrence's position with the last occurrence's value.
#[test]
fn repeated_header_keys_are_kept_by_us_and_collapsed_by_kafka_protocol() {
    let headers = [
        Header {
            key: "trace".into(),
            value: Some(Bytes::from_static(b"a")),
        },
        Header {
            key: "other".into(),
            value: None,
        },
        Header {
            key: "trace".into(),
            value: Some(Bytes::from_static(b"b")),
        },
    ];
    let mut builder = BatchBuilder::default();
    builder
        .push(&NewRecord {
            key: None,
            value: Some(b"v"),
            headers: &headers,
            timestamp: 1_700_000_000_000,
        })
        .unwrap();
    let batch = builder.finish();

    let view = BatchView::parse(&batch).unwrap();
    let record = view.records().next().unwrap().unwrap();
    let ours: Vec<_> = record.headers().collect();
    assert_eq!(
        ours,
        vec![
            ("trace", Some(&b"a"[..])),
            ("other", None),
            ("trace", Some(&b"b"[..])),
        ]
    );

    let decoded = decode_kafka(&batch);
    let theirs: Vec<_> = decoded[0]
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(theirs, vec![("trace", Some(&b"b"[..])), ("other", None)]);
}

/// A tombstone (null value) written by `kafka-protocol` reads back as null,
/// and an empty value as empty.
#[test]
fn a_null_value_is_kept_apart_from_an_empty_one() {
    let records = [
        TestRecord {
            key: Some(b"k".to_vec()),
            value: None,
            headers: Vec::new(),
            timestamp: 1_700_000_000_000,
        },
        TestRecord {
            key: Some(b"k".to_vec()),
            value: Some(Vec::new()),
            headers: Vec::new(),
            timestamp: 1_700_000_000_000,
        },
    ];
    let batch = encode_kafka(&kafka_records(&records, 0));
    validate(&batch).unwrap();
    let view = BatchView::parse(&batch).unwrap();
    let read: Vec<_> = view.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(read[0].value, None);
    assert_eq!(read[1].value, Some(&b""[..]));
}

/// With every record's `sequence` left at -1, `kafka-protocol` sees
/// `offset - sequence` change between records and writes one batch per
/// record; each such batch is still valid for us.
#[test]
fn kafka_protocol_without_sequences_writes_one_batch_per_record() {
    let records: Vec<_> = (0..3)
        .map(|i| TestRecord {
            key: None,
            value: Some(vec![i]),
            headers: Vec::new(),
            timestamp: 1_700_000_000_000 + i64::from(i),
        })
        .collect();
    let mut kafka = kafka_records(&records, 0);
    for record in &mut kafka {
        record.sequence = -1;
    }
    let bytes = encode_kafka(&kafka);
    let views: Vec<_> = split_batches(&bytes).collect::<Result<_, _>>().unwrap();
    assert_eq!(views.len(), 3);
    for (i, view) in (0u64..).zip(&views) {
        let summary = validate(view.as_bytes()).unwrap();
        assert_eq!(summary.record_count, 1);
        assert_eq!(view.base_offset(), i);
    }
}
