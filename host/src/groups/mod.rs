//! Consumer-group coordination as a pure state machine.
//!
//! [`GroupCoordinator`] does no I/O, spawns nothing and reads no clock: the
//! caller passes the time (`now_ms`) and a partition-count lookup into each
//! call, and drives [`GroupCoordinator::expire`] from its own timer
//! ([`GroupCoordinator::next_expiry_ms`] says when). Any transport, Quiver's
//! or a Kafka-protocol front end, can sit on top.
//!
//! # Protocol
//!
//! The protocol is KIP-848's shape: the broker computes assignments, and
//! partitions move cooperatively (a member keeps consuming what it keeps).
//!
//! - **Join** ([`GroupCoordinator::join`]) adds a member with a subscription
//!   and a strategy, and returns its member id and first member epoch
//!   (`1`; `0` is never a member epoch). Member ids are
//!   `{client_id}-{n}` with `n` counting joins across the coordinator, so an
//!   id is never reused, not even after the group is deleted.
//! - **Group epoch**: bumped whenever the target assignment is recomputed:
//!   on join, leave, expiry, and when a heartbeat sees that the partition
//!   count of a subscribed topic differs from the one the target was built
//!   with (a topic created, grown, or deleted).
//! - **Target assignment**: the strategy's output for all members
//!   ([`assignor`]). Members converge to it through heartbeats.
//! - **Heartbeat** ([`GroupCoordinator::heartbeat`]): the member reports
//!   the partitions it owns; the response carries its `assigned` partitions
//!   (the full set it may consume now) and those to `revoke`. A member
//!   gets a target partition only once no other member may still hold it:
//!   the coordinator tracks, per member, `assigned` plus `revoking`
//!   (partitions taken out of `assigned` that the member has not yet
//!   reported as released). These sets never overlap between members, so a
//!   partition is never in two members' `assigned` at once, nor consumed by
//!   two well-behaved members at once.
//! - **Member epoch**: per member, bumped whenever its `assigned` set
//!   changes. A heartbeat must carry the current member epoch or the one
//!   just before it (the response that carried the bump may be lost, or the
//!   client may not have applied it yet); any other value, older or newer,
//!   is [`GroupError::FencedMemberEpoch`] and the client must rejoin. The
//!   previous epoch is safe to accept because fencing of partitions never
//!   relies on epochs: the `revoking` set is cleared only for partitions the
//!   member reports it no longer owns. (This assumes, as Kafka's clients
//!   do, at most one heartbeat in flight per member.)
//! - **Offset commits** ([`GroupCoordinator::validate_commit`]) need the
//!   current member epoch exactly, and a partition the member is assigned or
//!   is still revoking: a member told to revoke commits its final offsets
//!   (with the epoch of that response) before it reports the release.
//!   Standalone ("simple") consumers commit with an empty member id; that is
//!   allowed only while the group has no members, as in Kafka.
//! - **Leave / expiry**: the member is removed at once with everything it
//!   held; its partitions are free for others. A member expires when more
//!   than its session timeout has passed since its last join or heartbeat;
//!   if it is in fact still running, its commits now fail with
//!   [`GroupError::UnknownMember`] and it must rejoin.
//!
//! # Convergence
//!
//! After the last membership or metadata change, with clients that report
//! `owned` = their last `assigned`, every member is assigned exactly its
//! target after three rounds of heartbeats (each member heartbeats once per
//! round, in any order): round one tells members what to revoke, round two
//! confirms the releases, round three hands over partitions released after
//! their receiver's second heartbeat. A client that reports one response
//! late needs a fourth round. The group is then [`GroupState::Stable`].
//!
//! Groups stay (in [`GroupState::Empty`]) when their last member leaves, so
//! their committed offsets keep a home; [`GroupCoordinator::delete`] removes
//! them. Group names are not validated here.

pub mod assignor;
pub mod classic;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use assignor::Assignment;
pub use quiver_proto::topic::TopicPartition;

/// Shortest session timeout a member may ask for (low so tests run fast).
pub const MIN_SESSION_TIMEOUT_MS: u64 = 100;
/// Longest session timeout a member may ask for.
pub const MAX_SESSION_TIMEOUT_MS: u64 = 300_000;
/// Members per group, at most.
pub const MAX_MEMBERS_PER_GROUP: usize = 1_000;
/// Groups per coordinator, at most (empty groups count until deleted).
pub const MAX_GROUPS: usize = 10_000;

