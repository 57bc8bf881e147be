//! The producer: records accumulate per partition into Kafka v2 batches,
//! which are sent when full or when `linger` has passed.
//!
//! Order: each partition has at most one produce request in flight; batches
//! that fill up meanwhile wait and go together in the next request. Because
//! the broker appends a request's batches in order, records of one partition
//! (and so of one key) are stored in the order they were sent.
//!
//! Memory: records waiting or in flight hold at most
//! [`ProducerConfig::buffer_bytes`]; `enqueue` waits for room beyond that.
//!
//! Retries: an idempotent producer (the default) stamps each batch with its
//! producer id, epoch and the partition's next sequence number when it is
//! sent, and sends the same bytes again after a lost connection, a timeout
//! or a broker shutting down or busy (not a full disk) until
//! [`ProducerConfig::delivery_timeout`]; the broker stores a batch it
//! already has once and answers with its first offset, so a retry neither
//! duplicates nor (the partition staying in flight) reorders records. A
//! batch that fails for good moves the producer to its next epoch, which
//! numbers every partition from 0 again.

use std::collections::{HashMap, HashSet, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quiver_proto::api::{InitProducerRequest, ProduceBatch, ProduceRequest, ProducerIdentity};
use quiver_proto::batch::{BatchBuilder, Compression, Header, NewRecord, compress, set_producer};
use quiver_proto::limits::{
    MAX_BATCH_BYTES, MAX_FRAME_BYTES, MAX_HEAD_BYTES, MAX_PARTITIONS_PER_REQUEST,
    MAX_RECORDS_PER_BATCH, REMEMBERED_PRODUCER_BATCHES,
};
use tokio::sync::{Notify, Semaphore, SemaphorePermit, TryAcquireError};
use tokio::task::JoinHandle;

use crate::ack::{AckReceiver, AckSender};
use crate::admin::Admin;
use crate::client::Client;
use crate::error::ClientError;
use crate::partitioner::partition_for_key;
use crate::reconnect::Backoff;
use crate::wall_clock::WallClock;
use quiver_proto::ErrorCode;

/// How long an idempotent producer retries a batch by default (Kafka's
/// default `delivery.timeout.ms`).
pub const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_mins(2);

/// Largest body one produce request carries.
const MAX_REQUEST_BODY_BYTES: usize = (MAX_FRAME_BYTES - MAX_HEAD_BYTES) as usize;

/// How the producer batches.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// A batch is sent once it holds this many records.
    pub batch_max_records: u32,
    /// ... or this many bytes (at most the broker's batch limit).
    pub batch_max_bytes: usize,
    /// ... or once its first record has waited this long.
    pub linger: Duration,
    /// Bytes of records waiting or in flight, at most (at least one batch).
    /// Larger buffers absorb bursts; smaller ones bound the time a record
    /// waits before it is sent.
    pub buffer_bytes: usize,
    /// How each batch's records are compressed before sending (Kafka's
    /// `compression.type` of a producer); none by default. Compression
    /// runs on the request task, after a batch is sealed; a batch that
    /// would not fit the broker's batch limit compressed is sent as it is.
    pub compression: Compression,
    /// Stamp batches with a producer id and per-partition sequence numbers
    /// (on by default, as in Kafka's clients since 3.0), so that a batch
    /// sent again after a lost connection, a timeout or a broker restart is
    /// stored once and per-partition order holds; the producer then retries
    /// retriable failures itself until `delivery_timeout`. Off: no stamps,
    /// no retries (a failure goes to the record's future at once).
    pub idempotence: bool,
    /// How long an idempotent producer keeps retrying a batch before its
    /// records fail (Kafka's `delivery.timeout.ms`).
    pub delivery_timeout: Duration,
    /// Told about every produce request once it is answered (for metrics
    /// and benchmarks).
    pub observer: Option<RequestObserver>,
}

/// What the producer reports of one produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestStats {
    /// Batches in the request.
    pub batches: usize,
    /// Bytes of those batches.
    pub bytes: usize,
    /// From sending the request to its durable acknowledgement.
    pub latency: Duration,
    /// Whether the broker accepted every batch.
    pub ok: bool,
}

