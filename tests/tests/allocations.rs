//! Heap allocations per produced record in the SDK producer, counted (never
//! timed), so that the hot path cannot silently grow: a regression guard
//! that runs in CI. Its own test binary, since it replaces the global
//! allocator with dhat's counting one; the broker runs as a child process,
//! so only the client's allocations are counted.

use bytes::Bytes;
use quiver_client::{Admin, Producer, ProducerConfig, ProducerRecord, TopicConfig, TopicName};
use quiver_tests::BrokerProcess;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Records produced while counting (after a warm-up of the same size).
const RECORDS: u64 = 50_000;

/// Allocations per record, at most: a batch of 1,000 records may allocate
/// (its buffer, its request, its acknowledgement), a record may not.
const MAX_ALLOCATIONS_PER_RECORD: f64 = 0.05;

#[test]
fn producing_does_not_allocate_per_record() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let per_record = runtime.block_on(async {
        let client = broker.client().await;
        Admin::new(client.clone())
            .create_topic("t", 4, TopicConfig::default())
            .await
            .expect("create");
        // Batches leave full (1,000 records), not when a timer fires, so
        // the count does not depend on the machine's speed.
        let config = ProducerConfig {
            linger: std::time::Duration::from_mins(1),
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client, config);
        let topic = TopicName::from("t");
        let value = Bytes::from(vec![b'x'; 100]);
        produce(&producer, &topic, &value).await;
        let before = dhat::HeapStats::get().total_blocks;
        produce(&producer, &topic, &value).await;
        let after = dhat::HeapStats::get().total_blocks;
        (after - before) as f64 / RECORDS as f64
    });
    assert!(
        per_record <= MAX_ALLOCATIONS_PER_RECORD,
        "{per_record:.3} allocations per produced record (at most {MAX_ALLOCATIONS_PER_RECORD})"
    );
}

/// Produces [`RECORDS`] records as an application would: enqueue each,
/// keep every 16th acknowledgement, flush, await them.
async fn produce(producer: &Producer, topic: &TopicName, value: &Bytes) {
    let mut acks = Vec::with_capacity(RECORDS as usize / 16 + 1);
    for i in 0..RECORDS {
        let ack = producer
            .enqueue(ProducerRecord::new(topic.clone(), value.clone()))
            .await
            .expect("enqueue");
        if i % 16 == 0 {
            acks.push(ack);
        }
    }
    producer.flush().await.expect("flush");
    for ack in acks {
        ack.await.expect("acknowledged");
    }
}
