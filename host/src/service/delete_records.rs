//! `DeleteRecords`: move partitions' log start offsets forward, as Kafka's
//! `DeleteRecords` does. Records below the new start are no longer read;
//! the batches wholly below it are deleted (a batch the new start falls
//! inside stays until retention or a later delete passes its end).

use quiver_proto::{ErrorCode, ErrorDetail, WireError};

use crate::service::Service;

/// Deletes the records of `topic` below each `(partition, before)` (`None`:
/// below the high watermark, everything); per partition, in order, the new
/// log start offset or why not. An unknown topic fails the whole call.
pub(crate) async fn handle(
    service: &Service,
    topic: &str,
    partitions: Vec<(u32, Option<u64>)>,
) -> Result<Vec<(u32, Result<u64, WireError>)>, WireError> {
    super::check_entries(partitions.len(), "partitions")?;
    let handle = service.storage.topic(topic)?;
    let mut results = Vec::with_capacity(partitions.len());
    for (index, before) in partitions {
        let outcome = async {
            let partition = handle.partition(index).ok_or_else(|| {
                WireError::new(
                    ErrorCode::UnknownPartition,
                    format!("topic {topic:?} has no partition {index}"),
                )
            })?;
            let offsets = partition.offsets();
            let before = before.unwrap_or(offsets.high_watermark);
            if before > offsets.high_watermark {
                return Err(WireError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!(
                        "records of {topic}/{index} can be deleted below {} at most, not {before}",
                        offsets.high_watermark
                    ),
                )
                .with_detail(ErrorDetail::OffsetRange {
                    log_start_offset: offsets.log_start_offset,
                    high_watermark: offsets.high_watermark,
                }));
            }
            service
                .storage
                .truncate(std::sync::Arc::clone(partition), before)
                .await?;
            Ok(partition.offsets().log_start_offset)
        }
        .await;
        results.push((index, outcome));
    }
    Ok(results)
}
