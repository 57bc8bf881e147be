//! `DeleteRecords`: each partition's log start moved to the offset asked
//! (-1: the high watermark), through the service's delete; the answer is
//! the new low watermark.

use kafka_protocol::messages::delete_records_request::DeleteRecordsTopic;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use quiver_proto::{ErrorCode, WireError};

use super::error_code;
use crate::kafka::Context;
use crate::service::delete_records;

pub(super) async fn handle(
    context: &Context,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        topics.push(delete_topic_records(context, topic).await);
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

async fn delete_topic_records(
    context: &Context,
    topic: DeleteRecordsTopic,
) -> DeleteRecordsTopicResult {
    let name = topic.name.0.to_string();
    let mut results = Vec::with_capacity(topic.partitions.len());
    let mut asked = Vec::with_capacity(topic.partitions.len());
    for partition in &topic.partitions {
        let before = match partition.offset {
            -1 => Ok(None),
            offset => u64::try_from(offset).map(Some),
        };
        match (u32::try_from(partition.partition_index), before) {
            (Ok(index), Ok(before)) => asked.push((index, before)),
            (Err(_), _) => results.push(refused(
                partition.partition_index,
                &WireError::new(
                    ErrorCode::UnknownPartition,
                    format!("no partition {}", partition.partition_index),
                ),
            )),
            (_, Err(_)) => results.push(refused(
                partition.partition_index,
                &WireError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!("no offset {} to delete records below", partition.offset),
                ),
            )),
        }
    }
    let indexes: Vec<u32> = asked.iter().map(|(index, _)| *index).collect();
    match delete_records::handle(&context.service, &name, asked).await {
        Ok(outcomes) => results.extend(outcomes.into_iter().map(|(index, outcome)| {
            match outcome {
                Ok(low_watermark) => DeleteRecordsPartitionResult::default()
                    .with_partition_index(index as i32)
                    .with_low_watermark(low_watermark as i64),
                Err(e) => refused(index as i32, &e),
            }
        })),
        Err(e) => results.extend(indexes.into_iter().map(|index| refused(index as i32, &e))),
    }
    DeleteRecordsTopicResult::default()
        .with_name(topic.name)
        .with_partitions(results)
}

fn refused(index: i32, error: &WireError) -> DeleteRecordsPartitionResult {
    DeleteRecordsPartitionResult::default()
        .with_partition_index(index)
        .with_low_watermark(-1)
        .with_error_code(error_code(error))
}
