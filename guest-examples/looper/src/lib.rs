//! `looper`: an adversarial module for tests. `process` never returns: it
//! spins forever, so the host must stop it at its execution deadline (epoch
//! interruption) and apply the transform's `--on-error` policy, while the
//! broker and other transforms carry on. `init` and `on-tick` behave.

use quiver_guest::{Guest, InputRecord, OutputRecord, Params};

struct Looper;

impl Guest for Looper {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        Params::new(params).only(&[])
    }

    fn process(_batch: Vec<InputRecord>) -> Result<Vec<OutputRecord>, String> {
        quiver_guest::log::info("looper: entering an endless loop");
        // `black_box` keeps the optimiser from proving anything about the
        // loop; the counter is real work the host has to interrupt.
        let mut spins: u64 = 0;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

quiver_guest::export!(Looper);
