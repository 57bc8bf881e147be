//! `Heartbeat` (the classic protocol): keeps a member in its group;
//! `REBALANCE_IN_PROGRESS` tells it to join again.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::classic_error_code;
use crate::kafka::Context;

pub(super) fn handle(context: &Context, request: &HeartbeatRequest) -> HeartbeatResponse {
    let beat = context.service.coordinator.classic_heartbeat(
        &request.group_id.0,
        &request.member_id,
        request.generation_id,
    );
    HeartbeatResponse::default().with_error_code(beat.err().map_or(0, |e| classic_error_code(&e)))
}
