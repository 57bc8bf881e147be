//! Hostile and broken transforms against a real broker (issue 9, items 4,
//! 7, 8, 9 and 10):
//!
//! - a guest that recurses without bound is reported as a stack overflow
//!   with a trace of a few frames;
//! - a stored batch damaged on disk (a flipped bit) stops only its input
//!   partition of a transform, naming topic, partition and offset, while the
//!   other partitions go on; a seek moves past it;
//! - a guest printing megabytes cannot flood: its lines are cut and rate
//!   limited with a count of the dropped ones, the broker's own log gets a
//!   summary only, and `quiver transform logs` pages a log of over 1 MiB
//!   (`--tail`, `--since`);

use quiver_client::{Admin, Client, Producer, ProducerConfig, ProducerRecord};
use quiver_proto::api::transforms::{OnError, RunState, TransformAction};
use quiver_tests::cli::run_quiver;
use quiver_tests::transforms::{
    all_logs, deploy_request, failure, produce, upload, wait_for_status,
};
use quiver_tests::{BrokerProcess, TestBroker, quiver_command};
use redb::ReadableTable as _;

/// The batches table as the broker declares it (host/src/storage/tables.rs):
/// (topic id, partition, base offset) to one stored batch.
const BATCHES: redb::TableDefinition<'_, (u64, u32, u64), &[u8]> =
    redb::TableDefinition::new("batches");

/// `looper` passing every record through unchanged (a flood of no lines).
const PASS_THROUGH: [(&str, &str); 2] = [("mode", "flood"), ("lines", "0")];

/// Produces each of `batches` to `topic`/`partition` as a batch of its own.
async fn produce_batches(client: &Client, topic: &str, partition: u32, batches: &[&[&str]]) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for values in batches {
        for value in *values {
            producer
                .enqueue(ProducerRecord::new(topic, (*value).to_owned()).partition(partition))
                .await
                .expect("enqueue");
        }
        producer.flush().await.expect("one batch acknowledged");
    }
}

#[tokio::test]
async fn a_stack_overflow_says_so_in_a_few_frames() {
    for mode in ["recurse", "recurse-wide"] {
        stack_overflow(mode).await;
    }
}

