//! Every [`ErrorCode`] provoked from a real client against a real broker, with
//! the typed code asserted (never the message), and the broker shown to keep
//! serving afterwards: a fresh record goes in and comes back byte for byte,
//! on the connection that saw the error and on a new one.
//!
//! Two codes are not provoked, on purpose:
//! - `UnknownServerError` means a failure inside the broker that no request
//!   should be able to cause (a response that does not encode, a read task
//!   that panicked); a request that did reach it would be a bug. It is also
//!   what an unknown number decodes as, which the proto crate's unit tests
//!   cover.
//!
//! - `GroupBusy` answers a join that lands while the group's offsets are
//!   being reset or deleted, a window of one storage commit that a test
//!   cannot hit on purpose without timing.
//!
//! [`every_code_is_reached_or_explained`] keeps this list honest: a new code
//! fails it until a test here reaches it or it is explained above.

use std::collections::BTreeSet;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use quiver_client::{
    Admin, Client, ClientError, Consumer, ConsumerConfig, ErrorCode, ErrorDetail, Offset, Producer,
    ProducerConfig, ProducerRecord, TopicConfig, TopicPartition, WireError,
};
use quiver_proto::api::groups::{
    CommitOffsetsRequest, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommit,
    PartitionRef,
};
use quiver_proto::api::transforms::{DeployTransformRequest, OnError, StartFrom, TransformAction};
use quiver_proto::api::{
    DescribeTopicRequest, FetchPartition, FetchRequest, ListTopicsRequest, ListTopicsResponse,
    ProduceBatch, ProduceRequest, ProduceResult, Request as _, RequestKind, decode_head,
    encode_request,
};
use quiver_proto::batch::{BatchBuilder, Compression, NewRecord, compress};
use quiver_proto::frame::{FrameHeader, HEADER_BYTES};
use quiver_proto::limits::{
    MAX_BATCH_BYTES, MAX_FRAME_BYTES, MAX_PARTITIONS_PER_TOPIC, MAX_TOPIC_NAME_BYTES,
};
use quiver_proto::varint::{write_varint, write_varlong};
use quiver_tests::RecordValue;
use quiver_tests::{RawConnection, RawReply, TestBroker, frame};

/// Long enough for any answer that is already there; a poll returns as soon
/// as data is available, so this is an upper bound, never a wait.
const POLL: Duration = Duration::from_secs(10);

/// The topic [`assert_serving`] writes to.
const ALIVE: &str = "alive";

/// Codes this file provokes, each in the test named beside it.
const REACHED: [ErrorCode; 38] = [
    ErrorCode::UnknownTopic,           // unknown_topic_*
    ErrorCode::UnknownPartition,       // unknown_partition_*
    ErrorCode::OffsetOutOfRange,       // offset_above_high_watermark_*
    ErrorCode::CorruptBatch,           // corrupt_batches_*
    ErrorCode::BatchTooLarge,          // batch_above_the_batch_limit_*
    ErrorCode::UnsupportedCompression, // compressed_batches_*
    ErrorCode::InvalidTopicName,       // invalid_topic_names_*
    ErrorCode::TopicAlreadyExists,     // creating_a_topic_twice_*
    ErrorCode::InvalidPartitions,      // partition_counts_*
    ErrorCode::UnsupportedVersion,     // raw_frames_get_*
    ErrorCode::InvalidRequest,         // raw_frames_get_*
    ErrorCode::UnknownRequestKind,     // raw_frames_get_*
    ErrorCode::FrameTooLarge,          // raw_frames_get_*
    ErrorCode::TooManyConnections,     // connections_beyond_the_limit_*
    ErrorCode::ShuttingDown,           // requests_after_shutdown_*
    ErrorCode::UnknownMember,          // group_membership_errors
    ErrorCode::FencedMemberEpoch,      // group_membership_errors
    ErrorCode::NotAssigned,            // group_membership_errors
    ErrorCode::InvalidSessionTimeout,  // group_join_errors
    ErrorCode::InconsistentStrategy,   // group_membership_errors
    ErrorCode::NonEmptyGroup,          // group_operator_refusals
    ErrorCode::GroupNotFound,          // group_operator_refusals
    ErrorCode::GroupMaxSizeReached,    // group_size_limits
    ErrorCode::TooManyGroups,          // group_size_limits
    ErrorCode::InvalidModule,          // modules.rs: uploads_that_are_not_contract_components_*
    ErrorCode::UnknownModule,          // modules.rs: guest_components_are_stored_*
    ErrorCode::UnknownTransform,       // transform_refusals
    ErrorCode::TransformExists,        // transform_refusals
    ErrorCode::ModuleInUse,            // transform_refusals
    ErrorCode::ModuleFailed,           // transform_refusals
    ErrorCode::TopicInUse,             // transform_refusals
    ErrorCode::StorageError,           // damaged_storage.rs: a_lost_batch_*
    ErrorCode::StorageUnavailable,     // full_disk.rs
    ErrorCode::Busy, // wasm_hardening.rs: uploads_are_checked_*, broker_wide_limits_*
    ErrorCode::LimitReached, // wasm_hardening.rs: broker_wide_limits_*
    ErrorCode::IllegalGeneration, // kafka.rs: kafka_group_members_* (a commit at an old generation)
    ErrorCode::OutOfOrderSequence, // kafka.rs: idempotent_producers_*
    ErrorCode::InvalidProducerEpoch, // kafka.rs: idempotent_producers_*
];

/// Codes no client can provoke on purpose; the module docs say why.
const NOT_REACHABLE: [ErrorCode; 2] = [ErrorCode::UnknownServerError, ErrorCode::GroupBusy];

