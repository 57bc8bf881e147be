//! Retention and time lookups through a real broker: an injected clock
//! drives time retention, size retention keeps the newest bytes, readers
//! below the new start get `OffsetOutOfRange` with the range, and consumers
//! can start from a timestamp.

use std::sync::Arc;
use std::time::Duration;

use quiver_client::{
    AlterTopicRequest, Change, Consumer, ConsumerConfig, ErrorCode, ErrorDetail, Offset, Producer,
    ProducerConfig, ProducerRecord, TopicConfig, TopicPartition,
};
use quiver_host::clock::ManualClock;
use quiver_tests::RecordValue;
use quiver_tests::TestBroker;

const HOUR_MS: i64 = 3_600_000;
const NOW_MS: i64 = 1_800_000_000_000;

async fn broker_at(clock: &Arc<ManualClock>) -> TestBroker {
    let clock = Arc::clone(clock);
    TestBroker::start_with(move |config| {
        config.clock = clock.clone();
        // Passes run when the test asks, not on their own.
        config.retention_check_interval = Duration::from_hours(1);
    })
    .await
}

/// Sends one record per timestamp, each in its own batch.
async fn produce_at(broker: &TestBroker, topic: &str, timestamps: &[i64]) {
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    for (i, &ts) in timestamps.iter().enumerate() {
        producer
            .send(
                ProducerRecord::new(topic, format!("r{i}"))
                    .partition(0)
                    .timestamp(ts),
            )
            .await
            .expect("produce");
    }
}

#[tokio::test]
async fn time_retention_follows_the_clock_and_fences_old_offsets() {
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let broker = broker_at(&clock).await;
    let config = TopicConfig {
        retention_ms: Some(2 * HOUR_MS as u64),
        ..TopicConfig::default()
    };
    broker
        .admin()
        .await
        .create_topic("events", 1, config)
        .await
        .unwrap();
    produce_at(
        &broker,
        "events",
        &[
            NOW_MS - 3 * HOUR_MS,
            NOW_MS - 150 * 60_000,
            NOW_MS - HOUR_MS,
            NOW_MS,
        ],
    )
    .await;

    // Two records are older than two hours.
    let report = broker.broker().enforce_retention().await.unwrap();
    assert_eq!(report.batches, 2);
    let description = broker.admin().await.describe_topic("events").await.unwrap();
    assert_eq!(description.partitions[0].log_start_offset, 2);
    assert_eq!(description.partitions[0].high_watermark, 4);

    let mut consumer = Consumer::new(broker.client().await, ConsumerConfig::default());
    consumer.assign([TopicPartition::new("events", 0)]);
    consumer
        .seek(&TopicPartition::new("events", 0), Offset::At(1))
        .unwrap();
    let error = consumer.poll(Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::OffsetOutOfRange));
    let quiver_client::ClientError::Broker(wire) = error else {
        panic!("not a broker error: {error}")
    };
    assert_eq!(
        wire.detail,
        ErrorDetail::OffsetRange {
            log_start_offset: 2,
            high_watermark: 4
        }
    );
    // Earliest now means 2.
    consumer.seek_all(Offset::Earliest);
    let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![2, 3]);

    // Ninety minutes later one more record is past the limit.
    clock.advance(90 * 60_000);
    assert_eq!(
        broker.broker().enforce_retention().await.unwrap().batches,
        1
    );
}

#[tokio::test]
async fn altered_size_retention_keeps_the_newest_records() {
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let broker = broker_at(&clock).await;
    broker.create_topic("sized", 1).await;
    produce_at(&broker, "sized", &[NOW_MS; 10]).await;
    // No limit yet: nothing goes.
    assert_eq!(
        broker.broker().enforce_retention().await.unwrap().batches,
        0
    );

    let admin = broker.admin().await;
    let description = admin.describe_topic("sized").await.unwrap();
    assert_eq!(description.partitions[0].high_watermark, 10);
    // Each single-record batch here is 70 bytes; keep at least 3 of them.
    let altered = admin
        .alter_topic(AlterTopicRequest {
            name: "sized".into(),
            retention_bytes: Change::Set(3 * 70),
            ..AlterTopicRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(altered.config.retention_bytes, Some(210));
    let report = broker.broker().enforce_retention().await.unwrap();
    assert_eq!((report.batches, report.bytes), (7, 7 * 70));
    let mut consumer = Consumer::new(
        broker.client().await,
        ConsumerConfig {
            start: Offset::Earliest,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign_topic("sized").await.unwrap();
    let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
    let values: Vec<&[u8]> = records.iter().map(RecordValue::value_bytes).collect();
    assert_eq!(values, vec![&b"r7"[..], b"r8", b"r9"]);

    // Clearing the limit stops further deletion.
    admin
        .alter_topic(AlterTopicRequest {
            name: "sized".into(),
            retention_bytes: Change::Clear,
            partitions: Some(2),
            ..AlterTopicRequest::default()
        })
        .await
        .unwrap();
    produce_at(&broker, "sized", &[NOW_MS; 5]).await;
    assert_eq!(
        broker.broker().enforce_retention().await.unwrap().batches,
        0
    );
    assert_eq!(
        admin
            .describe_topic("sized")
            .await
            .unwrap()
            .partitions
            .len(),
        2
    );
}

#[tokio::test]
async fn consumers_start_from_a_timestamp() {
    let clock = Arc::new(ManualClock::new(NOW_MS));
    let broker = broker_at(&clock).await;
    broker.create_topic("clicks", 1).await;
    produce_at(&broker, "clicks", &[1_000, 2_000, 3_000, 4_000]).await;
    let mut consumer = Consumer::new(broker.client().await, ConsumerConfig::default());
    consumer.assign_topic("clicks").await.unwrap();
    consumer.seek_to_timestamp(2_500);
    let records = consumer.poll(Duration::from_secs(5)).await.unwrap();
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![2, 3]);
    // A time after every record: the end, and nothing to read.
    consumer.seek_to_timestamp(9_000);
    assert!(
        consumer
            .poll(Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        consumer.position(&TopicPartition::new("clicks", 0)),
        Some(4)
    );
}
