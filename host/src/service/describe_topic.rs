//! `DescribeTopic`: each partition's offsets, size and timestamps, and the
//! topic's settings with the broker defaults that fill the unset ones.

use quiver_proto::WireError;
use quiver_proto::api::{DescribeTopicRequest, PartitionDescription, TopicDescription};

use crate::service::Service;
use crate::storage::Topic;

pub(crate) async fn handle(
    service: &Service,
    request: &DescribeTopicRequest,
) -> Result<TopicDescription, WireError> {
    let topic = service.storage.topic(&request.name)?;
    describe(service, &topic).await
}

/// The description create, alter and describe answer with.
pub(super) async fn describe(
    service: &Service,
    topic: &Topic,
) -> Result<TopicDescription, WireError> {
    let storage = std::sync::Arc::clone(&service.storage);
    let handles = topic.partitions.clone();
    // The first timestamps are a read of each partition's first batch.
    let first_timestamps = tokio::task::spawn_blocking(move || {
        handles
            .iter()
            .map(|p| storage.first_timestamp(p))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| {
        WireError::new(
            quiver_proto::ErrorCode::UnknownServerError,
            format!("describe task failed: {e}"),
        )
    })??;
    Ok(TopicDescription {
        name: topic.name.to_string(),
        config: topic.config,
        default_retention: service.retention_defaults,
        partitions: topic
            .partitions
            .iter()
            .zip(first_timestamps)
            .map(|(p, first_timestamp)| {
                let offsets = p.offsets();
                let stats = p.stats();
                PartitionDescription {
                    partition: p.index(),
                    log_start_offset: offsets.log_start_offset,
                    high_watermark: offsets.high_watermark,
                    size_bytes: stats.size_bytes,
                    first_timestamp,
                    last_timestamp: (stats.max_timestamp != i64::MIN)
                        .then_some(stats.max_timestamp),
                }
            })
            .collect(),
    })
}
