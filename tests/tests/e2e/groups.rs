//! Consumer groups end to end, against a real broker: a group consumes
//! every record exactly once when nobody fails; members beyond the
//! partition count idle; members joining and leaving mid-stream never fetch
//! one partition at once and lose nothing; a killed member is evicted once
//! its session times out on the broker's (injected) clock; stale commits and
//! fetches are fenced; committed offsets survive a restart, and the
//! operator's reset and delete wait for an empty group; every strategy
//! balances.
//!
//! Several consumers are driven from one task, polled round-robin with
//! short timeouts. Every wait for a condition is a loop bounded by an
//! iteration count that fails with a message; nothing sleeps to synchronize.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use quiver_client::{
    Admin, Client, ClientError, Consumer, ConsumerConfig, ConsumerRecord, ErrorCode,
    GroupDescription, GroupSettings, Offset, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
    RebalanceEvent, ResetTarget, TopicPartition,
};
use quiver_host::clock::{Clock, ManualClock, SystemClock};
use quiver_proto::api::groups::{
    CommitOffsetsRequest, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, OffsetCommit, PartitionRef,
};
use quiver_proto::api::{FetchPartition, FetchRequest, GroupMemberRef};
use quiver_tests::TestBroker;
use tokio::task::JoinHandle;

/// How long one poll may wait for data.
const POLL: Duration = Duration::from_millis(50);
/// The session timeout of most members: short, so that heartbeats (every
/// third of it) are frequent and rebalances quick, with room for a slow
/// machine between two polls of the same consumer.
const SESSION: Duration = Duration::from_millis(1_500);
/// Auto-commit interval, where auto-commit is on.
const AUTO_COMMIT: Duration = Duration::from_millis(100);
/// An auto-commit interval no test outlasts: auto-commit is on, so
/// positions are committed only when a partition is handed over and on
/// close, and exactly-once depends on those commits alone.
const HAND_OVER_COMMITS_ONLY: Duration = Duration::from_mins(10);
/// Rounds (one poll of every consumer) a wait for a condition may take.
const MAX_ROUNDS: usize = 1_000;
/// The background producer of the churn test stops here at the latest.
const MAX_STREAM_RECORDS: usize = 6_000;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A group consumer's configuration: earliest start, small fetches (so that
/// records arrive over many polls), [`SESSION`].
fn consumer_config(
    strategy: &str,
    client_id: &str,
    auto_commit: Option<Duration>,
) -> ConsumerConfig {
    ConsumerConfig {
        max_bytes: 4 * 1024,
        partition_max_bytes: 512,
        start: Offset::Earliest,
        group: GroupSettings {
            strategy: strategy.into(),
            session_timeout: SESSION,
            auto_commit_interval: auto_commit,
            client_id: client_id.into(),
        },
        ..ConsumerConfig::default()
    }
}

/// A consumer on its own connection, subscribed to `topic` in `group`.
async fn subscribed(
    broker: &TestBroker,
    group: &str,
    topic: &str,
    config: ConsumerConfig,
) -> Consumer {
    let mut consumer = Consumer::new(broker.client().await, config);
    consumer
        .subscribe(group, &[topic])
        .await
        .expect("subscribe to the group");
    consumer
}

/// Producer settings that make many small batches.
fn small_batches() -> ProducerConfig {
    ProducerConfig {
        batch_max_records: 10,
        ..ProducerConfig::default()
    }
}

/// Produces keyed records numbered `numbers`; returns where each was stored.
async fn produce_keyed(
    broker: &TestBroker,
    topic: &str,
    numbers: std::ops::Range<u32>,
) -> Vec<(u32, u64)> {
    let producer = Producer::new(broker.client().await, small_batches());
    let mut acks = Vec::new();
    for i in numbers {
        let record =
            ProducerRecord::new(topic, format!("value-{i}")).key(format!("key-{}", i % 37));
        acks.push(producer.enqueue(record).await.expect("enqueue a record"));
    }
    producer.flush().await.expect("flush the producer");
    let mut stored = Vec::with_capacity(acks.len());
    for ack in acks {
        let meta = ack.await.expect("record acknowledged");
        stored.push((meta.partition, meta.offset));
    }
    stored
}

/// Produces `per_partition` records into each of `partitions` partitions.
async fn produce_per_partition(
    broker: &TestBroker,
    topic: &str,
    partitions: u32,
    per_partition: u32,
) {
    let producer = Producer::new(broker.client().await, small_batches());
    let mut acks = Vec::new();
    for p in 0..partitions {
        for i in 0..per_partition {
            let record = ProducerRecord::new(topic, format!("{p}:{i}")).partition(p);
            acks.push(producer.enqueue(record).await.expect("enqueue a record"));
        }
    }
    producer.flush().await.expect("flush the producer");
    for ack in acks {
        ack.await.expect("record acknowledged");
    }
}

/// The partition numbers a consumer holds (assigned, or being handed over).
fn partitions(consumer: &Consumer) -> BTreeSet<u32> {
    consumer
        .assignment()
        .iter()
        .map(|tp| tp.partition)
        .collect()
}

/// The partition numbers the broker says `member_id` owns.
fn broker_view(desc: &GroupDescription, member_id: &str) -> Option<BTreeSet<u32>> {
    desc.members
        .iter()
        .find(|m| m.member_id == member_id)
        .map(|m| m.assigned.iter().map(|p| p.partition).collect())
}

/// Whether the group is stable with exactly `consumers` as members, each of
/// the topic's `partition_count` partitions owned by exactly one member, and
/// every consumer holding exactly what the broker says it owns.
fn settled(desc: &GroupDescription, consumers: &[&Consumer], partition_count: u32) -> bool {
    if desc.state != "Stable" || desc.members.len() != consumers.len() {
        return false;
    }
    let mut owners: BTreeMap<u32, usize> = BTreeMap::new();
    for member in &desc.members {
        for p in &member.assigned {
            *owners.entry(p.partition).or_default() += 1;
        }
    }
    let each_once = owners.len() == partition_count as usize
        && owners.keys().copied().eq(0..partition_count)
        && owners.values().all(|&n| n == 1);
    each_once
        && consumers.iter().all(|c| {
            c.member_id()
                .and_then(|id| broker_view(desc, id))
                .is_some_and(|owned| owned == partitions(c))
        })
}

