//! Durable storage: topics, partitions and record batches in one embedded
//! redb database under the data directory.
//!
//! - [`tables`]: every table and its layout.
//! - [`writer`]: the group-commit writer thread that owns all writes, and
//!   its topic and log operations.
//! - [`command`]: what the writer is asked to do, one command per write.
//! - [`log`]: appending a batch and publishing a partition's new offsets
//!   inside a write transaction (a produce's and a transform's commits).
//! - [`partition`]: in-memory handles (offsets, long-poll wake-ups).
//! - [`offsets`]: committed consumer-group offsets.
//! - [`modules`]: the WebAssembly module registry's storage.
//! - [`transforms`]: deployed transforms, their positions and state, and
//!   the one transaction that commits a call's outputs, state and position.
//! - [`retention`]: which batches retention removes, and the pass that
//!   removes them.
//! - [`check`]: the offline check behind `quiver storage check`.
//! - [`database`]: the open redb database, checked on open and reopened
//!   by the writer after a write error.
//! - [`space`]: the space reserve and the optional size limit.
//! - [`health`]: whether storage takes writes (`/ready` reads it).
//! - [`error`]: [`StorageError`] and its wire mapping.
//!
//! Reads run on the caller's thread against a redb snapshot and never block
//! the writer.

mod check;
mod command;
mod database;
mod error;
mod health;
mod log;
mod modules;
mod offsets;
mod partition;
mod producers;
mod retention;
mod space;
mod tables;
mod transforms;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::BytesMut;
use quiver_proto::api::TopicConfig;
use quiver_proto::batch::{BatchView, decompress};
use redb::{Database, ReadableDatabase, ReadableTable};

use database::OpenDatabase;
use space::Space;
use tokio::sync::{mpsc, oneshot};

pub use check::{CheckReport, PageCheck, check};
pub use error::StorageError;
pub use health::{StorageHealth, StorageProblem};
pub use log::NewBatch;
pub use modules::NewModule;
pub use offsets::CommittedPosition;
pub use partition::{LogStats, Offsets, Partition, Topic};
pub use producers::{PRODUCER_ID_EXPIRATION_MS, ProducerBatch, REMEMBERED_BATCHES};
pub use retention::{RetentionDefaults, RetentionReport};
pub use space::{DEFAULT_RESERVE_BYTES, RESERVE_FILE};
pub use tables::TransformRecord;
pub use transforms::{PendingCommit, StateReader, StateWrites, TransformCounters};
pub use writer::{
    MAX_GROUP_COMMIT_APPENDS, MAX_GROUP_COMMIT_BYTES, OffsetToCommit, Truncated,
    WRITER_QUEUE_CAPACITY,
};

use command::{Append, Command};
use tables::{
    BATCHES, FORMAT_VERSION, FORMAT_VERSION_KEY, META, PARTITION_STATE, TIME_INDEX, TOPICS,
    TopicRecord,
};
use writer::{Topics, read_topics, topic_handle};

use crate::metrics::Metrics;

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "quiver.redb";

/// Default size of redb's page cache; it bounds the broker's memory for
/// stored data, however much is stored.
pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// How the storage is opened.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// redb page cache size in bytes.
    pub cache_bytes: usize,
    /// Space kept in reserve beside the database, released when the disk
    /// fills so that deletes and retention can still commit (0: none).
    pub reserve_bytes: u64,
    /// Bytes the database file and the reserve may take together; past it
    /// writes fail as on a full disk. `None`: the disk's size.
    pub max_bytes: Option<u64>,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            max_bytes: None,
        }
    }
}

/// Batches read from one partition.
#[derive(Debug)]
pub struct ReadResult {
    /// The partition's offsets when the read began.
    pub offsets: Offsets,
    /// Whole batches back to back; empty when there is nothing at `offset` yet.
    pub batches: Vec<u8>,
}

/// The broker's storage. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Storage {
    pub(crate) db: Arc<OpenDatabase>,
    path: PathBuf,
    topics: Arc<Topics>,
    writer: mpsc::Sender<Command>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

impl Storage {
    /// Opens (or creates) the database in `dir` and starts the writer,
    /// with metrics of its own (see [`open_with_metrics`](Self::open_with_metrics)).
    pub fn open(dir: &Path, options: &StorageOptions) -> Result<Self, StorageError> {
        Self::open_with_metrics(dir, options, Arc::new(Metrics::new()))
    }

