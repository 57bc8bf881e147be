//! `DeleteModule`: remove a module and its bytes.

use quiver_proto::WireError;
use quiver_proto::api::modules::DeleteModuleRequest;

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: DeleteModuleRequest,
) -> Result<(), WireError> {
    context.storage.delete_module(request.name).await?;
    Ok(())
}
