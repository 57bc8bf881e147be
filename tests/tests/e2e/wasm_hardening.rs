//! Hostile and broken transforms against a real broker (issue 9, items 4,
//! 7, 8, 9 and 10):
//!
//! - a guest that recurses without bound is reported as a stack overflow
//!   with a trace of a few frames;
//! - a stored batch damaged on disk (a flipped bit) stops only its input
//!   partition of a transform, naming topic, partition and offset, while the
//!   other partitions go on; a seek moves past it;
//! - a guest printing megabytes cannot flood: its lines are cut and rate
//!   limited with a count of the dropped ones, the broker's own log gets a
//!   summary only, and `quiver transform logs` pages a log of over 1 MiB
//!   (`--tail`, `--since`);
//! - an upload that breaks the contract is refused before anything is
//!   compiled, and uploads beyond the compile slots and their queue are
//!   refused as `Busy` (retriable);
//! - broker-wide limits refuse deploys past the transform count and the
//!   guest-memory budget (`LimitReached`), and fetches past the fetch-time
//!   instance limit (`Busy`);
//! - a module that fails nearly every record under `skip` is stopped with
//!   the reason.

use std::fmt::Write as _;
use std::time::Duration;

use quiver_client::{
    Admin, Client, ClientError, ErrorCode, FetchModule, Producer, ProducerConfig, ProducerRecord,
};
use quiver_host::transforms::{FAILURE_TRIP_RECORDS, FAILURE_WINDOW_RECORDS};
use quiver_proto::api::transforms::{OnError, RunState, TransformAction};
use quiver_proto::api::{FetchPartition, FetchRequest};
use quiver_tests::cli::run_quiver;
use quiver_tests::transforms::{
    all_logs, deploy_request, failure, produce, upload, wait_for_status,
};
use quiver_tests::{BrokerProcess, TestBroker, quiver_command};
use redb::ReadableTable as _;

/// The batches table as the broker declares it (host/src/storage/tables.rs):
/// (topic id, partition, base offset) to one stored batch.
const BATCHES: redb::TableDefinition<'_, (u64, u32, u64), &[u8]> =
    redb::TableDefinition::new("batches");

/// `looper` passing every record through unchanged (a flood of no lines).
const PASS_THROUGH: [(&str, &str); 2] = [("mode", "flood"), ("lines", "0")];

/// Produces each of `batches` to `topic`/`partition` as a batch of its own.
async fn produce_batches(client: &Client, topic: &str, partition: u32, batches: &[&[&str]]) {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    for values in batches {
        for value in *values {
            producer
                .enqueue(ProducerRecord::new(topic, (*value).to_owned()).partition(partition))
                .await
                .expect("enqueue");
        }
        producer.flush().await.expect("one batch acknowledged");
    }
}

#[tokio::test]
async fn a_stack_overflow_says_so_in_a_few_frames() {
    for mode in ["recurse", "recurse-wide"] {
        stack_overflow(mode).await;
    }
}

