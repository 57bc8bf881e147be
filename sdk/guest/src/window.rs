//! Event-time windows aligned to the Unix epoch, with a grace period.
//!
//! A window is the half-open interval `[start, end)` of milliseconds since
//! the epoch. Tumbling windows of size `s` start at every multiple of `s`;
//! hopping windows of size `s` and hop `h` start at every multiple of `h`,
//! so a timestamp belongs to up to `ceil(s / h)` of them. A window is closed
//! once the watermark (for example the highest event time seen) minus the
//! grace period has reached its end: records older than that are late.
//!
//! All functions are pure and never panic; arithmetic that would leave the
//! `i64` range saturates.

/// The half-open window `[start, end)`, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after the window.
    pub end: i64,
}

/// The start of the tumbling window of `size` ms that holds `ts`: the
/// largest multiple of `size` not above `ts`. A `size` below 1 counts as 1.
pub fn window_start(ts: i64, size: i64) -> i64 {
    let size = i128::from(size.max(1));
    let ts = i128::from(ts);
    saturate(ts - ts.rem_euclid(size))
}

/// The windows of `size` ms starting every `hop` ms (multiples of `hop`)
/// that hold `ts`, oldest first. With `hop == size` that is the one tumbling
/// window; with `hop > size` there may be none. Values below 1 count as 1.
pub fn windows_for(ts: i64, size: i64, hop: i64) -> WindowsFor {
    let size = i128::from(size.max(1));
    let hop = i128::from(hop.max(1));
    let ts = i128::from(ts);
    let last = ts - ts.rem_euclid(hop);
    let into_last = ts - last;
    if size <= into_last {
        // `ts` falls in a gap between hopping windows.
        return WindowsFor {
            next: 1,
            last: 0,
            size,
            hop,
        };
    }
    // The oldest start `s = last - j * hop` with `s + size > ts`.
    let j = (size - into_last - 1) / hop;
    let mut next = last - j * hop;
    // Starts below the i64 range cannot be represented; skip them.
    let min = i128::from(i64::MIN);
    if next < min {
        next += (min - next + hop - 1) / hop * hop;
    }
    WindowsFor {
        next,
        last,
        size,
        hop,
    }
}

/// Whether the window ending at `window_end` is closed when the watermark
/// is `watermark` and the grace period `grace` ms (negative counts as 0):
/// `watermark - grace >= window_end`.
pub fn closed(window_end: i64, watermark: i64, grace: i64) -> bool {
    i128::from(watermark) - i128::from(grace.max(0)) >= i128::from(window_end)
}

/// The windows [`windows_for`] yields, oldest first.
#[derive(Debug, Clone)]
pub struct WindowsFor {
    next: i128,
    last: i128,
    size: i128,
    hop: i128,
}

impl Iterator for WindowsFor {
    type Item = Window;

    fn next(&mut self) -> Option<Window> {
        if self.next > self.last {
            return None;
        }
        let start = self.next;
        self.next += self.hop;
        Some(Window {
            start: saturate(start),
            end: saturate(start + self.size),
        })
    }
}

/// A validated window definition: size, hop and grace period in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    size: i64,
    hop: i64,
    grace: i64,
}

impl Windows {
    /// Tumbling windows of `size_ms` (> 0), no grace period.
    pub fn tumbling(size_ms: i64) -> Result<Self, String> {
        Self::hopping(size_ms, size_ms)
    }

    /// Windows of `size_ms` starting every `hop_ms` (0 < hop <= size), no
    /// grace period.
    pub fn hopping(size_ms: i64, hop_ms: i64) -> Result<Self, String> {
        if size_ms <= 0 {
            return Err(format!("window size must be positive, not {size_ms} ms"));
        }
        if hop_ms <= 0 || hop_ms > size_ms {
            return Err(format!(
                "window hop must be between 1 and the size ({size_ms} ms), not {hop_ms} ms"
            ));
        }
        Ok(Self {
            size: size_ms,
            hop: hop_ms,
            grace: 0,
        })
    }

    /// The same windows with a grace period of `grace_ms` (>= 0).
    pub fn with_grace(self, grace_ms: i64) -> Result<Self, String> {
        if grace_ms < 0 {
            return Err(format!(
                "grace period must not be negative, not {grace_ms} ms"
            ));
        }
        Ok(Self {
            grace: grace_ms,
            ..self
        })
    }

    /// Window size in ms.
    pub fn size(&self) -> i64 {
        self.size
    }

    /// Hop in ms (equal to the size for tumbling windows).
    pub fn hop(&self) -> i64 {
        self.hop
    }

