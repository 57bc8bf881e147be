use std::sync::Arc;

use bytes::BytesMut;
use quiver_proto::api::TopicConfig;
use quiver_proto::batch::{BatchBuilder, BatchView, NewRecord, split_batches};
use quiver_proto::{ErrorCode, WireError};

use super::*;

fn batch(values: &[&str]) -> (BytesMut, u32) {
    let mut builder = BatchBuilder::default();
    for value in values {
        builder
            .push(&NewRecord {
                key: None,
                value: Some(value.as_bytes()),
                headers: &[],
                timestamp: 1_000,
            })
            .unwrap();
    }
    (BytesMut::from(&builder.finish()[..]), values.len() as u32)
}

fn values_from(bytes: &[u8], from: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for view in split_batches(bytes) {
        let view: BatchView<'_> = view.unwrap();
        view.verify_crc().unwrap();
        for record in view.records() {
            let record = record.unwrap();
            let offset = view.base_offset() + record.offset_delta as u64;
            if offset >= from {
                out.push((
                    offset,
                    String::from_utf8(record.value.unwrap_or_default().to_vec()).unwrap(),
                ));
            }
        }
    }
    out
}

/// A fresh database in a temporary directory with one topic.
async fn with_topic(
    name: &str,
    partitions: u32,
    config: TopicConfig,
) -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(dir.path(), &StorageOptions::default()).expect("open");
    storage
        .create_topic(name.into(), partitions, config)
        .await
        .expect("create topic");
    (dir, storage)
}

async fn append(storage: &Storage, topic: &str, partition: u32, values: &[&str]) -> u64 {
    let (bytes, count) = batch(values);
    let partition = storage.partition(topic, partition).unwrap();
    storage
        .append(partition, bytes, count, 1_000)
        .await
        .unwrap()
}

#[tokio::test]
async fn append_read_and_restart_keep_offsets_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        storage
            .create_topic("t".into(), 2, TopicConfig::default())
            .await
            .unwrap();
        assert_eq!(append(&storage, "t", 0, &["a", "b"]).await, 0);
        assert_eq!(append(&storage, "t", 0, &["c"]).await, 2);
        assert_eq!(append(&storage, "t", 1, &["x"]).await, 0);
        let partition = storage.partition("t", 0).unwrap();
        let read = storage.read(&partition, 1, 1 << 20).unwrap();
        assert_eq!(read.offsets.high_watermark, 3);
        assert_eq!(
            values_from(&read.batches, 1),
            vec![(1, "b".into()), (2, "c".into())]
        );
        storage.shutdown().await;
    }
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let partition = storage.partition("t", 0).unwrap();
    assert_eq!(partition.offsets().high_watermark, 3);
    assert_eq!(append(&storage, "t", 0, &["d"]).await, 3);
    let read = storage.read(&partition, 0, 1 << 20).unwrap();
    let offsets: Vec<u64> = values_from(&read.batches, 0)
        .iter()
        .map(|(o, _)| *o)
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3]);
    storage.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_get_disjoint_contiguous_offsets() {
    let (_dir, storage) = with_topic("t", 1, TopicConfig::default()).await;
    let storage = Arc::new(storage);
    let mut tasks = Vec::new();
    for task in 0..16 {
        let storage = Arc::clone(&storage);
        tasks.push(tokio::spawn(async move {
            let mut bases = Vec::new();
            for i in 0..20 {
                let v1 = format!("{task}-{i}-a");
                let v2 = format!("{task}-{i}-b");
                bases.push(append(&storage, "t", 0, &[&v1, &v2]).await);
            }
            bases
        }));
    }
    let mut bases = Vec::new();
    for task in tasks {
        bases.extend(task.await.unwrap());
    }
    bases.sort_unstable();
    let expected: Vec<u64> = (0..320).map(|i| i * 2).collect();
    assert_eq!(bases, expected);
    let partition = storage.partition("t", 0).unwrap();
    let read = storage.read(&partition, 0, usize::MAX).unwrap();
    let records = values_from(&read.batches, 0);
    assert_eq!(records.len(), 640);
    assert!(records.iter().enumerate().all(|(i, (o, _))| *o == i as u64));
    storage.shutdown().await;
}

#[tokio::test]
async fn reads_respect_max_bytes_but_return_one_batch() {
    let (_dir, storage) = with_topic("t", 1, TopicConfig::default()).await;
    for i in 0..5 {
        append(&storage, "t", 0, &[&format!("v{i}")]).await;
    }
    let partition = storage.partition("t", 0).unwrap();
    let read = storage.read(&partition, 2, 1).unwrap();
    assert_eq!(values_from(&read.batches, 0), vec![(2, "v2".into())]);
    let read = storage.read(&partition, 5, 1 << 20).unwrap();
    assert!(read.batches.is_empty());
    storage.shutdown().await;
}