/// A callback for [`RequestStats`]; it runs on the producer's request task,
/// so it should be quick.
#[derive(Clone)]
pub struct RequestObserver(pub Arc<dyn Fn(&RequestStats) + Send + Sync>);

impl std::fmt::Debug for RequestObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestObserver")
    }
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            batch_max_records: 1_000,
            batch_max_bytes: 1024 * 1024,
            linger: Duration::from_millis(5),
            buffer_bytes: 64 * 1024 * 1024,
            compression: Compression::None,
            idempotence: true,
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            observer: None,
        }
    }
}

/// A topic's name, cheap to clone: an application that keeps one and
/// clones it into each record sends without allocating a name per record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for TopicName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TopicName {
    fn from(name: &str) -> Self {
        Self(name.into())
    }
}

impl From<String> for TopicName {
    fn from(name: String) -> Self {
        Self(name.into())
    }
}

impl From<&String> for TopicName {
    fn from(name: &String) -> Self {
        Self(name.as_str().into())
    }
}

/// A record to send.
#[derive(Debug, Clone)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: TopicName,
    /// An explicit partition; otherwise chosen by key, or round-robin.
    pub partition: Option<u32>,
    /// The key; records with one key land on one partition.
    pub key: Option<Bytes>,
    /// The value; `None` sends a null value (a tombstone: in Kafka's
    /// compacted topics, "delete this key"), not an empty one.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
    /// Timestamp in ms since the epoch; the producer's clock when `None`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A keyless record for `topic`.
    pub fn new(topic: impl Into<TopicName>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A tombstone for `key` in `topic`: a record with a null value.
    pub fn tombstone(topic: impl Into<TopicName>, key: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: Some(key.into()),
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sends to this partition.
    #[must_use]
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// Sets the timestamp (ms since the epoch).
    #[must_use]
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
}

/// Resolves when the record's batch is durably stored (or refused).
/// Awaiting it allocates nothing.
#[derive(Debug)]
pub struct DeliveryFuture {
    ack: AckReceiver,
    partition: u32,
    index: u32,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let base = std::task::ready!(Pin::new(&mut self.ack).poll(cx))?;
        Poll::Ready(Ok(RecordMetadata {
            partition: self.partition,
            offset: base + u64::from(self.index),
        }))
    }
}

/// A partition: the topic's number in [`State::names`], and the partition.
/// Integers, so that the per-record lookups hash no string.
type Key = (u32, u32);

/// A topic this producer has sent to.
#[derive(Debug, Clone, Copy)]
struct TopicInfo {
    /// Its number in [`State::names`].
    id: u32,
    /// Its partition count when first seen.
    partitions: u32,
}

/// One produce request to send: a topic and its (partition, batch) pairs.
type TopicRequest = (u32, Vec<(u32, SealedBatch)>);

struct OpenBatch {
    builder: BatchBuilder,
    created: Instant,
    ack: AckSender,
    reserved: usize,
}

struct SealedBatch {
    bytes: Bytes,
    records: u32,
    ack: AckSender,
    reserved: usize,
}

impl OpenBatch {
    fn seal(self) -> SealedBatch {
        SealedBatch {
            records: self.builder.record_count(),
            bytes: Bytes::from(self.builder.finish()),
            ack: self.ack,
            reserved: self.reserved,
        }
    }
}

/// What the producer holds, under one lock. The maps hash with Fx: they
/// are looked up once or twice per record, and the default hasher showed
/// in profiles.
#[derive(Default)]
struct State {
    open: FxHashMap<Key, OpenBatch>,
    ready: FxHashMap<Key, VecDeque<SealedBatch>>,
    in_flight: FxHashSet<Key>,
    topics: FxHashMap<TopicName, TopicInfo>,
    /// Topic names by number.
    names: Vec<TopicName>,
    /// The idempotent producer's identity, once the broker gave one.
    identity: Option<ProducerIdentity>,
    /// Each partition's next sequence number under `identity`.
    sequences: FxHashMap<Key, i32>,
    /// Timestamps for records that come without one.
    clock: WallClock,
}

impl State {
    fn is_idle(&self) -> bool {
        self.open.is_empty() && self.ready.is_empty() && self.in_flight.is_empty()
    }