/// How a group's partitions are spread over its members; see [`assignor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strategy {
    /// Kafka's range assignor: contiguous ranges per topic.
    Range,
    /// Kafka's round-robin assignor over all subscribed partitions.
    RoundRobin,
    /// Balanced, moving as few partitions as possible (KIP-848's `uniform`).
    Sticky,
}

impl Strategy {
    /// The strategy's name: `range`, `roundrobin` or `sticky`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::RoundRobin => "roundrobin",
            Self::Sticky => "sticky",
        }
    }

    /// The strategy called `name` ([`Strategy::name`], or Kafka's `uniform`
    /// for [`Strategy::Sticky`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(Self::Range),
            "roundrobin" => Some(Self::RoundRobin),
            "sticky" | "uniform" => Some(Self::Sticky),
            _ => None,
        }
    }
}

/// Why a group operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The member id is not (or no longer) in the group: rejoin.
    #[error("unknown member")]
    UnknownMember,
    /// The member epoch is neither the current one nor, for heartbeats, the
    /// previous one: rejoin.
    #[error("fenced member epoch: current {current}, got {got}")]
    FencedMemberEpoch {
        /// The member's current epoch.
        current: u64,
        /// The epoch the request carried.
        got: u64,
    },
    /// The partition is neither assigned to the member nor being revoked
    /// from it.
    #[error("partition {0} is not assigned to this member")]
    NotAssigned(TopicPartition),
    /// The member asked for a different strategy than the group's members use.
    #[error("strategy differs from the one the group's members use")]
    InconsistentStrategy,
    /// The group still has members.
    #[error("group is not empty")]
    NotEmpty,
    /// No such group.
    #[error("unknown group")]
    UnknownGroup,
    /// The session timeout is outside the allowed range.
    #[error("session timeout must be between {min} and {max} ms")]
    InvalidSessionTimeout {
        /// [`MIN_SESSION_TIMEOUT_MS`].
        min: u64,
        /// [`MAX_SESSION_TIMEOUT_MS`].
        max: u64,
    },
    /// [`MAX_GROUPS`] groups exist already.
    #[error("too many groups (at most {MAX_GROUPS})")]
    TooManyGroups,
    /// The group has [`MAX_MEMBERS_PER_GROUP`] members already.
    #[error("too many members in the group (at most {MAX_MEMBERS_PER_GROUP})")]
    TooManyMembers,
}

/// A member's request to join a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// Topics to consume; duplicates are ignored, unknown topics are kept
    /// and assigned once they exist.
    pub topics: Vec<String>,
    /// Must match the strategy of the group's current members.
    pub strategy: Strategy,
    /// Within [`MIN_SESSION_TIMEOUT_MS`]..=[`MAX_SESSION_TIMEOUT_MS`].
    pub session_timeout_ms: u64,
    /// The client's name; the member id starts with it.
    pub client_id: String,
}

/// A successful join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The new member's id.
    pub member_id: String,
    /// Its first member epoch; the first heartbeat brings its assignment.
    pub member_epoch: u64,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// The member's epoch, to send with the next heartbeat and commits.
    pub member_epoch: u64,
    /// Everything the member may consume now (sorted).
    pub assigned: Vec<TopicPartition>,
    /// Partitions to stop consuming and report as released (sorted). Lists
    /// what the member reported or may hold that is not in `assigned`.
    pub revoke: Vec<TopicPartition>,
    /// The group epoch.
    pub group_epoch: u64,
    /// The member's session timeout, for pacing its heartbeats.
    pub session_timeout_ms: u64,
}

/// Where a group is in converging to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Every member is assigned exactly its target and revokes nothing.
    Stable,
    /// Some member has partitions to gain or to release.
    Reconciling,
}

/// A group as [`GroupCoordinator::describe`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Convergence state.
    pub state: GroupState,
    /// The group epoch.
    pub group_epoch: u64,
    /// The members' strategy; `None` while the group is empty.
    pub strategy: Option<Strategy>,
    /// Members in member-id order.
    pub members: Vec<MemberDescription>,
}