/// Polls every consumer once; returns what each got.
async fn poll_round(consumers: &mut [Consumer]) -> Vec<Vec<ConsumerRecord>> {
    let mut got = Vec::with_capacity(consumers.len());
    for consumer in consumers.iter_mut() {
        got.push(consumer.poll(POLL).await.expect("poll"));
    }
    got
}

/// Polls round-robin until the group settles ([`settled`]); returns the
/// description and the records each consumer got meanwhile.
async fn converge(
    consumers: &mut [Consumer],
    admin: &Admin,
    group: &str,
    partition_count: u32,
) -> (GroupDescription, Vec<Vec<ConsumerRecord>>) {
    let mut records: Vec<Vec<ConsumerRecord>> = vec![Vec::new(); consumers.len()];
    let mut last = None;
    for _ in 0..MAX_ROUNDS {
        for (sink, got) in records.iter_mut().zip(poll_round(consumers).await) {
            sink.extend(got);
        }
        let desc = admin
            .describe_group(group)
            .await
            .expect("describe the group");
        let views: Vec<&Consumer> = consumers.iter().collect();
        if settled(&desc, &views, partition_count) {
            return (desc, records);
        }
        last = Some(desc);
    }
    panic!("group {group} did not settle within {MAX_ROUNDS} rounds; last seen: {last:#?}");
}

/// Polls round-robin until the consumers got `total` records between them
/// (counting what `consumed` holds already), each noted with its consumer.
async fn poll_until(
    consumers: &mut [Consumer],
    consumed: &mut Vec<(usize, u32, u64)>,
    total: usize,
) {
    for _ in 0..MAX_ROUNDS {
        if consumed.len() >= total {
            return;
        }
        for (i, got) in poll_round(consumers).await.into_iter().enumerate() {
            consumed.extend(got.iter().map(|r| (i, r.partition, r.offset)));
        }
    }
    assert!(
        consumed.len() >= total,
        "only {} of {total} records consumed within {MAX_ROUNDS} rounds",
        consumed.len()
    );
}

/// Asserts that `consumed` holds every record of `produced` exactly once.
fn assert_exactly_once(consumed: impl IntoIterator<Item = (u32, u64)>, produced: &[(u32, u64)]) {
    let mut counts: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    for record in consumed {
        *counts.entry(record).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|&(_, &n)| n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "{} records consumed more than once, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(20)]
    );
    let expected: BTreeSet<(u32, u64)> = produced.iter().copied().collect();
    assert_eq!(
        expected.len(),
        produced.len(),
        "the broker stored two records at one offset"
    );
    let got: BTreeSet<(u32, u64)> = counts.into_keys().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{} records never consumed, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let unexpected: Vec<_> = got.difference(&expected).collect();
    assert!(
        unexpected.is_empty(),
        "records consumed but never produced: {unexpected:?}"
    );
}

