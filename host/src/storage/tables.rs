//! Every redb table the broker keeps, with its key and value layout.
//!
//! | table             | key                                   | value                                  |
//! |-------------------|---------------------------------------|----------------------------------------|
//! | `meta`            | `&str` name                           | `u64` (`format_version`, `next_topic_id`) |
//! | `topics`          | `&str` topic name                     | postcard [`TopicRecord`]               |
//! | `partition_state` | `(topic_id, partition)`               | `(log_start_offset, high_watermark, size_bytes, max_timestamp)` |
//! | `batches`         | `(topic_id, partition, base_offset)`  | one `RecordBatch` v2, as produced, with its base offset set |
//! | `committed_offsets` | `(group, topic, partition)`         | `(next offset, metadata)`              |
//! | `modules`         | `&str` module name                    | postcard [`ModuleRecord`]              |
//! | `module_code`     | `(name, version)`                     | the component's bytes                  |
//! | `transforms`      | `&str` transform name                 | postcard [`TransformRecord`]           |
//! | `transform_positions` | `(transform, input partition)`    | next input offset to process           |
//! | `transform_state` | `(transform, key bytes)`              | value bytes                            |
//! | `transform_counters` | `&str` transform name              | `(records_in, records_out, errors)` since the deploy |
//! | `time_index`      | `(topic_id, partition, timestamp)`    | base offset of the first batch whose running max timestamp reached `timestamp` |
//! | `producer_state`  | `(topic_id, partition, producer_id)`  | postcard `ProducerState`: epoch, last batch time, the last five batches' sequences and offsets |
//!
//! The time index gains an entry only when a batch raises its partition's
//! running maximum timestamp, so its keys and values both increase: the first
//! entry at or after `T` names the first batch that can hold a record with a
//! timestamp of at least `T`.
//!
//! Topic ids are never reused, so a deleted topic's rows can never be
//! mistaken for a newer topic of the same name.

use quiver_proto::api::transforms::OnError;
use quiver_proto::api::{TimestampType, TopicCompression, TopicConfig};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// Small named counters and stamps.
pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// Topic name to its postcard-encoded [`TopicRecord`].
pub(crate) const TOPICS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("topics");

/// `(topic_id, partition)` to [`PartitionState`].
pub(crate) const PARTITION_STATE: TableDefinition<'_, (u64, u32), PartitionState> =
    TableDefinition::new("partition_state");

/// `(log_start_offset, high_watermark, size_bytes, max_timestamp)`: where the
/// log begins and ends, the bytes of its stored batches, and the largest
/// batch timestamp appended so far (`i64::MIN` before the first).
pub(crate) type PartitionState = (u64, u64, u64, i64);

/// `(group, topic, partition)` to `(next offset to read, metadata)`.
pub(crate) const COMMITTED_OFFSETS: TableDefinition<'_, (&str, &str, u32), (u64, &str)> =
    TableDefinition::new("committed_offsets");

/// Module name to its postcard-encoded [`ModuleRecord`].
pub(crate) const MODULES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("modules");

/// `(module name, version)` to the component's bytes.
pub(crate) const MODULE_CODE: TableDefinition<'_, (&str, u32), &[u8]> =
    TableDefinition::new("module_code");

/// Transform name to its postcard-encoded [`TransformRecord`].
pub(crate) const TRANSFORMS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("transforms");

/// `(transform, input partition)` to the next input offset to process.
pub(crate) const TRANSFORM_POSITIONS: TableDefinition<'_, (&str, u32), u64> =
    TableDefinition::new("transform_positions");

/// `(transform, key)` to a value of the transform's state store.
pub(crate) const TRANSFORM_STATE: TableDefinition<'_, (&str, &[u8]), &[u8]> =
    TableDefinition::new("transform_state");

/// Transform name to `(records_in, records_out, errors)` since its deploy,
/// written with each commit (added after format version 1 shipped: created
/// at open, and a transform without a row counts from zero).
pub(crate) const TRANSFORM_COUNTERS: TableDefinition<'_, &str, (u64, u64, u64)> =
    TableDefinition::new("transform_counters");

/// `(topic_id, partition, timestamp)` to a base offset; see the module docs.
pub(crate) const TIME_INDEX: TableDefinition<'_, (u64, u32, i64), u64> =
    TableDefinition::new("time_index");

/// `(topic_id, partition, producer_id)` to an idempotent producer's
/// postcard-encoded state on the partition (added after format version 1
/// shipped: created at open; a producer without a row starts afresh).
pub(crate) const PRODUCER_STATE: TableDefinition<'_, (u64, u32, u64), &[u8]> =
    TableDefinition::new("producer_state");

