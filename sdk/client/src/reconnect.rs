//! Retrying after a lost broker: the backoff between attempts and how long
//! a consumer keeps trying.
//!
//! The [`Client`](crate::Client) itself re-dials lazily: a request that
//! finds its connection closed dials a new one first. What to retry is the
//! caller's choice: [`Consumer::poll`](crate::Consumer::poll) retries
//! [retriable](crate::ClientError::is_retriable) failures with this backoff,
//! and so does an idempotent [`Producer`](crate::Producer) (a full disk
//! excepted) until its delivery timeout; admin calls never retry.

use std::time::{Duration, Instant};

/// How long [`Consumer::poll`](crate::Consumer::poll) keeps retrying a
/// lost broker before returning the error, unless
/// [`ConsumerConfig::reconnect_timeout`](crate::ConsumerConfig::reconnect_timeout)
/// says otherwise.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_mins(1);

/// The first wait after a failure.
pub const RECONNECT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// The wait doubles after each failure up to this.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Exponential backoff: [`RECONNECT_BACKOFF_INITIAL`], doubling up to
/// [`RECONNECT_BACKOFF_MAX`]; reset after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            next: RECONNECT_BACKOFF_INITIAL,
        }
    }

    /// The wait before the next attempt; doubles the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(RECONNECT_BACKOFF_MAX);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = RECONNECT_BACKOFF_INITIAL;
    }
}

/// A consumer's retry state across polls.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    backoff: Backoff,
    /// When the first failure of the current outage happened.
    failing_since: Option<Instant>,
    /// No attempt before this.
    next_attempt: Option<Instant>,
}

impl Retry {
    pub(crate) fn new() -> Self {
        Self {
            backoff: Backoff::new(),
            failing_since: None,
            next_attempt: None,
        }
    }

    /// When the next attempt may start, if a failure is being backed off.
    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        self.next_attempt
    }

    /// Whether the outage is still in progress.
    pub(crate) fn failing(&self) -> bool {
        self.failing_since.is_some()
    }

    /// Records a retriable failure at `now`. Returns `false` when the
    /// outage has lasted longer than `give_up_after` (then the caller
    /// returns the error), else schedules the next attempt.
    pub(crate) fn failed(&mut self, now: Instant, give_up_after: Option<Duration>) -> bool {
        let since = *self.failing_since.get_or_insert(now);
        if give_up_after.is_some_and(|limit| now.duration_since(since) >= limit) {
            self.succeeded();
            return false;
        }
        self.next_attempt = Some(now + self.backoff.next_delay());
        true
    }

    pub(crate) fn succeeded(&mut self) {
        self.backoff.reset();
        self.failing_since = None;
        self.next_attempt = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_limit_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000, 5_000]
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(), RECONNECT_BACKOFF_INITIAL);
    }

    #[test]
    fn retry_schedules_attempts_and_gives_up_after_the_limit() {
        let start = Instant::now();
        let limit = Some(Duration::from_secs(10));
        let mut retry = Retry::new();
        assert!(!retry.failing());
        assert!(retry.failed(start, limit));
        assert_eq!(
            retry.next_attempt(),
            Some(start + Duration::from_millis(100))
        );
        let later = start + Duration::from_secs(1);
        assert!(retry.failed(later, limit));
        assert_eq!(
            retry.next_attempt(),
            Some(later + Duration::from_millis(200))
        );
        // The outage is counted from its first failure.
        assert!(!retry.failed(start + Duration::from_secs(10), limit));
        assert!(!retry.failing());

        // A success ends the outage and resets the backoff.
        assert!(retry.failed(start, limit));
        assert!(retry.failed(start, limit));
        retry.succeeded();
        assert!(retry.failed(later, limit));
        assert_eq!(
            retry.next_attempt(),
            Some(later + Duration::from_millis(100))
        );

        // Without a limit it never gives up.
        let mut forever = Retry::new();
        for hours in 0..100 {
            assert!(forever.failed(start + Duration::from_hours(hours), None));
        }
        assert_eq!(
            forever.next_attempt(),
            Some(start + Duration::from_hours(99) + RECONNECT_BACKOFF_MAX)
        );
    }
}
