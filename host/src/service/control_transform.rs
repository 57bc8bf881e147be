//! `ControlTransform`: pause, resume, upgrade or delete a transform.

use quiver_proto::WireError;
use quiver_proto::api::transforms::ControlTransformRequest;

use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: ControlTransformRequest,
) -> Result<(), WireError> {
    Ok(service
        .transforms
        .control(&request.name, request.action)
        .await?)
}
