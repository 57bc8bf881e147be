//! Deployed WebAssembly transforms end to end, against a real broker (real
//! redb, real QUIC) running the real guest components built from
//! `guest-examples`:
//!
//! - `click-aggregate`: the windowed partial counts, summed over the input
//!   partitions, equal the counts computed here from the same events, also
//!   when the broker process is killed with SIGKILL while the transform runs
//!   (nothing lost, nothing counted twice), and the state store holds only
//!   the windows still open;
//! - `filter` and `router` fill their outputs with exactly the records they
//!   should, unchanged, in order per partition (filter) or per key (router);
//! - `running-total`: clients read its per-key totals from the state store,
//!   an upgrade to a new module version keeps them, pause stops processing
//!   and resume catches up;
//! - the adversarial `looper` and `hog` are stopped at their deadline and
//!   memory cap, with the failure in the status and the log, while the
//!   broker and other transforms carry on;
//! - the `--on-error` policies: skip moves past a failing batch, dead-letter
//!   writes it unchanged to `NAME-dlq` with the error and origin headers,
//!   stop fails the transform (resume retries the same batch; delete removes
//!   the transform but keeps its output);
//! - after a clean restart, transforms go on from their committed positions
//!   (every output record exactly once) and a paused one stays paused;
//! - a new version of a module runs only once a transform is upgraded to
//!   it, across a restart too;
//! - events a Kafka client compressed with each codec are counted exactly,
//!   and an output topic's `compression.type` compresses what it stores;
//! - refused deploys (taken name, parameters `init` refuses, output = input)
//!   change nothing, and a shutdown stops every transform.
//!
//! Every wait is for a condition, polling the status every 50 ms, with a
//! generous timeout that fails with the last status. The one sleep checks
//! that a paused transform stays still for longer than a tick interval.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quiver_client::partitioner::partition_for_key;
use quiver_client::{
    Admin, AlterTopicRequest, Client, ClientError, Compression, Consumer, ConsumerConfig,
    ConsumerRecord, ErrorCode, Header, Offset, Producer, ProducerConfig, ProducerRecord,
    RecordMetadata, TopicCompression, TopicConfig, TopicPartition,
};
use quiver_proto::api::transforms::{
    DeployTransformRequest, LogLevel, LogLine, OnError, RunState, StartFrom, TransformAction,
    TransformPartition, TransformStatus,
};
use quiver_tests::RecordValue;
use quiver_tests::cli::run_quiver;
use quiver_tests::kafka::{kcat_read, python, stored_codecs};
use quiver_tests::transforms::{WAIT, all_logs, deploy_request, failure, upload, wait_for_status};
use quiver_tests::{BrokerProcess, TestBroker, guest_component, quiver_command};

/// How long one consumer poll waits for data.
const POLL: Duration = Duration::from_millis(100);
/// Polls [`read_topic`] may take, at most.
const MAX_POLLS: usize = 300;
/// How long a paused transform is watched for not moving: longer than the
/// worker's tick interval (500 ms).
const PAUSE_WATCH: Duration = Duration::from_millis(800);

/// Distinct users (record keys) of the generated events.
const USERS: u32 = 50;
/// Distinct pages of the generated events.
const PAGES: u32 = 8;
/// Event time of the first generated event.
const BASE_TS: i64 = 1_700_000_000_000;
/// Event time between two generated events (plus up to 99 ms of jitter),
/// so that 4,000 events span ten minutes.
const EVENT_GAP_MS: i64 = 150;
/// The aggregation window.
const WINDOW_MS: i64 = 60_000;
/// A sentinel's event time: a day after every event, closing their windows.
const SENTINEL_TS: i64 = BASE_TS + 86_400_000;
/// A sentinel's page, so it can be told apart.
const SENTINEL_PAGE: &str = "/sentinel";
/// A window start (a multiple of [`WINDOW_MS`]) for hand-made events.
const W0: i64 = 1_699_999_980_000;
/// One mebibyte.
const MIB: u64 = 1024 * 1024;
/// The example modules' parameter that makes malformed input fail the call
/// (they skip it by default).
const STRICT: (&str, &str) = ("on_malformed", "fail");

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A deterministic pseudo-random sequence (Knuth's MMIX LCG).
struct Lcg(u64);

impl Lcg {
    /// The next number below `bound`.
    fn below(&mut self, bound: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % u64::from(bound)) as u32
    }
}

/// A website-tracking event.
#[derive(Debug, Clone)]
struct Event {
    user_id: u32,
    page: String,
    action: &'static str,
    ts: i64,
}

impl Event {
    /// The event as JSON.
    fn json(&self) -> String {
        format!(
            r#"{{"user_id": {}, "page": "{}", "action": "{}", "ts": {}}}"#,
            self.user_id, self.page, self.action, self.ts
        )
    }

    /// The event as a record of `topic`, keyed by its user.
    fn record(&self, topic: &str) -> ProducerRecord {
        ProducerRecord::new(topic, self.json()).key(format!("user-{}", self.user_id))
    }
}

/// `count` events, the same for the same `seed`, with strictly increasing
/// event time (so in order within every partition), three clicks to an
/// upload.
fn events(count: usize, seed: u64) -> Vec<Event> {
    let mut lcg = Lcg(seed);
    (0..count)
        .map(|i| Event {
            user_id: lcg.below(USERS),
            page: format!("/p{}", lcg.below(PAGES)),
            action: if lcg.below(4) == 0 { "upload" } else { "click" },
            ts: BASE_TS + i as i64 * EVENT_GAP_MS + i64::from(lcg.below(100)),
        })
        .collect()
}

/// The events as records of `topic`.
fn records(events: &[Event], topic: &str) -> Vec<ProducerRecord> {
    events.iter().map(|e| e.record(topic)).collect()
}

/// One sentinel per partition of `topic`, far ahead in event time.
fn sentinels(topic: &str, partitions: u32) -> Vec<ProducerRecord> {
    (0..partitions)
        .map(|p| {
            let event = Event {
                user_id: 0,
                page: SENTINEL_PAGE.to_owned(),
                action: "click",
                ts: SENTINEL_TS,
            };
            ProducerRecord::new(topic, event.json()).partition(p)
        })
        .collect()
}

/// A click on `page` at `ts`, as JSON.
fn click(page: &str, ts: i64) -> String {
    format!(r#"{{"user_id": 1, "page": "{page}", "action": "click", "ts": {ts}}}"#)
}

/// Produces `records` and waits for every acknowledgement.
async fn produce(client: &Client, records: Vec<ProducerRecord>) -> Vec<RecordMetadata> {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut acks = Vec::with_capacity(records.len());
    for record in records {
        acks.push(producer.enqueue(record).await.expect("enqueue a record"));
    }
    producer.flush().await.expect("flush the producer");
    let mut stored = Vec::with_capacity(acks.len());
    for ack in acks {
        stored.push(ack.await.expect("record acknowledged"));
    }
    stored
}

/// Produces `records` in small batches until `stop` is set or the broker
/// is gone; returns how many of the first records were all acknowledged
/// (a record after the first unacknowledged one may be stored too).
async fn produce_until_stopped(
    client: Client,
    records: Vec<ProducerRecord>,
    stop: Arc<AtomicBool>,
) -> usize {
    let config = ProducerConfig {
        batch_max_records: 20,
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, config);
    let mut pending = VecDeque::new();
    let mut acked = 0;
    for record in records {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(ack) = producer.enqueue(record).await else {
            break;
        };
        pending.push_back(ack);
        if pending.len() >= 64 {
            match pending.pop_front().expect("a full window").await {
                Ok(_) => acked += 1,
                Err(_) => return acked,
            }
        }
    }
    let _ = producer.flush().await;
    for ack in pending {
        if ack.await.is_err() {
            break;
        }
        acked += 1;
    }
    acked
}

/// Every record of `topic` up to the high watermarks seen when called, by
/// partition, in offset order.
async fn read_topic(client: &Client, topic: &str) -> BTreeMap<u32, Vec<ConsumerRecord>> {
    let description = Admin::new(client.clone())
        .describe_topic(topic)
        .await
        .expect("describe the topic");
    let config = ConsumerConfig {
        start: Offset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), config);
    consumer.assign(
        description
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic, p.partition)),
    );
    let mut by_partition: BTreeMap<u32, Vec<ConsumerRecord>> = description
        .partitions
        .iter()
        .map(|p| (p.partition, Vec::new()))
        .collect();
    let complete = |read: &BTreeMap<u32, Vec<ConsumerRecord>>| {
        description.partitions.iter().all(|p| {
            read[&p.partition]
                .last()
                .map_or(p.log_start_offset, |r| r.offset + 1)
                >= p.high_watermark
        })
    };
    let mut polls = 0;
    while !complete(&by_partition) {
        polls += 1;
        assert!(
            polls <= MAX_POLLS,
            "reading {topic} stalled below the high watermarks {:?}",
            description.partitions
        );
        for record in consumer.poll(POLL).await.expect("poll") {
            by_partition
                .get_mut(&record.partition)
                .expect("an assigned partition")
                .push(record);
        }
    }
    by_partition
}

