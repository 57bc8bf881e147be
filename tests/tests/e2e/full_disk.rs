//! A full disk through a real `quiver serve` (issue 9, item 1). The
//! broker's storage limit (`--max-storage-mb`) fails writes as ENOSPC does,
//! through the same path: produce is refused with a retriable error and
//! `/ready` says why; deleting a topic commits on the released reserve and
//! frees space; produce resumes without a restart; after a restart every
//! acknowledged record is there. A transform meeting the full disk waits
//! and then goes on.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use quiver_client::{
    Admin, ClientError, Consumer, ConsumerConfig, ErrorCode, Offset, Producer, ProducerConfig,
    ProducerRecord, TopicConfig, TopicPartition, TransformAction,
};
use quiver_tests::RecordValue as _;
use quiver_tests::cli::run_quiver;
use quiver_tests::http::get;
use quiver_tests::transforms::{WAIT, all_logs, deploy_request, failure, upload, wait_for_status};
use quiver_tests::{BrokerProcess, TestBroker, quiver_bin, quiver_command};

/// The database plus the 1 MiB reserve may take 8 MiB.
fn serve(data_dir: &Path, http: SocketAddr) -> BrokerProcess {
    let mut command = Command::new(quiver_bin());
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--kafka-listen",
            "off",
            "--http",
        ])
        .arg(http.to_string())
        .args(["--reserve-mb", "1", "--max-storage-mb", "8", "--data-dir"])
        .arg(data_dir);
    BrokerProcess::spawn_command(command, data_dir)
}

fn free_tcp_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_produce_until_a_delete_frees_space_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let http = free_tcp_port();
    let broker = serve(&data, http);
    let admin = Admin::new(broker.client().await);
    for topic in ["kept", "scratch"] {
        admin
            .create_topic(topic, 1, TopicConfig::default())
            .await
            .expect("create");
    }

    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    let (mut acknowledged, refusal) = fill_until_refused(&producer).await;
    assert_eq!(
        refusal.code(),
        Some(ErrorCode::StorageUnavailable),
        "{refusal}"
    );
    assert!(refusal.is_retriable());
    assert!(refusal.to_string().contains("disk is full"), "{refusal}");
    let ready = get(http, "/ready").await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.starts_with("not ready: disk full"),
        "{}",
        ready.body
    );

    // The CLI says so in one line.
    let mut produce = quiver_command(broker.addr(), broker.ca());
    produce.args(["produce", "kept"]);
    let stderr = run_quiver(produce, Some(b"late\n")).fails();
    assert!(stderr.contains("disk is full"), "{stderr}");

    // A delete commits on the released reserve, and space is back.
    admin.delete_topic("scratch").await.expect("delete");
    assert_eq!(get(http, "/ready").await.status, 200);
    producer
        .send(ProducerRecord::new("kept", "after").partition(0))
        .await
        .expect("produce resumes");
    acknowledged.push("after".into());
    drop(producer);
    drop(admin);
    assert!(broker.terminate(), "a clean shutdown");

    let broker = serve(&data, free_tcp_port());
    let mut consumer = Consumer::new(
        broker.client().await,
        ConsumerConfig {
            start: Offset::Earliest,
            ..ConsumerConfig::default()
        },
    );
    consumer.assign([TopicPartition::new("kept", 0)]);
    let mut read = Vec::new();
    while read.len() < acknowledged.len() {
        let records = consumer.poll(Duration::from_secs(10)).await.expect("poll");
        assert!(!records.is_empty(), "records missing after {}", read.len());
        read.extend(
            records
                .iter()
                .map(|r| String::from_utf8(r.value_bytes().to_vec()).expect("UTF-8")),
        );
    }
    assert_eq!(read, acknowledged);
}