/// One member in a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// The client id it joined with.
    pub client_id: String,
    /// Current member epoch.
    pub member_epoch: u64,
    /// Subscribed topics (sorted).
    pub topics: Vec<String>,
    /// Partitions it was last told it may consume (sorted).
    pub assigned: Vec<TopicPartition>,
    /// Partitions it was told to revoke and has not yet reported released
    /// (sorted); nobody else gets them meanwhile.
    pub revoking: Vec<TopicPartition>,
    /// Time of its last join or heartbeat.
    pub last_heartbeat_ms: u64,
    /// Its session timeout.
    pub session_timeout_ms: u64,
}

/// The consumer groups of one broker. See the [module docs](self).
#[derive(Debug, Default)]
pub struct GroupCoordinator {
    groups: BTreeMap<String, Group>,
    /// Suffix of the next member id; never reused.
    next_member: u64,
}

#[derive(Debug, Default)]
struct Group {
    epoch: u64,
    /// `Some` exactly while the group has members.
    strategy: Option<Strategy>,
    members: BTreeMap<String, Member>,
    /// Has an entry for every member.
    target: Assignment,
    /// Partition counts the target was built with, for exactly the topics
    /// some member subscribes to (0 for a missing topic).
    counts: BTreeMap<String, u32>,
}

#[derive(Debug)]
struct Member {
    client_id: String,
    topics: BTreeSet<String>,
    session_timeout_ms: u64,
    last_heartbeat_ms: u64,
    epoch: u64,
    previous_epoch: Option<u64>,
    /// Disjoint from `revoking`; `assigned ∪ revoking` of different members
    /// never overlap.
    assigned: BTreeSet<TopicPartition>,
    revoking: BTreeSet<TopicPartition>,
}

impl Member {
    fn expired(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_heartbeat_ms) > self.session_timeout_ms
    }
}

impl Group {
    /// Current partition counts of every subscribed topic.
    fn fresh_counts(&self, partitions: &dyn Fn(&str) -> Option<u32>) -> BTreeMap<String, u32> {
        let topics: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        topics
            .into_iter()
            .map(|t| (t.clone(), partitions(t).unwrap_or(0)))
            .collect()
    }

    /// Recomputes the target with `counts` and bumps the group epoch.
    fn retarget(&mut self, counts: BTreeMap<String, u32>) {
        self.epoch += 1;
        let Some(strategy) = self.strategy.filter(|_| !self.members.is_empty()) else {
            self.strategy = None;
            self.target.clear();
            self.counts.clear();
            return;
        };
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        self.target = assignor::assign(strategy, &subscriptions, &counts, &self.target);
        self.counts = counts;
    }

    /// Retargets after members left: their topics drop out of the counts,
    /// the others keep the counts the target had (a heartbeat refreshes them).
    fn retarget_after_departure(&mut self) {
        let topics: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        let counts = self
            .counts
            .iter()
            .filter(|(t, _)| topics.contains(t))
            .map(|(t, c)| (t.clone(), *c))
            .collect();
        self.retarget(counts);
    }

    fn state(&self) -> GroupState {
        if self.members.is_empty() {
            return GroupState::Empty;
        }
        let settled = self.members.iter().all(|(id, m)| {
            m.revoking.is_empty() && self.target.get(id).is_some_and(|t| *t == m.assigned)
        });
        if settled {
            GroupState::Stable
        } else {
            GroupState::Reconciling
        }
    }
}