/// The error code of each per-partition result (`None` for success).
fn codes<T>(results: &[Result<T, quiver_client::WireError>]) -> Vec<Option<ErrorCode>> {
    results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.code))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Exactly once when nobody fails
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_consumes_every_record_exactly_once_when_nobody_fails() {
    let broker = TestBroker::start().await;
    broker.create_topic("orders", 6).await;
    let mut produced = produce_keyed(&broker, "orders", 0..600).await;
    let admin = broker.admin().await;

    // All three join before anyone heartbeats, so the first assignment is
    // final: nothing moves while the 600 records are read.
    let mut consumers = Vec::new();
    for i in 0..3 {
        let commits = Some(HAND_OVER_COMMITS_ONLY);
        let config = consumer_config("range", &format!("exact-{i}"), commits);
        consumers.push(subscribed(&broker, "exact", "orders", config).await);
    }
    let mut consumed = Vec::new();
    poll_until(&mut consumers, &mut consumed, 600).await;
    let (desc, late) = converge(&mut consumers, &admin, "exact", 6).await;
    for (i, got) in late.into_iter().enumerate() {
        consumed.extend(got.iter().map(|r| (i, r.partition, r.offset)));
    }
    assert_exactly_once(consumed.iter().map(|&(_, p, o)| (p, o)), &produced);
    // Each member read only what it owns, and every member read something.
    for (i, consumer) in consumers.iter().enumerate() {
        let owned = broker_view(&desc, consumer.member_id().unwrap()).unwrap();
        assert_eq!(owned.len(), 2, "member {i} owns {owned:?}");
        let read: BTreeSet<u32> = consumed
            .iter()
            .filter(|&&(c, _, _)| c == i)
            .map(|&(_, p, _)| p)
            .collect();
        assert_eq!(read, owned, "member {i} read partitions it does not own");
    }

    // A member leaves cleanly (auto-commit commits first) while more records
    // arrive: its partitions move, and still each record is read once.
    let leaving = consumers.pop().unwrap();
    leaving.close().await.unwrap();
    produced.extend(produce_keyed(&broker, "orders", 600..900).await);
    poll_until(&mut consumers, &mut consumed, 900).await;
    let (_, late) = converge(&mut consumers, &admin, "exact", 6).await;
    for (i, got) in late.into_iter().enumerate() {
        consumed.extend(got.iter().map(|r| (i, r.partition, r.offset)));
    }
    // A few more rounds bring nothing new.
    for _ in 0..3 {
        for (i, got) in poll_round(&mut consumers).await.into_iter().enumerate() {
            consumed.extend(got.iter().map(|r| (i, r.partition, r.offset)));
        }
    }
    assert_exactly_once(consumed.iter().map(|&(_, p, o)| (p, o)), &produced);
    for consumer in consumers {
        consumer.close().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// 2. More members than partitions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_beyond_the_partition_count_get_nothing() {
    let broker = TestBroker::start().await;
    broker.create_topic("pair", 2).await;
    produce_per_partition(&broker, "pair", 2, 20).await;
    let admin = broker.admin().await;
    let mut consumers = Vec::new();
    for i in 0..4 {
        let config = consumer_config("range", &format!("extra-{i}"), Some(AUTO_COMMIT));
        consumers.push(subscribed(&broker, "extra", "pair", config).await);
    }
    let (desc, _) = converge(&mut consumers, &admin, "extra", 2).await;

    let owned: Vec<BTreeSet<u32>> = consumers.iter().map(partitions).collect();
    let owners: Vec<&BTreeSet<u32>> = owned.iter().filter(|s| !s.is_empty()).collect();
    assert_eq!(owners.len(), 2, "assignments: {owned:?}");
    assert!(
        owners.iter().all(|s| s.len() == 1),
        "assignments: {owned:?}"
    );
    let union: BTreeSet<u32> = owners.iter().flat_map(|s| s.iter().copied()).collect();
    assert_eq!(union, BTreeSet::from([0, 1]), "owners overlap: {owned:?}");
    // The broker agrees: four members, two of them with nothing.
    assert_eq!(desc.members.len(), 4);
    let idle = desc
        .members
        .iter()
        .filter(|m| m.assigned.is_empty())
        .count();
    assert_eq!(idle, 2, "{desc:#?}");

    // More rounds change nothing, and only the owners read records.
    let mut readers: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
    for _ in 0..10 {
        for (i, got) in poll_round(&mut consumers).await.into_iter().enumerate() {
            for record in got {
                readers.entry(record.partition).or_default().insert(i);
            }
        }
    }
    let after: Vec<BTreeSet<u32>> = consumers.iter().map(partitions).collect();
    assert_eq!(after, owned, "the assignment moved in a stable group");
    for (p, who) in &readers {
        assert_eq!(who.len(), 1, "partition {p} read by {who:?}");
    }
    for consumer in consumers {
        consumer.close().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// 3. Churn: members joining and leaving mid-stream
// ---------------------------------------------------------------------------

/// A membership change in the churn test.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Member `n` joins; with auto-commit if `true`, else it commits
    /// explicitly (on `Revoked`, now and then, and before closing).
    Join(usize, bool),
    /// Member `n` closes (leaves the group).
    Leave(usize),
}

/// One churn member and what the test knows of it.
struct Churner {
    consumer: Consumer,
    auto_commit: bool,
    /// Where it resumed each partition: the committed offset when the
    /// partition was assigned (0, the log start, without one).
    resume_from: BTreeMap<u32, u64>,
    /// Partitions assigned for which it has had no record yet.
    fresh: BTreeSet<u32>,
    polls: u64,
}

/// The churn test's state, checked after every poll.
struct Churn {
    admin: Admin,
    group: String,
    topic: String,
    /// Index = member number; `None` before joining and after leaving.
    members: Vec<Option<Churner>>,
    /// Which member fetches each partition, per the members' own rebalance
    /// events: a partition is added on `Assigned` and removed on `Revoked`
    /// (it is no longer fetched from then on) or when the member closes.
    /// Adding a partition that is still there fails the test: two members
    /// would fetch it at once.
    fetcher: BTreeMap<u32, usize>,
    /// How often each (partition, offset) was processed.
    seen: HashMap<(u32, u64), u32>,
    /// Per partition, the members that processed records of it.
    readers: BTreeMap<u32, BTreeSet<usize>>,
    /// The global step: incremented after each poll.
    step: u64,
    /// Records processed a second time (after a hand-over).
    duplicates: u64,
}

impl Churn {
    fn new(admin: Admin, group: &str, topic: &str) -> Self {
        Self {
            admin,
            group: group.into(),
            topic: topic.into(),
            members: Vec::new(),
            fetcher: BTreeMap::new(),
            seen: HashMap::new(),
            readers: BTreeMap::new(),
            step: 0,
            duplicates: 0,
        }
    }

    fn member(&mut self, n: usize) -> &mut Churner {
        self.members[n].as_mut().expect("a live member")
    }

    async fn apply(&mut self, broker: &TestBroker, change: Change) {
        match change {
            Change::Join(n, auto_commit) => {
                let config = consumer_config(
                    "sticky",
                    &format!("churn-{n}"),
                    auto_commit.then_some(AUTO_COMMIT),
                );
                let consumer = subscribed(broker, &self.group, &self.topic, config).await;
                if self.members.len() <= n {
                    self.members.resize_with(n + 1, || None);
                }
                assert!(self.members[n].is_none(), "member {n} joined twice");
                self.members[n] = Some(Churner {
                    consumer,
                    auto_commit,
                    resume_from: BTreeMap::new(),
                    fresh: BTreeSet::new(),
                    polls: 0,
                });
            }
            Change::Leave(n) => {
                let mut member = self.members[n].take().expect("only live members leave");
                // From now on it fetches nothing.
                self.fetcher.retain(|_, &mut who| who != n);
                if !member.auto_commit {
                    member
                        .consumer
                        .commit()
                        .await
                        .expect("commit before closing");
                }
                member.consumer.close().await.expect("close");
            }
        }
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Churner)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(n, m)| m.as_ref().map(|m| (n, m)))
    }

    /// Whether every live member fetches at least one partition.
    fn all_busy(&self) -> bool {
        self.live()
            .all(|(n, _)| self.fetcher.values().any(|&who| who == n))
    }

    /// Polls every live member once.
    async fn round(&mut self) {
        for n in 0..self.members.len() {
            if self.members[n].is_some() {
                self.poll(n).await;
            }
        }
    }

    /// One step: polls member `n`, follows its rebalance events, checks the
    /// records it got, and commits now and then if it commits explicitly.
    async fn poll(&mut self, n: usize) {
        let member = self.member(n);
        let records = member.consumer.poll(POLL).await.expect("poll");
        member.polls += 1;
        self.step += 1;
        let assigned = self.follow_events(n).await;
        if !assigned.is_empty() {
            self.note_resume_points(n, assigned).await;
        }
        self.check_records(n, records);
        let member = self.member(n);
        if !member.auto_commit && member.polls.is_multiple_of(15) {
            if member.polls.is_multiple_of(30) {
                member.consumer.commit().await.expect("commit");
            } else {
                let commit = member.consumer.commit_async();
                commit
                    .await
                    .expect("commit task")
                    .expect("asynchronous commit");
            }
        }
    }

    /// Applies member `n`'s rebalance events to [`Churn::fetcher`]; returns
    /// the partitions newly assigned.
    async fn follow_events(&mut self, n: usize) -> Vec<u32> {
        let step = self.step;
        let member = self.members[n].as_mut().expect("a live member");
        let mut assigned = Vec::new();
        for event in member.consumer.take_rebalance_events() {
            match event {
                RebalanceEvent::Revoked(tps) => {
                    for tp in &tps {
                        let fetcher = self.fetcher.remove(&tp.partition);
                        assert_eq!(
                            fetcher,
                            Some(n),
                            "step {step}: member {n} revoked {tp:?} it did not fetch"
                        );
                        member.fresh.remove(&tp.partition);
                    }
                    if !member.auto_commit {
                        // Between this poll and the next, which releases them.
                        let positions: Vec<(TopicPartition, u64)> = tps
                            .iter()
                            .filter_map(|tp| member.consumer.position(tp).map(|o| (tp.clone(), o)))
                            .collect();
                        let commit = member.consumer.commit_offsets(positions);
                        commit.await.expect("commit revoked partitions");
                    }
                }
                RebalanceEvent::Lost(tps) => panic!(
                    "member {n} lost {tps:?} at step {step}: evicted, so this machine is too slow \
                     for a {SESSION:?} session"
                ),
                RebalanceEvent::Assigned(tps) => {
                    for tp in tps {
                        if let Some(other) = self.fetcher.insert(tp.partition, n) {
                            panic!(
                                "step {step}: partition {} assigned to member {n} while member {other} \
                                 still fetches it",
                                tp.partition
                            );
                        }
                        member.fresh.insert(tp.partition);
                        assigned.push(tp.partition);
                    }
                }
            }
        }
        assigned
    }

    /// Notes where member `n` must resume newly `assigned` partitions: their
    /// committed offsets now. Nobody commits them between the member's own
    /// lookup (during its poll) and here: the old owner released them after
    /// its last commit, and the new one has not committed them yet.
    async fn note_resume_points(&mut self, n: usize, assigned: Vec<u32>) {
        let committed = self
            .admin
            .committed_offsets(&self.group)
            .await
            .expect("committed offsets");
        let topic = self.topic.clone();
        let member = self.member(n);
        for p in assigned {
            let offset = committed
                .iter()
                .find(|c| c.partition.topic == topic && c.partition.partition == p)
                .and_then(|c| c.offset)
                .unwrap_or(0);
            member.resume_from.insert(p, offset);
        }
    }

    /// Checks the records member `n` got at this step: all from partitions
    /// it fetches; the first of a newly assigned partition at its committed
    /// offset; a record processed before only at or after that offset.
    fn check_records(&mut self, n: usize, records: Vec<ConsumerRecord>) {
        let step = self.step;
        let member = self.members[n].as_mut().expect("a live member");
        for record in records {
            let (p, o) = (record.partition, record.offset);
            assert_eq!(
                self.fetcher.get(&p),
                Some(&n),
                "step {step}: member {n} got {p}/{o} from a partition it does not fetch"
            );
            let resume = member.resume_from[&p];
            if member.fresh.remove(&p) {
                assert_eq!(
                    o, resume,
                    "step {step}: member {n} resumed partition {p} at {o}, not at {resume}"
                );
            }
            let count = self.seen.entry((p, o)).or_default();
            *count += 1;
            if *count > 1 {
                assert!(
                    o >= resume,
                    "step {step}: member {n} re-read {p}/{o}, before the committed {resume}"
                );
                self.duplicates += 1;
            }
            self.readers.entry(p).or_default().insert(n);
        }
    }

    /// Applies `plan` one change at a time, each [`STEPS_BETWEEN_CHANGES`]
    /// steps after the previous one and once every live member fetches
    /// something; sets `stop` as long again after the last; returns when
    /// `producing` has finished.
    async fn run_plan(
        &mut self,
        broker: &TestBroker,
        plan: &[Change],
        stop: &AtomicBool,
        producing: &JoinHandle<Vec<(u32, u64)>>,
    ) {
        let mut next = 0;
        let mut last_change = 0;
        for _ in 0..MAX_ROUNDS {
            if stop.load(Ordering::SeqCst) && producing.is_finished() {
                return;
            }
            let due = self.step >= last_change + STEPS_BETWEEN_CHANGES;
            if next < plan.len() && due && self.all_busy() {
                self.apply(broker, plan[next]).await;
                next += 1;
                last_change = self.step;
            } else if next == plan.len() && due {
                stop.store(true, Ordering::SeqCst);
            }
            self.round().await;
        }
        panic!(
            "{next} of {} membership changes within {MAX_ROUNDS} rounds (producer finished: {})",
            plan.len(),
            producing.is_finished()
        );
    }

    /// Polls until every record of `produced` was processed.
    async fn process_all(&mut self, produced: &[(u32, u64)]) {
        for _ in 0..MAX_ROUNDS {
            if produced.iter().all(|r| self.seen.contains_key(r)) {
                return;
            }
            self.round().await;
        }
        let missing: Vec<_> = produced
            .iter()
            .filter(|r| !self.seen.contains_key(r))
            .collect();
        panic!(
            "{} records never processed within {MAX_ROUNDS} rounds, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
    }

    /// Polls until the group settles ([`settled`]).
    async fn settle(&mut self, partition_count: u32) -> GroupDescription {
        let mut last = None;
        for _ in 0..MAX_ROUNDS {
            self.round().await;
            let desc = self
                .admin
                .describe_group(&self.group)
                .await
                .expect("describe the group");
            let live: Vec<&Consumer> = self.live().map(|(_, m)| &m.consumer).collect();
            if settled(&desc, &live, partition_count) {
                return desc;
            }
            last = Some(desc);
        }
        panic!("the churn group did not settle within {MAX_ROUNDS} rounds; last seen: {last:#?}");
    }
}

/// Steps between two membership changes of the churn test.
const STEPS_BETWEEN_CHANGES: u64 = 30;

/// Produces keyed records in small rounds until `stop` is set or
/// [`MAX_STREAM_RECORDS`] are stored; returns where each was stored.
async fn produce_until_stopped(
    client: Client,
    topic: String,
    stop: Arc<AtomicBool>,
) -> Vec<(u32, u64)> {
    let producer = Producer::new(client, small_batches());
    let mut stored = Vec::new();
    let mut i = 0u32;
    while !stop.load(Ordering::SeqCst) && stored.len() < MAX_STREAM_RECORDS {
        let mut acks = Vec::new();
        for _ in 0..10 {
            let record = ProducerRecord::new(topic.as_str(), format!("value-{i}"))
                .key(format!("key-{}", i % 31));
            acks.push(producer.enqueue(record).await.expect("enqueue a record"));
            i += 1;
        }
        producer.flush().await.expect("flush the producer");
        for ack in acks {
            let meta = ack.await.expect("record acknowledged");
            stored.push((meta.partition, meta.offset));
        }
        // Pacing only, to spread the records over the membership changes;
        // nothing waits for it.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_and_leaving_mid_stream_never_share_a_partition_nor_lose_records() {
    const PARTITIONS: u32 = 6;
    let broker = TestBroker::start().await;
    broker.create_topic("stream", PARTITIONS).await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = tokio::spawn(produce_until_stopped(
        broker.client().await,
        "stream".into(),
        Arc::clone(&stop),
    ));
    let mut churn = Churn::new(broker.admin().await, "churn", "stream");
    churn.apply(&broker, Change::Join(0, true)).await;
    churn.apply(&broker, Change::Join(1, false)).await;
    let plan = [
        Change::Join(2, true),
        Change::Join(3, false),
        Change::Leave(0),
        Change::Leave(1),
        Change::Join(4, true),
        Change::Leave(2),
    ];
    churn.run_plan(&broker, &plan, &stop, &producing).await;
    let produced = producing.await.unwrap();

    // Every produced record is processed at least once, and nothing else.
    churn.process_all(&produced).await;
    let produced_set: BTreeSet<(u32, u64)> = produced.iter().copied().collect();
    let unexpected: Vec<_> = churn
        .seen
        .keys()
        .filter(|r| !produced_set.contains(r))
        .collect();
    assert!(
        unexpected.is_empty(),
        "processed but never produced: {unexpected:?}"
    );
    // The test did what it meant to: partitions changed hands mid-stream.
    let shared = churn.readers.values().filter(|who| who.len() > 1).count();
    assert!(
        shared > 0,
        "no partition was read by two members in turn: {:?}",
        churn.readers
    );

    // After the last rebalance each partition has one owner: the member
    // that, by its own events, fetches it.
    let desc = churn.settle(PARTITIONS).await;
    assert_eq!(desc.members.len(), 2, "{desc:#?}");
    for partition in &desc.partitions {
        let owner = partition
            .owner
            .as_deref()
            .expect("every partition has an owner");
        let fetcher = churn.fetcher[&partition.partition.partition];
        let fetcher_id = churn.members[fetcher]
            .as_ref()
            .unwrap()
            .consumer
            .member_id()
            .unwrap();
        assert_eq!(owner, fetcher_id, "partition {:?}", partition.partition);
    }
    println!(
        "churn: {} records, {} polls, {} re-deliveries after hand-overs, readers per partition {:?}",
        produced.len(),
        churn.step,
        churn.duplicates,
        churn.readers
    );

    // Closing commits everything: no lag is left.
    for n in [3, 4] {
        churn.apply(&broker, Change::Leave(n)).await;
    }
    let desc = churn.admin.describe_group("churn").await.unwrap();
    assert_eq!(desc.state, "Empty");
    assert_eq!(desc.partitions.len(), PARTITIONS as usize);
    for partition in &desc.partitions {
        assert_eq!(partition.lag, 0, "{partition:?}");
    }
}

// ---------------------------------------------------------------------------
// 4. Eviction after the session timeout
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_is_evicted_after_its_session_timeout() {
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let broker_clock: Arc<dyn Clock> = clock.clone();
    let broker =
        TestBroker::start_with(move |config| config.clock = Arc::clone(&broker_clock)).await;
    broker.create_topic("jobs", 4).await;
    produce_per_partition(&broker, "jobs", 4, 10).await;
    let admin = broker.admin().await;

    // The survivor's session is long, the victim's short: with the clock
    // frozen neither heartbeats into a newer time, so one jump past the
    // short session evicts the victim alone.
    let mut survivor_config = consumer_config("range", "survivor", None);
    survivor_config.group.session_timeout = Duration::from_mins(1);
    let survivor = subscribed(&broker, "workers", "jobs", survivor_config).await;
    let victim = subscribed(
        &broker,
        "workers",
        "jobs",
        consumer_config("range", "victim", None),
    )
    .await;
    let mut consumers = vec![survivor, victim];
    let (desc, mut records) = converge(&mut consumers, &admin, "workers", 4).await;
    assert!(
        desc.members.iter().all(|m| m.assigned.len() == 2),
        "{desc:#?}"
    );
    let victim = consumers.pop().unwrap();
    let mut survivor = consumers.pop().unwrap();
    let survivor_id = survivor.member_id().unwrap().to_owned();
    let mut seen: BTreeSet<(u32, u64)> = records
        .swap_remove(0)
        .iter()
        .map(|r| (r.partition, r.offset))
        .collect();

    // Killed: no close, no LeaveGroup; its connection goes with it.
    drop(victim);
    // While the broker's clock stands still nothing expires.
    for _ in 0..10 {
        seen.extend(
            survivor
                .poll(POLL)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.partition, r.offset)),
        );
    }
    let desc = admin.describe_group("workers").await.unwrap();
    assert_eq!(
        desc.members.len(),
        2,
        "evicted with the clock stopped: {desc:#?}"
    );
    assert_eq!(partitions(&survivor).len(), 2);

    clock.advance(2 * SESSION.as_millis() as i64);
    let mut took_over = false;
    for _ in 0..MAX_ROUNDS {
        seen.extend(
            survivor
                .poll(POLL)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.partition, r.offset)),
        );
        let desc = admin.describe_group("workers").await.unwrap();
        if settled(&desc, &[&survivor], 4) {
            took_over = true;
            break;
        }
    }
    assert!(
        took_over,
        "the survivor never owned every partition alone: {:?}",
        survivor.assignment()
    );
    assert_eq!(
        survivor.member_id(),
        Some(survivor_id.as_str()),
        "the survivor was evicted too"
    );
    let desc = admin.describe_group("workers").await.unwrap();
    assert_eq!(desc.members.len(), 1);
    assert_eq!(desc.members[0].member_id, survivor_id);
    assert_eq!(partitions(&survivor), BTreeSet::from([0, 1, 2, 3]));

    // Nothing was committed, so it reads the victim's partitions from the
    // start: in the end it has seen every record.
    let all: BTreeSet<(u32, u64)> = (0..4).flat_map(|p| (0..10).map(move |o| (p, o))).collect();
    for _ in 0..MAX_ROUNDS {
        if seen.is_superset(&all) {
            break;
        }
        seen.extend(
            survivor
                .poll(POLL)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.partition, r.offset)),
        );
    }
    assert_eq!(seen, all);
    survivor.close().await.unwrap();
}

