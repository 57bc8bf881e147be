//! `JoinGroup` (the classic protocol): joins through the group service and
//! waits for the rebalance; the leader gets every member's metadata and
//! assigns in the client.
//!
//! A new member at version 4 on first gets its id with
//! `MEMBER_ID_REQUIRED` and joins again with it (KIP-394). Static
//! membership (`group.instance.id`) is not kept: such a member is treated
//! as a dynamic one.

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::classic_error_code;
use crate::groups::classic::{ClassicError, Join};
use crate::kafka::Context;
use crate::service::Session;

/// Kafka's error for an empty or overlong group id.
const INVALID_GROUP_ID: i16 = 24;

pub(super) async fn handle(
    context: &Context,
    session: &Session,
    client_id: &str,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let group = request.group_id.0.to_string();
    if !super::valid_group_id(&group) {
        return JoinGroupResponse::default().with_error_code(INVALID_GROUP_ID);
    }
    let protocol_type = request.protocol_type.clone();
    let join = Join {
        group,
        member_id: request.member_id.to_string(),
        client_id: client_id.to_owned(),
        client_host: format!("/{}", session.peer.ip()),
        session_timeout_ms: u64::try_from(request.session_timeout_ms).unwrap_or(0),
        // Version 0 has no rebalance timeout: the session timeout serves.
        rebalance_timeout_ms: u64::try_from(if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        })
        .unwrap_or(0),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member: version >= 4,
    };
    match context.service.coordinator.classic_join(join).await {
        Ok(joined) => JoinGroupResponse::default()
            .with_generation_id(joined.generation)
            .with_protocol_type(Some(protocol_type))
            .with_protocol_name(Some(StrBytes::from_string(joined.protocol)))
            .with_leader(StrBytes::from_string(joined.leader))
            .with_member_id(StrBytes::from_string(joined.member_id))
            .with_members(
                joined
                    .members
                    .into_iter()
                    .map(|(member_id, metadata): (String, Bytes)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(StrBytes::from_string(member_id))
                            .with_metadata(metadata)
                    })
                    .collect(),
            ),
        Err(e) => {
            // A new member's id comes with MEMBER_ID_REQUIRED.
            let member_id = match &e {
                ClassicError::MemberIdRequired(id) => id.clone(),
                _ => String::new(),
            };
            JoinGroupResponse::default()
                .with_error_code(classic_error_code(&e))
                .with_generation_id(-1)
                .with_member_id(StrBytes::from_string(member_id))
        }
    }
}