async fn stack_overflow(mode: &str) {
    let broker = TestBroker::start().await;
    broker.create_topic("deep", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "looper", "looper").await;
    let mut request = deploy_request("recurser", "looper", "deep", &[("mode", mode)]);
    request.on_error = OnError::Stop;
    admin.deploy_transform(request).await.expect("deploy");
    produce(&client, vec![ProducerRecord::new("deep", "go")]).await;

    let failed = wait_for_status(&admin, "recurser", "failed", |s| failure(s).is_some()).await;
    let error = failure(&failed).expect("failed");
    eprintln!("{error}");
    assert!(error.contains("stack overflow"), "{error}");
    assert!(!error.contains("out of bounds memory access") || error.contains("stack overflow"));
    assert!(error.len() < 1_000, "a short message: {error}");
    assert!(error.contains("more frames"), "{error}");
    let lines = all_logs(&admin, "recurser").await;
    assert!(
        lines
            .iter()
            .any(|l| l.source == "host" && l.message.contains("stack overflow")),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_batch_stops_only_its_partition() {
    let mut broker = TestBroker::start().await;
    broker.create_topic("input", 2).await;
    let client = broker.client().await;
    produce_batches(&client, "input", 0, &[&["a0", "b0"]]).await;
    produce_batches(&client, "input", 1, &[&["a1"], &["b1", "c1"], &["d1"]]).await;
    drop(client);
    broker.shutdown().await;
    {
        // Flip one bit in the last byte of partition 1's batch at offset 1
        // (a record's value: covered by the CRC, not by any length).
        let db = redb::Database::open(broker.data_dir().join("quiver.redb")).expect("open");
        let txn = db.begin_write().expect("write");
        {
            let mut table = txn.open_table(BATCHES).expect("batches");
            let key = table
                .iter()
                .expect("iterate")
                .map(|row| row.expect("row").0.value())
                .find(|&(_, partition, base)| (partition, base) == (1, 1))
                .expect("the batch at input/1 offset 1");
            let mut bytes = table
                .get(key)
                .expect("get")
                .expect("stored")
                .value()
                .to_vec();
            *bytes.last_mut().expect("not empty") ^= 0x01;
            table.insert(key, bytes.as_slice()).expect("write it back");
        }
        txn.commit().expect("commit");
    }
    broker.restart().await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "looper", "looper").await;
    let request = deploy_request("copy", "looper", "input", &PASS_THROUGH);
    admin.deploy_transform(request).await.expect("deploy");

    // The commit of partition 1's first batch may still be in flight when
    // the damage is found: wait for it too.
    let status = wait_for_status(&admin, "copy", "stopped on partition 1", |s| {
        s.partitions[1].error.is_some()
            && s.partitions[1].position == 1
            && s.partitions[0].lag() == 0
    })
    .await;
    assert_eq!(status.state, RunState::Running, "{status:#?}");
    assert_eq!(status.partitions[0].error, None);
    let stopped = &status.partitions[1];
    assert_eq!(
        stopped.position, 1,
        "the batch before the damage is processed"
    );
    let error = stopped.error.as_deref().expect("partition 1 stopped");
    assert!(
        error.contains("input/1 offset 1 is damaged") && error.contains("CRC"),
        "{error}"
    );
    let lines = all_logs(&admin, "copy").await;
    assert!(
        lines.iter().any(|l| l.source == "host"
            && l.message.contains("partition 1 stopped")
            && l.message.contains("input/1 offset 1")),
        "{lines:#?}"
    );

    let printed = tokio::task::block_in_place(|| {
        let mut command = quiver_command(broker.addr(), broker.ca());
        command.args(["transform", "status", "copy"]);
        run_quiver(command, None).ok()
    });
    assert!(printed.contains("state:     running"), "{printed}");
    assert!(
        printed.contains("\n1\t1\t4\t3\tstopped: the stored batch at input/1 offset 1 is damaged"),
        "{printed}"
    );

    // Partition 0 carries on.
    produce_batches(&client, "input", 0, &[&["c0"]]).await;
    let status =
        wait_for_status(&admin, "copy", "past c0", |s| s.partitions[0].position == 3).await;
    assert_eq!(status.partitions[1].position, 1);
    assert_eq!(status.records_in, 4, "a0 b0 c0 a1: {status:#?}");

    // Resume reads the damaged batch again: still damaged.
    admin
        .control_transform("copy", TransformAction::Resume)
        .await
        .expect("resume");
    let status = wait_for_status(&admin, "copy", "stopped again", |s| {
        s.partitions[1].error.is_some()
    })
    .await;
    assert_eq!(status.partitions[1].position, 1);

    // A seek past the damaged batch moves on.
    admin.seek_transform("copy", 1, 3).await.expect("seek");
    let status = wait_for_status(&admin, "copy", "caught up", |s| {
        s.partitions
            .iter()
            .all(|p| p.lag() == 0 && p.error.is_none())
    })
    .await;
    assert_eq!(status.records_in, 5, "d1 too: {status:#?}");
    assert!(failure(&status).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_cannot_flood() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    admin
        .create_topic("noisy", 1, quiver_client::TopicConfig::default())
        .await
        .expect("create topic");
    upload(&admin, "looper", "looper").await;
    // Each call prints 1,000 lines of 8 KB: 8 MB.
    let params = [("mode", "flood"), ("lines", "1000"), ("bytes", "8000")];
    let request = deploy_request("noisy", "looper", "noisy", &params);
    admin.deploy_transform(request).await.expect("deploy");
    let logged_before = broker.stderr_bytes();

    // Three calls, each in a second of its own: 300 lines of 4 KiB kept.
    for i in 1..=3 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch");
        tokio::time::sleep(Duration::from_millis(
            1_050 - u64::from(now.subsec_millis()),
        ))
        .await;
        produce(&client, vec![ProducerRecord::new("noisy", "go")]).await;
        wait_for_status(&admin, "noisy", "through the record", |s| s.records_in == i).await;
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let lines = all_logs(&admin, "noisy").await;
    let guest: Vec<_> = lines.iter().filter(|l| l.source == "stdout").collect();
    assert!(
        (300..=600).contains(&guest.len()),
        "100 lines a second kept: {}",
        guest.len()
    );
    assert!(
        guest
            .iter()
            .all(|l| l.message.len() <= 4_096 && l.message.ends_with(" bytes cut]")),
        "{:?}",
        guest.first()
    );
    let dropped = lines
        .iter()
        .filter(|l| l.source == "host" && l.message.contains("guest lines dropped"))
        .count();
    assert!(
        dropped >= 3,
        "a count of dropped lines per second: {lines:#?}"
    );
    let total: usize = lines.iter().map(|l| l.message.len()).sum();
    assert!(total > 1024 * 1024, "a log of over 1 MiB: {total} bytes");

    // 24 MB of guest output; the broker logged a summary.
    let logged = broker.stderr_bytes() - logged_before;
    assert!(logged < 64 * 1024, "the broker logged {logged} bytes");

    let quiver = |args: &[&str]| {
        let mut command = quiver_command(broker.addr(), broker.ca());
        command.args(["transform", "logs", "noisy"]).args(args);
        run_quiver(command, None).ok()
    };
    let all = tokio::task::block_in_place(|| quiver(&[]));
    assert_eq!(
        all.lines().count(),
        lines.len(),
        "every kept line, page after page"
    );
    assert!(all.len() > 1024 * 1024);
    let tail = tokio::task::block_in_place(|| quiver(&["--tail", "3"]));
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(all.ends_with(&tail));
    let recent = tokio::task::block_in_place(|| quiver(&["--since", "1h"]));
    assert_eq!(recent.lines().count(), lines.len());
    let none = tokio::task::block_in_place(|| quiver(&["--since", "2999-01-01T00:00:00Z"]));
    assert_eq!(none, "");
}

/// The broker's error code of a failed request.
fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    result
        .expect_err("the request is refused")
        .code()
        .expect("a broker code")
}

/// Files under `dir`, recursively (0 if it does not exist).
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .map_while(Result::ok)
            .map(|e| {
                let path = e.path();
                if path.is_dir() { files_under(&path) } else { 1 }
            })
            .sum()
    })
}

