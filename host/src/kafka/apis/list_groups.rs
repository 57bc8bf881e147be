//! `ListGroups`: every group with members or committed offsets.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::api::groups::ListGroupsRequest;

use super::error_code;
use crate::kafka::Context;
use crate::service::list_groups;

pub(super) fn handle(context: &Context) -> ListGroupsResponse {
    match list_groups::handle(&context.service, ListGroupsRequest) {
        Ok(listed) => ListGroupsResponse::default().with_groups(
            listed
                .groups
                .into_iter()
                .map(|group| {
                    ListedGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(group)))
                        .with_protocol_type(StrBytes::from_static_str("consumer"))
                })
                .collect(),
        ),
        Err(e) => ListGroupsResponse::default().with_error_code(error_code(&e)),
    }
}
