//! Produce: validate each batch, hand it to the group-commit writer, and
//! answer once the commit holding it is durable.
//!
//! Batches are validated in full (CRC, counts, record framing, compressed
//! records decompressed to check them) and stored as sent: the writer only
//! rewrites the base offset, outside the CRC. As in Kafka, two topic
//! settings change a batch on arrival: on a `LogAppendTime` topic the
//! broker stamps the header's timestamp type and max timestamp, and a topic
//! whose `compression.type` names a codec gets batches sent with another
//! codec recompressed (one whose records do not compress to within the
//! batch limit is kept as sent).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use futures_util::future::join_all;

use quiver_proto::api::{ProduceResult, TimestampType, TopicCompression};
use quiver_proto::batch::{
    BatchError, BatchSummary, BatchView, Compression, recompress, set_log_append_time, validate,
};
use quiver_proto::limits::{
    MAX_BATCH_BYTES, MAX_DECOMPRESSED_BATCH_BYTES, MAX_DECOMPRESSED_REQUEST_BYTES,
};
use quiver_proto::{ErrorCode, ErrorDetail, WireError};

use tokio::sync::oneshot;

use super::check_entries;
use crate::metrics::Timer;
use crate::service::Service;
use crate::storage::{ProducerBatch, StorageError};

/// What one produce request may still decompress, shared by its topics
/// (a Kafka produce request names several): [`MAX_DECOMPRESSED_REQUEST_BYTES`]
/// at first.
#[derive(Debug)]
pub(crate) struct DecompressionBudget(AtomicU64);

impl DecompressionBudget {
    /// A fresh request's budget.
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(MAX_DECOMPRESSED_REQUEST_BYTES))
    }

    fn exhausted(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }

    fn spend(&self, bytes: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(bytes))
            });
    }
}

/// Appends `batches` (partition, batch bytes) to `topic` and answers per
/// batch once its commit is durable (or why it was refused). An unknown
/// topic fails the whole call. Compressed batches spend `budget`.
pub(crate) async fn handle(
    service: &Service,
    topic_name: &str,
    batches: Vec<(u32, BytesMut)>,
    budget: &DecompressionBudget,
) -> Result<Vec<ProduceResult>, WireError> {
    Ok(queue(service, topic_name, batches, budget)
        .await?
        .results()
        .await)
}

/// A produce's batches, queued for the writer in the order sent; each
/// answered once its commit is durable.
pub(crate) struct Queued<'a> {
    service: &'a Service,
    topic_name: String,
    batches: Vec<QueuedBatch>,
    _timer: Timer<'a>,
}

/// One batch of a [`Queued`] produce.
struct QueuedBatch {
    partition: u32,
    bytes: u64,
    /// The writer's reply and the batch's record count, or why the batch
    /// was not queued.
    pending: Result<(AppendReply, u32), WireError>,
}

/// The writer's answer to one queued batch: its base offset once durable.
type AppendReply = oneshot::Receiver<Result<u64, StorageError>>;

/// The first half of [`handle`]: validates `batches` and queues them for
/// the writer one after another, so that batches of one partition are
/// appended in the order sent, whatever comes after. The Kafka listener
/// queues a connection's next produce request while this one's commit is
/// still under way.
pub(crate) async fn queue<'a>(
    service: &'a Service,
    topic_name: &str,
    batches: Vec<(u32, BytesMut)>,
    budget: &DecompressionBudget,
) -> Result<Queued<'a>, WireError> {
    let timer = service.metrics.time_produce();
    check_entries(batches.len(), "batches")?;
    let topic = service.storage.topic(topic_name)?;
    let log_append_time = (topic.config.timestamp_type == TimestampType::LogAppendTime)
        .then(|| service.clock.now_ms());
    let mut queued = Vec::with_capacity(batches.len());
    for (partition, mut batch) in batches {
        let bytes = batch.len() as u64;
        let checked = topic
            .partition(partition)
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::UnknownPartition,
                    format!(
                        "topic {topic_name:?} has no partition {partition} (it has {})",
                        topic.partitions.len()
                    ),
                )
            })
            .and_then(|p| Ok((p.clone(), check_batch(&batch, budget)?)));
        if let (Ok((_, summary)), TopicCompression::Codec(codec)) =
            (&checked, topic.config.compression)
        {
            recompress_into(&mut batch, summary, codec);
        }
        if let (Ok(_), Some(now)) = (&checked, log_append_time) {
            set_log_append_time(&mut batch, now);
        }
        let pending = match checked {
            Ok((handle, summary)) => service
                .storage
                .queue_append(
                    handle,
                    batch,
                    summary.record_count,
                    log_append_time.unwrap_or(summary.max_timestamp),
                    producer_batch(&summary, service.clock.now_ms()),
                )
                .await
                .map(|reply| (reply, summary.record_count))
                .map_err(WireError::from),
            Err(e) => Err(e),
        };
        queued.push(QueuedBatch {
            partition,
            bytes,
            pending,
        });
    }
    Ok(Queued {
        service,
        topic_name: topic_name.to_owned(),
        batches: queued,
        _timer: timer,
    })
}

