//! `ListGroups`: groups with members or committed offsets.

use quiver_proto::WireError;
use quiver_proto::api::groups::{ListGroupsRequest, ListGroupsResponse};

use crate::service::Service;

pub(crate) fn handle(
    service: &Service,
    _request: ListGroupsRequest,
) -> Result<ListGroupsResponse, WireError> {
    Ok(ListGroupsResponse {
        groups: service.coordinator.list()?,
    })
}
