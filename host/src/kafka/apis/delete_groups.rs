//! `DeleteGroups`: each group and its committed offsets, if it has no
//! members (`NON_EMPTY_GROUP` otherwise, as Kafka).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use quiver_proto::api::groups::DeleteGroupRequest;

use super::error_code;
use crate::kafka::Context;
use crate::service::delete_group;

pub(super) async fn handle(
    context: &Context,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group in request.groups_names {
        let asked = DeleteGroupRequest {
            group: group.0.to_string(),
        };
        let code = match delete_group::handle(&context.service, asked).await {
            Ok(()) => 0,
            Err(e) => error_code(&e),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