/// How many records a read topic holds.
fn count(topic: &BTreeMap<u32, Vec<ConsumerRecord>>) -> u64 {
    topic.values().map(|records| records.len() as u64).sum()
}

/// Produces a record to a new topic and reads it back.
async fn round_trip(client: &Client, topic: &str) {
    let admin = Admin::new(client.clone());
    admin
        .create_topic(topic, 1, TopicConfig::default())
        .await
        .expect("create the round-trip topic");
    let meta = produce(client, vec![ProducerRecord::new(topic, "ping")]).await;
    let read = read_topic(client, topic).await;
    let values: Vec<&[u8]> = read[&0].iter().map(RecordValue::value_bytes).collect();
    assert_eq!(values, vec![&b"ping"[..]]);
    assert_eq!(read[&0][0].offset, meta[0].offset);
}

/// Topic `click` (4 partitions) and transform `page-counts` counting its
/// clicks per page and minute.
async fn deploy_page_counts(admin: &Admin) {
    admin
        .create_topic("click", 4, TopicConfig::default())
        .await
        .expect("create topic click");
    upload(admin, "click-aggregate", "click_aggregate").await;
    admin
        .deploy_transform(aggregate_request("page-counts"))
        .await
        .expect("deploy page-counts");
}

/// Counting clicks per page and minute over topic `click`.
fn aggregate_request(name: &str) -> DeployTransformRequest {
    deploy_request(
        name,
        "click-aggregate",
        "click",
        &[("window_ms", "60000"), ("group_by", "page")],
    )
}

/// Keeping the records of `input` whose action is `action`.
fn filter_request(name: &str, input: &str, action: &str) -> DeployTransformRequest {
    deploy_request(
        name,
        "filter",
        input,
        &[("field", "action"), ("equals", action)],
    )
}

/// Records of the input not processed yet, over all partitions.
fn total_lag(status: &TransformStatus) -> u64 {
    status.partitions.iter().map(TransformPartition::lag).sum()
}

/// Waits until every input partition's committed position is at its high
/// watermark (then `records_in` counts every record below them that was
/// processed since the broker started); fails at once if the transform
/// fails.
async fn wait_until_caught_up(admin: &Admin, name: &str) -> TransformStatus {
    let status = wait_for_status(admin, name, "caught up", |s| {
        failure(s).is_some() || (!s.partitions.is_empty() && total_lag(s) == 0)
    })
    .await;
    assert!(failure(&status).is_none(), "{name:?} failed: {status:#?}");
    status
}

fn logged(logs: &[LogLine], source: &str, text: &str) -> bool {
    logs.iter()
        .any(|line| line.source == source && line.message.contains(text))
}

/// The `action` field of a JSON record value, if any.
fn action_of(value: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(value).ok()?;
    json.get("action")?.as_str().map(str::to_owned)
}

/// What a transform that forwards records must not change.
type Forwarded = (Option<Bytes>, Option<Bytes>, Vec<Header>, i64);

fn forwarded(record: &ConsumerRecord) -> Forwarded {
    (
        record.key.clone(),
        record.value.clone(),
        record.headers.clone(),
        record.timestamp,
    )
}

/// Asserts that `output` holds, partition by partition, exactly the records
/// of the same `input` partition whose action is `action`, unchanged and in
/// order (keyed records land in the partition their key picks, as they did
/// in the input, which has as many partitions).
fn assert_filtered(
    input: &BTreeMap<u32, Vec<ConsumerRecord>>,
    output: &BTreeMap<u32, Vec<ConsumerRecord>>,
    action: &str,
) {
    assert_eq!(output.len(), input.len(), "output partition count");
    for (partition, records) in input {
        let expected: Vec<Forwarded> = records
            .iter()
            .filter(|r| action_of(r.value_bytes()).as_deref() == Some(action))
            .map(forwarded)
            .collect();
        let got: Vec<Forwarded> = output[partition].iter().map(forwarded).collect();
        assert_eq!(
            got.len(),
            expected.len(),
            "partition {partition}: {action} records"
        );
        assert!(
            got == expected,
            "partition {partition}: the output differs from the input's {action} records"
        );
    }
}

/// Forwarded records per key, in order.
fn per_key<'a>(
    records: impl Iterator<Item = &'a ConsumerRecord>,
) -> BTreeMap<Option<Bytes>, Vec<Forwarded>> {
    let mut by_key: BTreeMap<Option<Bytes>, Vec<Forwarded>> = BTreeMap::new();
    for record in records {
        by_key
            .entry(record.key.clone())
            .or_default()
            .push(forwarded(record));
    }
    by_key
}

/// Asserts that `output` holds exactly the `input` records that `keep`
/// accepts, unchanged, each in the partition its key picks, in input order
/// per key.
fn assert_routed(
    input: &BTreeMap<u32, Vec<ConsumerRecord>>,
    output: &BTreeMap<u32, Vec<ConsumerRecord>>,
    keep: impl Fn(&ConsumerRecord) -> bool,
) {
    let partitions = output.len() as u32;
    for (&partition, records) in output {
        for record in records {
            let key = record.key.as_deref().expect("routed records are keyed");
            assert_eq!(
                partition,
                partition_for_key(key, partitions),
                "record {}@{} is not in its key's partition",
                record.partition,
                record.offset
            );
        }
    }
    let expected = per_key(input.values().flatten().filter(|r| keep(r)));
    let got = per_key(output.values().flatten());
    assert_eq!(
        got.values().map(Vec::len).sum::<usize>(),
        expected.values().map(Vec::len).sum::<usize>(),
        "routed record count"
    );
    assert!(
        got == expected,
        "the routed records differ from the input's"
    );
}

/// Per (window start, page), the events among `values` (JSON), leaving out
/// sentinels: the ground truth of the aggregation.
fn window_counts(
    values: impl IntoIterator<Item = impl AsRef<[u8]>>,
) -> BTreeMap<(i64, String), u64> {
    let mut counts = BTreeMap::new();
    for value in values {
        let json: serde_json::Value =
            serde_json::from_slice(value.as_ref()).expect("an event is JSON");
        let page = json["page"].as_str().expect("an event has a page");
        if page == SENTINEL_PAGE {
            continue;
        }
        let ts = json["ts"].as_i64().expect("an event has a ts");
        *counts
            .entry((ts - ts.rem_euclid(WINDOW_MS), page.to_owned()))
            .or_default() += 1;
    }
    counts
}

/// The partial counts of a `click-aggregate` output, summed per (window
/// start, group value); checks each record's shape and partition.
fn summed_partials(output: &BTreeMap<u32, Vec<ConsumerRecord>>) -> BTreeMap<(i64, String), u64> {
    let partitions = output.len() as u32;
    let mut sums = BTreeMap::new();
    for (&partition, records) in output {
        for record in records {
            let json: serde_json::Value =
                serde_json::from_slice(record.value_bytes()).expect("a count is JSON");
            let key = json["key"].as_str().expect("a count has a key");
            let start = json["window_start"].as_i64().expect("window_start");
            let end = json["window_end"].as_i64().expect("window_end");
            let count = json["count"].as_u64().expect("count");
            assert_eq!(record.key.as_deref(), Some(key.as_bytes()), "{json}");
            assert_eq!((start.rem_euclid(WINDOW_MS), end - start), (0, WINDOW_MS));
            assert!(count > 0, "{json}");
            assert_eq!(partition, partition_for_key(key.as_bytes(), partitions));
            *sums.entry((start, key.to_owned())).or_default() += count;
        }
    }
    sums
}

