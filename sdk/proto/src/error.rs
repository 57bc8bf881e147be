//! Stable numeric error codes and the error body that carries them.
//!
//! The codes are part of the protocol: a number, once given, is never reused
//! for another meaning. Where Kafka has a code for the same condition, Quiver
//! uses Kafka's number, so that a Kafka-protocol front end can pass codes
//! through unchanged. Conditions Kafka lacks, or folds together (Kafka answers
//! both an unknown topic and an unknown partition with 3), get numbers from
//! 1000 up.
//!
//! | code | name                   | Kafka name                       |
//! |-----:|------------------------|----------------------------------|
//! |   -1 | `UnknownServerError`   | `UNKNOWN_SERVER_ERROR`           |
//! |    1 | `OffsetOutOfRange`     | `OFFSET_OUT_OF_RANGE`            |
//! |    2 | `CorruptBatch`         | `CORRUPT_MESSAGE`                |
//! |    3 | `UnknownTopic`         | `UNKNOWN_TOPIC_OR_PARTITION`     |
//! |   10 | `BatchTooLarge`        | `MESSAGE_TOO_LARGE`              |
//! |   17 | `InvalidTopicName`     | `INVALID_TOPIC_EXCEPTION`        |
//! |   22 | `IllegalGeneration`    | `ILLEGAL_GENERATION`             |
//! |   23 | `InconsistentStrategy` | `INCONSISTENT_GROUP_PROTOCOL`    |
//! |   45 | `OutOfOrderSequence`   | `OUT_OF_ORDER_SEQUENCE_NUMBER`   |
//! |   47 | `InvalidProducerEpoch` | `INVALID_PRODUCER_EPOCH`         |
//! |   25 | `UnknownMember`        | `UNKNOWN_MEMBER_ID`              |
//! |   26 | `InvalidSessionTimeout`| `INVALID_SESSION_TIMEOUT`        |
//! |   27 | `GroupBusy`            | `REBALANCE_IN_PROGRESS`          |
//! |   35 | `UnsupportedVersion`   | `UNSUPPORTED_VERSION`            |
//! |   36 | `TopicAlreadyExists`   | `TOPIC_ALREADY_EXISTS`           |
//! |   37 | `InvalidPartitions`    | `INVALID_PARTITIONS`             |
//! |   42 | `InvalidRequest`       | `INVALID_REQUEST`                |
//! |   56 | `StorageError`         | `KAFKA_STORAGE_ERROR`            |
//! |   68 | `NonEmptyGroup`        | `NON_EMPTY_GROUP`                |
//! |   69 | `GroupNotFound`        | `GROUP_ID_NOT_FOUND`             |
//! |   76 | `UnsupportedCompression` | `UNSUPPORTED_COMPRESSION_TYPE` |
//! |   81 | `GroupMaxSizeReached`  | `GROUP_MAX_SIZE_REACHED`         |
//! |  110 | `FencedMemberEpoch`    | `FENCED_MEMBER_EPOCH`            |
//! | 1000 | `UnknownPartition`     | (folded into 3)                  |
//! | 1001 | `FrameTooLarge`        | (none: Kafka closes the socket)  |
//! | 1002 | `TooManyConnections`   | (none)                           |
//! | 1003 | `ShuttingDown`         | (none)                           |
//! | 1004 | `UnknownRequestKind`   | (none)                           |
//! | 1005 | `NotAssigned`          | (none: the member does not own the partition) |
//! | 1006 | `TooManyGroups`        | (none)                           |
//! | 1007 | `InvalidModule`        | (none: a WebAssembly upload was refused) |
//! | 1008 | `UnknownModule`        | (none)                           |
//! | 1009 | `UnknownTransform`     | (none)                           |
//! | 1010 | `TransformExists`      | (none)                           |
//! | 1011 | `ModuleInUse`          | (none: a transform runs the module) |
//! | 1012 | `ModuleFailed`         | (none: a fetch-time module failed) |
//! | 1013 | `TopicInUse`           | (none: a transform reads or writes the topic) |
//! | 1015 | `Busy`                 | (none: at a limit of concurrent work; retriable) |
//! | 1016 | `LimitReached`         | (none: a broker-wide limit refuses more) |

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable numeric error code. See the module docs for the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "i16", from = "i16")]
#[repr(i16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// An unexpected failure inside the broker; also what an unrecognised
    /// code from a newer peer decodes as.
    UnknownServerError = -1,
    /// The requested offset lies outside the partition's valid range.
    OffsetOutOfRange = 1,
    /// A record batch failed validation (length, CRC, counts, deltas).
    CorruptBatch = 2,
    /// The topic does not exist.
    UnknownTopic = 3,
    /// A record batch is larger than the broker accepts.
    BatchTooLarge = 10,
    /// The topic name breaks the naming rule.
    InvalidTopicName = 17,
    /// A Kafka group member's generation is not the group's (Kafka's
    /// `ILLEGAL_GENERATION`): join again.
    IllegalGeneration = 22,
    /// A member asked for another assignment strategy than the group uses.
    InconsistentStrategy = 23,
    /// The member is not (or no longer) in the group; rejoin.
    UnknownMember = 25,
    /// The session timeout is outside the broker's range.
    InvalidSessionTimeout = 26,
    /// The group's offsets are being reset or deleted; join again shortly.
    GroupBusy = 27,
    /// The request kind is known but this version of it is not.
    UnsupportedVersion = 35,
    /// A topic with this name already exists.
    TopicAlreadyExists = 36,
    /// The partition count is zero or above the maximum.
    InvalidPartitions = 37,
    /// The request is malformed: a head that does not decode, lengths that
    /// do not add up, a limit exceeded.
    InvalidRequest = 42,
    /// An idempotent producer's batch does not follow its previous one
    /// (Kafka's `OUT_OF_ORDER_SEQUENCE_NUMBER`).
    OutOfOrderSequence = 45,
    /// An idempotent producer's epoch is older than the partition has seen
    /// (Kafka's `INVALID_PRODUCER_EPOCH`): a newer instance took over.
    InvalidProducerEpoch = 47,
    /// The storage engine failed.
    StorageError = 56,
    /// The group has members, so the operation is refused.
    NonEmptyGroup = 68,
    /// No such group.
    GroupNotFound = 69,
    /// The batch uses a compression codec the broker does not accept.
    UnsupportedCompression = 76,
    /// The group has as many members as allowed.
    GroupMaxSizeReached = 81,
    /// The member's epoch is stale: another member may own its partitions.
    FencedMemberEpoch = 110,
    /// The topic exists but has no such partition.
    UnknownPartition = 1000,
    /// The frame's length prefix is above [`crate::limits::MAX_FRAME_BYTES`].
    FrameTooLarge = 1001,
    /// The broker is at [`crate::limits::MAX_CONNECTIONS`].
    TooManyConnections = 1002,
    /// The broker is shutting down and takes no new work.
    ShuttingDown = 1003,
    /// The request kind is not one this broker knows.
    UnknownRequestKind = 1004,
    /// The member does not own the partition it commits or fetches.
    NotAssigned = 1005,
    /// The broker has as many groups as allowed.
    TooManyGroups = 1006,
    /// An uploaded WebAssembly module is not a component the broker can run
    /// (bad bytes, a forbidden import, another contract version, too large).
    InvalidModule = 1007,
    /// No module of that name.
    UnknownModule = 1008,
    /// No transform of that name.
    UnknownTransform = 1009,
    /// A transform of that name exists.
    TransformExists = 1010,
    /// The module cannot be deleted while a transform runs it.
    ModuleInUse = 1011,
    /// A fetch-time module failed (its error, trap, deadline or limit).
    ModuleFailed = 1012,
    /// The topic cannot be deleted (without `force`) while a transform
    /// reads or writes it.
    TopicInUse = 1013,
    /// Storage takes no writes that add data for now: the disk is full (or
    /// the storage limit is reached), or the database is being reopened
    /// after a write error. Retriable; reads still work.
    StorageUnavailable = 1014,
    /// The broker is at a limit of concurrent work (module compilations,
    /// fetch-time module instances): the same request may succeed shortly.
    Busy = 1015,
    /// A broker-wide limit (deployed transforms, their guest memory) refuses
    /// the request until something is removed or the limit is raised.
    LimitReached = 1016,
}

