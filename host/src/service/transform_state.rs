//! `TransformState`: a transform's committed state entries under a prefix.

use quiver_proto::WireError;
use quiver_proto::api::transforms::{TransformStateRequest, TransformStateResponse};
use quiver_proto::limits::MAX_STATE_ENTRIES_PER_READ;

use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: TransformStateRequest,
) -> Result<TransformStateResponse, WireError> {
    let limit = request.limit.min(MAX_STATE_ENTRIES_PER_READ) as usize;
    Ok(TransformStateResponse {
        entries: service
            .transforms
            .state(&request.name, &request.prefix, limit)
            .await?,
    })
}
