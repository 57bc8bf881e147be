//! `CommitOffsets`: fence by member epoch and ownership, then store durably.

use quiver_proto::ErrorCode;
use quiver_proto::WireError;
use quiver_proto::api::groups::{CommitOffsetsRequest, CommitOffsetsResponse};
use quiver_proto::limits::MAX_PARTITIONS_PER_REQUEST;

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: CommitOffsetsRequest,
) -> Result<CommitOffsetsResponse, WireError> {
    if request.offsets.len() > MAX_PARTITIONS_PER_REQUEST {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!(
                "{} offsets in one commit; the limit is {MAX_PARTITIONS_PER_REQUEST}",
                request.offsets.len()
            ),
        ));
    }
    context.coordinator.commit(request).await
}