    /// Grace period in ms.
    pub fn grace(&self) -> i64 {
        self.grace
    }

    /// The window starting at `start`.
    pub fn at(&self, start: i64) -> Window {
        Window {
            start,
            end: start.saturating_add(self.size),
        }
    }

    /// The newest window holding `ts` (for tumbling windows, the only one).
    pub fn latest(&self, ts: i64) -> Window {
        self.at(window_start(ts, self.hop))
    }

    /// Every window holding `ts`, oldest first.
    pub fn windows_for(&self, ts: i64) -> WindowsFor {
        windows_for(ts, self.size, self.hop)
    }

    /// Whether `window` is closed at `watermark`, given the grace period.
    pub fn is_closed(&self, window: Window, watermark: i64) -> bool {
        closed(window.end, watermark, self.grace)
    }
}

/// Clamps to the `i64` range.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_starts_align_to_the_epoch() {
        assert_eq!(window_start(0, 60_000), 0);
        assert_eq!(window_start(59_999, 60_000), 0);
        assert_eq!(window_start(60_000, 60_000), 60_000);
        assert_eq!(window_start(1_700_000_012_345, 60_000), 1_699_999_980_000);
        assert_eq!(window_start(-1, 60_000), -60_000);
        assert_eq!(window_start(-60_000, 60_000), -60_000);
        assert_eq!(window_start(7, 0), 7, "size below 1 counts as 1");
    }

    /// Every window of `windows_for` holds `ts`, starts at a multiple of the
    /// hop, and no other such window holds it.
    #[test]
    fn hopping_membership_matches_brute_force() {
        for size in 1..=7_i64 {
            for hop in 1..=9_i64 {
                for ts in -30..30_i64 {
                    let got: Vec<i64> = windows_for(ts, size, hop).map(|w| w.start).collect();
                    let want: Vec<i64> = (-60..60)
                        .filter(|s| s % hop == 0 && *s <= ts && ts < s + size)
                        .collect();
                    assert_eq!(got, want, "ts {ts} size {size} hop {hop}");
                    for w in windows_for(ts, size, hop) {
                        assert_eq!(w.end - w.start, size);
                    }
                }
            }
        }
    }

    #[test]
    fn tumbling_is_hopping_with_hop_equal_size() {
        let w = Windows::tumbling(60_000).unwrap();
        for ts in [0, 1, 59_999, 60_000, 1_700_000_012_345, -5] {
            let all: Vec<Window> = w.windows_for(ts).collect();
            assert_eq!(all, vec![w.latest(ts)]);
            assert_eq!(all[0].start, window_start(ts, 60_000));
        }
    }

    #[test]
    fn closing_respects_the_grace_period() {
        // A window [0, 100) closes when the watermark reaches 100 + grace.
        assert!(!closed(100, 99, 0));
        assert!(closed(100, 100, 0));
        assert!(!closed(100, 109, 10));
        assert!(closed(100, 110, 10));
        assert!(closed(100, 100, -5), "negative grace counts as 0");
        assert!(!closed(i64::MIN + 1, i64::MIN, 0));
        assert!(!closed(i64::MAX, i64::MAX - 1, 0));
        assert!(!closed(0, i64::MIN, i64::MAX));
        let w = Windows::tumbling(100).unwrap().with_grace(10).unwrap();
        assert!(!w.is_closed(w.at(0), 109));
        assert!(w.is_closed(w.at(0), 110));
    }

    #[test]
    fn validation() {
        assert!(Windows::tumbling(0).is_err());
        assert!(Windows::tumbling(-1).is_err());
        assert!(Windows::hopping(10, 0).is_err());
        assert!(Windows::hopping(10, 11).is_err());
        assert!(Windows::hopping(10, 10).is_ok());
        assert!(Windows::tumbling(10).unwrap().with_grace(-1).is_err());
        let w = Windows::hopping(10, 5).unwrap().with_grace(3).unwrap();
        assert_eq!((w.size(), w.hop(), w.grace()), (10, 5, 3));
    }

    #[test]
    fn extremes_saturate_instead_of_panicking() {
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            for (size, hop) in [(1, 1), (7, 3), (i64::MAX, 1 << 62), (i64::MAX, i64::MAX)] {
                for w in windows_for(ts, size, hop) {
                    assert!(w.start <= ts && ts < w.end || w.end == i64::MAX);
                }
                let _ = window_start(ts, size);
            }
        }
        assert_eq!(window_start(i64::MIN, 7), i64::MIN);
        assert_eq!(
            Windows::tumbling(10).unwrap().at(i64::MAX - 1).end,
            i64::MAX
        );
    }
}
