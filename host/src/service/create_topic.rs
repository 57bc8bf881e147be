//! `CreateTopic`: check the name and partition count, then create.

use std::sync::Arc;

use quiver_proto::api::{CreateTopicRequest, TopicDescription};
use quiver_proto::limits::MAX_PARTITIONS_PER_TOPIC;
use quiver_proto::topic::validate_topic_name;
use quiver_proto::{ErrorCode, WireError};

use super::describe_topic::describe;
use crate::service::Service;
use crate::storage::Topic;

pub(crate) async fn handle(
    service: &Service,
    request: CreateTopicRequest,
) -> Result<TopicDescription, WireError> {
    let topic = create(service, request).await?;
    describe(service, &topic).await
}

/// Checks the name and partition count and creates the topic.
pub(crate) async fn create(
    service: &Service,
    request: CreateTopicRequest,
) -> Result<Arc<Topic>, WireError> {
    validate(&request)?;
    Ok(service
        .storage
        .create_topic(request.name, request.partitions, request.config)
        .await?)
}

/// Checks a topic's name and partition count, creating nothing.
pub(crate) fn validate(request: &CreateTopicRequest) -> Result<(), WireError> {
    validate_topic_name(&request.name)
        .map_err(|e| WireError::new(ErrorCode::InvalidTopicName, e.to_string()))?;
    check_partition_count(request.partitions)
}

/// A partition count must be 1 to [`MAX_PARTITIONS_PER_TOPIC`].
pub(super) fn check_partition_count(partitions: u32) -> Result<(), WireError> {
    if (1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        Ok(())
    } else {
        Err(WireError::new(
            ErrorCode::InvalidPartitions,
            format!("a topic needs 1 to {MAX_PARTITIONS_PER_TOPIC} partitions, not {partitions}"),
        ))
    }
}
