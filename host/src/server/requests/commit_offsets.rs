//! `CommitOffsets`: fence by member epoch and ownership, then store durably.

use quiver_proto::WireError;
use quiver_proto::api::groups::{CommitOffsetsRequest, CommitOffsetsResponse};

use super::check_entries;
use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: CommitOffsetsRequest,
) -> Result<CommitOffsetsResponse, WireError> {
    check_entries(request.offsets.len(), "offsets")?;
    context.coordinator.commit(request).await
}
