//! `DeployTransform`: check, compile, `init`, create output topics, store
//! and start a transform.

use quiver_proto::WireError;
use quiver_proto::api::transforms::{DeployTransformRequest, TransformStatus};

use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: DeployTransformRequest,
) -> Result<TransformStatus, WireError> {
    Ok(service.transforms.deploy(request).await?)
}
