//! One deployed transform's worker: a thread of its own (guest code never
//! runs on the async runtime's workers) that reads each input partition
//! from its committed position, calls the guest on batches, and commits
//! outputs, state and position together.
//!
//! Partitions take turns, one call each per round, so one busy partition
//! does not starve the others and calls never overlap (the contract
//! promises guests one call at a time). When no partition has new records
//! the worker sleeps until one does, a control message arrives, or the
//! next tick is due.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::select_all;
use quiver_proto::api::transforms::{LogLevel, OnError, StateEntry};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::records::{self, InputBatch, Routes};
use super::{Shared, TransformError};
use crate::clock::Clock;
use crate::storage::{Partition, ReadResult, StateWrites, Storage, StorageError, TransformRecord};
use crate::wasm::sandbox::{CallInput, CallOutput};
use crate::wasm::state::{Layered, MAX_SCAN_BYTES};
use crate::wasm::{
    CallError, GuestInstance, InputRecord, OutputRecord, StateSnapshot, StateSource,
};

/// How often `on-tick` is called while the transform runs.
pub(super) const TICK_INTERVAL: Duration = Duration::from_millis(500);
/// Control messages queued for a worker, at most.
pub(super) const CONTROL_QUEUE: usize = 16;
/// How long a worker waits before trying again after storage refused a
/// commit for now (a full disk, a reopen).
const STORAGE_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How long a worker waits for storage to serve reads again (a reopen
/// takes milliseconds; recovering a large database after an I/O error,
/// seconds).
const STORAGE_REOPEN_WAIT: Duration = Duration::from_secs(30);
/// How often it asks meanwhile.
const STORAGE_POLL: Duration = Duration::from_millis(50);
/// Records in one window of the failure-rate check: under `skip` or
/// `dead-letter`, each failing record costs a call of its own plus the
/// calls that found it, so a module that fails almost every record is
/// stopped rather than left to burn a core.
pub const FAILURE_WINDOW_RECORDS: u64 = 1_000;
/// Failed records within one window that stop the transform (99%).
pub const FAILURE_TRIP_RECORDS: u64 = 990;

/// What the manager asks of a worker.
pub(super) enum Control {
    /// Stop calling the guest.
    Pause(oneshot::Sender<Result<(), TransformError>>),
    /// Run again (after a pause or a failure).
    Resume(oneshot::Sender<Result<(), TransformError>>),
    /// Swap in a new, already initialised instance of another module.
    Upgrade {
        instance: Box<GuestInstance>,
        module: String,
        version: u32,
        reply: oneshot::Sender<Result<(), TransformError>>,
    },
    /// Change the failure policy.
    Alter {
        on_error: OnError,
        reply: oneshot::Sender<Result<(), TransformError>>,
    },
    /// Move one input partition's position (already checked in range).
    Seek {
        partition: u32,
        offset: u64,
        reply: oneshot::Sender<Result<(), TransformError>>,
    },
    /// Finish the current call and exit.
    Stop,
}

pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) storage: Arc<Storage>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) runtime: Handle,
    pub(super) instance: GuestInstance,
    pub(super) control: mpsc::Receiver<Control>,
    /// Where each input partition is read next: the committed position, or
    /// the end of the commit in flight.
    pub(super) positions: BTreeMap<u32, u64>,
    /// Largest record timestamp delivered per input partition.
    pub(super) high_timestamps: BTreeMap<u32, i64>,
    /// Set while commits wait for storage (a full disk), for the log.
    pub(super) waiting_for_storage: bool,
    pub(super) last_tick: Instant,
    /// The commit on its way to disk, if any.
    pub(super) in_flight: Option<InFlight>,
    /// The next partition's records, being read ahead, if any.
    pub(super) prefetched: Option<Prefetched>,
    /// Records processed and failed in the current failure-rate window.
    pub(super) failures: FailureWindow,
}

/// Counts of the current window of [`FAILURE_WINDOW_RECORDS`] records.
#[derive(Debug, Default)]
pub(super) struct FailureWindow {
    records: u64,
    failed: u64,
}

