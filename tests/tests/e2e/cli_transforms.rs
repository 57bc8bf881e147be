//! The words of `quiver transform` and `quiver module` for recovering
//! transforms, through the real binary against a real broker:
//!
//! - `transform alter` and `transform seek` on a failed transform say it
//!   stays failed until `resume`; refused seeks name the valid range; after
//!   `resume` the transform carries on;
//! - `transform status` spells the policy as the flag does, `transform logs`
//!   stamps lines with RFC 3339 times, and after a restart says a failed
//!   transform stays failed;
//! - `transform state` prints readable window keys, finds a group's windows
//!   by the group value, and escapes binary keys;
//! - `module upload` says when it made a new version of a name and which
//!   transforms keep an older one, `module list` lists every stored
//!   version, and a file that is not a component is refused in one line.

use std::path::Path;
use std::time::{Duration, Instant};

use quiver_client::{Producer, ProducerConfig, ProducerRecord};
use quiver_tests::cli::CliFixture;

/// How long a transform may take to reach a state.
const WAIT: Duration = Duration::from_secs(30);
/// A window start (a multiple of a minute) for hand-made clicks.
const W0: i64 = 1_764_064_800_000;

/// A click on `page` at `ts`, as a `KEY|VALUE` line.
fn click(page: &str, ts: i64) -> String {
    format!(r#"u1|{{"user_id": 1, "page": "{page}", "action": "click", "ts": {ts}}}"#)
}

/// Five clicks on `/a` in minute 0 (offsets 0 to 4).
fn first_clicks() -> Vec<String> {
    (0..5).map(|i| click("/a", W0 + i * 1_000)).collect()
}

/// A record that is not JSON (offset 5), then three clicks on `/docs` in
/// minute 1 (offsets 6 to 8), which close minute 0.
fn bad_then_more() -> Vec<String> {
    let mut lines = vec!["u1|not json".to_owned()];
    lines.extend((0..3).map(|i| click("/docs", W0 + 60_000 + i * 1_000)));
    lines
}

/// Writes guest `guest`'s component into `dir`; returns its path.
fn write_module(dir: &Path, guest: &str) -> String {
    let path = dir.join(format!("{guest}.wasm"));
    std::fs::write(&path, quiver_tests::guest_component(guest)).expect("write module");
    path.to_str().expect("UTF-8 path").to_owned()
}

/// Polls `quiver transform status NAME` until `done` holds for its output.
fn status_until(fixture: &CliFixture, name: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = fixture.run(&["transform", "status", name]).ok();
        if done(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "never reached: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether a status output shows no lag on any partition.
fn caught_up(status: &str) -> bool {
    let Some((_, rows)) = status.split_once("partition\tposition\thigh_watermark\tlag\n") else {
        return false;
    };
    let lags: Vec<&str> = rows.lines().filter_map(|r| r.rsplit('\t').next()).collect();
    !lags.is_empty() && lags.iter().all(|lag| *lag == "0")
}

/// A broker with module `agg` (click-aggregate) and transform `NAME` on
/// topic `NAME-in` under `stop`, failing on malformed input, failed on
/// offset 5 after the first five clicks were counted.
fn failed_transform(fixture: &CliFixture, dir: &Path, name: &str) {
    let topic = format!("{name}-in");
    fixture.create_topic(&topic, 1);
    let module = write_module(dir, "click_aggregate");
    if !fixture.run(&["module", "list"]).ok().contains("agg\t") {
        fixture.run(&["module", "upload", "agg", &module]).ok();
    }
    let deployed = fixture
        .run(&[
            "transform",
            "deploy",
            name,
            "--module",
            "agg",
            "--input",
            &topic,
            "--param",
            "on_malformed=fail",
        ])
        .ok();
    assert!(deployed.starts_with("deployed transform"), "{deployed}");
    fixture.produce(&[&topic, "--key-separator", "|"], &first_clicks());
    status_until(fixture, name, caught_up);
    fixture.produce(&[&topic, "--key-separator", "|"], &bad_then_more());
    let failed = status_until(fixture, name, |s| s.contains("state:     failed"));
    assert!(failed.contains(&format!("{topic}/0@5")), "{failed}");
    assert!(failed.contains("on-error:  stop\n"), "{failed}");
}

#[test]
fn alter_and_seek_recover_a_failed_transform() {
    let fixture = CliFixture::start();
    let dir = tempfile::tempdir().expect("temp dir");

    // alter: kept, said to wait for resume, then the bad record is skipped.
    failed_transform(&fixture, dir.path(), "altered");
    let altered = fixture
        .run(&["transform", "alter", "altered", "--on-error", "skip"])
        .ok();
    assert_eq!(
        altered,
        "transform altered: on-error is now skip; it stays failed until `quiver transform resume altered`\n"
    );
    let status = fixture.run(&["transform", "status", "altered"]).ok();
    assert!(status.contains("on-error:  skip\n"), "{status}");
    assert!(status.contains("state:     failed"), "{status}");
    fixture.run(&["transform", "resume", "altered"]).ok();
    let status = status_until(&fixture, "altered", caught_up);
    assert!(
        status.contains("records:   in 8 out 1 errors 2"),
        "{status}"
    );

    // seek past the bad record, then resume.
    failed_transform(&fixture, dir.path(), "sought");
    let sought = fixture
        .run(&[
            "transform",
            "seek",
            "sought",
            "--partition",
            "0",
            "--offset",
            "6",
        ])
        .ok();
    assert_eq!(
        sought,
        "transform sought: partition 0 moved from offset 5 to 6; it stays failed until `quiver transform resume sought`\n"
    );
    fixture.run(&["transform", "resume", "sought"]).ok();
    let status = status_until(&fixture, "sought", caught_up);
    assert!(
        status.contains("records:   in 8 out 1 errors 1"),
        "{status}"
    );
    assert!(status.contains("state:     running"), "{status}");

    // A seek on a running transform says nothing more.
    let again = fixture
        .run(&[
            "transform",
            "seek",
            "sought",
            "--partition",
            "0",
            "--offset",
            "9",
        ])
        .ok();
    assert_eq!(
        again,
        "transform sought: partition 0 moved from offset 9 to 9\n"
    );

    refusals_dead_letters_and_log_times(&fixture);
}

/// On transform `sought` (caught up at offset 9 of `sought-in`): refused
/// seeks, an alter to dead-letter, and the log's times and notes.
fn refusals_dead_letters_and_log_times(fixture: &CliFixture) {
    // Refused seeks name the valid range, in one line.
    let partition = fixture
        .run(&[
            "transform",
            "seek",
            "sought",
            "--partition",
            "3",
            "--offset",
            "0",
        ])
        .fails();
    assert!(
        partition.contains(
            "transform \"sought\" reads topic \"sought-in\", which has partitions 0 to 0; there is no partition 3"
        ),
        "{partition}"
    );
    let offset = fixture
        .run(&[
            "transform",
            "seek",
            "sought",
            "--partition",
            "0",
            "--offset",
            "10",
        ])
        .fails();
    assert!(
        offset.contains(
            "offset 10 is outside sought-in/0: seek to an offset from 0 (log start) to 9 (high watermark)"
        ),
        "{offset}"
    );

    // alter to dead-letter creates NAME-dlq and says so.
    let dead = fixture
        .run(&["transform", "alter", "sought", "--on-error", "dead-letter"])
        .ok();
    assert_eq!(
        dead,
        "transform sought: on-error is now dead-letter (failed records go to sought-dlq)\n"
    );
    let status = fixture.run(&["transform", "status", "sought"]).ok();
    assert!(status.contains("on-error:  dead-letter\n"), "{status}");
    let topics = fixture.run(&["topic", "list"]).ok();
    assert!(topics.contains("sought-dlq"), "{topics}");

    // Log lines carry RFC 3339 times in UTC with milliseconds.
    let logs = fixture.run(&["transform", "logs", "sought"]).ok();
    for line in logs.lines() {
        let (at, _) = line.split_once(' ').expect("a time first");
        let bytes = at.as_bytes();
        assert!(
            at.len() == 24
                && bytes[4] == b'-'
                && bytes[10] == b'T'
                && bytes[19] == b'.'
                && at.ends_with('Z'),
            "{line}"
        );
    }
    assert!(
        logs.contains(" INFO [host] partition 0 moved from offset 5 to 6\n"),
        "{logs}"
    );
    assert!(
        logs.contains(" INFO [host] on-error changed from stop to dead-letter\n"),
        "{logs}"
    );
}

#[test]
fn a_restart_keeps_a_failed_transform_failed_and_says_so() {
    let mut fixture = CliFixture::start();
    let dir = tempfile::tempdir().expect("temp dir");
    failed_transform(&fixture, dir.path(), "broken");
    fixture.runtime.block_on(fixture.broker.restart());
    let status = fixture.run(&["transform", "status", "broken"]).ok();
    assert!(status.contains("state:     failed: "), "{status}");
    assert!(
        status.contains("records:   in 5 out 0 errors 1"),
        "{status}"
    );
    let logs = fixture.run(&["transform", "logs", "broken"]).ok();
    assert!(
        logs.contains(" WARN [host] still failed after start: "),
        "{logs}"
    );
    assert!(
        logs.contains("; `quiver transform resume broken` retries"),
        "{logs}"
    );
    assert!(!logs.contains("resumed after start"), "{logs}");
}

#[test]
fn state_keys_read_as_text_and_a_group_is_found_by_its_value() {
    let fixture = CliFixture::start();
    let dir = tempfile::tempdir().expect("temp dir");
    fixture.create_topic("click", 1);
    let module = write_module(dir.path(), "click_aggregate");
    fixture.run(&["module", "upload", "agg", &module]).ok();
    fixture
        .run(&[
            "transform",
            "deploy",
            "page-counts",
            "--module",
            "agg",
            "--input",
            "click",
        ])
        .ok();
    let mut lines = first_clicks();
    lines.extend(bad_then_more());
    fixture.produce(&["click", "--key-separator", "|"], &lines);
    status_until(&fixture, "page-counts", caught_up);

    // The malformed record was skipped, with the module's log line.
    let logs = fixture.run(&["transform", "logs", "page-counts"]).ok();
    assert!(
        logs.contains(" WARN [guest] skipped 1 malformed record: click/0@5: "),
        "{logs}"
    );
    let all = fixture.run(&["transform", "state", "page-counts"]).ok();
    assert_eq!(
        all,
        format!(
            "high-ts/0\t{}\npartition/0/window/{}//docs\t3\n",
            W0 + 62_000,
            W0 + 60_000
        )
    );
    let docs = fixture
        .run(&["transform", "state", "page-counts", "/docs"])
        .ok();
    assert_eq!(
        docs,
        format!("partition/0/window/{}//docs\t3\n", W0 + 60_000)
    );
    let exact = fixture
        .run(&["transform", "state", "page-counts", "high-ts/0"])
        .ok();
    assert_eq!(exact, format!("{}\n", W0 + 62_000));
    let prefix = fixture
        .run(&[
            "transform",
            "state",
            "page-counts",
            "--prefix",
            "partition/0/window/",
        ])
        .ok();
    assert_eq!(prefix, docs);
    let missing = fixture
        .run(&["transform", "state", "page-counts", "/nowhere"])
        .fails();
    assert!(
        missing.contains("transform page-counts has no state under \"/nowhere\""),
        "{missing}"
    );

    // Binary keys print escaped.
    let totals = write_module(dir.path(), "running_total");
    fixture.run(&["module", "upload", "totals", &totals]).ok();
    fixture.create_topic("raw", 1);
    fixture
        .run(&[
            "transform",
            "deploy",
            "per-key",
            "--module",
            "totals",
            "--input",
            "raw",
        ])
        .ok();
    fixture.runtime.block_on(async {
        let producer = Producer::new(fixture.broker.client().await, ProducerConfig::default());
        let record = ProducerRecord::new("raw", "x").key(&b"k\x00\xff"[..]);
        let ack = producer.enqueue(record).await.expect("enqueue");
        producer.flush().await.expect("flush");
        ack.await.expect("acknowledged");
    });
    status_until(&fixture, "per-key", caught_up);
    let raw = fixture.run(&["transform", "state", "per-key"]).ok();
    assert_eq!(raw, "k\\x00\\xff\t1\n");
}

#[test]
fn module_versions_are_announced_and_listed_and_bad_files_refused() {
    let fixture = CliFixture::start();
    let dir = tempfile::tempdir().expect("temp dir");
    fixture.create_topic("actions", 1);
    let filter = write_module(dir.path(), "filter");
    let first = fixture.run(&["module", "upload", "filter", &filter]).ok();
    assert!(
        first.starts_with("uploaded module filter version 1 ("),
        "{first}"
    );
    assert!(!first.contains("keep their version"), "{first}");
    fixture
        .run(&[
            "transform",
            "deploy",
            "clicks",
            "--module",
            "filter",
            "--input",
            "actions",
            "--param",
            "field=action",
            "--param",
            "equals=click",
        ])
        .ok();
    let second = fixture.run(&["module", "upload", "filter", &filter]).ok();
    assert!(
        second.starts_with("uploaded module filter version 2 ("),
        "{second}"
    );
    assert!(
        second
            .ends_with("; transforms keep their version until upgraded (clicks runs version 1)\n"),
        "{second}"
    );
    let list = fixture.run(&["module", "list"]).ok();
    let rows: Vec<&str> = list.lines().collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(rows[0].starts_with("filter\tversion=1\tbytes="), "{list}");
    assert!(rows[0].ends_with("\ttransforms=clicks"), "{list}");
    assert!(
        rows[1].starts_with("filter\tversion=2 (latest)\tbytes="),
        "{list}"
    );
    assert!(rows[1].contains("\ttransforms=-\timports="), "{list}");
}

#[test]
fn files_that_are_not_components_are_refused_in_one_line() {
    let fixture = CliFixture::start();
    let dir = tempfile::tempdir().expect("temp dir");
    // Not WebAssembly, a core module, two forbidden imports: one line each.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello\n").expect("write");
    let refused = fixture
        .run(&["module", "upload", "notes", text.to_str().expect("UTF-8")])
        .fails();
    assert!(
        refused.contains("not a WebAssembly file (it does not start with the \\0asm header)"),
        "{refused}"
    );
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let refused = fixture
        .run(&["module", "upload", "core", core.to_str().expect("UTF-8")])
        .fails();
    assert!(
        refused.contains(
            "this is a core WebAssembly module, not a component; build with --target wasm32-wasip2 to get a component"
        ),
        "{refused}"
    );
    let truncated = dir.path().join("truncated.wasm");
    let mut bytes = quiver_tests::guest_component("filter");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&truncated, bytes).expect("write");
    let refused = fixture
        .run(&[
            "module",
            "upload",
            "half",
            truncated.to_str().expect("UTF-8"),
        ])
        .fails();
    assert!(
        refused.contains("not a valid WebAssembly component: "),
        "{refused}"
    );
    let forbidden = dir.path().join("forbidden.wasm");
    let bytes = wat::parse_str(
        r#"(component
            (import "wasi:sockets/tcp@0.2.0" (instance))
            (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#,
    )
    .expect("component text");
    std::fs::write(&forbidden, bytes).expect("write");
    let refused = fixture
        .run(&[
            "module",
            "upload",
            "net",
            forbidden.to_str().expect("UTF-8"),
        ])
        .fails();
    assert!(
        refused.contains(
            r#"module imports "wasi:http/outgoing-handler@0.2.0", "wasi:sockets/tcp@0.2.0", which transforms may not use"#
        ),
        "{refused}"
    );
}
