//! `DescribeGroup`: members, owners, committed offsets and lag.

use quiver_proto::WireError;
use quiver_proto::api::groups::{DescribeGroupRequest, GroupDescription};

use crate::server::Context;

pub(super) fn handle(
    context: &Context,
    request: &DescribeGroupRequest,
) -> Result<GroupDescription, WireError> {
    context.coordinator.describe(request)
}