/// Asserts that the state of `click-aggregate` transform `name` holds, for
/// each of `partitions`, only the sentinel's open window (count 1) and the
/// sentinel's time as the highest seen: every other count was emitted and
/// removed in the commit that emitted it.
async fn assert_only_sentinels_open(admin: &Admin, name: &str, partitions: u32) {
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).expect("UTF-8 state");
    // Keys read `partition/<P>/window/<start, 13 digits>/<group>`.
    let counts: BTreeSet<(u32, String, String)> = admin
        .transform_state(name, b"partition/", 10_000)
        .await
        .expect("read the counts")
        .iter()
        .map(|(key, value)| {
            let key = text(key);
            let mut parts = key.splitn(5, '/');
            assert_eq!(parts.next(), Some("partition"), "{key}");
            let partition = parts
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a partition");
            assert_eq!(parts.next(), Some("window"), "{key}");
            let start = parts.next().expect("a window start");
            assert!(start.len() == 13 && start.parse::<i64>().is_ok(), "{key}");
            let group = parts.next().expect("a count key names its group");
            (partition, group.to_owned(), text(value))
        })
        .collect();
    let expected: BTreeSet<(u32, String, String)> = (0..partitions)
        .map(|p| (p, SENTINEL_PAGE.to_owned(), "1".to_owned()))
        .collect();
    assert_eq!(counts, expected, "open windows in the state store");
    let highs: Vec<String> = admin
        .transform_state(name, b"high-ts/", 100)
        .await
        .expect("read the highest times")
        .iter()
        .map(|(_, value)| text(value))
        .collect();
    assert_eq!(highs, vec![SENTINEL_TS.to_string(); partitions as usize]);
}

/// Shuts the broker down, which stops every transform worker first; fails
/// if that does not finish within [`WAIT`].
async fn shut_down(mut broker: TestBroker) {
    tokio::time::timeout(WAIT, broker.shutdown())
        .await
        .expect("the broker shuts down, transforms and all");
}

/// The broker's error code of a failed request.
fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> Option<ErrorCode> {
    result.expect_err("the request should fail").code()
}

// ---------------------------------------------------------------------------
// click-aggregate
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_aggregate_counts_equal_the_ground_truth() {
    let broker = TestBroker::start().await;
    broker.create_topic("click", 4).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    let events = events(4_000, 7);
    produce(&client, records(&events, "click")).await;

    upload(&admin, "click-aggregate", "click_aggregate").await;
    let deployed = admin
        .deploy_transform(aggregate_request("page-counts"))
        .await
        .unwrap();
    assert_eq!(deployed.state, RunState::Running);
    assert_eq!(deployed.default_output, "page-counts-out");
    produce(&client, sentinels("click", 4)).await;

    let status = wait_until_caught_up(&admin, "page-counts").await;
    assert_eq!(status.records_in, 4_004, "{status:#?}");
    assert_eq!(status.errors, 0, "{status:#?}");
    let output = read_topic(&client, "page-counts-out").await;
    assert_eq!(
        output.len(),
        4,
        "the default output has the input's partitions"
    );
    assert_eq!(count(&output), status.records_out);

    let truth = window_counts(events.iter().map(Event::json));
    assert_eq!(truth.values().sum::<u64>(), 4_000);
    assert_eq!(
        truth.len(),
        11 * PAGES as usize,
        "ten minutes span 11 windows"
    );
    assert_eq!(summed_partials(&output), truth);
    assert_only_sentinels_open(&admin, "page-counts", 4).await;
    shut_down(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_aggregate_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let process = BrokerProcess::start(dir.path()).await;
    let admin = Admin::new(process.client().await);
    deploy_page_counts(&admin).await;

    // Produce while the transform runs, and kill the broker once it has
    // committed some of the records, with more arriving.
    let events = events(4_000, 11);
    let producer_client = process.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = tokio::spawn(produce_until_stopped(
        producer_client.clone(),
        records(&events, "click"),
        Arc::clone(&stop),
    ));
    let at_kill = wait_for_status(&admin, "page-counts", "past 1,000 records", |s| {
        s.records_in >= 1_000
    })
    .await;
    tokio::task::spawn_blocking(move || process.kill())
        .await
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    // A QUIC client notices a silently dead peer only at its idle timeout;
    // closing fails whatever is pending at once.
    producer_client.close().await;
    let acked = producing.await.unwrap();

    let process = BrokerProcess::start(dir.path()).await;
    let client = process.client().await;
    let admin = Admin::new(client.clone());
    let resumed = admin.transform_status("page-counts").await.unwrap();
    assert_eq!(resumed.state, RunState::Running);
    for (before, after) in at_kill.partitions.iter().zip(&resumed.partitions) {
        assert!(
            after.position >= before.position,
            "a committed position was lost: {before:?} before the kill, {after:?} after"
        );
    }
    // The rest of the events (again from the first one not acknowledged),
    // then the sentinels.
    produce(&client, records(&events[acked..], "click")).await;
    produce(&client, sentinels("click", 4)).await;
    wait_until_caught_up(&admin, "page-counts").await;

    // The ground truth is what the input holds: every event, and maybe
    // twice some whose acknowledgement the kill cut off.
    let input = read_topic(&client, "click").await;
    let truth = window_counts(input.values().flatten().map(|r| r.value_bytes().to_vec()));
    let stored = truth.values().sum::<u64>();
    assert!(stored >= 4_000, "{stored} events stored");
    let output = read_topic(&client, "page-counts-out").await;
    assert_eq!(summed_partials(&output), truth);
    assert_only_sentinels_open(&admin, "page-counts", 4).await;
}

/// Each codec from a real Kafka client: confluent-kafka (librdkafka) writes
/// the seed's events with its producer compressing as gzip, snappy, lz4 and
/// zstd in turn; the broker stores those batches as sent; kcat and the
/// Quiver SDK read every event back; click-aggregate's counts equal the
/// truth; and its output topic, set to `compression.type=zstd`, holds only
/// zstd batches, which the SDK reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_aggregate_counts_events_compressed_with_every_codec() {
    const PER_CODEC: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let process = BrokerProcess::start(dir.path()).await;
    let kafka = process.kafka_addr().expect("a Kafka listener");
    let client = process.client().await;
    let admin = Admin::new(client.clone());
    deploy_page_counts(&admin).await;
    let zstd = TopicCompression::Codec(Compression::Zstd);
    let altered = admin
        .alter_topic(AlterTopicRequest {
            name: "page-counts-out".into(),
            compression: Some(zstd),
            ..AlterTopicRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(altered.config.compression, zstd);

    let mut sent = Vec::new();
    for (i, codec) in ["gzip", "snappy", "lz4", "zstd"].into_iter().enumerate() {
        let (first, count) = ((i * PER_CODEC).to_string(), PER_CODEC.to_string());
        let printed = tokio::task::spawn_blocking(move || {
            python(
                "produce_compressed.py",
                kafka,
                &["click", codec, &first, &count],
            )
            .ok()
        })
        .await
        .unwrap();
        sent.extend(printed.lines().map(str::to_owned));
    }
    assert_eq!(sent.len(), 4 * PER_CODEC);
    sent.sort_unstable();
    let codecs = tokio::task::spawn_blocking(move || stored_codecs(kafka, "click", 4))
        .await
        .unwrap();
    let all: BTreeSet<Compression> = Compression::ALL[1..].iter().copied().collect();
    assert_eq!(
        codecs, all,
        "the batches are stored as the client compressed them"
    );

    let by_kcat = tokio::task::spawn_blocking(move || kcat_read(kafka, "click", "%s\n"))
        .await
        .unwrap();
    let mut by_kcat: Vec<&str> = by_kcat.lines().collect();
    by_kcat.sort_unstable();
    assert_eq!(by_kcat, sent);
    let mut by_sdk: Vec<String> = read_topic(&client, "click")
        .await
        .values()
        .flatten()
        .map(|r| String::from_utf8(r.value_bytes().to_vec()).expect("UTF-8"))
        .collect();
    by_sdk.sort_unstable();
    assert_eq!(by_sdk, sent);

    produce(&client, sentinels("click", 4)).await;
    let status = wait_until_caught_up(&admin, "page-counts").await;
    assert_eq!(status.records_in, 4 * PER_CODEC as u64 + 4, "{status:#?}");
    let output = read_topic(&client, "page-counts-out").await;
    assert_eq!(summed_partials(&output), window_counts(&sent));
    let codecs = tokio::task::spawn_blocking(move || stored_codecs(kafka, "page-counts-out", 4))
        .await
        .unwrap();
    assert_eq!(codecs, BTreeSet::from([Compression::Zstd]));
}

/// A null value (a tombstone) is not an empty value, through every path:
/// confluent-kafka writes tombstones and an empty value; the SDK producer
/// (`ProducerRecord::tombstone`) and `quiver produce --null-marker` write
/// more; the SDK consumer, `quiver consume` (template and JSON) and
/// confluent-kafka read each as it was written; and the filter, deployed
/// with `tombstones=keep` and run at fetch time, passes tombstones through
/// as tombstones while the empty value stays malformed input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_stay_null_through_clients_cli_and_transforms() {
    let dir = tempfile::tempdir().unwrap();
    let process = BrokerProcess::start(dir.path()).await;
    let kafka = process.kafka_addr().expect("a Kafka listener");
    let client = process.client().await;
    let admin = Admin::new(client.clone());
    admin
        .create_topic("profiles", 1, TopicConfig::default())
        .await
        .expect("create the topic");
    let (addr, ca) = (process.addr(), process.ca().to_path_buf());
    // Arguments split at spaces.
    let cli = move |args: &'static str, input: Option<&'static str>| {
        let ca = ca.clone();
        blocking(move || {
            let mut command = quiver_command(addr, &ca);
            command.args(args.split(' '));
            run_quiver(command, input.map(str::as_bytes)).ok()
        })
    };
    let kafka_client =
        |args: &'static [&'static str]| blocking(move || python("tombstones.py", kafka, args).ok());
    kafka_client(&["produce", "profiles"]).await;
    let tombstone = ProducerRecord::tombstone("profiles", "user-4");
    produce(&client, vec![tombstone]).await;
    let lines = "user-5=\nuser-6={\"action\": \"click\", \"page\": \"/d\"}\n";
    cli(
        "produce profiles --key-separator = --null-marker=",
        Some(lines),
    )
    .await;

    let written = profiles_written();
    let by_sdk: Vec<_> = read_topic(&client, "profiles").await[&0]
        .iter()
        .map(key_and_value)
        .collect();
    assert_eq!(by_sdk, written);
    let by_kafka = kafka_client(&["read", "profiles", "9"]).await;
    assert_eq!(as_json(&by_kafka), written);
    let by_cli = cli("consume profiles --format json", None).await;
    assert_eq!(as_json(&by_cli), written);
    let template = cli("consume profiles --format %k=%v --null-marker NULL", None).await;
    let lines: Vec<&str> = template.lines().collect();
    assert_eq!(&lines[1..3], ["user-1=NULL", "user-2="]);
    assert_eq!(lines[5], format!("NULL={}", profile_click("/c")));

    // The filter keeps clicks and tombstones; the empty value is not JSON.
    upload(&admin, "filter", "filter").await;
    let params = [
        ("field", "action"),
        ("equals", "click"),
        ("tombstones", "keep"),
    ];
    admin
        .deploy_transform(deploy_request("clean", "filter", "profiles", &params))
        .await
        .expect("deploy");
    wait_until_caught_up(&admin, "clean").await;
    let kept: Vec<_> = written
        .iter()
        .filter(|(_, value)| value.as_deref().is_none_or(|v| v.contains("click")))
        .cloned()
        .collect();
    assert_eq!(kept.len(), 7);
    let mut expected = kept.clone();
    expected.sort_unstable();
    let mut output: Vec<_> = read_topic(&client, "clean-out")
        .await
        .values()
        .flatten()
        .map(key_and_value)
        .collect();
    output.sort_unstable();
    assert_eq!(output, expected);
    let mut by_kafka = as_json(&kafka_client(&["read", "clean-out", "7"]).await);
    by_kafka.sort_unstable();
    assert_eq!(by_kafka, expected);

    // The same filter at fetch time.
    let args = "consume profiles --format json --module filter --param field=action --param equals=click --param tombstones=keep";
    let fetched = cli(args, None).await;
    assert_eq!(as_json(&fetched), kept);
}

