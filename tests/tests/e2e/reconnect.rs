//! Clients outlive a broker restart: the real `quiver serve` is stopped
//! with SIGTERM (or killed) and started again on the same data directory
//! and port, while an SDK consumer or `quiver consume --follow` keeps
//! reading, and an SDK producer keeps sending.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use quiver_client::{
    Admin, Client, Consumer, ConsumerConfig, GroupSettings, Offset, Producer, ProducerConfig,
    ProducerRecord, RebalanceEvent, TopicConfig, TopicPartition,
};
use quiver_tests::RecordValue as _;
use quiver_tests::cli::{acknowledged, run_quiver};
use quiver_tests::{BrokerProcess, quiver_command};
use tokio::sync::mpsc as async_mpsc;

/// How long a test waits for records before failing.
const WAIT: Duration = Duration::from_mins(1);

/// Stops the broker with SIGTERM and starts it again on the same data
/// directory and address.
fn restart(broker: BrokerProcess, data_dir: &Path) -> BrokerProcess {
    let addr = broker.addr();
    assert!(broker.terminate(), "the broker exits 0 on SIGTERM");
    // Long enough for a polling consumer to notice and back off.
    std::thread::sleep(Duration::from_millis(700));
    let broker = BrokerProcess::spawn_on(data_dir, addr);
    assert_eq!(broker.addr(), addr);
    broker
}

/// Produces `values` (keyless, round-robin) and waits for their acks.
async fn produce(client: &Client, topic: &str, values: impl IntoIterator<Item = String>) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut acks = Vec::new();
    for value in values {
        acks.push(
            producer
                .enqueue(ProducerRecord::new(topic, value))
                .await
                .expect("enqueue"),
        );
    }
    for ack in acks {
        ack.await.expect("acknowledged");
    }
}

/// Receives until `n` values arrived in total, failing after [`WAIT`].
async fn collect(rx: &mut async_mpsc::UnboundedReceiver<String>, seen: &mut Vec<String>, n: usize) {
    while seen.len() < n {
        let value = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records arrived: {seen:?}", seen.len()))
            .expect("the consumer task ended early");
        seen.push(value);
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn sorted(values: &[String]) -> Vec<String> {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigned_consumer_resumes_from_its_positions_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let client = broker.client().await;
    Admin::new(client.clone())
        .create_topic("events", 2, TopicConfig::default())
        .await
        .expect("create topic");
    produce(&client, "events", values("before", 10)).await;

    // The consumer has its own connection, polling all along.
    let consumer_client = broker.client().await;
    let (tx, mut rx) = async_mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let config = ConsumerConfig {
            start: Offset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(consumer_client, config);
        consumer.assign_topic("events").await?;
        // Until the test stops listening.
        while !tx.is_closed() {
            for record in consumer.poll(Duration::from_millis(300)).await? {
                let value = String::from_utf8(record.value_bytes().to_vec()).expect("UTF-8");
                let _ = tx.send(value);
            }
        }
        Ok::<_, quiver_client::ClientError>(consumer)
    });
    let mut seen = Vec::new();
    collect(&mut rx, &mut seen, 10).await;

    let dir_path = dir.path().to_owned();
    let broker = tokio::task::spawn_blocking(move || restart(broker, &dir_path))
        .await
        .expect("restart");

    // The producer's client lost its connection too: its next request
    // dials again.
    produce(&client, "events", values("after", 10)).await;
    collect(&mut rx, &mut seen, 20).await;
    drop(rx);

    let mut expected = values("before", 10);
    expected.extend(values("after", 10));
    assert_eq!(sorted(&seen), sorted(&expected), "nothing lost or repeated");
    let consumer = tokio::time::timeout(WAIT, reader)
        .await
        .expect("the reader stops")
        .expect("the reader task")
        .expect("no error reached the application");
    for partition in 0..2 {
        let tp = TopicPartition::new("events", partition);
        assert_eq!(consumer.position(&tp), consumer.high_watermark(&tp));
    }
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_rejoins_and_resumes_from_committed_offsets_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let client = broker.client().await;
    Admin::new(client.clone())
        .create_topic("orders", 3, TopicConfig::default())
        .await
        .expect("create topic");
    produce(&client, "orders", values("before", 12)).await;

    let consumer_client = broker.client().await;
    let (tx, mut rx) = async_mpsc::unbounded_channel();
    let (events_tx, mut events_rx) = async_mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let config = ConsumerConfig {
            start: Offset::Earliest,
            group: GroupSettings {
                auto_commit_interval: None,
                ..GroupSettings::default()
            },
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(consumer_client, config);
        consumer.subscribe("billing", &["orders"]).await?;
        while !tx.is_closed() {
            let records = consumer.poll(Duration::from_millis(300)).await?;
            for event in consumer.take_rebalance_events() {
                let _ = events_tx.send(event);
            }
            // Commit what was handed out before anyone sees it: what the
            // test received is committed.
            if !records.is_empty() {
                consumer.commit().await?;
            }
            for record in records {
                let value = String::from_utf8(record.value_bytes().to_vec()).expect("UTF-8");
                let _ = tx.send(value);
            }
        }
        consumer.close().await
    });
    let mut seen = Vec::new();
    collect(&mut rx, &mut seen, 12).await;

    let dir_path = dir.path().to_owned();
    let broker = tokio::task::spawn_blocking(move || restart(broker, &dir_path))
        .await
        .expect("restart");
    produce(&client, "orders", values("after", 12)).await;
    collect(&mut rx, &mut seen, 24).await;
    drop(rx);

    let mut expected = values("before", 12);
    expected.extend(values("after", 12));
    assert_eq!(
        sorted(&seen),
        sorted(&expected),
        "everything committed before the restart is not read again"
    );

    // The restart shows as the partitions lost, then assigned again.
    let mut events = Vec::new();
    while let Ok(event) = events_rx.try_recv() {
        events.push(event);
    }
    let all: BTreeSet<TopicPartition> = (0..3).map(|p| TopicPartition::new("orders", p)).collect();
    let partitions = |event: &RebalanceEvent| -> BTreeSet<TopicPartition> {
        match event {
            RebalanceEvent::Assigned(p) | RebalanceEvent::Revoked(p) | RebalanceEvent::Lost(p) => {
                p.iter().cloned().collect()
            }
        }
    };
    let lost = events
        .iter()
        .position(|e| matches!(e, RebalanceEvent::Lost(_)))
        .unwrap_or_else(|| panic!("no Lost event: {events:?}"));
    assert_eq!(partitions(&events[lost]), all, "{events:?}");
    let reassigned: BTreeSet<TopicPartition> = events[lost..]
        .iter()
        .filter(|e| matches!(e, RebalanceEvent::Assigned(_)))
        .flat_map(partitions)
        .collect();
    assert_eq!(reassigned, all, "{events:?}");

    tokio::time::timeout(WAIT, reader)
        .await
        .expect("the reader stops")
        .expect("the reader task")
        .expect("no error reached the application");
    drop(broker);
}

