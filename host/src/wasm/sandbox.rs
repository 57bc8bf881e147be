//! Running a module: [`Sandbox`] is a compiled, pre-linked module;
//! [`GuestInstance`] is one warm instance of it with its own store, called
//! batch after batch and replaced after a trap.
//!
//! What a guest can reach: the contract's `log` and `state` imports and
//! WASI preview 2 with no preopened directories, no sockets or name lookups,
//! an empty environment and arguments, stdout and stderr into the
//! transform's log, the host's clocks and randomness. What stops it: an
//! epoch deadline per call, a cap on its linear memory, and limits on the
//! outputs and state a call may produce.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use quiver_proto::api::transforms::LogLevel;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap, WasmBacktrace};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use quiver_proto::batch::{BatchBuilder, NewRecord, set_base_offset};

use super::bindings::{v1, v2, v3};
use super::logbook::{LogStream, Logbook};
use super::state::{CallState, StateChanges, StateSnapshot, StateSource};
use super::validate::check_exports;
use super::{Contract, EPOCH_TICK, InputRecord, ModuleError, OutputRecord, WasmEngine};

/// Default per-call deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
/// Default cap on a guest's linear memory.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Largest memory cap a deployment may ask for.
pub const MAX_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
/// Longest deadline a deployment may ask for.
pub const MAX_DEADLINE: Duration = Duration::from_mins(1);
/// Most output records one call may return.
pub const MAX_OUTPUTS_PER_CALL: usize = 100_000;
/// Largest output record (key, value and headers).
pub const MAX_OUTPUT_RECORD_BYTES: usize = 1024 * 1024;
/// Most output bytes one call may return.
pub const MAX_OUTPUT_BYTES_PER_CALL: usize = 64 * 1024 * 1024;
/// Most table elements a guest may grow to.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// Most core instances, memories and tables in one guest instance (a Rust
/// component has a handful of each).
const MAX_CORE_INSTANCES: usize = 100;
const MAX_MEMORIES: usize = 16;
const MAX_TABLES: usize = 100;
/// Frames of a trap's backtrace kept in its message (the innermost ones);
/// a stack overflow's trace is thousands of frames long.
pub const MAX_TRACE_FRAMES: usize = 4;
/// An out-of-bounds memory access whose innermost function appears at
/// least this often in the backtrace is a stack overflow: Rust guests keep
/// their stack in linear memory, and recursing off its end reads below
/// address 0, which traps as an out-of-bounds access.
pub const RECURSION_FRAMES: usize = 8;

/// The limits one transform's calls run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Longest a call may run.
    pub deadline: Duration,
    /// Largest the guest's linear memory may grow.
    pub memory_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            deadline: DEFAULT_DEADLINE,
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

/// Why a call failed. A failed call changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// `init` returned an error (bad parameters, say).
    #[error("init failed: {0}")]
    Init(String),
    /// The guest returned an error.
    #[error("module returned an error: {0}")]
    Guest(String),
    /// The call ran past its deadline and was stopped.
    #[error("call stopped at its deadline of {ms} ms")]
    Deadline {
        /// The deadline.
        ms: u64,
    },
    /// The guest tried to grow its memory past the cap and then trapped.
    #[error("module exceeded its memory cap of {cap} bytes (asked for {asked})")]
    MemoryCap {
        /// The cap.
        cap: u64,
        /// What it asked for.
        asked: u64,
    },
    /// The guest trapped (a panic, an out-of-bounds access, a failed state
    /// call, ...).
    #[error("module trapped: {0}")]
    Trap(String),
    /// The guest ran out of stack (unbounded recursion, say).
    #[error("module trapped: stack overflow ({0})")]
    StackOverflow(String),
    /// The call's outputs broke a limit.
    #[error("{0}")]
    Limit(String),
    /// The state store could not be read (a storage failure, not the
    /// module's fault).
    #[error("state store: {0}")]
    State(String),
}

