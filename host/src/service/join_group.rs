//! `JoinGroup`: add a member; the assignment follows on its heartbeats.

use quiver_proto::WireError;
use quiver_proto::api::groups::{JoinGroupRequest, JoinGroupResponse};

use crate::service::Service;

pub(crate) fn handle(
    service: &Service,
    request: JoinGroupRequest,
) -> Result<JoinGroupResponse, WireError> {
    service.coordinator.join(request)
}
