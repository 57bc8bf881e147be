//! Running the real `quiver` binary: [`run_quiver`] for any command line
//! (with its own working directory and environment), and [`CliFixture`], a
//! broker on its own runtime with `quiver` pointed at it.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::{TestBroker, quiver_command};

/// Hang guard only: a `quiver` command still running after this long is
/// killed and the test fails, instead of hanging the test run forever.
pub const HANG_GUARD: Duration = Duration::from_mins(2);

/// What a finished `quiver` command left behind.
#[derive(Debug)]
pub struct Run {
    /// The program's file name and arguments, joined with spaces (for
    /// messages).
    pub args: String,
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0 and returns standard output.
    pub fn ok(self) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "`{}` failed; stderr: {}",
            self.args,
            self.stderr
        );
        self.stdout
    }

    /// Asserts exit code 1, nothing on standard output, and exactly one
    /// `error: ` line on standard error; returns that line.
    pub fn fails(self) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "`{}` should fail; stdout: {} stderr: {}",
            self.args,
            self.stdout,
            self.stderr
        );
        assert_eq!(self.stdout, "", "`{}` printed output", self.args);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "`{}`: expected one error line, got {:?}",
            self.args,
            self.stderr
        );
        assert!(
            lines[0].starts_with("error: "),
            "`{}`: {:?}",
            self.args,
            lines[0]
        );
        lines[0].to_owned()
    }
}

/// Runs `command` (a `quiver` command line, or another client such as
/// `kcat`) with `input` on standard input (or none), and waits for it to
/// exit by itself, killing it after [`HANG_GUARD`].
pub fn run_quiver(mut command: Command, input: Option<&[u8]>) -> Run {
    let program = Path::new(command.get_program())
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let args: Vec<String> = std::iter::once(program)
        .chain(command.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect();
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn the program");
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_owned();
        // Written from a thread so a full pipe cannot deadlock with the
        // output being read below; dropping `stdin` is end of input.
        std::thread::spawn(move || stdin.write_all(&input))
    });
    let pid = child.id();
    let (done, finished) = mpsc::channel::<()>();
    let guard = std::thread::spawn(move || match finished.recv_timeout(HANG_GUARD) {
        Err(RecvTimeoutError::Timeout) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            true
        }
        _ => false,
    });
    let output = child.wait_with_output().expect("wait for quiver");
    let _ = done.send(());
    let hung = guard.join().expect("hang guard thread");
    let args = args.join(" ");
    assert!(
        !hung,
        "`{args}` did not exit within {HANG_GUARD:?} and was killed"
    );
    if let Some(writer) = writer {
        // A command that failed early may not have read all its input.
        let _ = writer.join().expect("stdin writer thread");
    }
    Run {
        args,
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// A broker on its own runtime, and a way to run `quiver` against it.
///
/// Tests using it are plain `#[test]`s: the `quiver` child processes are
/// waited for on the test thread.
pub struct CliFixture {
    /// The broker.
    pub broker: TestBroker,
    /// The runtime the broker runs on.
    pub runtime: tokio::runtime::Runtime,
}

impl CliFixture {
    /// Starts a broker in a fresh temporary directory.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("Tokio runtime");
        let broker = runtime.block_on(TestBroker::start());
        Self { broker, runtime }
    }

    /// A `quiver ARGS` command pointed at this broker.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = quiver_command(self.broker.addr(), self.broker.ca());
        command.args(args);
        command
    }

    /// Runs `quiver ARGS` with nothing on standard input.
    pub fn run(&self, args: &[&str]) -> Run {
        run_quiver(self.command(args), None)
    }

    /// Runs `quiver ARGS` with `input` on standard input.
    pub fn run_with_input(&self, args: &[&str], input: Option<&str>) -> Run {
        run_quiver(self.command(args), input.map(str::as_bytes))
    }

    /// `quiver topic create NAME --partitions N`; asserts it worked.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = self
            .run(&[
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .ok();
        assert_eq!(
            out,
            format!("created topic {name} with {partitions} partitions\n")
        );
    }

    /// `quiver produce ARGS` with `lines`; asserts all were acknowledged.
    pub fn produce(&self, args: &[&str], lines: &[String]) {
        let mut input = lines.join("\n");
        input.push('\n');
        let mut all = vec!["produce"];
        all.extend_from_slice(args);
        let out = self.run_with_input(&all, Some(&input)).ok();
        assert_eq!(out, acknowledged(lines.len()));
    }
}

/// What `quiver produce` prints after `n` acknowledged records.
pub fn acknowledged(n: usize) -> String {
    match n {
        1 => "1 record acknowledged\n".to_owned(),
        n => format!("{n} records acknowledged\n"),
    }
}

impl Drop for CliFixture {
    fn drop(&mut self) {
        self.runtime.block_on(self.broker.shutdown());
    }
}
