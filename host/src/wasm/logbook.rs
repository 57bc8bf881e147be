//! A transform's log: the recent lines from the guest's `log` calls, its
//! stdout and stderr, and the host's own notes (failures, restarts), kept
//! in memory (the last [`MAX_LOG_LINES_KEPT`]). Not durable: `quiver
//! transform logs` shows what this broker process saw.
//!
//! A guest cannot flood it: each line is cut at [`MAX_LOG_LINE_BYTES`]
//! (saying how much was cut), and a transform's guest lines beyond
//! [`MAX_GUEST_LOG_LINES_PER_SECOND`] are dropped, leaving one host line
//! that says how many. The host's own lines are never dropped. Guest lines
//! are not copied into the broker's log (tracing); it gets a summary (lines
//! kept and dropped) at most every [`GUEST_LOG_SUMMARY_INTERVAL_MS`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use quiver_proto::api::transforms::{LogLevel, LogLine};
use quiver_proto::limits::MAX_LOG_LINE_BYTES;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use crate::clock::Clock;

/// Lines kept per transform; older ones are dropped.
pub const MAX_LOG_LINES_KEPT: usize = 1_000;
/// Guest lines (its `log` calls, stdout, stderr) one transform may add per
/// second of the broker's clock; more are dropped and counted. At 100 lines
/// a second the kept lines span at least 10 s of a flooding guest, and a
/// guest stays within 400 KiB/s of log.
pub const MAX_GUEST_LOG_LINES_PER_SECOND: u64 = 100;
/// How often, at most, a transform's guest output is summarised in the
/// broker's own log.
pub const GUEST_LOG_SUMMARY_INTERVAL_MS: i64 = 60_000;
/// The source of the host's own lines, which are never dropped.
pub const HOST_SOURCE: &str = "host";

/// Which lines a read wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogQuery {
    /// Only lines with a larger sequence number.
    pub after_seq: u64,
    /// Only lines written at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only the last this many of the lines that match the above.
    pub tail: Option<usize>,
    /// Lines to return at most.
    pub max_lines: usize,
    /// About the most bytes of messages to return (at least one line is).
    pub max_bytes: usize,
}

/// One page of lines, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// The lines.
    pub lines: Vec<LogLine>,
    /// More lines matched than the page holds: ask again after the last.
    pub more: bool,
}

/// The recent log lines of one transform.
#[derive(Debug)]
pub struct Logbook {
    transform: String,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    lines: VecDeque<LogLine>,
    next_seq: u64,
    /// The rate limit's current second (ms since the epoch / 1000) and the
    /// guest lines kept and dropped in it.
    second: i64,
    kept_this_second: u64,
    dropped_this_second: u64,
    /// Guest lines kept and dropped since the last summary, and when that was.
    summary: Summary,
}

#[derive(Debug, Default)]
struct Summary {
    at_ms: Option<i64>,
    kept: u64,
    dropped: u64,
}

