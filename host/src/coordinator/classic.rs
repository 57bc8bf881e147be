//! Kafka's classic group protocol as requests: each call runs the state
//! machine of [`crate::groups::classic`] under its lock, hands the answers
//! it completed to the requests waiting for them, and waits for its own
//! (a join until the rebalance completes, a sync until the leader's
//! assignment arrives).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::groups::{GroupMember, PartitionRef};
use quiver_proto::kafka;
use quiver_proto::{ErrorCode, WireError};
use tokio::sync::oneshot;

use super::{Coordinator, Live};
use crate::groups::classic::{
    ClassicDescription, ClassicError, Effects, Join, Joined, SyncOutcome,
};

/// How much longer than its timeouts a request waits for its answer before
/// giving up (the state machine answers by then; this only bounds a task).
const WAIT_MARGIN: Duration = Duration::from_secs(5);

/// The longest a sync waits for the leader's assignment: the leader is
/// removed after its session timeout (at most this) and the sync answered.
const SYNC_WAIT: Duration = Duration::from_millis(crate::groups::MAX_SESSION_TIMEOUT_MS);

type Key = (String, String);

/// Requests waiting for other members, by (group, member).
#[derive(Debug, Default)]
pub(super) struct Waiters {
    joins: HashMap<Key, oneshot::Sender<Result<Joined, ClassicError>>>,
    syncs: HashMap<Key, oneshot::Sender<Result<Bytes, ClassicError>>>,
}

impl Coordinator {
    /// A Kafka client joins `join.group`; answered when the rebalance
    /// completes.
    pub async fn classic_join(&self, join: Join) -> Result<Joined, ClassicError> {
        let wait = Duration::from_millis(join.rebalance_timeout_ms.max(join.session_timeout_ms))
            + WAIT_MARGIN;
        let group = join.group.clone();
        let answer = {
            let state = self.state();
            if state
                .describe(&group)
                .is_some_and(|g| !g.members.is_empty())
            {
                return Err(ClassicError::InconsistentProtocol(format!(
                    "group {group:?} has Quiver consumers as members"
                )));
            }
            let mut classic = self.classic();
            if self.busy().contains(&group) {
                // Its offsets are being reset or deleted.
                return Err(ClassicError::RebalanceInProgress);
            }
            let (member_id, effects) = classic.join(join, self.now())?;
            let (sender, answer) = oneshot::channel();
            self.waiters().joins.insert((group, member_id), sender);
            drop((classic, state));
            self.deliver(effects);
            answer
        };
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(answer)) => answer,
            // Replaced by the member's next join, or never completed.
            _ => Err(ClassicError::RebalanceInProgress),
        }
    }

    /// A member asks for its assignment (the leader brings everyone's).
    pub async fn classic_sync(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<Bytes, ClassicError> {
        let answer = {
            let mut classic = self.classic();
            let (outcome, effects) =
                classic.sync(group, member_id, generation, assignments, self.now())?;
            let answer = match outcome {
                SyncOutcome::Assigned(assignment) => Ok(assignment),
                SyncOutcome::Waiting => {
                    let (sender, answer) = oneshot::channel();
                    self.waiters()
                        .syncs
                        .insert((group.to_owned(), member_id.to_owned()), sender);
                    Err(answer)
                }
            };
            drop(classic);
            self.deliver(effects);
            answer
        };
        match answer {
            Ok(assignment) => Ok(assignment),
            Err(waiting) => match tokio::time::timeout(SYNC_WAIT, waiting).await {
                Ok(Ok(answer)) => answer,
                _ => Err(ClassicError::RebalanceInProgress),
            },
        }
    }

    /// A member is alive; `RebalanceInProgress` tells it to join again.
    pub fn classic_heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), ClassicError> {
        self.classic()
            .heartbeat(group, member_id, generation, self.now())
    }

    /// Members leave `group`; one answer per member.
    pub fn classic_leave(&self, group: &str, members: &[String]) -> Vec<Result<(), ClassicError>> {
        let (results, effects) = self.classic().leave(group, members, self.now());
        self.deliver(effects);
        results
    }

    /// Hands completed joins and syncs to the requests waiting for them.
    pub(super) fn deliver(&self, effects: Effects) {
        let mut waiters = self.waiters();
        for (group, member, answer) in effects.joins {
            if let Some(sender) = waiters.joins.remove(&(group, member)) {
                let _ = sender.send(answer);
            }
        }
        for (group, member, answer) in effects.syncs {
            if let Some(sender) = waiters.syncs.remove(&(group, member)) {
                let _ = sender.send(answer);
            }
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A classic-protocol refusal as a wire error (for offset commits, which
/// both kinds of group share).
pub(super) fn wire_error(group: &str, error: &ClassicError) -> WireError {
    let code = match error {
        ClassicError::UnknownMember | ClassicError::MemberIdRequired(_) => ErrorCode::UnknownMember,
        ClassicError::IllegalGeneration { .. } => ErrorCode::IllegalGeneration,
        ClassicError::RebalanceInProgress => ErrorCode::GroupBusy,
        ClassicError::InconsistentProtocol(_) => ErrorCode::InconsistentStrategy,
        ClassicError::InvalidTimeout(_) => ErrorCode::InvalidSessionTimeout,
        ClassicError::GroupFull => ErrorCode::GroupMaxSizeReached,
        ClassicError::TooManyGroups => ErrorCode::TooManyGroups,
    };
    WireError::new(code, format!("group {group:?}: {error}"))
}

/// A classic group as [`Coordinator::describe`] shows it: each member's
/// subscription and assignment read from the consumer protocol's layout
/// (what Kafka consumers put there; anything else shows as nothing).
pub(super) fn live(group: ClassicDescription) -> Live {
    let members = group
        .members
        .into_iter()
        .map(|m| GroupMember {
            member_id: m.member_id,
            client_id: m.client_id,
            member_epoch: u64::try_from(group.generation).unwrap_or(0),
            topics: subscribed_topics(&m.metadata),
            assigned: assigned_partitions(&m.assignment),
        })
        .collect();
    Live {
        state: group.state.name().to_owned(),
        group_epoch: u64::try_from(group.generation).unwrap_or(0),
        strategy: group.protocol,
        members,
    }
}

fn subscribed_topics(metadata: &[u8]) -> Vec<String> {
    kafka::consumer_subscription(metadata)
        .map(|s| s.topics.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

fn assigned_partitions(assignment: &[u8]) -> Vec<PartitionRef> {
    kafka::consumer_assignment(assignment)
        .map(|a| {
            a.assigned_partitions
                .iter()
                .flat_map(|tp| {
                    tp.partitions.iter().filter_map(|&p| {
                        Some(PartitionRef {
                            topic: tp.topic.0.to_string(),
                            partition: u32::try_from(p).ok()?,
                        })
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}