impl CallError {
    /// Whether the failure may be the fault of one record in the batch, so
    /// that a smaller batch could succeed: an error the module returned, a
    /// trap, or outputs over a limit. Deadlines, the memory cap, `init` and
    /// storage failures are not.
    pub fn may_be_one_record(&self) -> bool {
        matches!(
            self,
            Self::Guest(_) | Self::Trap(_) | Self::StackOverflow(_) | Self::Limit(_)
        )
    }
}

/// A compiled module, linked against the host's imports, ready to
/// instantiate cheaply.
#[derive(Clone)]
pub struct Sandbox {
    engine: WasmEngine,
    pre: Pre,
}

/// A pre-linked module of one contract version.
#[derive(Clone)]
enum Pre {
    V1(v1::TransformPre<GuestData>),
    V2(v2::TransformPre<GuestData>),
    V3(v3::TransformPre<GuestData>),
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sandbox")
    }
}

impl Sandbox {
    /// Compiles `bytes` (or loads the compiled artefact from the engine's
    /// cache) and links it. CPU-heavy: call it off the async threads.
    pub fn new(engine: &WasmEngine, bytes: &[u8]) -> Result<Self, ModuleError> {
        let not_runnable = |e: wasmtime::Error| ModuleError::NotAComponent(format!("{e:#}"));
        let component = Component::from_binary(engine.engine(), bytes).map_err(not_runnable)?;
        let exports: Vec<String> = component
            .component_type()
            .exports(engine.engine())
            .map(|(name, _)| name.to_owned())
            .collect();
        let contract = check_exports(&exports)?;
        let mut linker = Linker::<GuestData>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(not_runnable)?;
        let pre = match contract {
            Contract::V1 => {
                v1::Transform::add_to_linker::<GuestData, HasSelf<GuestData>>(&mut linker, |d| d)
                    .map_err(not_runnable)?;
                let pre = linker.instantiate_pre(&component).map_err(not_runnable)?;
                Pre::V1(v1::TransformPre::new(pre).map_err(not_runnable)?)
            }
            Contract::V2 => {
                v2::Transform::add_to_linker::<GuestData, HasSelf<GuestData>>(&mut linker, |d| d)
                    .map_err(not_runnable)?;
                let pre = linker.instantiate_pre(&component).map_err(not_runnable)?;
                Pre::V2(v2::TransformPre::new(pre).map_err(not_runnable)?)
            }
            Contract::V3 => {
                v3::Transform::add_to_linker::<GuestData, HasSelf<GuestData>>(&mut linker, |d| d)
                    .map_err(not_runnable)?;
                let pre = linker.instantiate_pre(&component).map_err(not_runnable)?;
                Pre::V3(v3::TransformPre::new(pre).map_err(not_runnable)?)
            }
        };
        Ok(Self {
            engine: engine.clone(),
            pre,
        })
    }
}

/// The outcome of a successful call.
#[derive(Debug, Default)]
pub struct CallOutput {
    /// Records for the outputs, in order.
    pub outputs: Vec<OutputRecord>,
    /// State writes to commit with them.
    pub changes: StateChanges,
}

/// A warm instance of a module, initialised with its parameters.
pub struct GuestInstance {
    sandbox: Sandbox,
    limits: SandboxLimits,
    logbook: Arc<Logbook>,
    params: Vec<(String, String)>,
    /// The transform's state store; `None` for fetch-time modules, whose
    /// state calls fail.
    state: Option<Arc<dyn StateSource>>,
    live: Option<Live>,
}

impl std::fmt::Debug for GuestInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestInstance")
            .field("limits", &self.limits)
            .field("live", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

struct Live {
    store: Store<GuestData>,
    bindings: Bindings,
}

/// An instance's exports, of its contract version.
enum Bindings {
    V1(v1::Transform),
    V2(v2::Transform),
    V3(v3::Transform),
}

/// A `process` call's input: records of one partition, in both shapes the
/// contract versions take.
#[derive(Debug, Clone, Copy)]
pub struct CallInput<'a> {
    /// The records, non-empty.
    pub records: &'a [InputRecord<'a>],
    /// The stored batches holding them, as 0.2.0 and later modules take
    /// them (they may hold records before and after `records`).
    pub batches: &'a [&'a [u8]],
}

