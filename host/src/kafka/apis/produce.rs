//! `Produce`: each topic's batches go to the service's produce, which
//! validates, appends and answers once durable; acks=0 requests are
//! handled the same and not answered (see `apis::handle`).
//!
//! Each partition carries exactly one record batch (Kafka's rule since
//! version 3), stored as sent (recompressed when the topic's
//! `compression.type` names another codec). One decompression budget
//! covers the whole request, all its topics.

use bytes::BytesMut;
use futures_util::future::join_all;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::{ErrorCode, WireError};

use super::error_code;
use crate::kafka::Context;
use crate::service::produce;

pub(super) async fn handle(context: &Context, request: ProduceRequest) -> ProduceResponse {
    // Topics are independent: their appends are queued and committed
    // together (one group commit can hold them all).
    let budget = produce::DecompressionBudget::new();
    let responses = join_all(
        request
            .topic_data
            .into_iter()
            .map(|topic| produce_topic(context, topic, &budget)),
    )
    .await;
    ProduceResponse::default().with_responses(responses)
}

async fn produce_topic(
    context: &Context,
    topic: TopicProduceData,
    budget: &produce::DecompressionBudget,
) -> TopicProduceResponse {
    let name = topic.name.0.to_string();
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
    match produce::handle(&context.service, &name, batches, budget).await {
        Ok(results) => answers.extend(results.into_iter().map(|result| {
            let index = result.partition as i32;
            match result.outcome {
                Ok(base_offset) => PartitionProduceResponse::default()
                    .with_index(index)
                    .with_base_offset(base_offset as i64),
                Err(e) => refused(index, &e),
            }
        })),
        Err(e) => answers.extend(indexes.into_iter().map(|index| refused(index as i32, &e))),
    }
    TopicProduceResponse::default()
        .with_name(topic.name)
        .with_partition_responses(answers)
}

fn refused(index: i32, error: &WireError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error_code(error))
        .with_base_offset(-1)
        .with_error_message(Some(StrBytes::from_string(error.message.clone())))
}