impl GroupCoordinator {
    /// No groups.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a member to `group` (created if absent), bumps the group epoch
    /// and recomputes the target. `partitions` gives a topic's partition
    /// count, `None` if it does not exist.
    pub fn join(
        &mut self,
        group: &str,
        request: JoinRequest,
        now_ms: u64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<Joined, GroupError> {
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&request.session_timeout_ms)
        {
            return Err(GroupError::InvalidSessionTimeout {
                min: MIN_SESSION_TIMEOUT_MS,
                max: MAX_SESSION_TIMEOUT_MS,
            });
        }
        if !self.groups.contains_key(group) && self.groups.len() >= MAX_GROUPS {
            return Err(GroupError::TooManyGroups);
        }
        let g = self.groups.entry(group.to_owned()).or_default();
        if g.members.len() >= MAX_MEMBERS_PER_GROUP {
            return Err(GroupError::TooManyMembers);
        }
        if g.strategy.is_some_and(|s| s != request.strategy) {
            return Err(GroupError::InconsistentStrategy);
        }
        self.next_member += 1;
        let prefix = if request.client_id.is_empty() {
            "member"
        } else {
            &request.client_id
        };
        let member_id = format!("{prefix}-{}", self.next_member);
        let member = Member {
            client_id: request.client_id,
            topics: request.topics.into_iter().collect(),
            session_timeout_ms: request.session_timeout_ms,
            last_heartbeat_ms: now_ms,
            epoch: 1,
            previous_epoch: None,
            assigned: BTreeSet::new(),
            revoking: BTreeSet::new(),
        };
        g.strategy = Some(request.strategy);
        g.members.insert(member_id.clone(), member);
        let counts = g.fresh_counts(partitions);
        g.retarget(counts);
        Ok(Joined {
            member_id,
            member_epoch: 1,
        })
    }

    /// Records that the member is alive and owns `owned`, and tells it what
    /// it may consume and what to revoke. See the [module docs](self) for
    /// the epoch rule.
    pub fn heartbeat(
        &mut self,
        group: &str,
        member_id: &str,
        member_epoch: u64,
        owned: &[TopicPartition],
        now_ms: u64,
        partitions: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<HeartbeatResponse, GroupError> {
        let g = self.groups.get_mut(group).ok_or(GroupError::UnknownGroup)?;
        let member = g.members.get(member_id).ok_or(GroupError::UnknownMember)?;
        if member_epoch != member.epoch && Some(member_epoch) != member.previous_epoch {
            return Err(GroupError::FencedMemberEpoch {
                current: member.epoch,
                got: member_epoch,
            });
        }
        // `counts` has exactly the subscribed topics: compare in place.
        if g.counts
            .iter()
            .any(|(t, &c)| partitions(t).unwrap_or(0) != c)
        {
            let counts = g.fresh_counts(partitions);
            g.retarget(counts);
        }

        let member = g.members.get(member_id).expect("member looked up above");
        let no_target = BTreeSet::new();
        let target = g.target.get(member_id).unwrap_or(&no_target);
        // What other members may hold; only needed if this one is to gain.
        let held_by_others: BTreeSet<&TopicPartition> = if target.is_subset(&member.assigned) {
            BTreeSet::new()
        } else {
            g.members
                .iter()
                .filter(|(id, _)| id.as_str() != member_id)
                .flat_map(|(_, m)| m.assigned.iter().chain(&m.revoking))
                .collect()
        };
        let assigned: BTreeSet<TopicPartition> = target
            .iter()
            .filter(|tp| member.assigned.contains(*tp) || !held_by_others.contains(tp))
            .cloned()
            .collect();
        let reported: BTreeSet<&TopicPartition> = owned.iter().collect();
        // Still possibly held: all it was assigned (it may not have reported
        // a new partition yet), and what it still reports of its revoking set.
        let revoking: BTreeSet<TopicPartition> = member
            .assigned
            .iter()
            .chain(member.revoking.iter().filter(|tp| reported.contains(tp)))
            .filter(|tp| !assigned.contains(*tp))
            .cloned()
            .collect();
        // Also tell it to drop anything it claims but may not have.
        let revoke: BTreeSet<&TopicPartition> = revoking
            .iter()
            .chain(reported.into_iter().filter(|tp| !assigned.contains(*tp)))
            .collect();
        let revoke: Vec<TopicPartition> = revoke.into_iter().cloned().collect();

        let group_epoch = g.epoch;
        let member = g
            .members
            .get_mut(member_id)
            .expect("member looked up above");
        member.last_heartbeat_ms = member.last_heartbeat_ms.max(now_ms);
        if assigned != member.assigned {
            member.previous_epoch = Some(member.epoch);
            member.epoch += 1;
        }
        member.revoking = revoking;
        member.assigned = assigned;
        Ok(HeartbeatResponse {
            member_epoch: member.epoch,
            assigned: member.assigned.iter().cloned().collect(),
            revoke,
            group_epoch,
            session_timeout_ms: member.session_timeout_ms,
        })
    }

    /// Removes the member (and with it whatever it held), bumps the group
    /// epoch and recomputes the target.
    pub fn leave(&mut self, group: &str, member_id: &str) -> Result<(), GroupError> {
        let g = self.groups.get_mut(group).ok_or(GroupError::UnknownGroup)?;
        g.members
            .remove(member_id)
            .ok_or(GroupError::UnknownMember)?;
        g.retarget_after_departure();
        Ok(())
    }

    /// Removes every member whose last join or heartbeat is more than its
    /// session timeout before `now_ms`, and recomputes those groups (one
    /// epoch bump each). Returns `(group, member)` pairs, sorted.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(String, String)> {
        let mut expired = Vec::new();
        for (name, g) in &mut self.groups {
            let before = expired.len();
            g.members.retain(|id, m| {
                let keep = !m.expired(now_ms);
                if !keep {
                    expired.push((name.clone(), id.clone()));
                }
                keep
            });
            if expired.len() > before {
                g.retarget_after_departure();
            }
        }
        expired
    }

