//! `ListOffsets`: earliest, latest, or the first offset at or after a time
//! (through the time index), with that record's own timestamp.

use std::sync::Arc;

use quiver_proto::api::{ListOffsetsRequest, ListOffsetsResponse, ListOffsetsResult, OffsetSpec};
use quiver_proto::{ErrorCode, WireError};

use super::check_entries;
use crate::service::Service;
use crate::storage::TimeLookup;

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
                let found = storage
                    .partition(&p.topic, p.partition)
                    .and_then(|partition| match p.spec {
                        OffsetSpec::Earliest => Ok((partition.offsets().log_start_offset, None)),
                        OffsetSpec::Latest => Ok((partition.offsets().high_watermark, None)),
                        OffsetSpec::Timestamp(ts) => {
                            Ok(match storage.find_by_timestamp(&partition, ts)? {
                                TimeLookup::Found { offset, timestamp } => {
                                    (offset, Some(timestamp))
                                }
                                TimeLookup::AfterAll { high_watermark } => (high_watermark, None),
                            })
                        }
                    })
                    .map_err(WireError::from);
                ListOffsetsResult {
                    topic: p.topic,
                    partition: p.partition,
                    timestamp: found.as_ref().ok().and_then(|(_, ts)| *ts),
                    outcome: found.map(|(offset, _)| offset),
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
