//! README.md, executed: the `sh` blocks of the CLI tour and of the
//! tutorial run in order, as a user pastes them, against a fresh broker, and
//! a test fails when a command fails. A `text` block right after an `sh`
//! block lists lines its output must contain.
//!
//! What differs from a user's terminal, and why:
//! - the broker is `quiver serve` on port 0 in a temporary directory
//!   (`QUIVER_BROKER` and `QUIVER_CA` point the commands at it), so the
//!   README's `cargo run --release -- serve` lines are not run;
//! - `quiver` is the binary of this test build; the README's
//!   `alias quiver=...` lines are harmless (a script does not expand
//!   aliases);
//! - the Kafka listener is on port 0 too, so the README's `127.0.0.1:9092`
//!   is replaced by its address;
//! - a `--follow` command without `--count` would run until stopped: it is
//!   stopped with SIGINT after a few seconds, as a user would with Ctrl-C.
//!
//! Commands run from the repository root, where the README's paths
//! (`guest-examples/...`) point.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use quiver_tests::{BrokerProcess, guest_component, quiver_bin};

/// How long a `--follow` command without `--count` runs before its SIGINT.
const FOLLOW_FOR: Duration = Duration::from_secs(3);

/// A code block of the README.
#[derive(Debug)]
struct Block {
    /// The line of its opening fence (1-based), for messages.
    line: usize,
    /// `sh` or `text` (or anything else, ignored).
    language: String,
    /// Its contents.
    text: String,
}

/// The code blocks of the README section whose heading starts with
/// `heading`, up to the next `## ` heading.
fn blocks_of(readme: &str, heading: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut in_section = false;
    let mut open: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        if open.is_none() && line.starts_with("## ") {
            in_section = line.starts_with(heading);
            continue;
        }
        if !in_section {
            continue;
        }
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(language)) => {
                open = Some(Block {
                    line: i + 1,
                    language: language.trim().to_owned(),
                    text: String::new(),
                });
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block under {heading:?}");
    blocks
}

/// The script for one `sh` block: `quiver` is the test build, `--follow`
/// without `--count` is stopped after [`FOLLOW_FOR`], and the README's
/// broker start is left out.
fn script(block: &str) -> String {
    let follow_secs = FOLLOW_FOR.as_secs();
    let mut script = format!(
        r#"set -euo pipefail
quiver() {{
    case " $* " in
        *" --follow "*" --count "*|*" --count "*" --follow "*) "$QUIVER_BIN" "$@" ;;
        *" --follow "*)
            local code=0
            timeout -s INT {follow_secs} "$QUIVER_BIN" "$@" || code=$?
            # 124: stopped by the timeout, as a user stops it with Ctrl-C.
            [ "$code" = 0 ] || [ "$code" = 124 ] ;;
        *) "$QUIVER_BIN" "$@" ;;
    esac
}}
"#
    );
    for line in block.lines() {
        if line.trim_start().starts_with("cargo run") {
            continue;
        }
        script.push_str(line);
        script.push('\n');
    }
    script
}

/// Runs the blocks of `heading` in order against the broker; checks each
/// `text` block against the output of the `sh` block before it.
fn run_section(readme: &str, heading: &str, broker: &BrokerProcess, root: &Path) {
    let blocks = blocks_of(readme, heading);
    assert!(
        blocks.iter().any(|b| b.language == "sh"),
        "no sh blocks under {heading:?}"
    );
    let kafka = broker
        .kafka_addr()
        .expect("the Kafka listener runs")
        .to_string();
    let mut last_output: Option<(usize, String)> = None;
    for block in &blocks {
        match block.language.as_str() {
            "sh" => {
                let output = Command::new("bash")
                    .arg("-c")
                    .arg(script(&block.text).replace("127.0.0.1:9092", &kafka))
                    .current_dir(root)
                    .env("QUIVER_BIN", quiver_bin())
                    .env("QUIVER_BROKER", broker.addr().to_string())
                    .env("QUIVER_CA", broker.ca())
                    .env_remove("QUIVER_DATA_DIR")
                    .env_remove("RUST_LOG")
                    // The guest examples build into their own target dir,
                    // where the README's paths point.
                    .env_remove("CARGO_TARGET_DIR")
                    .stdin(Stdio::null())
                    .output()
                    .expect("run bash");
                let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
                assert!(
                    output.status.success(),
                    "README.md line {}: the block failed ({}):\n{}\nstdout:\n{stdout}\nstderr:\n{}",
                    block.line,
                    output.status,
                    block.text,
                    String::from_utf8_lossy(&output.stderr)
                );
                last_output = Some((block.line, stdout));
            }
            "text" => {
                let (line, stdout) = last_output.take().unwrap_or_else(|| {
                    panic!(
                        "README.md line {}: a text block with no sh block before it",
                        block.line
                    )
                });
                let mut printed: Vec<&str> = stdout.lines().collect();
                for expected in block.text.lines() {
                    let found = printed.iter().position(|l| *l == expected);
                    assert!(
                        found.is_some(),
                        "README.md line {}: the block at line {line} did not print {expected:?}; it printed:\n{stdout}",
                        block.line
                    );
                    printed.remove(found.unwrap_or_default());
                }
            }
            _ => {}
        }
    }
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

#[test]
fn the_cli_tour_and_the_tutorial_run_as_written() {
    let root = repository_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    // The README builds the guests itself; building them here first keeps
    // that step quick when they are already built.
    guest_component("filter");
    let data = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(data.path());
    run_section(&readme, "## CLI tour", &broker, &root);
    run_section(&readme, "## Tutorial", &broker, &root);
    run_section(&readme, "## Use any Kafka client", &broker, &root);
    assert!(broker.terminate(), "quiver serve did not exit cleanly");
}

#[test]
fn blocks_are_found_per_section_with_their_language() {
    let readme = "# T\n## A\n```sh\nx\n```\n```text\ny\n```\n## B\n```sh\nz\n```\n";
    let a = blocks_of(readme, "## A");
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0].language.as_str(), a[0].text.as_str(), a[0].line),
        ("sh", "x\n", 3)
    );
    assert_eq!(
        (a[1].language.as_str(), a[1].text.as_str()),
        ("text", "y\n")
    );
    assert_eq!(blocks_of(readme, "## B")[0].text, "z\n");
    assert!(!script("cargo run --release -- serve\nquiver topic list\n").contains("cargo run"));
}
