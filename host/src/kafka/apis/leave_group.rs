//! `LeaveGroup` (the classic protocol): one member before version 3, a
//! list after; the members left behind rebalance.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::classic_error_code;
use crate::kafka::Context;

pub(super) fn handle(
    context: &Context,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let coordinator = &context.service.coordinator;
    let group = &request.group_id.0;
    if version < 3 {
        let left = coordinator.classic_leave(group, &[request.member_id.to_string()]);
        let code = left
            .into_iter()
            .next()
            .and_then(Result::err)
            .map_or(0, |e| classic_error_code(&e));
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let ids: Vec<String> = request
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    let results = coordinator.classic_leave(group, &ids);
    let members = request
        .members
        .into_iter()
        .zip(results)
        .map(|(m, result)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(result.err().map_or(0, |e| classic_error_code(&e)))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}
