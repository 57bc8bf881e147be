//! Fetch: read whole batches from many partitions, long-polling until
//! `min_bytes` are there, `max_wait_ms` passes, or the broker shuts down.
//!
//! An offset equal to the high watermark waits for data; one below the log
//! start offset or above the high watermark is answered with
//! `OffsetOutOfRange` and the valid range, as Kafka does.
//! Any per-partition error ends the wait at once, as in Kafka. A fetch that
//! names a group member is fenced: each partition must be the member's at
//! its current epoch. A fetch that names a module has the module run on
//! each record read (see [`crate::transforms::fetch`]); only the records it
//! keeps are sent, and `next_offset` tells the client to move past the rest.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::select_all;
use quiver_proto::api::{FetchModule, FetchRequest};
use quiver_proto::batch::split_batches;
use quiver_proto::limits::{MAX_BATCH_BYTES, MAX_FETCH_BYTES, MAX_FETCH_WAIT_MS};
use quiver_proto::{ErrorCode, WireError};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use super::{check_entries, shutting_down};
use crate::service::Service;
use crate::storage::{Offsets, Partition, ReadResult, Storage};
use crate::transforms::TransformError;

/// What a fetch read: per partition of the request, in its order, the
/// whole batches read (or why not), and the response's share of the
/// broker's memory budget, to hold until the response is written.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) partitions: Vec<Result<PartitionRead, WireError>>,
    pub(crate) memory: OwnedSemaphorePermit,
}

/// One partition's part of a fetch.
#[derive(Debug)]
pub(crate) struct PartitionRead {
    /// The partition's offsets when the read began.
    pub(crate) offsets: Offsets,
    /// Whole batches back to back (empty when there was nothing yet).
    pub(crate) batches: Bytes,
    /// Where the partition's next fetch starts.
    pub(crate) next_offset: u64,
}

pub(crate) async fn handle(
    service: &Service,
    request: &FetchRequest,
) -> Result<Fetched, WireError> {
    let _timer = service.metrics.time_fetch();
    check_entries(request.partitions.len(), "partitions")?;
    let wait = Duration::from_millis(u64::from(request.max_wait_ms.min(MAX_FETCH_WAIT_MS)));
    let deadline = Instant::now() + wait;
    let max_bytes = request.max_bytes.min(MAX_FETCH_BYTES) as usize;
    let targets: Vec<Result<Arc<Partition>, WireError>> = request
        .partitions
        .iter()
        .map(|p| {
            // A group member may only read what it owns at its epoch.
            if let Some(member) = &request.member {
                service
                    .coordinator
                    .check_fetch(member, &p.topic, p.partition)?;
            }
            Ok(service.storage.partition(&p.topic, p.partition)?)
        })
        .collect();

    loop {
        // Subscribe before reading, so a commit after the read wakes us.
        let mut wakers: Vec<watch::Receiver<Offsets>> =
            targets.iter().flatten().map(|p| p.subscribe()).collect();
        // At most MAX_CONCURRENT_FETCH_READS reads hold their data before it
        // is accounted for in the memory budget below.
        let reading = service
            .fetch_reads
            .acquire()
            .await
            .map_err(|_| shutting_down())?;
        let reads = read_all(&service.storage, request, &targets, max_bytes).await?;
        let total: usize = reads.iter().flatten().map(|r| r.batches.len()).sum();
        let any_error = reads.iter().any(Result::is_err);
        let expired = Instant::now() >= deadline || service.shutdown.is_cancelled();
        if total >= request.min_bytes as usize || any_error || expired {
            // The response's bytes count against the broker's request
            // memory until they are written.
            let reads = match &request.module {
                Some(module) => run_module(service, request, module, reads).await?,
                None => reads
                    .into_iter()
                    .zip(&request.partitions)
                    .map(|(read, p)| read.map(|read| with_next_offset(read, p.offset)))
                    .collect(),
            };
            let total: usize = reads.iter().flatten().map(|(r, _)| r.batches.len()).sum();
            let memory = Arc::clone(&service.request_memory)
                .acquire_many_owned(total as u32)
                .await
                .map_err(|_| shutting_down())?;
            drop(reading);
            record_fetched(service, request, &reads);
            let partitions = reads
                .into_iter()
                .map(|read| {
                    read.map(|(read, next_offset)| PartitionRead {
                        offsets: read.offsets,
                        batches: Bytes::from(read.batches),
                        next_offset,
                    })
                })
                .collect();
            return Ok(Fetched { partitions, memory });
        }
        drop(reading);
        let changed = async {
            if wakers.is_empty() {
                std::future::pending::<()>().await;
            }
            let _ = select_all(wakers.iter_mut().map(|w| Box::pin(w.changed()))).await;
        };
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = service.shutdown.cancelled() => {}
        }
    }
}

