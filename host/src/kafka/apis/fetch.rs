//! `Fetch`: the service's long-polling fetch over every partition asked
//! for, answered per topic in request order.
//!
//! Incremental fetch sessions (KIP-227) are declined, which the protocol
//! allows: every response carries session id 0, so clients keep sending
//! full requests; an incremental request for a session that was never
//! created gets `FETCH_SESSION_ID_NOT_FOUND` and the client starts over.

use bytes::Bytes;
use kafka_protocol::messages::FetchRequest as KafkaFetchRequest;
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use quiver_proto::api::{FetchPartition, FetchRequest};
use quiver_proto::limits::MAX_FETCH_BYTES;
use quiver_proto::{ErrorCode, WireError};
use tokio::sync::OwnedSemaphorePermit;

use super::{error_code, topic_name};
use crate::kafka::Context;
use crate::service::fetch::{self, PartitionRead};

/// Kafka's error for an incremental fetch of an unknown session.
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;

/// One partition of the request: asked of the service (in order) or
/// refused before.
enum Slot {
    Asked,
    Refused(WireError),
}

pub(super) async fn handle(
    context: &Context,
    request: KafkaFetchRequest,
) -> (FetchResponse, Option<OwnedSemaphorePermit>) {
    if request.session_id != 0 && request.session_epoch > 0 {
        let response = FetchResponse::default()
            .with_error_code(FETCH_SESSION_ID_NOT_FOUND)
            .with_session_id(0);
        return (response, None);
    }
    let partition_max = |bytes: i32| u32::try_from(bytes).unwrap_or(0).min(MAX_FETCH_BYTES);
    let mut asked = Vec::new();
    let slots: Vec<Vec<Slot>> = request
        .topics
        .iter()
        .map(|topic| {
            topic
                .partitions
                .iter()
                .map(
                    |p| match (u32::try_from(p.partition), u64::try_from(p.fetch_offset)) {
                        (Ok(partition), Ok(offset)) => {
                            asked.push(FetchPartition {
                                topic: topic.topic.0.to_string(),
                                partition,
                                offset,
                                max_bytes: partition_max(p.partition_max_bytes),
                            });
                            Slot::Asked
                        }
                        (Err(_), _) => Slot::Refused(WireError::new(
                            ErrorCode::UnknownPartition,
                            format!("no partition {}", p.partition),
                        )),
                        (_, Err(_)) => Slot::Refused(WireError::new(
                            ErrorCode::OffsetOutOfRange,
                            format!("offset {} is negative", p.fetch_offset),
                        )),
                    },
                )
                .collect()
        })
        .collect();
    let service_request = FetchRequest {
        max_wait_ms: u32::try_from(request.max_wait_ms).unwrap_or(0),
        min_bytes: u32::try_from(request.min_bytes).unwrap_or(0),
        max_bytes: u32::try_from(request.max_bytes).unwrap_or(MAX_FETCH_BYTES),
        partitions: asked,
        member: None,
        module: None,
    };
    let (reads, memory) = if service_request.partitions.is_empty() {
        (Vec::new(), None)
    } else {
        match fetch::handle(&context.service, &service_request).await {
            Ok(fetched) => (fetched.partitions, Some(fetched.memory)),
            Err(e) => (
                service_request
                    .partitions
                    .iter()
                    .map(|_| Err(e.clone()))
                    .collect(),
                None,
            ),
        }
    };
    let mut reads = reads.into_iter();
    let responses = request
        .topics
        .into_iter()
        .zip(slots)
        .map(|(topic, slots)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(slots)
                .map(|(p, slot)| {
                    let read = match slot {
                        // The service answers every partition asked, in order.
                        Slot::Asked => reads.next().unwrap_or_else(|| {
                            Err(WireError::new(ErrorCode::UnknownServerError, "no read"))
                        }),
                        Slot::Refused(e) => Err(e),
                    };
                    partition_data(p.partition, read)
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic_name(&topic.topic.0))
                .with_partitions(partitions)
        })
        .collect();
    let response = FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses);
    (response, memory)
}

fn partition_data(index: i32, read: Result<PartitionRead, WireError>) -> PartitionData {
    match read {
        Ok(read) => {
            let high_watermark = read.offsets.high_watermark as i64;
            PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(high_watermark)
                .with_last_stable_offset(high_watermark)
                .with_log_start_offset(read.offsets.log_start_offset as i64)
                .with_records(Some(read.batches))
        }
        Err(e) => PartitionData::default()
            .with_partition_index(index)
            .with_error_code(error_code(&e))
            .with_high_watermark(-1)
            // Empty, not null: librdkafka drops a whole response over a
            // null record set.
            .with_records(Some(Bytes::new())),
    }
}
