//! Deployed transforms: stored modules that the broker runs on an input
//! topic, writing derived topics and keeping durable state, exactly once.
//!
//! - [`Transforms`] (this file): deploy, list, pause/resume/upgrade/delete,
//!   logs and state reads; starts every stored transform when the broker
//!   starts and stops them before storage closes.
//! - [`worker`]: one thread per transform that reads, calls the guest and
//!   commits outputs, state and input position in one transaction.
//! - [`fetch`]: fetch-time modules, run on each fetched record.
//! - [`records`]: decoding input batches for the guest and encoding its
//!   outputs into batches per output partition.
//!
//! Decisions where the issue is silent: the default output topic (and the
//! dead-letter topic `NAME-dlq` under `--on-error dead-letter`) is created
//! with the input's partition count; named outputs must exist; the log is
//! kept in memory and starts again at a broker restart, while positions,
//! counters (records in/out, errors, stored with each commit), state,
//! policy, pause and failure are durable.

pub mod fetch;
pub mod records;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_proto::api::TopicConfig;
use quiver_proto::api::transforms::{
    DeployTransformRequest, LogLevel, OnError, RunState, StartFrom, StateEntry, TransformAction,
    TransformPartition, TransformStatus,
};
use quiver_proto::limits::{MAX_STATE_READ_BYTES, MAX_TRANSFORM_PARAM_BYTES, MAX_TRANSFORM_PARAMS};
use quiver_proto::topic::validate_topic_name;
use quiver_proto::{ErrorCode, ErrorDetail, WireError};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::metrics::{TransformSample, TransformSource};
use crate::storage::{Storage, StorageError, TransformCounters, TransformRecord};
use crate::wasm::logbook::{LogPage, LogQuery};
use crate::wasm::sandbox::{MAX_DEADLINE, MAX_MEMORY_BYTES};
use crate::wasm::{
    Busy, CallError, GuestInstance, Logbook, ModuleError, Sandbox, SandboxLimits, WasmEngine,
    WasmLimits,
};

use fetch::FetchModules;
use records::Routes;
use worker::{CONTROL_QUEUE, Control, Worker};
pub use worker::{FAILURE_TRIP_RECORDS, FAILURE_WINDOW_RECORDS};

/// Smallest memory cap a deployment may ask for.
pub const MIN_MEMORY_BYTES: u64 = 1024 * 1024;

/// Why a transform operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransformError {
    /// Storage refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The module does not compile or link.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The module failed to start (`init` refused the parameters, trapped).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The request is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The transform's worker is gone (the broker is stopping).
    #[error("transform {0:?} is not running on this broker")]
    Stopped(String),
    /// At a limit of concurrent work (compilations, fetch-time instances):
    /// retry shortly.
    #[error(transparent)]
    Busy(#[from] Busy),
    /// A broker-wide limit refuses the request (transforms, guest memory).
    #[error("{0}")]
    Limit(String),
    /// A seek named a partition the input topic does not have.
    #[error(
        "transform {transform:?} reads topic {topic:?}, which has partitions 0 to {last}; there is no partition {partition}",
        last = count.saturating_sub(1)
    )]
    SeekPartition {
        /// The transform.
        transform: String,
        /// Its input topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many the topic has.
        count: u32,
    },
    /// A seek offset outside the partition's stored range.
    #[error(
        "offset {offset} is outside {topic}/{partition}: seek to an offset from {log_start_offset} (log start) to {high_watermark} (high watermark)"
    )]
    SeekOffset {
        /// The input topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// First stored offset.
        log_start_offset: u64,
        /// Next offset to be written.
        high_watermark: u64,
    },
}