impl GuestInstance {
    /// An instance of `sandbox` that will be initialised with `params` at
    /// its first call (and after each trap), reading and writing `state`.
    pub fn new(
        sandbox: Sandbox,
        limits: SandboxLimits,
        logbook: Arc<Logbook>,
        params: Vec<(String, String)>,
        state: Option<Arc<dyn StateSource>>,
    ) -> Self {
        Self {
            sandbox,
            limits,
            logbook,
            params,
            state,
            live: None,
        }
    }

    /// Instantiates and calls `init` now, unless already done: a deploy
    /// reports bad parameters at once.
    pub fn start(&mut self) -> Result<(), CallError> {
        if self.live.is_none() {
            self.live = Some(self.instantiate()?);
        }
        Ok(())
    }

    /// Calls `process` on records of one input partition.
    pub fn process(&mut self, input: CallInput<'_>) -> Result<CallOutput, CallError> {
        let (Some(first), Some(last)) = (input.records.first(), input.records.last()) else {
            return Ok(CallOutput::default());
        };
        // 0.2.0 and 0.3.0 take the same input, in types of their own.
        macro_rules! input_batch {
            ($v:ident) => {
                $v::quiver::transform::types::InputBatch {
                    topic: first.topic,
                    partition: first.partition,
                    batches: input.batches,
                    first_offset: first.offset,
                    end_offset: last.offset.saturating_add(1),
                }
            };
        }
        self.call(|bindings, store| match bindings {
            Bindings::V1(b) => {
                let records: Vec<_> = input.records.iter().map(to_v1).collect();
                let result = b.quiver_transform_guest().call_process(store, &records)?;
                Ok(result.map(|outputs| outputs.into_iter().map(from_v1).collect()))
            }
            Bindings::V2(b) => {
                let result = b
                    .quiver_transform_guest()
                    .call_process(store, input_batch!(v2))?;
                Ok(result.map(|outputs| outputs.into_iter().map(from_v2).collect()))
            }
            Bindings::V3(b) => b
                .quiver_transform_guest()
                .call_process(store, input_batch!(v3)),
        })
    }

    /// Calls `process` on one record (fetch-time modules answer record by
    /// record); a 0.2.0 or later module gets it in a batch of its own.
    pub fn process_one(&mut self, record: &InputRecord<'_>) -> Result<CallOutput, CallError> {
        let records = std::slice::from_ref(record);
        if matches!(self.sandbox.pre, Pre::V1(_)) {
            return self.process(CallInput {
                records,
                batches: &[],
            });
        }
        let mut builder = BatchBuilder::default();
        let headers: Vec<_> = record
            .headers
            .iter()
            .map(|&(key, value)| quiver_proto::batch::Header {
                key: key.to_owned(),
                value: value.map(bytes::Bytes::copy_from_slice),
            })
            .collect();
        builder
            .push(&NewRecord {
                key: record.key,
                value: record.value,
                headers: &headers,
                timestamp: record.timestamp,
            })
            .map_err(|e| CallError::Limit(format!("record does not fit a batch: {e}")))?;
        let mut batch = builder.finish();
        set_base_offset(&mut batch, record.offset);
        self.process(CallInput {
            records,
            batches: &[&batch],
        })
    }

    /// Calls `on-tick` with the event-time watermark.
    pub fn on_tick(&mut self, watermark: i64) -> Result<CallOutput, CallError> {
        self.call(|bindings, store| match bindings {
            Bindings::V1(b) => {
                let result = b.quiver_transform_guest().call_on_tick(store, watermark)?;
                Ok(result.map(|outputs| outputs.into_iter().map(from_v1).collect()))
            }
            Bindings::V2(b) => {
                let result = b.quiver_transform_guest().call_on_tick(store, watermark)?;
                Ok(result.map(|outputs| outputs.into_iter().map(from_v2).collect()))
            }
            Bindings::V3(b) => b.quiver_transform_guest().call_on_tick(store, watermark),
        })
    }