/// Produces 16 records of 4 KiB per request, alternating between "kept"
/// and "scratch", until a record is refused: what "kept" acknowledged, and
/// the refusal.
async fn fill_until_refused(producer: &Producer) -> (Vec<String>, ClientError) {
    let mut acknowledged = Vec::new();
    for round in 0..1_000 {
        let topic = if round % 2 == 0 { "kept" } else { "scratch" };
        let values: Vec<String> = (0..16)
            .map(|i| format!("{round:05}-{i:02}-").repeat(512))
            .collect();
        let mut deliveries = Vec::new();
        for value in &values {
            let delivery = producer
                .enqueue(ProducerRecord::new(topic, value.clone()).partition(0))
                .await
                .expect("enqueue");
            deliveries.push(delivery);
        }
        producer.flush().await.expect("flush");
        let mut refusal = None;
        for (delivery, value) in deliveries.into_iter().zip(values) {
            match delivery.await {
                Ok(_) if topic == "kept" => acknowledged.push(value),
                Ok(_) => {}
                Err(e) => refusal = Some(e),
            }
        }
        if let Some(refusal) = refusal {
            return (acknowledged, refusal);
        }
    }
    panic!("the storage limit was never reached");
}

/// A transform whose commit meets a full disk waits, rather than failing:
/// nothing of that commit is stored, and once a delete frees space it goes
/// on from its last durable position, every input record filtered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_waits_for_space_and_then_goes_on() {
    let broker = TestBroker::start_with(|config| {
        config.storage.reserve_bytes = 1024 * 1024;
        config.storage.max_bytes = Some(16 * 1024 * 1024);
    })
    .await;
    for topic in ["clicks", "scratch"] {
        broker.create_topic(topic, 1).await;
    }
    // Deployed and paused before the disk fills (a deploy adds data); it is
    // resumed on the full disk.
    let admin = broker.admin().await;
    upload(&admin, "filter", "filter").await;
    admin
        .deploy_transform(deploy_request(
            "f",
            "filter",
            "clicks",
            &[("field", "action"), ("equals", "click")],
        ))
        .await
        .expect("deploy");
    admin
        .control_transform("f", TransformAction::Pause)
        .await
        .expect("pause");
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    // Small input records, large filler: the transform's output batches
    // fit the pages a delete frees (a large batch needs contiguous room).
    let pad = "x".repeat(4000);
    let mut acknowledged = 0u64;
    'fill: for round in 0..1_000u64 {
        // 16 records a request, alternating between the input and the filler.
        let topic = if round % 2 == 0 { "clicks" } else { "scratch" };
        let mut deliveries = Vec::new();
        for i in 0..16 {
            let value = if topic == "clicks" {
                format!(r#"{{"action": "click", "n": {i}}}"#)
            } else {
                pad.clone()
            };
            let record = ProducerRecord::new(topic, value).partition(0);
            deliveries.push(producer.enqueue(record).await.expect("enqueue"));
        }
        producer.flush().await.expect("flush");
        for delivery in deliveries {
            match delivery.await {
                Ok(_) if topic == "clicks" => acknowledged += 1,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.code(), Some(ErrorCode::StorageUnavailable), "{e}");
                    break 'fill;
                }
            }
        }
    }
    assert!(acknowledged > 0);
    admin
        .control_transform("f", TransformAction::Resume)
        .await
        .expect("a resume stores little, and is taken on a full disk");
    // Its first commit (the copies of the input) meets the full disk: it
    // waits, still running.
    let deadline = std::time::Instant::now() + WAIT;
    let logs = loop {
        let logs = all_logs(&admin, "f").await;
        if logs
            .iter()
            .any(|l| l.message.contains("waiting for storage"))
        {
            break logs;
        }
        let status = admin.transform_status("f").await.expect("status");
        assert_eq!(failure(&status), None, "{logs:?}");
        assert!(std::time::Instant::now() < deadline, "{status:?} {logs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        !logs.iter().any(|l| l.message.contains("stopped")),
        "{logs:?}"
    );

    admin
        .delete_topic("scratch")
        .await
        .expect("delete frees space");
    let status = wait_for_status(&admin, "f", "caught up", |s| s.records_in >= acknowledged).await;
    assert_eq!(failure(&status), None);
    assert_eq!(status.records_in, acknowledged);
    assert_eq!(status.records_out, acknowledged);
    let described = admin.describe_topic("f-out").await.expect("describe");
    assert_eq!(described.partitions[0].high_watermark, acknowledged);
}
