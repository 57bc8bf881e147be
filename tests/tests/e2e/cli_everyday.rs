//! Everyday use of the `quiver` CLI through the real binary, and the words
//! of each message a user meets when something is off: a missing topic
//! (with "did you mean"), offsets past a partition's end, lines that are not
//! records, binary values, kcat-style `--from` and `--format`, headers and
//! timestamps, a topic a transform uses, `topic describe`'s sizes and
//! times, and `bench` reporting and cleaning up after itself.

use quiver_tests::cli::{CliFixture, acknowledged};

/// Consumes `topic` with `--format FORMAT` and the extra args.
fn consume(cli: &CliFixture, topic: &str, format: &str, args: &[&str]) -> String {
    let mut all = vec!["consume", topic, "--format", format];
    all.extend_from_slice(args);
    cli.run(&all).ok()
}

#[test]
fn a_missing_topic_names_the_closest_one_and_the_create_command() {
    let cli = CliFixture::start();
    cli.create_topic("click", 1);
    let hint = "error: topic \"clik\" does not exist [UnknownTopic (3)]; did you mean `click`? \
                To create it: quiver topic create clik --partitions N";
    let produce = cli
        .run_with_input(&["produce", "clik"], Some("x\n"))
        .fails();
    assert_eq!(produce, hint);
    assert_eq!(cli.run(&["consume", "clik"]).fails(), hint);
    // A group member of a missing topic neither exits silently nor waits.
    assert_eq!(
        cli.run(&["consume", "clik", "--group", "g", "--follow"])
            .fails(),
        hint
    );
    assert_eq!(
        cli.run(&["consume", "payments"]).fails(),
        "error: topic \"payments\" does not exist [UnknownTopic (3)]. \
         To create it: quiver topic create payments --partitions N"
    );
}

#[test]
fn offsets_past_an_end_name_the_partition() {
    let cli = CliFixture::start();
    cli.create_topic("t", 2);
    let lines: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    cli.produce(&["t", "--partition", "0"], &lines);
    cli.produce(&["t", "--partition", "1"], &["b0".to_owned()]);
    // Applied where it exists; the rest is reported, as kcat does.
    let run = cli.run(&["consume", "t", "--from", "3", "--format", "%p %o %v"]);
    assert!(
        run.stderr
            .contains("note: partition 1 of t ends at offset 1: nothing from 3 there"),
        "{}",
        run.stderr
    );
    assert_eq!(run.ok(), "0 3 a3\n0 4 a4\n");
    assert_eq!(
        cli.run(&["consume", "t", "--partition", "1", "--from", "3"])
            .fails(),
        "error: partition 1 of t holds offsets 0..1; --from 3 is past its end"
    );
    // -N: N before each partition's end, clamped to its start.
    let mut last_two: Vec<String> = consume(&cli, "t", "%p %o", &["--from", "-2"])
        .lines()
        .map(str::to_owned)
        .collect();
    last_two.sort();
    assert_eq!(last_two, ["0 3", "0 4", "1 0"]);
}

#[test]
fn input_lines_follow_documented_rules() {
    let cli = CliFixture::start();
    cli.create_topic("t", 1);
    assert_eq!(
        cli.run_with_input(&["produce", "t"], Some("one\n\ntwo\n\n"))
            .ok(),
        "2 records acknowledged (2 empty lines skipped)\n"
    );
    assert_eq!(
        cli.run_with_input(&["produce", "t"], Some("three\n")).ok(),
        acknowledged(1)
    );
    let missing = cli
        .run_with_input(
            &["produce", "t", "--key-separator", "|"],
            Some("k1|v1\nk2|v2\nno separator\nk4|v4\n"),
        )
        .fails();
    assert_eq!(
        missing,
        "error: line 3: no key separator \"|\" (every line must be KEY|VALUE; \
         --key gives all lines one key); the 2 records before it were acknowledged"
    );
    assert_eq!(
        consume(&cli, "t", "%k=%v", &[]),
        "=one\n=two\n=three\nk1=v1\nk2=v2\n"
    );
}

