//! The group-commit writer: one thread owns every write transaction.
//!
//! Appends from all connections queue on one bounded channel. The thread
//! takes whatever has queued while the previous commit was on disk (up to
//! [`MAX_GROUP_COMMIT_APPENDS`] and [`MAX_GROUP_COMMIT_BYTES`]), assigns
//! offsets, writes the batches in one redb transaction, commits it with one
//! fsync, and only then publishes the new high watermarks and acknowledges.
//! Topic creation and deletion go through the same thread, so offsets and
//! topic existence change in one order.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::BytesMut;
use quiver_proto::api::TopicConfig;
use quiver_proto::batch::set_base_offset;
use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::error::StorageError;
use super::partition::{Offsets, Partition, Topic};
use super::tables::{BATCHES, META, NEXT_TOPIC_ID_KEY, PARTITION_STATE, TOPICS, TopicRecord};

/// Commands waiting for the writer, at most.
pub const WRITER_QUEUE_CAPACITY: usize = 4_096;
/// Appends in one group commit, at most.
pub const MAX_GROUP_COMMIT_APPENDS: usize = 1_024;
/// Batch bytes in one group commit, at most (a group may overshoot by one batch).
pub const MAX_GROUP_COMMIT_BYTES: usize = 64 * 1024 * 1024;

pub(crate) type Topics = RwLock<HashMap<String, Arc<Topic>>>;

/// One batch to append.
pub(crate) struct Append {
    pub(crate) partition: Arc<Partition>,
    pub(crate) batch: BytesMut,
    pub(crate) records: u32,
    pub(crate) reply: oneshot::Sender<Result<u64, StorageError>>,
}

pub(crate) enum Command {
    Append(Append),
    CreateTopic {
        name: String,
        partitions: u32,
        config: TopicConfig,
        reply: oneshot::Sender<Result<Arc<Topic>, StorageError>>,
    },
    DeleteTopic {
        name: String,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// Commit what is queued before it, then stop.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Starts the writer thread.
pub(crate) fn spawn(
    db: Arc<Database>,
    topics: Arc<Topics>,
) -> std::io::Result<(mpsc::Sender<Command>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(WRITER_QUEUE_CAPACITY);
    let handle = std::thread::Builder::new()
        .name("quiver-writer".into())
        .spawn(move || Writer { db, topics }.run(rx))?;
    Ok((tx, handle))
}

struct Writer {
    db: Arc<Database>,
    topics: Arc<Topics>,
}

impl Writer {
    fn run(self, mut rx: mpsc::Receiver<Command>) {
        let mut next_command = None;
        loop {
            let command = match next_command.take() {
                Some(command) => command,
                None => match rx.blocking_recv() {
                    Some(command) => command,
                    None => return,
                },
            };
            match command {
                Command::Append(first) => {
                    let mut bytes = first.batch.len();
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP_COMMIT_APPENDS && bytes < MAX_GROUP_COMMIT_BYTES {
                        match rx.try_recv() {
                            Ok(Command::Append(append)) => {
                                bytes += append.batch.len();
                                group.push(append);
                            }
                            Ok(other) => {
                                next_command = Some(other);
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
                } => {
                    let _ = reply.send(self.create_topic(&name, partitions, config));
                }
                Command::DeleteTopic { name, reply } => {
                    let _ = reply.send(self.delete_topic(&name));
                }
                Command::Shutdown { reply } => {
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    fn commit_group(&self, mut group: Vec<Append>, bytes: usize) {
        let started = Instant::now();
        let mut touched: HashMap<(u64, u32), (Arc<Partition>, u64)> = HashMap::new();
        let mut outcomes = Vec::with_capacity(group.len());
        let result = self.write_group(&mut group, &mut touched, &mut outcomes);
        match result {
            Ok(()) => {
                for (partition, next) in touched.into_values() {
                    let log_start_offset = partition.offsets().log_start_offset;
                    partition.publish(Offsets {
                        log_start_offset,
                        high_watermark: next,
                    });
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
                let reason = e.to_string();
                for append in group {
                    let _ = append
                        .reply
                        .send(Err(StorageError::CommitFailed(reason.clone())));
                }
            }
        }
    }

    /// Writes a group in one transaction. Offsets are assigned from the
    /// published high watermark, which only this thread moves.
    fn write_group(
        &self,
        group: &mut [Append],
        touched: &mut HashMap<(u64, u32), (Arc<Partition>, u64)>,
        outcomes: &mut Vec<Result<u64, StorageError>>,
    ) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        {
            let mut batches = txn.open_table(BATCHES)?;
            for append in group.iter_mut() {
                let partition = &append.partition;
                if partition.is_deleted() {
                    outcomes.push(Err(StorageError::UnknownTopic(partition.topic().into())));
                    continue;
                }
                let key = (partition.topic_id(), partition.index());
                let next = match touched.entry(key) {
                    Entry::Occupied(e) => &mut e.into_mut().1,
                    Entry::Vacant(e) => {
                        let hw = partition.offsets().high_watermark;
                        &mut e.insert((Arc::clone(partition), hw)).1
                    }
                };
                let base = *next;
                set_base_offset(&mut append.batch, base);
                batches.insert((key.0, key.1, base), &append.batch[..])?;
                *next += u64::from(append.records);
                outcomes.push(Ok(base));
            }
            let mut state = txn.open_table(PARTITION_STATE)?;
            for (key, (partition, next)) in touched.iter() {
                state.insert(key, (partition.offsets().log_start_offset, *next))?;
            }
        }
        txn.commit()?;
        Ok(())
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
                state.insert((id, partition), (0, 0))?;
            }
        }
        txn.commit()?;
        let topic = Arc::new(topic_handle(name, record, |_| Offsets::default()));
        write_topics(&self.topics).insert(name.into(), Arc::clone(&topic));
        tracing::info!(topic = name, id, partitions, "topic created");
        Ok(topic)
    }

    fn delete_topic(&self, name: &str) -> Result<(), StorageError> {
        let Some(topic) = read_topics(&self.topics).get(name).cloned() else {
            return Err(StorageError::UnknownTopic(name.into()));
        };
        let txn = self.db.begin_write()?;
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

fn delete_topic_rows(txn: &WriteTransaction, name: &str, id: u64) -> Result<(), StorageError> {
    txn.open_table(TOPICS)?.remove(name)?;
    txn.open_table(BATCHES)?
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
    mut offsets: impl FnMut(u32) -> Offsets,
) -> Topic {
    let name: Arc<str> = name.into();
    Topic {
        partitions: (0..record.partitions)
            .map(|i| Arc::new(Partition::new(Arc::clone(&name), record.id, i, offsets(i))))
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
