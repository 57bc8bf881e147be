//! Fetch-time modules through a real broker: the real `filter` guest runs in
//! the broker on each fetched record, so only matches cross the network,
//! with their original offsets, and the consumer moves past what was
//! dropped. Through the SDK and the CLI; unknown and failing modules fail
//! the fetch with a typed code; a large answer is spread over fetches.

use std::time::Duration;

use quiver_client::{
    Client, Compression, Consumer, ConsumerConfig, ConsumerRecord, ErrorCode, FetchModule, Offset,
    Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use quiver_tests::RecordValue as _;
use quiver_tests::{TestBroker, guest_component, quiver_command};

/// Records produced; every third is an upload, the rest clicks.
const EVENTS: u64 = 300;

/// A broker with topic `topic` and the `filter` module uploaded, and a
/// client.
async fn with_filter_module(topic: &str, partitions: u32) -> (TestBroker, Client) {
    let broker = TestBroker::start().await;
    broker.create_topic(topic, partitions).await;
    let client = broker.client().await;
    broker
        .admin()
        .await
        .upload_module("filter", guest_component("filter").into())
        .await
        .expect("upload the filter module");
    (broker, client)
}

fn filter(equals: &str) -> FetchModule {
    FetchModule {
        name: "filter".into(),
        params: vec![
            ("field".into(), "action".into()),
            ("equals".into(), equals.into()),
        ],
    }
}

async fn produce_events(client: &Client) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut acks = Vec::new();
    for i in 0..EVENTS {
        let action = if i % 3 == 0 { "upload" } else { "click" };
        let value = format!(
            r#"{{"user_id": {}, "action": "{action}", "n": {i}}}"#,
            i % 7
        );
        let record = ProducerRecord::new("events", value).key((i % 7).to_string());
        acks.push(producer.enqueue(record).await.expect("enqueued"));
    }
    producer.flush().await.expect("flushed");
    for ack in acks {
        ack.await.expect("acknowledged");
    }
    // The last record of each partition is an upload, so a filter for
    // clicks drops the tail of the log: the consumer must still get past it.
    for partition in 0..2 {
        let record = ProducerRecord::new("events", r#"{"action": "upload"}"#).partition(partition);
        producer.send(record).await.expect("acknowledged");
    }
}

/// Everything from the start of both partitions, polled until each
/// position reaches its high watermark.
async fn read_all(client: &Client, module: Option<FetchModule>) -> Vec<ConsumerRecord> {
    let config = ConsumerConfig {
        module,
        start: Offset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), config);
    let partitions: Vec<TopicPartition> =
        (0..2).map(|p| TopicPartition::new("events", p)).collect();
    consumer.assign(partitions.clone());
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        records.extend(
            consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("polled"),
        );
        let done = partitions.iter().all(|tp| {
            matches!(
                (consumer.position(tp), consumer.high_watermark(tp)),
                (Some(position), Some(hw)) if position >= hw
            )
        });
        if done {
            return records;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer did not reach the end"
        );
    }
}