#[test]
fn every_code_is_reached_or_explained() {
    let all: BTreeSet<i16> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
    let reached: BTreeSet<i16> = REACHED.iter().map(|c| c.code()).collect();
    let skipped: BTreeSet<i16> = NOT_REACHABLE.iter().map(|c| c.code()).collect();
    assert_eq!(reached.len(), REACHED.len(), "a code is listed twice");
    assert!(reached.is_disjoint(&skipped));
    assert_eq!(&reached | &skipped, all);
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The broker code of a client error, failing loudly when there is none.
fn code_of(error: &ClientError) -> ErrorCode {
    error
        .code()
        .unwrap_or_else(|| panic!("expected a broker error code, got {error:?}"))
}

/// The broker's refusal inside a client error.
fn wire_of(error: ClientError) -> WireError {
    match error {
        ClientError::Broker(wire) => wire,
        other => panic!("expected a broker refusal, got {other:?}"),
    }
}

/// Proves the broker still serves on `client`'s connection: a fresh record
/// goes in and comes back, byte for byte, at the offset its ack names.
async fn assert_serving_on(client: &Client, tag: &str) {
    let admin = Admin::new(client.clone());
    if let Err(e) = admin.create_topic(ALIVE, 1, TopicConfig::default()).await {
        assert_eq!(e.code(), Some(ErrorCode::TopicAlreadyExists), "{e}");
    }
    let value = format!("still serving after {tag}");
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let ack = producer
        .send(ProducerRecord::new(ALIVE, value.clone()).key(tag.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("produce after {tag}: {e}"));
    let records = read_from(client, ALIVE, 0, ack.offset, 1).await;
    assert_eq!(records[0].offset, ack.offset);
    assert_eq!(records[0].value_bytes(), value.as_bytes());
    assert_eq!(records[0].key.as_deref(), Some(tag.as_bytes()));
}

/// [`assert_serving_on`] on `client` and on a new connection.
async fn assert_serving(broker: &TestBroker, client: &Client, tag: &str) {
    assert_serving_on(client, &format!("{tag} (same connection)")).await;
    assert_serving_on(&broker.client().await, &format!("{tag} (new connection)")).await;
}

/// Reads `count` records of one partition starting at `from`.
async fn read_from(
    client: &Client,
    topic: &str,
    partition: u32,
    from: u64,
    count: usize,
) -> Vec<quiver_client::ConsumerRecord> {
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    let tp = TopicPartition::new(topic, partition);
    consumer.assign([tp.clone()]);
    consumer
        .seek(&tp, Offset::At(from))
        .expect("the partition is assigned");
    let mut records = Vec::new();
    while records.len() < count {
        let polled = consumer
            .poll(POLL)
            .await
            .unwrap_or_else(|e| panic!("poll {topic}/{partition}: {e}"));
        assert!(
            !polled.is_empty(),
            "stalled at {} of {count}",
            records.len()
        );
        records.extend(polled);
    }
    records.truncate(count);
    records
}

/// A valid batch of `values`, as the producer would build it.
fn batch_of(values: &[&str]) -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    for (i, value) in values.iter().enumerate() {
        builder
            .push(&NewRecord {
                key: None,
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp: 1_700_000_000_000 + i as i64,
            })
            .expect("a small record fits");
    }
    builder.finish()
}

/// Sends `batches` (partition, bytes) in one produce request and returns
/// the per-batch results.
async fn produce_raw(
    client: &Client,
    topic: &str,
    batches: Vec<(u32, Vec<u8>)>,
) -> Vec<ProduceResult> {
    let request = ProduceRequest {
        topic: topic.into(),
        batches: batches
            .iter()
            .map(|(partition, bytes)| ProduceBatch {
                partition: *partition,
                bytes: bytes.len() as u32,
            })
            .collect(),
    };
    let body = batches.into_iter().map(|(_, b)| Bytes::from(b)).collect();
    let (response, _) = client
        .request(&request, body)
        .await
        .unwrap_or_else(|e| panic!("produce request to {topic}: {e}"));
    assert_eq!(response.results.len(), request.batches.len());
    response.results
}

/// The refusal in one produce result.
fn refused(result: &ProduceResult) -> &WireError {
    match &result.outcome {
        Err(e) => e,
        Ok(offset) => panic!(
            "partition {} accepted a bad batch at offset {offset}",
            result.partition
        ),
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
/// Kafka's batch format; this crate does not depend on `crc32c`.
fn crc32c(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &byte in bytes {
        crc = TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Where the batch CRC lies, and where the bytes it covers start.
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// Recomputes a batch's CRC-32C over bytes 21..end.
fn reseal(batch: &mut [u8]) {
    let crc = crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..ATTRIBUTES_AT].copy_from_slice(&crc.to_be_bytes());
}

/// The value byte at position `i` of the big records.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// A one-record batch of exactly `total` bytes, laid out by hand (the
/// builder refuses to pass the limit), valid in every respect but its size.
fn one_record_batch(total: usize) -> Vec<u8> {
    // 61 header bytes, a 4-byte record length, 5 one-byte fields and a
    // 4-byte value length: for values from 1 MiB to 128 MiB.
    let value_len = total - 74;
    let mut record = vec![0u8]; // attributes
    write_varlong(&mut record, 0); // timestamp delta
    write_varint(&mut record, 0); // offset delta
    write_varint(&mut record, -1); // no key
    write_varint(&mut record, value_len as i32);
    record.extend((0..value_len).map(pattern));
    write_varint(&mut record, 0); // no headers

    let timestamp = 1_700_000_000_000i64;
    let mut batch = Vec::with_capacity(total);
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    batch.extend_from_slice(&0i32.to_be_bytes()); // batch length, below
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    batch.extend_from_slice(&0i16.to_be_bytes()); // attributes
    batch.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    batch.extend_from_slice(&timestamp.to_be_bytes()); // base timestamp
    batch.extend_from_slice(&timestamp.to_be_bytes()); // max timestamp
    batch.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    batch.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    batch.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    batch.extend_from_slice(&1i32.to_be_bytes()); // record count
    assert_eq!(batch.len(), quiver_proto::batch::HEADER_BYTES);
    write_varint(&mut batch, record.len() as i32);
    batch.extend_from_slice(&record);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    reseal(&mut batch);
    assert_eq!(batch.len(), total);
    batch
}

/// The error frame a raw request got back, decoded and checked for
/// consistency (the header's code is the head's code; no body).
fn error_reply(reply: RawReply) -> WireError {
    let RawReply::Frame { header, head, body } = reply else {
        panic!("expected an error frame, got {reply:?}");
    };
    assert_ne!(header.code(), 0, "expected an error, got a success frame");
    let error: WireError = decode_head(&head).expect("an error head decodes");
    assert_eq!(error.code.code(), header.code());
    assert!(body.is_empty(), "an error frame carries no body");
    error
}

/// Lists topics over the raw connection: proves it still works after an
/// error on one of its streams.
async fn raw_list_topics(raw: &RawConnection) -> Vec<String> {
    let reply = raw
        .send(&encode_request(&ListTopicsRequest, 0).expect("encode"))
        .await;
    let RawReply::Frame { header, head, .. } = reply else {
        panic!("list topics failed: {reply:?}");
    };
    assert_eq!(header.code(), 0);
    let response: ListTopicsResponse = decode_head(&head).expect("a list response");
    response.topics.into_iter().map(|t| t.name).collect()
}

// ---------------------------------------------------------------------------
// Topics and partitions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_topic_on_describe_delete_produce_and_fetch() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());

    let e = admin.describe_topic("missing").await.unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownTopic);
    let e = admin.delete_topic("missing").await.unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownTopic);

    // The producer describes the topic before its first record.
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let e = producer
        .send(ProducerRecord::new("missing", "v"))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownTopic);

    // A produce request straight to the broker is refused as a whole.
    let request = ProduceRequest {
        topic: "missing".into(),
        batches: vec![ProduceBatch {
            partition: 0,
            bytes: batch_of(&["v"]).len() as u32,
        }],
    };
    let e = client
        .request(&request, vec![Bytes::from(batch_of(&["v"]))])
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownTopic);

    // Fetch: the broker's answer for the partition (no describe first).
    let config = ConsumerConfig {
        start: Offset::At(0),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), config);
    consumer.assign([TopicPartition::new("missing", 0)]);
    let e = consumer.poll(POLL).await.unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownTopic);
    // Starting at Latest describes the topic first, with the same answer.
    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    consumer.assign([TopicPartition::new("missing", 0)]);
    let e = consumer.poll(POLL).await.unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownTopic);

    // None of that created the topic.
    let names: Vec<String> = admin
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(!names.contains(&"missing".to_owned()), "{names:?}");
    assert_serving(&broker, &client, "unknown topic").await;
}

