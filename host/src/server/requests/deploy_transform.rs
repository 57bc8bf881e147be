//! `DeployTransform`: check, compile, `init`, create output topics, store
//! and start a transform.

use quiver_proto::WireError;
use quiver_proto::api::transforms::{DeployTransformRequest, TransformStatus};

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: DeployTransformRequest,
) -> Result<TransformStatus, WireError> {
    Ok(context.transforms.deploy(request).await?)
}
