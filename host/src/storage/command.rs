//! What the writer thread is asked to do: one [`Command`] per write, each
//! with the channel its answer goes back on. The writer runs them in the
//! order they queue (see `writer.rs`); the operations themselves are defined
//! beside their resource (`writer.rs` for the log and topics, `modules.rs`,
//! `transforms.rs`).

use std::sync::Arc;

use quiver_proto::api::TopicConfig;
use quiver_proto::api::modules::ModuleDescription;
use tokio::sync::oneshot;

use super::StorageError;
use super::log::NewBatch;
use super::modules::NewModule;
use super::partition::{Partition, Topic};
use super::producers::ProducerBatch;
use super::tables::TransformRecord;
use super::transforms::{TransformCommit, TransformCounters};
use super::writer::{OffsetToCommit, Truncated};

/// A change to a topic's settings, given the current ones.
pub(crate) type ConfigUpdate = Box<dyn FnOnce(TopicConfig) -> TopicConfig + Send>;

/// One batch to append, acknowledged on its own.
pub(crate) struct Append {
    pub(crate) batch: NewBatch,
    /// Set for a batch from an idempotent producer.
    pub(crate) producer: Option<ProducerBatch>,
    pub(crate) reply: oneshot::Sender<Result<u64, StorageError>>,
}

pub(crate) enum Command {
    Append(Append),
    InitProducerId {
        reply: oneshot::Sender<Result<u64, StorageError>>,
    },
    ExpireProducers {
        before_ms: i64,
        reply: oneshot::Sender<Result<u64, StorageError>>,
    },
    CreateTopic {
        name: String,
        partitions: u32,
        config: TopicConfig,
        reply: oneshot::Sender<Result<Arc<Topic>, StorageError>>,
    },
    DeleteTopic {
        name: String,
        force: bool,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    AlterTopic {
        name: String,
        /// Applied to the current settings inside the writer, so concurrent
        /// alters do not overwrite each other.
        update: ConfigUpdate,
        partitions: Option<u32>,
        reply: oneshot::Sender<Result<Arc<Topic>, StorageError>>,
    },
    /// Store a group's committed offsets.
    CommitOffsets {
        group: String,
        offsets: Vec<OffsetToCommit>,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// Forget a group's committed offsets.
    DeleteGroupOffsets {
        group: String,
        reply: oneshot::Sender<Result<u64, StorageError>>,
    },
    /// Store a validated module as its name's next version.
    PutModule {
        module: NewModule,
        reply: oneshot::Sender<Result<ModuleDescription, StorageError>>,
    },
    /// Delete a module and its bytes.
    DeleteModule {
        name: String,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// Store a transform: a new one with its starting positions, or a
    /// changed record of an existing one.
    PutTransform {
        name: String,
        record: TransformRecord,
        /// `Some` deploys (refused if the name exists), `None` updates.
        positions: Option<Vec<(u32, u64)>>,
        /// Counters to store with it (a deploy stores zeros).
        counters: Option<TransformCounters>,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// Delete a transform with its positions and state.
    DeleteTransform {
        name: String,
        reply: oneshot::Sender<Result<(), StorageError>>,
    },
    /// A transform call's outputs, state changes and position, in one
    /// transaction.
    CommitTransform(TransformCommit),
    /// Move a partition's log start to `before` (which may fall inside a
    /// batch), deleting the batches that end below it.
    Truncate {
        partition: Arc<Partition>,
        before: u64,
        reply: oneshot::Sender<Result<Truncated, StorageError>>,
    },
    /// Commit what is queued before it, then stop.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

impl Command {
    /// Whether the command stores more data (refused while the disk is full).
    pub(super) fn adds_data(&self) -> bool {
        matches!(
            self,
            Self::Append(_)
                | Self::CommitTransform(_)
                | Self::PutModule { .. }
                | Self::CreateTopic { .. }
                // A producer that could store nothing needs no id yet.
                | Self::InitProducerId { .. }
        )
    }

    /// Whether the command removes data (so a full disk may have room again).
    pub(super) fn frees_space(&self) -> bool {
        matches!(
            self,
            Self::DeleteTopic { .. }
                | Self::Truncate { .. }
                | Self::DeleteModule { .. }
                | Self::DeleteTransform { .. }
                | Self::DeleteGroupOffsets { .. }
                | Self::ExpireProducers { .. }
        )
    }

    /// Answers the command with `error` without running it.
    pub(super) fn refuse(self, error: StorageError) {
        match self {
            Self::Append(append) => drop(append.reply.send(Err(error))),
            Self::CreateTopic { reply, .. } | Self::AlterTopic { reply, .. } => {
                drop(reply.send(Err(error)));
            }
            Self::DeleteTopic { reply, .. }
            | Self::CommitOffsets { reply, .. }
            | Self::DeleteModule { reply, .. }
            | Self::PutTransform { reply, .. }
            | Self::DeleteTransform { reply, .. } => drop(reply.send(Err(error))),
            Self::DeleteGroupOffsets { reply, .. } => drop(reply.send(Err(error))),
            Self::PutModule { reply, .. } => drop(reply.send(Err(error))),
            Self::CommitTransform(commit) => drop(commit.reply.send(Err(error))),
            Self::Truncate { reply, .. } => drop(reply.send(Err(error))),
            Self::InitProducerId { reply } | Self::ExpireProducers { reply, .. } => {
                drop(reply.send(Err(error)));
            }
            Self::Shutdown { reply } => drop(reply.send(())),
        }
    }
}