/// A key or value as text, or `None` for null.
type KeyValue = (Option<String>, Option<String>);

fn profile_click(page: &str) -> String {
    format!(r#"{{"action": "click", "page": "{page}"}}"#)
}

/// What `tombstones_stay_null_...` writes to `profiles`, in offset order.
fn profiles_written() -> Vec<KeyValue> {
    let user = |n: u32| Some(format!("user-{n}"));
    vec![
        (user(1), Some(profile_click("/a"))),
        (user(1), None),
        (user(2), Some(String::new())),
        (
            user(2),
            Some(r#"{"action": "upload", "page": "/b"}"#.into()),
        ),
        (user(3), None),
        (None, Some(profile_click("/c"))),
        (user(4), None),
        (user(5), None),
        (user(6), Some(profile_click("/d"))),
    ]
}

fn key_and_value(record: &ConsumerRecord) -> KeyValue {
    let text = |b: &Option<Bytes>| {
        b.as_ref()
            .map(|b| String::from_utf8(b.to_vec()).expect("UTF-8"))
    };
    (text(&record.key), text(&record.value))
}

/// JSON lines with `key` and `value` (as `tombstones.py read` and
/// `quiver consume --format json` print them).
fn as_json(lines: &str) -> Vec<KeyValue> {
    lines
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let field = |name: &str| json[name].as_str().map(str::to_owned);
            (field("key"), field("value"))
        })
        .collect()
}

/// Runs blocking work (a child process) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the blocking task")
}

// ---------------------------------------------------------------------------
// filter and router
// ---------------------------------------------------------------------------

/// Deploys that must be refused change nothing: a taken name, parameters
/// the module's `init` refuses, an output that is the input.
async fn assert_deploy_refusals(admin: &Admin) {
    let taken = admin.deploy_transform(filter_request("clicks", "events", "upload"));
    assert_eq!(code(taken.await), Some(ErrorCode::TransformExists));
    let mut bad_params = filter_request("bad", "events", "click");
    bad_params.params.truncate(1);
    let error = admin
        .deploy_transform(bad_params)
        .await
        .expect_err("init refuses the parameters");
    assert_eq!(error.code(), Some(ErrorCode::ModuleFailed), "{error}");
    assert!(error.to_string().contains("`equals`"), "{error}");
    let mut loop_back = filter_request("loop", "events", "click");
    loop_back.default_output = Some("events".into());
    let refused = admin.deploy_transform(loop_back).await;
    assert_eq!(code(refused), Some(ErrorCode::InvalidRequest));
    // Nor through its dead-letter topic.
    let mut dead_loop = filter_request("x", "x-dlq", "click");
    dead_loop.on_error = OnError::DeadLetter;
    let refused = admin.deploy_transform(dead_loop).await;
    assert!(
        matches!(
            code(refused),
            Some(ErrorCode::InvalidRequest | ErrorCode::UnknownTopic)
        ),
        "a transform may not dead-letter into its input"
    );
    let names: Vec<String> = admin
        .list_transforms()
        .await
        .expect("list the transforms")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["clicks", "split"]);
    let missing = admin.describe_topic("bad-out").await;
    assert_eq!(code(missing), Some(ErrorCode::UnknownTopic));
}

/// Modules built for the previous contracts (0.1.0, records passed one
/// list element each; 0.2.0, stored batches but values never null) run
/// beside current ones: every record reaches the output transformed, with
/// its key, headers and timestamp.
#[tokio::test]
async fn modules_built_for_contracts_0_1_0_and_0_2_0_still_run() {
    for (module, version) in [("upper_v1", "0.1.0"), ("upper_v2", "0.2.0")] {
        an_older_module_runs(module, version).await;
    }
}