#[tokio::test]
async fn unknown_partition_from_producer_and_consumer() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    broker.create_topic("two", 2).await;

    // The producer does not check explicit partitions: the broker refuses
    // the batch and the record's future says why.
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let delivery = producer
        .enqueue(ProducerRecord::new("two", "lost").partition(99))
        .await
        .unwrap();
    let e = delivery.await.unwrap_err();
    let wire = wire_of(e);
    assert_eq!(wire.code, ErrorCode::UnknownPartition);
    assert_eq!(wire.detail, ErrorDetail::None);
    // The same producer still delivers to a real partition.
    let ack = producer
        .send(ProducerRecord::new("two", "kept").partition(1))
        .await
        .unwrap();
    assert_eq!((ack.partition, ack.offset), (1, 0));

    // In one request, a bad partition fails only its own batch.
    let results = produce_raw(
        &client,
        "two",
        vec![(99, batch_of(&["x"])), (0, batch_of(&["y", "z"]))],
    )
    .await;
    assert_eq!(refused(&results[0]).code, ErrorCode::UnknownPartition);
    assert_eq!(results[1].outcome, Ok(0));

    // A consumer assigned partition 99, fetching at once: the broker's answer.
    let config = ConsumerConfig {
        start: Offset::At(0),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), config);
    consumer.assign([TopicPartition::new("two", 99)]);
    let e = consumer.poll(POLL).await.unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownPartition);
    // Starting at Earliest the SDK finds out from the topic's description
    // and reports the same code.
    let config = ConsumerConfig {
        start: Offset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), config);
    consumer.assign([
        TopicPartition::new("two", 0),
        TopicPartition::new("two", 99),
    ]);
    let e = consumer.poll(POLL).await.unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownPartition);

    // Only the good records were stored.
    let p0 = read_from(&client, "two", 0, 0, 2).await;
    assert_eq!(p0[0].value_bytes(), b"y");
    assert_eq!(p0[1].value_bytes(), b"z");
    let p1 = read_from(&client, "two", 1, 0, 1).await;
    assert_eq!(p1[0].value_bytes(), b"kept");
    let description = Admin::new(client.clone())
        .describe_topic("two")
        .await
        .unwrap();
    let watermarks: Vec<u64> = description
        .partitions
        .iter()
        .map(|p| p.high_watermark)
        .collect();
    assert_eq!(watermarks, vec![2, 1]);
    assert_serving(&broker, &client, "unknown partition").await;
}

