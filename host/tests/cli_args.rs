//! The `quiver` binary refuses bad arguments with one clear line and a
//! non-zero exit, before touching the network.

use std::process::Command;

fn quiver(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .env_remove("QUIVER_BROKER")
        .env_remove("QUIVER_CA")
        .output()
        .expect("run quiver")
}

#[test]
fn help_lists_the_commands() {
    let out = quiver(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "topic", "produce", "consume", "bench"] {
        assert!(text.contains(command), "{command} missing from --help");
    }
}

#[test]
fn bad_arguments_fail_with_a_message() {
    for args in [
        &["topic", "create", "t", "--partitions", "many"][..],
        &["consume", "t", "--from", "yesterday"],
        &["produce", "t", "--key", "k", "--key-separator", ":"],
        &["serve", "--listen", "not-an-address"],
        &["frobnicate"],
    ] {
        let out = quiver(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!out.stderr.is_empty(), "{args:?} printed nothing");
    }
}

#[test]
fn unreachable_broker_is_one_clear_error() {
    let out = quiver(&["topic", "list", "--broker", "no-such-host.invalid:7400"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
