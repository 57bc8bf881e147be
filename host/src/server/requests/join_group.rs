//! `JoinGroup`: add a member; the assignment follows on its heartbeats.

use quiver_proto::WireError;
use quiver_proto::api::groups::{JoinGroupRequest, JoinGroupResponse};

use crate::server::Context;

pub(super) fn handle(
    context: &Context,
    request: JoinGroupRequest,
) -> Result<JoinGroupResponse, WireError> {
    context.coordinator.join(request)
}
