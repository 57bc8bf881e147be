//! `ListOffsets`: earliest, latest, or the first offset at or after a time
//! (through the time index).

use std::sync::Arc;

use quiver_proto::api::{ListOffsetsRequest, ListOffsetsResponse, ListOffsetsResult, OffsetSpec};
use quiver_proto::{ErrorCode, WireError};

use super::check_entries;
use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: ListOffsetsRequest,
) -> Result<ListOffsetsResponse, WireError> {
    check_entries(request.partitions.len(), "partitions")?;
    let storage = Arc::clone(&service.storage);
    // Timestamp lookups read the log, so the whole request runs off the
    // async threads.
    tokio::task::spawn_blocking(move || {
        let partitions = request
            .partitions
            .into_iter()
            .map(|p| {
                let outcome = storage
                    .partition(&p.topic, p.partition)
                    .and_then(|partition| match p.spec {
                        OffsetSpec::Earliest => Ok(partition.offsets().log_start_offset),
                        OffsetSpec::Latest => Ok(partition.offsets().high_watermark),
                        OffsetSpec::Timestamp(ts) => storage.offset_for_timestamp(&partition, ts),
                    })
                    .map_err(WireError::from);
                ListOffsetsResult {
                    topic: p.topic,
                    partition: p.partition,
                    outcome,
                }
            })
            .collect();
        ListOffsetsResponse { partitions }
    })
    .await
    .map_err(|e| {
        WireError::new(
            ErrorCode::UnknownServerError,
            format!("lookup task failed: {e}"),
        )
    })
}