    /// Numbers a topic first seen with `partitions` partitions.
    fn add_topic(&mut self, name: &TopicName, partitions: u32) -> TopicInfo {
        if let Some(info) = self.topics.get(name.as_str()) {
            return *info;
        }
        let info = TopicInfo {
            id: self.names.len() as u32,
            partitions,
        };
        self.names.push(name.clone());
        self.topics.insert(name.clone(), info);
        info
    }

    fn seal(&mut self, key: Key) {
        if let Some(batch) = self.open.remove(&key) {
            self.ready.entry(key).or_default().push_back(batch.seal());
        }
    }
}

struct Shared {
    client: Client,
    config: ProducerConfig,
    state: Mutex<State>,
    /// Wakes the sender task: a batch is ready or a partition is free.
    wake: Notify,
    /// Signalled whenever a request completes (for `flush`).
    progress: Notify,
    buffer: Semaphore,
    round_robin: AtomicU32,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends records to a broker in batches. Dropping it abandons unsent
/// records; call [`flush`](Self::flush) first.
pub struct Producer {
    shared: Arc<Shared>,
    sender: JoinHandle<()>,
    buffer_bytes: usize,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

impl Producer {
    /// A producer over `client`'s connection. Must be called inside a Tokio
    /// runtime (it starts the sender task).
    pub fn new(client: Client, mut config: ProducerConfig) -> Self {
        config.batch_max_bytes = config.batch_max_bytes.clamp(1, MAX_BATCH_BYTES as usize);
        config.batch_max_records = config.batch_max_records.clamp(1, MAX_RECORDS_PER_BATCH);
        // The buffer must hold at least one full batch.
        let buffer = config
            .buffer_bytes
            .clamp(config.batch_max_bytes, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            client,
            config,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            progress: Notify::new(),
            buffer: Semaphore::new(buffer),
            round_robin: AtomicU32::new(0),
        });
        let sender = tokio::spawn(sender_loop(Arc::clone(&shared)));
        Self {
            shared,
            sender,
            buffer_bytes: buffer,
        }
    }

    /// Sends a record and waits for its durable acknowledgement.
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata, ClientError> {
        self.enqueue(record).await?.await
    }

    /// Adds a record to its partition's batch and returns a future for its
    /// acknowledgement. Waits only when the buffer is full.
    pub async fn enqueue(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        // An upper bound of the encoded size, for the buffer reservation
        // (the timestamp, taken when the record joins its batch, does not
        // change it).
        let size = new_record(&record, 0).max_encoded_len();
        let max =
            (MAX_BATCH_BYTES as usize - quiver_proto::batch::HEADER_BYTES).min(self.buffer_bytes);
        if size > max {
            return Err(ClientError::RecordTooLarge { size, max });
        }
        // Given back if this call fails or is dropped before the record is
        // in a batch.
        let permit = self.reserve(size).await?;
        let appended = if let Some(appended) = self.append(&record, size) {
            appended
        } else {
            // A topic new to this producer: learn its partition count.
            self.learn_topic(&record.topic).await?;
            self.append(&record, size)
                .unwrap_or_else(|| Err(ClientError::Protocol("topic forgotten".into())))
        };
        if appended.is_ok() {
            permit.forget();
        }
        appended
    }