/// Reads every partition on a blocking thread, sharing `max_bytes` among them.
async fn read_all(
    storage: &Arc<Storage>,
    request: &FetchRequest,
    targets: &[Result<Arc<Partition>, WireError>],
    max_bytes: usize,
) -> Result<Vec<Result<ReadResult, WireError>>, WireError> {
    let work: Vec<(Result<Arc<Partition>, WireError>, u64, usize)> = request
        .partitions
        .iter()
        .zip(targets)
        .map(|(p, t)| (t.clone(), p.offset, p.max_bytes as usize))
        .collect();
    let storage = Arc::clone(storage);
    tokio::task::spawn_blocking(move || {
        let mut remaining = max_bytes;
        work.into_iter()
            .map(|(partition, offset, partition_max)| {
                let partition = partition?;
                if remaining == 0 {
                    // Budget spent: report where the partition stands only.
                    return Ok(ReadResult {
                        offsets: partition.offsets(),
                        batches: Vec::new(),
                    });
                }
                // Only the response's first batch may exceed the budget (so
                // a batch larger than max_bytes is still delivered); later
                // partitions stay within what is left, keeping the whole
                // response under the frame limit.
                let first = remaining == max_bytes;
                let read =
                    storage.read_within(&partition, offset, partition_max.min(remaining), first)?;
                remaining = remaining.saturating_sub(read.batches.len());
                Ok(read)
            })
            .collect()
    })
    .await
    .map_err(|e| {
        WireError::new(
            ErrorCode::UnknownServerError,
            format!("read task failed: {e}"),
        )
    })
}

/// A read and the offset the partition's next fetch starts at.
type Read = (ReadResult, u64);

/// The offset after the last record of `read` (`offset` if it is empty).
fn with_next_offset(read: ReadResult, offset: u64) -> Read {
    let next = split_batches(&read.batches)
        .flatten()
        .last()
        .map_or(offset, |batch| batch.last_offset() + 1);
    (read, next)
}

/// Runs the fetch-time module over every partition's batches, on a
/// blocking thread; a module failure fails the fetch.
async fn run_module(
    service: &Service,
    request: &FetchRequest,
    module: &FetchModule,
    reads: Vec<Result<ReadResult, WireError>>,
) -> Result<Vec<Result<Read, WireError>>, WireError> {
    let modules = service.transforms.fetch_modules();
    let module = module.clone();
    let places: Vec<(String, u32, u64)> = request
        .partitions
        .iter()
        .map(|p| (p.topic.clone(), p.partition, p.offset))
        .collect();
    let reads = tokio::task::spawn_blocking(move || {
        // The partitions share one output budget, leaving room for the one
        // batch a partition's answer may end with past it.
        let mut room = (MAX_FETCH_BYTES - MAX_BATCH_BYTES) as usize;
        reads
            .into_iter()
            .zip(places)
            .map(|(read, (topic, partition, offset))| {
                let read = match read {
                    Ok(read) => read,
                    Err(e) => return Ok(Err(e)),
                };
                if read.batches.is_empty() {
                    return Ok(Ok((read, offset)));
                }
                let filtered =
                    modules.apply(&module, &topic, partition, &read.batches, offset, room)?;
                room = room.saturating_sub(filtered.batches.len());
                let read = ReadResult {
                    offsets: read.offsets,
                    batches: filtered.batches,
                };
                Ok(Ok((read, filtered.next_offset)))
            })
            .collect::<Result<Vec<_>, TransformError>>()
            .map_err(WireError::from)
    })
    .await
    .map_err(|e| {
        WireError::new(
            ErrorCode::UnknownServerError,
            format!("module task failed: {e}"),
        )
    })??;
    // A map may make records larger than what was read: the response must
    // still fit a frame.
    let total: usize = reads.iter().flatten().map(|(r, _)| r.batches.len()).sum();
    if total > MAX_FETCH_BYTES as usize {
        return Err(WireError::new(
            ErrorCode::ModuleFailed,
            format!(
                "the fetch-time module's output ({total} bytes) exceeds the fetch limit of {MAX_FETCH_BYTES} bytes; fetch fewer bytes"
            ),
        ));
    }
    Ok(reads)
}

/// Counts what a fetch sends, per topic. Records are counted from the batch
/// headers (whole batches, so records before the fetch position count too).
fn record_fetched(service: &Service, request: &FetchRequest, reads: &[Result<Read, WireError>]) {
    for (p, read) in request.partitions.iter().zip(reads) {
        let Ok((read, _)) = read else { continue };
        if read.batches.is_empty() {
            continue;
        }
        let records: u64 = split_batches(&read.batches)
            .flatten()
            .map(|batch| u64::from(batch.record_count()))
            .sum();
        service
            .metrics
            .record_fetched(&p.topic, records, read.batches.len() as u64);
    }
}