    /// Opens (or creates) the database in `dir` and starts the writer,
    /// which records group commits into `metrics`.
    pub fn open_with_metrics(
        dir: &Path,
        options: &StorageOptions,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Engine(e.into()))?;
        let path = dir.join(DATABASE_FILE);
        let space = Arc::new(Space::new(dir, options.reserve_bytes, options.max_bytes));
        let health = Arc::new(StorageHealth::default());
        let db = OpenDatabase::open(&path, options.cache_bytes, space, health)?;
        stamp_format_version(&*db.get()?)?;
        let topics = Arc::new(RwLock::new(load_topics(&*db.get()?)?));
        let db = Arc::new(db);
        let (writer, thread) =
            writer::spawn(Arc::clone(&db), Arc::clone(&topics), Arc::clone(&metrics))
                .map_err(|e| StorageError::Engine(e.into()))?;
        Ok(Self {
            db,
            path,
            topics,
            writer,
            writer_thread: Mutex::new(Some(thread)),
            metrics,
        })
    }

    /// The broker's metrics, for recording (retention deletions, ...).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether storage takes writes, and if not why.
    pub fn health(&self) -> &Arc<StorageHealth> {
        &self.db.health
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, StorageError> {
        read_topics(&self.topics)
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::UnknownTopic(name.into()))
    }

    /// A partition by topic name and number.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, StorageError> {
        let handle = self.topic(topic)?;
        handle
            .partition(partition)
            .cloned()
            .ok_or(StorageError::UnknownPartition {
                topic: topic.into(),
                partition,
                count: handle.partitions.len() as u32,
            })
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = read_topics(&self.topics).values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Creates a topic. The caller has checked the name and partition count.
    pub async fn create_topic(
        &self,
        name: String,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<Arc<Topic>, StorageError> {
        self.call(|reply| Command::CreateTopic {
            name,
            partitions,
            config,
            reply,
        })
        .await?
    }

    /// Changes a topic's settings and, optionally, raises its partition count.
    pub async fn alter_topic(
        &self,
        name: String,
        update: impl FnOnce(TopicConfig) -> TopicConfig + Send + 'static,
        partitions: Option<u32>,
    ) -> Result<Arc<Topic>, StorageError> {
        self.call(|reply| Command::AlterTopic {
            name,
            update: Box::new(update),
            partitions,
            reply,
        })
        .await?
    }

    /// Moves a partition's log start offset to `before` (which may fall
    /// inside a batch: that batch stays) and deletes the batches that end
    /// below it.
    pub async fn truncate(
        &self,
        partition: Arc<Partition>,
        before: u64,
    ) -> Result<Truncated, StorageError> {
        self.call(|reply| Command::Truncate {
            partition,
            before,
            reply,
        })
        .await?
    }

    /// Deletes a topic and all its batches; unless `force`, refused with
    /// [`StorageError::TopicInUse`] while a transform reads or writes it.
    pub async fn delete_topic(&self, name: String, force: bool) -> Result<(), StorageError> {
        self.call(|reply| Command::DeleteTopic { name, force, reply })
            .await?
    }

    /// Appends one validated batch holding `records` records whose largest
    /// timestamp is `max_timestamp`; resolves to its base offset once the
    /// commit holding it is durable.
    pub async fn append(
        &self,
        partition: Arc<Partition>,
        batch: BytesMut,
        records: u32,
        max_timestamp: i64,
    ) -> Result<u64, StorageError> {
        self.queue_append(partition, batch, records, max_timestamp, None)
            .await?
            .await
            .map_err(|_| self.db.health.stopped_error())?
    }

    /// Queues one batch for the writer and returns once it is queued (not
    /// committed): batches queued one after another are appended in that
    /// order. The receiver resolves to the base offset once durable. A batch
    /// from an idempotent producer (`producer`) is checked against the
    /// producer's state on the partition first (see [`producers`]): a retry
    /// resolves to the offset it was stored at.
    pub async fn queue_append(
        &self,
        partition: Arc<Partition>,
        batch: BytesMut,
        records: u32,
        max_timestamp: i64,
        producer: Option<ProducerBatch>,
    ) -> Result<oneshot::Receiver<Result<u64, StorageError>>, StorageError> {
        let (reply, response) = oneshot::channel();
        let command = Command::Append(Append {
            batch: NewBatch {
                partition,
                batch,
                records,
                max_timestamp,
            },
            producer,
            reply,
        });
        self.writer
            .send(command)
            .await
            .map_err(|_| self.db.health.stopped_error())?;
        Ok(response)
    }

    /// A new producer id for an idempotent producer (`InitProducerId`),
    /// never handed out before.
    pub async fn init_producer_id(&self) -> Result<u64, StorageError> {
        self.call(|reply| Command::InitProducerId { reply }).await?
    }

    /// Forgets the state of producers whose last batch on a partition came
    /// before `before_ms`; how many states were forgotten.
    pub async fn expire_producers(&self, before_ms: i64) -> Result<u64, StorageError> {
        self.call(|reply| Command::ExpireProducers { before_ms, reply })
            .await?
    }

    /// The first stored batch's base timestamp (its records' earliest, for
    /// a producer whose clock moves forward), or `None` when the partition
    /// is empty. After a `DeleteRecords` into a batch, that batch's: its
    /// first records may be below the log start. Blocking.
    pub fn first_timestamp(&self, partition: &Partition) -> Result<Option<i64>, StorageError> {
        let offsets = partition.offsets();
        if offsets.log_start_offset >= offsets.high_watermark {
            return Ok(None);
        }
        let (id, index) = (partition.topic_id(), partition.index());
        let txn = self.db.begin_read()?;
        let batches = txn.open_table(BATCHES)?;
        let Some(entry) = batches
            .range((id, index, 0)..=(id, index, u64::MAX))?
            .next()
        else {
            return Ok(None);
        };
        let (_, value) = entry?;
        let view = BatchView::parse(value.value()).map_err(|e| corrupt_batch(partition, &e))?;
        Ok(Some(view.base_timestamp()))
    }

    /// The first record whose timestamp is at least `timestamp`, with that
    /// timestamp, or the high watermark when there is none. Blocking.
    pub fn find_by_timestamp(
        &self,
        partition: &Partition,
        timestamp: i64,
    ) -> Result<TimeLookup, StorageError> {
        let offsets = partition.offsets();
        let (id, index) = (partition.topic_id(), partition.index());
        let txn = self.db.begin_read()?;
        let first = txn
            .open_table(TIME_INDEX)?
            .range((id, index, timestamp)..=(id, index, i64::MAX))?
            .next()
            .transpose()?
            .map(|(_, base)| base.value());
        let after_all = TimeLookup::AfterAll {
            high_watermark: offsets.high_watermark,
        };
        let Some(first) = first else {
            return Ok(after_all);
        };
        let batches = txn.open_table(BATCHES)?;
        let start = holding_batch(&batches, id, index, first.max(offsets.log_start_offset))?;
        for entry in batches.range((id, index, start)..(id, index, offsets.high_watermark))? {
            let (_, value) = entry?;
            let view = BatchView::parse(value.value()).map_err(|e| corrupt_batch(partition, &e))?;
            if view.max_timestamp() < timestamp {
                continue;
            }
            let plain = decompress(view.as_bytes()).map_err(|e| corrupt_batch(partition, &e))?;
            let view = BatchView::parse(&plain).map_err(|e| corrupt_batch(partition, &e))?;
            for record in view.records() {
                let record = record.map_err(|e| corrupt_batch(partition, &e))?;
                let offset = view.base_offset() + u64::from(record.offset_delta.max(0) as u32);
                if record.timestamp >= timestamp && offset >= offsets.log_start_offset {
                    return Ok(TimeLookup::Found {
                        offset,
                        timestamp: record.timestamp,
                    });
                }
            }
        }
        Ok(after_all)
    }

    /// Reads whole batches from `offset` on, up to about `max_bytes` (at least
    /// one batch when any is there). Blocking: call it off the async threads.
    ///
    /// As in Kafka, an offset below the log start or above the high
    /// watermark is out of range; one equal to the high watermark reads
    /// nothing (a fetch there waits for new data).
    pub fn read(
        &self,
        partition: &Partition,
        offset: u64,
        max_bytes: usize,
    ) -> Result<ReadResult, StorageError> {
        self.read_within(partition, offset, max_bytes, true)
    }

    /// As [`read`](Self::read), but when `first_may_exceed` is false not
    /// even the first batch may go past `max_bytes` (so that a response
    /// gathering many partitions stays within its budget).
    pub fn read_within(
        &self,
        partition: &Partition,
        offset: u64,
        max_bytes: usize,
        first_may_exceed: bool,
    ) -> Result<ReadResult, StorageError> {
        if partition.is_deleted() {
            return Err(StorageError::UnknownTopic(partition.topic().into()));
        }
        // The offsets are read before the snapshot, so the snapshot holds at
        // least everything below this high watermark.
        let offsets = partition.offsets();
        if offset < offsets.log_start_offset || offset > offsets.high_watermark {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: offsets.log_start_offset,
                high_watermark: offsets.high_watermark,
            });
        }
        let mut batches = Vec::new();
        if offset == offsets.high_watermark {
            return Ok(ReadResult { offsets, batches });
        }
        let (id, index) = (partition.topic_id(), partition.index());
        let txn = self.db.begin_read()?;
        let table = txn.open_table(BATCHES)?;
        let start = holding_batch(&table, id, index, offset)?;
        // Below the high watermark every offset is stored: the next batch
        // must start where the last one ended. A gap is damage, not an end;
        // `next` stays at `offset` when no batch holding it was found (a
        // batch found but over the byte budget moves it too).
        let mut next = offset;
        for entry in table.range((id, index, start)..(id, index, offsets.high_watermark))? {
            let (_, value) = entry?;
            let bytes = value.value();
            let view = BatchView::parse(bytes).map_err(|e| corrupt_batch(partition, &e))?;
            if view.last_offset() < offset {
                continue;
            }
            if view.base_offset() > next {
                break;
            }
            next = view.last_offset() + 1;
            let may_exceed = batches.is_empty() && first_may_exceed;
            if !may_exceed && batches.len() + bytes.len() > max_bytes {
                break;
            }
            if batches.is_empty() {
                // Sized once, from the first batch's bytes per record times
                // the records up to the high watermark, within the budget:
                // grown batch by batch, a multi-MiB read copied everything
                // before at each doubling, into fresh pages.
                let per_record = bytes.len() / view.record_count().max(1) as usize;
                let records = offsets.high_watermark.saturating_sub(view.base_offset());
                let estimate =
                    per_record.saturating_mul(usize::try_from(records).unwrap_or(usize::MAX));
                batches.reserve(estimate.min(max_bytes).max(bytes.len()));
            }
            batches.extend_from_slice(bytes);
            if batches.len() >= max_bytes {
                break;
            }
        }
        if next == offset {
            // Retention may have removed it since the offsets were read: then
            // the offset is below the log start now, as a reader is told.
            let now = partition.offsets();
            if offset < now.log_start_offset {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset: now.log_start_offset,
                    high_watermark: now.high_watermark,
                });
            }
            // Nothing holds `offset`, though it is below the high watermark.
            tracing::error!(
                topic = partition.topic(),
                partition = partition.index(),
                offset,
                high_watermark = offsets.high_watermark,
                "no stored batch holds an offset below the high watermark"
            );
            return Err(StorageError::CorruptMetadata {
                what: format!(
                    "{}/{} at offset {offset}",
                    partition.topic(),
                    partition.index()
                ),
                reason: format!(
                    "no stored batch holds it, though the high watermark is {}",
                    offsets.high_watermark
                ),
            });
        }
        Ok(ReadResult { offsets, batches })
    }

    /// Commits everything queued, stops the writer and waits for it.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.writer.send(Command::Shutdown { reply }).await.is_ok() {
            let _ = done.await;
        }
        let thread = self
            .writer_thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, StorageError> {
        let (reply, response) = oneshot::channel();
        self.writer
            .send(command(reply))
            .await
            .map_err(|_| self.db.health.stopped_error())?;
        response.await.map_err(|_| self.db.health.stopped_error())
    }
}

