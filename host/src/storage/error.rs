//! Storage errors, and their mapping to wire codes.

use quiver_proto::{ErrorCode, ErrorDetail, WireError};

use super::health::StorageProblem;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An idempotent producer's batch does not follow its last one.
    #[error("out-of-order sequence number {got} from an idempotent producer (expected {expected})")]
    OutOfOrderSequence {
        /// The sequence the next batch must start at.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// An idempotent producer's epoch is older than the partition has seen
    /// (a newer instance of the producer took over).
    #[error("producer epoch {got} is older than the partition's {current}")]
    InvalidProducerEpoch {
        /// The epoch the partition last saw.
        current: i16,
        /// The batch's.
        got: i16,
    },
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
    /// The database file failed redb's integrity check and could not be
    /// repaired.
    #[error(
        "the database {} failed its integrity check ({reason}); the broker does not start on it. \
         `quiver storage check` on the data directory reports what is damaged; restore the \
         directory from a backup, or move it aside and start with an empty one",
        path.display()
    )]
    Damaged {
        /// The database file.
        path: std::path::PathBuf,
        /// What redb found.
        reason: String,
    },
    /// The writer panicked in a write (redb does on some damaged pages).
    #[error("{0}")]
    Panicked(String),
    /// A write that adds data, refused while the disk is full.
    #[error(
        "the disk is full ({0}); writes that add data are refused until space is freed: \
         delete topics, lower retention, or free disk space"
    )]
    DiskFull(String),
    /// The database is being reopened after a write error; retry.
    #[error("storage is recovering from a write error ({0}); retry shortly")]
    Recovering(String),
    /// Storage cannot go on until the broker is restarted.
    #[error(
        "storage failed: {0}; restart the broker after `quiver storage check` on its data directory"
    )]
    Failed(String),
}

/// What a failed write means for the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteFailure {
    /// No space: the disk (or the storage limit) is full.
    NoSpace(String),
    /// Another I/O error: the database must be reopened.
    Io(String),
    /// The database or redb's state is damaged: storage stops.
    Fatal(String),
}

impl WriteFailure {
    /// The error a request that met this failure gets.
    pub(crate) fn error(&self) -> StorageError {
        match self {
            Self::NoSpace(reason) => StorageError::DiskFull(reason.clone()),
            Self::Io(reason) => StorageError::Recovering(reason.clone()),
            Self::Fatal(reason) => StorageError::Failed(reason.clone()),
        }
    }

    /// What `/ready` reports once this happened.
    pub(crate) fn problem(&self) -> StorageProblem {
        match self {
            Self::NoSpace(reason) => StorageProblem::DiskFull(reason.clone()),
            Self::Io(reason) => StorageProblem::Recovering(reason.clone()),
            Self::Fatal(reason) => StorageProblem::Failed(reason.clone()),
        }
    }
}

impl StorageError {
    /// How a failed write leaves the database, for errors that say so;
    /// `None` for errors about the request (an unknown topic, ...).
    pub(crate) fn write_failure(&self) -> Option<WriteFailure> {
        let e = match self {
            Self::Engine(e) => e,
            Self::Panicked(reason) => return Some(WriteFailure::Fatal(reason.clone())),
            _ => return None,
        };
        let io_kind = match e {
            redb::Error::Io(io) => Some(io.kind()),
            _ => None,
        };
        Some(match (e, io_kind) {
            (_, Some(std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)) => {
                WriteFailure::NoSpace(e.to_string())
            }
            (_, Some(_))
            | (
                redb::Error::PreviousIo
                | redb::Error::Backend(_)
                | redb::Error::DatabaseClosed
                | redb::Error::TransactionPoisoned,
                None,
            ) => WriteFailure::Io(e.to_string()),
            (redb::Error::Corrupted(_) | redb::Error::LockPoisoned(_), None) => {
                WriteFailure::Fatal(e.to_string())
            }
            _ => return None,
        })
    }
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
            | StorageError::CommitFailed(_)
            | StorageError::Failed(_)
            | StorageError::Damaged { .. }
            | StorageError::Panicked(_) => ErrorCode::StorageError,
            StorageError::DiskFull(_) | StorageError::Recovering(_) => {
                ErrorCode::StorageUnavailable
            }
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
            StorageError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
            StorageError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
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