#[tokio::test]
async fn topic_lifecycle_errors() {
    let (_dir, storage) = with_topic("t", 1, TopicConfig::default()).await;
    assert!(matches!(
        storage
            .create_topic("t".into(), 1, TopicConfig::default())
            .await,
        Err(StorageError::TopicExists(_))
    ));
    assert!(matches!(
        storage.partition("t", 1),
        Err(StorageError::UnknownPartition { count: 1, .. })
    ));
    append(&storage, "t", 0, &["a"]).await;
    let old = storage.partition("t", 0).unwrap();
    storage.delete_topic("t".into(), false).await.unwrap();
    assert!(matches!(
        storage.topic("t"),
        Err(StorageError::UnknownTopic(_))
    ));
    assert!(storage.read(&old, 0, 100).is_err());
    let (bytes, count) = batch(&["late"]);
    assert!(matches!(
        storage.append(old, bytes, count, 1_000).await,
        Err(StorageError::UnknownTopic(_))
    ));
    // A new topic of the same name starts empty.
    storage
        .create_topic("t".into(), 1, TopicConfig::default())
        .await
        .unwrap();
    assert_eq!(append(&storage, "t", 0, &["fresh"]).await, 0);
    storage.shutdown().await;
}

#[tokio::test]
async fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        storage.shutdown().await;
        drop(storage);
        let db = Database::create(dir.path().join(DATABASE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(FORMAT_VERSION_KEY, 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let error = Storage::open(dir.path(), &StorageOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            StorageError::UnsupportedFormat {
                found: 99,
                supported: 1
            }
        ),
        "{error}"
    );
}

/// Appends one single-record batch with the given timestamp.
async fn append_at(storage: &Storage, topic: &str, value: &str, timestamp: i64) -> u64 {
    let mut builder = BatchBuilder::default();
    builder
        .push(&NewRecord {
            key: None,
            value: Some(value.as_bytes()),
            headers: &[],
            timestamp,
        })
        .unwrap();
    let partition = storage.partition(topic, 0).unwrap();
    storage
        .append(
            partition,
            BytesMut::from(&builder.finish()[..]),
            1,
            timestamp,
        )
        .await
        .unwrap()
}

async fn retain(storage: &Storage, now_ms: i64) -> RetentionReport {
    let plan = storage
        .retention_plan(now_ms, RetentionDefaults::default())
        .unwrap();
    storage.apply_retention(plan).await.unwrap()
}

#[tokio::test]
async fn time_retention_deletes_exactly_the_expired_prefix() {
    let config = TopicConfig {
        retention_ms: Some(1_000),
        ..TopicConfig::default()
    };
    let (dir, storage) = with_topic("t", 1, config).await;
    // Timestamps 100..=500, then an old straggler at 50, then 5_000.
    for (i, ts) in [100, 200, 300, 400, 500, 50, 5_000].into_iter().enumerate() {
        assert_eq!(
            append_at(&storage, "t", &format!("v{i}"), ts).await,
            i as u64
        );
    }
    // At 1_350 the cutoff is 350: batches 0..=2 are older; batch 3 (400)
    // stays, so the old straggler behind it stays too.
    let report = retain(&storage, 1_350).await;
    assert_eq!((report.partitions, report.batches), (1, 3));
    let partition = storage.partition("t", 0).unwrap();
    assert_eq!(partition.offsets().log_start_offset, 3);
    assert!(matches!(
        storage.read(&partition, 2, 1 << 20),
        Err(StorageError::OffsetOutOfRange {
            log_start_offset: 3,
            high_watermark: 7,
            ..
        })
    ));
    assert_eq!(
        values_from(&storage.read(&partition, 3, 1 << 20).unwrap().batches, 3)[0].0,
        3
    );
    // Nothing more at the same time; everything but the newest later.
    assert_eq!(retain(&storage, 1_350).await.batches, 0);
    assert_eq!(retain(&storage, 5_500).await.batches, 3);
    assert_eq!(partition.offsets().log_start_offset, 6);
    // The start survives a restart, and offsets keep counting.
    storage.shutdown().await;
    drop(storage);
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let partition = storage.partition("t", 0).unwrap();
    assert_eq!(partition.offsets().log_start_offset, 6);
    assert_eq!(append_at(&storage, "t", "after", 6_000).await, 7);
    storage.shutdown().await;
}

#[tokio::test]
async fn size_retention_keeps_at_least_the_limit() {
    let (_dir, storage) = with_topic("s", 1, TopicConfig::default()).await;
    for i in 0..10 {
        append_at(&storage, "s", &format!("value-{i:04}"), 1_000).await;
    }
    let partition = storage.partition("s", 0).unwrap();
    let total = partition.stats().size_bytes;
    let batch = total / 10;
    assert_eq!(batch * 10, total, "equal-sized batches");
    // Keep at least 3.5 batches' worth: 4 batches stay.
    let defaults = RetentionDefaults {
        retention_ms: None,
        retention_bytes: Some(batch * 7 / 2),
    };
    let plan = storage.retention_plan(0, defaults).unwrap();
    let report = storage.apply_retention(plan).await.unwrap();
    assert_eq!(report.batches, 6);
    assert_eq!(partition.offsets().log_start_offset, 6);
    assert_eq!(partition.stats().size_bytes, batch * 4);
    storage.shutdown().await;
}

#[tokio::test]
async fn find_by_timestamp_uses_the_time_index() {
    let (_dir, storage) = with_topic("t", 1, TopicConfig::default()).await;
    for (i, ts) in [100, 300, 200, 400, 400, 900].into_iter().enumerate() {
        append_at(&storage, "t", &format!("v{i}"), ts).await;
    }
    let partition = storage.partition("t", 0).unwrap();
    let find = |ts| storage.find_by_timestamp(&partition, ts).unwrap().offset();
    assert_eq!(find(0), 0);
    assert_eq!(find(100), 0);
    assert_eq!(find(150), 1);
    assert_eq!(find(300), 1);
    assert_eq!(find(301), 3);
    assert_eq!(find(900), 5);
    assert_eq!(find(901), 6, "past every record: the high watermark");
    // After retention removes the first three batches, lookups start at 3.
    let plan = vec![(Arc::clone(&partition), 3)];
    storage.apply_retention(plan).await.unwrap();
    assert_eq!(find(0), 3);
    assert_eq!(find(150), 3);
    assert_eq!(find(500), 5);
    storage.shutdown().await;
}

#[tokio::test]
async fn alter_topic_changes_config_and_adds_partitions() {
    let (dir, storage) = with_topic("t", 2, TopicConfig::default()).await;
    append(&storage, "t", 0, &["a"]).await;
    let config = TopicConfig {
        retention_ms: Some(5),
        ..TopicConfig::default()
    };
    let topic = storage
        .alter_topic("t".into(), move |_| config, Some(3))
        .await
        .unwrap();
    assert_eq!(
        (topic.partitions.len(), topic.config.retention_ms),
        (3, Some(5))
    );
    assert_eq!(append(&storage, "t", 2, &["new"]).await, 0);
    assert_eq!(
        storage.partition("t", 0).unwrap().offsets().high_watermark,
        1
    );
    assert!(matches!(
        storage
            .alter_topic("t".into(), move |_| config, Some(1))
            .await,
        Err(StorageError::PartitionsCannotShrink { from: 3, to: 1, .. })
    ));
    storage.shutdown().await;
    drop(storage);
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let topic = storage.topic("t").unwrap();
    assert_eq!(
        (topic.partitions.len(), topic.config.retention_ms),
        (3, Some(5))
    );
    storage.shutdown().await;
}

#[tokio::test]
async fn retention_reuses_space_so_the_file_stops_growing() {
    let config = TopicConfig {
        retention_bytes: Some(256 * 1024),
        ..TopicConfig::default()
    };
    let (_dir, storage) = with_topic("r", 1, config).await;
    let value = "x".repeat(1_000);
    let values: Vec<&str> = (0..100).map(|_| value.as_str()).collect();
    let file_size = || std::fs::metadata(storage.path()).unwrap().len();
    let mut sizes = Vec::new();
    for _round in 0..60 {
        // 100 KB a round; retention keeps about 256 KB.
        append(&storage, "r", 0, &values).await;
        retain(&storage, 0).await;
        sizes.push(file_size());
    }
    let partition = storage.partition("r", 0).unwrap();
    assert!(partition.stats().size_bytes < 400 * 1024);
    // 6 MB went in; once freed pages are reused the file stays put.
    assert_eq!(
        sizes[59], sizes[30],
        "file grew from {} to {}",
        sizes[30], sizes[59]
    );
    assert!(sizes[59] < 6_000_000, "{sizes:?}");
    storage.shutdown().await;
}

#[tokio::test]
async fn a_hole_below_the_high_watermark_is_an_error_not_an_end() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
        storage
            .create_topic("t".into(), 1, TopicConfig::default())
            .await
            .unwrap();
        assert_eq!(append(&storage, "t", 0, &["a", "b"]).await, 0);
        assert_eq!(append(&storage, "t", 0, &["c"]).await, 2);
        assert_eq!(append(&storage, "t", 0, &["d", "e"]).await, 3);
        let id = storage.partition("t", 0).unwrap().topic_id();
        storage.shutdown().await;
        id
    };
    // Damage: the middle batch's row is gone, as a corrupted key would lose it.
    {
        let db = Database::open(dir.path().join(DATABASE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(BATCHES).unwrap().remove((id, 0, 2)).unwrap();
        txn.commit().unwrap();
    }
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    let partition = storage.partition("t", 0).unwrap();
    // A read stops before the hole; a read at it fails, naming the offset.
    let read = storage.read(&partition, 0, 1 << 20).unwrap();
    assert_eq!(
        values_from(&read.batches, 0),
        vec![(0, "a".into()), (1, "b".into())]
    );
    let error = storage.read(&partition, 2, 1 << 20).unwrap_err();
    assert!(error.to_string().contains("t/0 at offset 2"), "{error}");
    assert_eq!(WireError::from(&error).code, ErrorCode::StorageError);
    // Past the hole, reads work.
    let read = storage.read(&partition, 3, 1 << 20).unwrap();
    assert_eq!(values_from(&read.batches, 3).len(), 2);
    storage.shutdown().await;
}

/// A value of `len` bytes, distinct per `i`.
fn filler(i: u32, len: usize) -> String {
    format!("{i:08}").repeat(len / 8)
}

#[tokio::test]
async fn a_full_disk_refuses_produce_lets_deletes_free_space_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = StorageOptions {
        reserve_bytes: 1024 * 1024,
        max_bytes: Some(6 * 1024 * 1024),
        ..StorageOptions::default()
    };
    let storage = Storage::open(dir.path(), &options).unwrap();
    for topic in ["kept", "scratch"] {
        storage
            .create_topic(topic.into(), 1, TopicConfig::default())
            .await
            .unwrap();
    }
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..2_000 {
        let value = filler(i, 4096);
        let topic = if i % 2 == 0 { "kept" } else { "scratch" };
        let (bytes, count) = batch(&[&value]);
        let partition = storage.partition(topic, 0).unwrap();
        match storage.append(partition, bytes, count, 1_000).await {
            Ok(offset) if topic == "kept" => acknowledged.push((offset, value)),
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the limit is reached");
    assert!(matches!(refused, StorageError::DiskFull(_)), "{refused}");
    assert_eq!(
        WireError::from(&refused).code,
        ErrorCode::StorageUnavailable
    );
    assert!(matches!(
        storage.health().problem(),
        Some(StorageProblem::DiskFull(_))
    ));
    // Still full: the next produce is refused without a write.
    let (bytes, count) = batch(&["more"]);
    let error = storage
        .append(storage.partition("kept", 0).unwrap(), bytes, count, 1_000)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::DiskFull(_)), "{error}");
    // Reads work meanwhile.
    let read = storage
        .read(&storage.partition("kept", 0).unwrap(), 0, usize::MAX)
        .unwrap();
    assert_eq!(values_from(&read.batches, 0).len(), acknowledged.len());

    // Deleting a topic commits (on the released reserve) and frees space.
    storage.delete_topic("scratch".into(), false).await.unwrap();
    assert_eq!(storage.health().problem(), None);
    let (bytes, count) = batch(&["after"]);
    let offset = storage
        .append(storage.partition("kept", 0).unwrap(), bytes, count, 1_000)
        .await
        .expect("produce resumes once space is freed");
    acknowledged.push((offset, "after".into()));
    storage.shutdown().await;
    drop(storage);

    let storage = Storage::open(dir.path(), &options).unwrap();
    let read = storage
        .read(&storage.partition("kept", 0).unwrap(), 0, usize::MAX)
        .unwrap();
    assert_eq!(values_from(&read.batches, 0), acknowledged);
}

