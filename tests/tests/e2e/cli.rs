//! The `quiver` command-line client against a real broker: `topic create`,
//! `list` and `describe`; `produce` from standard input (keys split at a
//! separator, a fixed key, a fixed partition); `consume` with a format,
//! `--partition`, `--from` and `--count`, printing every record once and
//! stopping by itself at the end; `module` and `transform` (deploy, status,
//! list, logs, pause, resume, state, upgrade, delete); and failures as one
//! `error: ` line with exit code 1.
//!
//! Each test is a plain `#[test]`: the broker runs on a Tokio runtime owned
//! by the test, and the `quiver` child processes are waited for on the test
//! thread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use quiver_client::partitioner::partition_for_key;
use quiver_tests::cli::CliFixture;

/// The shared CLI fixture, with this file's parsing helpers on top.
struct Fixture(CliFixture);

impl std::ops::Deref for Fixture {
    type Target = CliFixture;
    fn deref(&self) -> &CliFixture {
        &self.0
    }
}

impl Fixture {
    fn start() -> Self {
        Self(CliFixture::start())
    }

    /// Per-partition high watermarks, from `quiver topic describe`.
    fn watermarks(&self, topic: &str) -> Vec<u64> {
        let out = self.run(&["topic", "describe", topic]).ok();
        let mut lines = out.lines();
        let first = lines.next().expect("describe prints a topic line");
        assert!(first.starts_with(&format!("topic {topic}\t")), "{out}");
        assert_eq!(
            lines.next(),
            Some(
                "partition\tlog_start_offset\thigh_watermark\tsize_bytes\tfirst_timestamp\tlast_timestamp"
            ),
            "{out}"
        );
        let mut watermarks = Vec::new();
        for (i, line) in lines.enumerate() {
            let fields: Vec<u64> = line
                .split('\t')
                .take(4)
                .map(|f| f.parse().expect("a number"))
                .collect();
            assert_eq!(fields.len(), 4, "{line:?}");
            assert_eq!(fields[0], i as u64, "partitions listed in order: {out}");
            assert_eq!(fields[1], 0, "log start offset: {out}");
            watermarks.push(fields[2]);
        }
        assert!(
            first.contains(&format!("\tpartitions={}\t", watermarks.len())),
            "{out}"
        );
        watermarks
    }

    /// `quiver consume TOPIC ARGS --format '%p %o %k %v'`, parsed.
    fn consume(&self, topic: &str, args: &[&str]) -> Vec<Line> {
        let mut all = vec!["consume", topic, "--format", "%p %o %k %v"];
        all.extend_from_slice(args);
        self.run(&all).ok().lines().map(Line::parse).collect()
    }
}

/// One line of `consume --format '%p %o %k %v'`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    partition: u32,
    offset: u64,
    key: String,
    value: String,
}

impl Line {
    fn parse(line: &str) -> Self {
        let mut fields = line.splitn(4, ' ');
        let mut next = || {
            fields
                .next()
                .unwrap_or_else(|| panic!("short line {line:?}"))
        };
        Self {
            partition: next().parse().expect("partition number"),
            offset: next().parse().expect("offset"),
            key: next().to_owned(),
            value: next().to_owned(),
        }
    }

