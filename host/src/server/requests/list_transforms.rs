//! `ListTransforms`: every transform's status, or one's.

use quiver_proto::WireError;
use quiver_proto::api::transforms::{ListTransformsRequest, ListTransformsResponse};

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: ListTransformsRequest,
) -> Result<ListTransformsResponse, WireError> {
    Ok(ListTransformsResponse {
        transforms: context.transforms.list(request.name.as_deref()).await?,
    })
}