    /// Adds the record to its partition's open batch, under one lock (the
    /// topic's number and the batch together); `None` when the topic is
    /// not known yet. `size` bytes of the buffer are reserved for it.
    fn append(
        &self,
        record: &ProducerRecord,
        size: usize,
    ) -> Option<Result<DeliveryFuture, ClientError>> {
        let mut state = self.shared.state();
        let topic = *state.topics.get(record.topic.as_str())?;
        let timestamp = match record.timestamp {
            Some(timestamp) => timestamp,
            None => state.clock.now_ms(),
        };
        let partition = match (record.partition, &record.key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, topic.partitions),
            (None, None) => {
                self.shared.round_robin.fetch_add(1, Ordering::Relaxed) % topic.partitions.max(1)
            }
        };
        let config = &self.shared.config;
        let key: Key = (topic.id, partition);
        // `size` bounds the record's encoded size: a batch may be sealed a
        // few bytes early, never late.
        let full = state
            .open
            .get(&key)
            .is_some_and(|open| open.builder.size_bytes() + size > config.batch_max_bytes);
        if full {
            state.seal(key);
        }
        let open = state.open.entry(key).or_insert_with(|| OpenBatch {
            builder: BatchBuilder::with_capacity(config.batch_max_bytes.min(64 * 1024)),
            created: Instant::now(),
            ack: AckSender::default(),
            reserved: 0,
        });
        if let Err(e) = open.builder.push(&new_record(record, timestamp)) {
            return Some(Err(ClientError::Protocol(format!(
                "cannot add record: {e}"
            ))));
        }
        open.reserved += size;
        let future = DeliveryFuture {
            ack: open.ack.subscribe(),
            partition,
            index: open.builder.record_count() - 1,
        };
        let ready = open.builder.record_count() >= config.batch_max_records
            || open.builder.size_bytes() >= config.batch_max_bytes
            || config.linger.is_zero();
        if ready {
            state.seal(key);
        }
        drop(state);
        if ready || full {
            self.shared.wake.notify_one();
        }
        Some(Ok(future))
    }

    /// Sends everything buffered and waits until every request has been
    /// answered. Failures are reported through each record's future.
    pub async fn flush(&self) -> Result<(), ClientError> {
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let mut state = self.shared.state();
                let keys: Vec<Key> = state.open.keys().copied().collect();
                for key in keys {
                    state.seal(key);
                }
                if state.is_idle() {
                    return Ok(());
                }
            }
            self.shared.wake.notify_one();
            progress.await;
        }
    }

    /// Room for `size` bytes in the buffer; waits only when it is full.
    async fn reserve(&self, size: usize) -> Result<SemaphorePermit<'_>, ClientError> {
        let buffer = &self.shared.buffer;
        match buffer.try_acquire_many(size as u32) {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::NoPermits) => buffer
                .acquire_many(size as u32)
                .await
                .map_err(|_| ClientError::Closed),
            Err(TryAcquireError::Closed) => Err(ClientError::Closed),
        }
    }

    /// Asks the broker how many partitions a topic new to this producer
    /// has.
    async fn learn_topic(&self, topic: &TopicName) -> Result<TopicInfo, ClientError> {
        let description = Admin::new(self.shared.client.clone())
            .describe_topic(topic)
            .await?;
        let partitions = description.partitions.len() as u32;
        Ok(self.shared.state().add_topic(topic, partitions))
    }
}

/// `record` as the batch encoder takes it, stamped `timestamp`.
fn new_record(record: &ProducerRecord, timestamp: i64) -> NewRecord<'_> {
    NewRecord {
        key: record.key.as_deref(),
        value: record.value.as_deref(),
        headers: &record.headers,
        timestamp,
    }
}

/// Seals lingering batches and sends what is ready, one request per topic
/// (split at the frame limit), never two in flight for one partition.
async fn sender_loop(shared: Arc<Shared>) {
    let linger = shared.config.linger.max(Duration::from_millis(1));
    loop {
        let requests = take_sendable(&shared, linger);
        for (topic, batches) in requests {
            let name = shared.state().names[topic as usize].clone();
            tokio::spawn(send_request(Arc::clone(&shared), topic, name, batches));
        }
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(linger) => {}
        }
    }
}

