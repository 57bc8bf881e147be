//! `looper`: an adversarial module for tests. What `process` does depends
//! on the `mode` parameter; `init` and `on-tick` behave in every mode.
//!
//! - `spin` (the default): never returns, so the host must stop it at its
//!   execution deadline (epoch interruption) and apply the transform's
//!   `--on-error` policy, while the broker and other transforms carry on.
//! - `recurse`: recurses without bound until the guest's stack runs out; the
//!   host must report a stack overflow with a short trace. Small frames run
//!   out of wasmtime's call stack first; `recurse-wide` (32 KiB frames) runs
//!   off the end of the guest's own stack in linear memory instead.
//! - `flood`: prints `lines` lines (default 10,000) of `bytes` bytes
//!   (default 1,024) to stdout, then passes the batch through unchanged; the
//!   host must keep its log bounded (rate limit, line cap).

use quiver_guest::{Guest, InitCell, InputRecord, OutputRecord, Params};

/// What `process` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Spin,
    Recurse,
    RecurseWide,
    Flood { lines: usize, bytes: usize },
}

static MODE: InitCell<Mode> = InitCell::new();

struct Looper;

impl Guest for Looper {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        let params = Params::new(params);
        params.only(&["mode", "lines", "bytes"])?;
        let mode = match params.get("mode").unwrap_or("spin") {
            "spin" => Mode::Spin,
            "recurse" => Mode::Recurse,
            "recurse-wide" => Mode::RecurseWide,
            "flood" => Mode::Flood {
                lines: params.parse_or("lines", 10_000)?,
                bytes: params.parse_or("bytes", 1_024)?,
            },
            other => {
                return Err(format!(
                    "mode {other:?}: expected spin, recurse, recurse-wide or flood"
                ));
            }
        };
        MODE.set(mode);
        Ok(())
    }

    fn process(batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String> {
        match *MODE.get()? {
            Mode::Spin => {
                quiver_guest::log::info("looper: entering an endless loop");
                // `black_box` keeps the optimiser from proving anything about
                // the loop; the counter is real work the host has to stop.
                let mut spins: u64 = 0;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            Mode::Recurse => {
                quiver_guest::log::info("looper: recursing without bound");
                let reached = depth(std::hint::black_box(0));
                Ok(vec![OutputRecord::new(reached.to_string().into_bytes())])
            }
            Mode::RecurseWide => {
                quiver_guest::log::info("looper: recursing without bound, 32 KiB a frame");
                let reached = wide(std::hint::black_box(0));
                Ok(vec![OutputRecord::new(reached.to_string().into_bytes())])
            }
            Mode::Flood { lines, bytes } => {
                let line = "x".repeat(bytes);
                for i in 0..lines {
                    println!("{i} {line}");
                }
                Ok(batch.iter().map(OutputRecord::forward).collect())
            }
        }
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

/// Recurses until the stack runs out (never returns): the array on each
/// frame lives on the guest's stack, and `black_box` keeps the optimiser
/// from turning the recursion into a loop.
#[expect(unconditional_recursion, reason = "the stack must run out")]
fn depth(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 16]);
    depth(frame[0] + 1) + frame[15]
}

/// As [`depth`], with 32 KiB on each frame.
#[expect(unconditional_recursion, reason = "the stack must run out")]
#[expect(clippy::large_stack_arrays, reason = "large frames are the point")]
fn wide(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 4_096]);
    wide(frame[0] + 1) + frame[4_095]
}

quiver_guest::export!(Looper);