impl ErrorCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ErrorCode; 40] = [
        Self::UnknownServerError,
        Self::OffsetOutOfRange,
        Self::CorruptBatch,
        Self::UnknownTopic,
        Self::BatchTooLarge,
        Self::InvalidTopicName,
        Self::IllegalGeneration,
        Self::InconsistentStrategy,
        Self::UnknownMember,
        Self::InvalidSessionTimeout,
        Self::GroupBusy,
        Self::UnsupportedVersion,
        Self::TopicAlreadyExists,
        Self::InvalidPartitions,
        Self::InvalidRequest,
        Self::OutOfOrderSequence,
        Self::InvalidProducerEpoch,
        Self::StorageError,
        Self::NonEmptyGroup,
        Self::GroupNotFound,
        Self::UnsupportedCompression,
        Self::GroupMaxSizeReached,
        Self::FencedMemberEpoch,
        Self::UnknownPartition,
        Self::FrameTooLarge,
        Self::TooManyConnections,
        Self::ShuttingDown,
        Self::UnknownRequestKind,
        Self::NotAssigned,
        Self::TooManyGroups,
        Self::InvalidModule,
        Self::UnknownModule,
        Self::UnknownTransform,
        Self::TransformExists,
        Self::ModuleInUse,
        Self::ModuleFailed,
        Self::TopicInUse,
        Self::StorageUnavailable,
        Self::Busy,
        Self::LimitReached,
    ];

    /// The number on the wire.
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// The code for a number; unrecognised numbers become
    /// [`ErrorCode::UnknownServerError`].
    pub fn from_code(code: i16) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.code() == code)
            .unwrap_or(Self::UnknownServerError)
    }
}

