//! `DeleteGroup`: forget a group's offsets; refused while it has members.

use quiver_proto::WireError;
use quiver_proto::api::groups::DeleteGroupRequest;

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: DeleteGroupRequest,
) -> Result<(), WireError> {
    context.coordinator.delete(&request.group).await
}