impl Logbook {
    /// An empty log for `transform`.
    pub fn new(transform: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            transform: transform.to_owned(),
            clock,
            inner: Mutex::new(Inner {
                next_seq: 1,
                ..Inner::default()
            }),
        }
    }

    /// Appends a line, cut to [`MAX_LOG_LINE_BYTES`]. A host line is also
    /// written to the broker's log; a guest line counts against the rate
    /// limit and is only summarised there.
    pub fn push(&self, level: LogLevel, source: &str, message: &str) {
        let message = message.trim_end();
        let at_ms = self.clock.now_ms();
        let mut inner = self.lock();
        inner.flush_dropped(at_ms);
        if source == HOST_SOURCE {
            let message = cut(message, MAX_LOG_LINE_BYTES, 0);
            self.mirror(level, &message);
            inner.append(at_ms, level, source, message);
            return;
        }
        let second = at_ms.div_euclid(1_000);
        if second != inner.second {
            inner.second = second;
            inner.kept_this_second = 0;
        }
        if inner.kept_this_second >= MAX_GUEST_LOG_LINES_PER_SECOND {
            inner.dropped_this_second += 1;
            inner.summary.dropped += 1;
        } else {
            inner.kept_this_second += 1;
            inner.summary.kept += 1;
            inner.append(at_ms, level, source, cut(message, MAX_LOG_LINE_BYTES, 0));
        }
        self.summarise(&mut inner, at_ms);
    }

    /// The lines `query` asks for, oldest first.
    pub fn read(&self, query: &LogQuery) -> LogPage {
        let mut inner = self.lock();
        inner.flush_dropped(self.clock.now_ms());
        let matching: Vec<&LogLine> = inner
            .lines
            .iter()
            .filter(|line| line.seq > query.after_seq)
            .filter(|line| query.since_ms.is_none_or(|since| line.at_ms >= since))
            .collect();
        let skip = query
            .tail
            .map_or(0, |tail| matching.len().saturating_sub(tail));
        let mut lines = Vec::new();
        let mut bytes = 0;
        for line in &matching[skip..] {
            let size = line.message.len() + line.source.len();
            if lines.len() == query.max_lines
                || (!lines.is_empty() && bytes + size > query.max_bytes)
            {
                break;
            }
            bytes += size;
            lines.push((*line).clone());
        }
        let more = skip + lines.len() < matching.len();
        LogPage { lines, more }
    }

    /// Writes a host line to the broker's log.
    fn mirror(&self, level: LogLevel, message: &str) {
        let transform = self.transform.as_str();
        match level {
            LogLevel::Error => tracing::error!(transform, "{message}"),
            LogLevel::Warn => tracing::warn!(transform, "{message}"),
            LogLevel::Info => tracing::info!(transform, "{message}"),
            LogLevel::Debug => tracing::debug!(transform, "{message}"),
            LogLevel::Trace => tracing::trace!(transform, "{message}"),
        }
    }

    /// Summarises the guest's output in the broker's log, if the last
    /// summary is old enough.
    fn summarise(&self, inner: &mut Inner, now_ms: i64) {
        let due = inner
            .summary
            .at_ms
            .is_none_or(|at| now_ms - at >= GUEST_LOG_SUMMARY_INTERVAL_MS);
        if !due {
            return;
        }
        let Summary { kept, dropped, .. } = std::mem::take(&mut inner.summary);
        inner.summary.at_ms = Some(now_ms);
        tracing::info!(
            transform = self.transform.as_str(),
            lines = kept,
            dropped,
            "guest output since the last summary: lines kept, and dropped over the rate limit (`quiver transform logs {}` shows them)",
            self.transform
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn append(&mut self, at_ms: i64, level: LogLevel, source: &str, message: String) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.lines.len() == MAX_LOG_LINES_KEPT {
            self.lines.pop_front();
        }
        self.lines.push_back(LogLine {
            seq,
            at_ms,
            level,
            source: source.to_owned(),
            message,
        });
    }

    /// Once the second in which guest lines were dropped is over, says how
    /// many in a host line.
    fn flush_dropped(&mut self, now_ms: i64) {
        if self.dropped_this_second == 0 || now_ms.div_euclid(1_000) == self.second {
            return;
        }
        let dropped = std::mem::take(&mut self.dropped_this_second);
        let message = format!(
            "{dropped} guest lines dropped: a transform may log {MAX_GUEST_LOG_LINES_PER_SECOND} lines a second"
        );
        self.append(now_ms, LogLevel::Warn, HOST_SOURCE, message);
    }
}

/// `text` within `max` bytes: whole if it fits, else its longest prefix on
/// a char boundary that leaves room for a note of how many bytes were cut
/// (`more` bytes already cut elsewhere count too).
fn cut(text: &str, max: usize, more: usize) -> String {
    if text.len() <= max && more == 0 {
        return text.to_owned();
    }
    let note = |cut: usize| format!(" [{cut} bytes cut]");
    // The note for an upper bound of what is cut is at least as long.
    let room = max.saturating_sub(note(text.len() + more).len());
    let kept = truncate(text, room.min(text.len()));
    format!("{kept}{}", note(text.len() - kept.len() + more))
}

/// The longest prefix of `text` within `max` bytes, on a char boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A guest's stdout or stderr: bytes are split into lines that go to the
/// logbook. A line longer than [`MAX_LOG_LINE_BYTES`] is cut there, and the
/// rest of it, up to the next newline, is dropped and counted.
#[derive(Debug, Clone)]
pub struct LogStream {
    logbook: Arc<Logbook>,
    source: &'static str,
    level: LogLevel,
    partial: Arc<Mutex<Partial>>,
}

/// The line being written: its first bytes, and how many more were cut.
#[derive(Debug, Default)]
struct Partial {
    bytes: Vec<u8>,
    cut: usize,
}