impl From<&TransformError> for WireError {
    fn from(e: &TransformError) -> Self {
        match e {
            TransformError::Storage(e) => e.into(),
            TransformError::Module(_) => WireError::new(ErrorCode::InvalidModule, e.to_string()),
            TransformError::Call(_) => WireError::new(ErrorCode::ModuleFailed, e.to_string()),
            TransformError::Invalid(_) => WireError::new(ErrorCode::InvalidRequest, e.to_string()),
            TransformError::Stopped(_) => WireError::new(ErrorCode::ShuttingDown, e.to_string()),
            TransformError::Busy(_) => WireError::new(ErrorCode::Busy, e.to_string()),
            TransformError::Limit(_) => WireError::new(ErrorCode::LimitReached, e.to_string()),
            TransformError::SeekPartition { .. } => {
                WireError::new(ErrorCode::UnknownPartition, e.to_string())
            }
            TransformError::SeekOffset {
                log_start_offset,
                high_watermark,
                ..
            } => WireError::new(ErrorCode::OffsetOutOfRange, e.to_string()).with_detail(
                ErrorDetail::OffsetRange {
                    log_start_offset: *log_start_offset,
                    high_watermark: *high_watermark,
                },
            ),
        }
    }
}

/// The default output topic of transform `name`.
pub fn default_output_topic(name: &str) -> String {
    format!("{name}-out")
}

/// The dead-letter topic of transform `name`.
pub fn dead_letter_topic(name: &str) -> String {
    format!("{name}-dlq")
}

/// Every deployed transform of a broker.
pub struct Transforms {
    storage: Arc<Storage>,
    engine: WasmEngine,
    clock: Arc<dyn Clock>,
    runtime: Handle,
    workers: tokio::sync::Mutex<HashMap<String, WorkerHandle>>,
    /// The running transforms again, behind a plain lock, for `/metrics`.
    listed: Arc<Listed>,
    fetch: Arc<FetchModules>,
    limits: WasmLimits,
}

/// The transforms `/metrics` samples.
struct Listed {
    storage: Arc<Storage>,
    shared: Mutex<BTreeMap<String, Arc<Shared>>>,
}

impl Listed {
    fn insert(&self, shared: &Arc<Shared>) {
        lock(&self.shared).insert(shared.name.clone(), Arc::clone(shared));
    }

    fn remove(&self, name: &str) {
        lock(&self.shared).remove(name);
    }
}

impl TransformSource for Listed {
    fn sample(&self) -> Vec<TransformSample> {
        let shared: Vec<Arc<Shared>> = lock(&self.shared).values().cloned().collect();
        shared
            .iter()
            .map(|s| {
                let counters = s.counters();
                let positions = s.lock_progress().positions.clone();
                let lag = match self.storage.topic(&s.record().input) {
                    Ok(topic) => topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let at = positions.get(&p.index()).copied().unwrap_or(0);
                            (p.index(), p.offsets().high_watermark.saturating_sub(at))
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                };
                TransformSample {
                    name: s.name.clone(),
                    records_in: counters.records_in,
                    records_out: counters.records_out,
                    errors: counters.errors,
                    lag,
                }
            })
            .collect()
    }
}

impl std::fmt::Debug for Transforms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Transforms")
    }
}

struct WorkerHandle {
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    thread: std::thread::JoinHandle<()>,
}

impl Transforms {
    /// Starts every stored transform (paused and failed ones wait for a
    /// `resume`).
    pub async fn start(
        storage: Arc<Storage>,
        engine: WasmEngine,
        clock: Arc<dyn Clock>,
        limits: WasmLimits,
    ) -> Result<Self, TransformError> {
        let transforms = Self {
            fetch: Arc::new(FetchModules::new(
                Arc::clone(&storage),
                engine.clone(),
                Arc::clone(&clock),
                limits.max_fetch_instances,
            )),
            limits,
            storage: Arc::clone(&storage),
            engine,
            clock,
            runtime: Handle::current(),
            workers: tokio::sync::Mutex::new(HashMap::new()),
            listed: Arc::new(Listed {
                storage: Arc::clone(&storage),
                shared: Mutex::new(BTreeMap::new()),
            }),
        };
        let source: Arc<dyn TransformSource> = transforms.listed.clone();
        storage
            .metrics()
            .sample_transforms_from(Arc::downgrade(&source));
        let records = storage.transforms()?;
        let mut workers = transforms.workers.lock().await;
        for (name, record) in records {
            // The version it was deployed or upgraded with, not the latest.
            let bytes = storage.module_code_at(&record.module, record.module_version)?;
            let sandbox = transforms.compile(bytes).await?;
            let counters = storage.transform_counters(&name)?;
            let note = match (&record.failed, record.paused) {
                (Some(error), _) => format!(
                    "still failed after start: {error}; `quiver transform resume {name}` retries"
                ),
                (None, true) => "still paused after start".to_owned(),
                (None, false) => "resumed after start".to_owned(),
            };
            let level = if record.failed.is_some() {
                LogLevel::Warn
            } else {
                LogLevel::Info
            };
            let shared = Arc::new(Shared::new(
                &name,
                record,
                counters,
                Arc::clone(&storage),
                Arc::clone(&transforms.clock),
            ));
            let instance = Self::instance(&shared, sandbox);
            let handle = transforms.spawn(Arc::clone(&shared), instance)?;
            shared.log(level, &note);
            transforms.listed.insert(&shared);
            workers.insert(name, handle);
        }
        drop(workers);
        Ok(transforms)
    }

