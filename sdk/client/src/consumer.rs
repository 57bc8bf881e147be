//! The consumer: assigned partitions, a position per partition, and
//! long-polling fetches over all of them at once.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quiver_proto::api::{
    FetchModule, FetchPartition, FetchRequest, ListOffsetsPartition, OffsetSpec,
};
use quiver_proto::batch::{
    BatchView, Compression, HEADER_BYTES, Header, decompress, split_batches,
};
use quiver_proto::limits::{MAX_FETCH_BYTES, MAX_PARTITIONS_PER_REQUEST};

use crate::admin::Admin;
use crate::client::Client;
use crate::error::ClientError;
use crate::group::{GroupSettings, Membership, RebalanceEvent};
use crate::prefetch::{PREFETCH_WAIT, Prefetch};
use crate::reconnect::{DEFAULT_RECONNECT_TIMEOUT, Retry};

pub use quiver_proto::topic::TopicPartition;

/// About the most bytes one poll decompresses: past it, the compressed
/// batches left are fetched again by the next poll (a batch decompresses to
/// at most 32 MiB, so a fetch response of highly compressed batches could
/// otherwise take hundreds of times its size).
pub const MAX_DECOMPRESSED_POLL_BYTES: usize = 64 * 1024 * 1024;

/// Where to (re)start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The first stored record (the log start offset).
    Earliest,
    /// After the last stored record (the high watermark): only new records.
    Latest,
    /// This offset.
    At(u64),
    /// The first record with a timestamp at or after this (ms since the
    /// epoch), found through the broker's time index; the high watermark
    /// when no record is that recent.
    Timestamp(i64),
}

/// How the consumer fetches.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Answer as soon as this many bytes are there.
    pub min_bytes: u32,
    /// Bytes per fetch, at most (at least one batch is always returned).
    pub max_bytes: u32,
    /// Bytes per partition per fetch, at most.
    pub partition_max_bytes: u32,
    /// Where a newly assigned partition starts (Kafka's `auto.offset.reset`):
    /// for a group member, where a partition without a committed offset
    /// starts.
    pub start: Offset,
    /// Group membership settings, used by [`Consumer::subscribe`].
    pub group: GroupSettings,
    /// A stored module the broker runs on each record before sending it
    /// (a filter or map); only what it returns is delivered, with the
    /// original offsets.
    pub module: Option<FetchModule>,
    /// How long [`Consumer::poll`] keeps retrying while the broker cannot
    /// be reached (with backoff, returning no records meanwhile) before it
    /// returns the error; `None` retries forever.
    pub reconnect_timeout: Option<Duration>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            min_bytes: 1,
            max_bytes: MAX_FETCH_BYTES,
            partition_max_bytes: 8 * 1024 * 1024,
            start: Offset::Latest,
            group: GroupSettings::default(),
            module: None,
            reconnect_timeout: Some(DEFAULT_RECONNECT_TIMEOUT),
        }
    }
}

/// A record as consumed. Key, value and header values share the fetched
/// buffer; nothing is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
    /// Timestamp, ms since the epoch.
    pub timestamp: i64,
    /// The key, if any.
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone), not an empty one.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<Header>,
}

#[derive(Debug)]
pub(crate) struct Assigned {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: u32,
    pub(crate) position: Option<u64>,
    pub(crate) seek: Option<Offset>,
    pub(crate) high_watermark: Option<u64>,
    /// Being given up (group mode): no longer fetched, released at the
    /// next poll.
    pub(crate) revoking: bool,
}

impl Assigned {
    pub(crate) fn new(tp: TopicPartition, seek: Offset) -> Self {
        Self {
            topic: tp.topic.into(),
            partition: tp.partition,
            position: None,
            seek: Some(seek),
            high_watermark: None,
            revoking: false,
        }
    }

    pub(crate) fn tp(&self) -> TopicPartition {
        TopicPartition::new(&*self.topic, self.partition)
    }
}

/// Reads records from assigned partitions, or from the partitions a
/// consumer group gives it ([`subscribe`](Self::subscribe)).
#[derive(Debug)]
pub struct Consumer {
    pub(crate) client: Client,
    pub(crate) config: ConsumerConfig,
    pub(crate) assigned: Vec<Assigned>,
    pub(crate) membership: Option<Membership>,
    pub(crate) events: Vec<RebalanceEvent>,
    /// Where the next fetch starts in `assigned`.
    rotation: usize,
    /// Backoff while the broker cannot be reached.
    retry: Retry,
    /// The next fetch, sent when the last one brought data.
    prefetch: Option<Prefetch>,
}

