//! `ListModules`: stored modules with version, SHA-256, size and imports.

use quiver_proto::WireError;
use quiver_proto::api::modules::{ListModulesRequest, ListModulesResponse};

use crate::server::Context;

pub(super) fn handle(
    context: &Context,
    _request: ListModulesRequest,
) -> Result<ListModulesResponse, WireError> {
    Ok(ListModulesResponse {
        modules: context.storage.modules()?,
    })
}
