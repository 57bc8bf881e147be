//! `ListOffsets`: earliest (-2), latest (-1), or the first offset at or
//! after a timestamp, through the service's lookup.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest as KafkaListOffsets, ListOffsetsResponse};
use quiver_proto::api::{ListOffsetsPartition, ListOffsetsRequest, OffsetSpec};
use quiver_proto::{ErrorCode, WireError};

use super::{error_code, topic_name};
use crate::kafka::Context;
use crate::service::list_offsets;

/// Kafka's timestamp for the offset of the next record.
const LATEST: i64 = -1;
/// Kafka's timestamp for the log start offset.
const EARLIEST: i64 = -2;

pub(super) async fn handle(context: &Context, request: KafkaListOffsets) -> ListOffsetsResponse {
    let mut asked = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let spec = match p.timestamp {
                LATEST => OffsetSpec::Latest,
                EARLIEST => OffsetSpec::Earliest,
                ts => OffsetSpec::Timestamp(ts),
            };
            asked.push(ListOffsetsPartition {
                topic: topic.name.0.to_string(),
                partition: u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                spec,
            });
        }
    }
    let outcomes: Vec<Found> = match list_offsets::handle(
        &context.service,
        ListOffsetsRequest {
            partitions: asked.clone(),
        },
    )
    .await
    {
        Ok(response) => response
            .partitions
            .into_iter()
            .map(|p| p.outcome.map(|offset| (offset, p.timestamp)))
            .collect(),
        Err(e) => asked.iter().map(|_| Err(e.clone())).collect(),
    };
    let mut outcomes = outcomes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let outcome = outcomes.next().unwrap_or_else(|| {
                        Err(WireError::new(ErrorCode::UnknownServerError, "no lookup"))
                    });
                    answer(p.partition_index, p.timestamp, outcome)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic_name(&topic.name.0))
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// An offset and, for a lookup by time that found a record, its timestamp.
type Found = Result<(u64, Option<i64>), WireError>;

fn answer(index: i32, timestamp: i64, outcome: Found) -> ListOffsetsPartitionResponse {
    let response = ListOffsetsPartitionResponse::default()
        .with_partition_index(index)
        .with_timestamp(-1);
    match outcome {
        Ok((offset, Some(found))) => response.with_offset(offset as i64).with_timestamp(found),
        // Kafka answers -1 when no record is that recent.
        Ok((_, None)) if timestamp >= 0 => response.with_offset(-1),
        Ok((offset, None)) => response.with_offset(offset as i64),
        Err(e) => response.with_error_code(error_code(&e)).with_offset(-1),
    }
}