async fn an_older_module_runs(module: &str, version: &str) {
    let broker = TestBroker::start().await;
    broker.create_topic("words", 2).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    let record = |i: u32| {
        ProducerRecord::new("words", format!("word {i}"))
            .key(format!("k{}", i % 5))
            .header("seq", i.to_string())
            .timestamp(1_700_000_000_000 + i64::from(i))
    };
    // Two rounds, so that a partition holds more than one stored batch; a
    // tombstone, which these versions read or write as an empty value.
    produce(&client, (0..40).map(record).collect()).await;
    let tombstone = ProducerRecord::tombstone("words", "k-gone").timestamp(1_700_000_000_000);
    produce(&client, (40..60).map(record).chain([tombstone]).collect()).await;

    let module = admin
        .upload_module("upper", guest_component(module).into())
        .await
        .expect("an older module is accepted");
    let at_version = format!("@{version}");
    assert!(
        module
            .imports
            .iter()
            .all(|i| !i.starts_with("quiver:transform/") || i.ends_with(&at_version)),
        "{:?}",
        module.imports
    );
    admin
        .deploy_transform(deploy_request("shout", "upper", "words", &[]))
        .await
        .expect("deploy");
    let status = wait_until_caught_up(&admin, "shout").await;
    assert_eq!((status.records_in, status.records_out), (61, 61));

    // The input's tombstone reads as empty, as the output holds it.
    let seen = |topic: &BTreeMap<u32, Vec<ConsumerRecord>>, upper: bool| {
        let mut all: Vec<(Option<Bytes>, String, Vec<Header>, i64)> = topic
            .values()
            .flatten()
            .map(|r| {
                let value = if upper {
                    r.value.as_deref().unwrap_or_default()
                } else {
                    r.value_bytes()
                };
                let value = String::from_utf8(value.to_vec()).expect("UTF-8");
                let value = if upper {
                    value.to_ascii_uppercase()
                } else {
                    value
                };
                (r.key.clone(), value, r.headers.clone(), r.timestamp)
            })
            .collect();
        all.sort_by(|a, b| a.1.cmp(&b.1));
        all
    };
    let input = seen(&read_topic(&client, "words").await, true);
    let output = seen(&read_topic(&client, "shout-out").await, false);
    assert_eq!(output, input);
    shut_down(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_and_router_fill_their_outputs() {
    let broker = TestBroker::start().await;
    broker.create_topic("events", 3).await;
    broker.create_topic("click-events", 2).await;
    broker.create_topic("upload-events", 2).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    let mut input_records: Vec<ProducerRecord> = events(600, 3)
        .iter()
        .enumerate()
        .map(|(i, e)| e.record("events").header("seq", i.to_string()))
        .collect();
    // Neither a click nor an upload: dropped by the filter; the router
    // skips the one that is not JSON (malformed, with a log line) and sends
    // the other to its default output.
    input_records.push(ProducerRecord::new("events", "not json").key("user-1"));
    input_records.push(ProducerRecord::new("events", r#"{"page": "/p1"}"#).key("user-2"));
    produce(&client, input_records).await;

    upload(&admin, "filter", "filter").await;
    upload(&admin, "router", "router").await;
    admin
        .deploy_transform(filter_request("clicks", "events", "click"))
        .await
        .unwrap();
    let mut router = deploy_request("split", "router", "events", &[("field", "action")]);
    router.outputs = vec![
        ("click".into(), "click-events".into()),
        ("upload".into(), "upload-events".into()),
    ];
    let deployed = admin.deploy_transform(router.clone()).await.unwrap();
    assert_eq!(deployed.outputs, router.outputs);

    let input = read_topic(&client, "events").await;
    let clicks = wait_until_caught_up(&admin, "clicks").await;
    let split = wait_until_caught_up(&admin, "split").await;
    assert_eq!((clicks.records_in, split.records_in), (602, 602));
    assert_eq!(split.records_out, 601);
    assert!(logged(
        &all_logs(&admin, "split").await,
        "guest",
        "skipped 1 malformed record: events/"
    ));

    let filtered = read_topic(&client, "clicks-out").await;
    assert_filtered(&input, &filtered, "click");
    assert_eq!(clicks.records_out, count(&filtered));
    assert!(count(&filtered) > 300, "most events are clicks");
    for (action, topic) in [("click", "click-events"), ("upload", "upload-events")] {
        let output = read_topic(&client, topic).await;
        assert_routed(&input, &output, |r| {
            action_of(r.value_bytes()).as_deref() == Some(action)
        });
    }
    let default = read_topic(&client, "split-out").await;
    assert_eq!(count(&default), 1);
    assert_routed(&input, &default, |r| {
        action_of(r.value_bytes()).is_none() && r.value_bytes() != b"not json"
    });
    assert_deploy_refusals(&admin).await;
    shut_down(broker).await;
}

// ---------------------------------------------------------------------------
// running-total: state, upgrade, pause and resume
// ---------------------------------------------------------------------------

/// `count` order records of topic `orders` over ten keys, and their keys.
fn orders(count: usize, seed: u64) -> (Vec<ProducerRecord>, Vec<String>) {
    let mut lcg = Lcg(seed);
    let keys: Vec<String> = (0..count).map(|_| format!("k{}", lcg.below(10))).collect();
    let records = keys
        .iter()
        .enumerate()
        .map(|(i, key)| ProducerRecord::new("orders", format!("order-{i}")).key(key.clone()))
        .collect();
    (records, keys)
}

/// Per key, how many of `keys` there are, as decimal text.
fn totals(keys: &[String]) -> BTreeMap<String, String> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for key in keys {
        *counts.entry(key.clone()).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, n)| (k, n.to_string()))
        .collect()
}

/// The whole state of transform `name`, as text.
async fn state_text(admin: &Admin, name: &str) -> BTreeMap<String, String> {
    admin
        .transform_state(name, b"", 10_000)
        .await
        .expect("read the state")
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8(k).expect("UTF-8 key"),
                String::from_utf8(v).expect("UTF-8 value"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_total_state_is_readable_and_upgrade_keeps_it() {
    let broker = TestBroker::start().await;
    broker.create_topic("orders", 2).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    let (mut batches, keys) = orders(550, 5);
    let paused_batch = batches.split_off(500);
    let second_batch = batches.split_off(300);
    produce(&client, batches).await;

    upload(&admin, "running-total", "running_total").await;
    let request = deploy_request("totals", "running-total", "orders", &[]);
    admin.deploy_transform(request).await.unwrap();
    let status = wait_until_caught_up(&admin, "totals").await;
    assert_eq!((status.records_in, status.records_out), (300, 0));
    let expected = totals(&keys[..300]);
    assert_eq!(state_text(&admin, "totals").await, expected);
    let one = admin.transform_state("totals", b"k3", 10).await.unwrap();
    assert_eq!(
        one,
        vec![(b"k3".to_vec(), expected["k3"].clone().into_bytes())]
    );

    // Upgrade to a new version of the module: the totals go on.
    let v2 = admin
        .upload_module("running-total", guest_component("running_total").into())
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let upgrade = TransformAction::Upgrade {
        module: "running-total".into(),
    };
    admin.control_transform("totals", upgrade).await.unwrap();
    let status = admin.transform_status("totals").await.unwrap();
    assert_eq!(
        (status.module.as_str(), status.module_version),
        ("running-total", 2)
    );
    assert!(logged(
        &all_logs(&admin, "totals").await,
        "host",
        "upgraded"
    ));
    produce(&client, second_batch).await;
    let status = wait_until_caught_up(&admin, "totals").await;
    assert_eq!(status.records_in, 500);
    assert_eq!(state_text(&admin, "totals").await, totals(&keys[..500]));

    // Paused: records wait; resumed: they are counted.
    admin
        .control_transform("totals", TransformAction::Pause)
        .await
        .unwrap();
    produce(&client, paused_batch).await;
    let paused = admin.transform_status("totals").await.unwrap();
    assert_eq!(
        (paused.state.clone(), total_lag(&paused)),
        (RunState::Paused, 50)
    );
    tokio::time::sleep(PAUSE_WATCH).await;
    let still = admin.transform_status("totals").await.unwrap();
    assert_eq!(
        (still.state.clone(), total_lag(&still), still.records_in),
        (RunState::Paused, 50, 500)
    );
    assert_eq!(state_text(&admin, "totals").await, totals(&keys[..500]));
    admin
        .control_transform("totals", TransformAction::Resume)
        .await
        .unwrap();
    let status = wait_until_caught_up(&admin, "totals").await;
    assert_eq!((status.state, status.records_in), (RunState::Running, 550));
    assert_eq!(state_text(&admin, "totals").await, totals(&keys));
    shut_down(broker).await;
}

// ---------------------------------------------------------------------------
// Adversarial modules
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looper_is_stopped_at_its_deadline_and_others_carry_on() {
    let broker = TestBroker::start().await;
    broker.create_topic("spin", 1).await;
    broker.create_topic("events", 2).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "looper", "looper").await;
    upload(&admin, "filter", "filter").await;
    let mut looper = deploy_request("spinner", "looper", "spin", &[]);
    looper.deadline_ms = Some(300);
    let deployed = admin.deploy_transform(looper).await.unwrap();
    assert_eq!(deployed.deadline_ms, 300);
    admin
        .deploy_transform(filter_request("clicks", "events", "click"))
        .await
        .unwrap();
    let events = events(400, 5);
    let (first, second) = events.split_at(200);
    produce(&client, vec![ProducerRecord::new("spin", "go")]).await;
    produce(&client, records(first, "events")).await;

    let failed = wait_for_status(&admin, "spinner", "failed", |s| failure(s).is_some()).await;
    let error = failure(&failed).expect("failed");
    assert!(error.contains("deadline of 300 ms"), "{error}");
    assert_eq!((failed.partitions[0].position, failed.records_in), (0, 0));
    assert!(failed.errors >= 1, "{failed:#?}");
    let lines = all_logs(&admin, "spinner").await;
    assert!(
        logged(&lines, "guest", "entering an endless loop"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.source == "host"
            && l.level == LogLevel::Error
            && l.message.contains("deadline")),
        "{lines:#?}"
    );

    // The other transform and plain clients carry on.
    let status = wait_until_caught_up(&admin, "clicks").await;
    assert_eq!(status.records_in, 200);
    produce(&client, records(second, "events")).await;
    let status = wait_until_caught_up(&admin, "clicks").await;
    assert_eq!(status.records_in, 400);
    let input = read_topic(&client, "events").await;
    assert_filtered(&input, &read_topic(&client, "clicks-out").await, "click");
    round_trip(&client, "plain").await;
    let spinner = admin.transform_status("spinner").await.unwrap();
    assert!(failure(&spinner).is_some(), "{spinner:#?}");
    assert_eq!(spinner.partitions[0].position, 0);

    // Resume retries on a fresh instance, which is stopped the same way.
    let errors = spinner.errors;
    admin
        .control_transform("spinner", TransformAction::Resume)
        .await
        .unwrap();
    let again = wait_for_status(&admin, "spinner", "failed again", |s| {
        s.errors > errors && failure(s).is_some()
    })
    .await;
    let error = failure(&again).expect("failed");
    assert!(error.contains("deadline of 300 ms"), "{error}");
    assert_eq!(again.partitions[0].position, 0);
    shut_down(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hog_is_stopped_at_its_memory_cap() {
    let broker = TestBroker::start().await;
    broker.create_topic("hoard", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "hog", "hog").await;
    let mut request = deploy_request("hog", "hog", "hoard", &[]);
    request.memory_bytes = Some(16 * MIB);
    let deployed = admin.deploy_transform(request).await.unwrap();
    assert_eq!(deployed.memory_bytes, 16 * MIB);
    produce(&client, vec![ProducerRecord::new("hoard", "go")]).await;

    let failed = wait_for_status(&admin, "hog", "failed", |s| failure(s).is_some()).await;
    let error = failure(&failed).expect("failed");
    assert!(error.contains("memory cap of 16777216 bytes"), "{error}");
    assert_eq!((failed.partitions[0].position, failed.records_in), (0, 0));
    let lines = all_logs(&admin, "hog").await;
    assert!(
        logged(&lines, "guest", "allocating without bound"),
        "{lines:#?}"
    );
    assert!(logged(&lines, "host", "memory cap"), "{lines:#?}");

    round_trip(&client, "plain").await;
    let listed = admin.list_transforms().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "hog");

    // Resume retries on a fresh instance, which hits the cap again.
    admin
        .control_transform("hog", TransformAction::Resume)
        .await
        .unwrap();
    let again = wait_for_status(&admin, "hog", "failed again", |s| {
        s.errors > failed.errors && failure(s).is_some()
    })
    .await;
    let error = failure(&again).expect("failed");
    assert!(error.contains("memory cap of 16777216 bytes"), "{error}");
    shut_down(broker).await;
}

// ---------------------------------------------------------------------------
// --on-error policies
// ---------------------------------------------------------------------------

/// Clicks on `page` in the window `W0 + window * WINDOW_MS`, for topic
/// `mixed`.
fn clicks_in_window(page: &str, window: i64, count: i64) -> Vec<ProducerRecord> {
    (0..count)
        .map(|i| {
            let ts = W0 + window * WINDOW_MS + i * 1_000;
            ProducerRecord::new("mixed", click(page, ts)).key("user-1")
        })
        .collect()
}

/// Asserts that `letters-dlq` holds exactly the bad record `bad`, unchanged,
/// with the error and origin headers.
async fn assert_dead_lettered(client: &Client, bad: &ConsumerRecord, last_error: &str) {
    let dlq = read_topic(client, "letters-dlq").await;
    assert_eq!(
        dlq.len(),
        1,
        "the dead-letter topic has the input's partitions"
    );
    let letters: Vec<&ConsumerRecord> = dlq.values().flatten().collect();
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let letter = letters[0];
    assert_eq!((&letter.key, &letter.value), (&bad.key, &bad.value));
    assert_eq!(letter.timestamp, bad.timestamp);
    let names: Vec<&str> = letter.headers.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(names, ["origin", "quiver-error", "quiver-source"]);
    assert_eq!(letter.headers[0], bad.headers[0]);
    let error = letter.headers[1].value.as_deref().expect("an error text");
    let error = std::str::from_utf8(error).expect("UTF-8 error");
    assert!(error.contains("mixed/0@5"), "{error}");
    assert!(last_error.contains(error), "{last_error:?} vs {error:?}");
    assert_eq!(letter.headers[2].value.as_deref(), Some(&b"mixed/0@5"[..]));
}

/// Under `stop`, resume retries the failed batch (which fails again), and
/// delete removes the transform but not its output topic.
async fn assert_stop_resume_delete(admin: &Admin, client: &Client) {
    admin
        .control_transform("stopper", TransformAction::Resume)
        .await
        .unwrap_or_else(|e| panic!("resume: {e}"));
    let again = wait_for_status(admin, "stopper", "failed again", |s| {
        s.errors >= 2 && failure(s).is_some()
    })
    .await;
    let error = failure(&again).expect("failed");
    assert!(error.contains("mixed/0@5"), "{error}");
    assert_eq!((again.errors, again.partitions[0].position), (2, 5));
    assert_eq!(count(&read_topic(client, "stopper-out").await), 0);
    assert!(logged(&all_logs(admin, "stopper").await, "host", "resumed"));

    admin
        .control_transform("stopper", TransformAction::Delete)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let unknown = Some(ErrorCode::UnknownTransform);
    assert_eq!(code(admin.transform_status("stopper").await), unknown);
    assert_eq!(
        code(admin.transform_state("stopper", b"", 10).await),
        unknown
    );
    assert_eq!(code(admin.transform_logs("stopper", 0, 10).await), unknown);
    let resume = admin.control_transform("stopper", TransformAction::Resume);
    assert_eq!(code(resume.await), unknown);
    let names: Vec<String> = admin
        .list_transforms()
        .await
        .unwrap_or_else(|e| panic!("list: {e}"))
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["letters", "skipper"]);
    admin
        .describe_topic("stopper-out")
        .await
        .unwrap_or_else(|e| panic!("the output topic stays: {e}"));

    // Deployed again under the name, from after the bad record, it starts
    // with empty state: the first window's 5 clicks, counted before the
    // delete, are gone (they would come out as the next window opens).
    let mut request = deploy_request("stopper", "click-aggregate", "mixed", &[]);
    request.from = StartFrom::Offset(6);
    admin
        .deploy_transform(request)
        .await
        .unwrap_or_else(|e| panic!("deploy again: {e}"));
    let status = wait_until_caught_up(admin, "stopper").await;
    assert_eq!((status.records_in, status.records_out), (3, 0));
    assert_eq!(count(&read_topic(client, "stopper-out").await), 0);
    let counts = admin
        .transform_state("stopper", b"partition/0/window/", 100)
        .await
        .unwrap_or_else(|e| panic!("read the state: {e}"));
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert!(counts[0].0.ends_with(b"/b"), "{counts:?}");
    assert_eq!(counts[0].1, b"3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_policies() {
    let broker = TestBroker::start().await;
    broker.create_topic("mixed", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "click-aggregate", "click_aggregate").await;
    produce(&client, clicks_in_window("/a", 0, 5)).await;
    let policies = [
        ("skipper", OnError::Skip),
        ("letters", OnError::DeadLetter),
        ("stopper", OnError::Stop),
    ];
    for (name, on_error) in policies {
        let mut request = deploy_request(name, "click-aggregate", "mixed", &[STRICT]);
        request.on_error = on_error;
        admin.deploy_transform(request).await.unwrap();
        assert_eq!(wait_until_caught_up(&admin, name).await.records_in, 5);
    }

    // One record that is not JSON, in a batch of its own.
    let bad = ProducerRecord::new("mixed", "not json")
        .key("bad-key")
        .header("origin", "test");
    assert_eq!(produce(&client, vec![bad]).await[0].offset, 5);
    let mut last_errors = Vec::new();
    for name in ["skipper", "letters"] {
        let status = wait_until_caught_up(&admin, name).await;
        assert_eq!((status.records_in, status.errors), (5, 1), "{status:#?}");
        let last_error = status.last_error.expect("the error is kept");
        assert!(last_error.contains("mixed/0@5"), "{last_error}");
        last_errors.push(last_error);
    }
    assert!(logged(
        &all_logs(&admin, "skipper").await,
        "host",
        "skipped"
    ));
    let stopped = wait_for_status(&admin, "stopper", "failed", |s| failure(s).is_some()).await;
    let error = failure(&stopped).expect("failed");
    assert!(error.contains("mixed/0@5"), "{error}");
    assert_eq!((stopped.errors, stopped.partitions[0].position), (1, 5));

    // Later good records are processed: clicks in the next window close
    // the first one, whose count comes out.
    produce(&client, clicks_in_window("/b", 1, 3)).await;
    for name in ["skipper", "letters"] {
        let status = wait_until_caught_up(&admin, name).await;
        assert_eq!((status.records_in, status.records_out), (8, 1));
        let output = read_topic(&client, &format!("{name}-out")).await;
        let expected = BTreeMap::from([((W0, "/a".to_owned()), 5)]);
        assert_eq!(summed_partials(&output), expected, "{name}");
    }
    let input = read_topic(&client, "mixed").await;
    assert_dead_lettered(&client, &input[&0][5], &last_errors[1]).await;
    assert_stop_resume_delete(&admin, &client).await;
    shut_down(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_inside_a_batch_is_isolated() {
    let broker = TestBroker::start().await;
    broker.create_topic("mixed", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "click-aggregate", "click_aggregate").await;
    // Five good records, a bad one, four good ones: one producer batch, so
    // the first call sees all ten; the failure is narrowed to offset 5.
    let mut records = clicks_in_window("/a", 0, 5);
    records.push(ProducerRecord::new("mixed", "not json").key("bad-key"));
    records.extend(clicks_in_window("/a", 0, 4));
    let acks = produce(&client, records).await;
    assert_eq!(acks.len(), 10);
    for (name, on_error) in [("skipper", OnError::Skip), ("letters", OnError::DeadLetter)] {
        let mut request = deploy_request(name, "click-aggregate", "mixed", &[STRICT]);
        request.on_error = on_error;
        admin.deploy_transform(request).await.unwrap();
        let status = wait_until_caught_up(&admin, name).await;
        assert_eq!((status.records_in, status.errors), (9, 1), "{status:#?}");
        assert!(status.last_error.unwrap().contains("mixed/0@5"));
    }
    let dead = read_topic(&client, "letters-dlq").await;
    let letters: Vec<_> = dead.values().flatten().collect();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].value_bytes(), b"not json");
    shut_down(broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_past_a_paused_transform_moves_its_position() {
    let now: i64 = 1_800_000_000_000;
    let clock = Arc::new(quiver_host::clock::ManualClock::new(now));
    let configured = Arc::clone(&clock);
    let broker = TestBroker::start_with(move |config| {
        config.clock = configured.clone();
        config.retention_check_interval = Duration::from_hours(1);
    })
    .await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    let config = TopicConfig {
        retention_ms: Some(60_000),
        ..TopicConfig::default()
    };
    admin.create_topic("events", 1, config).await.unwrap();
    upload(&admin, "filter", "filter").await;
    admin
        .deploy_transform(filter_request("clicks", "events", "click"))
        .await
        .unwrap();
    admin
        .control_transform("clicks", TransformAction::Pause)
        .await
        .unwrap();
    let stamped = |i: i64| {
        ProducerRecord::new("events", format!(r#"{{"action": "click", "n": {i}}}"#)).timestamp(now)
    };
    produce(&client, (0..20).map(stamped).collect()).await;
    // Every batch expires while the transform is paused: the log start
    // reaches the high watermark, past the transform's position.
    clock.advance(120_000);
    broker.broker().enforce_retention().await.unwrap();
    let offsets = admin.describe_topic("events").await.unwrap().partitions[0];
    assert_eq!(offsets.log_start_offset, offsets.high_watermark);
    admin
        .control_transform("clicks", TransformAction::Resume)
        .await
        .unwrap();
    let status = wait_until_caught_up(&admin, "clicks").await;
    assert_eq!(status.partitions[0].position, offsets.high_watermark);
    assert_eq!(status.records_in, 0, "the removed records were never seen");
    assert!(logged(
        &all_logs(&admin, "clicks").await,
        "host",
        "removed by retention"
    ));
    shut_down(broker).await;
}

// ---------------------------------------------------------------------------
// Restart
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforms_resume_after_a_restart() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("events", 2).await;
    let events = events(400, 9);
    let (first, second) = events.split_at(200);
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "filter", "filter").await;
    admin
        .deploy_transform(filter_request("clicks", "events", "click"))
        .await
        .unwrap();
    admin
        .deploy_transform(filter_request("uploads", "events", "upload"))
        .await
        .unwrap();
    admin
        .control_transform("uploads", TransformAction::Pause)
        .await
        .unwrap();
    produce(&client, records(first, "events")).await;
    let before = wait_until_caught_up(&admin, "clicks").await;
    assert_eq!(before.records_in, 200);
    let paused = admin.transform_status("uploads").await.unwrap();
    assert_eq!(
        (paused.state.clone(), paused.records_in),
        (RunState::Paused, 0)
    );

    broker.restart().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    let clicks = admin.transform_status("clicks").await.unwrap();
    assert_eq!(clicks.state, RunState::Running);
    assert_eq!(
        clicks.partitions, before.partitions,
        "positions are durable"
    );
    let uploads = admin.transform_status("uploads").await.unwrap();
    assert_eq!(
        uploads.state,
        RunState::Paused,
        "a paused transform stays paused"
    );
    assert_eq!(uploads.partitions, paused.partitions);

    produce(&client, records(second, "events")).await;
    let after = wait_until_caught_up(&admin, "clicks").await;
    assert_eq!(
        after.records_in, 400,
        "the counters survive the restart and only the new records are processed"
    );
    let input = read_topic(&client, "events").await;
    assert_filtered(&input, &read_topic(&client, "clicks-out").await, "click");

    let uploads = admin.transform_status("uploads").await.unwrap();
    assert_eq!(
        (uploads.state.clone(), total_lag(&uploads)),
        (RunState::Paused, 400)
    );
    admin
        .control_transform("uploads", TransformAction::Resume)
        .await
        .unwrap();
    let resumed = wait_until_caught_up(&admin, "uploads").await;
    assert_eq!(resumed.records_in, 400);
    assert_filtered(&input, &read_topic(&client, "uploads-out").await, "upload");
    shut_down(broker).await;
}

/// A new version of a module changes nothing for a transform that runs it
/// until the transform is upgraded, across a restart too: the status names
/// the version that runs, and that version goes on processing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_module_version_waits_for_its_upgrade_across_a_restart() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("events", 2).await;
    let events = events(300, 13);
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "picker", "filter").await;
    let mut request = filter_request("clicks", "events", "click");
    request.module = "picker".into();
    request.on_error = OnError::Skip;
    admin.deploy_transform(request).await.unwrap();
    produce(&client, records(&events[..100], "events")).await;
    wait_until_caught_up(&admin, "clicks").await;

    // Version 2 is another program, which refuses the deployment's
    // parameters: it must not run before an upgrade asks for it.
    let v2 = admin
        .upload_module("picker", guest_component("looper").into())
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    produce(&client, records(&events[100..200], "events")).await;
    let status = wait_until_caught_up(&admin, "clicks").await;
    assert_eq!(
        (status.module_version, status.records_in, status.errors),
        (1, 200, 0)
    );

    broker.restart().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    produce(&client, records(&events[200..], "events")).await;
    let status = wait_until_caught_up(&admin, "clicks").await;
    assert_eq!(status.module_version, 1);
    assert_eq!(
        (status.records_in, status.errors),
        (300, 0),
        "version 1 runs on after the restart: {status:#?}"
    );
    let input = read_topic(&client, "events").await;
    assert_filtered(&input, &read_topic(&client, "clicks-out").await, "click");
    shut_down(broker).await;
}

// ---------------------------------------------------------------------------
// Recovering a failed transform: alter, seek, malformed input
// ---------------------------------------------------------------------------

/// Clicks on `page` in the window `W0 + window * WINDOW_MS`, for `topic`.
fn clicks_to(topic: &str, page: &str, window: i64, count: i64) -> Vec<ProducerRecord> {
    (0..count)
        .map(|i| {
            let ts = W0 + window * WINDOW_MS + i * 1_000;
            ProducerRecord::new(topic, click(page, ts)).key("user-1")
        })
        .collect()
}

/// Deploys click-aggregate as `name` on a new topic `name-in` under `stop`,
/// failing on malformed input; produces five clicks on `/a` in window 0
/// (offsets 0 to 4), waits until they are processed, then one record that
/// is not JSON (offset 5) and three clicks on `/b` in window 1 (offsets 6
/// to 8, closing window 0); waits until the transform failed on offset 5.
async fn deploy_and_fail(broker: &TestBroker, client: &Client, name: &str) -> TransformStatus {
    let admin = Admin::new(client.clone());
    let topic = format!("{name}-in");
    broker.create_topic(&topic, 1).await;
    let request = deploy_request(name, "click-aggregate", &topic, &[STRICT]);
    admin.deploy_transform(request).await.expect("deploy");
    produce(client, clicks_to(&topic, "/a", 0, 5)).await;
    assert_eq!(wait_until_caught_up(&admin, name).await.records_in, 5);
    let bad = ProducerRecord::new(topic.as_str(), "not json").key("bad-key");
    let mut rest = vec![bad];
    rest.extend(clicks_to(&topic, "/b", 1, 3));
    assert_eq!(produce(client, rest).await[0].offset, 5);
    let failed = wait_for_status(&admin, name, "failed", |s| failure(s).is_some()).await;
    let at = format!("{topic}/0@5");
    assert!(
        failure(&failed).expect("failed").contains(&at),
        "{failed:#?}"
    );
    assert_eq!((failed.partitions[0].position, failed.errors), (5, 1));
    failed
}

/// After the recovery, `name` processed the eight good records and emitted
/// window 0's count of 5.
async fn assert_recovered(admin: &Admin, client: &Client, name: &str, errors: u64) {
    admin
        .control_transform(name, TransformAction::Resume)
        .await
        .expect("resume");
    let status = wait_until_caught_up(admin, name).await;
    assert_eq!(
        (status.records_in, status.records_out, status.errors),
        (8, 1, errors),
        "{status:#?}"
    );
    let output = read_topic(client, &format!("{name}-out")).await;
    let expected = BTreeMap::from([((W0, "/a".to_owned()), 5)]);
    assert_eq!(summed_partials(&output), expected, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transform_recovers_by_alter_or_seek() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "click-aggregate", "click_aggregate").await;

    // alter --on-error skip: kept, but the transform stays failed until
    // resumed; then the bad record is skipped and the rest processed.
    deploy_and_fail(&broker, &client, "altered").await;
    admin
        .alter_transform("altered", OnError::Skip)
        .await
        .unwrap();
    let altered = admin.transform_status("altered").await.unwrap();
    assert_eq!(altered.on_error, OnError::Skip);
    assert!(failure(&altered).is_some(), "still failed: {altered:#?}");
    assert!(logged(
        &all_logs(&admin, "altered").await,
        "host",
        "on-error changed from stop to skip"
    ));
    assert_recovered(&admin, &client, "altered", 2).await;

    // seek past the bad record: the position moves, the state (window 0's
    // five clicks) stays, and resume carries on from there.
    deploy_and_fail(&broker, &client, "sought").await;
    admin.seek_transform("sought", 0, 6).await.unwrap();
    let sought = admin.transform_status("sought").await.unwrap();
    assert_eq!(sought.partitions[0].position, 6);
    assert!(failure(&sought).is_some(), "still failed: {sought:#?}");
    assert!(logged(
        &all_logs(&admin, "sought").await,
        "host",
        "partition 0 moved from offset 5 to 6"
    ));
    assert_recovered(&admin, &client, "sought", 1).await;

    // Refused seeks name the valid range; nothing moves.
    let error = admin.seek_transform("sought", 3, 0).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UnknownPartition));
    assert!(error.to_string().contains("partitions 0 to 0"), "{error}");
    let error = admin.seek_transform("sought", 0, 10).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::OffsetOutOfRange));
    assert!(
        error
            .to_string()
            .contains("from 0 (log start) to 9 (high watermark)"),
        "{error}"
    );
    let unknown = admin.seek_transform("nobody", 0, 0).await;
    assert_eq!(code(unknown), Some(ErrorCode::UnknownTransform));
    assert_eq!(
        admin.transform_status("sought").await.unwrap().partitions[0].position,
        9
    );

    // alter --on-error dead-letter creates NAME-dlq, as a deploy would.
    admin
        .alter_transform("sought", OnError::DeadLetter)
        .await
        .unwrap();
    admin
        .describe_topic("sought-dlq")
        .await
        .expect("the dead-letter topic is created");

    // By default the example skips malformed input with a log line: no
    // error, no failure.
    let lenient = deploy_request("lenient", "click-aggregate", "sought-in", &[]);
    admin.deploy_transform(lenient).await.unwrap();
    let status = wait_until_caught_up(&admin, "lenient").await;
    assert_eq!(
        (status.records_in, status.records_out, status.errors),
        (9, 1, 0)
    );
    assert!(logged(
        &all_logs(&admin, "lenient").await,
        "guest",
        "skipped 1 malformed record: sought-in/0@5"
    ));
    shut_down(broker).await;
}

