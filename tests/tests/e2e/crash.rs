//! Durability across broker process death: the real `quiver serve` binary is
//! killed with SIGKILL (or stopped with SIGTERM) while concurrent producers
//! are sending, restarted on the same data directory, and every record it
//! acknowledged must be there, at the offset it acknowledged, with the same
//! value; offsets stay contiguous and are never reused.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quiver_client::partitioner::partition_for_key;
use quiver_client::{
    Admin, Client, ClientError, Consumer, ConsumerConfig, ConsumerRecord, DeliveryFuture,
    ErrorCode, Offset, Producer, ProducerConfig, ProducerRecord, TopicConfig,
};
use quiver_tests::BrokerProcess;
use quiver_tests::RecordValue as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

const TOPIC: &str = "durable";
const PARTITIONS: u32 = 3;
const PRODUCERS: usize = 4;
/// The broker is stopped once this many acknowledgements have been seen.
const STOP_AFTER_ACKS: usize = 2_000;
/// Records each producer keeps unacknowledged at once, at most.
const WINDOW: usize = 64;
/// Distinct keys, shared by all producers.
const KEYS: u64 = 13;

/// One acknowledged record.
#[derive(Debug, Clone)]
struct Acked {
    partition: u32,
    offset: u64,
    value: String,
}

/// What the producers share with the test.
struct Shared {
    /// Every acknowledged record, in the order the acks were seen.
    acked: Mutex<Vec<Acked>>,
    /// How many acks have been seen; the test waits on it.
    acked_count: watch::Sender<usize>,
    /// Set once the broker is gone: stop sending new records.
    stop: AtomicBool,
}

impl Shared {
    fn record(&self, partition: u32, offset: u64, value: String) {
        self.acked.lock().expect("ack list").push(Acked {
            partition,
            offset,
            value,
        });
        self.acked_count.send_modify(|n| *n += 1);
    }
}

/// What one producer task did.
struct ProducerReport {
    /// How many records it handed to the producer (sequence 0..attempted).
    attempted: u64,
    /// The first error it saw, if any.
    error: Option<ClientError>,
}

fn key_of(seq: u64) -> String {
    format!("key-{}", seq % KEYS)
}

fn value_of(producer: usize, seq: u64) -> String {
    format!("p{producer}-s{seq}")
}

/// `p{producer}-s{seq}` back to its parts.
fn parse_value(value: &str) -> (usize, u64) {
    let (producer, seq) = value
        .strip_prefix('p')
        .and_then(|rest| rest.split_once("-s"))
        .unwrap_or_else(|| panic!("unexpected value {value:?}"));
    (
        producer.parse().expect("producer number"),
        seq.parse().expect("sequence number"),
    )
}

