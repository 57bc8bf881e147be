//! `Produce`: each topic's batches go to the service's produce, which
//! validates, queues them for the writer and answers once durable; acks=0
//! requests are handled the same and not answered (see `apis::start_produce`).
//!
//! Each partition carries exactly one record batch (Kafka's rule since
//! version 3), stored as sent (recompressed when the topic's
//! `compression.type` names another codec). One decompression budget
//! covers the whole request, all its topics.

use bytes::BytesMut;
use futures_util::future::join_all;
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::{ErrorCode, WireError};

use super::error_code;
use crate::kafka::Context;
use crate::service::produce;

/// Queues the request's batches for the writer, topic after topic, each
/// topic's in the order sent, and returns what answers the request once
/// their commits are durable. A connection queues its next produce request
/// while this one's commit is still under way (see `connection`).
pub(super) async fn start(
    context: &Context,
    request: ProduceRequest,
) -> impl Future<Output = ProduceResponse> + '_ {
    let budget = produce::DecompressionBudget::new();
    let mut topics = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        topics.push(queue_topic(context, topic, &budget).await);
    }
    // Topics are independent: their commits are awaited together.
    async move {
        let responses = join_all(topics.into_iter().map(QueuedTopic::answer)).await;
        ProduceResponse::default().with_responses(responses)
    }
}

/// One topic of a produce request, queued.
struct QueuedTopic<'a> {
    name: TopicName,
    /// Partitions refused before anything was queued.
    answers: Vec<PartitionProduceResponse>,
    /// The partitions queued, for a refusal of the whole topic.
    indexes: Vec<u32>,
    queued: Result<produce::Queued<'a>, WireError>,
}

async fn queue_topic<'a>(
    context: &'a Context,
    topic: TopicProduceData,
    budget: &produce::DecompressionBudget,
) -> QueuedTopic<'a> {
    let mut batches = Vec::with_capacity(topic.partition_data.len());
    let mut answers = Vec::with_capacity(topic.partition_data.len());
    for partition in topic.partition_data {
        match (u32::try_from(partition.index), partition.records) {
            (Ok(index), Some(records)) => {
                batches.push((index, BytesMut::from(&records[..])));
            }
            (Ok(_), None) => answers.push(refused(
                partition.index,
                &WireError::new(ErrorCode::CorruptBatch, "a produce with no records"),
            )),
            (Err(_), _) => answers.push(refused(
                partition.index,
                &WireError::new(
                    ErrorCode::UnknownPartition,
                    format!("no partition {}", partition.index),
                ),
            )),
        }
    }
    let indexes: Vec<u32> = batches.iter().map(|(index, _)| *index).collect();
    let name = topic.name.0.to_string();
    let queued = produce::queue(&context.service, &name, batches, budget).await;
    QueuedTopic {
        name: topic.name,
        answers,
        indexes,
        queued,
    }
}

impl QueuedTopic<'_> {
    async fn answer(self) -> TopicProduceResponse {
        let mut answers = self.answers;
        match self.queued {
            Ok(queued) => answers.extend(queued.results().await.into_iter().map(|result| {
                let index = result.partition as i32;
                match result.outcome {
                    Ok(base_offset) => PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(base_offset as i64),
                    Err(e) => refused(index, &e),
                }
            })),
            Err(e) => answers.extend(
                self.indexes
                    .into_iter()
                    .map(|index| refused(index as i32, &e)),
            ),
        }
        TopicProduceResponse::default()
            .with_name(self.name)
            .with_partition_responses(answers)
    }
}

fn refused(index: i32, error: &WireError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error_code(error))
        .with_base_offset(-1)
        .with_error_message(Some(StrBytes::from_string(error.message.clone())))
}
