//! Record batch codec benchmarks: building, validating and reading a batch of
//! 1,000 records with 100-byte values, reported in records per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use quiver_proto::batch::{BatchBuilder, BatchView, NewRecord, validate};

const RECORDS: u32 = 1_000;
const VALUE_BYTES: usize = 100;
const BASE_TIMESTAMP: i64 = 1_700_000_000_000;

fn values() -> Vec<[u8; VALUE_BYTES]> {
    (0..RECORDS)
        .map(|i| [(i % 251) as u8; VALUE_BYTES])
        .collect()
}

fn build(values: &[[u8; VALUE_BYTES]]) -> Vec<u8> {
    let mut builder = BatchBuilder::with_capacity(values.len() * (VALUE_BYTES + 10));
    for (value, i) in values.iter().zip(0i64..) {
        builder
            .push(&NewRecord {
                key: None,
                value: Some(value),
                headers: &[],
                // A millisecond apart, as a steady producer would stamp them.
                timestamp: BASE_TIMESTAMP + i,
            })
            .expect("1,000 small records fit a batch");
    }
    builder.finish()
}

fn batch(c: &mut Criterion) {
    let values = values();
    let batch = build(&values);
    validate(&batch).expect("the benchmark batch is valid");

    let mut group = c.benchmark_group("batch_1000x100B");
    group.throughput(Throughput::Elements(u64::from(RECORDS)));

    group.bench_function("build", |b| b.iter(|| build(black_box(&values))));

    group.bench_function("validate", |b| {
        b.iter(|| validate(black_box(&batch)).expect("valid"));
    });

    group.bench_function("iterate", |b| {
        b.iter(|| {
            let view = BatchView::parse(black_box(&batch)).expect("valid");
            let mut bytes = 0usize;
            for record in view.records() {
                bytes += record.expect("valid").value.map_or(0, <[u8]>::len);
            }
            bytes
        });
    });

    group.bench_function("validate_then_iterate", |b| {
        b.iter(|| {
            let batch = black_box(&batch);
            validate(batch).expect("valid");
            let view = BatchView::parse(batch).expect("valid");
            view.records()
                .map(|record| record.expect("valid").value.map_or(0, <[u8]>::len))
                .sum::<usize>()
        });
    });

    group.bench_function("build_validate_iterate", |b| {
        b.iter(|| {
            let batch = build(black_box(&values));
            validate(&batch).expect("valid");
            let view = BatchView::parse(&batch).expect("valid");
            view.records()
                .map(|record| record.expect("valid").value.map_or(0, <[u8]>::len))
                .sum::<usize>()
        });
    });

    group.finish();
}

// What `criterion_group!` and `criterion_main!` expand to, written out: the
// macros generate an undocumented `pub fn`, which the workspace's
// `missing_docs` lint refuses.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    batch(&mut criterion);
    criterion.final_summary();
}