/// Sends keyed records with unique values until told to stop or until an
/// error, keeping up to [`WINDOW`] in flight; records every acknowledgement.
/// After stopping, waits for every record still pending and records the
/// ones that were acknowledged after all.
async fn produce_until_stopped(client: Client, id: usize, shared: Arc<Shared>) -> ProducerReport {
    let producer = Producer::new(client, ProducerConfig::default());
    let mut pending: VecDeque<(String, DeliveryFuture)> = VecDeque::new();
    let mut seq = 0u64;
    let mut error = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let value = value_of(id, seq);
        let record = ProducerRecord::new(TOPIC, value.clone()).key(key_of(seq));
        match producer.enqueue(record).await {
            Ok(ack) => pending.push_back((value, ack)),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        seq += 1;
        if pending.len() >= WINDOW {
            let (value, ack) = pending.pop_front().expect("a full window");
            match ack.await {
                Ok(meta) => shared.record(meta.partition, meta.offset, value),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
    }
    // Unsealed batches must go out so that every pending future resolves.
    let _ = producer.flush().await;
    for (value, ack) in pending {
        match ack.await {
            Ok(meta) => shared.record(meta.partition, meta.offset, value),
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    ProducerReport {
        attempted: seq,
        error,
    }
}

async fn create_topic(broker: &BrokerProcess) {
    let description = Admin::new(broker.client().await)
        .create_topic(TOPIC, PARTITIONS, TopicConfig::default())
        .await
        .expect("create the topic");
    assert_eq!(description.partitions.len(), PARTITIONS as usize);
}

/// How the broker is stopped while the producers are sending.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    Terminate,
}

/// Runs [`PRODUCERS`] concurrent producers against a fresh broker, stops
/// the broker once [`STOP_AFTER_ACKS`] acks are in, stops the producers, and
/// returns the data directory, the acknowledged records and the reports.
async fn produce_then_stop(stop: Stop) -> (tempfile::TempDir, Vec<Acked>, Vec<ProducerReport>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(dir.path()).await;
    create_topic(&broker).await;

    let (acked_count, mut acks_seen) = watch::channel(0usize);
    let shared = Arc::new(Shared {
        acked: Mutex::new(Vec::new()),
        acked_count,
        stop: AtomicBool::new(false),
    });
    let mut tasks = JoinSet::new();
    let mut clients = Vec::new();
    for id in 0..PRODUCERS {
        let client = broker.client().await;
        clients.push(client.clone());
        let shared = Arc::clone(&shared);
        tasks.spawn(async move { (id, produce_until_stopped(client, id, shared).await) });
    }

    // Count-based: stop the broker as soon as enough acks are in, while
    // every producer still has records in flight. A producer that stops on
    // its own before that is a failure (it would stall the count).
    tokio::select! {
        reached = acks_seen.wait_for(|&n| n >= STOP_AFTER_ACKS) => {
            assert!(reached.is_ok(), "the ack counter outlives the producers");
        }
        Some(finished) = tasks.join_next() => {
            let (id, report) = finished.expect("producer task");
            panic!("producer {id} stopped before the broker did: {:?}", report.error);
        }
    }
    match stop {
        Stop::Kill => tokio::task::spawn_blocking(move || broker.kill())
            .await
            .expect("kill the broker"),
        Stop::Terminate => {
            let clean = tokio::task::spawn_blocking(move || broker.terminate())
                .await
                .expect("terminate the broker");
            assert!(
                clean,
                "quiver serve did not exit 0 on SIGTERM with producers connected"
            );
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    if let Stop::Kill = stop {
        // A QUIC client only notices a silently dead peer at its idle
        // timeout (30 s); closing the connections fails whatever is still
        // pending at once. Acks that were already in flight are then merely
        // not counted, which weakens nothing that is asserted.
        for client in &clients {
            client.close().await;
        }
    }

    let mut reports: Vec<Option<ProducerReport>> = (0..PRODUCERS).map(|_| None).collect();
    while let Some(finished) = tasks.join_next().await {
        let (id, report) = finished.expect("producer task");
        reports[id] = Some(report);
    }
    let reports: Vec<ProducerReport> = reports.into_iter().map(Option::unwrap).collect();
    let acked = shared.acked.lock().expect("ack list").clone();
    assert!(acked.len() >= STOP_AFTER_ACKS);
    (dir, acked, reports)
}

/// Every record of every partition, from the start to the high watermark,
/// as the restarted broker reports it; also the high watermarks.
async fn read_everything(broker: &BrokerProcess) -> (Vec<u64>, BTreeMap<u32, Vec<ConsumerRecord>>) {
    let description = Admin::new(broker.client().await)
        .describe_topic(TOPIC)
        .await
        .expect("describe the topic");
    assert_eq!(description.partitions.len(), PARTITIONS as usize);
    let mut watermarks = Vec::new();
    for (i, p) in description.partitions.iter().enumerate() {
        assert_eq!(p.partition as usize, i);
        assert_eq!(p.log_start_offset, 0, "partition {i} lost its start");
        watermarks.push(p.high_watermark);
    }

    let config = ConsumerConfig {
        start: Offset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(broker.client().await, config);
    consumer.assign_topic(TOPIC).await.expect("assign");
    let mut by_partition: BTreeMap<u32, Vec<ConsumerRecord>> =
        (0..PARTITIONS).map(|p| (p, Vec::new())).collect();
    let done = |consumer: &Consumer| {
        consumer
            .assignment()
            .iter()
            .all(|tp| consumer.position(tp).unwrap_or(0) >= watermarks[tp.partition as usize])
    };
    while !done(&consumer) {
        let records = consumer.poll(Duration::from_secs(10)).await.expect("poll");
        assert!(
            !records.is_empty(),
            "reading stalled below the high watermarks {watermarks:?}"
        );
        for record in records {
            by_partition
                .get_mut(&record.partition)
                .expect("an assigned partition")
                .push(record);
        }
    }
    (watermarks, by_partition)
}

/// Asserts offsets are exactly `0..high_watermark` in every partition.
fn assert_contiguous(watermarks: &[u64], stored: &BTreeMap<u32, Vec<ConsumerRecord>>) {
    for (&partition, records) in stored {
        let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
        let expected: Vec<u64> = (0..watermarks[partition as usize]).collect();
        assert!(
            offsets == expected,
            "partition {partition}: offsets are not 0..{} without gaps (got {} records, first \
             mismatch at index {:?})",
            watermarks[partition as usize],
            offsets.len(),
            offsets.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
}

/// Asserts each acknowledged record is stored at its acknowledged place
/// with its value.
fn assert_acked_present(acked: &[Acked], stored: &BTreeMap<u32, Vec<ConsumerRecord>>) {
    let mut places = HashSet::new();
    for ack in acked {
        assert!(
            places.insert((ack.partition, ack.offset)),
            "two records were acknowledged at {}/{}",
            ack.partition,
            ack.offset
        );
        let record = stored
            .get(&ack.partition)
            .and_then(|records| records.get(ack.offset as usize))
            .unwrap_or_else(|| {
                panic!(
                    "acknowledged record {:?} at {}/{} is missing after the restart",
                    ack.value, ack.partition, ack.offset
                )
            });
        assert_eq!(record.offset, ack.offset);
        assert_eq!(
            record.value_bytes(),
            ack.value.as_bytes(),
            "a different record is stored at the acknowledged {}/{}",
            ack.partition,
            ack.offset
        );
    }
}

/// Asserts that whatever is stored was sent exactly once, on its key's
/// partition, and that each producer's records in each partition are a
/// prefix of what it sent there, in order: nothing was lost in the middle.
fn assert_stored_is_sent_prefix(
    reports: &[ProducerReport],
    stored: &BTreeMap<u32, Vec<ConsumerRecord>>,
) {
    let mut seen = HashSet::new();
    let mut stored_seqs: HashMap<(usize, u32), Vec<u64>> = HashMap::new();
    for (&partition, records) in stored {
        for record in records {
            let value = std::str::from_utf8(record.value_bytes()).expect("UTF-8 value");
            let (producer, seq) = parse_value(value);
            assert!(seen.insert(value.to_owned()), "{value:?} is stored twice");
            assert!(
                producer < reports.len() && seq < reports[producer].attempted,
                "{value:?} was never sent"
            );
            let key = key_of(seq);
            assert_eq!(record.key.as_deref(), Some(key.as_bytes()), "{value:?}");
            assert_eq!(
                partition,
                partition_for_key(key.as_bytes(), PARTITIONS),
                "{value:?}"
            );
            stored_seqs
                .entry((producer, partition))
                .or_default()
                .push(seq);
        }
    }
    for (producer, report) in reports.iter().enumerate() {
        for partition in 0..PARTITIONS {
            let sent = (0..report.attempted)
                .filter(|&seq| partition_for_key(key_of(seq).as_bytes(), PARTITIONS) == partition);
            let stored = stored_seqs
                .get(&(producer, partition))
                .map_or(&[][..], Vec::as_slice);
            let expected: Vec<u64> = sent.take(stored.len()).collect();
            assert!(
                stored == expected.as_slice(),
                "producer {producer}, partition {partition}: stored records are not the first {} \
                 sent, in order",
                stored.len()
            );
        }
    }
}

/// Produces one record to each partition of the restarted broker and
/// asserts it lands at the old high watermark, then that the watermark moved.
async fn assert_offsets_continue(broker: &BrokerProcess, watermarks: &[u64]) {
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    for partition in 0..PARTITIONS {
        let ack = producer
            .send(
                ProducerRecord::new(TOPIC, format!("after-restart-{partition}"))
                    .partition(partition),
            )
            .await
            .expect("produce after the restart");
        assert_eq!(ack.partition, partition);
        assert_eq!(
            ack.offset, watermarks[partition as usize],
            "partition {partition}: a produce after the restart did not continue at the old high \
             watermark"
        );
    }
    let description = Admin::new(broker.client().await)
        .describe_topic(TOPIC)
        .await
        .expect("describe the topic");
    let after: Vec<u64> = description
        .partitions
        .iter()
        .map(|p| p.high_watermark)
        .collect();
    let expected: Vec<u64> = watermarks.iter().map(|hw| hw + 1).collect();
    assert_eq!(after, expected);
}

/// Restarts on `dir` and checks everything that must survive a stop.
async fn restart_and_verify(dir: &Path, acked: &[Acked], reports: &[ProducerReport]) -> Vec<u64> {
    let broker = BrokerProcess::start(dir).await;
    let (watermarks, stored) = read_everything(&broker).await;
    assert_contiguous(&watermarks, &stored);
    assert_acked_present(acked, &stored);
    assert_stored_is_sent_prefix(reports, &stored);
    assert_offsets_continue(&broker, &watermarks).await;
    // One more restart: the appends after the first one are durable too.
    let dir: PathBuf = dir.to_path_buf();
    tokio::task::spawn_blocking(move || broker.kill())
        .await
        .expect("kill the broker");
    let broker = BrokerProcess::start(&dir).await;
    let (again, stored) = read_everything(&broker).await;
    let expected: Vec<u64> = watermarks.iter().map(|hw| hw + 1).collect();
    assert_eq!(again, expected);
    assert_contiguous(&again, &stored);
    assert_acked_present(acked, &stored);
    watermarks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_record() {
    let (dir, acked, reports) = produce_then_stop(Stop::Kill).await;
    // The kill happened mid-stream: records in flight at that moment failed.
    assert!(
        reports.iter().any(|r| r.error.is_some()),
        "no producer saw the broker die"
    );
    let watermarks = restart_and_verify(dir.path(), &acked, &reports).await;
    let stored: u64 = watermarks.iter().sum();
    assert!(stored >= acked.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_while_producing_keeps_every_acknowledged_record() {
    let (dir, acked, reports) = produce_then_stop(Stop::Terminate).await;
    assert!(
        reports.iter().any(|r| r.error.is_some()),
        "no producer saw the broker stop"
    );
    restart_and_verify(dir.path(), &acked, &reports).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_after_producing_keeps_every_record() {
    const RECORDS: u64 = 600;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    create_topic(&broker).await;
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    let mut pending = Vec::new();
    for seq in 0..RECORDS {
        let record = ProducerRecord::new(TOPIC, value_of(0, seq)).key(key_of(seq));
        pending.push((value_of(0, seq), producer.enqueue(record).await.unwrap()));
    }
    producer.flush().await.unwrap();
    let mut acked = Vec::new();
    for (value, ack) in pending {
        let meta = ack.await.unwrap();
        acked.push(Acked {
            partition: meta.partition,
            offset: meta.offset,
            value,
        });
    }
    drop(producer);

    let clean = tokio::task::spawn_blocking(move || broker.terminate())
        .await
        .unwrap();
    assert!(clean, "quiver serve did not exit 0 on SIGTERM");

    let reports = [ProducerReport {
        attempted: RECORDS,
        error: None,
    }];
    let watermarks = restart_and_verify(dir.path(), &acked, &reports).await;
    // Nothing was in doubt: the log holds exactly what was acknowledged.
    assert_eq!(watermarks.iter().sum::<u64>(), RECORDS);
    let mut per_partition = vec![0u64; PARTITIONS as usize];
    for ack in &acked {
        per_partition[ack.partition as usize] += 1;
    }
    assert_eq!(watermarks, per_partition);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_connected_clients_the_broker_is_shutting_down() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    create_topic(&broker).await;
    let admin = Admin::new(broker.client().await);
    assert_eq!(admin.list_topics().await.unwrap().len(), 1);

    let clean = tokio::task::spawn_blocking(move || broker.terminate())
        .await
        .unwrap();
    assert!(clean, "quiver serve did not exit 0 on SIGTERM");
    // The broker closed the connection on its way out, saying why.
    let error = admin.list_topics().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ShuttingDown), "{error:?}");
}