#[tokio::test]
async fn offset_above_high_watermark_is_out_of_range_with_the_valid_range() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    broker.create_topic("o", 1).await;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for i in 0..3 {
        producer
            .send(ProducerRecord::new("o", format!("r{i}")))
            .await
            .unwrap();
    }
    let high_watermark = 3;

    let mut consumer = Consumer::new(client.clone(), ConsumerConfig::default());
    let tp = TopicPartition::new("o", 0);
    consumer.assign([tp.clone()]);
    consumer.seek(&tp, Offset::At(high_watermark + 5)).unwrap();
    let wire = wire_of(consumer.poll(POLL).await.unwrap_err());
    assert_eq!(wire.code, ErrorCode::OffsetOutOfRange);
    assert_eq!(
        wire.detail,
        ErrorDetail::OffsetRange {
            log_start_offset: 0,
            high_watermark,
        }
    );
    // The failed poll moved nothing: the position is still the bad one.
    assert_eq!(consumer.position(&tp), Some(high_watermark + 5));

    // Acting on the detail: seek into the range and read everything.
    consumer.seek(&tp, Offset::At(0)).unwrap();
    let records = consumer.poll(POLL).await.unwrap();
    let values: Vec<&[u8]> = records.iter().map(RecordValue::value_bytes).collect();
    assert_eq!(values, vec![&b"r0"[..], b"r1", b"r2"]);
    assert_eq!(consumer.position(&tp), Some(high_watermark));
    assert_serving(&broker, &client, "offset out of range").await;
}

// ---------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------

#[test]
fn crc32c_helper_matches_the_standard_and_the_builder() {
    // The CRC-32C check value from the catalogue of parametrised CRCs.
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    let batch = batch_of(&["a", "bc"]);
    let stored = u32::from_be_bytes(batch[CRC_AT..ATTRIBUTES_AT].try_into().unwrap());
    assert_eq!(crc32c(&batch[ATTRIBUTES_AT..]), stored);
    let hand_made = one_record_batch(2 << 20);
    quiver_proto::batch::validate(&hand_made).unwrap();
}

#[tokio::test]
async fn corrupt_batches_are_refused_one_by_one_and_not_stored() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    broker.create_topic("c", 1).await;
    let good = batch_of(&["first", "second"]);
    // Flip one byte at every position the CRC covers, past the attributes
    // (which have their own checks): each one breaks the CRC.
    let mut batches = Vec::new();
    for at in ATTRIBUTES_AT + 2..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x5A;
        batches.push((0, bad));
    }
    let corrupt = batches.len();
    batches.insert(corrupt / 2, (0, good.clone()));
    let results = produce_raw(&client, "c", batches).await;
    for (i, result) in results.iter().enumerate() {
        if i == corrupt / 2 {
            assert_eq!(result.outcome, Ok(0), "the intact batch is stored");
        } else {
            assert_eq!(refused(result).code, ErrorCode::CorruptBatch, "batch {i}");
        }
    }
    // Only the intact batch is in the log.
    let records = read_from(&client, "c", 0, 0, 2).await;
    assert_eq!(records[0].value_bytes(), b"first");
    assert_eq!(records[1].value_bytes(), b"second");
    let description = Admin::new(client.clone())
        .describe_topic("c")
        .await
        .unwrap();
    assert_eq!(description.partitions[0].high_watermark, 2);
    assert_serving(&broker, &client, "corrupt batches").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_above_the_batch_limit_is_refused_with_its_size() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    broker.create_topic("big", 1).await;
    let limit = MAX_BATCH_BYTES as usize;

    // Exactly at the limit: accepted, and read back whole.
    let results = produce_raw(&client, "big", vec![(0, one_record_batch(limit))]).await;
    assert_eq!(results[0].outcome, Ok(0));
    let records = read_from(&client, "big", 0, 0, 1).await;
    let value = records[0].value_bytes();
    assert_eq!(value.len(), limit - 74);
    assert!(value.iter().enumerate().all(|(i, &b)| b == pattern(i)));

    // One byte over, and about 9 MiB (still well inside a 16 MiB frame).
    for size in [limit + 1, 9 * 1024 * 1024] {
        assert!(size + 1024 < MAX_FRAME_BYTES as usize);
        let results = produce_raw(&client, "big", vec![(0, one_record_batch(size))]).await;
        let wire = refused(&results[0]);
        assert_eq!(wire.code, ErrorCode::BatchTooLarge, "{size} bytes");
        assert_eq!(
            wire.detail,
            ErrorDetail::Size {
                size: size as u64,
                max: u64::from(MAX_BATCH_BYTES),
            }
        );
    }
    let description = Admin::new(client.clone())
        .describe_topic("big")
        .await
        .unwrap();
    assert_eq!(description.partitions[0].high_watermark, 1);
    assert_serving(&broker, &client, "batch too large").await;
}

