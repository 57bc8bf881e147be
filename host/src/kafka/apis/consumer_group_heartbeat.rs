//! `ConsumerGroupHeartbeat` (KIP-848, `group.protocol=consumer`): the
//! broker assigns, which is how Quiver's own groups work already, so this
//! maps onto the same group service: epoch 0 joins, a positive epoch
//! heartbeats with the partitions the member owns, -1 (or -2) leaves.
//! Assignments name topics by id (see [`crate::kafka::topic_id`]).
//!
//! A member keeps the subscription it joined with (a changed one in a
//! later heartbeat is not taken; leave and join again), and the broker's
//! session timeout applies ([`SESSION_TIMEOUT_MS`], Kafka's
//! `group.consumer.session.timeout.ms`).

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::WireError;
use quiver_proto::api::groups::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, LeaveGroupRequest, PartitionRef,
};

use super::error_code;
use crate::kafka::{Context, topic_by_id, topic_id};
use crate::storage::Storage;

/// How long a member may stay silent (Kafka's default for this protocol).
const SESSION_TIMEOUT_MS: u64 = 45_000;

/// Kafka's error for a server assignor the broker does not have.
const UNSUPPORTED_ASSIGNOR: i16 = 112;

/// The member epoch of a member leaving (-2: a static member leaving for
/// now, treated the same).
const LEAVING: i32 = -1;

pub(super) fn handle(
    context: &Context,
    client_id: &str,
    request: &ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let coordinator = &context.service.coordinator;
    let group = request.group_id.0.to_string();
    let member_id = request.member_id.to_string();
    let refused = |e: &WireError| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(error_code(e))
            .with_error_message(Some(StrBytes::from_string(e.message.clone())))
    };
    if request.member_epoch <= LEAVING {
        let left = coordinator.leave(&LeaveGroupRequest {
            group,
            member_id: member_id.clone(),
        });
        return match left {
            Ok(()) => ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(StrBytes::from_string(member_id)))
                .with_member_epoch(request.member_epoch),
            Err(e) => refused(&e),
        };
    }
    let (member_id, member_epoch) = if request.member_epoch == 0 {
        let Some(strategy) = strategy(request.server_assignor.as_deref()) else {
            return ConsumerGroupHeartbeatResponse::default().with_error_code(UNSUPPORTED_ASSIGNOR);
        };
        let joined = coordinator.join(JoinGroupRequest {
            group: group.clone(),
            topics: request
                .subscribed_topic_names
                .iter()
                .flatten()
                .map(|t| t.0.to_string())
                .collect(),
            strategy: strategy.to_owned(),
            session_timeout_ms: SESSION_TIMEOUT_MS,
            client_id: client_id.to_owned(),
        });
        match joined {
            Ok(joined) => (joined.member_id, joined.member_epoch),
            Err(e) => return refused(&e),
        }
    } else {
        (member_id, u64::try_from(request.member_epoch).unwrap_or(0))
    };
    let storage = &context.service.storage;
    let owned = request
        .topic_partitions
        .iter()
        .flatten()
        .filter_map(|tp| Some((topic_by_id(storage, tp.topic_id)?, &tp.partitions)))
        .flat_map(|(topic, partitions)| {
            partitions.iter().filter_map(move |&p| {
                Some(PartitionRef {
                    topic: topic.name.to_string(),
                    partition: u32::try_from(p).ok()?,
                })
            })
        })
        .collect();
    let beat = coordinator.heartbeat(&HeartbeatRequest {
        group,
        member_id: member_id.clone(),
        member_epoch,
        owned,
    });
    match beat {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(StrBytes::from_string(member_id)))
            .with_member_epoch(i32::try_from(answer.member_epoch).unwrap_or(i32::MAX))
            .with_heartbeat_interval_ms(
                i32::try_from(answer.heartbeat_interval_ms).unwrap_or(i32::MAX),
            )
            .with_assignment(Some(assignment(storage, &answer))),
        Err(e) => refused(&e),
    }
}

/// The member's partitions by topic id: what it owns now (partitions it
/// must give up are not in it, which is how KIP-848 tells it to revoke).
fn assignment(storage: &Storage, answer: &HeartbeatResponse) -> Assignment {
    let mut by_topic: Vec<TopicPartitions> = Vec::new();
    for p in &answer.assigned {
        let Ok(topic) = storage.topic(&p.topic) else {
            continue;
        };
        let id = topic_id(&topic);
        let partition = p.partition as i32;
        match by_topic.iter_mut().find(|t| t.topic_id == id) {
            Some(entry) => entry.partitions.push(partition),
            None => by_topic.push(
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    Assignment::default().with_topic_partitions(by_topic)
}

/// Quiver's strategy for a KIP-848 server assignor (`uniform` spreads
/// partitions evenly and keeps them where they are, as `sticky` does).
fn strategy(assignor: Option<&str>) -> Option<&'static str> {
    match assignor {
        None | Some("uniform" | "sticky") => Some("sticky"),
        Some("range") => Some("range"),
        Some(_) => None,
    }
}
