use std::sync::Arc;

use bytes::BytesMut;
use quiver_proto::api::TopicConfig;
use quiver_proto::batch::{BatchBuilder, BatchView, NewRecord, split_batches};

use super::*;

fn batch(values: &[&str]) -> (BytesMut, u32) {
    let mut builder = BatchBuilder::default();
    for value in values {
        builder
            .push(&NewRecord {
                key: None,
                value: value.as_bytes(),
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
                out.push((offset, String::from_utf8(record.value.to_vec()).unwrap()));
            }
        }
    }
    out
}

async fn append(storage: &Storage, topic: &str, partition: u32, values: &[&str]) -> u64 {
    let (bytes, count) = batch(values);
    let partition = storage.partition(topic, partition).unwrap();
    storage.append(partition, bytes, count).await.unwrap()
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
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Storage::open(dir.path(), &StorageOptions::default()).unwrap());
    storage
        .create_topic("t".into(), 1, TopicConfig::default())
        .await
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    storage
        .create_topic("t".into(), 1, TopicConfig::default())
        .await
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), &StorageOptions::default()).unwrap();
    storage
        .create_topic("t".into(), 1, TopicConfig::default())
        .await
        .unwrap();
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
    storage.delete_topic("t".into()).await.unwrap();
    assert!(matches!(
        storage.topic("t"),
        Err(StorageError::UnknownTopic(_))
    ));
    assert!(storage.read(&old, 0, 100).is_err());
    let (bytes, count) = batch(&["late"]);
    assert!(matches!(
        storage.append(old, bytes, count).await,
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
