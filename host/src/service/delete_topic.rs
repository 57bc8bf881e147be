//! `DeleteTopic`: remove the topic and all its batches (refused while a
//! transform reads or writes it, unless forced).

use quiver_proto::WireError;
use quiver_proto::api::DeleteTopicRequest;

use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: DeleteTopicRequest,
) -> Result<(), WireError> {
    service
        .storage
        .delete_topic(request.name.clone(), request.force)
        .await?;
    service.metrics.forget_topic(&request.name);
    Ok(())
}
