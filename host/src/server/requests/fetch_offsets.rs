//! `FetchOffsets`: a group's committed positions.

use quiver_proto::WireError;
use quiver_proto::api::groups::{FetchOffsetsRequest, FetchOffsetsResponse};

use crate::server::Context;

pub(super) fn handle(
    context: &Context,
    request: &FetchOffsetsRequest,
) -> Result<FetchOffsetsResponse, WireError> {
    context.coordinator.fetch_offsets(request)
}
