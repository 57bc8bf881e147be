//! `AlterTopic`: change retention settings, or add partitions.

use quiver_proto::WireError;
use quiver_proto::api::{AlterTopicRequest, TopicConfig, TopicDescription};

use super::create_topic::check_partition_count;
use super::describe_topic::describe;
use crate::service::Service;

pub(crate) async fn handle(
    service: &Service,
    request: AlterTopicRequest,
) -> Result<TopicDescription, WireError> {
    if let Some(partitions) = request.partitions {
        check_partition_count(partitions)?;
    }
    let (retention_ms, retention_bytes) = (request.retention_ms, request.retention_bytes);
    let topic = service
        .storage
        .alter_topic(
            request.name,
            move |current| TopicConfig {
                retention_ms: retention_ms.apply(current.retention_ms),
                retention_bytes: retention_bytes.apply(current.retention_bytes),
                ..current
            },
            request.partitions,
        )
        .await?;
    describe(service, &topic).await
}
