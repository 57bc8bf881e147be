//! `ResetOffsets`: move a group's committed offsets for a topic to earliest,
//! latest, a time or an offset; refused while the group has members.

use quiver_proto::WireError;
use quiver_proto::api::groups::{FetchOffsetsResponse, ResetOffsetsRequest};

use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: ResetOffsetsRequest,
) -> Result<FetchOffsetsResponse, WireError> {
    service.coordinator.reset(request).await
}
