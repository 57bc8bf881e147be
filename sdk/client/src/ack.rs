//! A batch's acknowledgement, awaited by each of its records' futures.
//!
//! One per batch, shared by reference count: a record's future costs no
//! allocation of its own (a `watch` receiver with a boxed `async` block
//! did). The sender side completes it once; dropped without completing,
//! it completes with [`ClientError::Closed`], so no future waits forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::ClientError;

/// The outcome: the batch's base offset, or why it was not stored.
pub(crate) type Outcome = Result<u64, ClientError>;

#[derive(Debug, Default)]
struct Shared {
    outcome: OnceLock<Outcome>,
    /// Tasks waiting for the outcome, taken (and woken) on completion.
    waiting: Mutex<Vec<Waker>>,
}

/// Completes the acknowledgement (the producer keeps it with the batch).
#[derive(Debug, Default)]
pub(crate) struct AckSender(Arc<Shared>);

impl AckSender {
    /// A future for the record at `index` of the batch.
    pub(crate) fn subscribe(&self) -> AckReceiver {
        AckReceiver {
            shared: Arc::clone(&self.0),
            slot: None,
        }
    }

    /// Sets the outcome and wakes every waiting future.
    pub(crate) fn complete(self, outcome: Outcome) {
        self.set(outcome);
    }

    fn set(&self, outcome: Outcome) {
        if self.0.outcome.set(outcome).is_ok() {
            let waiting = std::mem::take(
                &mut *self
                    .0
                    .waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for waker in waiting {
                waker.wake();
            }
        }
    }
}

impl Drop for AckSender {
    fn drop(&mut self) {
        // A no-op when completed; otherwise the batch was abandoned.
        self.set(Err(ClientError::Closed));
    }
}

/// Resolves to the batch's outcome.
#[derive(Debug)]
pub(crate) struct AckReceiver {
    shared: Arc<Shared>,
    /// Where this future's waker sits in the waiting list, once polled.
    slot: Option<usize>,
}

impl Future for AckReceiver {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        if let Some(outcome) = self.shared.outcome.get() {
            return Poll::Ready(outcome.clone());
        }
        let shared = Arc::clone(&self.shared);
        let mut waiting = shared
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Completion sets the outcome before it takes the list: checked
        // again under the lock, no wake-up is lost.
        if let Some(outcome) = shared.outcome.get() {
            return Poll::Ready(outcome.clone());
        }
        if let Some(slot) = self.slot {
            waiting[slot].clone_from(cx.waker());
        } else {
            self.slot = Some(waiting.len());
            waiting.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_receiver_gets_the_outcome_and_a_dropped_sender_closes() {
        let sender = AckSender::default();
        let first = tokio::spawn(sender.subscribe());
        let second = tokio::spawn(sender.subscribe());
        tokio::task::yield_now().await;
        sender.complete(Ok(7));
        assert_eq!(first.await.unwrap().unwrap(), 7);
        assert_eq!(second.await.unwrap().unwrap(), 7);

        let abandoned = AckSender::default();
        let waiting = tokio::spawn(abandoned.subscribe());
        drop(abandoned);
        assert!(matches!(waiting.await.unwrap(), Err(ClientError::Closed)));
    }
}
