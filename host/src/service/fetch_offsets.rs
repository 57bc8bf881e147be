//! `FetchOffsets`: a group's committed positions.

use quiver_proto::WireError;
use quiver_proto::api::groups::{FetchOffsetsRequest, FetchOffsetsResponse};

use crate::service::Service;

pub(crate) fn handle(
    service: &Service,
    request: &FetchOffsetsRequest,
) -> Result<FetchOffsetsResponse, WireError> {
    service.coordinator.fetch_offsets(request)
}
