//! Fetch pipelining: while one fetch's records are decoded and handled,
//! the next fetch (from the positions its response gives) is already on
//! its way, as Kafka's consumers do. A prefetch is used only if nothing it was
//! built from has changed by the next poll (positions, seeks, assignment,
//! group membership); otherwise it is dropped and a fresh fetch is sent.

use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::{FetchRequest, FetchResponse};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::ClientError;

/// How long a prefetch may wait at the broker for data: as a long-poll
/// does, so that a consumer that caught up asks again only this often.
pub(crate) const PREFETCH_WAIT: Duration = Duration::from_millis(500);

/// What a fetch brings back: the response head and its body.
pub(crate) type Fetched = Result<(FetchResponse, Bytes), ClientError>;

/// A fetch sent ahead, with what it was built from.
#[derive(Debug)]
pub(crate) struct Prefetch {
    /// Indices into the consumer's assignment, in the request's order.
    pub(crate) fetching: Vec<usize>,
    /// The request sent.
    pub(crate) request: FetchRequest,
    /// How many partitions were assigned then.
    pub(crate) assigned: usize,
    task: JoinHandle<Fetched>,
}

impl Prefetch {
    /// Sends `request` now, on its own task.
    pub(crate) fn start(
        client: &Client,
        fetching: Vec<usize>,
        request: FetchRequest,
        assigned: usize,
    ) -> Self {
        let client = client.clone();
        let sent = request.clone();
        let task = tokio::spawn(async move {
            client
                .request_with_wait(&sent, Vec::new(), PREFETCH_WAIT)
                .await
        });
        Self {
            fetching,
            request,
            assigned,
            task,
        }
    }

    /// Its answer, waiting at most `wait`; the prefetch back if it is still
    /// on its way.
    pub(crate) async fn answer(mut self, wait: Duration) -> Result<Fetched, Self> {
        match tokio::time::timeout(wait, &mut self.task).await {
            Ok(Ok(fetched)) => Ok(fetched),
            // The task panicked or was cancelled: as a lost request.
            Ok(Err(e)) => Ok(Err(ClientError::Protocol(format!("prefetch failed: {e}")))),
            Err(_) => Err(self),
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
