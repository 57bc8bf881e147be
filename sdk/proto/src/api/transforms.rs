//! Deployed transforms: a stored module run by the broker on every record of
//! an input topic, writing derived topics and keeping durable state.
//!
//! Deploy names the module, the input topic, the outputs (a default output
//! topic plus named ones the module addresses by name), parameters, where to
//! start and what to do when a call fails. The broker then runs it until it
//! is paused, fails under the `stop` policy or is deleted, across restarts.

use serde::{Deserialize, Serialize};

use super::{Request, RequestKind};

/// Where a new transform starts reading each input partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartFrom {
    /// The oldest stored record.
    Earliest,
    /// Only records produced after the deploy.
    Latest,
    /// This offset in every partition (clamped to the stored range).
    Offset(u64),
}

/// What a transform does when a call fails (the guest returns an error,
/// traps, runs past its deadline or breaks a limit). A failed call changes
/// nothing; the policy decides what happens next. Displayed as the CLI flag
/// spells it (`stop`, `skip`, `dead-letter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnError {
    /// Stop the transform with the error in its status; `resume` retries
    /// the same batch.
    Stop,
    /// Skip the batch: move the input position past it and carry on.
    Skip,
    /// Write the batch's records, with the error in a `quiver-error` header,
    /// to the dead-letter topic `NAME-dlq`, move past it and carry on.
    DeadLetter,
}

impl OnError {
    /// The policy as the `--on-error` flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Skip => "skip",
            Self::DeadLetter => "dead-letter",
        }
    }
}

impl std::fmt::Display for OnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Deploy a transform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployTransformRequest {
    /// The transform's name (the topic-name rule).
    pub name: String,
    /// The stored module to run (its current version).
    pub module: String,
    /// The input topic.
    pub input: String,
    /// The default output topic; `None` means `NAME-out`. Created with the
    /// input's partition count if missing.
    pub default_output: Option<String>,
    /// Named outputs: (name the module uses, topic). The topics must exist.
    pub outputs: Vec<(String, String)>,
    /// `init` parameters, in order.
    pub params: Vec<(String, String)>,
    /// Where to start.
    pub from: StartFrom,
    /// The failure policy.
    pub on_error: OnError,
    /// Per-call deadline in ms; `None` takes the broker's default.
    pub deadline_ms: Option<u32>,
    /// Guest memory cap in bytes; `None` takes the broker's default.
    pub memory_bytes: Option<u64>,
}

impl Request for DeployTransformRequest {
    const KIND: RequestKind = RequestKind::DeployTransform;
    type Response = TransformStatus;
}

/// List transforms, or one by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTransformsRequest {
    /// Only this transform (`UnknownTransform` if there is none).
    pub name: Option<String>,
}

impl Request for ListTransformsRequest {
    const KIND: RequestKind = RequestKind::ListTransforms;
    type Response = ListTransformsResponse;
}

/// Transforms, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTransformsResponse {
    /// Their status.
    pub transforms: Vec<TransformStatus>,
}

/// What to do to a transform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransformAction {
    /// Stop calling the module; positions and state stay.
    Pause,
    /// Run again (also after a failure under the `stop` policy, retrying the
    /// batch that failed).
    Resume,
    /// Run the named module's current version from the next call on,
    /// keeping positions and state.
    Upgrade {
        /// The module.
        module: String,
    },
    /// Stop it and delete its positions and state (its output topics stay).
    Delete,
    /// Change the failure policy from the next call on (kept in the stored
    /// transform; `DeadLetter` creates `NAME-dlq` if missing). A failed
    /// transform stays failed until `Resume`.
    Alter {
        /// The new policy.
        on_error: OnError,
    },
    /// Move one input partition's position (state is kept). The offset must
    /// lie in the partition's stored range, log start to high watermark. A
    /// failed transform stays failed until `Resume`.
    Seek {
        /// The input partition.
        partition: u32,
        /// The next offset to process.
        offset: u64,
    },
}

/// Pause, resume, upgrade, delete, alter or seek a transform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlTransformRequest {
    /// The transform.
    pub name: String,
    /// What to do.
    pub action: TransformAction,
}

impl Request for ControlTransformRequest {
    const KIND: RequestKind = RequestKind::ControlTransform;
    type Response = ();
}