// ---------------------------------------------------------------------------
// 5. Fencing
// ---------------------------------------------------------------------------

/// A raw commit of `offsets` (partition, offset) in `topic`; returns each
/// partition's error code.
async fn raw_commit(
    client: &Client,
    member: &GroupMemberRef,
    topic: &str,
    offsets: &[(u32, u64)],
) -> Vec<Option<ErrorCode>> {
    let request = CommitOffsetsRequest {
        group: member.group.clone(),
        member_id: member.member_id.clone(),
        member_epoch: member.member_epoch,
        offsets: offsets
            .iter()
            .map(|&(partition, offset)| OffsetCommit {
                partition: PartitionRef {
                    topic: topic.into(),
                    partition,
                },
                offset,
                metadata: None,
            })
            .collect(),
    };
    let response = client
        .request(&request, Vec::new())
        .await
        .expect("commit request")
        .0;
    assert_eq!(response.results.len(), offsets.len());
    codes(&response.results)
}

/// A raw fetch of one partition from offset 0 as `member`; returns the
/// partition's error code, or the bytes fetched.
async fn raw_fetch(
    client: &Client,
    member: &GroupMemberRef,
    topic: &str,
    partition: u32,
) -> Result<u32, ErrorCode> {
    let request = FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 64 * 1024,
        partitions: vec![FetchPartition {
            topic: topic.into(),
            partition,
            offset: 0,
            max_bytes: 64 * 1024,
        }],
        member: Some(member.clone()),
        module: None,
    };
    let response = client
        .request(&request, Vec::new())
        .await
        .expect("fetch request")
        .0;
    assert_eq!(response.partitions.len(), 1);
    let result = response.partitions.into_iter().next().expect("one result");
    result.outcome.map(|data| data.bytes).map_err(|e| e.code)
}