#[tokio::test]
async fn a_panicking_writer_fails_storage_with_a_storage_error() {
    let (_dir, storage) = with_topic("t", 1, TopicConfig::default()).await;
    append(&storage, "t", 0, &["kept"]).await;
    let error = storage
        .alter_topic("t".into(), |_| panic!("injected"), None)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Failed(_)), "{error}");
    assert!(error.to_string().contains("injected"), "{error}");
    assert_eq!(WireError::from(&error).code, ErrorCode::StorageError);
    assert!(matches!(
        storage.health().problem(),
        Some(StorageProblem::Failed(_))
    ));
    // Every later write and read gets the same reason, not a poisoned lock
    // or "shutting down".
    let (bytes, count) = batch(&["lost"]);
    let error = storage
        .append(storage.partition("t", 0).unwrap(), bytes, count, 1_000)
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::Failed(_)), "{error}");
    let error = storage
        .read(&storage.partition("t", 0).unwrap(), 0, usize::MAX)
        .unwrap_err();
    assert!(matches!(error, StorageError::Failed(_)), "{error}");
    storage.shutdown().await;
}

/// An idempotent producer's batch through the writer: stored once however
/// often it is sent, until its producer's state expires (then a resend is
/// a new batch, as Kafka after `producer.id.expiration.ms`).
#[tokio::test]
async fn a_producer_state_dedupes_until_it_expires() {
    let (_dir, storage) = with_topic("t", 1, TopicConfig::default()).await;
    let producer = ProducerBatch {
        producer_id: 3,
        epoch: 0,
        first_sequence: 0,
        last_sequence: 1,
        received_ms: 10_000,
    };
    let send = || async {
        let (bytes, count) = batch(&["a", "b"]);
        let partition = storage.partition("t", 0).unwrap();
        storage
            .queue_append(partition, bytes, count, 1_000, Some(producer))
            .await
            .unwrap()
            .await
            .unwrap()
    };
    assert_eq!(send().await.unwrap(), 0);
    assert_eq!(send().await.unwrap(), 0, "a retry is not stored again");
    assert_eq!(
        storage.partition("t", 0).unwrap().offsets().high_watermark,
        2
    );
    assert_eq!(
        storage.expire_producers(10_000).await.unwrap(),
        0,
        "not idle yet"
    );
    assert_eq!(storage.expire_producers(10_001).await.unwrap(), 1);
    assert_eq!(
        send().await.unwrap(),
        2,
        "a forgotten producer starts afresh"
    );
    assert_eq!(storage.init_producer_id().await.unwrap(), 0);
    assert_eq!(storage.init_producer_id().await.unwrap(), 1);
}

