//! `ListGroups`: groups with members or committed offsets.

use quiver_proto::WireError;
use quiver_proto::api::groups::{ListGroupsRequest, ListGroupsResponse};

use crate::server::Context;

pub(super) fn handle(
    context: &Context,
    _request: ListGroupsRequest,
) -> Result<ListGroupsResponse, WireError> {
    Ok(ListGroupsResponse {
        groups: context.coordinator.list()?,
    })
}