    /// Drops the warm instance, so the next call starts a fresh one with
    /// `init`: for when the host discards a call the guest saw succeed, so
    /// that nothing the guest cached from it survives.
    pub fn reset(&mut self) {
        self.live = None;
    }

    /// A fresh snapshot of the state, if the instance has a store.
    fn snapshot(&self) -> Result<Option<Box<dyn StateSnapshot>>, CallError> {
        self.state
            .as_ref()
            .map(|source| source.snapshot())
            .transpose()
            .map_err(CallError::State)
    }

    fn call(
        &mut self,
        f: impl FnOnce(
            &Bindings,
            &mut Store<GuestData>,
        ) -> wasmtime::Result<Result<Vec<OutputRecord>, String>>,
    ) -> Result<CallOutput, CallError> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.instantiate()?,
        };
        let snapshot = self.snapshot()?;
        let writable = snapshot.is_some();
        live.store.data_mut().state = CallState::new(snapshot, writable);
        live.store.data_mut().limiter.denied = None;
        live.store.set_epoch_deadline(self.deadline_ticks());
        let result = f(&live.bindings, &mut live.store);
        let changes = live.store.data_mut().state.take_changes();
        match result {
            Ok(Ok(outputs)) => {
                // Over a limit, the call is discarded: so is the instance,
                // whose memory (a cache of state, by contract) saw it.
                check_outputs(&outputs)?;
                self.live = Some(live);
                Ok(CallOutput { outputs, changes })
            }
            // A failed call changes nothing, so its instance, which may have
            // cached what the call did, goes too; and a trapped instance is
            // not called again. The next call gets a fresh one.
            Ok(Err(message)) => Err(CallError::Guest(message)),
            Err(e) => Err(self.classify(&e, &live.store)),
        }
    }

    /// A new instance with `init` called; `init` sees the state read-only.
    fn instantiate(&self) -> Result<Live, CallError> {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let snapshot = self.snapshot()?;
        let logbook = &self.logbook;
        let wasi = WasiCtx::builder()
            .stdout(LogStream::new(
                Arc::clone(logbook),
                "stdout",
                LogLevel::Info,
            ))
            .stderr(LogStream::new(
                Arc::clone(logbook),
                "stderr",
                LogLevel::Warn,
            ))
            .build();
        let data = GuestData {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap: usize::try_from(self.limits.memory_bytes).unwrap_or(usize::MAX),
                total: 0,
                denied: None,
            },
            state: CallState::new(snapshot, false),
            logbook: Arc::clone(logbook),
        };
        let mut store = Store::new(self.sandbox.engine.engine(), data);
        store.limiter(|data| &mut data.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks());
        let (bindings, init) = match &self.sandbox.pre {
            Pre::V1(pre) => pre.instantiate(&mut store).and_then(|b| {
                let init = b.quiver_transform_guest().call_init(&mut store, &params)?;
                Ok((Bindings::V1(b), init))
            }),
            Pre::V2(pre) => pre.instantiate(&mut store).and_then(|b| {
                let init = b.quiver_transform_guest().call_init(&mut store, &params)?;
                Ok((Bindings::V2(b), init))
            }),
            Pre::V3(pre) => pre.instantiate(&mut store).and_then(|b| {
                let init = b.quiver_transform_guest().call_init(&mut store, &params)?;
                Ok((Bindings::V3(b), init))
            }),
        }
        .map_err(|e| self.classify(&e, &store))?;
        init.map_err(CallError::Init)?;
        // Close `init`'s read transaction now, not at the next call.
        store.data_mut().state = CallState::default();
        Ok(Live { store, bindings })
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis().max(1);
        // One tick more: the first may end at once.
        u64::try_from(self.limits.deadline.as_millis().div_ceil(tick)).unwrap_or(u64::MAX) + 1
    }

    fn classify(&self, error: &wasmtime::Error, store: &Store<GuestData>) -> CallError {
        if let Some(asked) = store.data().limiter.denied {
            return CallError::MemoryCap {
                cap: self.limits.memory_bytes,
                asked: asked as u64,
            };
        }
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return CallError::Deadline {
                ms: u64::try_from(self.limits.deadline.as_millis()).unwrap_or(u64::MAX),
            };
        }
        describe_trap(error)
    }
}