/// Compressed batches are accepted (see `produce_consume`), but one whose
/// records do not decompress with its codec is corrupt, a codec number
/// that names no codec is unsupported, and a compression bomb is too large
/// once decompression passes its limit; the good batch beside them is kept.
#[tokio::test]
async fn batches_that_do_not_decompress_are_refused() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    broker.create_topic("z", 1).await;
    let good = batch_of(&["plain"]);
    let mut batches = vec![(0, good.clone())];
    // Codecs 1-4 are gzip, snappy, lz4 and zstd; 5-7 are unassigned. The
    // attributes are an i16 at 21..23; the codec is the low 3 bits, in
    // byte 22. The CRC is resealed so that the codec is the only fault.
    for codec in 1..=7u8 {
        let mut bad = good.clone();
        bad[ATTRIBUTES_AT + 1] |= codec;
        reseal(&mut bad);
        batches.push((0, bad));
    }
    // 40 MiB of zeros as one batch's records, compressed to about 1 KiB.
    let mut huge = good.clone();
    huge.truncate(61);
    huge.resize(61 + 40 * 1024 * 1024, 0);
    let length = (huge.len() - 12) as i32;
    huge[8..12].copy_from_slice(&length.to_be_bytes());
    batches.push((0, compress(&huge, Compression::Zstd).expect("compress")));
    // Each in its own request: a compressed batch that fails spends the
    // most a batch may decompress to of its request's budget, so that
    // failing batches cannot be sent to decompress without end.
    let mut results = Vec::new();
    for batch in batches {
        results.extend(produce_raw(&client, "z", vec![batch]).await);
    }
    assert_eq!(results[0].outcome, Ok(0));
    for (codec, result) in (1..).zip(&results[1..8]) {
        let expected = if codec <= 4 {
            ErrorCode::CorruptBatch
        } else {
            ErrorCode::UnsupportedCompression
        };
        assert_eq!(refused(result).code, expected, "codec {codec}");
    }
    assert_eq!(refused(&results[8]).code, ErrorCode::BatchTooLarge);
    // In one request, the third failing compressed batch finds the budget
    // spent and is refused without being decompressed.
    let mut corrupt = Vec::new();
    for codec in 1..=3u8 {
        let mut bad = good.clone();
        bad[ATTRIBUTES_AT + 1] |= codec;
        reseal(&mut bad);
        corrupt.push((0, bad));
    }
    let together = produce_raw(&client, "z", corrupt).await;
    assert_eq!(refused(&together[1]).code, ErrorCode::CorruptBatch);
    let spent = refused(&together[2]);
    assert_eq!(spent.code, ErrorCode::BatchTooLarge);
    assert!(spent.message.contains("in all"), "{spent:?}");
    let records = read_from(&client, "z", 0, 0, 1).await;
    assert_eq!(records[0].value_bytes(), b"plain");
    let description = Admin::new(client.clone())
        .describe_topic("z")
        .await
        .unwrap();
    assert_eq!(description.partitions[0].high_watermark, 1);
    assert_serving(&broker, &client, "batches that do not decompress").await;
}

/// One produce request's compressed batches may decompress to
/// `MAX_DECOMPRESSED_REQUEST_BYTES` in all: nine batches of one 7.5 MiB
/// record each (a few KiB compressed) pass it with the ninth, the tenth is
/// refused, and the next request starts afresh.
#[tokio::test]
async fn a_produce_request_s_decompression_is_bounded() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    broker.create_topic("z", 1).await;
    let zeros = vec![0u8; 7 * 1024 * 1024 + 512 * 1024];
    let mut builder = BatchBuilder::default();
    builder
        .push(&NewRecord {
            key: None,
            value: Some(&zeros),
            headers: &[],
            timestamp: 1_700_000_000_000,
        })
        .expect("fits");
    let batch = compress(&builder.finish(), Compression::Zstd).expect("compress");
    assert!(batch.len() < 64 * 1024);
    let results = produce_raw(&client, "z", vec![(0, batch.clone()); 10]).await;
    for result in &results[..9] {
        assert!(result.outcome.is_ok(), "{result:?}");
    }
    let refused_last = refused(&results[9]);
    assert_eq!(refused_last.code, ErrorCode::BatchTooLarge);
    assert!(refused_last.message.contains("in all"), "{refused_last:?}");
    let again = produce_raw(&client, "z", vec![(0, batch)]).await;
    assert_eq!(again[0].outcome, Ok(9));
}

// ---------------------------------------------------------------------------
// Topic administration
// ---------------------------------------------------------------------------

#[tokio::test]
async fn invalid_topic_names_are_refused() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    let too_long = "a".repeat(MAX_TOPIC_NAME_BYTES + 1);
    for name in [
        "",
        ".",
        "..",
        "with space",
        "slash/name",
        "ümlaut",
        "tab\t",
        &too_long,
    ] {
        let e = admin
            .create_topic(name, 1, TopicConfig::default())
            .await
            .unwrap_err();
        assert_eq!(code_of(&e), ErrorCode::InvalidTopicName, "{name:?}");
    }
    // The longest legal name, and every legal character, are accepted.
    let longest = "b".repeat(MAX_TOPIC_NAME_BYTES);
    admin
        .create_topic(&longest, 1, TopicConfig::default())
        .await
        .unwrap();
    admin
        .create_topic("Az09._-", 1, TopicConfig::default())
        .await
        .unwrap();
    let names: Vec<String> = admin
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["Az09._-".to_owned(), longest]);
    assert_serving(&broker, &client, "invalid topic names").await;
}

#[tokio::test]
async fn creating_a_topic_twice_is_refused_and_keeps_the_first() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    admin
        .create_topic("dup", 3, TopicConfig::default())
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    producer
        .send(ProducerRecord::new("dup", "before").partition(2))
        .await
        .unwrap();
    for partitions in [3, 5] {
        let config = TopicConfig {
            retention_ms: Some(1),
            ..TopicConfig::default()
        };
        let e = admin
            .create_topic("dup", partitions, config)
            .await
            .unwrap_err();
        assert_eq!(code_of(&e), ErrorCode::TopicAlreadyExists);
    }
    // The first topic, its settings and its data are untouched.
    let description = admin.describe_topic("dup").await.unwrap();
    assert_eq!(description.partitions.len(), 3);
    assert_eq!(description.config, TopicConfig::default());
    let records = read_from(&client, "dup", 2, 0, 1).await;
    assert_eq!(records[0].value_bytes(), b"before");
    assert_serving(&broker, &client, "topic already exists").await;
}

