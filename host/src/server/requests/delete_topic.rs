//! `DeleteTopic`: remove the topic and all its batches (refused while a
//! transform reads or writes it, unless forced).

use quiver_proto::WireError;
use quiver_proto::api::DeleteTopicRequest;

use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: DeleteTopicRequest,
) -> Result<(), WireError> {
    context
        .storage
        .delete_topic(request.name.clone(), request.force)
        .await?;
    context.metrics.forget_topic(&request.name);
    Ok(())
}
