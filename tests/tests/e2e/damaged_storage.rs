//! A damaged database through a real broker (issue 9, items 2 and 3): a
//! batch row lost below the high watermark (as a corrupted B-tree key loses
//! it) makes a consumer reading there fail with a storage error naming the
//! topic, partition and offset, instead of waiting forever on an empty
//! answer; a flipped byte makes `quiver serve` refuse the file at start.

use std::process::Command;
use std::time::Duration;

use quiver_client::{
    Consumer, ConsumerConfig, ErrorCode, Offset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use quiver_tests::RecordValue;
use quiver_tests::cli::run_quiver;
use quiver_tests::{TestBroker, quiver_bin};

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
    let values: Vec<&[u8]> = first.iter().map(RecordValue::value_bytes).collect();
    assert_eq!(values, [&b"a"[..], b"b"]);
    let error = consumer
        .poll(Duration::from_secs(5))
        .await
        .expect_err("the hole is an error");
    assert_eq!(error.code(), Some(ErrorCode::StorageError), "{error}");
    assert!(error.to_string().contains("t/0 at offset 2"), "{error}");
}

/// A byte flipped in a stored batch (issue 9, item 2): `quiver serve`
/// refuses to start on the file, naming it and the check to run, and
/// `quiver storage check` says what is wrong; on the sound file it says ok.
#[tokio::test]
async fn a_damaged_file_is_refused_at_start_and_storage_check_reports_it() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    for i in 0..50 {
        producer
            .send(ProducerRecord::new("t", format!("MARKER-{i:04}-").repeat(100)).partition(0))
            .await
            .expect("acknowledged");
    }
    drop(producer);
    broker.shutdown().await;
    let data = broker.data_dir();
    let check = || {
        let mut command = Command::new(quiver_bin());
        command.args(["storage", "check"]).arg(data);
        command
    };
    let sound = run_quiver(check(), None).ok();
    assert!(
        sound.contains("1 topics, 1 partitions") && sound.ends_with("ok\n"),
        "{sound}"
    );

    // Flip a byte in every copy of one record's value (old copies may
    // linger in freed pages).
    let file = data.join("quiver.redb");
    let mut bytes = std::fs::read(&file).expect("read the database");
    let marker = b"MARKER-0025-";
    let at: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, window)| window == marker)
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty(), "the value is stored as produced");
    for i in at {
        bytes[i] ^= 0xff;
    }
    std::fs::write(&file, &bytes).expect("write the database");

    let mut serve = Command::new(quiver_bin());
    serve
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "off",
            "--http",
            "off",
            "--data-dir",
        ])
        .arg(data);
    let refused = run_quiver(serve, None).fails();
    assert!(refused.contains("failed its integrity check"), "{refused}");
    assert!(refused.contains(&file.display().to_string()), "{refused}");
    assert!(refused.contains("quiver storage check"), "{refused}");
    let checked = run_quiver(check(), None).fails();
    assert!(checked.contains("failed its integrity check"), "{checked}");
}