impl FailureWindow {
    /// Counts `records` records, `failed` of them failed; whether the
    /// window's failures reached [`FAILURE_TRIP_RECORDS`] (then it starts
    /// again). A full window starts again too.
    fn count(&mut self, records: u64, failed: u64) -> bool {
        self.records += records;
        self.failed += failed;
        let tripped = self.failed >= FAILURE_TRIP_RECORDS;
        if tripped || self.records >= FAILURE_WINDOW_RECORDS {
            *self = Self::default();
        }
        tripped
    }
}

/// A read started ahead of the call that needs it.
pub(super) struct Prefetched {
    partition: u32,
    from: u64,
    read: tokio::task::JoinHandle<Result<ReadResult, StorageError>>,
}

/// A call's output records and where they go.
struct Outputs {
    records: Vec<OutputRecord>,
    routes: Routes,
    /// The input partition (unkeyed records follow it), 0 for `on-tick`.
    input_partition: u32,
    /// Input records written to the dead-letter topic, not module output.
    dead_letters: bool,
}

impl Outputs {
    /// The module's output records.
    fn of_module(records: Vec<OutputRecord>, routes: Routes, input_partition: u32) -> Self {
        Self {
            records,
            routes,
            input_partition,
            dead_letters: false,
        }
    }

    fn none(routes: Routes) -> Self {
        Self::of_module(Vec::new(), routes, 0)
    }
}

/// A queued commit and the progress it will make.
pub(super) struct InFlight {
    task: tokio::task::JoinHandle<Result<(), StorageError>>,
    position: Option<(u32, u64)>,
    records_in: u64,
    records_out: u64,
}

/// What happened to a worker between calls.
enum Flow {
    Continue,
    Exit,
}

impl Worker {
    pub(super) fn run(mut self) {
        loop {
            while let Ok(message) = self.control.try_recv() {
                if let Flow::Exit = self.apply(message) {
                    return;
                }
            }
            if !self.shared.is_running() {
                let Some(message) = self.runtime.block_on(self.control.recv()) else {
                    return;
                };
                if let Flow::Exit = self.apply(message) {
                    return;
                }
                continue;
            }
            let worked = match self.round() {
                Ok(worked) => worked,
                Err(Flow::Exit) => return,
                Err(Flow::Continue) => continue,
            };
            if self.last_tick.elapsed() >= TICK_INTERVAL {
                self.last_tick = Instant::now();
                if let Err(Flow::Exit) = self.tick() {
                    return;
                }
            }
            if !worked && matches!(self.wait(), Flow::Exit) {
                return;
            }
        }
    }

    fn apply(&mut self, message: Control) -> Flow {
        if let Err(Flow::Exit) = self.settle() {
            return Flow::Exit;
        }
        match message {
            Control::Stop => return Flow::Exit,
            Control::Pause(reply) => {
                let _ = reply.send(self.persist(|r| r.paused = true));
            }
            Control::Resume(reply) => {
                // Stopped partitions are read again, and a new failure
                // window starts, before the reply says so.
                self.shared.restart_partitions(None);
                self.failures = FailureWindow::default();
                let _ = reply.send(self.persist(|r| {
                    r.paused = false;
                    r.failed = None;
                }));
                self.shared.log(LogLevel::Info, "resumed");
            }
            Control::Upgrade {
                instance,
                module,
                version,
                reply,
            } => {
                let result = self.persist(|r| {
                    r.module.clone_from(&module);
                    r.module_version = version;
                    r.failed = None;
                });
                if result.is_ok() {
                    // Its `init` ran elsewhere to check the parameters, while
                    // this worker was still calling the old module: start it
                    // again here, one call at a time, on the current state.
                    self.instance = *instance;
                    self.instance.reset();
                    self.shared.log(
                        LogLevel::Info,
                        &format!("upgraded to module {module:?} version {version}"),
                    );
                }
                let _ = reply.send(result);
            }
            Control::Alter { on_error, reply } => {
                let from = self.shared.record().on_error;
                let result = self.persist(|r| r.on_error = on_error);
                if result.is_ok() {
                    self.shared.log(
                        LogLevel::Info,
                        &format!("on-error changed from {from} to {on_error}"),
                    );
                }
                let _ = reply.send(result);
            }
            Control::Seek {
                partition,
                offset,
                reply,
            } => {
                let _ = reply.send(self.seek(partition, offset));
            }
        }
        Flow::Continue
    }

