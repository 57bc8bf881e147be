//! `ListModules`: stored modules with version, SHA-256, size and imports.

use quiver_proto::WireError;
use quiver_proto::api::modules::{ListModulesRequest, ListModulesResponse};

use crate::service::Service;

pub(crate) fn handle(
    service: &Service,
    _request: ListModulesRequest,
) -> Result<ListModulesResponse, WireError> {
    Ok(ListModulesResponse {
        modules: service.storage.modules()?,
    })
}