/// `GET path` on the broker's HTTP port; the body of a 200 response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the HTTP port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .await
        .expect("read the reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of sample `metric` with exactly `labels`, if scraped.
fn metric(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the scrape parses");
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{metric}: {other:?}"),
        })
}

/// After a restart, a failed transform says it stays failed (with its
/// stored error), a paused one that it stays paused, a running one that it
/// resumed; counters are as before the restart, and `/metrics` shows them
/// with the lag per input partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_tells_the_truth_and_keeps_counters() {
    let mut broker = TestBroker::start_with_http().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "click-aggregate", "click_aggregate").await;
    let failed = deploy_and_fail(&broker, &client, "broken").await;
    let error = failure(&failed).unwrap().to_owned();
    for name in ["running", "held"] {
        let request = deploy_request(name, "click-aggregate", "broken-in", &[]);
        admin.deploy_transform(request).await.unwrap();
    }
    let running = wait_until_caught_up(&admin, "running").await;
    assert_eq!((running.records_in, running.records_out), (9, 1));
    wait_until_caught_up(&admin, "held").await;
    admin
        .control_transform("held", TransformAction::Pause)
        .await
        .unwrap();
    produce(&client, clicks_to("broken-in", "/c", 2, 2)).await;
    let running = wait_until_caught_up(&admin, "running").await;
    assert_eq!((running.records_in, running.records_out), (11, 2));

    let text = http_get(broker.http_addr(), "/metrics").await;
    let running_label = [("transform", "running")];
    assert_eq!(
        metric(&text, "quiver_transform_records_in_total", &running_label),
        Some(11.0)
    );
    assert_eq!(
        metric(&text, "quiver_transform_records_out_total", &running_label),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "quiver_transform_errors_total",
            &[("transform", "broken")]
        ),
        Some(1.0)
    );
    let lag = |text: &str, name: &str| {
        metric(
            text,
            "quiver_transform_lag",
            &[("transform", name), ("partition", "0")],
        )
    };
    assert_eq!(lag(&text, "running"), Some(0.0));
    assert_eq!(lag(&text, "held"), Some(2.0), "paused before the last two");
    assert_eq!(lag(&text, "broken"), Some(6.0), "stopped at offset 5 of 11");

    broker.restart().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    let status = admin.transform_status("broken").await.unwrap();
    assert_eq!(failure(&status), Some(error.as_str()), "still failed");
    assert_eq!((status.records_in, status.errors), (5, 1), "{status:#?}");
    assert!(logged(
        &all_logs(&admin, "broken").await,
        "host",
        &format!("still failed after start: {error}")
    ));
    let held = admin.transform_status("held").await.unwrap();
    assert_eq!(held.state, RunState::Paused);
    assert!(logged(
        &all_logs(&admin, "held").await,
        "host",
        "still paused after start"
    ));
    let log = all_logs(&admin, "running").await;
    assert!(logged(&log, "host", "resumed after start"), "{log:#?}");
    assert!(!logged(&log, "host", "still"), "{log:#?}");
    let status = wait_until_caught_up(&admin, "running").await;
    assert_eq!(
        (status.records_in, status.records_out, status.errors),
        (11, 2, 0),
        "the counters survive the restart"
    );
    let text = http_get(broker.http_addr(), "/metrics").await;
    assert_eq!(
        metric(&text, "quiver_transform_records_in_total", &running_label),
        Some(11.0)
    );
    assert_eq!(lag(&text, "held"), Some(2.0));

    // A deleted transform's series go.
    admin
        .control_transform("held", TransformAction::Delete)
        .await
        .unwrap();
    let text = http_get(broker.http_addr(), "/metrics").await;
    assert!(!text.contains("transform=\"held\""), "{text}");
    shut_down(broker).await;
}
