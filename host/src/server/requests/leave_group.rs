//! `LeaveGroup`: remove a member so its partitions move at once.

use quiver_proto::WireError;
use quiver_proto::api::groups::LeaveGroupRequest;

use crate::server::Context;

pub(super) fn handle(context: &Context, request: &LeaveGroupRequest) -> Result<(), WireError> {
    context.coordinator.leave(request)
}