pub(crate) fn corrupt_batch(
    partition: &Partition,
    e: &quiver_proto::batch::BatchError,
) -> StorageError {
    StorageError::CorruptMetadata {
        what: format!("batch in {}/{}", partition.topic(), partition.index()),
        reason: e.to_string(),
    }
}

fn stamp_format_version(db: &Database) -> Result<(), StorageError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get(FORMAT_VERSION_KEY)?.map(|v| v.value());
        match found {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(StorageError::UnsupportedFormat {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            None => {
                meta.insert(FORMAT_VERSION_KEY, FORMAT_VERSION)?;
            }
        }
        // Create the other tables so readers never meet a missing one.
        txn.open_table(TOPICS)?;
        txn.open_table(PARTITION_STATE)?;
        txn.open_table(BATCHES)?;
        txn.open_table(TIME_INDEX)?;
        txn.open_table(tables::COMMITTED_OFFSETS)?;
        txn.open_table(tables::MODULES)?;
        txn.open_table(tables::MODULE_CODE)?;
        txn.open_table(tables::TRANSFORMS)?;
        txn.open_table(tables::TRANSFORM_POSITIONS)?;
        txn.open_table(tables::TRANSFORM_STATE)?;
        txn.open_table(tables::TRANSFORM_COUNTERS)?;
        txn.open_table(tables::PRODUCER_STATE)?;
    }
    txn.commit()?;
    Ok(())
}

