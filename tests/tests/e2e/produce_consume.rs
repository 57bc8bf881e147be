//! Produce and consume through the SDK against a real broker: per-partition
//! order, per-key stickiness, explicit and round-robin partitioning, headers
//! and timestamps, compressed batches with every codec, and data surviving
//! a restart with offsets continuing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use quiver_client::partitioner::partition_for_key;
use quiver_client::{
    Admin, Client, Compression, Consumer, ConsumerConfig, ConsumerRecord,
    MAX_DECOMPRESSED_POLL_BYTES, Offset, Producer, ProducerConfig, ProducerRecord,
    TopicCompression, TopicConfig, TopicPartition,
};
use quiver_tests::RecordValue as _;
use quiver_tests::kafka::{stored_batches, stored_codecs};
use quiver_tests::{BrokerProcess, TestBroker};

const POLL: Duration = Duration::from_millis(200);

/// Reads every partition of `topic` from the start up to `expected` records.
async fn consume_all(client: Client, topic: &str, expected: usize) -> Vec<ConsumerRecord> {
    let config = ConsumerConfig {
        start: Offset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    consumer.assign_topic(topic).await.expect("assign");
    let mut records = Vec::new();
    while records.len() < expected {
        let batch = consumer.poll(Duration::from_secs(10)).await.expect("poll");
        assert!(
            !batch.is_empty(),
            "stalled at {} of {expected}",
            records.len()
        );
        records.extend(batch);
    }
    // Nothing more than what was produced.
    assert!(consumer.poll(POLL).await.expect("poll").is_empty());
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_keep_order_per_partition_and_key() {
    let broker = TestBroker::start().await;
    broker.create_topic("click", 4).await;
    let producer = Producer::new(
        broker.client().await,
        ProducerConfig {
            batch_max_records: 50,
            ..ProducerConfig::default()
        },
    );
    let mut acks = Vec::new();
    for i in 0..2_000u32 {
        let user = format!("user-{}", i % 37);
        let record = ProducerRecord::new("click", format!("{user}:{i}")).key(user);
        acks.push(producer.enqueue(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut acked = Vec::new();
    for ack in acks {
        acked.push(ack.await.unwrap());
    }

    let records = consume_all(broker.client().await, "click", 2_000).await;
    assert_eq!(records.len(), 2_000);
    let mut by_partition: BTreeMap<u32, Vec<&ConsumerRecord>> = BTreeMap::new();
    for record in &records {
        by_partition
            .entry(record.partition)
            .or_default()
            .push(record);
    }
    // Offsets in each partition are 0, 1, 2, ... in order.
    for records in by_partition.values() {
        for (i, record) in records.iter().enumerate() {
            assert_eq!(record.offset, i as u64);
        }
    }
    // One key, one partition: Kafka's murmur2 partition; and per key the
    // sequence numbers arrive in the order they were sent.
    let mut last_seen: HashMap<String, (u32, u32)> = HashMap::new();
    for record in by_partition.values().flatten() {
        let key = String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap();
        assert_eq!(record.partition, partition_for_key(key.as_bytes(), 4));
        let value = String::from_utf8(record.value_bytes().to_vec()).unwrap();
        let seq: u32 = value.rsplit(':').next().unwrap().parse().unwrap();
        if let Some(&(partition, previous)) = last_seen.get(&key) {
            assert_eq!(partition, record.partition);
            assert!(seq > previous, "{key}: {seq} after {previous}");
        }
        last_seen.insert(key, (record.partition, seq));
    }
    assert_eq!(last_seen.len(), 37);
    // Every acknowledgement names where the record really is.
    let index: HashMap<(u32, u64), &ConsumerRecord> = records
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    for (i, ack) in acked.iter().enumerate() {
        let record = index[&(ack.partition, ack.offset)];
        assert!(record.value_bytes().ends_with(format!(":{i}").as_bytes()));
    }
}

#[tokio::test]
async fn explicit_round_robin_headers_and_timestamps() {
    let broker = TestBroker::start().await;
    broker.create_topic("t", 3).await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    let explicit = producer
        .send(
            ProducerRecord::new("t", "pinned")
                .partition(2)
                .header("source", "web")
                .timestamp(1_700_000_000_123),
        )
        .await
        .unwrap();
    assert_eq!((explicit.partition, explicit.offset), (2, 0));
    let mut partitions = Vec::new();
    for i in 0..6 {
        partitions.push(
            producer
                .send(ProducerRecord::new("t", format!("rr{i}")))
                .await
                .unwrap()
                .partition,
        );
    }
    partitions.sort_unstable();
    assert_eq!(
        partitions,
        vec![0, 0, 1, 1, 2, 2],
        "keyless records go round-robin"
    );

    let records = consume_all(broker.client().await, "t", 7).await;
    let pinned = records
        .iter()
        .find(|r| r.value_bytes() == b"pinned")
        .unwrap();
    assert_eq!(pinned.partition, 2);
    assert_eq!(pinned.timestamp, 1_700_000_000_123);
    assert_eq!(pinned.headers.len(), 1);
    assert_eq!(pinned.headers[0].key, "source");
    assert_eq!(pinned.headers[0].value.as_deref(), Some(&b"web"[..]));
    assert!(pinned.key.is_none());
    // Records without a timestamp get the producer's clock.
    assert!(
        records
            .iter()
            .filter(|r| r.value_bytes() != b"pinned")
            .all(|r| r.timestamp > 1_700_000_000_000)
    );
}

#[tokio::test]
async fn seek_earliest_latest_and_offset() {
    let broker = TestBroker::start().await;
    broker.create_topic("s", 1).await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    for i in 0..10 {
        producer
            .send(ProducerRecord::new("s", format!("v{i}")))
            .await
            .unwrap();
    }
    let mut consumer = Consumer::new(broker.client().await, ConsumerConfig::default());
    consumer.assign_topic("s").await.unwrap();
    let tp = consumer.assignment()[0].clone();

    consumer.seek(&tp, Offset::At(7)).unwrap();
    let records = consumer.poll(POLL).await.unwrap();
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![7, 8, 9]);
    assert_eq!(consumer.position(&tp), Some(10));

    consumer.seek(&tp, Offset::Earliest).unwrap();
    assert_eq!(consumer.poll(POLL).await.unwrap().len(), 10);

    consumer.seek(&tp, Offset::Latest).unwrap();
    assert!(consumer.poll(POLL).await.expect("poll").is_empty());
    producer
        .send(ProducerRecord::new("s", "new"))
        .await
        .unwrap();
    let records = consumer.poll(Duration::from_secs(10)).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].offset, records[0].value_bytes()),
        (10, &b"new"[..])
    );
}

#[tokio::test]
async fn restart_keeps_records_and_continues_offsets() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("r", 2).await;
    {
        let producer = Producer::new(broker.client().await, ProducerConfig::default());
        for i in 0..100 {
            producer
                .send(ProducerRecord::new("r", format!("a{i}")).partition(i % 2))
                .await
                .unwrap();
        }
    }
    broker.restart().await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    let next = producer
        .send(ProducerRecord::new("r", "after").partition(1))
        .await
        .unwrap();
    assert_eq!(next.offset, 50, "offsets continue after the restart");
    let records = consume_all(broker.client().await, "r", 101).await;
    assert_eq!(records.len(), 101);
    let description = broker.admin().await.describe_topic("r").await.unwrap();
    let watermarks: Vec<u64> = description
        .partitions
        .iter()
        .map(|p| p.high_watermark)
        .collect();
    assert_eq!(watermarks, vec![50, 51]);
}

