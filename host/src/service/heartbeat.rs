//! `Heartbeat`: keep a member alive; answer with what it owns and what it
//! must give up.

use quiver_proto::WireError;
use quiver_proto::api::groups::{HeartbeatRequest, HeartbeatResponse};

use crate::service::Service;

pub(crate) fn handle(
    service: &Service,
    request: &HeartbeatRequest,
) -> Result<HeartbeatResponse, WireError> {
    service.coordinator.heartbeat(request)
}