impl From<ErrorCode> for i16 {
    fn from(code: ErrorCode) -> i16 {
        code.code()
    }
}

impl From<i16> for ErrorCode {
    fn from(code: i16) -> Self {
        Self::from_code(code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({})", self.code())
    }
}

/// Structured facts that go with some errors, so a client can act on them
/// without parsing the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorDetail {
    /// No further facts.
    None,
    /// The valid offsets of a partition: `log_start_offset..high_watermark`.
    OffsetRange {
        /// The first offset still stored.
        log_start_offset: u64,
        /// The offset the next record will get.
        high_watermark: u64,
    },
    /// A size that exceeded its limit.
    Size {
        /// The size seen.
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// An error as it travels on the wire: a code, a human message, and facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} [{code}]")]
pub struct WireError {
    /// The stable code.
    pub code: ErrorCode,
    /// A message for people; not for matching on.
    pub message: String,
    /// Facts for programs.
    pub detail: ErrorDetail,
}

impl WireError {
    /// An error with no structured detail.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: ErrorDetail::None,
        }
    }

    /// Attaches structured detail.
    #[must_use]
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.detail = detail;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.code()), "duplicate number {code}");
            assert_eq!(ErrorCode::from_code(code.code()), code);
            let bytes = postcard::to_stdvec(&code).unwrap();
            assert_eq!(postcard::from_bytes::<ErrorCode>(&bytes).unwrap(), code);
        }
    }

    #[test]
    fn kafka_numbers_are_kept() {
        assert_eq!(ErrorCode::OffsetOutOfRange.code(), 1);
        assert_eq!(ErrorCode::CorruptBatch.code(), 2);
        assert_eq!(ErrorCode::UnknownTopic.code(), 3);
        assert_eq!(ErrorCode::BatchTooLarge.code(), 10);
        assert_eq!(ErrorCode::TopicAlreadyExists.code(), 36);
    }

    #[test]
    fn unknown_numbers_decode_as_server_error() {
        assert_eq!(ErrorCode::from_code(31_000), ErrorCode::UnknownServerError);
    }
}