fn take_sendable(shared: &Shared, linger: Duration) -> Vec<TopicRequest> {
    let mut state = shared.state();
    let now = Instant::now();
    let expired: Vec<Key> = state
        .open
        .iter()
        .filter(|(_, b)| now.duration_since(b.created) >= linger)
        .map(|(k, _)| *k)
        .collect();
    for key in expired {
        state.seal(key);
    }
    let sendable: Vec<Key> = state
        .ready
        .keys()
        .filter(|k| !state.in_flight.contains(*k))
        .copied()
        .collect();
    let mut by_topic: HashMap<u32, Vec<Vec<(u32, SealedBatch)>>> = HashMap::new();
    for key in sendable {
        let Some(queue) = state.ready.get_mut(&key) else {
            continue;
        };
        // At least one batch; more while they fit one request (and, for an
        // idempotent producer, while the broker would recognise them all
        // if the request had to be sent again).
        let most = if shared.config.idempotence {
            REMEMBERED_PRODUCER_BATCHES
        } else {
            MAX_PARTITIONS_PER_REQUEST
        };
        let mut taken = Vec::new();
        let mut bytes = 0;
        while let Some(batch) = queue.front() {
            let full = bytes + batch.bytes.len() > MAX_REQUEST_BODY_BYTES || taken.len() >= most;
            if !taken.is_empty() && full {
                break;
            }
            bytes += batch.bytes.len();
            taken.extend(queue.pop_front().map(|b| (key.1, b)));
        }
        if queue.is_empty() {
            state.ready.remove(&key);
        }
        state.in_flight.insert(key);
        by_topic.entry(key.0).or_default().push(taken);
    }
    // Pack partitions of a topic into requests up to the body limit.
    let mut requests = Vec::new();
    for (topic, partitions) in by_topic {
        let mut current: Vec<(u32, SealedBatch)> = Vec::new();
        let mut bytes = 0;
        for batches in partitions {
            let size: usize = batches.iter().map(|(_, b)| b.bytes.len()).sum();
            let full = bytes + size > MAX_REQUEST_BODY_BYTES
                || current.len() + batches.len() > MAX_PARTITIONS_PER_REQUEST;
            if !current.is_empty() && full {
                requests.push((topic, std::mem::take(&mut current)));
                bytes = 0;
            }
            bytes += size;
            current.extend(batches);
        }
        if !current.is_empty() {
            requests.push((topic, current));
        }
    }
    requests
}