    /// Stores `partition`'s new position (nothing in flight: the caller
    /// settled) and reads on from there; state stays as it is.
    fn seek(&mut self, partition: u32, offset: u64) -> Result<(), TransformError> {
        let from = self.positions.get(&partition).copied().unwrap_or(0);
        let commit = self.storage.begin_transform_commit(
            self.shared.name.clone(),
            Some((partition, offset)),
            self.shared.counters(),
            Vec::new(),
            Arc::new(StateWrites::new()),
        );
        self.runtime
            .block_on(async { commit.await?.wait().await })?;
        self.positions.insert(partition, offset);
        self.shared.record_progress(Some((partition, offset)), 0, 0);
        self.shared.restart_partitions(Some(partition));
        // A read-ahead from the old position must not be used.
        self.prefetched = None;
        self.shared.log(
            LogLevel::Info,
            &format!("partition {partition} moved from offset {from} to {offset}"),
        );
        Ok(())
    }

    /// Changes the record, stores it, and only then shows it in `Shared`.
    fn persist(&self, change: impl FnOnce(&mut TransformRecord)) -> Result<(), TransformError> {
        let mut record = self.shared.record();
        change(&mut record);
        self.runtime.block_on(self.storage.update_transform(
            self.shared.name.clone(),
            record.clone(),
            Some(self.shared.counters()),
        ))?;
        self.shared.set_record(record);
        Ok(())
    }

    /// One call per input partition that has records. `Ok(false)` if none
    /// had any.
    fn round(&mut self) -> Result<bool, Flow> {
        let input = self.shared.record().input;
        let topic = match self.storage.topic(&input) {
            Ok(topic) => topic,
            Err(e) => return Err(self.fail(&format!("input topic: {e}"))),
        };
        let partitions = &topic.partitions;
        let mut worked = false;
        for (i, partition) in partitions.iter().enumerate() {
            if !self.shared.is_running() {
                break;
            }
            let next = &partitions[(i + 1) % partitions.len()];
            worked |= self.process_partition(partition, next)?;
        }
        Ok(worked)
    }

    /// One call on `partition`'s next records, while the records `next`
    /// (the partition after it) will need are read ahead.
    fn process_partition(
        &mut self,
        partition: &Arc<Partition>,
        next: &Arc<Partition>,
    ) -> Result<bool, Flow> {
        let index = partition.index();
        let offsets = partition.offsets();
        let mut position = self.positions.get(&index).copied().unwrap_or(0);
        if position < offsets.log_start_offset {
            self.shared.log(
                LogLevel::Warn,
                &format!(
                    "partition {index}: offsets {position}..{} were removed by retention before they were processed; going on from {}",
                    offsets.log_start_offset, offsets.log_start_offset
                ),
            );
            position = offsets.log_start_offset;
            if position >= offsets.high_watermark {
                // Nothing left to read: store the move, or the worker would
                // keep finding this partition behind.
                let outputs = Outputs::none(self.shared.routes());
                self.commit(Some((index, position)), outputs, StateWrites::new(), 0)?;
                return Ok(true);
            }
        }
        if position >= offsets.high_watermark || self.shared.is_partition_stopped(index) {
            return Ok(false);
        }
        let read = match self.take_prefetched(index, position) {
            Some(read) => read,
            None => self
                .storage
                .read(partition, position, records::MAX_INPUT_BYTES_PER_CALL),
        };
        let read = match read {
            Ok(read) => read,
            // Retention moved the log start since the check above: the next
            // round goes on from there.
            Err(StorageError::OffsetOutOfRange { .. }) => return Ok(true),
            // Storage is reopening after a write error: a pause, not damage.
            Err(StorageError::Recovering(_) | StorageError::DiskFull(_)) => {
                std::thread::sleep(STORAGE_POLL);
                return Ok(false);
            }
            Err(e) => {
                let topic = partition.topic();
                self.stop_partition(
                    index,
                    &format!("reading {topic}/{index} at offset {position}: {e}"),
                );
                return Ok(false);
            }
        };
        let max = records::MAX_RECORDS_PER_CALL;
        let plain = records::plain_input(&read.batches);
        let batch = match records::decode_input(partition.topic(), index, &plain, position, max) {
            Ok(batch) => batch,
            Err(e) => {
                self.stop_partition(index, &e.to_string());
                return Ok(false);
            }
        };
        let records = batch.records();
        if records.is_empty() {
            // Nothing readable below the high watermark: move past it.
            let end = Some((index, batch.next_offset));
            return self
                .commit(
                    end,
                    Outputs::none(self.shared.routes()),
                    StateWrites::new(),
                    0,
                )
                .map(|()| true);
        }
        let next_from = if next.index() == index {
            batch.next_offset
        } else {
            self.positions.get(&next.index()).copied().unwrap_or(0)
        };
        self.prefetch(next, next_from);
        self.process_records(index, &batch, &records, batch.next_offset)?;
        Ok(true)
    }