async fn stack_overflow(mode: &str) {
    let broker = TestBroker::start().await;
    broker.create_topic("deep", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "looper", "looper").await;
    let mut request = deploy_request("recurser", "looper", "deep", &[("mode", mode)]);
    request.on_error = OnError::Stop;
    admin.deploy_transform(request).await.expect("deploy");
    produce(&client, vec![ProducerRecord::new("deep", "go")]).await;

    let failed = wait_for_status(&admin, "recurser", "failed", |s| failure(s).is_some()).await;
    let error = failure(&failed).expect("failed");
    eprintln!("{error}");
    assert!(error.contains("stack overflow"), "{error}");
    assert!(!error.contains("out of bounds memory access") || error.contains("stack overflow"));
    assert!(error.len() < 1_000, "a short message: {error}");
    assert!(error.contains("more frames"), "{error}");
    let lines = all_logs(&admin, "recurser").await;
    assert!(
        lines
            .iter()
            .any(|l| l.source == "host" && l.message.contains("stack overflow")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn a_damaged_batch_stops_only_its_partition() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("input", 2).await;
    let client = broker.client().await;
    produce_batches(&client, "input", 0, &[&["a0", "b0"]]).await;
    produce_batches(&client, "input", 1, &[&["a1"], &["b1", "c1"], &["d1"]]).await;
    drop(client);
    broker.shutdown().await;
    {
        // Flip one bit in the last byte of partition 1's batch at offset 1
        // (a record's value: covered by the CRC, not by any length).
        let db = redb::Database::open(broker.data_dir().join("quiver.redb")).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let mut table = txn.open_table(BATCHES).expect("batches");
            let key = table
                .iter()
                .expect("iterate")
                .map(|row| row.expect("row").0.value())
                .find(|&(_, partition, base)| (partition, base) == (1, 1))
                .expect("the batch at input/1 offset 1");
            let mut bytes = table
                .get(key)
                .expect("get")
                .expect("stored")
                .value()
                .to_vec();
            *bytes.last_mut().expect("not empty") ^= 0x01;
            table.insert(key, bytes.as_slice()).expect("write it back");
        }
        txn.commit().expect("commit");
    }
    broker.restart().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "looper", "looper").await;
    let request = deploy_request("copy", "looper", "input", &PASS_THROUGH);
    admin.deploy_transform(request).await.expect("deploy");

    let status = wait_for_status(&admin, "copy", "stopped on partition 1", |s| {
        s.partitions.iter().any(|p| p.error.is_some()) && s.partitions[0].lag() == 0
    })
    .await;
    assert_eq!(status.state, RunState::Running, "{status:#?}");
    assert_eq!(status.partitions[0].error, None);
    let stopped = &status.partitions[1];
    assert_eq!(
        stopped.position, 1,
        "the batch before the damage is processed"
    );
    let error = stopped.error.as_deref().expect("partition 1 stopped");
    assert!(
        error.contains("input/1 offset 1 is damaged") && error.contains("CRC"),
        "{error}"
    );
    let lines = all_logs(&admin, "copy").await;
    assert!(
        lines.iter().any(|l| l.source == "host"
            && l.message.contains("partition 1 stopped")
            && l.message.contains("input/1 offset 1")),
        "{lines:#?}"
    );

    // Partition 0 carries on.
    produce_batches(&client, "input", 0, &[&["c0"]]).await;
    let status =
        wait_for_status(&admin, "copy", "past c0", |s| s.partitions[0].position == 3).await;
    assert_eq!(status.partitions[1].position, 1);
    assert_eq!(status.records_in, 4, "a0 b0 c0 a1: {status:#?}");

    // Resume reads the damaged batch again: still damaged.
    admin
        .control_transform("copy", TransformAction::Resume)
        .await
        .expect("resume");
    let status = wait_for_status(&admin, "copy", "stopped again", |s| {
        s.partitions[1].error.is_some()
    })
    .await;
    assert_eq!(status.partitions[1].position, 1);

    // A seek past the damaged batch moves on.
    admin.seek_transform("copy", 1, 3).await.expect("seek");
    let status = wait_for_status(&admin, "copy", "caught up", |s| {
        s.partitions
            .iter()
            .all(|p| p.lag() == 0 && p.error.is_none())
    })
    .await;
    assert_eq!(status.records_in, 5, "d1 too: {status:#?}");
    assert!(failure(&status).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_cannot_flood() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    admin
        .create_topic("noisy", 1, quiver_client::TopicConfig::default())
        .await
        .expect("create topic");
    upload(&admin, "looper", "looper").await;
    // Each call prints 1,000 lines of 8 KB: 8 MB.
    let params = [("mode", "flood"), ("lines", "1000"), ("bytes", "8000")];
    let request = deploy_request("noisy", "looper", "noisy", &params);
    admin.deploy_transform(request).await.expect("deploy");
    let logged_before = broker.stderr_bytes();

    // Three calls, each in a second of its own: 300 lines of 4 KiB kept.
    for i in 1..=3 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch");
        tokio::time::sleep(std::time::Duration::from_millis(
            1_050 - u64::from(now.subsec_millis()),
        ))
        .await;
        produce(&client, vec![ProducerRecord::new("noisy", "go")]).await;
        wait_for_status(&admin, "noisy", "through the record", |s| s.records_in == i).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;

    let lines = all_logs(&admin, "noisy").await;
    let guest: Vec<_> = lines.iter().filter(|l| l.source == "stdout").collect();
    assert!(
        (300..=600).contains(&guest.len()),
        "100 lines a second kept: {}",
        guest.len()
    );
    assert!(
        guest
            .iter()
            .all(|l| l.message.len() <= 4_096 && l.message.ends_with(" bytes cut]")),
        "{:?}",
        guest.first()
    );
    let dropped = lines
        .iter()
        .filter(|l| l.source == "host" && l.message.contains("guest lines dropped"))
        .count();
    assert!(
        dropped >= 3,
        "a count of dropped lines per second: {lines:#?}"
    );
    let total: usize = lines.iter().map(|l| l.message.len()).sum();
    assert!(total > 1024 * 1024, "a log of over 1 MiB: {total} bytes");

    // 24 MB of guest output; the broker logged a summary.
    let logged = broker.stderr_bytes() - logged_before;
    assert!(logged < 64 * 1024, "the broker logged {logged} bytes");

    let quiver = |args: &[&str]| {
        let mut command = quiver_command(broker.addr(), broker.ca());
        command.args(["transform", "logs", "noisy"]).args(args);
        run_quiver(command, None).ok()
    };
    let all = tokio::task::block_in_place(|| quiver(&[]));
    assert_eq!(
        all.lines().count(),
        lines.len(),
        "every kept line, page after page"
    );
    assert!(all.len() > 1024 * 1024);
    let tail = tokio::task::block_in_place(|| quiver(&["--tail", "3"]));
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(all.ends_with(&tail));
    let recent = tokio::task::block_in_place(|| quiver(&["--since", "1h"]));
    assert_eq!(recent.lines().count(), lines.len());
    let none = tokio::task::block_in_place(|| quiver(&["--since", "2999-01-01T00:00:00Z"]));
    assert_eq!(none, "");
}
