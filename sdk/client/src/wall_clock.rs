//! Record timestamps for the producer: wall-clock milliseconds read from
//! the CPU's time-stamp counter ([quanta]) and re-anchored to the system
//! clock every [`REANCHOR_NANOS`].
//!
//! Reading the system clock and converting it to milliseconds cost about
//! 40 ns per record on the 2-core test machine (about a tenth of the
//! producer's CPU per 100-byte record); the counter and its scaling, about
//! 11 ns. Between anchors the timestamps follow the counter, which drifts
//! from the system clock by parts per million; a step of the system clock
//! (NTP, an operator) shows at the next anchor, as it would have anyway.

use std::time::{SystemTime, UNIX_EPOCH};

/// How long the counter runs on its own before the system clock is read
/// again, in nanoseconds.
const REANCHOR_NANOS: u64 = 1_000_000_000;

/// A wall clock for one producer (kept under its state lock).
#[derive(Debug)]
pub(crate) struct WallClock {
    counter: quanta::Clock,
    /// The counter's reading at the anchor.
    anchor_raw: u64,
    /// The system clock at the anchor, nanoseconds since the Unix epoch.
    anchor_nanos: i64,
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl WallClock {
    /// Calibrates the counter the first time in a process (under a
    /// millisecond here; quanta bounds it at 200 ms).
    pub(crate) fn new() -> Self {
        let counter = quanta::Clock::new();
        let anchor_raw = counter.raw();
        Self {
            counter,
            anchor_raw,
            anchor_nanos: system_nanos(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&mut self) -> i64 {
        let raw = self.counter.raw();
        let mut elapsed = self.counter.delta_as_nanos(self.anchor_raw, raw);
        if elapsed >= REANCHOR_NANOS {
            self.anchor_raw = raw;
            self.anchor_nanos = system_nanos();
            elapsed = 0;
        }
        // `elapsed` is below a second, so it fits.
        (self.anchor_nanos + elapsed as i64).div_euclid(1_000_000)
    }
}

/// The system clock in nanoseconds since the Unix epoch (0 before it).
fn system_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::WallClock;

    fn system_ms() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }

    #[test]
    fn follows_the_system_clock_across_anchors() {
        let mut clock = WallClock::new();
        // Past two re-anchors, checked against the system clock throughout.
        let end = std::time::Instant::now() + Duration::from_millis(2_300);
        while std::time::Instant::now() < end {
            let before = system_ms();
            let now = clock.now_ms();
            let after = system_ms();
            assert!(
                (before - 1..=after + 1).contains(&now),
                "{now} is not between {before} and {after}"
            );
            std::thread::sleep(Duration::from_millis(7));
        }
    }
}