    /// Starts reading `partition` from `from` on the blocking pool, if it
    /// has records there.
    fn prefetch(&mut self, partition: &Arc<Partition>, from: u64) {
        let offsets = partition.offsets();
        if from < offsets.log_start_offset
            || from >= offsets.high_watermark
            || self.shared.is_partition_stopped(partition.index())
        {
            return;
        }
        let storage = Arc::clone(&self.storage);
        let handle = Arc::clone(partition);
        let read = self
            .runtime
            .spawn_blocking(move || storage.read(&handle, from, records::MAX_INPUT_BYTES_PER_CALL));
        self.prefetched = Some(Prefetched {
            partition: partition.index(),
            from,
            read,
        });
    }

    /// The read-ahead result for `partition` at `from`, if that is what was
    /// read ahead (a failure or a retention skip may have moved on) and the
    /// read task finished; otherwise the caller reads now.
    fn take_prefetched(
        &mut self,
        partition: u32,
        from: u64,
    ) -> Option<Result<ReadResult, StorageError>> {
        let prefetched = self.prefetched.take()?;
        if (prefetched.partition, prefetched.from) != (partition, from) {
            return None;
        }
        self.runtime.block_on(prefetched.read).ok()
    }

    /// Calls the guest on `records` (ending at input offset `end`) and
    /// commits. When the call fails in a way one record could cause and the
    /// policy is not `stop`, the batch is split in halves and each retried,
    /// so that the policy applies to the failing record alone and the
    /// records around it are processed as usual.
    fn process_records(
        &mut self,
        index: u32,
        batch: &InputBatch<'_>,
        records: &[InputRecord<'_>],
        end: u64,
    ) -> Result<(), Flow> {
        // Ranges still to do, the next on top: (start, end index, end offset).
        let mut pending = vec![(0, records.len(), end)];
        while let Some((lo, hi, end)) = pending.pop() {
            let slice = &records[lo..hi];
            let routes = self.shared.routes();
            let result = self.instance.process(CallInput {
                records: slice,
                batches: batch.batches_for(lo..hi),
            });
            let result = result.and_then(|output| self.checked(&routes, output));
            match result {
                Ok(output) => {
                    let count = slice.len() as u64;
                    self.failures.count(count, 0);
                    let outputs = Outputs::of_module(output.outputs, routes, index);
                    self.commit(Some((index, end)), outputs, output.changes, count)?;
                    if let Some(high) = slice.iter().map(|r| r.timestamp).max() {
                        let entry = self.high_timestamps.entry(index).or_insert(i64::MIN);
                        *entry = (*entry).max(high);
                    }
                }
                Err(error)
                    if slice.len() > 1
                        && error.may_be_one_record()
                        && self.shared.record().on_error != OnError::Stop =>
                {
                    let mid = lo + slice.len() / 2;
                    pending.push((mid, hi, end));
                    pending.push((lo, mid, records[mid].offset));
                }
                Err(error) => self.on_error(index, slice, end, &error)?,
            }
        }
        Ok(())
    }

    /// Calls `on-tick` with the watermark: the smallest, over partitions
    /// that delivered records, of the largest timestamp delivered.
    fn tick(&mut self) -> Result<(), Flow> {
        let watermark = self
            .high_timestamps
            .values()
            .copied()
            .min()
            .unwrap_or(i64::MIN);
        let routes = self.shared.routes();
        let result = self.instance.on_tick(watermark);
        let result = result.and_then(|output| self.checked(&routes, output));
        match result {
            Ok(output) => {
                if output.outputs.is_empty() && output.changes.is_empty() {
                    return Ok(());
                }
                let outputs = Outputs::of_module(output.outputs, routes, 0);
                self.commit(None, outputs, output.changes, 0)
            }
            Err(error) => {
                let message = format!("on-tick failed: {error}");
                self.shared.record_error(&message);
                if self.shared.record().on_error == OnError::Stop || !error.may_be_one_record() {
                    return Err(self.fail(&message));
                }
                Ok(())
            }
        }
    }

    /// Applies the `--on-error` policy to a failed `process` call on
    /// `records` (ending at input offset `end`). A failed `init` or state
    /// store stops the transform whatever the policy: no batch could
    /// succeed.
    fn on_error(
        &mut self,
        index: u32,
        records: &[InputRecord<'_>],
        end: u64,
        error: &CallError,
    ) -> Result<(), Flow> {
        let message = format!(
            "partition {index} offsets {}..{end}: {error}",
            records.first().map_or(end, |r| r.offset),
        );
        self.shared.record_error(&message);
        let policy = match error {
            CallError::Init(_) | CallError::State(_) => OnError::Stop,
            _ => self.shared.record().on_error,
        };
        if policy != OnError::Stop
            && self
                .failures
                .count(records.len() as u64, records.len() as u64)
        {
            return Err(self.fail(&format!(
                "{FAILURE_TRIP_RECORDS} or more of the last {FAILURE_WINDOW_RECORDS} records failed \
                 under on-error {policy}, so the module looks broken for this input (the last: {message}); \
                 fix it and `upgrade`, or `resume` to go on skipping"
            )));
        }
        match policy {
            OnError::Stop => Err(self.fail(&message)),
            OnError::Skip => {
                self.shared
                    .log(LogLevel::Warn, &format!("skipped: {message}"));
                let outputs = Outputs::none(self.shared.routes());
                self.commit(Some((index, end)), outputs, StateWrites::new(), 0)
            }
            OnError::DeadLetter => {
                let outputs = Outputs {
                    records: records::dead_letters(records, &error.to_string()),
                    routes: Routes {
                        default: super::dead_letter_topic(&self.shared.name),
                        named: std::collections::HashMap::new(),
                    },
                    input_partition: index,
                    dead_letters: true,
                };
                self.shared.log(
                    LogLevel::Warn,
                    &format!("dead-lettered {} records: {message}", records.len()),
                );
                self.commit(Some((index, end)), outputs, StateWrites::new(), 0)
            }
        }
    }

    /// Fails a successful call whose outputs name an output this transform
    /// does not map; the instance, which saw the call succeed, goes too.
    fn checked(&mut self, routes: &Routes, output: CallOutput) -> Result<CallOutput, CallError> {
        match routes.check(&output.outputs) {
            Ok(()) => Ok(output),
            Err(e) => {
                self.instance.reset();
                Err(CallError::Limit(e))
            }
        }
    }

    /// Hands a call's effects to a task that encodes the outputs into
    /// batches and commits them with the state changes and position, and
    /// returns at once: the next call runs meanwhile, seeing these state
    /// changes layered over the snapshot. At most one commit is in flight;
    /// this first waits for the previous one.
    fn commit(
        &mut self,
        position: Option<(u32, u64)>,
        outputs: Outputs,
        state: StateWrites,
        records_in: u64,
    ) -> Result<(), Flow> {
        // Dead letters are not the module's output.
        let records_out = if outputs.dead_letters {
            0
        } else {
            outputs.records.len() as u64
        };
        self.settle()?;
        let state = Arc::new(state);
        if !state.is_empty() {
            self.shared.state.set_pending(Some(Arc::clone(&state)));
        }
        if let Some((partition, offset)) = position {
            self.positions.insert(partition, offset);
        }
        let storage = Arc::clone(&self.storage);
        let name = self.shared.name.clone();
        let now_ms = self.clock.now_ms();
        // Absolute counters once this commit is in: the committed ones (the
        // previous commit just settled) plus this call's.
        let mut counters = self.shared.counters();
        counters.records_in += records_in;
        counters.records_out += records_out;
        let task = self.runtime.spawn(async move {
            let encoder = Arc::clone(&storage);
            let batches = tokio::task::spawn_blocking(move || {
                records::encode_outputs(
                    &encoder,
                    &outputs.routes,
                    outputs.records,
                    outputs.input_partition,
                    now_ms,
                )
            })
            .await
            .map_err(|e| StorageError::CommitFailed(format!("encoding task failed: {e}")))?
            .map_err(StorageError::CommitFailed)?;
            storage
                .begin_transform_commit(name, position, counters, batches, state)
                .await?
                .wait()
                .await
        });
        self.in_flight = Some(InFlight {
            task,
            position,
            records_in,
            records_out,
        });
        Ok(())
    }

    /// Waits for the commit in flight, if any, and publishes its progress.
    fn settle(&mut self) -> Result<(), Flow> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let result = self.runtime.block_on(in_flight.task).unwrap_or_else(|e| {
            Err(StorageError::CommitFailed(format!(
                "commit task failed: {e}"
            )))
        });
        self.shared.state.set_pending(None);
        match result {
            Ok(()) => {
                if std::mem::take(&mut self.waiting_for_storage) {
                    self.shared
                        .log(LogLevel::Info, "storage takes writes again; going on");
                }
                self.shared.record_progress(
                    in_flight.position,
                    in_flight.records_in,
                    in_flight.records_out,
                );
                Ok(())
            }
            // Deleted meanwhile: the manager is stopping this worker.
            Err(StorageError::UnknownTransform(_) | StorageError::WriterStopped) => Err(Flow::Exit),
            // Nothing of the commit was stored, and storage will take writes
            // again (space freed, the database reopened): wait, not fail.
            Err(e @ (StorageError::DiskFull(_) | StorageError::Recovering(_))) => {
                Err(self.wait_for_storage(&e))
            }
            Err(e) => Err(self.fail(&format!("commit failed: {e}"))),
        }
    }

    /// Goes back to the last durable commit and waits a while before the
    /// calls are made again; says so in the log once per stretch.
    fn wait_for_storage(&mut self, error: &StorageError) -> Flow {
        if let Err(flow) = self.rewind() {
            return flow;
        }
        if !self.waiting_for_storage {
            self.waiting_for_storage = true;
            self.shared.log(
                LogLevel::Warn,
                &format!("waiting for storage to take writes again: {error}"),
            );
        }
        std::thread::sleep(STORAGE_RETRY_INTERVAL);
        Flow::Continue
    }

    /// Stops reading one input partition (its stored input is damaged or
    /// unreadable) while the others go on: the error goes to the
    /// partition's status, the last error and the log. Not persisted: after
    /// a restart the same damage stops the partition again. `resume` reads
    /// it again; `seek` past the damage moves on.
    fn stop_partition(&mut self, index: u32, error: &str) {
        let name = &self.shared.name;
        let message = format!(
            "partition {index} stopped, the other partitions go on: {error}; \
             `quiver transform seek {name} --partition {index} --offset N` moves past it, \
             `quiver transform resume {name}` reads it again"
        );
        self.shared.record_error(&message);
        self.shared.stop_partition(index, error);
        self.shared.log(LogLevel::Error, &message);
        if self
            .prefetched
            .as_ref()
            .is_some_and(|p| p.partition == index)
        {
            self.prefetched = None;
        }
    }

    /// Stops the transform with `error` in its status (persisted, so it
    /// stays stopped across restarts until resumed).
    fn fail(&mut self, error: &str) -> Flow {
        // The commit before the failure stands; a failed commit's position
        // and anything queued behind it do not.
        if let Err(Flow::Exit) = self.settle() {
            return Flow::Exit;
        }
        if let Err(flow) = self.rewind() {
            return flow;
        }
        self.shared
            .log(LogLevel::Error, &format!("stopped: {error}"));
        let failed = error.to_owned();
        if let Err(e) = self.persist(|r| r.failed = Some(failed)) {
            self.shared.log(
                LogLevel::Error,
                &format!("could not store the failure: {e}"),
            );
        }
        Flow::Continue
    }

    /// Forgets the calls after the last durable commit, and what the
    /// guest's memory and the watermark learned from them: back to the
    /// stored positions.
    fn rewind(&mut self) -> Result<(), Flow> {
        self.instance.reset();
        self.high_timestamps.clear();
        // Reads fail for a moment while the writer reopens the database
        // (after the very error that brought us here): retry those.
        let mut waited = Duration::ZERO;
        loop {
            match self.storage.transform_positions(&self.shared.name) {
                Ok(positions) => {
                    self.positions = positions;
                    return Ok(());
                }
                Err(StorageError::DiskFull(_) | StorageError::Recovering(_))
                    if waited < STORAGE_REOPEN_WAIT =>
                {
                    std::thread::sleep(STORAGE_POLL);
                    waited += STORAGE_POLL;
                }
                Err(e) => {
                    self.shared.log(
                        LogLevel::Error,
                        &format!("could not reload positions, stopping the worker: {e}"),
                    );
                    return Err(Flow::Exit);
                }
            }
        }
    }

    /// Sleeps until a partition has records past its position, a control
    /// message arrives, or the next tick is due.
    fn wait(&mut self) -> Flow {
        if let Err(flow) = self.settle() {
            return flow;
        }
        let Ok(topic) = self.storage.topic(&self.shared.record().input) else {
            std::thread::sleep(TICK_INTERVAL);
            return Flow::Continue;
        };
        let mut watches = Vec::new();
        for partition in &topic.partitions {
            if self.shared.is_partition_stopped(partition.index()) {
                continue;
            }
            let rx = partition.subscribe();
            let position = self.positions.get(&partition.index()).copied().unwrap_or(0);
            if rx.borrow().high_watermark > position {
                return Flow::Continue;
            }
            watches.push(rx);
        }
        let due = TICK_INTERVAL.saturating_sub(self.last_tick.elapsed());
        let control = &mut self.control;
        let message = self.runtime.block_on(async {
            let any_change = async {
                if watches.is_empty() {
                    std::future::pending::<()>().await;
                }
                let _ = select_all(watches.iter_mut().map(|rx| Box::pin(rx.changed()))).await;
            };
            tokio::select! {
                message = control.recv() => Some(message),
                () = any_change => None,
                () = tokio::time::sleep(due) => None,
            }
        });
        match message {
            Some(Some(message)) => self.apply(message),
            Some(None) => Flow::Exit,
            None => Flow::Continue,
        }
    }
}

/// A transform's state store, as its instances read it: the committed
/// snapshot, with the changes of the commit in flight on top.
pub(super) struct StoredState {
    storage: Arc<Storage>,
    name: String,
    pending: Mutex<Option<Arc<StateWrites>>>,
}

impl StoredState {
    pub(super) fn new(storage: Arc<Storage>, name: &str) -> Self {
        Self {
            storage,
            name: name.to_owned(),
            pending: Mutex::new(None),
        }
    }