/// A trap (or a failed host call) as a short message: the reason, and the
/// innermost [`MAX_TRACE_FRAMES`] frames of its backtrace. A stack
/// overflow says so, whether wasmtime caught it (its own call stack ran
/// out) or the guest's stack in linear memory ran off its end (which traps
/// as an out-of-bounds access, thousands of frames deep).
fn describe_trap(error: &wasmtime::Error) -> CallError {
    let frames = error
        .downcast_ref::<WasmBacktrace>()
        .map_or(&[][..], WasmBacktrace::frames);
    let reason = error
        .chain()
        .map(|cause| prefix_of(cause, 200))
        .filter(|text| !text.starts_with(BACKTRACE_HEADER))
        .collect::<Vec<_>>()
        .join(": ");
    let trace = short_trace(frames);
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => CallError::StackOverflow(format!("{reason}{trace}")),
        Some(Trap::MemoryOutOfBounds) if recursing(frames) => CallError::StackOverflow(format!(
            "{reason} in a recursion {} frames deep: the guest's stack in linear memory ran out{trace}",
            frames.len()
        )),
        _ => CallError::Trap(format!("{reason}{trace}")),
    }
}

/// Whether the innermost frame's function is on the stack at least
/// [`RECURSION_FRAMES`] times.
fn recursing(frames: &[wasmtime::FrameInfo]) -> bool {
    let Some(top) = frames.first() else {
        return false;
    };
    let same = |frame: &&wasmtime::FrameInfo| {
        frame.func_index() == top.func_index() && frame.module().name() == top.module().name()
    };
    frames.iter().filter(same).count() >= RECURSION_FRAMES
}

/// How wasmtime's backtrace context starts when displayed.
const BACKTRACE_HEADER: &str = "error while executing at wasm backtrace";

/// `; at f (module) <- g (module) ... and N more frames`, innermost first;
/// empty without frames.
fn short_trace(frames: &[wasmtime::FrameInfo]) -> String {
    if frames.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = frames
        .iter()
        .take(MAX_TRACE_FRAMES)
        .map(|frame| {
            let module = frame.module().name().unwrap_or("module");
            match frame.func_name() {
                Some(name) => format!("{name} ({module})"),
                None => format!("function {} ({module})", frame.func_index()),
            }
        })
        .collect();
    let mut trace = format!("; at {}", shown.join(" <- "));
    if frames.len() > MAX_TRACE_FRAMES {
        let more = frames.len() - MAX_TRACE_FRAMES;
        let _ = write!(trace, " and {more} more frames");
    }
    trace
}

/// At most the first `max` bytes of `value`'s display, without formatting
/// the rest (a backtrace's display can be megabytes).
fn prefix_of(value: &dyn std::fmt::Display, max: usize) -> String {
    struct Bounded {
        text: String,
        max: usize,
    }
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = self.max - self.text.len();
            if s.len() <= room {
                self.text.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.text.push_str(&s[..end]);
            Err(std::fmt::Error)
        }
    }
    let mut out = Bounded {
        text: String::new(),
        max,
    };
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{value}"));
    out.text
}

/// Checks a call's outputs against the per-call limits.
fn check_outputs(outputs: &[OutputRecord]) -> Result<(), CallError> {
    if outputs.len() > MAX_OUTPUTS_PER_CALL {
        return Err(CallError::Limit(format!(
            "a call returned {} output records; the limit is {MAX_OUTPUTS_PER_CALL}",
            outputs.len()
        )));
    }
    let mut total = 0;
    for (index, record) in outputs.iter().enumerate() {
        let size = output_size(record);
        if size > MAX_OUTPUT_RECORD_BYTES {
            return Err(CallError::Limit(format!(
                "output record {index} has {size} bytes; the limit is {MAX_OUTPUT_RECORD_BYTES}"
            )));
        }
        total += size;
    }
    if total > MAX_OUTPUT_BYTES_PER_CALL {
        return Err(CallError::Limit(format!(
            "a call returned {total} bytes of output; the limit is {MAX_OUTPUT_BYTES_PER_CALL}"
        )));
    }
    Ok(())
}

