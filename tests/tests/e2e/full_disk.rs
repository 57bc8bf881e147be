//! A full disk through a real `quiver serve` (issue 9, item 1). The
//! broker's storage limit (`--max-storage-mb`) fails writes as ENOSPC does,
//! through the same path: produce is refused with a retriable error and
//! `/ready` says why; deleting a topic commits on the released reserve and
//! frees space; produce resumes without a restart; after a restart every
//! acknowledged record is there.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;

use quiver_client::{
    Admin, ClientError, Consumer, ConsumerConfig, ErrorCode, Offset, Producer, ProducerConfig,
    ProducerRecord, TopicConfig, TopicPartition,
};
use quiver_tests::cli::run_quiver;
use quiver_tests::http::get;
use quiver_tests::{BrokerProcess, quiver_bin, quiver_command};

/// The database plus the 1 MiB reserve may take 8 MiB.
fn serve(data_dir: &Path, http: SocketAddr) -> BrokerProcess {
    let mut command = Command::new(quiver_bin());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--http"])
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
        let records = consumer
            .poll(std::time::Duration::from_secs(10))
            .await
            .expect("poll");
        assert!(!records.is_empty(), "records missing after {}", read.len());
        read.extend(
            records
                .iter()
                .map(|r| String::from_utf8(r.value.to_vec()).expect("UTF-8")),
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