async fn send_request(
    shared: Arc<Shared>,
    topic: u32,
    name: TopicName,
    mut batches: Vec<(u32, SealedBatch)>,
) {
    let config = &shared.config;
    let deadline = Instant::now() + config.delivery_timeout;
    let mut done = Vec::with_capacity(batches.len());
    let mut backoff = Backoff::new();
    let stamped = loop {
        match stamp(&shared, topic, &mut batches).await {
            // Asking for an identity is retried as a produce would be.
            Err(e) if config.idempotence && Instant::now() < deadline && worth_retrying(&e) => {
                tokio::time::sleep(backoff.next_delay()).await;
            }
            stamped => break stamped,
        }
    };
    match stamped {
        Ok(()) => {
            compress_batches(config.compression, &mut batches);
            loop {
                let outcomes = attempt(&shared, &name, &batches).await;
                // Only stamped batches are sent again: the broker stores a
                // retry of one it already has once, so retrying cannot
                // duplicate a record, and the partition stays in flight
                // meanwhile, so nothing overtakes it.
                let retry = config.idempotence && Instant::now() < deadline;
                let mut again = Vec::new();
                for (batch, outcome) in batches.into_iter().zip(outcomes) {
                    match outcome {
                        Err(e) if retry && worth_retrying(&e) => again.push(batch),
                        outcome => done.push((batch, outcome)),
                    }
                }
                if again.is_empty() {
                    break;
                }
                batches = again;
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
        Err(error) => done.extend(batches.into_iter().map(|b| (b, Err(error.clone())))),
    }
    // A stamped batch that failed leaves its partition's sequence with a
    // gap, or unknown (stored after all?): the producer goes on under the
    // next epoch, numbering from 0 again, before the partition is free.
    if config.idempotence && done.iter().any(|(_, outcome)| outcome.is_err()) {
        next_epoch(&shared).await;
    }
    let mut released = 0;
    let mut partitions = HashSet::new();
    for ((partition, batch), outcome) in done {
        released += batch.reserved;
        partitions.insert(partition);
        batch.ack.complete(outcome);
    }
    {
        let mut state = shared.state();
        for partition in partitions {
            state.in_flight.remove(&(topic, partition));
        }
    }
    shared.buffer.add_permits(released);
    shared.wake.notify_one();
    shared.progress.notify_waiters();
}

/// Whether a producer sends a batch again after `error`: a lost
/// connection, a timeout, a broker shutting down or busy. Not a full disk
/// (`StorageUnavailable`): that rarely clears within the delivery timeout,
/// so the application hears of it at once.
fn worth_retrying(error: &ClientError) -> bool {
    error.is_retriable()
        && !matches!(error, ClientError::Broker(e) if e.code == ErrorCode::StorageUnavailable)
}

/// Stamps an idempotent producer's batches with its identity and each
/// partition's next sequence numbers (asking the broker for an identity
/// first if it has none). The numbers are taken under the state lock,
/// together with the identity they belong to; the bytes are stamped after.
async fn stamp(
    shared: &Shared,
    topic: u32,
    batches: &mut [(u32, SealedBatch)],
) -> Result<(), ClientError> {
    const SEQUENCES: i64 = i32::MAX as i64 + 1;
    if !shared.config.idempotence {
        return Ok(());
    }
    let (identity, bases) = loop {
        {
            let mut state = shared.state();
            if let Some(identity) = state.identity {
                let bases: Vec<i32> = batches
                    .iter()
                    .map(|(partition, batch)| {
                        let next = state.sequences.entry((topic, *partition)).or_insert(0);
                        let base = *next;
                        *next = ((i64::from(base) + i64::from(batch.records)) % SEQUENCES) as i32;
                        base
                    })
                    .collect();
                break (identity, bases);
            }
        }
        let request = InitProducerRequest { current: None };
        let (fresh, _) = shared.client.request(&request, Vec::new()).await?;
        let mut state = shared.state();
        if state.identity.is_none() {
            state.identity = Some(fresh);
            state.sequences.clear();
        }
    };
    for ((_, batch), base) in batches.iter_mut().zip(bases) {
        let mut bytes = Vec::from(std::mem::take(&mut batch.bytes));
        set_producer(&mut bytes, identity.producer_id, identity.epoch, base);
        batch.bytes = Bytes::from(bytes);
    }
    Ok(())
}

/// Moves the producer to its identity's next epoch, every partition's
/// sequence back to 0 (or, if the broker cannot be asked, to no identity:
/// the next batch asks for a new one).
async fn next_epoch(shared: &Shared) {
    let Some(current) = shared.state().identity else {
        return;
    };
    let request = InitProducerRequest {
        current: Some(current),
    };
    let next = shared.client.request(&request, Vec::new()).await.ok();
    let mut state = shared.state();
    if state.identity == Some(current) {
        state.identity = next.map(|(identity, _)| identity);
        state.sequences.clear();
    }
}

/// Compresses each batch with `codec` (a batch that would not fit the
/// batch limit compressed stays as it is).
fn compress_batches(codec: Compression, batches: &mut [(u32, SealedBatch)]) {
    if codec == Compression::None {
        return;
    }
    for (_, batch) in batches {
        if let Ok(compressed) = compress(&batch.bytes, codec) {
            batch.bytes = Bytes::from(compressed);
        }
    }
}

/// Sends `batches` in one produce request; each batch's outcome.
async fn attempt(
    shared: &Shared,
    name: &TopicName,
    batches: &[(u32, SealedBatch)],
) -> Vec<Result<u64, ClientError>> {
    let request = ProduceRequest {
        topic: name.to_string(),
        batches: batches
            .iter()
            .map(|(partition, b)| ProduceBatch {
                partition: *partition,
                bytes: b.bytes.len() as u32,
            })
            .collect(),
    };
    let body = batches.iter().map(|(_, b)| b.bytes.clone()).collect();
    let sent = Instant::now();
    let result = shared.client.request(&request, body).await;
    if let Some(observer) = &shared.config.observer {
        observer.0(&RequestStats {
            batches: batches.len(),
            bytes: batches.iter().map(|(_, b)| b.bytes.len()).sum(),
            latency: sent.elapsed(),
            ok: result
                .as_ref()
                .is_ok_and(|(r, _)| r.results.iter().all(|r| r.outcome.is_ok())),
        });
    }
    match result {
        Ok((response, _)) if response.results.len() == batches.len() => response
            .results
            .into_iter()
            .map(|r| r.outcome.map_err(ClientError::Broker))
            .collect(),
        Ok((response, _)) => {
            let error = ClientError::Protocol(format!(
                "{} results for {} batches",
                response.results.len(),
                batches.len()
            ));
            vec![Err(error); batches.len()]
        }
        Err(error) => vec![Err(error); batches.len()],
    }
}