    /// Deploys a transform: checks the request, compiles the module, calls
    /// `init` (so bad parameters fail the deploy), creates missing output
    /// topics, stores it and starts it.
    pub async fn deploy(
        &self,
        request: DeployTransformRequest,
    ) -> Result<TransformStatus, TransformError> {
        let mut workers = self.workers.lock().await;
        let name = request.name.clone();
        if workers.contains_key(&name) {
            return Err(StorageError::TransformExists(name).into());
        }
        let record = self.check_deploy(&request)?;
        self.check_totals(&workers, &record)?;
        let input = self.storage.topic(&record.input)?;
        let (version, bytes) = self.storage.module_code(&record.module)?;
        let record = TransformRecord {
            module_version: version,
            ..record
        };
        let sandbox = self.compile(bytes).await?;
        let shared = Arc::new(Shared::new(
            &name,
            record.clone(),
            TransformCounters::default(),
            Arc::clone(&self.storage),
            Arc::clone(&self.clock),
        ));
        let instance = self.started_instance(&shared, sandbox).await?;
        let partitions = input.partitions.len() as u32;
        self.ensure_topic(&record.default_output, partitions)
            .await?;
        if record.on_error == OnError::DeadLetter {
            self.ensure_topic(&dead_letter_topic(&name), partitions)
                .await?;
        }
        let positions = input
            .partitions
            .iter()
            .map(|p| {
                let offsets = p.offsets();
                let at = match request.from {
                    StartFrom::Earliest => offsets.log_start_offset,
                    StartFrom::Latest => offsets.high_watermark,
                    StartFrom::Offset(offset) => {
                        offset.clamp(offsets.log_start_offset, offsets.high_watermark)
                    }
                };
                (p.index(), at)
            })
            .collect::<Vec<_>>();
        self.storage
            .deploy_transform(name.clone(), record, positions)
            .await?;
        shared.log(LogLevel::Info, "deployed");
        let handle = self.spawn(Arc::clone(&shared), instance)?;
        self.listed.insert(&shared);
        workers.insert(name, handle);
        drop(workers);
        Ok(self.status(&shared))
    }

