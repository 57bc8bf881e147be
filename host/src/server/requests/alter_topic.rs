//! `AlterTopic`: change retention settings, or add partitions.

use quiver_proto::WireError;
use quiver_proto::api::{AlterTopicRequest, TopicConfig, TopicDescription};

use super::create_topic::check_partition_count;
use super::describe_topic::describe;
use crate::server::Context;

pub(super) async fn handle(
    context: &Context,
    request: AlterTopicRequest,
) -> Result<TopicDescription, WireError> {
    if let Some(partitions) = request.partitions {
        check_partition_count(partitions)?;
    }
    let current = context.storage.topic(&request.name)?;
    let config = TopicConfig {
        retention_ms: request.retention_ms.apply(current.config.retention_ms),
        retention_bytes: request
            .retention_bytes
            .apply(current.config.retention_bytes),
        ..current.config
    };
    let topic = context
        .storage
        .alter_topic(request.name, config, request.partitions)
        .await?;
    Ok(describe(&topic))
}
