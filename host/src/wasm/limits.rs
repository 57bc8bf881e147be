//! Broker-wide limits on WebAssembly work: how many modules compile at once
//! (the rest queue, boundedly), how many transforms run and how much guest
//! memory they may promise, how many fetch-time instances live at once.
//! Each is a `serve` option; the defaults are below.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default most module compilations at once: a compilation takes a core
/// (cranelift) for up to seconds, so two leave the rest of a small machine
/// to the broker's own work.
pub const DEFAULT_MAX_COMPILES: usize = 2;
/// Compilations that may wait for a free slot; more are refused with
/// `Busy` (retriable).
pub const DEFAULT_COMPILE_QUEUE: usize = 8;
/// Default most deployed transforms (each has a thread and a warm instance).
pub const DEFAULT_MAX_TRANSFORMS: usize = 64;
/// Default budget for the sum of deployed transforms' memory caps: 4 GiB,
/// 64 transforms at the default cap of 64 MiB or four at the largest.
pub const DEFAULT_GUEST_MEMORY_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Default most fetch-time module instances alive at once, in use or idle:
/// at their 32 MiB cap, 1 GiB.
pub const DEFAULT_MAX_FETCH_INSTANCES: usize = 32;

/// Broker-wide limits on WebAssembly work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WasmLimits {
    /// Module compilations at once, at most.
    pub max_compiles: usize,
    /// Compilations waiting for a slot, at most; more are refused.
    pub compile_queue: usize,
    /// Deployed transforms, at most.
    pub max_transforms: usize,
    /// The sum of deployed transforms' memory caps, at most.
    pub guest_memory_bytes: u64,
    /// Fetch-time module instances alive at once (in use and idle), at
    /// most; a fetch that needs one more is refused with `Busy`.
    pub max_fetch_instances: usize,
}

impl Default for WasmLimits {
    fn default() -> Self {
        Self {
            max_compiles: DEFAULT_MAX_COMPILES,
            compile_queue: DEFAULT_COMPILE_QUEUE,
            max_transforms: DEFAULT_MAX_TRANSFORMS,
            guest_memory_bytes: DEFAULT_GUEST_MEMORY_BYTES,
            max_fetch_instances: DEFAULT_MAX_FETCH_INSTANCES,
        }
    }
}

/// The broker is at a limit of concurrent work; the same request may
/// succeed shortly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the broker is busy: {0}; retry shortly")]
pub struct Busy(pub String);

/// Lets at most `max` compilations run at once and `queue` more wait.
#[derive(Debug)]
pub struct CompileGate {
    slots: Arc<Semaphore>,
    max: usize,
    queue: usize,
    waiting: AtomicUsize,
}

/// A compilation slot, held while compiling.
#[derive(Debug)]
pub struct CompilePermit {
    _permit: OwnedSemaphorePermit,
}

impl CompileGate {
    /// A gate for `max` compilations at once (at least one) and `queue`
    /// waiting.
    pub fn new(max: usize, queue: usize) -> Self {
        let max = max.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            queue,
            waiting: AtomicUsize::new(0),
        }
    }

    /// A slot: at once if one is free, after the compilations ahead if the
    /// queue has room, else [`Busy`].
    pub async fn enter(&self) -> Result<CompilePermit, Busy> {
        if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(CompilePermit { _permit: permit });
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        // Leaves the queue however this future ends (also when dropped).
        let _place = QueuePlace(&self.waiting);
        if ahead >= self.queue {
            return Err(Busy(format!(
                "{} module compilations are running and {} waiting, the most it takes at once",
                self.max, self.queue
            )));
        }
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| Busy("the broker is stopping".into()))?;
        Ok(CompilePermit { _permit: permit })
    }
}

/// A place in the compile queue, given up on drop.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn compilations_beyond_the_slots_queue_and_beyond_the_queue_are_refused() {
        let gate = Arc::new(CompileGate::new(1, 1));
        let first = gate.enter().await.expect("a free slot");
        let queued = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.enter().await.map(drop) }
        });
        while gate.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = gate.enter().await.expect_err("the queue is full");
        assert!(
            refused
                .to_string()
                .contains("1 module compilations are running and 1 waiting")
        );
        drop(first);
        queued.await.expect("task").expect("its turn came");
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
        let _again = gate.enter().await.expect("free again");
    }
}