/// `quiver consume` running in the background, its lines read on a thread.
struct Follower {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(addr: SocketAddr, ca: &Path, args: &[&str]) -> Self {
        let mut command = quiver_command(addr, ca);
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quiver consume");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            lines,
        }
    }

    fn read(&mut self, n: usize) -> Vec<String> {
        let mut lines = Vec::with_capacity(n);
        for i in 0..n {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => lines.push(line),
                Err(e) => {
                    let mut child = self.child.take().expect("still running");
                    let _ = child.kill();
                    let output = child.wait_with_output().expect("wait for quiver consume");
                    panic!(
                        "line {i} of {n} did not arrive ({e}) after {lines:?}; stderr: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            }
        }
        lines
    }

    /// SIGTERM; returns the exit code and standard error.
    fn stop(mut self) -> (Option<i32>, String) {
        let child = self.child.take().expect("still running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "send SIGTERM");
        let output = child.wait_with_output().expect("wait for quiver consume");
        // Anything printed after the lines read is an unexpected record.
        let extra: Vec<String> = self.lines.try_iter().collect();
        assert!(extra.is_empty(), "unexpected lines: {extra:?}");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn cli_produce(addr: SocketAddr, ca: &Path, topic: &str, lines: &[String]) {
    let mut command = quiver_command(addr, ca);
    command.args(["produce", topic]);
    let mut input = lines.join("\n");
    input.push('\n');
    let out = run_quiver(command, Some(input.as_bytes())).ok();
    assert_eq!(out, acknowledged(lines.len()));
}

fn cli_create_topic(addr: SocketAddr, ca: &Path, topic: &str) {
    let mut command = quiver_command(addr, ca);
    command.args(["topic", "create", topic, "--partitions", "1"]);
    run_quiver(command, None).ok();
}

#[test]
fn consume_follow_keeps_printing_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let (addr, ca) = (broker.addr(), broker.ca().to_owned());
    cli_create_topic(addr, &ca, "click");
    cli_produce(addr, &ca, "click", &values("before", 3));

    let mut follower = Follower::start(addr, &ca, &["consume", "click", "--follow"]);
    assert_eq!(follower.read(3), values("before", 3));

    let broker = restart(broker, dir.path());
    cli_produce(addr, &ca, "click", &values("after", 3));
    assert_eq!(follower.read(3), values("after", 3));

    let (_, stderr) = follower.stop();
    assert_eq!(stderr, "", "no error was printed");
    drop(broker);
}

#[test]
fn consume_follow_in_a_group_rejoins_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let (addr, ca) = (broker.addr(), broker.ca().to_owned());
    cli_create_topic(addr, &ca, "click");
    cli_produce(addr, &ca, "click", &values("before", 3));

    let mut follower = Follower::start(
        addr,
        &ca,
        &["consume", "click", "--group", "dashboards", "--follow"],
    );
    assert_eq!(follower.read(3), values("before", 3));

    let broker = restart(broker, dir.path());
    cli_produce(addr, &ca, "click", &values("after", 3));
    assert_eq!(follower.read(3), values("after", 3));

    // SIGTERM: it commits what it printed and leaves cleanly.
    let (code, stderr) = follower.stop();
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(stderr, "");

    // The group's committed offset covers everything printed: a new member
    // prints nothing more.
    let mut command = quiver_command(addr, &ca);
    command.args(["consume", "click", "--group", "dashboards"]);
    assert_eq!(run_quiver(command, None).ok(), "");
    drop(broker);
}

/// An idempotent producer outlives a SIGKILL of the broker: records
/// enqueued before the kill (many in flight) and while the broker is down
/// are all acknowledged once it is back on the same address, and each is
/// stored exactly once, in order per partition, at the offset its
/// acknowledgement gave (a batch committed just before the kill and sent
/// again is answered with its first offset, not stored twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_retries_across_a_broker_kill_without_duplicates() {
    const RECORDS: u32 = 20_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().to_path_buf();
    let broker = BrokerProcess::start(&data_dir).await;
    let addr = broker.addr();
    // A request to the killed broker is given up after 3 s (and retried),
    // not the default 30 s.
    let mut client_config = broker.client_config();
    client_config.request_timeout = Duration::from_secs(3);
    let client = Client::connect(client_config).await.expect("connect");
    Admin::new(client.clone())
        .create_topic("ledger", 2, TopicConfig::default())
        .await
        .expect("create");
    let config = ProducerConfig {
        batch_max_records: 100,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client.clone(), config);
    let mut acks = Vec::new();
    let enqueue = |i: u32| ProducerRecord::new("ledger", i.to_string()).partition(i % 2);
    for i in 0..RECORDS / 2 {
        acks.push((i, producer.enqueue(enqueue(i)).await.expect("enqueue")));
    }
    tokio::task::spawn_blocking(move || broker.kill())
        .await
        .expect("kill");
    for i in RECORDS / 2..RECORDS {
        acks.push((i, producer.enqueue(enqueue(i)).await.expect("enqueue")));
    }
    let broker = tokio::task::spawn_blocking(move || BrokerProcess::spawn_on(&data_dir, addr))
        .await
        .expect("restart");
    let mut acked = BTreeMap::new();
    for (i, ack) in acks {
        let meta = tokio::time::timeout(WAIT * 3, ack)
            .await
            .expect("acknowledged in time")
            .expect("acknowledged after the restart");
        assert_eq!(meta.partition, i % 2);
        assert!(acked.insert((meta.partition, meta.offset), i).is_none());
    }

    let config = ConsumerConfig {
        start: Offset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(broker.client().await, config);
    consumer.assign_topic("ledger").await.expect("assign");
    let mut stored = BTreeMap::new();
    while stored.len() < RECORDS as usize {
        let records = tokio::time::timeout(WAIT, consumer.poll(Duration::from_secs(5)))
            .await
            .expect("records in time")
            .expect("poll");
        assert!(!records.is_empty(), "stalled at {} records", stored.len());
        for record in records {
            let i: u32 = std::str::from_utf8(record.value_bytes())
                .expect("UTF-8")
                .parse()
                .expect("a number");
            assert!(
                stored
                    .insert((record.partition, record.offset), i)
                    .is_none()
            );
        }
    }
    assert!(
        consumer
            .poll(Duration::from_millis(300))
            .await
            .expect("poll")
            .is_empty(),
        "nothing stored twice"
    );
    assert_eq!(stored, acked, "each record once, where its ack said");
    for partition in 0..2 {
        let values: Vec<u32> = stored
            .iter()
            .filter(|((p, _), _)| *p == partition)
            .map(|(_, &i)| i)
            .collect();
        assert!(values.is_sorted(), "partition {partition} in order");
    }
}
