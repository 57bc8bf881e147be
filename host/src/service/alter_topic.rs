//! `AlterTopic`: change retention or compression settings, or add partitions.

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
    let (retention_ms, retention_bytes, compression) = (
        request.retention_ms,
        request.retention_bytes,
        request.compression,
    );
    let topic = service
        .storage
        .alter_topic(
            request.name,
            move |current| TopicConfig {
                retention_ms: retention_ms.apply(current.retention_ms),
                retention_bytes: retention_bytes.apply(current.retention_bytes),
                compression: compression.unwrap_or(current.compression),
                ..current
            },
            request.partitions,
        )
        .await?;
    describe(service, &topic).await
}