    fn new(partition: u32, offset: u64, key: &str, value: &str) -> Self {
        Self {
            partition,
            offset,
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Groups lines by partition, keeping their printed order.
fn by_partition(lines: &[Line]) -> BTreeMap<u32, Vec<&Line>> {
    let mut map: BTreeMap<u32, Vec<&Line>> = BTreeMap::new();
    for line in lines {
        map.entry(line.partition).or_default().push(line);
    }
    map
}

#[test]
fn topic_produce_describe_consume_round_trip() {
    let cli = Fixture::start();
    cli.create_topic("events", 3);
    let list = cli.run(&["topic", "list"]).ok();
    assert!(
        list.lines()
            .any(|l| l.starts_with("events\t") && l.contains("partitions=3")),
        "topic list: {list:?}"
    );
    assert_eq!(cli.watermarks("events"), vec![0, 0, 0]);

    // 90 keyed lines over 7 keys, plus one with two separators (split at
    // the first). A line without one is an error (cli_everyday.rs).
    let mut lines: Vec<String> = (0..90).map(|i| format!("user-{}:v{i}", i % 7)).collect();
    lines.push("k:a:b".into());
    cli.produce(&["events", "--key-separator", ":"], &lines);

    let watermarks = cli.watermarks("events");
    assert_eq!(watermarks.iter().sum::<u64>(), 91, "{watermarks:?}");

    // Without --follow, consume prints everything once and stops by itself.
    let consumed = cli.consume("events", &[]);
    assert_eq!(consumed.len(), 91);
    let mut values = HashSet::new();
    for line in &consumed {
        assert!(values.insert(line.value.as_str()), "{line:?} printed twice");
    }
    let mut expected: HashSet<String> = (0..90).map(|i| format!("v{i}")).collect();
    expected.insert("a:b".into());
    let missing: Vec<&String> = expected
        .iter()
        .filter(|v| !values.contains(v.as_str()))
        .collect();
    let unexpected: Vec<&&str> = values.iter().filter(|v| !expected.contains(**v)).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing {missing:?}, unexpected {unexpected:?}"
    );

    // Offsets in each partition are 0, 1, 2, ... up to the watermark.
    let partitions = by_partition(&consumed);
    for (partition, &hw) in watermarks.iter().enumerate() {
        let offsets: Vec<u64> = partitions
            .get(&(partition as u32))
            .map(|lines| lines.iter().map(|l| l.offset).collect())
            .unwrap_or_default();
        assert_eq!(
            offsets,
            (0..hw).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }

    // Keys: split at the first separator, one partition per key (Kafka's
    // murmur2 choice), and per key the lines in input order.
    let mut per_key: HashMap<&str, (u32, u32)> = HashMap::new();
    for line in partitions.values().flatten() {
        match line.value.as_str() {
            "a:b" => {
                assert_eq!(line.key, "k");
                assert_eq!(line.partition, partition_for_key(b"k", 3));
            }
            value => {
                let seq: u32 = value.strip_prefix('v').unwrap().parse().unwrap();
                assert_eq!(line.key, format!("user-{}", seq % 7), "{line:?}");
                assert_eq!(
                    line.partition,
                    partition_for_key(line.key.as_bytes(), 3),
                    "{line:?}"
                );
                if let Some(&(partition, previous)) = per_key.get(line.key.as_str()) {
                    assert_eq!(partition, line.partition, "key {} moved", line.key);
                    assert!(seq > previous, "key {}: v{seq} after v{previous}", line.key);
                }
                per_key.insert(&line.key, (line.partition, seq));
            }
        }
    }
    assert_eq!(per_key.len(), 7);

    // A second `produce` continues the offsets; consume sees both runs.
    cli.produce(
        &["events", "--key", "user-3"],
        &["late-1".into(), "late-2".into()],
    );
    let p = partition_for_key(b"user-3", 3);
    let after = cli.watermarks("events");
    for (partition, (&before, &now)) in watermarks.iter().zip(&after).enumerate() {
        let added = if partition as u32 == p { 2 } else { 0 };
        assert_eq!(now, before + added, "partition {partition}");
    }
    let tail = cli.consume(
        "events",
        &[
            "--partition",
            &p.to_string(),
            "--from",
            &watermarks[p as usize].to_string(),
        ],
    );
    let hw = watermarks[p as usize];
    assert_eq!(
        tail,
        vec![
            Line::new(p, hw, "user-3", "late-1"),
            Line::new(p, hw + 1, "user-3", "late-2"),
        ]
    );
}

#[test]
fn produce_to_a_partition_and_consume_a_selection() {
    let cli = Fixture::start();
    cli.create_topic("sel", 3);
    let ones: Vec<String> = (0..10).map(|i| format!("one-{i}")).collect();
    cli.produce(&["sel", "--partition", "1"], &ones);
    let twos: Vec<String> = (0..4).map(|i| format!("two-{i}")).collect();
    // Keys do not override an explicit partition.
    let keyed: Vec<String> = twos.iter().map(|v| format!("key:{v}")).collect();
    cli.produce(&["sel", "--partition", "2", "--key-separator", ":"], &keyed);
    assert_eq!(cli.watermarks("sel"), vec![0, 10, 4]);

    let expected_one = |from: u64, to: u64| -> Vec<Line> {
        (from..to)
            .map(|i| Line::new(1, i, "", &format!("one-{i}")))
            .collect()
    };
    assert_eq!(
        cli.consume("sel", &["--partition", "1"]),
        expected_one(0, 10)
    );
    assert_eq!(
        cli.consume("sel", &["--partition", "1", "--from", "6"]),
        expected_one(6, 10)
    );
    assert_eq!(
        cli.consume("sel", &["--partition", "1", "--count", "3"]),
        expected_one(0, 3)
    );
    assert_eq!(
        cli.consume("sel", &["--partition", "1", "--from", "4", "--count", "2"]),
        expected_one(4, 6)
    );
    // --count stops even a follower.
    assert_eq!(
        cli.consume("sel", &["--partition", "1", "--follow", "--count", "4"]),
        expected_one(0, 4)
    );
    assert_eq!(
        cli.consume("sel", &["--partition", "2"]),
        (0..4)
            .map(|i| Line::new(2, i, "key", &format!("two-{i}")))
            .collect::<Vec<_>>()
    );
    // An empty partition, the end of a partition, and "latest": nothing,
    // and the command still ends by itself.
    assert_eq!(cli.consume("sel", &["--partition", "0"]), vec![]);
    assert_eq!(
        cli.consume("sel", &["--partition", "1", "--from", "10"]),
        vec![]
    );
    assert_eq!(cli.consume("sel", &["--from", "latest"]), vec![]);

    // Across all partitions: --count takes exactly that many.
    let some = cli.consume("sel", &["--count", "5"]);
    assert_eq!(some.len(), 5);
    let all = cli.consume("sel", &[]);
    assert_eq!(all.len(), 14);
    for line in &some {
        assert!(all.contains(line), "{line:?}");
    }
    // `--format` default is the value alone.
    let values = cli.run(&["consume", "sel", "--partition", "2"]).ok();
    assert_eq!(values, "two-0\ntwo-1\ntwo-2\ntwo-3\n");
}

#[test]
fn failures_are_one_error_line_and_exit_code_1() {
    let cli = Fixture::start();
    cli.create_topic("real", 3);

    let line = cli.run(&["consume", "missing"]).fails();
    assert!(line.contains("UnknownTopic"), "{line}");
    let line = cli
        .run_with_input(&["produce", "missing"], Some("x\n"))
        .fails();
    assert!(line.contains("UnknownTopic"), "{line}");
    let line = cli.run(&["topic", "describe", "missing"]).fails();
    assert!(line.contains("UnknownTopic"), "{line}");

    for bad in ["bad name!", "", "a/b", &"x".repeat(250)] {
        let line = cli.run(&["topic", "create", bad]).fails();
        assert!(line.contains("InvalidTopicName"), "{bad:?}: {line}");
    }
    let line = cli.run(&["topic", "create", "real"]).fails();
    assert!(line.contains("TopicAlreadyExists"), "{line}");
    let line = cli
        .run(&["topic", "create", "none", "--partitions", "0"])
        .fails();
    assert!(line.contains("InvalidPartitions"), "{line}");
    // Only the one good topic exists.
    let list = cli.run(&["topic", "list"]).ok();
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, vec!["real"], "{list}");

    let line = cli.run(&["consume", "real", "--partition", "3"]).fails();
    assert!(line.contains("partition 3"), "{line}");
    let line = cli
        .run_with_input(&["produce", "real", "--partition", "3"], Some("x\n"))
        .fails();
    assert!(line.contains("UnknownPartition"), "{line}");
    assert_eq!(cli.watermarks("real"), vec![0, 0, 0], "nothing was stored");

    // Past the end of a partition is an error, not silence.
    let line = cli
        .run(&["consume", "real", "--partition", "0", "--from", "1"])
        .fails();
    assert!(
        line.contains("holds offsets 0..0; --from 1 is past its end"),
        "{line}"
    );
}

#[test]
fn consume_stops_at_the_end_across_several_fetches() {
    const RECORDS: u64 = 12_000;
    let cli = Fixture::start();
    cli.create_topic("big", 1);
    // About 12 MB: more than one fetch returns for a partition (8 MB).
    let padding = "x".repeat(1_000);
    let lines: Vec<String> = (0..RECORDS).map(|i| format!("{i}-{padding}")).collect();
    cli.produce(&["big"], &lines);
    assert_eq!(cli.watermarks("big"), vec![RECORDS]);
    let consumed = cli.consume("big", &[]);
    assert_eq!(consumed.len() as u64, RECORDS);
    for (i, line) in consumed.iter().enumerate() {
        assert_eq!(line.offset, i as u64);
        assert_eq!(line.value, lines[i], "offset {i}");
    }
}

/// Polls `quiver transform status NAME` until every partition's lag is 0,
/// and returns the last output.
fn caught_up(fixture: &Fixture, name: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = fixture.run(&["transform", "status", name]).ok();
        let table = out
            .split_once("partition\tposition\thigh_watermark\tlag\n")
            .map(|(_, rows)| rows.to_owned())
            .unwrap_or_default();
        let lags: Vec<&str> = table
            .lines()
            .filter_map(|row| row.rsplit('\t').next())
            .collect();
        if !lags.is_empty() && lags.iter().all(|lag| *lag == "0") {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never caught up: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A broker with topic `actions` (30 records keyed `u0`..`u3`, two clicks
/// to one upload) and the modules `filter` and `totals` (running-total);
/// the temporary directory holds the module files.
fn transform_fixture() -> (Fixture, tempfile::TempDir) {
    let fixture = Fixture::start();
    let dir = tempfile::tempdir().expect("temp dir");
    fixture.create_topic("actions", 1);
    let lines: Vec<String> = (0..30)
        .map(|i| {
            let action = if i % 3 == 0 { "upload" } else { "click" };
            format!("u{}|{{\"action\": \"{action}\", \"n\": {i}}}", i % 4)
        })
        .collect();
    fixture.produce(&["actions", "--key-separator", "|"], &lines);
    fixture
        .run(&[
            "module",
            "upload",
            "filter",
            &write_module(dir.path(), "filter"),
        ])
        .ok();
    fixture
        .run(&[
            "module",
            "upload",
            "totals",
            &write_module(dir.path(), "running_total"),
        ])
        .ok();
    (fixture, dir)
}

/// Writes guest `guest`'s component into `dir`; returns its path.
fn write_module(dir: &std::path::Path, guest: &str) -> String {
    let path = dir.join(format!("{guest}.wasm"));
    std::fs::write(&path, quiver_tests::guest_component(guest)).expect("write module");
    path.to_str().expect("UTF-8 path").to_owned()
}

#[test]
fn transform_commands_deploy_inspect_and_operate() {
    let (fixture, _dir) = transform_fixture();
    // A parameter the module does not take fails the deploy, one line, code 1.
    let refused = fixture
        .run(&[
            "transform",
            "deploy",
            "bad",
            "--module",
            "filter",
            "--input",
            "actions",
            "--param",
            "nosuch=1",
        ])
        .fails();
    assert!(refused.contains("ModuleFailed"), "{refused}");
    let deployed = fixture
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
            "--on-error",
            "skip",
        ])
        .ok();
    assert!(
        deployed.starts_with("deployed transform clicks"),
        "{deployed}"
    );
    let status = caught_up(&fixture, "clicks");
    assert!(status.contains("state:     running"), "{status}");
    assert!(
        status.contains("records:   in 30 out 20 errors 0"),
        "{status}"
    );
    assert!(status.contains("on-error:  skip\n"), "{status}");
    let clicks = fixture.consume("clicks-out", &[]);
    assert_eq!(clicks.len(), 20);
    assert!(clicks.iter().all(|l| l.value.contains("\"click\"")));
    let listed = fixture.run(&["transform", "list"]).ok();
    assert!(
        listed.contains("clicks\tmodule=filter@1\tinput=actions"),
        "{listed}"
    );
    let logs = fixture.run(&["transform", "logs", "clicks"]).ok();
    assert!(logs.contains("[host] deployed"), "{logs}");

    fixture.run(&["transform", "pause", "clicks"]).ok();
    let paused = fixture.run(&["transform", "status", "clicks"]).ok();
    assert!(paused.contains("state:     paused"), "{paused}");
    fixture.run(&["transform", "resume", "clicks"]).ok();
    let resumed = fixture.run(&["transform", "status", "clicks"]).ok();
    assert!(resumed.contains("state:     running"), "{resumed}");
}

#[test]
fn transform_commands_read_state_upgrade_and_delete() {
    let (fixture, dir) = transform_fixture();
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
    // running-total counts records per key; `state NAME KEY` prints one.
    fixture
        .run(&[
            "transform",
            "deploy",
            "per-user",
            "--module",
            "totals",
            "--input",
            "actions",
        ])
        .ok();
    caught_up(&fixture, "per-user");
    // u0 wrote records 0, 4, 8, ... 28: 8 of them.
    assert_eq!(
        fixture.run(&["transform", "state", "per-user", "u0"]).ok(),
        "8\n"
    );
    let all = fixture.run(&["transform", "state", "per-user"]).ok();
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(all.contains("u3\t7"), "{all}");
    let missing = fixture
        .run(&["transform", "state", "per-user", "nobody"])
        .fails();
    assert!(missing.contains("no state"), "{missing}");

    // The module is in use; upgrading moves the transform to another one.
    let in_use = fixture.run(&["module", "delete", "filter"]).fails();
    assert!(in_use.contains("ModuleInUse"), "{in_use}");
    fixture
        .run(&[
            "module",
            "upload",
            "filter2",
            &write_module(dir.path(), "filter"),
        ])
        .ok();
    let upgraded = fixture
        .run(&["transform", "upgrade", "clicks", "--module", "filter2"])
        .ok();
    assert!(upgraded.contains("now runs module filter2"), "{upgraded}");
    fixture.run(&["module", "delete", "filter"]).ok();
    fixture.run(&["transform", "delete", "clicks"]).ok();
    let gone = fixture.run(&["transform", "status", "clicks"]).fails();
    assert!(gone.contains("UnknownTransform"), "{gone}");
    fixture.run(&["module", "delete", "filter2"]).ok();
}