impl Queued<'_> {
    /// Each batch's outcome, once the commits holding them are durable.
    pub(crate) async fn results(self) -> Vec<ProduceResult> {
        let (service, topic_name) = (self.service, self.topic_name.as_str());
        let results = self.batches.into_iter().map(|batch| async move {
            let QueuedBatch {
                partition,
                bytes,
                pending,
            } = batch;
            let outcome = match pending {
                Ok((reply, records)) => reply
                    .await
                    .map_err(|_| service.storage.health().stopped_error())
                    .and_then(|result| result)
                    .inspect(|_| {
                        service
                            .metrics
                            .record_produced(topic_name, u64::from(records), bytes);
                    })
                    .map_err(WireError::from),
                Err(e) => Err(e),
            };
            ProduceResult { partition, outcome }
        });
        join_all(results).await
    }
}

/// Recompresses a validated batch with `codec` when it was sent with
/// another one.
fn recompress_into(batch: &mut BytesMut, summary: &BatchSummary, codec: Compression) {
    if summary.compression == codec {
        return;
    }
    if let Ok(Cow::Owned(stored)) = recompress(batch, codec) {
        *batch = BytesMut::from(&stored[..]);
    }
}

/// An idempotent producer's batch as storage checks it: its sequence range
/// (sequences wrap from `i32::MAX` to 0, as in Kafka).
fn producer_batch(summary: &BatchSummary, now_ms: i64) -> Option<ProducerBatch> {
    const SEQUENCES: i64 = i32::MAX as i64 + 1;
    summary.producer.map(|p| ProducerBatch {
        producer_id: p.producer_id,
        epoch: p.epoch,
        first_sequence: p.base_sequence,
        last_sequence: ((i64::from(p.base_sequence) + i64::from(summary.record_count) - 1)
            % SEQUENCES) as i32,
        received_ms: now_ms,
    })
}

/// Validates one batch. A compressed one spends `budget`: what its records
/// decompressed to, or the most a batch may when it failed (its work was
/// done all the same); once the budget is spent, compressed batches are
/// refused without being decompressed.
fn check_batch(batch: &[u8], budget: &DecompressionBudget) -> Result<BatchSummary, WireError> {
    let compressed = BatchView::parse(batch)
        .and_then(|view| view.compression())
        .is_ok_and(|codec| codec != Compression::None);
    if compressed && budget.exhausted() {
        return Err(WireError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "a produce request's compressed batches may decompress to {MAX_DECOMPRESSED_REQUEST_BYTES} bytes in all; send fewer per request"
            ),
        ));
    }
    let checked = validate(batch);
    if compressed {
        budget.spend(
            checked
                .as_ref()
                .map_or(u64::from(MAX_DECOMPRESSED_BATCH_BYTES), |summary| {
                    summary.records_bytes as u64
                }),
        );
    }
    match checked {
        Ok(summary) => Ok(summary),
        Err(e @ BatchError::TooLarge { size, .. }) => Err(WireError::new(
            ErrorCode::BatchTooLarge,
            e.to_string(),
        )
        .with_detail(ErrorDetail::Size {
            size: size as u64,
            max: u64::from(MAX_BATCH_BYTES),
        })),
        Err(e @ BatchError::UnsupportedCompression(_)) => Err(WireError::new(
            ErrorCode::UnsupportedCompression,
            e.to_string(),
        )),
        Err(e @ BatchError::DecompressedTooLarge { .. }) => Err(WireError::new(
            ErrorCode::BatchTooLarge,
            format!("{e}; send smaller batches"),
        )),
        Err(e) => Err(WireError::new(
            ErrorCode::CorruptBatch,
            format!("corrupt batch: {e}"),
        )),
    }
}