/// A raw heartbeat.
async fn raw_heartbeat(
    client: &Client,
    member: &GroupMemberRef,
    owned: &[PartitionRef],
) -> Result<HeartbeatResponse, ClientError> {
    let request = HeartbeatRequest {
        group: member.group.clone(),
        member_id: member.member_id.clone(),
        member_epoch: member.member_epoch,
        owned: owned.to_vec(),
    };
    client.request(&request, Vec::new()).await.map(|r| r.0)
}

/// Two members of group `fenced` joined by hand, with long sessions (they
/// heartbeat only when told), after one heartbeat each: their identities
/// at their current epochs, and the one partition of `ledger` each owns.
async fn two_raw_members(client: &Client) -> Vec<(GroupMemberRef, PartitionRef)> {
    let mut members = Vec::new();
    for name in ["raw-a", "raw-b"] {
        let join = JoinGroupRequest {
            group: "fenced".into(),
            topics: vec!["ledger".into()],
            strategy: "range".into(),
            session_timeout_ms: 60_000,
            client_id: name.into(),
        };
        let joined: JoinGroupResponse = client.request(&join, Vec::new()).await.expect("join").0;
        members.push(GroupMemberRef {
            group: "fenced".into(),
            member_id: joined.member_id,
            member_epoch: joined.member_epoch,
        });
    }
    let mut owned = Vec::new();
    for mut member in members {
        let response = raw_heartbeat(client, &member, &[])
            .await
            .expect("heartbeat");
        assert_eq!(response.assigned.len(), 1, "{response:?}");
        assert!(response.member_epoch > member.member_epoch, "{response:?}");
        member.member_epoch = response.member_epoch;
        owned.push((member, response.assigned[0].clone()));
    }
    assert_ne!(owned[0].1, owned[1].1, "two owners of one partition");
    owned
}

