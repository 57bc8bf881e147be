//! Fetch-time modules: a stored module run by the broker on each fetched
//! record, so that only what it returns crosses the network (`quiver
//! consume TOPIC --module M --param k=v`).
//!
//! The module is called once per record, so each record it keeps keeps its
//! offset, and kept records with consecutive offsets are sealed into one
//! batch. It may return at most one record per input record, to the default
//! output; its state store is not available (state calls fail the call). Warm
//! instances are pooled per (module, version, parameters), a few per key.
//! Calls run on the caller's thread, which must not be an async worker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_proto::api::FetchModule;
use quiver_proto::batch::{BatchBuilder, NewRecord, set_base_offset};

use super::TransformError;
use super::records::{decode_input, output_headers, plain_input};
use crate::clock::Clock;
use crate::storage::{Storage, StorageError};
use crate::wasm::{Busy, CallError, GuestInstance, Logbook, Sandbox, SandboxLimits, WasmEngine};
use tokio::runtime::Handle;

/// Per-call deadline of a fetch-time module.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(1);
/// Longest the module may take over one partition of one fetch, all calls
/// together.
pub const FETCH_BUDGET: Duration = Duration::from_secs(5);
/// Memory cap of a fetch-time instance.
pub const FETCH_MEMORY_BYTES: u64 = 32 * 1024 * 1024;
/// Idle instances kept per (module, version, parameters).
pub const MAX_IDLE_INSTANCES_PER_KEY: usize = 2;
/// Distinct (module, version, parameters) kept warm; beyond it, the pool is
/// emptied (simple, and a working set this large is unusual). With the two
/// constants above this bounds idle instances' memory to 1 GiB; the
/// broker's `max_fetch_instances` bounds all instances, in use or idle.
pub const MAX_POOLED_KEYS: usize = 16;

/// Which warm instances fit a fetch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    name: String,
    version: u32,
    params: Vec<(String, String)>,
}

/// The broker's fetch-time modules: compiled modules and idle instances.
pub struct FetchModules {
    storage: Arc<Storage>,
    engine: WasmEngine,
    clock: Arc<dyn Clock>,
    sandboxes: Mutex<HashMap<(String, u32), Sandbox>>,
    idle: Mutex<HashMap<Key, Vec<Counted>>>,
    /// Instances alive (in use and idle), and the most allowed.
    live: Arc<AtomicUsize>,
    max_live: usize,
}

/// A fetch-time instance, counted in [`FetchModules::live`] while it lives.
struct Counted {
    instance: GuestInstance,
    live: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for FetchModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FetchModules")
    }
}

/// One partition's fetched batches after the module ran.
#[derive(Debug)]
pub struct Filtered {
    /// The kept records as batches, with their original offsets.
    pub batches: Vec<u8>,
    /// The offset after the last record read.
    pub next_offset: u64,
}

impl FetchModules {
    /// An empty pool that lets at most `max_live` instances live at once.
    pub fn new(
        storage: Arc<Storage>,
        engine: WasmEngine,
        clock: Arc<dyn Clock>,
        max_live: usize,
    ) -> Self {
        Self {
            storage,
            engine,
            clock,
            sandboxes: Mutex::new(HashMap::new()),
            idle: Mutex::new(HashMap::new()),
            live: Arc::new(AtomicUsize::new(0)),
            max_live,
        }
    }

    /// Runs `module` on the records at or after `from` in `batches` (read
    /// from `topic`/`partition`). Blocking: compiles on first use and calls
    /// the guest.
    pub fn apply(
        &self,
        module: &FetchModule,
        topic: &str,
        partition: u32,
        batches: &[u8],
        from: u64,
        max_bytes: usize,
    ) -> Result<Filtered, TransformError> {
        let plain = plain_input(batches);
        let decoded = decode_input(topic, partition, &plain, from, usize::MAX).map_err(|e| {
            StorageError::CorruptMetadata {
                what: format!("batch in {topic}/{partition}"),
                reason: e.to_string(),
            }
        })?;
        let records = decoded.records();
        let (key, mut instance) = self.instance(module)?;
        let mut out = Vec::new();
        // The batch being filled: (base offset, next offset, builder).
        let mut run: Option<(u64, u64, BatchBuilder)> = None;
        let started = Instant::now();
        let mut next_offset = decoded.next_offset;
        for record in &records {
            if started.elapsed() > FETCH_BUDGET {
                return Err(CallError::Limit(format!(
                    "a fetch-time module may take {FETCH_BUDGET:?} per partition and fetch; fetch fewer bytes"
                ))
                .into());
            }
            // Output past `max_bytes` ends the partition's answer at this
            // record; the consumer's next fetch goes on from it.
            let building = run.as_ref().map_or(0, |(_, _, b)| b.size_bytes());
            if out.len() + building >= max_bytes {
                next_offset = record.offset;
                break;
            }
            let mut outputs = instance.instance.process_one(record)?.outputs;
            if outputs.len() > 1 {
                return Err(CallError::Limit(format!(
                    "a fetch-time module returned {} records for offset {}; the limit is one",
                    outputs.len(),
                    record.offset
                ))
                .into());
            }
            let Some(kept) = outputs.pop() else {
                continue;
            };
            if kept.output.is_some() {
                return Err(CallError::Limit(
                    "a fetch-time module may write only to the default output".into(),
                )
                .into());
            }
            let headers = output_headers(kept.headers);
            let new = NewRecord {
                key: kept.key.as_deref(),
                value: kept.value.as_deref(),
                headers: &headers,
                timestamp: kept.timestamp.unwrap_or(record.timestamp),
            };
            // A gap in offsets starts the next batch.
            if !matches!(&run, Some((_, next, _)) if *next == record.offset) {
                seal(&mut run, &mut out);
            }
            let (_, next, builder) =
                run.get_or_insert_with(|| (record.offset, record.offset, BatchBuilder::default()));
            let full = builder.push(&new).is_err();
            if full {
                // So does a full batch.
                seal(&mut run, &mut out);
                let mut builder = BatchBuilder::default();
                builder
                    .push(&new)
                    .map_err(|e| CallError::Limit(format!("output record: {e}")))?;
                run = Some((record.offset, record.offset + 1, builder));
            } else {
                *next = record.offset + 1;
            }
        }
        seal(&mut run, &mut out);
        self.release(key, instance);
        Ok(Filtered {
            batches: out,
            next_offset,
        })
    }

