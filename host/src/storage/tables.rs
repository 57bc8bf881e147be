//! Every redb table the broker keeps, with its key and value layout.
//!
//! | table             | key                                   | value                                  |
//! |-------------------|---------------------------------------|----------------------------------------|
//! | `meta`            | `&str` name                           | `u64` (`format_version`, `next_topic_id`) |
//! | `topics`          | `&str` topic name                     | postcard [`TopicRecord`]               |
//! | `partition_state` | `(topic_id, partition)`               | `(log_start_offset, high_watermark)`   |
//! | `batches`         | `(topic_id, partition, base_offset)`  | one `RecordBatch` v2, as produced, with its base offset set |
//!
//! Topic ids are never reused, so a deleted topic's rows can never be
//! mistaken for a newer topic of the same name.

use quiver_proto::api::TopicConfig;
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// Small named counters and stamps.
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// Topic name to its postcard-encoded [`TopicRecord`].
pub(crate) const TOPICS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("topics");

/// `(topic_id, partition)` to `(log_start_offset, high_watermark)`.
pub(crate) const PARTITION_STATE: TableDefinition<'_, (u64, u32), (u64, u64)> =
    TableDefinition::new("partition_state");

/// `(topic_id, partition, base_offset)` to the batch bytes.
pub(crate) const BATCHES: TableDefinition<'_, (u64, u32, u64), &[u8]> =
    TableDefinition::new("batches");

/// `META` key of the on-disk format version.
pub(crate) const FORMAT_VERSION_KEY: &str = "format_version";

/// `META` key of the next topic id to hand out.
pub(crate) const NEXT_TOPIC_ID_KEY: &str = "next_topic_id";

/// The on-disk format this build reads and writes. Bump it when a table's
/// layout changes; a database with another version is refused at open.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// A topic as stored in `TOPICS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    /// Never reused, even after deletion.
    pub(crate) id: u64,
    /// Partition count.
    pub(crate) partitions: u32,
    /// Settings.
    pub(crate) config: TopicConfig,
}