/// `member` with another epoch.
fn at_epoch(member: &GroupMemberRef, member_epoch: u64) -> GroupMemberRef {
    GroupMemberRef {
        member_epoch,
        ..member.clone()
    }
}

/// `member`'s group with a member id nobody has.
fn unknown_member(member: &GroupMemberRef) -> GroupMemberRef {
    GroupMemberRef {
        member_id: "nobody-999".into(),
        ..member.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_unknown_or_foreign_commits_are_fenced() {
    let broker = TestBroker::start().await;
    broker.create_topic("ledger", 2).await;
    produce_per_partition(&broker, "ledger", 2, 10).await;
    let client = broker.client().await;
    let admin = broker.admin().await;
    let members = two_raw_members(&client).await;
    let ((a, pa), (b, pb)) = (&members[0], &members[1]);
    let (pa, pb) = (pa.partition, pb.partition);
    let epoch = a.member_epoch;
    let standalone = GroupMemberRef {
        member_id: String::new(),
        ..at_epoch(a, 0)
    };

    // The current epoch and an owned partition pass; the rest are refused
    // per partition.
    assert_eq!(raw_commit(&client, a, "ledger", &[(pa, 3)]).await, [None]);
    let fenced = [Some(ErrorCode::FencedMemberEpoch)];
    assert_eq!(
        raw_commit(&client, &at_epoch(a, epoch - 1), "ledger", &[(pa, 7)]).await,
        fenced,
        "stale"
    );
    assert_eq!(
        raw_commit(&client, &at_epoch(a, epoch + 1), "ledger", &[(pa, 7)]).await,
        fenced,
        "future"
    );
    let unknown = [Some(ErrorCode::UnknownMember)];
    assert_eq!(
        raw_commit(&client, &unknown_member(a), "ledger", &[(pa, 7)]).await,
        unknown
    );
    assert_eq!(
        raw_commit(&client, &standalone, "ledger", &[(pa, 7)]).await,
        unknown,
        "a standalone commit while the group has members"
    );
    assert_eq!(
        raw_commit(&client, a, "ledger", &[(pa, 4), (pb, 7)]).await,
        [None, Some(ErrorCode::NotAssigned)]
    );
    assert_eq!(raw_commit(&client, b, "ledger", &[(pb, 5)]).await, [None]);
    // Nothing refused was stored.
    let committed: BTreeMap<u32, Option<u64>> = admin
        .committed_offsets("fenced")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition.partition, c.offset))
        .collect();
    assert_eq!(committed, BTreeMap::from([(pa, Some(4)), (pb, Some(5))]));

    // After leaving, the member is unknown.
    let leave = LeaveGroupRequest {
        group: "fenced".into(),
        member_id: a.member_id.clone(),
    };
    client.request(&leave, Vec::new()).await.unwrap();
    assert_eq!(raw_commit(&client, a, "ledger", &[(pa, 9)]).await, unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_unknown_or_foreign_fetches_and_heartbeats_are_fenced() {
    let broker = TestBroker::start().await;
    broker.create_topic("ledger", 2).await;
    produce_per_partition(&broker, "ledger", 2, 10).await;
    let client = broker.client().await;
    let members = two_raw_members(&client).await;
    let (a, owned) = &members[0];
    let pa = owned.partition;
    let pb = members[1].1.partition;
    let epoch = a.member_epoch;
    let (stale, future, unknown) = (
        at_epoch(a, epoch - 1),
        at_epoch(a, epoch + 1),
        unknown_member(a),
    );

    // Fetches: the member's own partition at its epoch only.
    assert!(raw_fetch(&client, a, "ledger", pa).await.unwrap() > 0);
    assert_eq!(
        raw_fetch(&client, &stale, "ledger", pa).await,
        Err(ErrorCode::FencedMemberEpoch)
    );
    assert_eq!(
        raw_fetch(&client, &future, "ledger", pa).await,
        Err(ErrorCode::FencedMemberEpoch)
    );
    assert_eq!(
        raw_fetch(&client, &unknown, "ledger", pa).await,
        Err(ErrorCode::UnknownMember)
    );
    assert_eq!(
        raw_fetch(&client, a, "ledger", pb).await,
        Err(ErrorCode::NotAssigned)
    );

    // Heartbeats accept the epoch just before the current one (its answer
    // may have been lost), but nothing older or newer.
    let response = raw_heartbeat(&client, &stale, std::slice::from_ref(owned))
        .await
        .unwrap();
    assert_eq!(response.member_epoch, epoch);
    assert_eq!(response.assigned, std::slice::from_ref(owned));
    for fenced in [at_epoch(a, 0), future] {
        let err = raw_heartbeat(&client, &fenced, std::slice::from_ref(owned))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::FencedMemberEpoch), "{err}");
    }
    let err = raw_heartbeat(&client, &unknown, &[]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownMember), "{err}");

    // After leaving, the member's fetches are refused.
    let leave = LeaveGroupRequest {
        group: "fenced".into(),
        member_id: a.member_id.clone(),
    };
    client.request(&leave, Vec::new()).await.unwrap();
    assert_eq!(
        raw_fetch(&client, a, "ledger", pa).await,
        Err(ErrorCode::UnknownMember)
    );
}

