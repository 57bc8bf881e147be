//! Storage errors, and their mapping to wire codes.

use quiver_proto::{ErrorCode, ErrorDetail, WireError};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// redb failed (I/O, corruption, a full disk).
    #[error("storage engine: {0}")]
    Engine(#[from] redb::Error),
    /// The database was written by a format this build does not know.
    #[error(
        "database format version {found} is not supported by this build (it reads version {supported}); \
         use a matching quiver release or a fresh --data-dir"
    )]
    UnsupportedFormat {
        /// The version stamped in the database.
        found: u64,
        /// The version this build reads.
        supported: u64,
    },
    /// A stored record could not be decoded.
    #[error("corrupt metadata for {what}: {reason}")]
    CorruptMetadata {
        /// Which record.
        what: String,
        /// Why.
        reason: String,
    },
    /// The topic does not exist.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The topic has no such partition.
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many it has.
        count: u32,
    },
    /// A topic of that name exists.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// The requested offset is outside the partition's range.
    #[error(
        "offset {offset} is out of range; valid offsets are {log_start_offset}..{high_watermark}"
    )]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// First stored offset.
        log_start_offset: u64,
        /// Next offset to be written.
        high_watermark: u64,
    },
    /// The group commit holding this append failed; nothing of it was stored.
    #[error("group commit failed, nothing was stored: {0}")]
    CommitFailed(String),
    /// An alter asked for fewer partitions than the topic has.
    #[error(
        "topic {topic:?} has {from} partitions; partitions can be added, not removed (asked for {to})"
    )]
    PartitionsCannotShrink {
        /// The topic.
        topic: String,
        /// Its partition count.
        from: u32,
        /// The count asked for.
        to: u32,
    },
    /// No module of that name.
    #[error("unknown module {0:?}")]
    UnknownModule(String),
    /// No transform of that name.
    #[error("unknown transform {0:?}")]
    UnknownTransform(String),
    /// A transform of that name exists.
    #[error("transform {0:?} already exists")]
    TransformExists(String),
    /// A transform runs the module.
    #[error("module {module:?} is used by transform {transform:?}; delete or upgrade it first")]
    ModuleInUse {
        /// The module.
        module: String,
        /// A transform running it.
        transform: String,
    },
    /// A transform reads or writes the topic.
    #[error(
        "topic {topic:?} is {} transform {transform:?}; delete the transform first, or delete the topic with --force (the transform then fails)",
        if *reads { "read by" } else { "written by" }
    )]
    TopicInUse {
        /// The topic.
        topic: String,
        /// A transform using it.
        transform: String,
        /// Whether the transform reads it (else it writes it).
        reads: bool,
    },
    /// The writer has stopped (the broker is shutting down).
    #[error("the storage writer has stopped")]
    WriterStopped,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                Self::Engine(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<&StorageError> for WireError {
    fn from(e: &StorageError) -> Self {
        let code = match e {
            StorageError::Engine(_)
            | StorageError::UnsupportedFormat { .. }
            | StorageError::CorruptMetadata { .. }
            | StorageError::CommitFailed(_) => ErrorCode::StorageError,
            StorageError::UnknownTopic(_) => ErrorCode::UnknownTopic,
            StorageError::UnknownPartition { .. } => ErrorCode::UnknownPartition,
            StorageError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
            StorageError::PartitionsCannotShrink { .. } => ErrorCode::InvalidPartitions,
            StorageError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
            StorageError::WriterStopped => ErrorCode::ShuttingDown,
            StorageError::UnknownModule(_) => ErrorCode::UnknownModule,
            StorageError::UnknownTransform(_) => ErrorCode::UnknownTransform,
            StorageError::TransformExists(_) => ErrorCode::TransformExists,
            StorageError::ModuleInUse { .. } => ErrorCode::ModuleInUse,
            StorageError::TopicInUse { .. } => ErrorCode::TopicInUse,
        };
        let error = WireError::new(code, e.to_string());
        match *e {
            StorageError::OffsetOutOfRange {
                log_start_offset,
                high_watermark,
                ..
            } => error.with_detail(ErrorDetail::OffsetRange {
                log_start_offset,
                high_watermark,
            }),
            _ => error,
        }
    }
}
