//! The broker's operations, shared by every front end.
//!
//! A front end (the QUIC listener in [`crate::server`], the Kafka listener
//! in [`crate::kafka`]) decodes its wire, calls an operation here, and
//! encodes the answer. Validation, limits, metrics and the mapping to
//! [`WireError`] codes live here once, so a behaviour never differs
//! between front ends.
//!
//! Operations speak in `quiver_proto::api`'s request and response structs:
//! they are plain data (the QUIC framing, versions and postcard encoding
//! stay in `server/`), and the Kafka front end builds them from Kafka's
//! messages. One operation per file:
//!
//! - topics: [`create_topic`], [`delete_topic`], [`alter_topic`],
//!   [`describe_topic`], [`list_topics`], [`list_offsets`];
//! - the log: [`produce`], [`fetch`], [`init_producer_id`];
//! - groups: [`join_group`], [`heartbeat`], [`leave_group`],
//!   [`commit_offsets`], [`fetch_offsets`], [`list_groups`],
//!   [`describe_group`], [`delete_group`], [`reset_offsets`];
//! - modules and transforms: [`upload_module`], [`list_modules`],
//!   [`delete_module`], [`deploy_transform`], [`list_transforms`],
//!   [`control_transform`], [`transform_logs`], [`transform_state`].

pub(crate) mod alter_topic;
pub(crate) mod commit_offsets;
pub(crate) mod control_transform;
pub(crate) mod create_topic;
pub(crate) mod delete_group;
pub(crate) mod delete_module;
pub(crate) mod delete_records;
pub(crate) mod delete_topic;
pub(crate) mod deploy_transform;
pub(crate) mod describe_group;
pub(crate) mod describe_topic;
pub(crate) mod fetch;
pub(crate) mod fetch_offsets;
pub(crate) mod heartbeat;
pub(crate) mod init_producer_id;
pub(crate) mod join_group;
pub(crate) mod leave_group;
pub(crate) mod list_groups;
pub(crate) mod list_modules;
pub(crate) mod list_offsets;
pub(crate) mod list_topics;
pub(crate) mod list_transforms;
pub(crate) mod produce;
pub(crate) mod reset_offsets;
mod session;
pub(crate) mod transform_logs;
pub(crate) mod transform_state;
pub(crate) mod upload_module;

pub use session::{Listener, Session};

use std::sync::Arc;

use quiver_proto::limits::MAX_PARTITIONS_PER_REQUEST;
use quiver_proto::{ErrorCode, WireError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::coordinator::Coordinator;
use crate::metrics::Metrics;
use crate::storage::{RetentionDefaults, Storage, StorageError};
use crate::transforms::{TransformError, Transforms};
use crate::wasm::WasmEngine;

/// Bytes of requests and responses held in memory across all connections
/// of every front end, at most; a request beyond it waits for memory as
/// its body arrives.
pub const MAX_INFLIGHT_REQUEST_BYTES: usize = 512 * 1024 * 1024;

/// Fetches reading from storage at once, at most; with
/// [`quiver_proto::limits::MAX_FETCH_BYTES`] each, this bounds the memory of
/// reads not yet counted in [`MAX_INFLIGHT_REQUEST_BYTES`].
pub const MAX_CONCURRENT_FETCH_READS: usize = 16;

/// The broker's parts the operations act on.
#[derive(Debug)]
pub struct Service {
    pub(crate) storage: Arc<Storage>,
    pub(crate) coordinator: Arc<Coordinator>,
    pub(crate) wasm: WasmEngine,
    pub(crate) transforms: Arc<Transforms>,
    pub(crate) retention_defaults: RetentionDefaults,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The broker-wide memory budget of requests and responses (bytes).
    pub(crate) request_memory: Arc<Semaphore>,
    pub(crate) fetch_reads: Semaphore,
    /// Cancelled when the broker begins to stop: long polls return early
    /// and new requests are refused.
    pub(crate) shutdown: CancellationToken,
}

impl Service {
    /// The operations over the broker's parts.
    pub fn new(
        storage: Arc<Storage>,
        coordinator: Arc<Coordinator>,
        wasm: WasmEngine,
        transforms: Arc<Transforms>,
        retention_defaults: RetentionDefaults,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            metrics: Arc::clone(storage.metrics()),
            storage,
            coordinator,
            wasm,
            transforms,
            retention_defaults,
            clock,
            request_memory: Arc::new(Semaphore::new(MAX_INFLIGHT_REQUEST_BYTES)),
            fetch_reads: Semaphore::new(MAX_CONCURRENT_FETCH_READS),
            shutdown: CancellationToken::new(),
        }
    }

    /// Starts stopping: long polls answer now, new requests are refused.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Refuses work once the broker is stopping.
    pub(crate) fn check_running(&self) -> Result<(), WireError> {
        if self.shutdown.is_cancelled() {
            return Err(shutting_down());
        }
        Ok(())
    }
}

fn shutting_down() -> WireError {
    WireError::new(ErrorCode::ShuttingDown, "broker shutting down")
}

/// Refuses a request that lists more than [`MAX_PARTITIONS_PER_REQUEST`]
/// entries (batches, partitions or offsets).
fn check_entries(count: usize, what: &str) -> Result<(), WireError> {
    if count > MAX_PARTITIONS_PER_REQUEST {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("{count} {what} in one request; the limit is {MAX_PARTITIONS_PER_REQUEST}"),
        ));
    }
    Ok(())
}

impl From<StorageError> for WireError {
    fn from(e: StorageError) -> Self {
        WireError::from(&e)
    }
}

impl From<TransformError> for WireError {
    fn from(e: TransformError) -> Self {
        WireError::from(&e)
    }
}