#[tokio::test]
async fn partition_counts_outside_the_range_are_refused() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    for partitions in [0, MAX_PARTITIONS_PER_TOPIC + 1, u32::MAX] {
        let e = admin
            .create_topic("p", partitions, TopicConfig::default())
            .await
            .unwrap_err();
        assert_eq!(code_of(&e), ErrorCode::InvalidPartitions, "{partitions}");
    }
    // Refused creates leave no topic behind.
    let e = admin.describe_topic("p").await.unwrap_err();
    assert_eq!(code_of(&e), ErrorCode::UnknownTopic);
    // The bounds themselves are fine.
    admin
        .create_topic("p", MAX_PARTITIONS_PER_TOPIC, TopicConfig::default())
        .await
        .unwrap();
    let description = admin.describe_topic("p").await.unwrap();
    assert_eq!(
        description.partitions.len(),
        MAX_PARTITIONS_PER_TOPIC as usize
    );
    assert_serving(&broker, &client, "invalid partitions").await;
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

#[tokio::test]
async fn raw_frames_get_version_request_kind_and_size_errors() {
    let broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;

    // A known kind in a version the broker does not speak: those around
    // the one it speaks, 0, and the largest.
    let served = DescribeTopicRequest::VERSION;
    for version in [0u16, served - 1, served + 1, u16::MAX] {
        let mut bytes = encode_request(&DescribeTopicRequest { name: "t".into() }, 0).unwrap();
        bytes[6..8].copy_from_slice(&version.to_be_bytes());
        let error = error_reply(raw.send(&bytes).await);
        assert_eq!(
            error.code,
            ErrorCode::UnsupportedVersion,
            "version {version}"
        );
    }

    // A head that is not postcard for its kind: a varint that never ends.
    let create = RequestKind::CreateTopic;
    let error = error_reply(
        raw.send(&frame(create as u16, create.version(), &[0xFF; 11], &[]))
            .await,
    );
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    // A valid head with a stray byte after it.
    let mut head = encode_request(&DescribeTopicRequest { name: "t".into() }, 0).unwrap();
    head.drain(..HEADER_BYTES);
    head.push(0);
    let describe = RequestKind::DescribeTopic.version();
    let error = error_reply(raw.send(&frame(6, describe, &head, &[])).await);
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    // A body on a kind that takes none.
    head.pop();
    let error = error_reply(raw.send(&frame(6, describe, &head, b"body")).await);
    assert_eq!(error.code, ErrorCode::InvalidRequest);

    // Kinds the broker does not know, with a well-formed frame around them.
    for kind in [0u16, 500, 999, u16::MAX] {
        let error = error_reply(raw.send(&frame(kind, 1, &head, &[])).await);
        assert_eq!(error.code, ErrorCode::UnknownRequestKind, "kind {kind}");
    }

    // A length prefix above the frame limit, refused from the header alone.
    for len in [MAX_FRAME_BYTES + 1, u32::MAX] {
        let mut bytes = FrameHeader::for_parts(6, 1, head.len(), 0)
            .unwrap()
            .to_bytes()
            .to_vec();
        bytes[0..4].copy_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&head);
        let error = error_reply(raw.send(&bytes).await);
        assert_eq!(error.code, ErrorCode::FrameTooLarge, "len {len}");
        assert_eq!(
            error.detail,
            ErrorDetail::Size {
                size: u64::from(len),
                max: u64::from(MAX_FRAME_BYTES),
            }
        );
    }

    // The raw connection itself still works, and so does the SDK.
    assert_eq!(raw_list_topics(&raw).await, vec!["t".to_owned()]);
    let client = broker.client().await;
    assert_serving(&broker, &client, "bad frames").await;
}

// ---------------------------------------------------------------------------
// Connections and shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_with_a_code() {
    let broker = TestBroker::with_max_connections(1).await;
    // Everything below goes through this one connection: the harness's
    // helpers would each open another.
    let first = broker.client().await;
    Admin::new(first.clone())
        .create_topic("limit", 1, TopicConfig::default())
        .await
        .unwrap();

    for attempt in 0..3 {
        // The broker completes the handshake only to close the connection
        // with the code, so the refusal shows either at connect or at the
        // first request.
        let error = match Client::connect(broker.client_config()).await {
            Err(e) => e,
            Ok(second) => Admin::new(second)
                .list_topics()
                .await
                .expect_err("a second connection must be refused"),
        };
        assert!(
            matches!(error, ClientError::Connection { .. }),
            "attempt {attempt}: {error:?}"
        );
        assert_eq!(
            error.code(),
            Some(ErrorCode::TooManyConnections),
            "attempt {attempt}: {error:?}"
        );
    }

    // The connection that holds the slot is unaffected.
    assert_serving_on(&first, "too many connections").await;
    let names: Vec<String> = Admin::new(first.clone())
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec![ALIVE.to_owned(), "limit".to_owned()]);
}

#[tokio::test]
async fn requests_after_shutdown_fail_with_shutting_down() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    admin
        .create_topic("kept", 1, TopicConfig::default())
        .await
        .unwrap();
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    producer
        .send(ProducerRecord::new("kept", "durable"))
        .await
        .unwrap();

    broker.shutdown().await;
    let error = admin.describe_topic("kept").await.unwrap_err();

    // The broker starts again on the same data and serves it.
    broker.restart().await;
    let fresh = broker.client().await;
    let records = read_from(&fresh, "kept", 0, 0, 1).await;
    assert_eq!(records[0].value_bytes(), b"durable");
    assert_serving_on(&fresh, "restart").await;

    // The broker closes its connections with ShuttingDown as the close code
    // (`Server::shutdown`), which the SDK reports as the error's code.
    assert!(matches!(error, ClientError::Connection { .. }), "{error:?}");
    assert_eq!(error.code(), Some(ErrorCode::ShuttingDown), "{error:?}");
}