    fn set_pending(&self, pending: Option<Arc<StateWrites>>) {
        *self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pending;
    }
}

impl StateSource for StoredState {
    fn snapshot(&self) -> Result<Box<dyn StateSnapshot>, String> {
        // The layer first: if its commit lands before the snapshot opens,
        // the layer repeats what the snapshot holds, which is harmless.
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let base: Box<dyn StateSnapshot> = Box::new(
            self.storage
                .transform_state(&self.name)
                .map_err(|e| e.to_string())?,
        );
        Ok(match pending {
            Some(top) => Box::new(Layered { base, top }),
            None => base,
        })
    }
}

impl StateSnapshot for crate::storage::StateReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Self::get(self, key).map_err(|e| e.to_string())
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<StateEntry>, String> {
        // Stops just past the cap, which the call then refuses.
        Self::scan_prefix(self, prefix, limit, MAX_SCAN_BYTES).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearly_all_records_failing_in_a_window_trips_it() {
        let mut window = FailureWindow::default();
        assert!(!window.count(5, 0));
        assert!(!window.count(FAILURE_TRIP_RECORDS - 1, FAILURE_TRIP_RECORDS - 1));
        assert!(window.count(1, 1), "990 of 995 failed");
        // Tripping starts a new window.
        assert_eq!((window.records, window.failed), (0, 0));
        // A window with enough successes never trips, and the next one
        // starts from nothing.
        assert!(!window.count(FAILURE_WINDOW_RECORDS - FAILURE_TRIP_RECORDS + 1, 0));
        assert!(!window.count(FAILURE_TRIP_RECORDS - 1, FAILURE_TRIP_RECORDS - 1));
        assert_eq!((window.records, window.failed), (0, 0));
        assert!(!window.count(1, 1));
    }
}