/// Read a page of a transform's log lines: those after `after_seq`, at or
/// after `since_ms`, and of those the last `tail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformLogsRequest {
    /// The transform.
    pub name: String,
    /// Only lines with a larger sequence number (0 for all kept).
    pub after_seq: u64,
    /// Lines to return at most (capped at
    /// [`crate::limits::MAX_LOG_LINES_PER_READ`]; fewer come once they hold
    /// about [`crate::limits::MAX_LOG_READ_BYTES`]).
    pub max_lines: u32,
    /// Only lines written at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only the last this many of the lines the fields above select.
    pub tail: Option<u32>,
}

impl Request for TransformLogsRequest {
    const KIND: RequestKind = RequestKind::TransformLogs;
    type Response = TransformLogsResponse;
}

/// A page of log lines, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformLogsResponse {
    /// The lines.
    pub lines: Vec<LogLine>,
    /// More lines matched than this page holds: ask again with `after_seq`
    /// set to the last line's (and no `tail`).
    pub more: bool,
}

/// How severe a log line is (the contract's `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// Something failed.
    Error,
}

/// One line of a transform's log: from the guest's `log` calls, its stdout
/// and stderr, or the host (failures, restarts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Increases by one per line of this transform since the broker started.
    pub seq: u64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Severity.
    pub level: LogLevel,
    /// Where it came from: `guest`, `stdout`, `stderr` or `host`.
    pub source: String,
    /// The text (truncated to [`crate::limits::MAX_LOG_LINE_BYTES`]).
    pub message: String,
}

/// Read a transform's state store: one key, or the keys with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformStateRequest {
    /// The transform.
    pub name: String,
    /// Keys starting with this (empty: all), from the smallest.
    pub prefix: Vec<u8>,
    /// Entries at most (capped at [`crate::limits::MAX_STATE_ENTRIES_PER_READ`];
    /// fewer come once they hold about [`crate::limits::MAX_STATE_READ_BYTES`]).
    pub limit: u32,
}

impl Request for TransformStateRequest {
    const KIND: RequestKind = RequestKind::TransformState;
    type Response = TransformStateResponse;
}

/// One state entry: (key, value).
pub type StateEntry = (Vec<u8>, Vec<u8>);

/// State entries in key order, as last committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformStateResponse {
    /// (key, value).
    pub entries: Vec<StateEntry>,
}

/// Whether a transform runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunState {
    /// Calling the module as records arrive.
    Running,
    /// Paused by `pause`.
    Paused,
    /// Stopped by a failure under the `stop` policy (or a failed `init`).
    Failed {
        /// Why.
        error: String,
    },
}

/// A transform's settings and progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformStatus {
    /// Its name.
    pub name: String,
    /// The module it runs.
    pub module: String,
    /// That module's version.
    pub module_version: u32,
    /// The input topic.
    pub input: String,
    /// The default output topic.
    pub default_output: String,
    /// Named outputs: (name, topic).
    pub outputs: Vec<(String, String)>,
    /// The `init` parameters.
    pub params: Vec<(String, String)>,
    /// The failure policy.
    pub on_error: OnError,
    /// Per-call deadline, ms.
    pub deadline_ms: u32,
    /// Guest memory cap, bytes.
    pub memory_bytes: u64,
    /// Running, paused or failed.
    pub state: RunState,
    /// Per input partition: committed position and lag.
    pub partitions: Vec<TransformPartition>,
    /// Input records processed (committed) since the deploy; durable.
    pub records_in: u64,
    /// Output records committed since the deploy; durable.
    pub records_out: u64,
    /// Failed calls since the deploy; durable.
    pub errors: u64,
    /// The most recent failure, if any.
    pub last_error: Option<String>,
}

/// One input partition's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformPartition {
    /// The input partition.
    pub partition: u32,
    /// The next input offset to process (committed).
    pub position: u64,
    /// The partition's high watermark.
    pub high_watermark: u64,
    /// Why this partition alone is stopped (its stored input is damaged or
    /// unreadable at `position`), while the others go on; `None` if it runs
    /// with the transform.
    pub error: Option<String>,
}

impl TransformPartition {
    /// Records not processed yet.
    pub fn lag(&self) -> u64 {
        self.high_watermark.saturating_sub(self.position)
    }
}