#[tokio::test]
async fn long_poll_wakes_on_append() {
    let broker = TestBroker::start().await;
    broker.create_topic("lp", 2).await;
    let mut consumer = Consumer::new(broker.client().await, ConsumerConfig::default());
    consumer.assign_topic("lp").await.unwrap();
    // Resolve the positions (Latest = 0) with an empty poll first.
    assert!(
        consumer
            .poll(Duration::from_millis(10))
            .await
            .unwrap()
            .is_empty()
    );

    // A poll that may wait up to a minute; the append must end it.
    let waiting = tokio::spawn(async move {
        let records = consumer.poll(Duration::from_mins(1)).await.unwrap();
        (consumer, records)
    });
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    producer
        .send(ProducerRecord::new("lp", "wake").partition(1))
        .await
        .unwrap();
    let (_consumer, records) = waiting.await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].partition, records[0].value_bytes()),
        (1, &b"wake"[..])
    );
}

#[tokio::test]
async fn deleted_topic_is_gone_and_name_reusable() {
    let broker = TestBroker::start().await;
    broker.create_topic("d", 1).await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    producer
        .send(ProducerRecord::new("d", "old"))
        .await
        .unwrap();
    let admin = broker.admin().await;
    admin.delete_topic("d").await.unwrap();
    assert!(admin.list_topics().await.unwrap().is_empty());
    broker.create_topic("d", 1).await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    let ack = producer
        .send(ProducerRecord::new("d", "new"))
        .await
        .unwrap();
    assert_eq!(ack.offset, 0);
    let records = consume_all(broker.client().await, "d", 1).await;
    assert_eq!(records[0].value_bytes(), b"new");
}

#[tokio::test]
async fn log_append_time_topics_take_the_broker_clock() {
    let broker = TestBroker::start().await;
    let config = TopicConfig {
        timestamp_type: quiver_client::TimestampType::LogAppendTime,
        ..TopicConfig::default()
    };
    broker
        .admin()
        .await
        .create_topic("lat", 1, config)
        .await
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    producer
        .send(ProducerRecord::new("lat", "old clock").timestamp(1_000))
        .await
        .unwrap();
    let records = consume_all(broker.client().await, "lat", 1).await;
    assert!(
        records[0].timestamp >= before,
        "{} < {before}",
        records[0].timestamp
    );
}

