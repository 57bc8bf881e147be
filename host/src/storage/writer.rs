//! The group-commit writer: one thread owns every write transaction.
//!
//! Appends from all connections queue on one bounded channel. The thread
//! takes whatever has queued while the previous commit was on disk (up to
//! [`MAX_GROUP_COMMIT_APPENDS`] and [`MAX_GROUP_COMMIT_BYTES`]), assigns
//! offsets, writes the batches in one redb transaction, commits it with one
//! fsync, and only then publishes the new high watermarks and acknowledges.
//! Topic creation and deletion go through the same thread, so offsets and
//! topic existence change in one order.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use quiver_proto::api::TopicConfig;
use quiver_proto::api::modules::ModuleDescription;
use quiver_proto::batch::BatchView;
use redb::{ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::command::{Append, Command, ConfigUpdate};
use super::database::OpenDatabase;
use super::error::{StorageError, WriteFailure};
use super::health::StorageProblem;
use super::log::{PartitionUpdate, append_batch, store_partition_updates};
use super::modules::{NewModule, decode_record, describe, module_versions, prune_module_code};
use super::partition::{LogStats, Offsets, Partition, Topic};
use super::producers::{self, ProducerState, Verdict};
use super::tables::{
    BATCHES, COMMITTED_OFFSETS, META, MODULE_CODE, MODULES, ModuleRecord, NEXT_PRODUCER_ID_KEY,
    NEXT_TOPIC_ID_KEY, PARTITION_STATE, PRODUCER_STATE, TIME_INDEX, TOPICS, TRANSFORMS,
    TopicRecord,
};
use super::transforms::decode_transform;
use crate::metrics::Metrics;

/// Commands waiting for the writer, at most.
pub const WRITER_QUEUE_CAPACITY: usize = 4_096;
/// Appends in one group commit, at most.
pub const MAX_GROUP_COMMIT_APPENDS: usize = 1_024;
/// Batch bytes in one group commit, at most (a group may overshoot by one batch).
pub const MAX_GROUP_COMMIT_BYTES: usize = 64 * 1024 * 1024;

pub(crate) type Topics = RwLock<HashMap<String, Arc<Topic>>>;

/// Starts the writer thread.
pub(crate) fn spawn(
    db: Arc<OpenDatabase>,
    topics: Arc<Topics>,
    metrics: Arc<Metrics>,
) -> std::io::Result<(mpsc::Sender<Command>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(WRITER_QUEUE_CAPACITY);
    let handle = std::thread::Builder::new()
        .name("quiver-writer".into())
        .spawn(move || {
            Writer {
                db,
                topics,
                metrics,
                failure: Cell::new(None),
                disk_full: RefCell::new(None),
                reopen_pending: None,
            }
            .run(rx);
        })?;
    Ok((tx, handle))
}

/// How often, at most, a refusing writer checks whether it can write again
/// (space back, the database reopened).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct Writer {
    pub(super) db: Arc<OpenDatabase>,
    topics: Arc<Topics>,
    pub(super) metrics: Arc<Metrics>,
    /// What the current command's failed write left to do (see `note`).
    failure: Cell<Option<WriteFailure>>,
    /// Set while writes that add data are refused for lack of space.
    disk_full: RefCell<Option<Refusing>>,
    /// Set while the database could not be reopened.
    reopen_pending: Option<Refusing>,
}

/// Why the writer refuses, and when it last checked whether it still must.
struct Refusing {
    reason: String,
    checked: Instant,
}

impl Refusing {
    fn new(reason: String) -> Self {
        Self {
            reason,
            checked: Instant::now(),
        }
    }