    /// The status of one transform, or of all, sorted by name.
    pub async fn list(&self, name: Option<&str>) -> Result<Vec<TransformStatus>, TransformError> {
        let shared: Vec<Arc<Shared>> = {
            let workers = self.workers.lock().await;
            match name {
                Some(name) => vec![Arc::clone(
                    &workers
                        .get(name)
                        .ok_or_else(|| StorageError::UnknownTransform(name.into()))?
                        .shared,
                )],
                None => workers.values().map(|w| Arc::clone(&w.shared)).collect(),
            }
        };
        let mut out: Vec<TransformStatus> = shared.iter().map(|s| self.status(s)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Pauses, resumes, upgrades, deletes, alters or seeks a transform. The
    /// worker acts between calls, so this may wait for the current call (at
    /// most its deadline); other transforms' requests do not wait with it.
    pub async fn control(&self, name: &str, action: TransformAction) -> Result<(), TransformError> {
        let unknown = || TransformError::from(StorageError::UnknownTransform(name.into()));
        let (shared, control) = {
            let workers = self.workers.lock().await;
            let handle = workers.get(name).ok_or_else(unknown)?;
            (Arc::clone(&handle.shared), handle.control.clone())
        };
        let (reply, done) = oneshot::channel();
        let message = match action {
            TransformAction::Delete => {
                let handle = self.workers.lock().await.remove(name).ok_or_else(unknown)?;
                self.listed.remove(name);
                stop_worker(handle).await;
                self.storage.delete_transform(name.to_owned()).await?;
                return Ok(());
            }
            TransformAction::Pause => Control::Pause(reply),
            TransformAction::Resume => Control::Resume(reply),
            TransformAction::Upgrade { module } => {
                let (version, bytes) = self.storage.module_code(&module)?;
                let sandbox = self.compile(bytes).await?;
                let instance = self.started_instance(&shared, sandbox).await?;
                Control::Upgrade {
                    instance: Box::new(instance),
                    module,
                    version,
                    reply,
                }
            }
            TransformAction::Alter { on_error } => {
                if on_error == OnError::DeadLetter {
                    let input = self.storage.topic(&shared.record().input)?;
                    let dead_letters = dead_letter_topic(name);
                    if *dead_letters == *input.name {
                        return Err(TransformError::Invalid(format!(
                            "dead-letter topic {dead_letters:?} is the input topic; a transform cannot feed itself"
                        )));
                    }
                    self.ensure_topic(&dead_letters, input.partitions.len() as u32)
                        .await?;
                }
                Control::Alter { on_error, reply }
            }
            TransformAction::Seek { partition, offset } => {
                self.check_seek(name, &shared.record().input, partition, offset)?;
                Control::Seek {
                    partition,
                    offset,
                    reply,
                }
            }
        };
        control
            .send(message)
            .await
            .map_err(|_| TransformError::Stopped(name.into()))?;
        done.await
            .map_err(|_| TransformError::Stopped(name.into()))?
    }

    /// The fetch-time module runner.
    pub fn fetch_modules(&self) -> Arc<FetchModules> {
        Arc::clone(&self.fetch)
    }

    /// A page of a transform's log lines.
    pub async fn logs(&self, name: &str, query: &LogQuery) -> Result<LogPage, TransformError> {
        let workers = self.workers.lock().await;
        let handle = workers
            .get(name)
            .ok_or_else(|| StorageError::UnknownTransform(name.into()))?;
        Ok(handle.shared.logbook.read(query))
    }

    /// A transform's committed state entries under `prefix`. Blocking read.
    pub async fn state(
        &self,
        name: &str,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<StateEntry>, TransformError> {
        if !self.workers.lock().await.contains_key(name) {
            return Err(StorageError::UnknownTransform(name.into()).into());
        }
        let storage = Arc::clone(&self.storage);
        let (name, prefix) = (name.to_owned(), prefix.to_vec());
        let entries = tokio::task::spawn_blocking(move || {
            storage
                .transform_state(&name)?
                .scan_prefix(&prefix, limit, MAX_STATE_READ_BYTES)
        })
        .await
        .map_err(|e| StorageError::CommitFailed(format!("state read task failed: {e}")))??;
        Ok(entries)
    }

    /// Stops every worker after its current call and commit.
    pub async fn shutdown(&self) {
        let workers: Vec<WorkerHandle> =
            self.workers.lock().await.drain().map(|(_, w)| w).collect();
        lock(&self.listed.shared).clear();
        for handle in workers {
            stop_worker(handle).await;
        }
    }

    /// A seek must name an input partition and an offset in its stored
    /// range.
    fn check_seek(
        &self,
        name: &str,
        input: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), TransformError> {
        let topic = self.storage.topic(input)?;
        let Some(handle) = topic.partitions.get(partition as usize) else {
            return Err(TransformError::SeekPartition {
                transform: name.to_owned(),
                topic: input.to_owned(),
                partition,
                count: topic.partitions.len() as u32,
            });
        };
        let offsets = handle.offsets();
        if (offsets.log_start_offset..=offsets.high_watermark).contains(&offset) {
            return Ok(());
        }
        Err(TransformError::SeekOffset {
            topic: input.to_owned(),
            partition,
            offset,
            log_start_offset: offsets.log_start_offset,
            high_watermark: offsets.high_watermark,
        })
    }

    fn check_deploy(
        &self,
        request: &DeployTransformRequest,
    ) -> Result<TransformRecord, TransformError> {
        let invalid = |message: String| TransformError::Invalid(message);
        validate_topic_name(&request.name)
            .and_then(|()| validate_topic_name(&dead_letter_topic(&request.name)))
            .map_err(|e| invalid(format!("transform name: {e}")))?;
        if request.params.len() > MAX_TRANSFORM_PARAMS
            || request.outputs.len() > MAX_TRANSFORM_PARAMS
        {
            return Err(invalid(format!(
                "at most {MAX_TRANSFORM_PARAMS} parameters and {MAX_TRANSFORM_PARAMS} named outputs"
            )));
        }
        let too_long = request.params.iter().chain(&request.outputs).any(|(k, v)| {
            k.len() > MAX_TRANSFORM_PARAM_BYTES || v.len() > MAX_TRANSFORM_PARAM_BYTES
        });
        if too_long {
            return Err(invalid(format!(
                "parameter and output names and values are limited to {MAX_TRANSFORM_PARAM_BYTES} bytes"
            )));
        }
        let default_output = request
            .default_output
            .clone()
            .unwrap_or_else(|| default_output_topic(&request.name));
        validate_topic_name(&default_output).map_err(|e| invalid(format!("output topic: {e}")))?;
        let dead_letters = dead_letter_topic(&request.name);
        let dead_letters = (request.on_error == OnError::DeadLetter).then_some(&dead_letters);
        for topic in std::iter::once(&default_output)
            .chain(request.outputs.iter().map(|(_, t)| t))
            .chain(dead_letters)
        {
            if *topic == request.input {
                return Err(invalid(format!(
                    "output topic {topic:?} is the input topic; a transform cannot feed itself"
                )));
            }
        }
        for (_, topic) in &request.outputs {
            self.storage.topic(topic)?;
        }
        let deadline_ms = request.deadline_ms.unwrap_or(
            u32::try_from(SandboxLimits::default().deadline.as_millis()).unwrap_or(u32::MAX),
        );
        if deadline_ms == 0 || u128::from(deadline_ms) > MAX_DEADLINE.as_millis() {
            return Err(invalid(format!(
                "deadline must be 1..={} ms",
                MAX_DEADLINE.as_millis()
            )));
        }
        let memory_bytes = request
            .memory_bytes
            .unwrap_or(SandboxLimits::default().memory_bytes);
        if !(MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES).contains(&memory_bytes) {
            return Err(invalid(format!(
                "memory cap must be {MIN_MEMORY_BYTES}..={MAX_MEMORY_BYTES} bytes"
            )));
        }
        Ok(TransformRecord {
            module: request.module.clone(),
            module_version: 0,
            input: request.input.clone(),
            default_output,
            outputs: request.outputs.clone(),
            params: request.params.clone(),
            on_error: request.on_error,
            deadline_ms,
            memory_bytes,
            paused: false,
            failed: None,
        })
    }

    async fn ensure_topic(&self, name: &str, partitions: u32) -> Result<(), TransformError> {
        if self.storage.topic(name).is_ok() {
            return Ok(());
        }
        match self
            .storage
            .create_topic(name.to_owned(), partitions, TopicConfig::default())
            .await
        {
            Ok(_) | Err(StorageError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses a deploy that would take the broker past its limits on
    /// deployed transforms or on the guest memory they may use together.
    fn check_totals(
        &self,
        workers: &HashMap<String, WorkerHandle>,
        record: &TransformRecord,
    ) -> Result<(), TransformError> {
        let max = self.limits.max_transforms;
        if workers.len() >= max {
            return Err(TransformError::Limit(format!(
                "the broker runs {} transforms, its limit (--max-transforms {max}): delete one or raise the limit",
                workers.len()
            )));
        }
        let promised: u64 = workers
            .values()
            .map(|w| w.shared.record().memory_bytes)
            .sum();
        let budget = self.limits.guest_memory_bytes;
        if promised.saturating_add(record.memory_bytes) > budget {
            let mib = |bytes: u64| bytes / (1024 * 1024);
            return Err(TransformError::Limit(format!(
                "deployed transforms may use {} MiB of guest memory and this one asks for {} MiB more; \
                 the broker's budget is {} MiB (--guest-memory-mb): ask for less (--memory-mb), delete a transform or raise the budget",
                mib(promised),
                mib(record.memory_bytes),
                mib(budget)
            )));
        }
        Ok(())
    }

    async fn compile(&self, bytes: Vec<u8>) -> Result<Sandbox, TransformError> {
        let engine = self.engine.clone();
        let permit = engine.compile_permit().await?;
        tokio::task::spawn_blocking(move || {
            let sandbox = Sandbox::new(&engine, &bytes);
            drop(permit);
            sandbox
        })
        .await
        .map_err(|e| TransformError::Invalid(format!("compile task failed: {e}")))?
        .map_err(TransformError::from)
    }

    fn instance(shared: &Shared, sandbox: Sandbox) -> GuestInstance {
        let record = shared.record();
        GuestInstance::new(
            sandbox,
            SandboxLimits {
                deadline: Duration::from_millis(u64::from(record.deadline_ms)),
                memory_bytes: record.memory_bytes,
            },
            Arc::clone(&shared.logbook),
            record.params,
            Some(Arc::clone(&shared.state) as Arc<dyn crate::wasm::StateSource>),
        )
    }

    /// An instance with `init` already called, off the async threads.
    async fn started_instance(
        &self,
        shared: &Shared,
        sandbox: Sandbox,
    ) -> Result<GuestInstance, TransformError> {
        let mut instance = Self::instance(shared, sandbox);
        tokio::task::spawn_blocking(move || {
            instance.start()?;
            Ok::<_, TransformError>(instance)
        })
        .await
        .map_err(|e| TransformError::Invalid(format!("init task failed: {e}")))?
    }

    fn spawn(
        &self,
        shared: Arc<Shared>,
        instance: GuestInstance,
    ) -> Result<WorkerHandle, TransformError> {
        let positions = self.storage.transform_positions(&shared.name)?;
        shared.lock_progress().positions.clone_from(&positions);
        let (control, receiver) = mpsc::channel(CONTROL_QUEUE);
        let worker = Worker {
            shared: Arc::clone(&shared),
            storage: Arc::clone(&self.storage),
            clock: Arc::clone(&self.clock),
            runtime: self.runtime.clone(),
            instance,
            control: receiver,
            positions,
            high_timestamps: BTreeMap::new(),
            waiting_for_storage: false,
            last_tick: Instant::now(),
            in_flight: None,
            prefetched: None,
            failures: worker::FailureWindow::default(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("quiver-transform-{}", shared.name))
            .spawn(move || worker.run())
            .map_err(|e| TransformError::Invalid(format!("worker thread: {e}")))?;
        Ok(WorkerHandle {
            shared,
            control,
            thread,
        })
    }

    fn status(&self, shared: &Shared) -> TransformStatus {
        let record = shared.record();
        let progress = shared.lock_progress().clone();
        let partitions = match self.storage.topic(&record.input) {
            Ok(topic) => topic
                .partitions
                .iter()
                .map(|p| TransformPartition {
                    partition: p.index(),
                    position: progress.positions.get(&p.index()).copied().unwrap_or(0),
                    high_watermark: p.offsets().high_watermark,
                    error: progress.stopped_partitions.get(&p.index()).cloned(),
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let state = match (&record.failed, record.paused) {
            (Some(error), _) => RunState::Failed {
                error: error.clone(),
            },
            (None, true) => RunState::Paused,
            (None, false) => RunState::Running,
        };
        TransformStatus {
            name: shared.name.clone(),
            module: record.module,
            module_version: record.module_version,
            input: record.input,
            default_output: record.default_output,
            outputs: record.outputs,
            params: record.params,
            on_error: record.on_error,
            deadline_ms: record.deadline_ms,
            memory_bytes: record.memory_bytes,
            state,
            partitions,
            records_in: progress.records_in,
            records_out: progress.records_out,
            errors: progress.errors,
            last_error: progress.last_error,
        }
    }
}

impl Drop for Transforms {
    /// A broker dropped without `shutdown` still stops its workers (each
    /// after its current call); they are not waited for.
    fn drop(&mut self) {
        for handle in self.workers.get_mut().values() {
            let _ = handle.control.try_send(Control::Stop);
        }
    }
}

async fn stop_worker(handle: WorkerHandle) {
    let _ = handle.control.send(Control::Stop).await;
    let _ = tokio::task::spawn_blocking(move || handle.thread.join()).await;
}

/// What the manager and a worker share about one transform.
pub(crate) struct Shared {
    name: String,
    /// Its state store, shared by its instances (an upgrade's too).
    state: Arc<worker::StoredState>,
    record: Mutex<TransformRecord>,
    progress: Mutex<Progress>,
    logbook: Arc<Logbook>,
}

/// Counters since the deploy (as committed), and committed positions.
#[derive(Debug, Clone, Default)]
struct Progress {
    records_in: u64,
    records_out: u64,
    errors: u64,
    last_error: Option<String>,
    positions: BTreeMap<u32, u64>,
    /// Input partitions stopped on their own (damaged input), with why.
    stopped_partitions: BTreeMap<u32, String>,
}

impl Shared {
    fn new(
        name: &str,
        record: TransformRecord,
        counters: TransformCounters,
        storage: Arc<Storage>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            state: Arc::new(worker::StoredState::new(storage, name)),
            progress: Mutex::new(Progress {
                records_in: counters.records_in,
                records_out: counters.records_out,
                errors: counters.errors,
                // A stored failure is the last error a restart knows of.
                last_error: record.failed.clone(),
                ..Progress::default()
            }),
            record: Mutex::new(record),
            logbook: Arc::new(Logbook::new(name, clock)),
        }
    }

    fn record(&self) -> TransformRecord {
        lock(&self.record).clone()
    }

    fn is_running(&self) -> bool {
        let record = lock(&self.record);
        !record.paused && record.failed.is_none()
    }

    fn set_record(&self, record: TransformRecord) {
        *lock(&self.record) = record;
    }

    fn routes(&self) -> Routes {
        let record = lock(&self.record);
        Routes {
            default: record.default_output.clone(),
            named: record.outputs.iter().cloned().collect(),
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logbook
            .push(level, crate::wasm::logbook::HOST_SOURCE, message);
    }

    fn record_error(&self, message: &str) {
        let mut progress = self.lock_progress();
        progress.errors += 1;
        progress.last_error = Some(message.to_owned());
    }

    fn record_progress(&self, position: Option<(u32, u64)>, records_in: u64, records_out: u64) {
        let mut progress = self.lock_progress();
        progress.records_in += records_in;
        progress.records_out += records_out;
        if let Some((partition, offset)) = position {
            progress.positions.insert(partition, offset);
        }
    }

    /// Stops one input partition with `error`.
    fn stop_partition(&self, partition: u32, error: &str) {
        self.lock_progress()
            .stopped_partitions
            .insert(partition, error.to_owned());
    }

    fn is_partition_stopped(&self, partition: u32) -> bool {
        self.lock_progress()
            .stopped_partitions
            .contains_key(&partition)
    }

    /// Lets one stopped partition (or, with `None`, every one) run again.
    fn restart_partitions(&self, partition: Option<u32>) {
        let mut progress = self.lock_progress();
        match partition {
            Some(partition) => {
                progress.stopped_partitions.remove(&partition);
            }
            None => progress.stopped_partitions.clear(),
        }
    }

    /// The counters as committed, to store with the next commit.
    fn counters(&self) -> TransformCounters {
        let progress = self.lock_progress();
        TransformCounters {
            records_in: progress.records_in,
            records_out: progress.records_out,
            errors: progress.errors,
        }
    }

    fn lock_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        lock(&self.progress)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data is intact.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