/// The consumer sends its next fetch while the application handles the
/// last one; a seek, or records arriving while it long-polls, must neither
/// skip nor repeat a record.
#[tokio::test]
async fn reading_ahead_neither_skips_nor_repeats() {
    let broker = TestBroker::start().await;
    broker.create_topic("ahead", 2).await;
    let producer = Producer::new(
        broker.client().await,
        ProducerConfig {
            batch_max_records: 10,
            ..ProducerConfig::default()
        },
    );
    let mut acks = Vec::new();
    for i in 0..2_000_u32 {
        let record = ProducerRecord::new("ahead", format!("r{i}")).partition(i % 2);
        acks.push(producer.enqueue(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    for ack in acks {
        ack.await.unwrap();
    }
    // Small fetches: a few batches each, so the read takes many of them.
    let mut consumer = Consumer::new(
        broker.client().await,
        ConsumerConfig {
            start: Offset::Earliest,
            max_bytes: 2_048,
            partition_max_bytes: 1_024,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign_topic("ahead").await.unwrap();
    let p0 = TopicPartition::new("ahead", 0);
    let mut seen: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut seeked = false;
    let p1 = TopicPartition::new("ahead", 1);
    while !(seeked
        && consumer.position(&p0) == Some(1_000)
        && consumer.position(&p1) == Some(1_000))
    {
        let records = consumer.poll(Duration::from_secs(10)).await.unwrap();
        assert!(!records.is_empty(), "records stopped coming: {seen:?}");
        for r in &records {
            seen.entry(r.partition).or_default().push(r.offset);
        }
        if !seeked && seen.get(&0).is_some_and(|o| o.len() >= 300) {
            // A fetch from where the last one ended is on its way now.
            consumer.seek(&p0, Offset::At(100)).unwrap();
            seeked = true;
        }
    }
    // Partition 0: a contiguous start, then from 100 on after the seek.
    let before_seek = seen[&0].len() - 900;
    assert!(before_seek >= 300, "{before_seek}");
    let expected_p0: Vec<u64> = (0..before_seek as u64).chain(100..1_000).collect();
    assert_eq!(seen[&0], expected_p0, "partition 0 after the seek");
    assert_eq!(seen[&1], (0..1_000).collect::<Vec<u64>>(), "partition 1");

    // Caught up, the read-ahead long-polls; what arrives comes once.
    assert!(consumer.poll(POLL).await.unwrap().is_empty());
    producer
        .send(ProducerRecord::new("ahead", "late").partition(1))
        .await
        .unwrap();
    let mut late = Vec::new();
    while late.is_empty() {
        late = consumer.poll(Duration::from_secs(10)).await.unwrap();
    }
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].partition, late[0].offset), (1, 1_000));
    assert!(consumer.poll(POLL).await.unwrap().is_empty());
}

/// The SDK's producer compresses with every codec and its consumer reads
/// each record back (keys, values, headers, order); a topic left to the
/// producer stores each batch as sent, and one with `compression.type=lz4`
/// stores lz4 whatever arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_batches_round_trip_and_a_topic_can_recompress_them() {
    const PER_CODEC: usize = 200;
    let dir = tempfile::tempdir().expect("temp dir");
    let process = BrokerProcess::start(dir.path()).await;
    let kafka = process.kafka_addr().expect("a Kafka listener");
    let client = process.client().await;
    let admin = Admin::new(client.clone());
    let lz4 = TopicConfig {
        compression: TopicCompression::Codec(Compression::Lz4),
        ..TopicConfig::default()
    };
    admin
        .create_topic("as-sent", 1, TopicConfig::default())
        .await
        .expect("create");
    admin.create_topic("lz4", 1, lz4).await.expect("create");
    let mut sent = Vec::new();
    for codec in Compression::ALL {
        let config = ProducerConfig {
            compression: codec,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client.clone(), config);
        for i in 0..PER_CODEC {
            let value = format!(r#"{{"codec":"{codec}","page":"/p{}","n":{i}}}"#, i % 7);
            for topic in ["as-sent", "lz4"] {
                let mut record = ProducerRecord::new(topic, value.clone())
                    .header("codec", codec.name())
                    .partition(0);
                if !i.is_multiple_of(3) {
                    record = record.key(format!("user-{}", i % 11));
                }
                drop(producer.enqueue(record).await.expect("enqueue"));
            }
            sent.push(value);
        }
        producer.flush().await.expect("flush");
    }
    for topic in ["as-sent", "lz4"] {
        let read = consume_all(client.clone(), topic, sent.len()).await;
        let values: Vec<String> = read
            .iter()
            .map(|r| String::from_utf8(r.value_bytes().to_vec()).expect("UTF-8"))
            .collect();
        assert_eq!(values, sent, "{topic}");
        for (i, record) in read.iter().enumerate() {
            let n = i % PER_CODEC;
            let key = (!n.is_multiple_of(3)).then(|| format!("user-{}", n % 11));
            assert_eq!(record.key.as_deref(), key.as_deref().map(str::as_bytes));
            assert_eq!(record.headers.len(), 1);
        }
    }
    let codecs = tokio::task::spawn_blocking(move || {
        (
            stored_codecs(kafka, "as-sent", 1),
            stored_codecs(kafka, "lz4", 1),
        )
    })
    .await
    .expect("fetch");
    assert_eq!(codecs.0, Compression::ALL.into_iter().collect());
    assert_eq!(codecs.1, [Compression::Lz4].into_iter().collect());
    let described = admin.describe_topic("lz4").await.expect("describe");
    assert_eq!(described.config.compression, lz4.compression);
}

/// A poll decompresses about `MAX_DECOMPRESSED_POLL_BYTES`: twelve batches
/// of one 7.5 MiB record each, a few KiB compressed and fetched at once,
/// are handed out over several polls, each record once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_decompresses_a_bounded_amount() {
    const RECORD: usize = 7 * 1024 * 1024 + 512 * 1024;
    let broker = TestBroker::start().await;
    broker.create_topic("big", 1).await;
    let config = ProducerConfig {
        compression: Compression::Zstd,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(broker.client().await, config);
    let value = bytes::Bytes::from(vec![7u8; RECORD]);
    for _ in 0..12 {
        producer
            .send(ProducerRecord::new("big", value.clone()))
            .await
            .expect("send");
    }
    let config = ConsumerConfig {
        start: Offset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(broker.client().await, config);
    consumer.assign_topic("big").await.expect("assign");
    let mut offsets = Vec::new();
    let mut polls = Vec::new();
    while offsets.len() < 12 {
        let batch = consumer.poll(Duration::from_secs(10)).await.expect("poll");
        assert!(!batch.is_empty(), "stalled at {}", offsets.len());
        assert!(batch.iter().all(|r| r.value_bytes().len() == RECORD));
        polls.push(batch.len());
        offsets.extend(batch.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, (0..12).collect::<Vec<u64>>());
    let most = MAX_DECOMPRESSED_POLL_BYTES.div_ceil(RECORD);
    assert!(
        polls.iter().all(|&n| n <= most),
        "records per poll: {polls:?}"
    );
}

/// The SDK's producer is idempotent by default: every stored batch carries
/// its producer id and epoch, and each partition's batches number their
/// records from 0 without a gap; a producer with idempotence off stamps
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_carry_the_producer_s_id_and_gapless_sequences() {
    let dir = tempfile::tempdir().expect("temp dir");
    let process = BrokerProcess::start(dir.path()).await;
    let kafka = process.kafka_addr().expect("a Kafka listener");
    let client = process.client().await;
    let admin = Admin::new(client.clone());
    for topic in ["stamped", "plain"] {
        admin
            .create_topic(topic, 2, TopicConfig::default())
            .await
            .expect("create");
    }
    let small_batches = ProducerConfig {
        batch_max_records: 7,
        ..ProducerConfig::default()
    };
    let idempotent = Producer::new(client.clone(), small_batches.clone());
    let plain = Producer::new(
        client.clone(),
        ProducerConfig {
            idempotence: false,
            ..small_batches
        },
    );
    for i in 0..200u32 {
        for (producer, topic) in [(&idempotent, "stamped"), (&plain, "plain")] {
            let record = ProducerRecord::new(topic, i.to_string()).partition(i % 2);
            drop(producer.enqueue(record).await.expect("enqueue"));
        }
    }
    idempotent.flush().await.expect("flush");
    plain.flush().await.expect("flush");
    let (stamped, unstamped) = tokio::task::spawn_blocking(move || {
        (
            stored_batches(kafka, "stamped", 2),
            stored_batches(kafka, "plain", 2),
        )
    })
    .await
    .expect("fetch");
    assert!(
        unstamped.iter().all(|b| b.producer.is_none()),
        "{unstamped:?}"
    );
    let first = stamped[0].producer.expect("a stamped batch");
    for partition in 0..2 {
        let mut next = 0;
        for batch in stamped.iter().filter(|b| b.partition == partition) {
            let producer = batch.producer.expect("a stamped batch");
            assert_eq!(
                (producer.producer_id, producer.epoch),
                (first.producer_id, 0)
            );
            assert_eq!(producer.base_sequence, next, "{batch:?}");
            next += batch.records as i32;
        }
        assert_eq!(next, 100);
    }
}