fn summary(records: &[ConsumerRecord]) -> Vec<(u32, u64, Vec<u8>)> {
    records
        .iter()
        .map(|r| (r.partition, r.offset, r.value_bytes().to_vec()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_at_fetch_time_returns_only_matches_with_their_offsets() {
    let (mut broker, client) = with_filter_module("events", 2).await;
    produce_events(&client).await;

    let everything = read_all(&client, None).await;
    assert_eq!(everything.len() as u64, EVENTS + 2);
    let expected: Vec<_> = everything
        .iter()
        .filter(|r| {
            std::str::from_utf8(r.value_bytes())
                .unwrap()
                .contains(r#""click""#)
        })
        .cloned()
        .collect();
    assert_eq!(expected.len(), 200);

    let mut clicks = read_all(&client, Some(filter("click"))).await;
    clicks.sort_by_key(|r| (r.partition, r.offset));
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_by_key(|r| (r.partition, r.offset));
    assert_eq!(summary(&clicks), summary(&expected_sorted));
    // Keys and timestamps come through as stored.
    for (got, want) in clicks.iter().zip(&expected_sorted) {
        assert_eq!((&got.key, got.timestamp), (&want.key, want.timestamp));
    }

    // The CLI prints the same records.
    let output = quiver_command(broker.addr(), broker.ca())
        .args(["consume", "events", "--module", "filter"])
        .args(["--param", "field=action", "--param", "equals=click"])
        .args(["--format", "%p %o"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut printed: Vec<(u32, u64)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (p, o) = line.split_once(' ').unwrap();
            (p.parse().unwrap(), o.parse().unwrap())
        })
        .collect();
    printed.sort_unstable();
    let wanted: Vec<(u32, u64)> = expected_sorted
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();
    assert_eq!(printed, wanted);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_failing_fetch_modules_fail_the_fetch() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("events", 2).await;
    let client = broker.client().await;
    let admin = broker.admin().await;
    admin
        .upload_module("filter", guest_component("filter").into())
        .await
        .unwrap();
    admin
        .upload_module("looper", guest_component("looper").into())
        .await
        .unwrap();
    produce_events(&client).await;
    let fetch_error = |module: FetchModule| {
        let client = client.clone();
        async move {
            let config = ConsumerConfig {
                module: Some(module),
                start: Offset::Earliest,
                ..ConsumerConfig::default()
            };
            let mut consumer = Consumer::new(client, config);
            consumer.assign([TopicPartition::new("events", 0)]);
            consumer
                .poll(Duration::from_secs(5))
                .await
                .expect_err("the fetch fails")
                .code()
                .expect("a broker code")
        }
    };
    let unknown = FetchModule {
        name: "nosuch".into(),
        params: Vec::new(),
    };
    assert_eq!(fetch_error(unknown).await, ErrorCode::UnknownModule);
    let mut bad_params = filter("click");
    bad_params.params.push(("bogus".into(), "1".into()));
    assert_eq!(fetch_error(bad_params).await, ErrorCode::ModuleFailed);
    let looper = FetchModule {
        name: "looper".into(),
        params: Vec::new(),
    };
    assert_eq!(fetch_error(looper).await, ErrorCode::ModuleFailed);
    // The broker carries on: a plain read still returns everything.
    assert_eq!(read_all(&client, None).await.len() as u64, EVENTS + 2);
    broker.shutdown().await;
}

/// A fetch-time module's answer is bounded per fetch, not failed: five
/// partitions of six 900 KiB records, compressed to a few KiB each and so
/// read in one fetch, are kept by the filter (a call takes about 4 MiB of a
/// partition's input, so about 18 MiB for the five, more than one answer
/// may hold) and handed out over several fetches, each record once and in
/// order per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_is_spread_over_fetches() {
    const RECORD: usize = 900 * 1024;
    const PARTITIONS: u32 = 5;
    const PER_PARTITION: u64 = 6;
    let (_broker, client) = with_filter_module("big", PARTITIONS).await;
    let mut value = br#"{"action": "click", "pad": ""#.to_vec();
    value.resize(RECORD - 2, b'x');
    value.extend_from_slice(br#""}"#);
    let config = ProducerConfig {
        compression: Compression::Zstd,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client.clone(), config);
    for _ in 0..PER_PARTITION {
        for partition in 0..PARTITIONS {
            let record = ProducerRecord::new("big", value.clone()).partition(partition);
            producer.send(record).await.expect("acknowledged");
        }
    }
    let config = ConsumerConfig {
        module: Some(filter("click")),
        start: Offset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new("big", p))
        .collect();
    consumer.assign(partitions);
    let mut offsets = vec![Vec::new(); PARTITIONS as usize];
    let mut polls = 0;
    let total = PARTITIONS as usize * PER_PARTITION as usize;
    while offsets.iter().map(Vec::len).sum::<usize>() < total {
        let records = consumer.poll(Duration::from_secs(10)).await.expect("poll");
        assert!(!records.is_empty(), "stalled at {offsets:?}");
        for record in records {
            assert_eq!(record.value_bytes().len(), RECORD);
            offsets[record.partition as usize].push(record.offset);
        }
        polls += 1;
    }
    for partition_offsets in offsets {
        assert_eq!(partition_offsets, (0..PER_PARTITION).collect::<Vec<u64>>());
    }
    assert!(polls > 3, "27 MiB cannot fit three answers");
}
