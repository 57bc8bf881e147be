//! Idempotent producers, as Kafka keeps them: producer ids handed out
//! durably, and per partition and producer the epoch and the last
//! [`REMEMBERED_BATCHES`] batches' sequence ranges and offsets, stored in
//! the same transaction as the batches (`producer_state` in
//! [`super::tables`]), so that after a crash a retried batch is still
//! recognised.
//!
//! A batch from a known producer is, in order of the checks:
//! - from an older epoch: refused (`InvalidProducerEpoch`);
//! - a newer epoch: the producer started over; its sequence must be 0;
//! - one of the remembered batches again (a retry): not stored again, and
//!   answered with the offset it was stored at, as Kafka answers;
//! - the next sequence after the last batch: stored;
//! - anything else: refused (`OutOfOrderSequence`), so a retry can neither
//!   duplicate nor reorder a partition.
//!
//! A producer unknown on the partition may start at any sequence (its
//! state may have expired: [`PRODUCER_ID_EXPIRATION_MS`] without a batch).

use serde::{Deserialize, Serialize};

use super::StorageError;

/// Batches remembered per producer and partition (Kafka's limit of
/// batches in flight per connection with idempotence).
pub const REMEMBERED_BATCHES: usize = quiver_proto::limits::REMEMBERED_PRODUCER_BATCHES;

/// A producer's state on a partition is forgotten after this long without
/// a batch (Kafka's `producer.id.expiration.ms`).
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// What a batch's header says about its producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The producer id (from `InitProducerId`).
    pub producer_id: u64,
    /// Its epoch.
    pub epoch: i16,
    /// The first record's sequence number.
    pub first_sequence: i32,
    /// The last record's.
    pub last_sequence: i32,
    /// When the broker received it (ms since the epoch), for expiry.
    pub received_ms: i64,
}

/// One producer's state on one partition, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProducerState {
    epoch: i16,
    last_batch_ms: i64,
    /// (first sequence, last sequence, base offset), oldest first.
    batches: Vec<(i32, i32, u64)>,
}

impl ProducerState {
    /// When its last batch came.
    pub(crate) fn last_batch_ms(&self) -> i64 {
        self.last_batch_ms
    }
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Store it.
    Append,
    /// A retry of a batch stored at this base offset.
    Duplicate(u64),
}

/// Checks `batch` against its producer's state on the partition.
pub(crate) fn check(
    state: Option<&ProducerState>,
    batch: &ProducerBatch,
) -> Result<Verdict, StorageError> {
    let Some(state) = state else {
        return Ok(Verdict::Append);
    };
    if batch.epoch < state.epoch {
        return Err(StorageError::InvalidProducerEpoch {
            current: state.epoch,
            got: batch.epoch,
        });
    }
    if batch.epoch > state.epoch {
        return if batch.first_sequence == 0 {
            Ok(Verdict::Append)
        } else {
            Err(StorageError::OutOfOrderSequence {
                expected: 0,
                got: batch.first_sequence,
            })
        };
    }
    if let Some(&(_, _, base)) = state
        .batches
        .iter()
        .find(|(first, last, _)| (*first, *last) == (batch.first_sequence, batch.last_sequence))
    {
        return Ok(Verdict::Duplicate(base));
    }
    let expected = state.batches.last().map_or(
        0,
        |&(_, last, _)| if last == i32::MAX { 0 } else { last + 1 },
    );
    if batch.first_sequence == expected {
        Ok(Verdict::Append)
    } else {
        Err(StorageError::OutOfOrderSequence {
            expected,
            got: batch.first_sequence,
        })
    }
}

/// The state after `batch` was stored at `base`.
pub(crate) fn record(
    state: Option<ProducerState>,
    batch: &ProducerBatch,
    base: u64,
) -> ProducerState {
    let mut state = match state {
        Some(state) if state.epoch == batch.epoch => state,
        _ => ProducerState {
            epoch: batch.epoch,
            last_batch_ms: batch.received_ms,
            batches: Vec::with_capacity(REMEMBERED_BATCHES),
        },
    };
    if state.batches.len() == REMEMBERED_BATCHES {
        state.batches.remove(0);
    }
    state
        .batches
        .push((batch.first_sequence, batch.last_sequence, base));
    state.last_batch_ms = state.last_batch_ms.max(batch.received_ms);
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: last,
            received_ms: 1_000,
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_recognised() {
        let first = batch(0, 0, 9);
        assert!(matches!(check(None, &first), Ok(Verdict::Append)));
        let state = record(None, &first, 100);
        let second = batch(0, 10, 19);
        assert!(matches!(check(Some(&state), &second), Ok(Verdict::Append)));
        let state = record(Some(state), &second, 110);
        assert!(matches!(
            check(Some(&state), &first),
            Ok(Verdict::Duplicate(100))
        ));
        assert!(matches!(
            check(Some(&state), &second),
            Ok(Verdict::Duplicate(110))
        ));
    }

    #[test]
    fn gaps_old_epochs_and_restarts() {
        let state = record(None, &batch(2, 0, 4), 0);
        assert!(matches!(
            check(Some(&state), &batch(2, 7, 9)),
            Err(StorageError::OutOfOrderSequence {
                expected: 5,
                got: 7
            })
        ));
        assert!(matches!(
            check(Some(&state), &batch(1, 5, 9)),
            Err(StorageError::InvalidProducerEpoch { current: 2, got: 1 })
        ));
        assert!(matches!(
            check(Some(&state), &batch(3, 0, 0)),
            Ok(Verdict::Append)
        ));
        assert!(check(Some(&state), &batch(3, 5, 5)).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut state = None;
        for i in 0..6 {
            let b = batch(0, i * 10, i * 10 + 9);
            state = Some(record(state, &b, u64::try_from(i).unwrap_or(0)));
        }
        let state = state.expect("state");
        assert_eq!(state.batches.len(), REMEMBERED_BATCHES);
        // The first batch is forgotten: sent again, it is out of order.
        assert!(check(Some(&state), &batch(0, 0, 9)).is_err());
        let near_end = record(None, &batch(0, i32::MAX - 1, i32::MAX), 0);
        assert!(matches!(
            check(Some(&near_end), &batch(0, 0, 3)),
            Ok(Verdict::Append)
        ));
    }
}
