//! The WebAssembly side of the broker: one engine, the check an uploaded
//! component must pass, and the sandbox deployed transforms run in.
//!
//! - [`validate`]: a component may import only the `quiver:transform`
//!   contract (at one of the versions this broker speaks, 0.3.0, 0.2.0 or
//!   0.1.0)
//!   and the locked-down WASI set, and must export the contract's `guest`
//!   interface.
//! - [`sandbox`]: a compiled module ([`Sandbox`]) and its warm instances
//!   ([`GuestInstance`]): per-call deadlines through epoch interruption, a
//!   memory cap, limits on outputs and state, WASI with no directories,
//!   network, environment or arguments.
//! - [`state`]: a call's view of the transform's state store, with the
//!   call's own writes layered over a committed snapshot.
//! - [`logbook`]: a transform's recent log lines (guest `log` calls and
//!   its stdout/stderr).
//! - [`limits`]: broker-wide limits on WebAssembly work, and the gate that
//!   lets a bounded number of compilations run at once.
//!
//! Guest code runs only on threads the caller owns (transform workers, the
//! blocking pool for fetch-time modules), never on the async runtime's
//! workers: a call may take up to its deadline.

mod bindings;
pub mod limits;
pub mod logbook;
pub mod sandbox;
pub mod state;
mod validate;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Cache, CacheConfig, Config, Engine};

pub use bindings::v3::quiver::transform::types::OutputRecord;
pub use limits::{Busy, CompileGate, CompilePermit, WasmLimits};
pub use logbook::Logbook;
pub use sandbox::{CallError, GuestInstance, Sandbox, SandboxLimits};
pub use state::{StateChanges, StateSnapshot, StateSource};
pub(crate) use validate::sha256_hex;
pub use validate::{
    ALLOWED_WASI_PACKAGES, CONTRACT_IMPORTS, CONTRACT_PACKAGE, CONTRACT_VERSION, CONTRACT_VERSIONS,
    Contract, GUEST_EXPORT, ModuleError, ModuleInfo, precheck,
};

/// A record passed to a guest, borrowed from its stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputRecord<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key, if any.
    pub key: Option<&'a [u8]>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    /// The headers, in order: (name, value), a null value as `None`.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// How often the engine's epoch advances; call deadlines are counted in
/// these ticks, so a call overruns its deadline by at most about one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The WebAssembly engine could not be set up (a broker set-up failure,
/// not a problem with any module).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the WebAssembly engine: {0}")]
pub struct EngineError(String);

impl From<wasmtime::Error> for EngineError {
    fn from(e: wasmtime::Error) -> Self {
        // `{:#}` keeps wasmtime's causes in one line.
        Self(format!("{e:#}"))
    }
}

/// The engine shared by every module of a broker, with the thread that
/// advances its epoch (the clock call deadlines go by).
#[derive(Clone)]
pub struct WasmEngine {
    engine: Engine,
    compiles: Arc<CompileGate>,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WasmEngine")
    }
}

impl WasmEngine {
    /// An engine for components with epoch interruption on. With
    /// `cache_dir`, compiled modules are kept there, so a restart loads them
    /// instead of compiling again; wasmtime wants it absolute, so a relative
    /// one is resolved against the working directory here.
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, EngineError> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        if let Some(dir) = cache_dir {
            let dir = std::path::absolute(dir)
                .map_err(|e| EngineError(format!("cache directory {}: {e}", dir.display())))?;
            let mut cache = CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(Cache::new(cache).map_err(EngineError::from)?));
        }
        let engine = Engine::new(&config).map_err(EngineError::from)?;
        spawn_epoch_ticker(&engine)
            .map_err(|e| EngineError(format!("cannot start the epoch thread: {e}")))?;
        let defaults = WasmLimits::default();
        Ok(Self {
            engine,
            compiles: Arc::new(CompileGate::new(
                defaults.max_compiles,
                defaults.compile_queue,
            )),
        })
    }

    /// The same engine, letting `max` compilations run at once and `queue`
    /// more wait.
    #[must_use]
    pub fn with_compile_limits(mut self, max: usize, queue: usize) -> Self {
        self.compiles = Arc::new(CompileGate::new(max, queue));
        self
    }

    /// A compilation slot (see [`CompileGate::enter`]); every compilation
    /// (upload, deploy, upgrade, fetch-time) holds one.
    pub async fn compile_permit(&self) -> Result<CompilePermit, Busy> {
        self.compiles.enter().await
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Advances the epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("quiver-wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}