// ---------------------------------------------------------------------------
// 6. Committed offsets across a restart; reset and delete
// ---------------------------------------------------------------------------

/// Committed offsets of `group` by partition.
async fn committed(admin: &Admin, group: &str) -> BTreeMap<u32, u64> {
    admin
        .committed_offsets(group)
        .await
        .expect("committed offsets")
        .into_iter()
        .map(|c| (c.partition.partition, c.offset.expect("a committed offset")))
        .collect()
}

/// Subscribes a fresh member to `group` and reads until it has `expected`
/// records; returns them as (partition, offset), after closing it.
async fn read_as_new_member(
    broker: &TestBroker,
    group: &str,
    auto_commit: Option<Duration>,
    expected: usize,
) -> Vec<(u32, u64)> {
    let config = consumer_config("range", "resumer", auto_commit);
    let mut consumers = vec![subscribed(broker, group, "ledger", config).await];
    let mut consumed = Vec::new();
    poll_until(&mut consumers, &mut consumed, expected).await;
    // Nothing more than that.
    for _ in 0..3 {
        for got in poll_round(&mut consumers).await {
            consumed.extend(got.iter().map(|r| (0, r.partition, r.offset)));
        }
    }
    let member = consumers.pop().expect("one consumer");
    member.close().await.expect("close");
    let mut records: Vec<(u32, u64)> = consumed.into_iter().map(|(_, p, o)| (p, o)).collect();
    records.sort_unstable();
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_restart_and_a_new_member_resumes_from_them() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("ledger", 3).await;
    produce_per_partition(&broker, "ledger", 3, 20).await;

    // A member reads everything and commits 12 in each partition.
    let config = consumer_config("range", "first", None);
    let mut consumers = vec![subscribed(&broker, "books", "ledger", config).await];
    let mut consumed = Vec::new();
    poll_until(&mut consumers, &mut consumed, 60).await;
    let mut first = consumers.pop().unwrap();
    let positions = (0..3)
        .map(|p| (TopicPartition::new("ledger", p), 12))
        .collect();
    first.commit_offsets(positions).await.unwrap();
    first.close().await.unwrap();
    let expected: BTreeMap<u32, u64> = (0..3).map(|p| (p, 12)).collect();
    assert_eq!(committed(&broker.admin().await, "books").await, expected);

    broker.restart().await;
    let admin = broker.admin().await;
    assert_eq!(
        committed(&admin, "books").await,
        expected,
        "lost in the restart"
    );
    assert!(
        admin
            .list_groups()
            .await
            .unwrap()
            .contains(&"books".to_owned())
    );
    let desc = admin.describe_group("books").await.unwrap();
    assert_eq!(desc.state, "Empty");
    assert_eq!(desc.partitions.len(), 3, "{desc:#?}");
    assert!(
        desc.partitions
            .iter()
            .all(|p| p.committed == Some(12) && p.lag == 8),
        "{desc:#?}"
    );

    // A new member resumes at 12: no committed record comes again.
    let records = read_as_new_member(&broker, "books", Some(AUTO_COMMIT), 24).await;
    let want: Vec<(u32, u64)> = (0..3).flat_map(|p| (12..20).map(move |o| (p, o))).collect();
    assert_eq!(records, want);
    let end: BTreeMap<u32, u64> = (0..3).map(|p| (p, 20)).collect();
    assert_eq!(
        committed(&admin, "books").await,
        end,
        "close commits with auto-commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_delete_wait_for_an_empty_group() {
    let broker = TestBroker::start().await;
    broker.create_topic("ledger", 3).await;
    produce_per_partition(&broker, "ledger", 3, 20).await;
    let admin = broker.admin().await;
    let records = read_as_new_member(&broker, "books", Some(AUTO_COMMIT), 60).await;
    assert_eq!(records.len(), 60);
    let at = |offset| (0..3).map(|p| (p, offset)).collect::<BTreeMap<u32, u64>>();
    assert_eq!(committed(&admin, "books").await, at(20));

    // While the group has a member, reset and delete are refused.
    let config = consumer_config("range", "present", None);
    let mut present = vec![subscribed(&broker, "books", "ledger", config).await];
    let earliest = ResetTarget::Spec(OffsetSpec::Earliest);
    let err = admin
        .reset_offsets("books", "ledger", earliest)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NonEmptyGroup), "{err}");
    let err = admin.delete_group("books").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NonEmptyGroup), "{err}");
    assert_eq!(committed(&admin, "books").await, at(20));
    poll_round(&mut present).await;
    present.pop().unwrap().close().await.unwrap();

    // Empty: reset works, to each target.
    let reset = |to| {
        let admin = admin.clone();
        async move {
            let offsets = admin.reset_offsets("books", "ledger", to).await.unwrap();
            offsets
                .into_iter()
                .map(|c| (c.partition.partition, c.offset.unwrap()))
                .collect::<BTreeMap<u32, u64>>()
        }
    };
    assert_eq!(reset(earliest).await, at(0));
    assert_eq!(committed(&admin, "books").await, at(0));
    assert_eq!(reset(ResetTarget::Spec(OffsetSpec::Latest)).await, at(20));
    assert_eq!(committed(&admin, "books").await, at(20));
    assert_eq!(
        reset(ResetTarget::Offset(1_000)).await,
        at(20),
        "clamped to the high watermark"
    );
    assert_eq!(reset(ResetTarget::Offset(5)).await, at(5));
    assert_eq!(committed(&admin, "books").await, at(5));
    let records = read_as_new_member(&broker, "books", None, 45).await;
    let want: Vec<(u32, u64)> = (0..3).flat_map(|p| (5..20).map(move |o| (p, o))).collect();
    assert_eq!(records, want, "a member resumes at the reset offsets");

    // Empty: delete works, and the group is gone.
    admin.delete_group("books").await.unwrap();
    assert!(admin.committed_offsets("books").await.unwrap().is_empty());
    assert!(
        !admin
            .list_groups()
            .await
            .unwrap()
            .contains(&"books".to_owned())
    );
    let err = admin.describe_group("books").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GroupNotFound), "{err}");
    let err = admin.delete_group("books").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::GroupNotFound), "{err}");
}

