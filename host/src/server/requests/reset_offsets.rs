//! `ResetOffsets`: move a group's committed offsets for a topic to earliest,
//! latest, a time or an offset; refused while the group has members.

use quiver_proto::WireError;
use quiver_proto::api::groups::{FetchOffsetsResponse, ResetOffsetsRequest};

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: ResetOffsetsRequest,
) -> Result<FetchOffsetsResponse, WireError> {
    context.coordinator.reset(request).await
}
