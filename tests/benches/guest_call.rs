//! The host-guest call path: one warm instance of a real guest component
//! (built from guest-examples) called with batches of 1,000 click events of
//! about 100 bytes, as a transform worker calls it. Reported in records per
//! second; includes passing the records into the guest (one stored batch,
//! as contract 0.2.0 takes it), the guest's work, and lifting its outputs
//! back.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput};
use quiver_host::clock::SystemClock;
use quiver_host::transforms::records::decode_input;
use quiver_host::wasm::sandbox::CallInput;
use quiver_host::wasm::{
    GuestInstance, Logbook, Sandbox, SandboxLimits, StateSnapshot, StateSource, WasmEngine,
};
use quiver_proto::api::transforms::StateEntry;
use quiver_proto::batch::{BatchBuilder, NewRecord};
use quiver_tests::guest_component;

const RECORDS: usize = 1_000;

/// An empty, unchanging state store: state reads find nothing and a call's
/// writes are dropped after it, as if never committed.
struct NoState;

impl StateSnapshot for NoState {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }

    fn scan_prefix(&self, _prefix: &[u8], _limit: usize) -> Result<Vec<StateEntry>, String> {
        Ok(Vec::new())
    }
}

impl StateSource for NoState {
    fn snapshot(&self) -> Result<Box<dyn StateSnapshot>, String> {
        Ok(Box::new(NoState))
    }
}

fn events() -> Vec<Vec<u8>> {
    (0..RECORDS)
        .map(|i| {
            let action = if i % 2 == 0 { "click" } else { "upload" };
            format!(
                r#"{{"user_id":{},"page":"/p{}","action":"{action}","ts":{},"pad":"xxxxxxxx"}}"#,
                i % 97,
                i % 100,
                1_700_000_000_000_u64 + i as u64
            )
            .into_bytes()
        })
        .collect()
}

fn instance(engine: &WasmEngine, guest: &str, params: &[(&str, &str)]) -> GuestInstance {
    let sandbox = Sandbox::new(engine, &guest_component(guest)).expect("the guest compiles");
    let logbook = Arc::new(Logbook::new(guest, Arc::new(SystemClock)));
    let params = params
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut instance = GuestInstance::new(
        sandbox,
        SandboxLimits::default(),
        logbook,
        params,
        Some(Arc::new(NoState)),
    );
    instance.start().expect("init succeeds");
    instance
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let engine = WasmEngine::new(None).expect("engine");
    let mut builder = BatchBuilder::default();
    for value in events() {
        builder
            .push(&NewRecord {
                key: Some(b"user-1"),
                value: Some(&value),
                headers: &[],
                timestamp: 1_700_000_000_000,
            })
            .expect("1,000 events fit a batch");
    }
    let stored = builder.finish();
    let batch = decode_input("click", 0, &stored, 0, RECORDS).expect("the batch decodes");
    let records = batch.records();
    let input = CallInput {
        records: &records,
        batches: batch.batches_for(0..records.len()),
    };
    let mut group = criterion.benchmark_group("guest_call");
    group.throughput(Throughput::Elements(RECORDS as u64));
    let cases: [(&str, &[(&str, &str)]); 2] = [
        ("filter", &[("field", "action"), ("equals", "click")]),
        ("click_aggregate", &[("window_ms", "60000")]),
    ];
    for (guest, params) in cases {
        let mut instance = instance(&engine, guest, params);
        group.bench_function(format!("{guest}_1000_records"), |b| {
            b.iter(|| {
                black_box(
                    instance
                        .process(black_box(input))
                        .expect("the call succeeds"),
                )
            });
        });
    }
    group.finish();
    criterion.final_summary();
}
