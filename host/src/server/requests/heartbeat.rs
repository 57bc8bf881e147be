//! `Heartbeat`: keep a member alive; answer with what it owns and what it
//! must give up.

use quiver_proto::WireError;
use quiver_proto::api::groups::{HeartbeatRequest, HeartbeatResponse};

use crate::server::Context;

pub(super) fn handle(
    context: &Context,
    request: &HeartbeatRequest,
) -> Result<HeartbeatResponse, WireError> {
    context.coordinator.heartbeat(request)
}
