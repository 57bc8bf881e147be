//! `hog`: an adversarial module for tests. `process` allocates 1 MiB after
//! 1 MiB, writing every byte and keeping all of it, until the allocator
//! fails: the host's memory limiter must refuse the growth (the guest then
//! traps) and apply the transform's `--on-error` policy, while the broker
//! and other transforms carry on. `init` and `on-tick` behave.

use quiver_guest::{Guest, InputRecord, OutputRecord, Params};

/// How much each step allocates.
const CHUNK: usize = 1 << 20;

struct Hog;

impl Guest for Hog {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        Params::new(params).only(&[])
    }

    fn process(_batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String> {
        quiver_guest::log::info("hog: allocating without bound");
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Non-zero bytes, so every page is written, not just reserved.
            hoard.push(vec![0xA5; CHUNK]);
            // Keeps the optimiser from deleting allocations nobody reads.
            std::hint::black_box(&mut hoard);
        }
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

quiver_guest::export!(Hog);