    /// The earliest time at which [`expire`](Self::expire) would remove a
    /// member, if any group has members.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .map(|m| {
                m.last_heartbeat_ms
                    .saturating_add(m.session_timeout_ms)
                    .saturating_add(1)
            })
            .min()
    }

    /// The fencing check for an offset commit to `group`.
    ///
    /// With a member id: the member exists, `member_epoch` is its current
    /// epoch, and `tp` is assigned to it or being revoked from it (so it can
    /// commit before releasing). With an empty member id (a standalone
    /// consumer): allowed while the group has no members or does not exist
    /// (Kafka creates it; call [`ensure_group`](Self::ensure_group) to make
    /// it listable), refused with [`GroupError::UnknownMember`] otherwise.
    pub fn validate_commit(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: u64,
        tp: &TopicPartition,
    ) -> Result<(), GroupError> {
        let Some(g) = self.groups.get(group) else {
            return if member_id.is_empty() {
                Ok(())
            } else {
                Err(GroupError::UnknownGroup)
            };
        };
        if member_id.is_empty() {
            return if g.members.is_empty() {
                Ok(())
            } else {
                Err(GroupError::UnknownMember)
            };
        }
        let m = g.members.get(member_id).ok_or(GroupError::UnknownMember)?;
        if member_epoch != m.epoch {
            return Err(GroupError::FencedMemberEpoch {
                current: m.epoch,
                got: member_epoch,
            });
        }
        if !m.assigned.contains(tp) && !m.revoking.contains(tp) {
            return Err(GroupError::NotAssigned(tp.clone()));
        }
        Ok(())
    }

    /// Creates `group` empty if it does not exist (for standalone consumers'
    /// commits).
    pub fn ensure_group(&mut self, group: &str) -> Result<(), GroupError> {
        if !self.groups.contains_key(group) {
            if self.groups.len() >= MAX_GROUPS {
                return Err(GroupError::TooManyGroups);
            }
            self.groups.insert(group.to_owned(), Group::default());
        }
        Ok(())
    }

    /// The group's state and members, or `None` if there is no such group.
    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group)?;
        let members = g
            .members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                member_epoch: m.epoch,
                topics: m.topics.iter().cloned().collect(),
                assigned: m.assigned.iter().cloned().collect(),
                revoking: m.revoking.iter().cloned().collect(),
                last_heartbeat_ms: m.last_heartbeat_ms,
                session_timeout_ms: m.session_timeout_ms,
            })
            .collect();
        Some(GroupDescription {
            state: g.state(),
            group_epoch: g.epoch,
            strategy: g.strategy,
            members,
        })
    }

    /// Names of all groups, sorted.
    pub fn list(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Removes an empty group.
    pub fn delete(&mut self, group: &str) -> Result<(), GroupError> {
        let g = self.groups.get(group).ok_or(GroupError::UnknownGroup)?;
        if !g.members.is_empty() {
            return Err(GroupError::NotEmpty);
        }
        self.groups.remove(group);
        Ok(())
    }

    /// Whether `group` has no members (true if it does not exist).
    pub fn is_empty(&self, group: &str) -> bool {
        self.groups.get(group).is_none_or(|g| g.members.is_empty())
    }
}