/// Polls `future` once, so that it starts (here: opens its QUIC stream).
async fn start<F: Future>(future: std::pin::Pin<&mut F>) {
    let mut future = Some(future);
    poll_fn(|cx| {
        if let Some(f) = future.take() {
            assert!(f.poll(cx).is_pending(), "a long poll cannot be done yet");
        }
        Poll::Ready(())
    })
    .await;
}

#[tokio::test]
async fn long_poll_in_flight_at_shutdown_is_answered() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    Admin::new(client.clone())
        .create_topic("wait", 1, TopicConfig::default())
        .await
        .unwrap();
    // A fetch at the high watermark of an empty partition waits for data.
    let request = FetchRequest {
        member: None,
        max_wait_ms: 30_000,
        min_bytes: 1,
        max_bytes: 1 << 20,
        partitions: vec![FetchPartition {
            topic: "wait".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
        }],
        module: None,
    };
    let mut fetch = pin!(client.request(&request, Vec::new()));
    start(fetch.as_mut()).await;
    // A later request on the same connection gets a higher stream id; the
    // broker accepts streams in id order, so once this one is answered the
    // fetch is in the broker's hands, and shutdown waits for it.
    Admin::new(client.clone())
        .describe_topic("wait")
        .await
        .unwrap();

    broker.shutdown().await;
    // `Server::shutdown`: in-flight requests finish, long polls return
    // early. The fetch is answered, empty, or refused with ShuttingDown if
    // the broker had not dispatched it yet; it is not cut off.
    match fetch.await {
        Ok((response, body)) => {
            assert!(body.is_empty());
            let data = response.partitions[0].outcome.clone().unwrap();
            assert_eq!(data.bytes, 0);
            assert_eq!(data.high_watermark, 0);
        }
        Err(e) => assert_eq!(e.code(), Some(ErrorCode::ShuttingDown), "{e:?}"),
    }
}

// ---------------------------------------------------------------------------
// Consumer groups
// ---------------------------------------------------------------------------

fn join(group: &str, strategy: &str, session_timeout_ms: u64) -> JoinGroupRequest {
    JoinGroupRequest {
        group: group.into(),
        topics: vec!["g".into()],
        strategy: strategy.into(),
        session_timeout_ms,
        client_id: "errors".into(),
    }
}

fn commit_of(
    group: &str,
    member_id: &str,
    member_epoch: u64,
    partition: u32,
) -> CommitOffsetsRequest {
    CommitOffsetsRequest {
        group: group.into(),
        member_id: member_id.into(),
        member_epoch,
        offsets: vec![OffsetCommit {
            partition: PartitionRef {
                topic: "g".into(),
                partition,
            },
            offset: 0,
            metadata: None,
        }],
    }
}

/// The per-partition refusal of a one-partition commit.
async fn commit_error(client: &Client, request: &CommitOffsetsRequest) -> ErrorCode {
    let (response, _) = client
        .request(request, Vec::new())
        .await
        .expect("commit answered");
    response.results[0]
        .clone()
        .expect_err("commit refused")
        .code
}

