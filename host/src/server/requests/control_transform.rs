//! `ControlTransform`: pause, resume, upgrade or delete a transform.

use quiver_proto::WireError;
use quiver_proto::api::transforms::ControlTransformRequest;

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: ControlTransformRequest,
) -> Result<(), WireError> {
    Ok(context
        .transforms
        .control(&request.name, request.action)
        .await?)
}