impl LogStream {
    /// A stream writing lines from `source` at `level`.
    pub fn new(logbook: Arc<Logbook>, source: &'static str, level: LogLevel) -> Self {
        Self {
            logbook,
            source,
            level,
            partial: Arc::default(),
        }
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut partial = self
            .partial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !bytes.is_empty() {
            let line_end = bytes.iter().position(|&b| b == b'\n');
            let (line, rest) = match line_end {
                Some(end) => (&bytes[..end], &bytes[end + 1..]),
                None => (bytes, &[][..]),
            };
            let room = MAX_LOG_LINE_BYTES.saturating_sub(partial.bytes.len());
            let keep = room.min(line.len());
            partial.bytes.extend_from_slice(&line[..keep]);
            partial.cut += line.len() - keep;
            bytes = rest;
            if line_end.is_some() {
                let text = String::from_utf8_lossy(&partial.bytes);
                let message = if partial.cut == 0 {
                    text.into_owned()
                } else {
                    cut(&text, MAX_LOG_LINE_BYTES, partial.cut)
                };
                self.logbook.push(self.level, self.source, &message);
                partial.bytes.clear();
                partial.cut = 0;
            }
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(MAX_LOG_LINE_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn query(after_seq: u64) -> LogQuery {
        LogQuery {
            after_seq,
            since_ms: None,
            tail: None,
            max_lines: usize::MAX,
            max_bytes: usize::MAX,
        }
    }

    fn messages(page: &LogPage) -> Vec<&str> {
        page.lines.iter().map(|l| l.message.as_str()).collect()
    }

    #[test]
    fn keeps_the_newest_lines_and_reads_after_a_sequence_number() {
        let clock = Arc::new(ManualClock::new(5));
        let log = Logbook::new("t", clock.clone());
        for i in 0..MAX_LOG_LINES_KEPT + 10 {
            // One line a second: under the rate limit.
            clock.advance(1_000);
            log.push(LogLevel::Info, "guest", &format!("line {i}"));
        }
        let all = log.read(&query(0)).lines;
        assert_eq!(all.len(), MAX_LOG_LINES_KEPT);
        assert_eq!(all[0].message, "line 10");
        assert_eq!(all[0].seq, 11);
        let tail = log.read(&LogQuery {
            max_lines: 10,
            ..query(all[all.len() - 2].seq)
        });
        assert_eq!(
            messages(&tail),
            [format!("line {}", MAX_LOG_LINES_KEPT + 9)]
        );
        assert!(!tail.more);
    }

    #[test]
    fn reads_page_by_bytes_and_take_a_tail_or_a_start_time() {
        let clock = Arc::new(ManualClock::new(0));
        let log = Logbook::new("t", clock.clone());
        for i in 0..10 {
            clock.set(i * 1_000);
            log.push(
                LogLevel::Info,
                HOST_SOURCE,
                &format!("{i}{}", "x".repeat(99)),
            );
        }
        // 100-byte messages and a 4-byte source: two fit in 250 bytes.
        let page = log.read(&LogQuery {
            max_bytes: 250,
            ..query(0)
        });
        assert_eq!((page.lines.len(), page.more), (2, true));
        // At least one line, however small the budget.
        assert_eq!(
            log.read(&LogQuery {
                max_bytes: 1,
                ..query(0)
            })
            .lines
            .len(),
            1
        );
        let tail = log.read(&LogQuery {
            tail: Some(3),
            ..query(0)
        });
        assert_eq!(tail.lines.first().map(|l| l.seq), Some(8));
        assert!(!tail.more);
        let tail_page = log.read(&LogQuery {
            tail: Some(3),
            max_lines: 2,
            ..query(0)
        });
        assert_eq!((tail_page.lines.len(), tail_page.more), (2, true));
        let since = log.read(&LogQuery {
            since_ms: Some(7_000),
            ..query(0)
        });
        assert_eq!(
            since.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            [8, 9, 10]
        );
    }

    #[test]
    fn guest_lines_over_the_rate_limit_are_dropped_and_counted() {
        let clock = Arc::new(ManualClock::new(10_000));
        let log = Logbook::new("t", clock.clone());
        for i in 0..MAX_GUEST_LOG_LINES_PER_SECOND + 50 {
            log.push(LogLevel::Info, "stdout", &format!("line {i}"));
        }
        log.push(LogLevel::Error, HOST_SOURCE, "the host is never dropped");
        let page = log.read(&query(0));
        assert_eq!(page.lines.len() as u64, MAX_GUEST_LOG_LINES_PER_SECOND + 1);
        // The count comes once the second is over.
        clock.advance(1_000);
        let page = log.read(&query(0));
        let last = page.lines.last().expect("lines");
        assert_eq!(last.source, HOST_SOURCE);
        assert!(
            last.message.starts_with("50 guest lines dropped"),
            "{last:?}"
        );
        log.push(LogLevel::Info, "guest", "a new second");
        assert_eq!(log.read(&query(last.seq)).lines.len(), 1);
    }

    #[test]
    fn streams_split_lines_and_cut_long_ones() {
        let log = Arc::new(Logbook::new("t", Arc::new(ManualClock::new(0))));
        let stream = LogStream::new(Arc::clone(&log), "stdout", LogLevel::Info);
        stream.write_bytes(b"hello ");
        stream.write_bytes(b"world\nsecond\n");
        stream.write_bytes(&vec![b'x'; MAX_LOG_LINE_BYTES + 5]);
        stream.write_bytes(&[b'y'; 10]);
        stream.write_bytes(b"\nafter\n");
        let page = log.read(&query(0));
        let lines = messages(&page);
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "hello world");
        assert_eq!(lines[1], "second");
        assert!(lines[2].len() <= MAX_LOG_LINE_BYTES, "{}", lines[2].len());
        assert!(
            lines[2].ends_with("xx [32 bytes cut]"),
            "{}",
            &lines[2][4000..]
        );
        assert_eq!(lines[3], "after");
        assert!(page.lines.iter().all(|l| l.source == "stdout"));
    }

    #[test]
    fn a_long_line_is_cut_with_a_note_within_the_cap() {
        let long = "é".repeat(MAX_LOG_LINE_BYTES);
        let message = cut(&long, MAX_LOG_LINE_BYTES, 0);
        assert!(message.len() <= MAX_LOG_LINE_BYTES);
        assert!(message.ends_with(" bytes cut]"), "{message}");
        assert_eq!(cut("short", MAX_LOG_LINE_BYTES, 0), "short");
    }
}
