//! `DeleteModule`: remove a module and its bytes.

use quiver_proto::WireError;
use quiver_proto::api::modules::DeleteModuleRequest;

use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: DeleteModuleRequest,
) -> Result<(), WireError> {
    service.storage.delete_module(request.name).await?;
    Ok(())
}
