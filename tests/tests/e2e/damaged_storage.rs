//! A damaged database through a real broker (issue 9, item 3): a batch
//! row lost below the high watermark (as a corrupted B-tree key loses it)
//! makes a consumer reading there fail with a storage error naming the
//! topic, partition and offset, instead of waiting forever on an empty
//! answer.

use std::time::Duration;

use quiver_client::{
    Consumer, ConsumerConfig, ErrorCode, Offset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use quiver_tests::TestBroker;

/// The batches table as the broker declares it (host/src/storage/tables.rs).
const BATCHES: redb::TableDefinition<'_, (u64, u32, u64), &[u8]> =
    redb::TableDefinition::new("batches");

#[tokio::test]
async fn a_lost_batch_stops_the_consumer_with_a_storage_error() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    for values in [&["a", "b"][..], &["c"], &["d", "e"]] {
        for value in values {
            producer
                .enqueue(ProducerRecord::new("t", *value).partition(0))
                .await
                .expect("enqueue");
        }
        producer.flush().await.expect("one batch acknowledged");
    }
    drop(producer);
    broker.shutdown().await;
    {
        let db = redb::Database::open(broker.data_dir().join("quiver.redb")).expect("open");
        let txn = db.begin_write().expect("write");
        txn.open_table(BATCHES)
            .expect("batches")
            .retain(|key, _| key.2 != 2)
            .expect("remove the batch at offset 2");
        txn.commit().expect("commit");
    }
    broker.restart().await;

    let mut consumer = Consumer::new(
        broker.client().await,
        ConsumerConfig {
            start: Offset::Earliest,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign([TopicPartition::new("t", 0)]);
    let first = consumer
        .poll(Duration::from_secs(5))
        .await
        .expect("before the hole");
    let values: Vec<&[u8]> = first.iter().map(|r| &r.value[..]).collect();
    assert_eq!(values, [&b"a"[..], b"b"]);
    let error = consumer
        .poll(Duration::from_secs(5))
        .await
        .expect_err("the hole is an error");
    assert_eq!(error.code(), Some(ErrorCode::StorageError), "{error}");
    assert!(error.to_string().contains("t/0 at offset 2"), "{error}");
}