#[test]
fn binary_values_go_in_and_out_as_hex_or_base64() {
    let cli = CliFixture::start();
    cli.create_topic("bin", 1);
    // Raw bytes that are not UTF-8 are a value as they are.
    let raw =
        quiver_tests::cli::run_quiver(cli.command(&["produce", "bin"]), Some(b"\xff\xfe\x00z\n"));
    assert_eq!(raw.ok(), acknowledged(1));
    assert_eq!(
        cli.run_with_input(
            &["produce", "bin", "--value-format", "hex"],
            Some("00ff0a\n")
        )
        .ok(),
        acknowledged(1)
    );
    assert_eq!(
        cli.run_with_input(
            &["produce", "bin", "--value-format", "base64"],
            Some("AAEC\n")
        )
        .ok(),
        acknowledged(1)
    );
    assert_eq!(
        consume(&cli, "bin", "%v", &["--value-format", "hex"]),
        "fffe007a\n00ff0a\n000102\n"
    );
    assert_eq!(
        consume(
            &cli,
            "bin",
            "%o %v",
            &["--value-format", "base64", "--from", "1"]
        ),
        "1 AP8K\n2 AAEC\n"
    );
    assert_eq!(
        cli.run_with_input(
            &["produce", "bin", "--value-format", "hex"],
            Some("00\nzz\n")
        )
        .fails(),
        "error: line 2: not hexadecimal: Invalid character 'z' at position 0; \
         the 1 record before it was acknowledged"
    );
}

#[test]
fn kcat_habits_headers_timestamps_and_json() {
    let cli = CliFixture::start();
    cli.create_topic("t", 1);
    let out = cli
        .run_with_input(
            &[
                "produce",
                "t",
                "--header",
                "source=web",
                "--header",
                "v=2",
                "--timestamp",
                "1764064800000",
            ],
            Some("keyless\n"),
        )
        .ok();
    assert_eq!(out, acknowledged(1));
    cli.run_with_input(
        &[
            "produce",
            "t",
            "--key",
            "u1",
            "--timestamp",
            "1764064900000",
        ],
        Some("keyed\n"),
    )
    .ok();
    assert_eq!(
        consume(&cli, "t", "%o\\t%T\\t%h\\t%v", &[]),
        "0\t1764064800000\tsource=web,v=2\tkeyless\n1\t1764064900000\t\tkeyed\n"
    );
    assert_eq!(
        consume(&cli, "t", "%v", &["--from", "@1764064850000"]),
        "keyed\n"
    );
    let json: Vec<serde_json::Value> = consume(&cli, "t", "json", &[])
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(json.len(), 2);
    assert_eq!(json[0]["key"], serde_json::Value::Null);
    assert_eq!(json[0]["headers"][0]["key"], "source");
    assert_eq!(json[1]["key"], "u1");
    assert_eq!(json[1]["value"], "keyed");
    assert_eq!(json[1]["timestamp"], 1_764_064_900_000_i64);
    assert_eq!(
        cli.run(&["consume", "t", "--format", "%v\\q"]).fails(),
        "error: unknown escape \\q in --format"
    );
}

#[test]
fn describe_shows_sizes_times_and_the_full_configuration() {
    let cli = CliFixture::start();
    cli.run(&[
        "topic",
        "create",
        "t",
        "--partitions",
        "2",
        "--retention-ms",
        "60000",
    ])
    .ok();
    cli.run_with_input(
        &[
            "produce",
            "t",
            "--partition",
            "0",
            "--timestamp",
            "1764064800000",
        ],
        Some("hello\n"),
    )
    .ok();
    let out = cli.run(&["topic", "describe", "t"]).ok();
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(
            "topic t\tpartitions=2\tretention.ms=60000\tretention.bytes=none (broker default)\
             \ttimestamp.type=create-time\tcompression.type=producer"
        )
    );
    assert_eq!(
        lines.next(),
        Some(
            "partition\tlog_start_offset\thigh_watermark\tsize_bytes\tfirst_timestamp\tlast_timestamp"
        )
    );
    let first: Vec<&str> = lines.next().expect("partition 0").split('\t').collect();
    assert_eq!(first[..3], ["0", "0", "1"]);
    assert!(
        first[3].parse::<u64>().is_ok_and(|size| size > 61),
        "{first:?}"
    );
    assert_eq!(
        first[4..],
        ["2025-11-25T10:00:00.000Z", "2025-11-25T10:00:00.000Z"]
    );
    assert_eq!(lines.next(), Some("1\t0\t0\t0\t-\t-"));
}

#[test]
fn topic_delete_is_refused_while_a_transform_uses_it() {
    let cli = CliFixture::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let module = dir.path().join("filter.wasm");
    std::fs::write(&module, quiver_tests::guest_component("filter")).expect("write module");
    cli.create_topic("click", 1);
    cli.run(&[
        "module",
        "upload",
        "filter",
        module.to_str().expect("UTF-8 path"),
    ])
    .ok();
    cli.run(&[
        "transform",
        "deploy",
        "only",
        "--module",
        "filter",
        "--input",
        "click",
        "--param",
        "field=action",
        "--param",
        "equals=click",
    ])
    .ok();
    let reads = "error: broker: topic \"click\" is read by transform \"only\"; delete the \
                 transform first, or delete the topic with --force (the transform then fails) \
                 [TopicInUse (1013)]";
    assert_eq!(cli.run(&["topic", "delete", "click"]).fails(), reads);
    assert!(
        cli.run(&["topic", "delete", "only-out"])
            .fails()
            .contains("is written by transform \"only\""),
    );
    assert_eq!(
        cli.run(&["topic", "delete", "click", "--force"]).ok(),
        "deleted topic click\n"
    );
}

