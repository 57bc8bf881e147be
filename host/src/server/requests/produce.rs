//! Produce: validate each batch, hand it to the group-commit writer, and
//! answer once the commit holding it is durable.
//!
//! Batches are validated in full (CRC, counts, record framing) but never
//! re-encoded: the writer only rewrites the base offset, outside the CRC.
//! On a `LogAppendTime` topic the broker also stamps the batch header's
//! timestamp type and max timestamp and recomputes the CRC, as Kafka does.

use bytes::BytesMut;
use futures_util::future::join_all;
use std::time::{SystemTime, UNIX_EPOCH};

use quiver_proto::api::{ProduceRequest, ProduceResponse, ProduceResult, TimestampType};
use quiver_proto::batch::{BatchError, BatchSummary, set_log_append_time, validate};
use quiver_proto::limits::MAX_BATCH_BYTES;
use quiver_proto::{ErrorCode, ErrorDetail, WireError};

use super::check_entries;
use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: ProduceRequest,
    mut body: BytesMut,
) -> Result<ProduceResponse, WireError> {
    let _timer = context.metrics.time_produce();
    check_entries(request.batches.len(), "batches")?;
    let declared: u64 = request.batches.iter().map(|b| u64::from(b.bytes)).sum();
    if declared != body.len() as u64 {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!(
                "the head describes {declared} batch bytes but the body has {}",
                body.len()
            ),
        ));
    }
    let topic = context.storage.topic(&request.topic)?;
    let log_append_time =
        (topic.config.timestamp_type == TimestampType::LogAppendTime).then(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        });

    let topic_name = request.topic.as_str();
    // Batches are queued for the writer one after another, so a request's
    // batches of one partition are appended in the order sent; only then
    // are the commits awaited, together.
    let mut queued = Vec::with_capacity(request.batches.len());
    for entry in &request.batches {
        let mut batch = body.split_to(entry.bytes as usize);
        let partition = entry.partition;
        let checked = topic
            .partition(partition)
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::UnknownPartition,
                    format!(
                        "topic {:?} has no partition {partition} (it has {})",
                        request.topic,
                        topic.partitions.len()
                    ),
                )
            })
            .and_then(|p| Ok((p.clone(), check_batch(&batch)?)));
        if let (Ok(_), Some(now)) = (&checked, log_append_time) {
            set_log_append_time(&mut batch, now);
        }
        let pending = match checked {
            Ok((handle, summary)) => context
                .storage
                .queue_append(
                    handle,
                    batch,
                    summary.record_count,
                    log_append_time.unwrap_or(summary.max_timestamp),
                )
                .await
                .map(|reply| (reply, summary.record_count))
                .map_err(WireError::from),
            Err(e) => Err(e),
        };
        queued.push((partition, entry.bytes, pending));
    }
    let results = queued
        .into_iter()
        .map(|(partition, bytes, pending)| async move {
            let outcome = match pending {
                Ok((reply, records)) => reply
                    .await
                    .map_err(|_| context.storage.health().stopped_error())
                    .and_then(|result| result)
                    .inspect(|_| {
                        context.metrics.record_produced(
                            topic_name,
                            u64::from(records),
                            u64::from(bytes),
                        );
                    })
                    .map_err(WireError::from),
                Err(e) => Err(e),
            };
            ProduceResult { partition, outcome }
        });
    Ok(ProduceResponse {
        results: join_all(results).await,
    })
}

/// Validates one batch.
fn check_batch(batch: &[u8]) -> Result<BatchSummary, WireError> {
    match validate(batch) {
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
        Err(e) => Err(WireError::new(
            ErrorCode::CorruptBatch,
            format!("corrupt batch: {e}"),
        )),
    }
}