/// `(topic_id, partition, base_offset)` to the batch bytes.
pub(crate) const BATCHES: TableDefinition<'_, (u64, u32, u64), &[u8]> =
    TableDefinition::new("batches");

/// `META` key of the on-disk format version.
pub(crate) const FORMAT_VERSION_KEY: &str = "format_version";

/// `META` key of the next topic id to hand out.
pub(crate) const NEXT_TOPIC_ID_KEY: &str = "next_topic_id";
/// `META` key of the next producer id to hand out.
pub(crate) const NEXT_PRODUCER_ID_KEY: &str = "next_producer_id";

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

impl TopicRecord {
    /// Decodes a stored topic, including one written before topics had a
    /// `compression.type` (postcard has no field names, so that older layout
    /// is tried when the current one runs out of bytes; such a topic keeps
    /// what producers send, Kafka's default).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        /// The layout of format version 1 before `compression` was added.
        #[derive(Deserialize)]
        struct Before {
            id: u64,
            partitions: u32,
            retention_ms: Option<u64>,
            retention_bytes: Option<u64>,
            timestamp_type: TimestampType,
        }
        postcard::from_bytes(bytes).or_else(|e| {
            // Only bytes that end early under the current layout and fill
            // the older one exactly are taken as the older layout.
            if e != postcard::Error::DeserializeUnexpectedEnd {
                return Err(e);
            }
            let Ok((before, [])) = postcard::take_from_bytes::<Before>(bytes) else {
                return Err(e);
            };
            Ok(Self {
                id: before.id,
                partitions: before.partitions,
                config: TopicConfig {
                    retention_ms: before.retention_ms,
                    retention_bytes: before.retention_bytes,
                    timestamp_type: before.timestamp_type,
                    compression: TopicCompression::Producer,
                },
            })
        })
    }
}

/// A module as stored in `MODULES`; its bytes are in `MODULE_CODE` under
/// `(name, version)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ModuleRecord {
    /// Raised by one on every upload under the same name.
    pub(crate) version: u32,
    /// SHA-256 of the bytes, lower-case hex.
    pub(crate) sha256: String,
    /// Size of the bytes.
    pub(crate) size_bytes: u64,
    /// Upload time, ms since the epoch.
    pub(crate) uploaded_at_ms: i64,
    /// What the component imports.
    pub(crate) imports: Vec<String>,
}

/// A deployed transform as stored in `TRANSFORMS`; its positions and state
/// are in `TRANSFORM_POSITIONS` and `TRANSFORM_STATE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformRecord {
    /// The module it runs.
    pub module: String,
    /// The module's version when deployed or last upgraded.
    pub module_version: u32,
    /// The input topic.
    pub input: String,
    /// The default output topic.
    pub default_output: String,
    /// Named outputs: (name, topic).
    pub outputs: Vec<(String, String)>,
    /// `init` parameters.
    pub params: Vec<(String, String)>,
    /// The failure policy.
    pub on_error: OnError,
    /// Per-call deadline, ms.
    pub deadline_ms: u32,
    /// Guest memory cap, bytes.
    pub memory_bytes: u64,
    /// Paused by the user.
    pub paused: bool,
    /// Stopped by a failure, with the error.
    pub failed: Option<String>,
}

#[cfg(test)]
mod tests {
    use quiver_proto::batch::Compression;

    use super::*;

    #[test]
    fn a_topic_stored_before_compression_type_existed_still_decodes() {
        // The bytes an earlier build stored: id, partitions, retention.ms,
        // retention.bytes, timestamp type, and nothing after.
        let before = postcard::to_stdvec(&(7u64, 3u32, Some(60_000u64), None::<u64>, 1u32))
            .expect("encodes");
        let record = TopicRecord::decode(&before).expect("decodes");
        assert_eq!((record.id, record.partitions), (7, 3));
        assert_eq!(record.config.retention_ms, Some(60_000));
        assert_eq!(record.config.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(record.config.compression, TopicCompression::Producer);

        let now = TopicRecord {
            config: TopicConfig {
                compression: TopicCompression::Codec(Compression::Lz4),
                ..record.config
            },
            ..record
        };
        let stored = postcard::to_stdvec(&now).expect("encodes");
        assert_eq!(TopicRecord::decode(&stored), Ok(now));
        assert!(TopicRecord::decode(&stored[..3]).is_err());
        // A damaged setting is an error, not the older layout.
        let mut damaged = stored.clone();
        *damaged.last_mut().expect("bytes") = 9;
        assert!(TopicRecord::decode(&damaged).is_err());
    }
}
