//! In-memory handles for topics and partitions: what the rest of the broker
//! holds to append to, read from, and wait on a partition.
//!
//! The offsets a handle publishes are those of durable data only: the group
//! commit writer moves the high watermark after the commit is on disk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use quiver_proto::api::TopicConfig;
use tokio::sync::watch;

/// Where a partition's log begins and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offsets {
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// The offset the next record will get; everything below it is durable.
    pub high_watermark: u64,
}

/// What a partition holds besides its offsets; moved only by the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Bytes of stored batches.
    pub size_bytes: u64,
    /// Largest batch timestamp appended so far (`i64::MIN` before the first).
    pub max_timestamp: i64,
}

impl Default for LogStats {
    fn default() -> Self {
        Self {
            size_bytes: 0,
            max_timestamp: i64::MIN,
        }
    }
}

/// One partition of a topic.
#[derive(Debug)]
pub struct Partition {
    topic: Arc<str>,
    topic_id: u64,
    index: u32,
    offsets: watch::Sender<Offsets>,
    stats: Mutex<LogStats>,
    deleted: AtomicBool,
}

impl Partition {
    pub(crate) fn new(
        topic: Arc<str>,
        topic_id: u64,
        index: u32,
        offsets: Offsets,
        stats: LogStats,
    ) -> Self {
        Self {
            topic,
            topic_id,
            index,
            offsets: watch::Sender::new(offsets),
            stats: Mutex::new(stats),
            deleted: AtomicBool::new(false),
        }
    }

    /// Size and timestamp facts of the durable log.
    pub fn stats(&self) -> LogStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_stats(&self, stats: LogStats) {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic's never-reused id.
    pub fn topic_id(&self) -> u64 {
        self.topic_id
    }

    /// The partition's number.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The current durable offsets.
    pub fn offsets(&self) -> Offsets {
        *self.offsets.borrow()
    }

    /// A receiver that sees every later change of the offsets, and also
    /// wakes when the topic is deleted.
    pub fn subscribe(&self) -> watch::Receiver<Offsets> {
        self.offsets.subscribe()
    }

    /// Whether the topic was deleted after this handle was taken.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(crate) fn publish(&self, offsets: Offsets) {
        self.offsets.send_replace(offsets);
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        // Wake long-polls so they notice at once.
        self.offsets.send_modify(|_| ());
    }
}

/// A topic and its partitions.
#[derive(Debug)]
pub struct Topic {
    /// The name.
    pub name: Arc<str>,
    /// Never reused, even after deletion.
    pub id: u64,
    /// Settings.
    pub config: TopicConfig,
    /// The partitions, indexed by number.
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// A partition by number.
    pub fn partition(&self, index: u32) -> Option<&Arc<Partition>> {
        self.partitions.get(index as usize)
    }
}
