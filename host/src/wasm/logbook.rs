//! A transform's log: the recent lines from the guest's `log` calls, its
//! stdout and stderr, and the host's own notes (failures, restarts), kept
//! in memory (the last [`MAX_LOG_LINES_KEPT`]) and mirrored to the broker's
//! tracing output. Not durable: `quiver transform logs` shows what this
//! broker process saw.

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
}

impl Logbook {
    /// An empty log for `transform`.
    pub fn new(transform: &str, clock: Arc<dyn Clock>) -> Self {
        Self {
            transform: transform.to_owned(),
            clock,
            inner: Mutex::new(Inner {
                lines: VecDeque::new(),
                next_seq: 1,
            }),
        }
    }

    /// Appends a line, cut to [`MAX_LOG_LINE_BYTES`].
    pub fn push(&self, level: LogLevel, source: &str, message: &str) {
        let message = truncate(message.trim_end(), MAX_LOG_LINE_BYTES);
        let transform = self.transform.as_str();
        match level {
            LogLevel::Error => tracing::error!(transform, source, "{message}"),
            LogLevel::Warn => tracing::warn!(transform, source, "{message}"),
            LogLevel::Info => tracing::info!(transform, source, "{message}"),
            LogLevel::Debug => tracing::debug!(transform, source, "{message}"),
            LogLevel::Trace => tracing::trace!(transform, source, "{message}"),
        }
        let at_ms = self.clock.now_ms();
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if inner.lines.len() == MAX_LOG_LINES_KEPT {
            inner.lines.pop_front();
        }
        inner.lines.push_back(LogLine {
            seq,
            at_ms,
            level,
            source: source.to_owned(),
            message: message.to_owned(),
        });
    }

    /// Up to `max` lines with a sequence number above `after_seq`, oldest
    /// first.
    pub fn read(&self, after_seq: u64, max: usize) -> Vec<LogLine> {
        self.lock()
            .lines
            .iter()
            .filter(|line| line.seq > after_seq)
            .take(max)
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
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
/// logbook. A line longer than [`MAX_LOG_LINE_BYTES`] is cut into pieces.
#[derive(Debug, Clone)]
pub struct LogStream {
    logbook: Arc<Logbook>,
    source: &'static str,
    level: LogLevel,
    partial: Arc<Mutex<Vec<u8>>>,
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
            let room = MAX_LOG_LINE_BYTES - partial.len();
            let line_end = bytes.iter().take(room).position(|&b| b == b'\n');
            let take = line_end.map_or(room.min(bytes.len()), |end| end + 1);
            partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if line_end.is_some() || partial.len() >= MAX_LOG_LINE_BYTES {
                self.logbook
                    .push(self.level, self.source, &String::from_utf8_lossy(&partial));
                partial.clear();
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

    #[test]
    fn keeps_the_newest_lines_and_reads_after_a_sequence_number() {
        let log = Logbook::new("t", Arc::new(ManualClock::new(5)));
        for i in 0..MAX_LOG_LINES_KEPT + 10 {
            log.push(LogLevel::Info, "guest", &format!("line {i}"));
        }
        let all = log.read(0, usize::MAX);
        assert_eq!(all.len(), MAX_LOG_LINES_KEPT);
        assert_eq!(all[0].message, "line 10");
        assert_eq!(all[0].seq, 11);
        let tail = log.read(all[all.len() - 2].seq, 10);
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].message, format!("line {}", MAX_LOG_LINES_KEPT + 9));
    }

    #[test]
    fn streams_split_lines_and_cut_long_ones() {
        let log = Arc::new(Logbook::new("t", Arc::new(ManualClock::new(0))));
        let stream = LogStream::new(Arc::clone(&log), "stdout", LogLevel::Info);
        stream.write_bytes(b"hello ");
        stream.write_bytes(b"world\nsecond\n");
        stream.write_bytes(&vec![b'x'; MAX_LOG_LINE_BYTES + 5]);
        let lines = log.read(0, 10);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].message, "hello world");
        assert_eq!(lines[1].message, "second");
        assert_eq!(lines[2].message.len(), MAX_LOG_LINE_BYTES);
        assert!(lines.iter().all(|l| l.source == "stdout"));
    }
}
