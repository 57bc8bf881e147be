//! `OffsetCommit`: through the group service, so offsets committed by a
//! Kafka client and by a Quiver consumer are the same offsets.
//!
//! A commit without a member id (generation -1) is a standalone
//! consumer's, allowed while the group has no members, as in Kafka.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use quiver_proto::WireError;
use quiver_proto::api::groups::{CommitOffsetsRequest, OffsetCommit, PartitionRef};

use super::error_code;
use crate::kafka::Context;
use crate::service::commit_offsets;

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
                    let code = results
                        .next()
                        .map_or(0, |r| r.err().map_or(0, |e| error_code(&e)));
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