    /// Whether it is time to check again (and notes that it is checked now).
    fn due(&mut self) -> bool {
        let due = self.checked.elapsed() >= RETRY_INTERVAL;
        if due {
            self.checked = Instant::now();
        }
        due
    }
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut next_command = None;
        loop {
            let command = match next_command.take() {
                Some(command) => command,
                // Readers wait on a failed reopen too: retry it without
                // waiting for a command to come.
                None if self.reopen_pending.is_some() => match rx.try_recv() {
                    Ok(command) => command,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        std::thread::sleep(RETRY_INTERVAL);
                        self.retry_reopen();
                        continue;
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                },
                None => match rx.blocking_recv() {
                    Some(command) => command,
                    None => return,
                },
            };
            if let Command::Shutdown { reply } = command {
                let _ = reply.send(());
                return;
            }
            if let Some(refusal) = self.refusal(&command) {
                command.refuse(refusal);
                continue;
            }
            self.execute(command, &mut rx, &mut next_command);
            if let Some(failure) = self.failure.take() {
                self.recover(failure);
            }
        }
    }

    /// Why `command` cannot run now, if it cannot.
    fn refusal(&mut self, command: &Command) -> Option<StorageError> {
        if let Some(StorageProblem::Failed(reason)) = self.db.health.problem() {
            return Some(StorageError::Failed(reason));
        }
        if let Some(pending) = &mut self.reopen_pending {
            if pending.due() {
                self.retry_reopen();
            }
            if let Some(pending) = &self.reopen_pending {
                return Some(StorageError::Recovering(pending.reason.clone()));
            }
        }
        if command.adds_data()
            && let Some(full) = self.disk_full.get_mut()
        {
            // Space may have been freed outside the broker: the reserve can
            // be taken again.
            if !(full.due() && self.db.take_reserve()) {
                return Some(StorageError::DiskFull(full.reason.clone()));
            }
            *self.disk_full.get_mut() = None;
            self.db.health.set(None);
        }
        None
    }

    /// Runs one command.
    #[expect(clippy::too_many_lines, reason = "one arm per writer command")]
    fn execute(
        &self,
        command: Command,
        rx: &mut mpsc::Receiver<Command>,
        next_command: &mut Option<Command>,
    ) {
        let frees_space = command.frees_space();
        match command {
            Command::Append(first) => {
                let mut bytes = first.batch.batch.len();
                let mut group = vec![first];
                while group.len() < MAX_GROUP_COMMIT_APPENDS && bytes < MAX_GROUP_COMMIT_BYTES {
                    match rx.try_recv() {
                        Ok(Command::Append(append)) => {
                            bytes += append.batch.batch.len();
                            group.push(append);
                        }
                        Ok(other) => {
                            *next_command = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                self.commit_group(group, bytes);
            }
            Command::CreateTopic {
                name,
                partitions,
                config,
                reply,
            } => self.answer(
                frees_space,
                reply,
                self.write(|| self.create_topic(&name, partitions, config)),
            ),
            Command::InitProducerId { reply } => {
                self.answer(frees_space, reply, self.write(|| self.init_producer_id()));
            }
            Command::ExpireProducers { before_ms, reply } => self.answer(
                frees_space,
                reply,
                self.write(|| self.expire_producers(before_ms)),
            ),
            Command::DeleteTopic { name, force, reply } => self.answer(
                frees_space,
                reply,
                self.write(|| self.delete_topic(&name, force)),
            ),
            Command::AlterTopic {
                name,
                update,
                partitions,
                reply,
            } => self.answer(
                frees_space,
                reply,
                self.write(|| self.alter_topic(&name, update, partitions)),
            ),
            Command::CommitOffsets {
                group,
                offsets,
                reply,
            } => self.answer(
                frees_space,
                reply,
                self.write(|| self.commit_offsets(&group, &offsets)),
            ),
            Command::DeleteGroupOffsets { group, reply } => self.answer(
                frees_space,
                reply,
                self.write(|| self.delete_group_offsets(&group)),
            ),
            Command::PutModule { module, reply } => {
                self.answer(frees_space, reply, self.write(|| self.put_module(&module)));
            }
            Command::DeleteModule { name, reply } => {
                self.answer(frees_space, reply, self.write(|| self.delete_module(&name)));
            }
            Command::PutTransform {
                name,
                record,
                positions,
                counters,
                reply,
            } => self.answer(
                frees_space,
                reply,
                self.write(|| self.put_transform(&name, &record, positions.as_deref(), counters)),
            ),
            Command::DeleteTransform { name, reply } => self.answer(
                frees_space,
                reply,
                self.write(|| self.delete_transform(&name)),
            ),
            Command::CommitTransform(commit) => {
                let result = self.write(|| {
                    self.commit_transform(
                        &commit.name,
                        commit.position,
                        commit.counters,
                        commit.outputs,
                        &commit.state,
                    )
                });
                self.answer(frees_space, commit.reply, result);
            }
            Command::Truncate {
                partition,
                before,
                reply,
            } => self.answer(
                frees_space,
                reply,
                self.write(|| self.truncate(&partition, before)),
            ),
            // `run` stops on it before anything else; answered here too only
            // so that every command has one place that runs it.
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
        }
    }

    /// Answers a command. A delete that succeeded while the disk was full
    /// first makes the freed space known, before its caller hears of it.
    fn answer<T>(
        &self,
        frees_space: bool,
        reply: oneshot::Sender<Result<T, StorageError>>,
        result: Result<T, StorageError>,
    ) {
        if frees_space && result.is_ok() {
            self.space_freed();
        }
        let _ = reply.send(result);
    }

    /// Runs one write. A failed write is noted for `recover` and made
    /// known (`/ready`) before its caller hears of it; the caller gets the
    /// failure's typed error (retriable for a full disk or an I/O error).
    /// A panic (redb unwraps on some damaged pages) must not leave a broker
    /// that looks healthy: it fails storage, with the reason.
    fn write<T>(&self, write: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
        let result = std::panic::catch_unwind(AssertUnwindSafe(write)).unwrap_or_else(|panic| {
            Err(StorageError::Panicked(format!(
                "the storage writer panicked: {}",
                panic_message(panic.as_ref())
            )))
        });
        result.map_err(|e| match e.write_failure() {
            Some(failure) => {
                tracing::error!(error = %e, "storage write failed");
                self.db.health.set(Some(failure.problem()));
                let error = failure.error();
                self.failure.set(Some(failure));
                error
            }
            None => e,
        })
    }

    /// After a failed write: a full disk releases the reserve and refuses
    /// writes that add data; any I/O error reopens the database (redb
    /// takes no more writes on the old handle); damage stops storage.
    fn recover(&mut self, failure: WriteFailure) {
        let reason = match failure {
            WriteFailure::Fatal(reason) => return self.fail(reason),
            WriteFailure::NoSpace(reason) => {
                if self.db.space.release_reserve() {
                    tracing::warn!(
                        bytes = self.db.space.reserve_bytes(),
                        "disk full: released the space reserve so that deletes and retention can commit"
                    );
                }
                *self.disk_full.get_mut() = Some(Refusing::new(reason.clone()));
                self.db
                    .health
                    .set(Some(StorageProblem::DiskFull(reason.clone())));
                reason
            }
            WriteFailure::Io(reason) => {
                self.db
                    .health
                    .set(Some(StorageProblem::Recovering(reason.clone())));
                reason
            }
        };
        match self.db.reopen() {
            Ok(()) => self.reopened(),
            Err(e) => {
                tracing::error!(error = %e, after = reason, "cannot reopen the database; will retry");
                self.reopen_pending = Some(Refusing::new(e.to_string()));
            }
        }
    }

    /// Tries the failed reopen again.
    fn retry_reopen(&mut self) {
        match self.db.reopen() {
            Ok(()) => self.reopened(),
            Err(e) => {
                if let Some(pending) = &mut self.reopen_pending {
                    pending.reason = e.to_string();
                }
            }
        }
    }

    /// The database is open again: what is stored wins over memory (a
    /// commit reported as failed may have reached the disk).
    fn reopened(&mut self) {
        self.reopen_pending = None;
        if self.write(|| self.reconcile()).is_err()
            && let Some(failure) = self.failure.take()
        {
            return self.recover(failure);
        }
        let problem = self
            .disk_full
            .get_mut()
            .as_ref()
            .map(|full| StorageProblem::DiskFull(full.reason.clone()));
        self.db.health.set(problem);
    }

    /// Publishes each partition's stored offsets where memory differs.
    fn reconcile(&self) -> Result<(), StorageError> {
        let txn = self.db.begin_read()?;
        let state = txn.open_table(PARTITION_STATE)?;
        for topic in read_topics(&self.topics).values() {
            for partition in &topic.partitions {
                let Some(stored) = state.get((topic.id, partition.index()))? else {
                    continue;
                };
                let (log_start_offset, high_watermark, size_bytes, max_timestamp) = stored.value();
                let update = PartitionUpdate {
                    partition: Arc::clone(partition),
                    offsets: Offsets {
                        log_start_offset,
                        high_watermark,
                    },
                    stats: LogStats {
                        size_bytes,
                        max_timestamp,
                    },
                };
                if update.offsets != partition.offsets() {
                    tracing::warn!(
                        topic = partition.topic(),
                        partition = partition.index(),
                        stored = ?update.offsets,
                        "a commit reported as failed reached the disk; publishing what is stored"
                    );
                    update.publish();
                }
            }
        }
        drop(state);
        drop(txn);
        self.reconcile_topics()
    }

    /// Makes the topics in memory those on disk: a create, delete or alter
    /// reported as failed may have reached the disk too.
    fn reconcile_topics(&self) -> Result<(), StorageError> {
        let stored = super::load_topics(&*self.db.get()?)?;
        let mut topics = write_topics(&self.topics);
        topics.retain(|name, topic| {
            let kept = stored.get(name).is_some_and(|s| s.id == topic.id);
            if !kept {
                tracing::warn!(topic = name, "a delete reported as failed reached the disk");
                for partition in &topic.partitions {
                    partition.mark_deleted();
                }
            }
            kept
        });
        for (name, fresh) in stored {
            let Some(old) = topics.get(&name) else {
                tracing::warn!(topic = name, "a create reported as failed reached the disk");
                topics.insert(name, fresh);
                continue;
            };
            if old.partitions.len() < fresh.partitions.len() || old.config != fresh.config {
                tracing::warn!(topic = name, "an alter reported as failed reached the disk");
                // Existing partitions keep their handles (and their waiters).
                let mut partitions = old.partitions.clone();
                partitions.extend(fresh.partitions[old.partitions.len()..].iter().cloned());
                let topic = Topic {
                    name: Arc::clone(&old.name),
                    id: old.id,
                    config: fresh.config,
                    partitions,
                };
                topics.insert(name, Arc::new(topic));
            }
        }
        Ok(())
    }

    /// A delete committed while the disk was full: writes may go on. The
    /// reserve is taken again if there is room for it.
    fn space_freed(&self) {
        if self.disk_full.borrow_mut().take().is_some() {
            self.db.take_reserve();
            self.db.health.set(None);
        }
    }

    /// Storage cannot go on: every later command gets the reason.
    fn fail(&mut self, reason: String) {
        tracing::error!(
            reason,
            "storage failed; restart the broker after `quiver storage check`"
        );
        self.db.health.set(Some(StorageProblem::Failed(reason)));
        self.db.abandon();
    }

    fn commit_group(&self, mut group: Vec<Append>, bytes: usize) {
        let started = Instant::now();
        let mut touched: HashMap<(u64, u32), PartitionUpdate> = HashMap::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let result = self.write(|| self.write_group(&mut group, &mut touched, &mut outcomes));
        match result {
            Ok(()) => {
                self.metrics
                    .record_group_commit(group.len(), started.elapsed());
                for update in touched.into_values() {
                    update.publish();
                }
                tracing::debug!(
                    appends = group.len(),
                    bytes,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "group commit"
                );
                for (append, outcome) in group.into_iter().zip(outcomes) {
                    let _ = append.reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, appends = group.len(), "group commit failed");
                // Each append gets the failure's typed error, or else why
                // the commit failed.
                let reason = e.to_string();
                let failure = self.failure.take();
                for append in group {
                    let error = failure.as_ref().map_or_else(
                        || StorageError::CommitFailed(reason.clone()),
                        WriteFailure::error,
                    );
                    let _ = append.reply.send(Err(error));
                }
                self.failure.set(failure);
            }
        }
    }

    /// Writes a group in one transaction. Offsets are assigned from the
    /// published high watermark, which only this thread moves. A batch from
    /// an idempotent producer is checked against the producer's state (read
    /// once per transaction, written back with the batches).
    fn write_group(
        &self,
        group: &mut [Append],
        touched: &mut HashMap<(u64, u32), PartitionUpdate>,
        outcomes: &mut Vec<Result<u64, StorageError>>,
    ) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        {
            let mut batches = txn.open_table(BATCHES)?;
            let mut time_index = txn.open_table(TIME_INDEX)?;
            let mut producer_table = txn.open_table(PRODUCER_STATE)?;
            let mut producers: HashMap<(u64, u32, u64), Option<ProducerState>> = HashMap::new();
            for append in group.iter_mut() {
                let partition = &append.batch.partition;
                if partition.is_deleted() {
                    outcomes.push(Err(StorageError::UnknownTopic(partition.topic().into())));
                    continue;
                }
                let Some(producer) = append.producer else {
                    let base =
                        append_batch(&mut batches, &mut time_index, touched, &mut append.batch)?;
                    outcomes.push(Ok(base));
                    continue;
                };
                let key = (
                    partition.topic_id(),
                    partition.index(),
                    producer.producer_id,
                );
                let state = match producers.get(&key) {
                    Some(state) => state.clone(),
                    None => producer_table
                        .get(key)?
                        .and_then(|v| postcard::from_bytes::<ProducerState>(v.value()).ok()),
                };
                match producers::check(state.as_ref(), &producer) {
                    Ok(Verdict::Append) => {
                        let base = append_batch(
                            &mut batches,
                            &mut time_index,
                            touched,
                            &mut append.batch,
                        )?;
                        producers.insert(key, Some(producers::record(state, &producer, base)));
                        outcomes.push(Ok(base));
                    }
                    Ok(Verdict::Duplicate(base)) => outcomes.push(Ok(base)),
                    Err(refused) => outcomes.push(Err(refused)),
                }
            }
            for (key, state) in producers {
                if let Some(state) = state {
                    let value = postcard::to_stdvec(&state)
                        .map_err(|e| StorageError::CommitFailed(format!("producer state: {e}")))?;
                    producer_table.insert(key, value.as_slice())?;
                }
            }
        }
        store_partition_updates(&txn, touched)?;
        txn.commit()?;
        Ok(())
    }

    /// Hands out the next producer id.
    fn init_producer_id(&self) -> Result<u64, StorageError> {
        let txn = self.db.begin_write()?;
        let id = {
            let mut meta = txn.open_table(META)?;
            let id = meta.get(NEXT_PRODUCER_ID_KEY)?.map_or(0, |v| v.value());
            meta.insert(NEXT_PRODUCER_ID_KEY, id + 1)?;
            id
        };
        txn.commit()?;
        Ok(id)
    }

    /// Removes producer states whose last batch came before `before_ms`.
    fn expire_producers(&self, before_ms: i64) -> Result<u64, StorageError> {
        let txn = self.db.begin_write()?;
        let mut expired = 0;
        txn.open_table(PRODUCER_STATE)?.retain(|_, value| {
            let keep = postcard::from_bytes::<ProducerState>(value)
                .is_ok_and(|state| state.last_batch_ms() >= before_ms);
            if !keep {
                expired += 1;
            }
            keep
        })?;
        txn.commit()?;
        Ok(expired)
    }

    /// Deletes the batches of `partition` that end below `before`, with
    /// their time index entries, and moves the log start offset to `before`.
    /// `before` may fall inside a batch (Kafka's `DeleteRecords` allows any
    /// offset): that batch stays, and reads skip its records below the log
    /// start.
    fn truncate(&self, partition: &Arc<Partition>, before: u64) -> Result<Truncated, StorageError> {
        let mut update = PartitionUpdate::of(partition);
        if partition.is_deleted() || before <= update.offsets.log_start_offset {
            return Ok(Truncated::default());
        }
        let before = before.min(update.offsets.high_watermark);
        let (id, index) = (partition.topic_id(), partition.index());
        let mut truncated = Truncated::default();
        let txn = self.db.begin_write()?;
        {
            let mut batches = txn.open_table(BATCHES)?;
            // The batch holding `before`, if it starts below it, stays.
            let straddling = batches
                .range((id, index, 0)..(id, index, before))?
                .next_back()
                .transpose()?
                .map(|(key, value)| {
                    BatchView::parse(value.value())
                        .map(|view| (key.value().2, view.last_offset() >= before))
                        .map_err(|e| super::corrupt_batch(partition, &e))
                })
                .transpose()?;
            let keep_from = match straddling {
                Some((base, true)) => base,
                _ => before,
            };
            batches.retain_in((id, index, 0)..(id, index, keep_from), |_, value| {
                truncated.batches += 1;
                truncated.bytes += value.len() as u64;
                false
            })?;
            // Index entries below the new start go, except that the newest of
            // them is kept, moved to the new start: the running maximum it
            // records still bounds the records that remain.
            let mut time_index = txn.open_table(TIME_INDEX)?;
            let stale: Vec<(i64, u64)> = time_index
                .range((id, index, i64::MIN)..=(id, index, i64::MAX))?
                .map(|entry| entry.map(|(k, v)| (k.value().2, v.value())))
                .take_while(|entry| entry.as_ref().map_or(true, |&(_, base)| base < before))
                .collect::<Result<_, _>>()?;
            for &(timestamp, _) in &stale {
                time_index.remove((id, index, timestamp))?;
            }
            if let Some(&(timestamp, _)) = stale.last() {
                let next = time_index
                    .range((id, index, timestamp)..=(id, index, i64::MAX))?
                    .next()
                    .transpose()?
                    .map(|(k, _)| k.value().2);
                if next.is_none_or(|next| next > timestamp) {
                    time_index.insert((id, index, timestamp), before)?;
                }
            }
            update.offsets.log_start_offset = before;
            update.stats.size_bytes = update.stats.size_bytes.saturating_sub(truncated.bytes);
            txn.open_table(PARTITION_STATE)?
                .insert((id, index), update.state())?;
        }
        txn.commit()?;
        update.publish();
        Ok(truncated)
    }

    fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<Arc<Topic>, StorageError> {
        if read_topics(&self.topics).contains_key(name) {
            return Err(StorageError::TopicExists(name.into()));
        }
        let txn = self.db.begin_write()?;
        let id = {
            let mut meta = txn.open_table(META)?;
            let id = meta.get(NEXT_TOPIC_ID_KEY)?.map_or(1, |v| v.value());
            meta.insert(NEXT_TOPIC_ID_KEY, id + 1)?;
            id
        };
        let record = TopicRecord {
            id,
            partitions,
            config,
        };
        let encoded = postcard::to_stdvec(&record).map_err(|e| StorageError::CorruptMetadata {
            what: format!("topic {name:?}"),
            reason: e.to_string(),
        })?;
        txn.open_table(TOPICS)?.insert(name, encoded.as_slice())?;
        {
            let mut state = txn.open_table(PARTITION_STATE)?;
            for partition in 0..partitions {
                state.insert((id, partition), PartitionUpdate::EMPTY_STATE)?;
            }
        }
        txn.commit()?;
        let topic = Arc::new(topic_handle(name, record, |_| {
            (Offsets::default(), LogStats::default())
        }));
        write_topics(&self.topics).insert(name.into(), Arc::clone(&topic));
        tracing::info!(topic = name, id, partitions, "topic created");
        Ok(topic)
    }

    fn alter_topic(
        &self,
        name: &str,
        update: ConfigUpdate,
        partitions: Option<u32>,
    ) -> Result<Arc<Topic>, StorageError> {
        let Some(old) = read_topics(&self.topics).get(name).cloned() else {
            return Err(StorageError::UnknownTopic(name.into()));
        };
        let config = update(old.config);
        let count = old.partitions.len() as u32;
        let partitions = partitions.unwrap_or(count);
        if partitions < count {
            return Err(StorageError::PartitionsCannotShrink {
                topic: name.into(),
                from: count,
                to: partitions,
            });
        }
        let record = TopicRecord {
            id: old.id,
            partitions,
            config,
        };
        let encoded = postcard::to_stdvec(&record).map_err(|e| StorageError::CorruptMetadata {
            what: format!("topic {name:?}"),
            reason: e.to_string(),
        })?;
        let txn = self.db.begin_write()?;
        txn.open_table(TOPICS)?.insert(name, encoded.as_slice())?;
        {
            let mut state = txn.open_table(PARTITION_STATE)?;
            for partition in count..partitions {
                state.insert((old.id, partition), PartitionUpdate::EMPTY_STATE)?;
            }
        }
        txn.commit()?;
        // Existing partitions keep their handles (and their waiters).
        let mut handles = old.partitions.clone();
        for index in count..partitions {
            handles.push(Arc::new(Partition::new(
                Arc::clone(&old.name),
                old.id,
                index,
                Offsets::default(),
                LogStats::default(),
            )));
        }
        let topic = Arc::new(Topic {
            name: Arc::clone(&old.name),
            id: old.id,
            config,
            partitions: handles,
        });
        write_topics(&self.topics).insert(name.into(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, ?config, "topic altered");
        Ok(topic)
    }

    fn commit_offsets(&self, group: &str, offsets: &[OffsetToCommit]) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(COMMITTED_OFFSETS)?;
            for commit in offsets {
                let metadata = commit.metadata.as_deref().unwrap_or_default();
                table.insert(
                    (group, commit.topic.as_str(), commit.partition),
                    (commit.offset, metadata),
                )?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn put_module(&self, module: &NewModule) -> Result<ModuleDescription, StorageError> {
        let name = module.name.as_str();
        let txn = self.db.begin_write()?;
        let record = {
            let mut modules = txn.open_table(MODULES)?;
            let previous = modules
                .get(name)?
                .map(|v| decode_record(name, v.value()))
                .transpose()?;
            let version = previous.as_ref().map_or(1, |p| p.version + 1);
            let record = ModuleRecord {
                version,
                sha256: module.sha256.clone(),
                size_bytes: module.bytes.len() as u64,
                uploaded_at_ms: module.uploaded_at_ms,
                imports: module.imports.clone(),
            };
            let encoded =
                postcard::to_stdvec(&record).map_err(|e| StorageError::CorruptMetadata {
                    what: format!("module {name:?}"),
                    reason: e.to_string(),
                })?;
            modules.insert(name, encoded.as_slice())?;
            txn.open_table(MODULE_CODE)?
                .insert((name, version), module.bytes.as_slice())?;
            record
        };
        prune_module_code(&txn, name)?;
        let versions = module_versions(
            &txn.open_table(MODULE_CODE)?,
            &txn.open_table(TRANSFORMS)?,
            name,
        )?;
        txn.commit()?;
        tracing::info!(
            module = name,
            version = record.version,
            sha256 = record.sha256,
            "module stored"
        );
        Ok(describe(name, record, versions))
    }

    fn delete_module(&self, name: &str) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        for entry in txn.open_table(TRANSFORMS)?.iter()? {
            let (transform, value) = entry?;
            let record = decode_transform(transform.value(), value.value())?;
            if record.module == name {
                return Err(StorageError::ModuleInUse {
                    module: name.into(),
                    transform: transform.value().into(),
                });
            }
        }
        {
            if txn.open_table(MODULES)?.remove(name)?.is_none() {
                return Err(StorageError::UnknownModule(name.into()));
            }
            txn.open_table(MODULE_CODE)?
                .retain_in((name, 0)..=(name, u32::MAX), |_, _| false)?;
        }
        txn.commit()?;
        tracing::info!(module = name, "module deleted");
        Ok(())
    }

    fn delete_group_offsets(&self, group: &str) -> Result<u64, StorageError> {
        let txn = self.db.begin_write()?;
        let mut removed = 0;
        txn.open_table(COMMITTED_OFFSETS)?.retain(|(g, _, _), _| {
            let keep = g != group;
            removed += u64::from(!keep);
            keep
        })?;
        txn.commit()?;
        Ok(removed)
    }

    /// Deletes a topic, refused (unless `force`) while a transform reads it
    /// or writes it, as module deletes are while a transform runs them.
    fn delete_topic(&self, name: &str, force: bool) -> Result<(), StorageError> {
        let Some(topic) = read_topics(&self.topics).get(name).cloned() else {
            return Err(StorageError::UnknownTopic(name.into()));
        };
        let txn = self.db.begin_write()?;
        if !force {
            for entry in txn.open_table(TRANSFORMS)?.iter()? {
                let (transform, value) = entry?;
                let record = decode_transform(transform.value(), value.value())?;
                let writes = record.default_output == name
                    || record.outputs.iter().any(|(_, topic)| topic == name);
                if record.input == name || writes {
                    return Err(StorageError::TopicInUse {
                        topic: name.into(),
                        transform: transform.value().into(),
                        reads: record.input == name,
                    });
                }
            }
        }
        delete_topic_rows(&txn, name, topic.id)?;
        txn.commit()?;
        write_topics(&self.topics).remove(name);
        for partition in &topic.partitions {
            partition.mark_deleted();
        }
        tracing::info!(topic = name, id = topic.id, "topic deleted");
        Ok(())
    }
}

/// A panic's message, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

fn delete_topic_rows(txn: &WriteTransaction, name: &str, id: u64) -> Result<(), StorageError> {
    txn.open_table(TOPICS)?.remove(name)?;
    // Kafka drops a deleted topic's committed offsets too: a new topic of
    // the same name starts with none.
    txn.open_table(COMMITTED_OFFSETS)?
        .retain(|(_, topic, _), _| topic != name)?;
    txn.open_table(BATCHES)?
        .retain_in((id, 0, 0)..=(id, u32::MAX, u64::MAX), |_, _| false)?;
    txn.open_table(TIME_INDEX)?
        .retain_in((id, 0, i64::MIN)..=(id, u32::MAX, i64::MAX), |_, _| false)?;
    txn.open_table(PRODUCER_STATE)?
        .retain_in((id, 0, 0)..=(id, u32::MAX, u64::MAX), |_, _| false)?;
    let mut state = txn.open_table(PARTITION_STATE)?;
    let keys: Vec<(u64, u32)> = state
        .range((id, 0)..=(id, u32::MAX))?
        .map(|entry| entry.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for key in keys {
        state.remove(key)?;
    }
    Ok(())
}

/// Builds a topic's in-memory handle from its record.
pub(crate) fn topic_handle(
    name: &str,
    record: TopicRecord,
    mut state_of: impl FnMut(u32) -> (Offsets, LogStats),
) -> Topic {
    let name: Arc<str> = name.into();
    Topic {
        partitions: (0..record.partitions)
            .map(|i| {
                let (offsets, stats) = state_of(i);
                Arc::new(Partition::new(
                    Arc::clone(&name),
                    record.id,
                    i,
                    offsets,
                    stats,
                ))
            })
            .collect(),
        name,
        id: record.id,
        config: record.config,
    }
}

pub(crate) fn read_topics(
    topics: &Topics,
) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Topic>>> {
    // A poisoned lock only means a panic elsewhere; the map itself is intact.
    topics
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_topics(topics: &Topics) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Topic>>> {
    topics
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One committed position to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetToCommit {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The next offset to read.
    pub offset: u64,
    /// Free-form metadata.
    pub metadata: Option<String>,
}

/// What a truncation removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truncated {
    /// Batches deleted.
    pub batches: u64,
    /// Their bytes.
    pub bytes: u64,
}
