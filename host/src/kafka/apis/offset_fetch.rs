//! `OffsetFetch`: a group's committed offsets (the asked partitions, or
//! all), one group per request before version 8, many after.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::api::groups::{CommittedOffset, FetchOffsetsRequest, PartitionRef};

use super::{error_code, topic_name};
use crate::kafka::Context;
use crate::service::fetch_offsets;

/// The response topics of `topics` as `$topic` holding `$partition`s: the
/// crate has one pair of types before version 8 and another after, with
/// the same fields.
macro_rules! response_topics {
    ($topic:ident, $partition:ident, $topics:expr) => {
        $topics
            .into_iter()
            .map(|(name, offsets)| {
                $topic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(
                        offsets
                            .iter()
                            .map(|c| {
                                let (offset, metadata) = position(c);
                                $partition::default()
                                    .with_partition_index(c.partition.partition as i32)
                                    .with_committed_offset(offset)
                                    .with_metadata(metadata)
                            })
                            .collect(),
                    )
            })
            .collect()
    };
}

/// A group's committed offsets per topic, in the order asked (or by name),
/// or the error for the whole group.
type Committed = Result<BTreeMap<String, Vec<CommittedOffset>>, i16>;

pub(super) fn handle(
    context: &Context,
    request: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let asked = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let group_response =
                    OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
                match committed(context, &group.group_id.0, asked) {
                    Ok(topics) => group_response.with_topics(response_topics!(
                        OffsetFetchResponseTopics,
                        OffsetFetchResponsePartitions,
                        topics
                    )),
                    Err(code) => group_response.with_error_code(code),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let asked = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    match committed(context, &request.group_id.0, asked) {
        Ok(topics) => OffsetFetchResponse::default().with_topics(response_topics!(
            OffsetFetchResponseTopic,
            OffsetFetchResponsePartition,
            topics
        )),
        Err(code) => OffsetFetchResponse::default().with_error_code(code),
    }
}

/// The committed offsets of `group` for `asked` (topic, partitions), or
/// all of them when `asked` is `None`.
fn committed(context: &Context, group: &str, asked: Option<Vec<(String, Vec<i32>)>>) -> Committed {
    let partitions = asked
        .unwrap_or_default()
        .into_iter()
        .flat_map(|(topic, indexes)| {
            indexes.into_iter().map(move |p| PartitionRef {
                topic: topic.clone(),
                partition: u32::try_from(p).unwrap_or(u32::MAX),
            })
        })
        .collect();
    let request = FetchOffsetsRequest {
        group: group.to_owned(),
        partitions,
    };
    let response = fetch_offsets::handle(&context.service, &request).map_err(|e| error_code(&e))?;
    let mut topics: BTreeMap<String, Vec<CommittedOffset>> = BTreeMap::new();
    for offset in response.offsets {
        topics
            .entry(offset.partition.topic.clone())
            .or_default()
            .push(offset);
    }
    Ok(topics)
}

/// The committed offset (-1 for none, as Kafka answers) and metadata.
fn position(committed: &CommittedOffset) -> (i64, Option<StrBytes>) {
    (
        committed.offset.map_or(-1, |o| o as i64),
        committed
            .metadata
            .clone()
            .map(StrBytes::from_string)
            .or_else(|| Some(StrBytes::default())),
    )
}
