//! The first steps of a new user, as they take them: `quiver serve` with no
//! flags in an empty directory, then client commands from that directory
//! with no `--broker` and no `--ca` (the certificate the broker wrote under
//! `./quiver-data` is found), and a failed start that explains itself once
//! and leaves nothing behind.
//!
//! Every command runs with an empty environment, so no `QUIVER_*`
//! variable of the machine running the tests can stand in for a default.
//! The broker takes the default ports (7400 for QUIC, 7401 for HTTP): this
//! is the only test binary that does.

use std::path::Path;
use std::process::Command;

use quiver_tests::cli::{acknowledged, run_quiver};
use quiver_tests::{BrokerProcess, guest_component, quiver_bin};

/// `quiver ARGS` as typed in `dir`, with an empty environment.
fn quiver_in(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(quiver_bin());
    command.args(args).current_dir(dir).env_clear();
    command
}

#[test]
fn the_default_serve_runs_from_an_empty_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path();
    let broker =
        BrokerProcess::spawn_command(quiver_in(home, &["serve"]), &home.join("quiver-data"));
    assert_eq!(broker.addr().to_string(), "127.0.0.1:7400");
    for made in ["quiver-data/quiver.redb", "quiver-data/tls/cert.pem"] {
        assert!(home.join(made).exists(), "{made} was not created");
    }

    let run = |args: &[&str], input: Option<&str>| {
        run_quiver(quiver_in(home, args), input.map(str::as_bytes))
    };
    assert_eq!(
        run(&["topic", "create", "click", "--partitions", "3"], None).ok(),
        "created topic click with 3 partitions\n"
    );
    assert_eq!(
        run(
            &["produce", "click", "--key-separator", ":"],
            Some("user-1:{\"page\":\"/home\"}\n")
        )
        .ok(),
        acknowledged(1)
    );
    assert_eq!(
        run(&["consume", "click", "--format", "%k %v"], None).ok(),
        "user-1 {\"page\":\"/home\"}\n"
    );
    // An upload compiles the module into the cache under the relative data
    // directory: what failed on the first run before.
    std::fs::write(home.join("filter.wasm"), guest_component("filter")).expect("write module");
    let uploaded = run(&["module", "upload", "filter", "filter.wasm"], None).ok();
    assert!(
        uploaded.starts_with("uploaded module filter version 1"),
        "{uploaded}"
    );
    assert!(
        broker.terminate(),
        "quiver serve did not exit cleanly on SIGTERM"
    );
}

#[test]
fn a_failed_start_says_why_once_and_leaves_no_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 192.0.2.1 (TEST-NET-1) is no address of this machine: binding fails
    // after the data directory, certificate and database were made.
    let run = run_quiver(
        quiver_in(
            dir.path(),
            &["serve", "--listen", "192.0.2.1:7400", "--http", "off"],
        ),
        None,
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    // The broker's log lines come first; the error is the last line.
    let error = run.stderr.lines().last().unwrap_or_default().to_owned();
    assert!(
        error.starts_with("error: cannot start the broker in ./quiver-data: "),
        "{error}"
    );
    assert!(error.contains("192.0.2.1:7400"), "{error}");
    let cause = "Cannot assign requested address";
    assert_eq!(error.matches(cause).count(), 1, "each cause once: {error}");
    assert!(
        !dir.path().join("quiver-data").exists(),
        "a failed first start left its data directory behind"
    );
}