/// What a lookup by time found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeLookup {
    /// The first record at or after the time: its offset and timestamp.
    Found {
        /// Its offset.
        offset: u64,
        /// Its timestamp.
        timestamp: i64,
    },
    /// No record is that recent: reading goes on from the high watermark
    /// the lookup saw.
    AfterAll {
        /// The high watermark.
        high_watermark: u64,
    },
}

impl TimeLookup {
    /// Where reading from that time starts.
    pub fn offset(self) -> u64 {
        match self {
            Self::Found { offset, .. } => offset,
            Self::AfterAll { high_watermark } => high_watermark,
        }
    }
}

/// The key of the batch holding `offset` in partition `(id, index)`: the
/// last one starting at or before it (`offset` itself when none does). The
/// log start may fall inside a batch, so reading from an offset begins
/// there, not at the first batch starting after it.
pub(crate) fn holding_batch(
    batches: &impl ReadableTable<(u64, u32, u64), &'static [u8]>,
    id: u64,
    index: u32,
    offset: u64,
) -> Result<u64, StorageError> {
    Ok(batches
        .range((id, index, 0)..=(id, index, offset))?
        .next_back()
        .transpose()?
        .map_or(offset, |(key, _)| key.value().2))
}

/// Loads every topic, checking each partition's stored high watermark
/// against its last stored batch.
fn load_topics(db: &Database) -> Result<HashMap<String, Arc<Topic>>, StorageError> {
    let txn = db.begin_read()?;
    let topics = txn.open_table(TOPICS)?;
    let state = txn.open_table(PARTITION_STATE)?;
    let batches = txn.open_table(BATCHES)?;
    let mut out = HashMap::new();
    for entry in topics.iter()? {
        let (name, value) = entry?;
        let name = name.value().to_owned();
        let record =
            TopicRecord::decode(value.value()).map_err(|e| StorageError::CorruptMetadata {
                what: format!("topic {name:?}"),
                reason: e.to_string(),
            })?;
        let mut loaded = Vec::with_capacity(record.partitions as usize);
        for partition in 0..record.partitions {
            let (log_start_offset, high_watermark, size_bytes, max_timestamp) = state
                .get((record.id, partition))?
                .map_or((0, 0, 0, i64::MIN), |v| v.value());
            let last = batches
                .range((record.id, partition, 0)..=(record.id, partition, u64::MAX))?
                .next_back()
                .transpose()?;
            if let Some((_, value)) = last {
                let end = BatchView::parse(value.value())
                    .map(|view| view.last_offset() + 1)
                    .map_err(|e| e.to_string());
                if end != Ok(high_watermark) {
                    return Err(StorageError::CorruptMetadata {
                        what: format!("partition {name}/{partition}"),
                        reason: format!(
                            "stored high watermark {high_watermark} disagrees with the last batch ({end:?})"
                        ),
                    });
                }
            }
            loaded.push((
                Offsets {
                    log_start_offset,
                    high_watermark,
                },
                LogStats {
                    size_bytes,
                    max_timestamp,
                },
            ));
        }
        let topic = topic_handle(&name, record, |i| loaded[i as usize]);
        out.insert(name, Arc::new(topic));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