#[tokio::test]
async fn group_join_errors() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let error = client
        .request(&join("grp", "range", 5), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(code_of(&error), ErrorCode::InvalidSessionTimeout);
    let error = client
        .request(&join("grp", "fastest", 10_000), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(code_of(&error), ErrorCode::InconsistentStrategy);
    assert_serving_on(&client, "join errors").await;
}

#[tokio::test]
async fn group_membership_errors() {
    let broker = TestBroker::start().await;
    broker.create_topic("g", 2).await;
    let client = broker.client().await;
    let (joined, _) = client
        .request(&join("grp", "range", 10_000), Vec::new())
        .await
        .unwrap();
    let error = client
        .request(&join("grp", "sticky", 10_000), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(code_of(&error), ErrorCode::InconsistentStrategy);
    let heartbeat = HeartbeatRequest {
        group: "grp".into(),
        member_id: joined.member_id.clone(),
        member_epoch: joined.member_epoch,
        owned: Vec::new(),
    };
    let (beat, _) = client.request(&heartbeat, Vec::new()).await.unwrap();
    assert_eq!(
        beat.assigned.len(),
        2,
        "the only member owns both partitions"
    );

    // Stale epoch, unknown member, and a partition the member does not own.
    let stale = commit_of("grp", &joined.member_id, beat.member_epoch + 7, 0);
    assert_eq!(
        commit_error(&client, &stale).await,
        ErrorCode::FencedMemberEpoch
    );
    let unknown = commit_of("grp", "nobody-1", beat.member_epoch, 0);
    assert_eq!(
        commit_error(&client, &unknown).await,
        ErrorCode::UnknownMember
    );
    let error = client
        .request(
            &HeartbeatRequest {
                member_id: "nobody-1".into(),
                ..heartbeat.clone()
            },
            Vec::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(code_of(&error), ErrorCode::UnknownMember);
    // A second member takes one partition; the first may not commit it then.
    let (_second, _) = client
        .request(&join("grp", "range", 10_000), Vec::new())
        .await
        .unwrap();
    let owned = beat.assigned.clone();
    let (beat, _) = client
        .request(
            &HeartbeatRequest {
                owned,
                ..heartbeat.clone()
            },
            Vec::new(),
        )
        .await
        .unwrap();
    let kept: Vec<u32> = beat.assigned.iter().map(|p| p.partition).collect();
    assert_eq!(kept.len(), 1, "range gives each member one partition");
    let given_up = 1 - kept[0];
    let (beat, _) = client
        .request(
            &HeartbeatRequest {
                member_epoch: beat.member_epoch,
                owned: beat.assigned.clone(),
                ..heartbeat.clone()
            },
            Vec::new(),
        )
        .await
        .unwrap();
    let foreign = commit_of("grp", &joined.member_id, beat.member_epoch, given_up);
    assert_eq!(
        commit_error(&client, &foreign).await,
        ErrorCode::NotAssigned
    );

    assert_serving_on(&client, "group membership errors").await;
}

#[tokio::test]
async fn group_operator_refusals() {
    let broker = TestBroker::start().await;
    broker.create_topic("g", 2).await;
    let client = broker.client().await;
    let (joined, _) = client
        .request(&join("grp", "range", 10_000), Vec::new())
        .await
        .unwrap();
    // Operator refusals while the group has members, and for unknown groups.
    let admin = Admin::new(client.clone());
    assert_eq!(
        code_of(&admin.delete_group("grp").await.unwrap_err()),
        ErrorCode::NonEmptyGroup
    );
    let error = admin
        .reset_offsets("grp", "g", quiver_client::ResetTarget::Offset(0))
        .await
        .unwrap_err();
    assert_eq!(code_of(&error), ErrorCode::NonEmptyGroup);
    assert_eq!(
        code_of(&admin.describe_group("nosuch").await.unwrap_err()),
        ErrorCode::GroupNotFound
    );
    assert_eq!(
        code_of(&admin.delete_group("nosuch").await.unwrap_err()),
        ErrorCode::GroupNotFound
    );
    let leave = LeaveGroupRequest {
        group: "grp".into(),
        member_id: joined.member_id.clone(),
    };
    client.request(&leave, Vec::new()).await.unwrap();
    // Empty now and without committed offsets, the group is gone; with an
    // offset committed outside membership it exists again and can go.
    assert_eq!(
        code_of(&admin.delete_group("grp").await.unwrap_err()),
        ErrorCode::GroupNotFound
    );
    admin
        .reset_offsets("grp", "g", quiver_client::ResetTarget::Offset(0))
        .await
        .unwrap();
    assert_eq!(admin.list_groups().await.unwrap(), vec!["grp".to_owned()]);
    admin.delete_group("grp").await.unwrap();
    assert!(admin.list_groups().await.unwrap().is_empty());
    assert_serving_on(&client, "group errors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_size_limits() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    for _ in 0..quiver_host::groups::MAX_MEMBERS_PER_GROUP {
        client
            .request(&join("big", "range", 10_000), Vec::new())
            .await
            .unwrap();
    }
    let error = client
        .request(&join("big", "range", 10_000), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(code_of(&error), ErrorCode::GroupMaxSizeReached);

    // Fill the broker up to its group limit, a few requests in flight at once.
    let groups = quiver_host::groups::MAX_GROUPS - 1;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let client = client.clone();
        tasks.spawn(async move {
            for i in (worker..groups).step_by(8) {
                let request = join(&format!("g{i}"), "range", 10_000);
                client.request(&request, Vec::new()).await.expect("join");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let error = client
        .request(&join("one-too-many", "range", 10_000), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(code_of(&error), ErrorCode::TooManyGroups);
    assert_serving_on(&client, "group limits").await;
}

/// A deploy request for the `filter` guest from `input`.
fn filter_deploy(name: &str, input: &str, params: &[(&str, &str)]) -> DeployTransformRequest {
    DeployTransformRequest {
        name: name.into(),
        module: "filter".into(),
        input: input.into(),
        default_output: None,
        outputs: Vec::new(),
        params: params
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        from: StartFrom::Earliest,
        on_error: OnError::Stop,
        deadline_ms: None,
        memory_bytes: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_refusals() {
    let broker = TestBroker::start().await;
    broker.create_topic("t-in", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    assert_eq!(
        code_of(&admin.transform_status("nosuch").await.unwrap_err()),
        ErrorCode::UnknownTransform
    );
    admin
        .upload_module("filter", quiver_tests::guest_component("filter").into())
        .await
        .unwrap();
    // `init` refuses an unknown parameter: the deploy fails and nothing stays.
    let bad = filter_deploy(
        "t",
        "t-in",
        &[("field", "a"), ("equals", "b"), ("bogus", "1")],
    );
    let error = admin.deploy_transform(bad).await.unwrap_err();
    assert_eq!(code_of(&error), ErrorCode::ModuleFailed, "{error}");
    assert!(admin.list_transforms().await.unwrap().is_empty());
    let good = filter_deploy("t", "t-in", &[("field", "a"), ("equals", "b")]);
    admin.deploy_transform(good.clone()).await.unwrap();
    assert_eq!(
        code_of(&admin.deploy_transform(good).await.unwrap_err()),
        ErrorCode::TransformExists
    );
    assert_eq!(
        code_of(&admin.delete_module("filter").await.unwrap_err()),
        ErrorCode::ModuleInUse
    );
    for used in ["t-in", "t-out"] {
        assert_eq!(
            code_of(&admin.delete_topic(used).await.unwrap_err()),
            ErrorCode::TopicInUse,
            "{used}"
        );
    }
    // Once the transform is gone the module can go too.
    admin
        .control_transform("t", TransformAction::Delete)
        .await
        .unwrap();
    admin.delete_module("filter").await.unwrap();
    assert_serving(&broker, &client, "transform errors").await;
}
