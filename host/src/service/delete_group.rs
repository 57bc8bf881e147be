//! `DeleteGroup`: forget a group's offsets; refused while it has members.

use quiver_proto::WireError;
use quiver_proto::api::groups::DeleteGroupRequest;

use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: DeleteGroupRequest,
) -> Result<(), WireError> {
    service.coordinator.delete(&request.group).await
}
