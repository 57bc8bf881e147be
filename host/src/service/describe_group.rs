//! `DescribeGroup`: members, owners, committed offsets and lag.

use quiver_proto::WireError;
use quiver_proto::api::groups::{DescribeGroupRequest, GroupDescription};

use crate::service::Service;

pub(crate) fn handle(
    service: &Service,
    request: &DescribeGroupRequest,
) -> Result<GroupDescription, WireError> {
    service.coordinator.describe(request)
}
