//! `ListTransforms`: every transform's status, or one's.

use quiver_proto::WireError;
use quiver_proto::api::transforms::{ListTransformsRequest, ListTransformsResponse};

use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: ListTransformsRequest,
) -> Result<ListTransformsResponse, WireError> {
    Ok(ListTransformsResponse {
        transforms: service.transforms.list(request.name.as_deref()).await?,
    })
}