#[test]
fn bench_removes_what_it_created_unless_kept() {
    let cli = CliFixture::start();
    let bench = |args: &[&str]| {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        cli.run(&all).ok()
    };
    let disk = tempfile::tempdir().expect("temp dir");
    let produce = bench(&[
        "produce",
        "--records",
        "2000",
        "--partitions",
        "2",
        "--producers",
        "1",
        "--disk-reference",
        disk.path().to_str().expect("UTF-8 path"),
        "--disk-reference-mb",
        "2",
    ]);
    // The reference wrote, synced and removed its file.
    assert!(
        produce.contains("  disk reference (1 MiB writes, fdatasync, as dd conv=fdatasync): "),
        "{produce}"
    );
    assert_eq!(std::fs::read_dir(disk.path()).expect("read dir").count(), 0);
    assert!(
        produce.ends_with(
            "wrote 2000 records (0.2 MB) on topic bench; deleted it (--keep keeps it)\n"
        ),
        "{produce}"
    );
    assert_eq!(cli.run(&["topic", "list"]).ok(), "");
    let consume = bench(&["consume", "--records", "1000", "--keep"]);
    assert!(
        consume.starts_with("filled topic bench with 1000 records of 100 B first (not timed)\n"),
        "{consume}"
    );
    assert!(
        consume.ends_with("read 1000 records (0.1 MB) on topic bench; kept it\n"),
        "{consume}"
    );
    assert_eq!(cli.run(&["topic", "list"]).ok(), "bench\tpartitions=4\n");
}

#[test]
fn bench_transform_reports_records_out_and_the_broker_cpu_and_cleans_up() {
    let cli = CliFixture::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let module = dir.path().join("filter.wasm");
    std::fs::write(&module, quiver_tests::guest_component("filter")).expect("write module");
    // The broker runs in this test process.
    let pid = std::process::id().to_string();
    let out = cli
        .run(&[
            "bench",
            "transform",
            "--module-file",
            module.to_str().expect("UTF-8 path"),
            "--param",
            "field=action",
            "--param",
            "equals=click",
            "--records",
            "2000",
            "--partitions",
            "2",
            "--broker-pid",
            &pid,
            "--json",
        ])
        .ok();
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(summary["bench"], "transform", "{out}");
    assert_eq!(summary["records"], 2000, "{out}");
    // Every other event is a click.
    assert_eq!(summary["records_out"], 1000, "{out}");
    assert!(
        summary["records_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{out}"
    );
    assert!(
        summary["broker_cpu_us_per_record"]
            .as_f64()
            .is_some_and(|c| c >= 0.0),
        "{out}"
    );
    assert_eq!(cli.run(&["topic", "list"]).ok(), "");
    assert_eq!(cli.run(&["transform", "list"]).ok(), "");
}

#[test]
fn bench_connections_holds_them_and_reports_the_broker_memory() {
    let cli = CliFixture::start();
    // The broker runs in this test process.
    let pid = std::process::id().to_string();
    let out = cli
        .run(&[
            "bench",
            "connections",
            "--count",
            "5",
            "--hold-secs",
            "0",
            "--broker-pid",
            &pid,
        ])
        .ok();
    assert!(out.starts_with("opened 5 of 5 connections in "), "{out}");
    assert!(out.contains("; 5 still served after 0 s\n"), "{out}");
    assert!(out.contains("broker resident memory: "), "{out}");
    assert!(out.ends_with(" KiB per connection\n"), "{out}");
}

/// `quiver consume | head` stops quietly when its reader goes, in both
/// modes, as Unix tools do; in a group it commits what it wrote.
#[test]
fn consume_stops_quietly_when_its_reader_goes() {
    use std::io::{BufRead as _, BufReader};
    use std::process::Stdio;

    let cli = CliFixture::start();
    cli.create_topic("many", 1);
    let lines: Vec<String> = (0..50_000).map(|i| format!("record {i}")).collect();
    cli.produce(&["many"], &lines);
    for args in [
        &["consume", "many"][..],
        &["consume", "many", "--group", "g"],
    ] {
        let mut child = cli
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quiver consume");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("a line");
        assert_eq!(first, "record 0\n");
        drop(stdout);
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    let described = cli.run(&["group", "describe", "g"]).ok();
    let committed: u64 = described
        .lines()
        .find(|l| l.starts_with("many\t"))
        .and_then(|l| l.split('\t').nth(3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a committed offset in {described}"));
    assert!(
        (1..50_000).contains(&committed),
        "committed {committed}: what was written, not all"
    );
}