    /// An idle instance for `module`, or a new one if the broker's limit on
    /// live fetch-time instances allows (else [`Busy`]).
    fn instance(&self, module: &FetchModule) -> Result<(Key, Counted), TransformError> {
        let version = self.storage.module_version(&module.name)?;
        let key = Key {
            name: module.name.clone(),
            version,
            params: module.params.clone(),
        };
        if let Some(instance) = lock(&self.idle).get_mut(&key).and_then(Vec::pop) {
            return Ok((key, instance));
        }
        let take = || {
            self.live
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |live| {
                    (live < self.max_live).then_some(live + 1)
                })
                .is_ok()
        };
        let mut taken = take();
        if !taken {
            // At the limit, idle instances of other modules give way.
            let freed = lock(&self.idle).drain().count();
            taken = freed > 0 && take();
        }
        if !taken {
            return Err(Busy(format!(
                "{} fetch-time module instances are in use, the most it runs at once (--max-fetch-instances)",
                self.max_live
            ))
            .into());
        }
        // Counted from here: dropped on any failure below.
        let counted = |instance| Counted {
            instance,
            live: Arc::clone(&self.live),
        };
        let sandbox = match self.sandbox(&module.name, version) {
            Ok(sandbox) => sandbox,
            Err(e) => {
                self.live.fetch_sub(1, Ordering::AcqRel);
                return Err(e);
            }
        };
        let logbook = Arc::new(Logbook::new(
            &format!("fetch:{}", module.name),
            Arc::clone(&self.clock),
        ));
        let limits = SandboxLimits {
            deadline: FETCH_DEADLINE,
            memory_bytes: FETCH_MEMORY_BYTES,
        };
        let mut instance = counted(GuestInstance::new(
            sandbox,
            limits,
            logbook,
            module.params.clone(),
            None,
        ));
        instance.instance.start()?;
        Ok((key, instance))
    }

    fn release(&self, key: Key, instance: Counted) {
        let mut idle = lock(&self.idle);
        if idle.len() >= MAX_POOLED_KEYS && !idle.contains_key(&key) {
            idle.clear();
        }
        let pool = idle.entry(key).or_default();
        if pool.len() < MAX_IDLE_INSTANCES_PER_KEY {
            pool.push(instance);
        }
    }

    fn sandbox(&self, name: &str, version: u32) -> Result<Sandbox, TransformError> {
        let key = (name.to_owned(), version);
        if let Some(sandbox) = lock(&self.sandboxes).get(&key) {
            return Ok(sandbox.clone());
        }
        let bytes = self.storage.module_code_at(name, version)?;
        // A blocking thread of the runtime: wait for a compile slot here.
        let permit = Handle::current().block_on(self.engine.compile_permit())?;
        let sandbox = Sandbox::new(&self.engine, &bytes)?;
        drop(permit);
        let mut sandboxes = lock(&self.sandboxes);
        // Older versions of this module are not fetched with again.
        sandboxes.retain(|(n, v), _| n != name || *v == version);
        sandboxes.insert(key, sandbox.clone());
        Ok(sandbox)
    }
}

/// Seals the run of kept records, if any, into `out` at its base offset.
fn seal(run: &mut Option<(u64, u64, BatchBuilder)>, out: &mut Vec<u8>) {
    if let Some((base, _, builder)) = run.take().filter(|(_, _, b)| !b.is_empty()) {
        let mut batch = builder.finish();
        set_base_offset(&mut batch, base);
        out.extend_from_slice(&batch);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