/// Bytes of a record's key, value and headers.
pub fn output_size(record: &OutputRecord) -> usize {
    record.key.as_ref().map_or(0, Vec::len)
        + record.value.as_ref().map_or(0, Vec::len)
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>()
}

/// What a guest's store holds.
struct GuestData {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    state: CallState,
    logbook: Arc<Logbook>,
}

impl WasiView for GuestData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The host's side of `log` and `state`, for one contract version's
/// bindings (the interfaces are the same in every version).
macro_rules! host_imports {
    ($v:ident) => {
        impl $v::quiver::transform::types::Host for GuestData {}

        impl $v::quiver::transform::log::Host for GuestData {
            fn log(&mut self, level: $v::quiver::transform::log::Level, message: String) {
                use $v::quiver::transform::log::Level;
                let level = match level {
                    Level::Trace => LogLevel::Trace,
                    Level::Debug => LogLevel::Debug,
                    Level::Info => LogLevel::Info,
                    Level::Warn => LogLevel::Warn,
                    Level::Error => LogLevel::Error,
                };
                self.logbook.push(level, "guest", &message);
            }
        }

        impl $v::quiver::transform::state::Host for GuestData {
            fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
                Ok(self.state.get(&key)?)
            }

            fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
                Ok(self.state.put(key, value)?)
            }

            fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
                Ok(self.state.delete(key)?)
            }

            fn scan_prefix(
                &mut self,
                prefix: Vec<u8>,
                limit: u32,
            ) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
                Ok(self.state.scan_prefix(&prefix, limit)?)
            }
        }
    };
}

host_imports!(v1);
host_imports!(v2);
host_imports!(v3);

/// An input record as a 0.1.0 module takes it: a null value reads as empty.
fn to_v1<'a>(record: &InputRecord<'a>) -> v1::quiver::transform::types::InputRecord<'a> {
    v1::quiver::transform::types::InputRecord {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        key: record.key,
        value: record.value.unwrap_or_default(),
        headers: record.headers,
    }
}

/// A 0.1.0 or 0.2.0 output record (whose value is never null) as the
/// host's, field for field.
macro_rules! from_older {
    ($name:ident, $v:ident) => {
        fn $name(record: $v::quiver::transform::types::OutputRecord) -> OutputRecord {
            OutputRecord {
                output: record.output,
                key: record.key,
                value: Some(record.value),
                headers: record.headers,
                timestamp: record.timestamp,
            }
        }
    };
}

from_older!(from_v1, v1);
from_older!(from_v2, v2);

/// Caps the instance's linear memories, all of them together, and
/// remembers a refused growth, so that the trap that follows (the guest's
/// allocator gives up) is reported as the cap.
struct MemoryLimiter {
    cap: usize,
    /// Bytes of every memory of the instance so far.
    total: usize,
    denied: Option<usize>,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total.saturating_add(desired.saturating_sub(current));
        if total > self.cap {
            self.denied = Some(total);
            return Ok(false);
        }
        self.total = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_display_is_cut_without_formatting_the_rest() {
        struct Endless;
        impl std::fmt::Display for Endless {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                loop {
                    f.write_str("frame é\n")?;
                }
            }
        }
        let text = prefix_of(&Endless, 20);
        assert!(
            text.len() <= 20 && text.starts_with("frame é\nframe"),
            "{text:?}"
        );
        assert_eq!(prefix_of(&"short", 20), "short");
    }

    #[test]
    fn a_trap_without_a_backtrace_is_its_reason() {
        let error = wasmtime::Error::new(Trap::StackOverflow);
        assert!(matches!(describe_trap(&error), CallError::StackOverflow(_)));
        let error = wasmtime::Error::new(Trap::MemoryOutOfBounds);
        assert_eq!(
            describe_trap(&error),
            CallError::Trap(Trap::MemoryOutOfBounds.to_string())
        );
        assert!(!recursing(&[]));
    }
}