// ---------------------------------------------------------------------------
// 7. Strategies
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_balances_five_partitions_over_two_members() {
    let broker = TestBroker::start().await;
    broker.create_topic("five", 5).await;
    let admin = broker.admin().await;
    for strategy in ["range", "roundrobin", "sticky"] {
        let group = format!("balance-{strategy}");
        // Member ids start with the client id, so `a` sorts first.
        let mut consumers = Vec::new();
        for name in ["a", "b"] {
            let config = consumer_config(strategy, name, Some(AUTO_COMMIT));
            consumers.push(subscribed(&broker, &group, "five", config).await);
        }
        let (desc, _) = converge(&mut consumers, &admin, &group, 5).await;
        assert_eq!(desc.strategy.as_deref(), Some(strategy));
        let (a, b) = (partitions(&consumers[0]), partitions(&consumers[1]));
        let mut counts = [a.len(), b.len()];
        counts.sort_unstable();
        assert_eq!(counts, [2, 3], "{strategy}: a {a:?}, b {b:?}");
        assert!(a.is_disjoint(&b), "{strategy}: a {a:?}, b {b:?}");
        match strategy {
            "range" => {
                assert_eq!(a, BTreeSet::from([0, 1, 2]));
                assert_eq!(b, BTreeSet::from([3, 4]));
            }
            "roundrobin" => {
                assert_eq!(a, BTreeSet::from([0, 2, 4]));
                assert_eq!(b, BTreeSet::from([1, 3]));
            }
            _ => {}
        }
        for consumer in consumers {
            consumer.close().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_with_a_bad_strategy_or_session_timeout_are_refused() {
    let broker = TestBroker::start().await;
    broker.create_topic("five", 5).await;
    let join = |strategy: &str, session: Duration| {
        let mut config = consumer_config(strategy, "refused", None);
        config.group.session_timeout = session;
        let client = broker.client();
        async move {
            let mut consumer = Consumer::new(client.await, config);
            consumer
                .subscribe("strict", &["five"])
                .await
                .map(|()| consumer)
        }
    };
    let err = join("range", Duration::from_millis(50)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidSessionTimeout), "{err}");
    let err = join("fair", SESSION).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InconsistentStrategy), "{err}");
    let member = join("range", SESSION).await.unwrap();
    let err = join("sticky", SESSION).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InconsistentStrategy), "{err}");
    member.close().await.unwrap();
    // Once empty, the group takes another strategy.
    join("sticky", SESSION)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
}

#[tokio::test]
async fn several_topics_and_a_topic_that_gains_partitions() {
    let broker = TestBroker::start().await;
    broker.create_topic("views", 2).await;
    broker.create_topic("uploads", 1).await;
    let mut consumer = Consumer::new(
        broker.client().await,
        consumer_config("range", "multi", Some(AUTO_COMMIT)),
    );
    consumer
        .subscribe("multi", &["views", "uploads"])
        .await
        .expect("subscribe");
    let owned = |consumer: &Consumer| -> BTreeSet<(String, u32)> {
        consumer
            .assignment()
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect()
    };
    let wanted = |views: u32| -> BTreeSet<(String, u32)> {
        (0..views)
            .map(|p| ("views".to_owned(), p))
            .chain([("uploads".to_owned(), 0)])
            .collect()
    };
    let mut rounds = 0;
    while owned(&consumer) != wanted(2) {
        consumer.poll(POLL).await.expect("poll");
        rounds += 1;
        assert!(
            rounds < MAX_ROUNDS,
            "never owned both topics: {:?}",
            owned(&consumer)
        );
    }

    // Two more partitions for "views": the next heartbeats rebalance.
    broker
        .admin()
        .await
        .alter_topic(quiver_client::AlterTopicRequest {
            name: "views".into(),
            partitions: Some(4),
            ..quiver_client::AlterTopicRequest::default()
        })
        .await
        .expect("add partitions");
    let mut rounds = 0;
    while owned(&consumer) != wanted(4) {
        consumer.poll(POLL).await.expect("poll");
        rounds += 1;
        assert!(
            rounds < MAX_ROUNDS,
            "never picked up the new partitions: {:?}",
            owned(&consumer)
        );
    }
    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    producer
        .send(ProducerRecord::new("views", "on a new partition").partition(3))
        .await
        .expect("produce");
    let mut got = Vec::new();
    for _ in 0..MAX_ROUNDS {
        got.extend(consumer.poll(POLL).await.expect("poll"));
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got.len(), 1);
    assert_eq!((&*got[0].topic, got[0].partition), ("views", 3));
    let events = consumer.take_rebalance_events();
    assert!(
        events.iter().any(
            |e| matches!(e, RebalanceEvent::Assigned(tps) if tps.iter().any(|tp| tp.partition == 3))
        ),
        "{events:?}"
    );
    consumer.close().await.expect("close");
}
