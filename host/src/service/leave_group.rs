//! `LeaveGroup`: remove a member so its partitions move at once.

use quiver_proto::WireError;
use quiver_proto::api::groups::LeaveGroupRequest;

use crate::service::Service;

pub(crate) fn handle(service: &Service, request: &LeaveGroupRequest) -> Result<(), WireError> {
    service.coordinator.leave(request)
}
