//! `DescribeTopic`: each partition's log start offset and high watermark.

use quiver_proto::WireError;
use quiver_proto::api::{DescribeTopicRequest, PartitionDescription, TopicDescription};

use crate::server::Context;
use crate::storage::Topic;

pub(super) fn handle(
    context: &Context,
    request: &DescribeTopicRequest,
) -> Result<TopicDescription, WireError> {
    let topic = context.storage.topic(&request.name)?;
    Ok(describe(&topic))
}

pub(super) fn describe(topic: &Topic) -> TopicDescription {
    TopicDescription {
        name: topic.name.to_string(),
        config: topic.config,
        partitions: topic
            .partitions
            .iter()
            .map(|p| {
                let offsets = p.offsets();
                PartitionDescription {
                    partition: p.index(),
                    log_start_offset: offsets.log_start_offset,
                    high_watermark: offsets.high_watermark,
                }
            })
            .collect(),
    }
}
