//! `CommitOffsets`: fence by member epoch and ownership, then store durably.

use quiver_proto::WireError;
use quiver_proto::api::groups::{CommitOffsetsRequest, CommitOffsetsResponse};

use super::check_entries;
use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: CommitOffsetsRequest,
) -> Result<CommitOffsetsResponse, WireError> {
    check_entries(request.offsets.len(), "offsets")?;
    service.coordinator.commit(request).await
}