impl Consumer {
    /// A consumer over `client`'s connection with nothing assigned.
    pub fn new(client: Client, config: ConsumerConfig) -> Self {
        Self {
            client,
            config,
            assigned: Vec::new(),
            membership: None,
            events: Vec::new(),
            rotation: 0,
            retry: Retry::new(),
            prefetch: None,
        }
    }

    /// Replaces the assignment. Each partition starts at
    /// [`ConsumerConfig::start`] unless [`seek`](Self::seek) says otherwise.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        let start = self.config.start;
        self.assigned = partitions
            .into_iter()
            .map(|tp| Assigned::new(tp, start))
            .collect();
    }

    /// Assigns every partition of `topic`; returns how many there are.
    pub async fn assign_topic(&mut self, topic: &str) -> Result<u32, ClientError> {
        let description = Admin::new(self.client.clone())
            .describe_topic(topic)
            .await?;
        let count = description.partitions.len() as u32;
        self.assign((0..count).map(|p| TopicPartition::new(topic, p)));
        Ok(count)
    }

    /// The current assignment.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .map(|a| TopicPartition::new(&*a.topic, a.partition))
            .collect()
    }

    /// Moves a partition's position; takes effect at the next poll.
    pub fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<(), ClientError> {
        let assigned = self.find(tp)?;
        assigned.seek = Some(offset);
        Ok(())
    }

    /// Moves every assigned partition to its first record at or after
    /// `timestamp` (ms since the epoch); takes effect at the next poll.
    pub fn seek_to_timestamp(&mut self, timestamp: i64) {
        self.seek_all(Offset::Timestamp(timestamp));
    }

    /// Moves every assigned partition's position.
    pub fn seek_all(&mut self, offset: Offset) {
        for assigned in &mut self.assigned {
            assigned.seek = Some(offset);
        }
    }

    /// The next offset to be returned for a partition, once known.
    pub fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.assigned
            .iter()
            .find(|a| *a.topic == *tp.topic && a.partition == tp.partition)
            .and_then(|a| a.position)
    }

    /// The high watermark the last fetch saw for a partition.
    pub fn high_watermark(&self, tp: &TopicPartition) -> Option<u64> {
        self.assigned
            .iter()
            .find(|a| *a.topic == *tp.topic && a.partition == tp.partition)
            .and_then(|a| a.high_watermark)
    }

    /// Fetches from every assigned partition, waiting up to `timeout` for
    /// data. Returns the records in offset order per partition; an empty
    /// list when the wait ran out.
    ///
    /// A group member first heartbeats (when due), releases partitions it was
    /// asked to give up (committing them first with auto-commit), picks up
    /// new ones, and auto-commits; see [`subscribe`](Self::subscribe).
    ///
    /// On a partition error (e.g. `OffsetOutOfRange`) nothing is returned
    /// and no position moves; the error says which partition and why.
    ///
    /// A [retriable](ClientError::is_retriable) failure (the broker
    /// restarting, a lost connection) is retried with backoff
    /// ([`RECONNECT_BACKOFF_INITIAL`](crate::RECONNECT_BACKOFF_INITIAL)
    /// doubling to [`RECONNECT_BACKOFF_MAX`](crate::RECONNECT_BACKOFF_MAX)),
    /// returning no records while it lasts, for up to
    /// [`ConsumerConfig::reconnect_timeout`]; positions are kept. A group
    /// member that the broker no longer knows (it restarted) joins again:
    /// its partitions are reported [`RebalanceEvent::Lost`] and it resumes
    /// from the committed offsets of what it is given.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(attempt) = self.retry.next_attempt() {
                tokio::time::sleep_until(attempt.min(deadline).into()).await;
                if attempt > deadline {
                    return Ok(Vec::new());
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.poll_once(remaining).await {
                Ok(records) => {
                    if self.retry.failing() {
                        tracing::info!("consumer reaches the broker again");
                    }
                    self.retry.succeeded();
                    return Ok(records);
                }
                Err(e) if e.is_retriable() => {
                    if !self
                        .retry
                        .failed(Instant::now(), self.config.reconnect_timeout)
                    {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "consumer cannot reach the broker; retrying");
                    self.connection_lost();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt of [`poll`](Self::poll).
    async fn poll_once(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let wait = if self.membership.is_some() {
            self.group_step(timeout).await?
        } else {
            timeout
        };
        self.resolve_seeks().await?;
        let (fetching, fetched) = match self.prefetch.take() {
            Some(prefetch) if self.still_valid(&prefetch) => {
                let fetching = prefetch.fetching.clone();
                match prefetch.answer(wait).await {
                    Ok(fetched) => (fetching, fetched),
                    Err(pending) => {
                        // Still on its way after the whole wait: nothing yet.
                        self.prefetch = Some(pending);
                        return Ok(Vec::new());
                    }
                }
            }
            // Built from what has changed since (dropping it cancels it).
            _ => {
                let Some((fetching, request)) = self.next_request(wait, &[]) else {
                    tokio::time::sleep(wait).await;
                    return Ok(Vec::new());
                };
                let fetched = self
                    .client
                    .request_with_wait(&request, Vec::new(), wait)
                    .await;
                (fetching, fetched)
            }
        };
        let (response, body) = fetched?;
        if response.partitions.len() != fetching.len() {
            return Err(ClientError::Protocol(format!(
                "{} fetch results for {} partitions",
                response.partitions.len(),
                fetching.len()
            )));
        }
        // Data came: more is likely, so ask for it now, from where the
        // head says each partition goes on, and decode meanwhile.
        let ahead: Option<Vec<(usize, u64)>> = fetching
            .iter()
            .zip(&response.partitions)
            .map(|(&i, result)| result.outcome.as_ref().ok().map(|d| (i, d.next_offset)))
            .collect();
        if let Some(ahead) = ahead
            && response
                .partitions
                .iter()
                .any(|r| r.outcome.as_ref().is_ok_and(|d| d.bytes > 0))
            && let Some((fetching, request)) = self.next_request(PREFETCH_WAIT, &ahead)
        {
            let assigned = self.assigned.len();
            self.prefetch = Some(Prefetch::start(&self.client, fetching, request, assigned));
        }
        let mut records = Vec::with_capacity(records_in(&body));
        let mut updates = Vec::with_capacity(fetching.len());
        let mut cursor = 0usize;
        let mut budget = MAX_DECOMPRESSED_POLL_BYTES;
        for (&i, result) in fetching.iter().zip(response.partitions) {
            let assigned = &self.assigned[i];
            let data = match result.outcome {
                Ok(data) => data,
                Err(error) if self.membership.is_some() => {
                    // The group moved on (fenced, or the partition is gone
                    // or out of range): catch up and return nothing now.
                    self.recover_from_fetch_error(i, &error);
                    return Ok(Vec::new());
                }
                Err(error) => return Err(ClientError::Broker(error)),
            };
            let end = cursor + data.bytes as usize;
            let bytes = body.get(cursor..end).ok_or_else(|| {
                ClientError::Protocol("fetch body shorter than its head says".into())
            })?;
            cursor = end;
            let from = assigned.position.unwrap_or(0);
            let decoded = decode_into(
                &body.slice_ref(bytes),
                assigned,
                from,
                &mut records,
                &mut budget,
            )?;
            // Past records a fetch-time module dropped, too, unless decoding
            // stopped early (a prefetch from further on then no longer
            // matches the position, and is dropped).
            let next = if decoded.complete {
                decoded.next.max(data.next_offset)
            } else {
                decoded.next
            };
            updates.push((i, next, data.high_watermark));
        }
        for (i, next, high_watermark) in updates {
            self.assigned[i].position = Some(next);
            self.assigned[i].high_watermark = Some(high_watermark);
        }
        Ok(records)
    }

    /// The next fetch: the partitions to read (indices into the assignment)
    /// and the request, waiting up to `wait`, from the positions `ahead`
    /// gives (by index) or else the current ones; `None` with nothing to
    /// fetch.
    /// Each fetch starts at a different partition so that, when the byte
    /// budget runs out, no partition is always last, and asks for at most
    /// the broker's limit of partitions.
    fn next_request(
        &mut self,
        wait: Duration,
        ahead: &[(usize, u64)],
    ) -> Option<(Vec<usize>, FetchRequest)> {
        let count = self.assigned.len();
        self.rotation = if count == 0 {
            0
        } else {
            (self.rotation + 1) % count
        };
        let fetching: Vec<usize> = (0..count)
            .map(|i| (i + self.rotation) % count)
            .filter(|&i| !self.assigned[i].revoking && self.assigned[i].seek.is_none())
            .take(MAX_PARTITIONS_PER_REQUEST)
            .collect();
        if fetching.is_empty() {
            return None;
        }
        // By assignment index: a lookup per partition, not a search.
        let mut ahead_of = vec![None; count];
        for &(i, next) in ahead {
            if let Some(slot) = ahead_of.get_mut(i) {
                *slot = Some(next);
            }
        }
        let request = FetchRequest {
            member: self.membership.as_ref().map(Membership::member_ref),
            max_wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
            min_bytes: self.config.min_bytes,
            max_bytes: self.config.max_bytes,
            partitions: fetching
                .iter()
                .map(|&i| {
                    let a = &self.assigned[i];
                    FetchPartition {
                        topic: a.topic.to_string(),
                        partition: a.partition,
                        offset: ahead_of[i].or(a.position).unwrap_or(0),
                        max_bytes: self.config.partition_max_bytes,
                    }
                })
                .collect(),
            module: self.config.module.clone(),
        };
        Some((fetching, request))
    }

    /// Whether `prefetch` asks for what a fetch now would: the same
    /// partitions at the same positions (seeks are resolved into positions
    /// before this is asked), the same assignment and group membership.
    fn still_valid(&self, prefetch: &Prefetch) -> bool {
        let request = &prefetch.request;
        prefetch.assigned == self.assigned.len()
            && request.member == self.membership.as_ref().map(Membership::member_ref)
            && prefetch
                .fetching
                .iter()
                .zip(&request.partitions)
                .all(|(&i, p)| {
                    self.assigned.get(i).is_some_and(|a| {
                        !a.revoking
                            && *a.topic == *p.topic
                            && a.partition == p.partition
                            && a.position.unwrap_or(0) == p.offset
                    })
                })
    }

    /// Turns pending seeks into positions, resolving earliest, latest and
    /// timestamps in one `ListOffsets` request.
    async fn resolve_seeks(&mut self) -> Result<(), ClientError> {
        let mut lookups = Vec::new();
        let mut waiting = Vec::new();
        for (i, assigned) in self.assigned.iter_mut().enumerate() {
            let spec = match assigned.seek {
                None => continue,
                Some(Offset::At(offset)) => {
                    assigned.position = Some(offset);
                    assigned.seek = None;
                    continue;
                }
                Some(Offset::Earliest) => OffsetSpec::Earliest,
                Some(Offset::Latest) => OffsetSpec::Latest,
                Some(Offset::Timestamp(ts)) => OffsetSpec::Timestamp(ts),
            };
            lookups.push(ListOffsetsPartition {
                topic: assigned.topic.to_string(),
                partition: assigned.partition,
                spec,
            });
            waiting.push(i);
        }
        if lookups.is_empty() {
            return Ok(());
        }
        let admin = Admin::new(self.client.clone());
        let mut results = Vec::with_capacity(lookups.len());
        for chunk in lookups.chunks(MAX_PARTITIONS_PER_REQUEST) {
            results.extend(admin.list_offsets(chunk.to_vec()).await?);
        }
        for (i, result) in waiting.into_iter().zip(results) {
            let offset = result.outcome.map_err(ClientError::Broker)?;
            let assigned = &mut self.assigned[i];
            assigned.position = Some(offset);
            assigned.seek = None;
        }
        Ok(())
    }

    fn find(&mut self, tp: &TopicPartition) -> Result<&mut Assigned, ClientError> {
        self.assigned
            .iter_mut()
            .find(|a| *a.topic == *tp.topic && a.partition == tp.partition)
            .ok_or_else(|| ClientError::NotAssigned {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
    }
}

/// What one partition's decoding reached.
struct Decoded {
    /// The next position: after the last record decoded.
    next: u64,
    /// Whether every batch was decoded (else the decompression budget ran
    /// out first and the rest is fetched again).
    complete: bool,
}

/// How many records the batches of a fetch body hold, from their headers:
/// the capacity to decode them into at once (growing the vector as it
/// fills cost a copy of everything before and fresh pages each time). No
/// batch counts for more records than its bytes could hold uncompressed,
/// so a header's claim cannot reserve more than real records would take
/// (a compressed batch's records beyond that grow the vector as they come).
fn records_in(body: &[u8]) -> usize {
    // A record's length, attributes, timestamp and offset deltas, key and
    // value lengths and header count take a byte each at least.
    const SMALLEST_RECORD_BYTES: usize = 7;
    split_batches(body)
        .map_while(Result::ok)
        .map(|batch| {
            let room = batch.as_bytes().len().saturating_sub(HEADER_BYTES) / SMALLEST_RECORD_BYTES;
            (batch.record_count() as usize).min(room)
        })
        .sum()
}

/// Decodes one partition's batches, keeping records at or after `from`.
/// Compressed batches are decompressed while `budget` (bytes, shared by
/// the partitions of one poll) lasts; once it is spent, decoding stops
/// before the next compressed batch, unless `out` is still empty.
fn decode_into(
    bytes: &Bytes,
    assigned: &Assigned,
    from: u64,
    out: &mut Vec<ConsumerRecord>,
    budget: &mut usize,
) -> Result<Decoded, ClientError> {
    let corrupt = |e: quiver_proto::batch::BatchError| {
        ClientError::Protocol(format!(
            "corrupt batch from {}/{}: {e}",
            assigned.topic, assigned.partition
        ))
    };
    let mut next = from;
    for view in split_batches(bytes) {
        let view = view.map_err(corrupt)?;
        // The broker checked the CRC before storing; check it again here.
        view.verify_crc().map_err(corrupt)?;
        let compressed = view.compression().map_err(corrupt)? != Compression::None;
        if compressed && *budget == 0 && !out.is_empty() {
            return Ok(Decoded {
                next,
                complete: false,
            });
        }
        // Records borrow from the fetched bytes, or from the decompressed
        // batch when it was compressed.
        let bytes = match decompress(view.as_bytes()).map_err(corrupt)? {
            Cow::Borrowed(batch) => bytes.slice_ref(batch),
            Cow::Owned(plain) => {
                *budget = budget.saturating_sub(plain.len());
                Bytes::from(plain)
            }
        };
        let view = BatchView::parse(&bytes).map_err(corrupt)?;
        for record in view.records() {
            let record = record.map_err(corrupt)?;
            let offset = view.base_offset() + u64::from(record.offset_delta.max(0) as u32);
            if offset < from {
                continue;
            }
            out.push(ConsumerRecord {
                topic: Arc::clone(&assigned.topic),
                partition: assigned.partition,
                offset,
                timestamp: record.timestamp,
                key: record.key.map(|k| bytes.slice_ref(k)),
                value: record.value.map(|v| {
                    if v.is_empty() {
                        Bytes::new()
                    } else {
                        bytes.slice_ref(v)
                    }
                }),
                headers: record
                    .headers()
                    .map(|(key, value)| Header {
                        key: key.to_owned(),
                        value: value.map(|v| {
                            if v.is_empty() {
                                Bytes::new()
                            } else {
                                bytes.slice_ref(v)
                            }
                        }),
                    })
                    .collect(),
            });
            next = offset + 1;
        }
    }
    Ok(Decoded {
        next,
        complete: true,
    })
}

#[cfg(test)]
mod tests {
    use quiver_proto::batch::{BatchBuilder, HEADER_BYTES, NewRecord};

    use super::records_in;

    fn batch(records: usize) -> Vec<u8> {
        let mut builder = BatchBuilder::default();
        for _ in 0..records {
            let record = NewRecord {
                key: None,
                value: Some(b"value"),
                headers: &[],
                timestamp: 0,
            };
            builder.push(&record).expect("push");
        }
        builder.finish()
    }

    #[test]
    fn records_in_counts_every_batch_of_a_body() {
        let body = [batch(3), batch(2)].concat();
        assert_eq!(records_in(&body), 5);
        assert_eq!(records_in(&[]), 0);
    }

    #[test]
    fn records_in_believes_no_more_records_than_the_body_could_hold() {
        let mut body = batch(1);
        // The header's record count (bytes 57..61 of the v2 layout).
        body[57..61].copy_from_slice(&1_000_000i32.to_be_bytes());
        assert_eq!(records_in(&body), (body.len() - HEADER_BYTES) / 7);
        // A batch's claim is bounded by its own bytes, not the body's.
        let two = [body.clone(), batch(2)].concat();
        assert_eq!(records_in(&two), (body.len() - HEADER_BYTES) / 7 + 2);
    }
}
