//! `DescribeGroups`: each group's state and members, with each member's
//! assignment in the consumer protocol's layout (as Kafka's admin tools
//! read it).

use std::collections::BTreeMap;

use bytes::{BufMut as _, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DescribeGroupsRequest, DescribeGroupsResponse,
};
use kafka_protocol::protocol::{Encodable as _, StrBytes};
use quiver_proto::api::groups::{DescribeGroupRequest, GroupMember};

use super::{error_code, topic_name};
use crate::kafka::Context;
use crate::service::describe_group;

/// The consumer protocol version the assignments are written in.
const ASSIGNMENT_VERSION: i16 = 0;

pub(super) fn handle(context: &Context, request: &DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .iter()
        .map(|group| {
            let described = DescribedGroup::default().with_group_id(group.clone());
            let asked = DescribeGroupRequest {
                group: group.0.to_string(),
            };
            match describe_group::handle(&context.service, &asked) {
                Ok(description) => described
                    .with_group_state(StrBytes::from_string(description.state))
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocol_data(StrBytes::from_string(
                        description.strategy.unwrap_or_default(),
                    ))
                    .with_members(description.members.iter().map(member).collect()),
                Err(e) => described
                    .with_error_code(error_code(&e))
                    .with_error_message(Some(StrBytes::from_string(e.message))),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

fn member(member: &GroupMember) -> DescribedGroupMember {
    DescribedGroupMember::default()
        .with_member_id(StrBytes::from_string(member.member_id.clone()))
        .with_client_id(StrBytes::from_string(member.client_id.clone()))
        .with_member_assignment(assignment(member))
}

/// The member's partitions as a `ConsumerProtocolAssignment`: its version,
/// then the assignment.
fn assignment(member: &GroupMember) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for p in &member.assigned {
        by_topic
            .entry(&p.topic)
            .or_default()
            .push(p.partition as i32);
    }
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                TopicPartition::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(ASSIGNMENT_VERSION);
    // Encoding plain data into memory does not fail; an empty assignment
    // is the fallback.
    if assignment.encode(&mut out, ASSIGNMENT_VERSION).is_err() {
        return Bytes::new();
    }
    out.freeze()
}
