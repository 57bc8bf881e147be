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

/// An anchor whose two counter reads are this close is taken at once.
const ANCHOR_GAP_NANOS: u64 = 20_000;

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
        Self::with_counter(quanta::Clock::new())
    }

    fn with_counter(counter: quanta::Clock) -> Self {
        let (anchor_raw, anchor_nanos) = anchor(&counter);
        Self {
            counter,
            anchor_raw,
            anchor_nanos,
        }
    }

    /// Milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&mut self) -> i64 {
        let raw = self.counter.raw();
        // A counter behind its anchor (reset by a resume, a VM restored
        // elsewhere) re-anchors at once rather than repeat the anchor's time.
        let mut elapsed = self.counter.delta_as_nanos(self.anchor_raw, raw);
        if elapsed >= REANCHOR_NANOS || raw < self.anchor_raw {
            (self.anchor_raw, self.anchor_nanos) = anchor(&self.counter);
            elapsed = self
                .counter
                .delta_as_nanos(self.anchor_raw, self.counter.raw());
        }
        // `elapsed` is about a second at most, so it fits.
        self.anchor_nanos
            .saturating_add(elapsed as i64)
            .div_euclid(1_000_000)
    }
}

/// A counter reading and the system clock at the same moment: the system
/// clock read between two counter reads, the counter taken halfway, from
/// the closest of a few tries (a thread preempted between the reads would
/// otherwise shift every timestamp until the next anchor).
fn anchor(counter: &quanta::Clock) -> (u64, i64) {
    let mut best: Option<(u64, u64, i64)> = None;
    for _ in 0..3 {
        let before = counter.raw();
        let nanos = system_nanos();
        let after = counter.raw();
        let gap = counter.delta_as_nanos(before, after);
        let middle = before + after.saturating_sub(before) / 2;
        if best.is_none_or(|(best_gap, _, _)| gap < best_gap) {
            best = Some((gap, middle, nanos));
        }
        if gap < ANCHOR_GAP_NANOS {
            break;
        }
    }
    let (_, raw, nanos) = best.unwrap_or((0, counter.raw(), system_nanos()));
    (raw, nanos)
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

    /// Asserts `clock` reads between the system clock just before and
    /// just after.
    fn assert_follows(clock: &mut WallClock) {
        let before = system_ms();
        let now = clock.now_ms();
        let after = system_ms();
        assert!(
            (before - 1..=after + 1).contains(&now),
            "{now} is not between {before} and {after}"
        );
    }

    #[test]
    fn a_counter_that_goes_back_re_anchors_at_once() {
        let (counter, mock) = quanta::Clock::mock();
        mock.increment(Duration::from_secs(100));
        let mut clock = WallClock::with_counter(counter);
        // Reset (a resume, a restored VM): the next reading re-anchors, so
        // it is not stuck at the first anchor's time, 100 ms behind. (The
        // mock counter stands still: only an anchor taken inside `now_ms`
        // can fall between the system clock's readings around it.)
        mock.decrement(Duration::from_secs(50));
        std::thread::sleep(Duration::from_millis(100));
        assert_follows(&mut clock);
    }

    #[test]
    fn follows_the_system_clock_across_anchors() {
        let mut clock = WallClock::new();
        // Past two re-anchors, checked against the system clock throughout.
        let end = std::time::Instant::now() + Duration::from_millis(2_300);
        while std::time::Instant::now() < end {
            assert_follows(&mut clock);
            std::thread::sleep(Duration::from_millis(7));
        }
    }
}
