//! `SyncGroup` (the classic protocol): the leader brings every member's
//! assignment; each member gets its own once the leader's has arrived.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::classic_error_code;
use crate::kafka::Context;

pub(super) async fn handle(context: &Context, request: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let answer = context
        .service
        .coordinator
        .classic_sync(
            &request.group_id.0,
            &request.member_id,
            request.generation_id,
            assignments,
        )
        .await;
    match answer {
        Ok(assignment) => SyncGroupResponse::default()
            .with_protocol_type(request.protocol_type)
            .with_protocol_name(request.protocol_name)
            .with_assignment(assignment),
        Err(e) => SyncGroupResponse::default().with_error_code(classic_error_code(&e)),
    }
}