/// A component that imports nothing and exports nothing, holding a core
/// module of `functions` functions: slow to compile, refused without it.
fn big_component_without_a_guest(functions: usize) -> Vec<u8> {
    let mut wat = String::from("(component (core module");
    for i in 0..functions {
        let _ = write!(
            wat,
            " (func (param i64) (result i64) local.get 0 i64.const {i} i64.mul i64.const 7 i64.add)"
        );
    }
    wat.push_str("))");
    wat::parse_str(&wat).expect("valid WAT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_checked_before_compiling_and_compiled_a_few_at_a_time() {
    let broker = TestBroker::start_with(|config| {
        config.wasm.max_compiles = 1;
        config.wasm.compile_queue = 1;
    })
    .await;
    let admin = broker.admin().await;
    let cache = broker.data_dir().join("wasm-cache");

    // Refused from its sections: nothing compiled, nothing cached.
    let big = big_component_without_a_guest(20_000);
    let started = std::time::Instant::now();
    let refused = admin.upload_module("big", big.into()).await;
    let took = started.elapsed();
    let error = refused.expect_err("no guest export");
    assert_eq!(error.code(), Some(ErrorCode::InvalidModule), "{error}");
    assert!(
        error
            .to_string()
            .contains("does not export quiver:transform/guest@0.3.0"),
        "{error}"
    );
    assert_eq!(files_under(&cache), 0, "nothing was compiled ({took:?})");
    upload(&admin, "filter", "filter").await;
    assert!(files_under(&cache) > 0, "a compiled module is cached");

    // Seven uploads at once through one compile slot and one queue place:
    // each is stored or refused as busy, which is retriable.
    let guests = [
        "click-aggregate",
        "hog",
        "looper",
        "rekey",
        "router",
        "running-total",
        "filter",
    ];
    let uploads: Vec<_> = guests
        .iter()
        .enumerate()
        .map(|(i, guest)| {
            let admin = admin.clone();
            let bytes = quiver_tests::guest_component(guest);
            tokio::spawn(async move { admin.upload_module(&format!("m{i}"), bytes.into()).await })
        })
        .collect();
    let mut busy = Vec::new();
    for (i, upload) in uploads.into_iter().enumerate() {
        let result = upload.await.expect("upload task");
        match result {
            Ok(_) => {}
            Err(e) if e.code() == Some(ErrorCode::Busy) => {
                assert!(e.is_retriable(), "{e}");
                assert!(
                    e.to_string().contains("module compilations are running"),
                    "{e}"
                );
                busy.push(i);
            }
            Err(e) => panic!("upload {i}: {e}"),
        }
    }
    assert!(
        !busy.is_empty(),
        "seven uploads at once through 1 + 1 places"
    );
    for i in busy {
        let bytes = quiver_tests::guest_component(guests[i]);
        admin
            .upload_module(&format!("m{i}"), bytes.into())
            .await
            .expect("a retried upload gets its turn");
    }
    assert_eq!(admin.list_modules().await.expect("list").len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_wide_limits_refuse_deploys_and_fetches() {
    const MIB: u64 = 1024 * 1024;
    let broker = TestBroker::start_with(|config| {
        config.wasm.max_transforms = 2;
        config.wasm.guest_memory_bytes = 100 * MIB;
        config.wasm.max_fetch_instances = 1;
    })
    .await;
    broker.create_topic("in", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "looper", "looper").await;
    upload(&admin, "filter", "filter").await;
    let request = |name: &str, memory_mb: u64| {
        let mut request = deploy_request(name, "looper", "in", &PASS_THROUGH);
        request.memory_bytes = Some(memory_mb * MIB);
        request
    };

    admin
        .deploy_transform(request("t1", 64))
        .await
        .expect("within the limits");
    let refused = admin.deploy_transform(request("t2", 64)).await;
    let error = refused.expect_err("past the memory budget");
    assert_eq!(error.code(), Some(ErrorCode::LimitReached), "{error}");
    assert!(!error.is_retriable());
    assert!(
        error
            .to_string()
            .contains("asks for 64 MiB more; the broker's budget is 100 MiB"),
        "{error}"
    );
    admin
        .deploy_transform(request("t2", 16))
        .await
        .expect("fits the budget");
    let error = admin
        .deploy_transform(request("t3", 1))
        .await
        .expect_err("a third");
    assert_eq!(error.code(), Some(ErrorCode::LimitReached), "{error}");
    assert!(
        error.to_string().contains("runs 2 transforms, its limit"),
        "{error}"
    );
    assert!(
        admin.transform_status("t3").await.is_err(),
        "nothing of t3 is stored"
    );
    admin
        .control_transform("t1", TransformAction::Delete)
        .await
        .expect("delete t1");
    admin
        .deploy_transform(request("t3", 64))
        .await
        .expect("room again");

    assert_fetch_instances_are_limited(&client).await;
}

/// With one fetch-time instance allowed: while a spinning module holds it
/// (1 s, its deadline), another fetch is refused as busy; then it gets its
/// turn.
async fn assert_fetch_instances_are_limited(client: &Client) {
    produce(client, vec![ProducerRecord::new("in", r#"{"a":"b"}"#)]).await;
    let fetch = |module: &str, params: &[(&str, &str)]| FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1024 * 1024,
        partitions: vec![FetchPartition {
            topic: "in".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1024 * 1024,
        }],
        member: None,
        module: Some(FetchModule {
            name: module.into(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }),
    };
    let filter = fetch("filter", &[("field", "a"), ("equals", "b")]);
    // Under load the spinner may start late and the filter get the instance
    // first: then try again.
    let mut refused = None;
    for _ in 0..5 {
        let spinning = tokio::spawn({
            let client = client.clone();
            let request = fetch("looper", &[]);
            async move { client.request(&request, Vec::new()).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        let busy = client.request(&filter, Vec::new()).await;
        let spun = code(spinning.await.expect("task"));
        if let Err(error) = busy {
            assert_eq!(
                spun,
                ErrorCode::ModuleFailed,
                "the spinner stops at its deadline"
            );
            refused = Some(error);
            break;
        }
    }
    let error = refused.expect("a fetch refused while the only instance is in use");
    assert_eq!(error.code(), Some(ErrorCode::Busy), "{error}");
    assert!(error.is_retriable());
    assert!(
        error.to_string().contains("fetch-time module instances"),
        "{error}"
    );
    let (_, body) = client.request(&filter, Vec::new()).await.expect("its turn");
    assert!(!body.is_empty(), "the record passes the filter");
}

#[tokio::test]
async fn a_module_failing_nearly_every_record_is_stopped() {
    let broker = TestBroker::start().await;
    broker.create_topic("mostly-bad", 1).await;
    let client = broker.client().await;
    let admin = Admin::new(client.clone());
    upload(&admin, "filter", "filter").await;
    let mut good = vec![ProducerRecord::new("mostly-bad", r#"{"a":"b"}"#); 5];
    let bad = (0..FAILURE_WINDOW_RECORDS)
        .map(|i| ProducerRecord::new("mostly-bad", format!("not json {i}")));
    good.extend(bad);
    produce(&client, good).await;
    let params = [("field", "a"), ("equals", "b"), ("on_malformed", "fail")];
    let mut request = deploy_request("strict", "filter", "mostly-bad", &params);
    request.on_error = OnError::Skip;
    admin.deploy_transform(request).await.expect("deploy");

    let failed = wait_for_status(&admin, "strict", "failed", |s| failure(s).is_some()).await;
    let error = failure(&failed).expect("failed");
    assert!(
        error.contains(&format!(
            "{FAILURE_TRIP_RECORDS} or more of the last {FAILURE_WINDOW_RECORDS} records failed under on-error skip"
        )),
        "{error}"
    );
    assert_eq!(failed.errors, FAILURE_TRIP_RECORDS, "{failed:#?}");
    // The records before the one that tripped it were skipped; that one
    // waits for a fix (or `resume`, which skips on).
    assert_eq!(failed.partitions[0].position, 5 + FAILURE_TRIP_RECORDS - 1);
}
