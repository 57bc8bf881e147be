//! `OffsetCommit`: through the group service, so offsets committed by a
//! Kafka client and by a Quiver consumer are the same offsets.
//!
//! A commit without a member id (generation -1) is a standalone
//! consumer's, allowed while the group has no members, as in Kafka.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use quiver_proto::api::groups::{CommitOffsetsRequest, OffsetCommit, PartitionRef};
use quiver_proto::{ErrorCode, WireError};

use super::error_code;
use crate::kafka::Context;
use crate::service::commit_offsets;

/// Kafka's error telling a group member to join again.
const UNKNOWN_MEMBER_ID: i16 = 25;

pub(super) async fn handle(
    context: &Context,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let mut offsets = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            offsets.push(OffsetCommit {
                partition: PartitionRef {
                    topic: topic.name.0.to_string(),
                    partition: u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                },
                // A negative offset cannot be stored; Kafka clients never
                // commit one.
                offset: u64::try_from(p.committed_offset).unwrap_or(0),
                metadata: p.committed_metadata.as_ref().map(ToString::to_string),
            });
        }
    }
    let commit = CommitOffsetsRequest {
        group: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: u64::try_from(request.generation_id_or_member_epoch).unwrap_or(0),
        offsets,
    };
    let count = commit.offsets.len();
    let from_a_member = !commit.member_id.is_empty();
    let results: Vec<Result<(), WireError>> =
        match commit_offsets::handle(&context.service, commit).await {
            Ok(response) => response.results,
            Err(e) => vec![Err(e); count],
        };
    let mut results = results.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let code = match results.next() {
                        Some(Err(e)) => {
                            // A member of a group the broker no longer knows
                            // (a restart, or every member expired) must join
                            // again: Kafka clients do on UNKNOWN_MEMBER_ID.
                            if from_a_member && e.code == ErrorCode::GroupNotFound {
                                UNKNOWN_MEMBER_ID
                            } else {
                                error_code(&e)
                            }
                        }
                        _ => 0,
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