#[tokio::test]
async fn a_log_start_inside_a_batch_keeps_that_batch_and_hides_what_is_below() {
    let (_dir, storage) = with_topic("t", 1, TopicConfig::default()).await;
    append(&storage, "t", 0, &["a", "b", "c"]).await;
    append(&storage, "t", 0, &["d", "e", "f"]).await;
    append(&storage, "t", 0, &["g", "h"]).await;
    let partition = storage.partition("t", 0).unwrap();
    let size = partition.stats().size_bytes;

    // Offset 4 is inside the second batch: the first goes, the second stays.
    let truncated = storage.truncate(Arc::clone(&partition), 4).await.unwrap();
    assert_eq!(truncated.batches, 1);
    assert_eq!(partition.offsets().log_start_offset, 4);
    assert!(partition.stats().size_bytes < size);
    let read = storage.read(&partition, 4, 1 << 20).unwrap();
    assert_eq!(
        values_from(&read.batches, 4),
        [
            (4, "e".into()),
            (5, "f".into()),
            (6, "g".into()),
            (7, "h".into())
        ]
    );
    assert!(matches!(
        storage.read(&partition, 3, 1 << 20),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // A time lookup starts inside the kept batch too, not after it.
    assert_eq!(
        storage.find_by_timestamp(&partition, 0).unwrap().offset(),
        4
    );
    // Retention by size starts at the kept batch: with a limit of 1 byte it
    // removes that batch and keeps the last (starting after the log start
    // instead, it would weigh the last batch first and remove it too).
    storage
        .alter_topic(
            "t".into(),
            |config| TopicConfig {
                retention_bytes: Some(1),
                ..config
            },
            None,
        )
        .await
        .unwrap();
    let plan = storage
        .retention_plan(0, RetentionDefaults::default())
        .unwrap();
    let plan: Vec<(u32, u64)> = plan
        .iter()
        .map(|(p, before)| (p.index(), *before))
        .collect();
    assert_eq!(plan, [(0, 6)]);

    // Passing the kept batch's end deletes it.
    let partition = storage.partition("t", 0).unwrap();
    let truncated = storage.truncate(Arc::clone(&partition), 6).await.unwrap();
    assert_eq!(truncated.batches, 1);
    let read = storage.read(&partition, 6, 1 << 20).unwrap();
    assert_eq!(
        values_from(&read.batches, 6),
        [(6, "g".into()), (7, "h".into())]
    );
    storage.shutdown().await;
}
