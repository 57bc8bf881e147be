//! Kafka's classic group protocol, for Kafka clients: members join, the
//! coordinator picks a leader and a protocol every member supports, the
//! leader assigns (in the client, from the members' opaque metadata) and
//! the coordinator hands each member its opaque assignment. A pure state
//! machine: no I/O, time passed in; what a call completes for other
//! members comes back as [`Effects`], which the caller delivers to their
//! waiting requests.
//!
//! ```text
//!            join                all joined / deadline        leader's sync
//!   Empty ─────────▶ PreparingRebalance ─────────▶ CompletingRebalance ─────────▶ Stable
//!     ▲                    ▲   ▲                                                   │
//!     │ last member leaves │   └───────────── join, leave, member expires ─────────┘
//!     └────────────────────┘
//! ```
//!
//! During `PreparingRebalance` heartbeats answer `REBALANCE_IN_PROGRESS`,
//! which is how members learn to join again; it ends when every member has
//! joined, or at its deadline (the longest rebalance timeout), dropping the
//! members that did not. A member silent for its session timeout is
//! removed, except while it waits for its join to be answered.
//!
//! These groups share names and committed offsets with the groups of
//! Quiver's own protocol ([`super::GroupCoordinator`]); one name is one
//! kind of group while it has members.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{MAX_GROUPS, MAX_MEMBERS_PER_GROUP, MAX_SESSION_TIMEOUT_MS, MIN_SESSION_TIMEOUT_MS};

/// Longest rebalance timeout a member may ask for (Kafka's default
/// `max.poll.interval.ms` is 5 minutes).
pub const MAX_REBALANCE_TIMEOUT_MS: u64 = 600_000;

/// How long a group's first rebalance waits for more members after the
/// first joins (each newcomer extends it, up to the rebalance timeout), as
/// Kafka's `group.initial.rebalance.delay.ms`: consumers started together
/// form one generation instead of one each, and none reads records another
/// is about to be assigned.
pub const INITIAL_REBALANCE_DELAY_MS: u64 = 3_000;

/// Bytes of one member's metadata (all its protocols), and of one
/// member's assignment, at most (a consumer's subscription or assignment
/// takes a few hundred bytes).
pub const MAX_MEMBER_METADATA_BYTES: usize = 64 * 1024;

/// Characters of a client id that start a new member's id.
const MEMBER_ID_PREFIX_CHARS: usize = 64;

/// Protocols one member may offer, at most.
pub const MAX_PROTOCOLS: usize = 16;

/// Why a classic-group request was refused; each is one Kafka error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassicError {
    /// The member id is not (or no longer) in the group.
    #[error("unknown member")]
    UnknownMember,
    /// The generation is not the group's current one.
    #[error("generation {got} is not the group's {current}")]
    IllegalGeneration {
        /// The group's generation.
        current: i32,
        /// The request's.
        got: i32,
    },
    /// The group is rebalancing: join again.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// The protocol type or protocols do not match the group's members'.
    #[error("{0}")]
    InconsistentProtocol(String),
    /// A session or rebalance timeout out of range.
    #[error("{0}")]
    InvalidTimeout(String),
    /// The group has [`MAX_MEMBERS_PER_GROUP`] members (or new members
    /// waiting to join).
    #[error("the group has {MAX_MEMBERS_PER_GROUP} members")]
    GroupFull,
    /// The coordinator holds [`MAX_GROUPS`] classic groups.
    #[error("the broker coordinates {MAX_GROUPS} groups of Kafka clients already")]
    TooManyGroups,
    /// A new member must join again with the id given (KIP-394).
    #[error("join again with member id {0}")]
    MemberIdRequired(String),
}

/// Where a classic group is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    /// No members.
    Empty,
    /// Waiting for members to join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl ClassicState {
    /// Kafka's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
        }
    }
}

/// A join request.
#[derive(Debug, Clone)]
pub struct Join {
    /// The group.
    pub group: String,
    /// The member's id; empty for a new member.
    pub member_id: String,
    /// The client's id (the start of a new member's id).
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Removed when silent this long.
    pub session_timeout_ms: u64,
    /// How long a rebalance waits for this member to join again.
    pub rebalance_timeout_ms: u64,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// The protocols (assignors) the member supports, preferred first, each
    /// with its opaque metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Whether a new member must first get its id and join again
    /// (`JoinGroup` version 4 on).
    pub require_known_member: bool,
}

/// What a member's join is answered with, once the rebalance completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The member's id.
    pub member_id: String,
    /// The new generation.
    pub generation: i32,
    /// The protocol chosen.
    pub protocol: String,
    /// The leader's member id.
    pub leader: String,
    /// For the leader only: every member and its metadata for the chosen
    /// protocol.
    pub members: Vec<(String, Bytes)>,
}

/// Answers for requests waiting on others: joins and syncs completed (or
/// failed) by this call.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// (group, member, answer) per completed join.
    pub joins: Vec<(String, String, Result<Joined, ClassicError>)>,
    /// (group, member, answer) per completed sync.
    pub syncs: Vec<(String, String, Result<Bytes, ClassicError>)>,
}

/// What a sync call returns to its caller.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The member's assignment.
    Assigned(Bytes),
    /// The answer comes when the leader's assignment arrives.
    Waiting,
}

/// A group as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicDescription {
    /// Its state.
    pub state: ClassicState,
    /// Its generation.
    pub generation: i32,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// The protocol chosen at the last rebalance.
    pub protocol: Option<String>,
    /// (member id, client id, client host, metadata for the chosen
    /// protocol, assignment).
    pub members: Vec<ClassicMemberView>,
}

/// One member as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberView {
    /// Its id.
    pub member_id: String,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// Its metadata for the chosen protocol (its subscription).
    pub metadata: Bytes,
    /// Its assignment from the last rebalance.
    pub assignment: Bytes,
}

#[derive(Debug)]
struct Member {
    client_id: String,
    client_host: String,
    session_timeout_ms: u64,
    rebalance_timeout_ms: u64,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heard_ms: u64,
    /// Its join waits for the rebalance to complete.
    joining: bool,
    /// Its sync waits for the leader's.
    syncing: bool,
}

#[derive(Debug)]
struct Group {
    state: ClassicState,
    generation: i32,
    protocol_type: String,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Ids handed to new members that have not joined with them yet, and
    /// when each lapses (the joiner's session timeout after it was given).
    pending_ids: BTreeMap<String, u64>,
    /// When `PreparingRebalance` ends at the latest.
    rebalance_deadline_ms: u64,
    /// The first rebalance of an empty group waits for more members until
    /// then.
    initial_until_ms: u64,
}

impl Group {
    fn new(protocol_type: String) -> Self {
        Self {
            state: ClassicState::Empty,
            generation: 0,
            protocol_type,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending_ids: BTreeMap::new(),
            rebalance_deadline_ms: 0,
            initial_until_ms: 0,
        }
    }
}

/// Every classic group.
#[derive(Debug)]
pub struct ClassicGroups {
    groups: BTreeMap<String, Group>,
    /// Makes new member ids unique.
    next_member: u64,
    /// See [`INITIAL_REBALANCE_DELAY_MS`].
    initial_delay_ms: u64,
}

impl ClassicGroups {
    /// No groups; a first rebalance waits `initial_delay_ms` for more
    /// members ([`INITIAL_REBALANCE_DELAY_MS`] unless configured).
    pub fn new(initial_delay_ms: u64) -> Self {
        Self {
            groups: BTreeMap::new(),
            next_member: 0,
            initial_delay_ms,
        }
    }

    /// Whether `group` is a classic group with members.
    pub fn has_members(&self, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// The classic groups, by name.
    pub fn list(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Forgets `group` if it has no members; whether it did.
    pub fn remove_if_empty(&mut self, group: &str) -> bool {
        if self.has_members(group) {
            return false;
        }
        self.groups.remove(group).is_some()
    }

    /// A member joins (or joins again). Returns its member id (a new
    /// member's is made here); its answer comes in the [`Effects`] of this
    /// call or a later one.
    pub fn join(&mut self, join: Join, now_ms: u64) -> Result<(String, Effects), ClassicError> {
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&join.session_timeout_ms) {
            return Err(ClassicError::InvalidTimeout(format!(
                "session timeout {} ms is outside {MIN_SESSION_TIMEOUT_MS}..={MAX_SESSION_TIMEOUT_MS}",
                join.session_timeout_ms
            )));
        }
        if join.protocols.is_empty() || join.protocols.len() > MAX_PROTOCOLS {
            return Err(ClassicError::InconsistentProtocol(format!(
                "a member offers 1 to {MAX_PROTOCOLS} protocols"
            )));
        }
        if !self.groups.contains_key(&join.group) && self.groups.len() >= MAX_GROUPS {
            return Err(ClassicError::TooManyGroups);
        }
        let group = self
            .groups
            .entry(join.group.clone())
            .or_insert_with(|| Group::new(join.protocol_type.clone()));
        if group.members.is_empty() {
            group.protocol_type.clone_from(&join.protocol_type);
        } else {
            check_protocols(group, &join)?;
        }
        let member_id = if join.member_id.is_empty() {
            self.next_member += 1;
            // The client's id (its first characters) makes the member's
            // readable in descriptions.
            let prefix: String = join
                .client_id
                .chars()
                .take(MEMBER_ID_PREFIX_CHARS)
                .collect();
            let id = format!("{prefix}-{}", self.next_member);
            if join.require_known_member {
                if group.pending_ids.len() >= MAX_MEMBERS_PER_GROUP {
                    return Err(ClassicError::GroupFull);
                }
                group
                    .pending_ids
                    .insert(id.clone(), now_ms + join.session_timeout_ms);
                return Err(ClassicError::MemberIdRequired(id));
            }
            id
        } else if group.members.contains_key(&join.member_id)
            || group.pending_ids.remove(&join.member_id).is_some()
        {
            join.member_id.clone()
        } else {
            return Err(ClassicError::UnknownMember);
        };
        if !group.members.contains_key(&member_id) && group.members.len() >= MAX_MEMBERS_PER_GROUP {
            return Err(ClassicError::GroupFull);
        }
        let rebalance_timeout_ms = join
            .rebalance_timeout_ms
            .clamp(join.session_timeout_ms, MAX_REBALANCE_TIMEOUT_MS);
        let member = group.members.entry(member_id.clone()).or_insert(Member {
            client_id: join.client_id,
            client_host: join.client_host,
            session_timeout_ms: join.session_timeout_ms,
            rebalance_timeout_ms,
            protocols: Vec::new(),
            assignment: Bytes::new(),
            last_heard_ms: now_ms,
            joining: false,
            syncing: false,
        });
        // Copied out of the request's buffer (a slice would keep all of
        // it alive), within their size limit.
        let offered: usize = join.protocols.iter().map(|(_, m)| m.len()).sum();
        if offered > MAX_MEMBER_METADATA_BYTES {
            return Err(ClassicError::InconsistentProtocol(format!(
                "{offered} bytes of member metadata; at most {MAX_MEMBER_METADATA_BYTES}"
            )));
        }
        member.protocols = join
            .protocols
            .into_iter()
            .map(|(name, metadata)| (name, Bytes::copy_from_slice(&metadata)))
            .collect();
        member.session_timeout_ms = join.session_timeout_ms;
        member.rebalance_timeout_ms = rebalance_timeout_ms;
        member.last_heard_ms = now_ms;
        member.joining = true;
        let mut effects = Effects::default();
        match group.state {
            ClassicState::Empty => {
                prepare_rebalance(&join.group, group, now_ms, &mut effects);
                group.initial_until_ms = now_ms + self.initial_delay_ms;
            }
            ClassicState::PreparingRebalance if now_ms < group.initial_until_ms => {
                // A newcomer during the first rebalance's wait extends it.
                group.initial_until_ms =
                    (now_ms + self.initial_delay_ms).min(group.rebalance_deadline_ms);
            }
            ClassicState::PreparingRebalance => {}
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                prepare_rebalance(&join.group, group, now_ms, &mut effects);
            }
        }
        complete_join_if_ready(&join.group, group, now_ms, &mut effects);
        Ok((member_id, effects))
    }

    /// A member asks for its assignment; the leader brings everyone's.
    pub fn sync(
        &mut self,
        group_name: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: u64,
    ) -> Result<(SyncOutcome, Effects), ClassicError> {
        let group = self.heard_from(group_name, member_id, now_ms)?;
        if generation != group.generation {
            return Err(ClassicError::IllegalGeneration {
                current: group.generation,
                got: generation,
            });
        }
        let mut effects = Effects::default();
        match group.state {
            ClassicState::Empty | ClassicState::PreparingRebalance => {
                Err(ClassicError::RebalanceInProgress)
            }
            ClassicState::Stable => {
                let own = group.members.get(member_id).map(|m| m.assignment.clone());
                Ok((SyncOutcome::Assigned(own.unwrap_or_default()), effects))
            }
            ClassicState::CompletingRebalance => {
                if group.leader.as_deref() != Some(member_id) {
                    if let Some(member) = group.members.get_mut(member_id) {
                        member.syncing = true;
                    }
                    return Ok((SyncOutcome::Waiting, effects));
                }
                let mut given: BTreeMap<String, Bytes> = assignments
                    .into_iter()
                    .filter(|(_, a)| a.len() <= MAX_MEMBER_METADATA_BYTES)
                    .map(|(id, a)| (id, Bytes::copy_from_slice(&a)))
                    .collect();
                for (id, m) in &mut group.members {
                    m.assignment = given.remove(id).unwrap_or_default();
                    if m.syncing && id != member_id {
                        m.syncing = false;
                        effects.syncs.push((
                            group_name.to_owned(),
                            id.clone(),
                            Ok(m.assignment.clone()),
                        ));
                    }
                }
                group.state = ClassicState::Stable;
                let own = group
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Ok((SyncOutcome::Assigned(own), effects))
            }
        }
    }

    /// A member says it is alive; `RebalanceInProgress` tells it to join
    /// again.
    pub fn heartbeat(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        now_ms: u64,
    ) -> Result<(), ClassicError> {
        let group = self.heard_from(group, member_id, now_ms)?;
        match group.state {
            ClassicState::PreparingRebalance => Err(ClassicError::RebalanceInProgress),
            _ if generation != group.generation => Err(ClassicError::IllegalGeneration {
                current: group.generation,
                got: generation,
            }),
            _ => Ok(()),
        }
    }

    /// The group of a member just heard from (which is noted).
    fn heard_from(
        &mut self,
        group: &str,
        member_id: &str,
        now_ms: u64,
    ) -> Result<&mut Group, ClassicError> {
        let group = self
            .groups
            .get_mut(group)
            .ok_or(ClassicError::UnknownMember)?;
        group
            .members
            .get_mut(member_id)
            .ok_or(ClassicError::UnknownMember)?
            .last_heard_ms = now_ms;
        Ok(group)
    }

    /// Members leave; the others rebalance.
    pub fn leave(
        &mut self,
        group_name: &str,
        member_ids: &[String],
        now_ms: u64,
    ) -> (Vec<Result<(), ClassicError>>, Effects) {
        let mut effects = Effects::default();
        let Some(group) = self.groups.get_mut(group_name) else {
            return (
                member_ids
                    .iter()
                    .map(|_| Err(ClassicError::UnknownMember))
                    .collect(),
                effects,
            );
        };
        let results = member_ids
            .iter()
            .map(|id| {
                remove_member(group_name, group, id, &mut effects)
                    .ok_or(ClassicError::UnknownMember)
            })
            .collect();
        rebalance_after_removal(group_name, group, now_ms, &mut effects);
        (results, effects)
    }

    /// Removes members silent past their session timeout, ends rebalances
    /// past their deadline, lets unused member ids lapse and forgets groups
    /// left with nothing.
    pub fn tick(&mut self, now_ms: u64) -> Effects {
        let mut effects = Effects::default();
        // Ids handed out and never used lapse; groups left with nothing are
        // forgotten (their committed offsets stay in storage).
        self.groups.retain(|_, group| {
            group.pending_ids.retain(|_, lapses_ms| *lapses_ms > now_ms);
            !(group.members.is_empty() && group.pending_ids.is_empty())
        });
        for (name, group) in &mut self.groups {
            let silent: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    // A member waiting for its join or sync answer cannot
                    // heartbeat meanwhile.
                    !m.joining
                        && !m.syncing
                        && now_ms.saturating_sub(m.last_heard_ms) > m.session_timeout_ms
                })
                .map(|(id, _)| id.clone())
                .collect();
            let late: Vec<String> = if group.state == ClassicState::PreparingRebalance
                && now_ms >= group.rebalance_deadline_ms
            {
                group
                    .members
                    .iter()
                    .filter(|(_, m)| !m.joining)
                    .map(|(id, _)| id.clone())
                    .collect()
            } else {
                Vec::new()
            };
            for id in silent.iter().chain(&late) {
                tracing::info!(group = %name, member = %id, "Kafka group member removed: silent past its timeout");
                remove_member(name, group, id, &mut effects);
            }
            if !silent.is_empty() || !late.is_empty() {
                rebalance_after_removal(name, group, now_ms, &mut effects);
            } else {
                // A first rebalance whose wait for more members is over.
                complete_join_if_ready(name, group, now_ms, &mut effects);
            }
        }
        effects
    }

    /// Checks a commit by `member_id` at `generation` (an empty member id is
    /// a standalone consumer's, allowed while the group has no members).
    /// `None` if `group` is not a classic group.
    pub fn validate_commit(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Option<Result<(), ClassicError>> {
        let group = self.groups.get(group)?;
        if member_id.is_empty() {
            return Some(if group.members.is_empty() {
                Ok(())
            } else {
                Err(ClassicError::UnknownMember)
            });
        }
        Some(if !group.members.contains_key(member_id) {
            Err(ClassicError::UnknownMember)
        } else if generation != group.generation {
            Err(ClassicError::IllegalGeneration {
                current: group.generation,
                got: generation,
            })
        } else if group.state == ClassicState::CompletingRebalance {
            // As Kafka: members commit while a rebalance is prepared (before
            // giving partitions up), not while assignments are handed out.
            Err(ClassicError::RebalanceInProgress)
        } else {
            Ok(())
        })
    }

    /// The group as described, if it is a classic group.
    pub fn describe(&self, group: &str) -> Option<ClassicDescription> {
        let group = self.groups.get(group)?;
        let protocol = group.protocol.clone();
        Some(ClassicDescription {
            state: group.state,
            generation: group.generation,
            protocol_type: group.protocol_type.clone(),
            members: group
                .members
                .iter()
                .map(|(id, m)| ClassicMemberView {
                    member_id: id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: protocol
                        .as_ref()
                        .and_then(|p| m.protocols.iter().find(|(name, _)| name == p))
                        .map(|(_, metadata)| metadata.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
            protocol,
        })
    }
}

/// A joining member must speak the group's protocol type and share a
/// protocol with every member.
fn check_protocols(group: &Group, join: &Join) -> Result<(), ClassicError> {
    if group.protocol_type != join.protocol_type {
        return Err(ClassicError::InconsistentProtocol(format!(
            "the group's protocol type is {:?}, not {:?}",
            group.protocol_type, join.protocol_type
        )));
    }
    let shared = join.protocols.iter().any(|(name, _)| {
        group
            .members
            .iter()
            .filter(|(id, _)| **id != join.member_id)
            .all(|(_, m)| m.protocols.iter().any(|(p, _)| p == name))
    });
    if !shared {
        return Err(ClassicError::InconsistentProtocol(
            "no protocol in common with the group's members".to_owned(),
        ));
    }
    Ok(())
}

/// Starts a rebalance: waiting syncs are told to join again.
fn prepare_rebalance(name: &str, group: &mut Group, now_ms: u64, effects: &mut Effects) {
    group.state = ClassicState::PreparingRebalance;
    let longest = group
        .members
        .values()
        .map(|m| m.rebalance_timeout_ms)
        .max()
        .unwrap_or(0);
    group.rebalance_deadline_ms = now_ms + longest;
    for (id, m) in &mut group.members {
        if m.syncing {
            m.syncing = false;
            effects.syncs.push((
                name.to_owned(),
                id.clone(),
                Err(ClassicError::RebalanceInProgress),
            ));
        }
    }
}

/// Ends the join phase once every member has joined (and a first
/// rebalance's wait for more members is over): a new generation, a
/// protocol all share, a leader; every join answered.
fn complete_join_if_ready(name: &str, group: &mut Group, now_ms: u64, effects: &mut Effects) {
    if group.state != ClassicState::PreparingRebalance
        || group.members.is_empty()
        || group.members.values().any(|m| !m.joining)
        || now_ms < group.initial_until_ms
    {
        return;
    }
    // The first protocol of the leader's (in its order) that all support.
    let leader = match &group.leader {
        Some(leader) if group.members.contains_key(leader) => leader.clone(),
        _ => group.members.keys().next().cloned().unwrap_or_default(),
    };
    let protocol = group.members[&leader]
        .protocols
        .iter()
        .map(|(p, _)| p.clone())
        .find(|p| {
            group
                .members
                .values()
                .all(|m| m.protocols.iter().any(|(q, _)| q == p))
        })
        .unwrap_or_default();
    group.generation = group.generation.wrapping_add(1).max(1);
    group.protocol = Some(protocol.clone());
    group.leader = Some(leader.clone());
    group.state = ClassicState::CompletingRebalance;
    let metadata: Vec<(String, Bytes)> = group
        .members
        .iter()
        .map(|(id, m)| {
            let data = m
                .protocols
                .iter()
                .find(|(p, _)| *p == protocol)
                .map(|(_, d)| d.clone())
                .unwrap_or_default();
            (id.clone(), data)
        })
        .collect();
    for (id, m) in &mut group.members {
        m.joining = false;
        effects.joins.push((
            name.to_owned(),
            id.clone(),
            Ok(Joined {
                member_id: id.clone(),
                generation: group.generation,
                protocol: protocol.clone(),
                leader: leader.clone(),
                members: if *id == leader {
                    metadata.clone()
                } else {
                    Vec::new()
                },
            }),
        ));
    }
}

/// Removes a member, failing its waiting join or sync; `None` if unknown.
fn remove_member(name: &str, group: &mut Group, id: &str, effects: &mut Effects) -> Option<()> {
    let member = group.members.remove(id)?;
    if member.joining {
        effects.joins.push((
            name.to_owned(),
            id.to_owned(),
            Err(ClassicError::UnknownMember),
        ));
    }
    if member.syncing {
        effects.syncs.push((
            name.to_owned(),
            id.to_owned(),
            Err(ClassicError::UnknownMember),
        ));
    }
    Some(())
}

/// After members left: empty, or a rebalance among those left.
fn rebalance_after_removal(name: &str, group: &mut Group, now_ms: u64, effects: &mut Effects) {
    if group.members.is_empty() {
        group.state = ClassicState::Empty;
        group.leader = None;
        return;
    }
    if group.state != ClassicState::PreparingRebalance {
        prepare_rebalance(name, group, now_ms, effects);
    }
    complete_join_if_ready(name, group, now_ms, effects);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(group: &str, member_id: &str, protocols: &[&str]) -> Join {
        Join {
            group: group.to_owned(),
            member_id: member_id.to_owned(),
            client_id: "app".to_owned(),
            client_host: "/127.0.0.1".to_owned(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".to_owned(),
            protocols: protocols
                .iter()
                .map(|p| ((*p).to_owned(), Bytes::from(format!("{member_id}:{p}"))))
                .collect(),
            require_known_member: false,
        }
    }

    fn joined(effects: &Effects, member: &str) -> Joined {
        effects
            .joins
            .iter()
            .find(|(_, m, _)| m == member)
            .and_then(|(_, _, r)| r.clone().ok())
            .expect("the member's join was answered")
    }

    #[test]
    fn one_member_joins_syncs_and_is_stable() {
        let mut groups = ClassicGroups::new(0);
        let (id, effects) = groups.join(join("g", "", &["range"]), 0).expect("join");
        let answer = joined(&effects, &id);
        assert_eq!(
            (answer.generation, answer.leader.as_str()),
            (1, id.as_str())
        );
        assert_eq!(answer.members.len(), 1);
        let (sync, _) = groups
            .sync(
                "g",
                &id,
                1,
                vec![(id.clone(), Bytes::from_static(b"all"))],
                1,
            )
            .expect("sync");
        assert_eq!(sync, SyncOutcome::Assigned(Bytes::from_static(b"all")));
        assert_eq!(
            groups.describe("g").expect("group").state,
            ClassicState::Stable
        );
        assert_eq!(groups.heartbeat("g", &id, 1, 2), Ok(()));
    }

    #[test]
    fn a_second_member_makes_the_first_join_again_and_the_leader_assigns() {
        let mut groups = ClassicGroups::new(0);
        let (a, _) = groups
            .join(join("g", "", &["range", "roundrobin"]), 0)
            .expect("join");
        groups.sync("g", &a, 1, vec![], 0).expect("sync");
        let (b, effects) = groups
            .join(join("g", "", &["roundrobin"]), 10)
            .expect("join");
        assert!(effects.joins.is_empty(), "b waits for a to join again");
        assert_eq!(
            groups.heartbeat("g", &a, 1, 20),
            Err(ClassicError::RebalanceInProgress)
        );
        let (_, effects) = groups
            .join(join("g", &a, &["range", "roundrobin"]), 30)
            .expect("rejoin");
        let (for_a, for_b) = (joined(&effects, &a), joined(&effects, &b));
        assert_eq!(for_a.generation, 2);
        assert_eq!(
            for_a.protocol, "roundrobin",
            "the only protocol both support"
        );
        assert_eq!(for_a.leader, a, "the leader stays");
        assert_eq!(for_a.members.len(), 2);
        assert!(for_b.members.is_empty(), "only the leader gets the members");
        // b syncs first and waits for the leader's assignment.
        let (waiting, _) = groups.sync("g", &b, 2, vec![], 40).expect("sync");
        assert_eq!(waiting, SyncOutcome::Waiting);
        let (own, effects) = groups
            .sync(
                "g",
                &a,
                2,
                vec![
                    (a.clone(), Bytes::from_static(b"p0")),
                    (b.clone(), Bytes::from_static(b"p1")),
                ],
                50,
            )
            .expect("leader's sync");
        assert_eq!(own, SyncOutcome::Assigned(Bytes::from_static(b"p0")));
        assert_eq!(
            effects.syncs,
            vec![("g".to_owned(), b, Ok(Bytes::from_static(b"p1")))]
        );
    }

    #[test]
    fn leaving_and_expiring_rebalance_the_rest() {
        let mut groups = ClassicGroups::new(0);
        let (a, _) = groups.join(join("g", "", &["range"]), 0).expect("join");
        let (b, _) = groups.join(join("g", "", &["range"]), 0).expect("join");
        // a's first join made generation 1 alone; b's made a join again.
        let (_, effects) = groups.join(join("g", &a, &["range"]), 0).expect("rejoin");
        assert_eq!(joined(&effects, &b).generation, 2);
        let (results, effects) = groups.leave("g", std::slice::from_ref(&b), 5);
        assert_eq!(results, vec![Ok(())]);
        assert!(effects.joins.is_empty());
        assert_eq!(
            groups.heartbeat("g", &a, 2, 6),
            Err(ClassicError::RebalanceInProgress)
        );
        let (_, effects) = groups.join(join("g", &a, &["range"]), 7).expect("rejoin");
        assert_eq!(joined(&effects, &a).generation, 3);
        // a goes silent past its session timeout: the group empties.
        groups.tick(7 + 10_001);
        assert_eq!(
            groups.describe("g").expect("group").state,
            ClassicState::Empty
        );
        assert!(groups.remove_if_empty("g"));
    }

    #[test]
    fn a_rebalance_drops_members_that_do_not_join_again_by_the_deadline() {
        let mut groups = ClassicGroups::new(0);
        let (a, _) = groups.join(join("g", "", &["range"]), 0).expect("join");
        groups.sync("g", &a, 1, vec![], 0).expect("sync");
        let (b, _) = groups.join(join("g", "", &["range"]), 100).expect("join");
        // a keeps heartbeating but never joins again.
        assert!(groups.heartbeat("g", &a, 1, 5_000).is_err());
        let effects = groups.tick(100 + 30_000);
        assert_eq!(joined(&effects, &b).generation, 2);
        assert_eq!(groups.describe("g").expect("group").members.len(), 1);
    }

    #[test]
    fn a_first_rebalance_waits_for_more_members() {
        let mut groups = ClassicGroups::new(3_000);
        let (a, effects) = groups.join(join("g", "", &["range"]), 0).expect("join");
        assert!(effects.joins.is_empty(), "waits for more members");
        let (b, effects) = groups.join(join("g", "", &["range"]), 2_000).expect("join");
        assert!(effects.joins.is_empty(), "the newcomer extends the wait");
        assert!(groups.tick(4_000).joins.is_empty());
        let effects = groups.tick(5_000);
        assert_eq!(joined(&effects, &a).generation, 1);
        assert_eq!(
            joined(&effects, &b).generation,
            1,
            "one generation for both"
        );
    }

    #[test]
    fn unused_member_ids_lapse_and_empty_groups_are_forgotten() {
        let mut groups = ClassicGroups::new(0);
        let mut new = join("g", "", &["range"]);
        new.require_known_member = true;
        let Err(ClassicError::MemberIdRequired(id)) = groups.join(new.clone(), 0) else {
            panic!("a new member gets its id first");
        };
        // Never used within its session timeout: it lapses, and the group
        // (with nothing left) is forgotten.
        groups.tick(10_001);
        assert!(groups.describe("g").is_none());
        assert_eq!(
            groups.join(join("g", &id, &["range"]), 10_002).err(),
            Some(ClassicError::UnknownMember)
        );
        // Ids handed out are bounded like members.
        for _ in 0..MAX_MEMBERS_PER_GROUP {
            let _ = groups.join(new.clone(), 20_000);
        }
        assert_eq!(
            groups.join(new, 20_000).err(),
            Some(ClassicError::GroupFull)
        );
    }

    #[test]
    fn refusals() {
        let mut groups = ClassicGroups::new(0);
        let mut new = join("g", "", &["range"]);
        new.require_known_member = true;
        let Err(ClassicError::MemberIdRequired(id)) = groups.join(new, 0) else {
            panic!("a new member gets its id first");
        };
        let (_, effects) = groups
            .join(join("g", &id, &["range"]), 0)
            .expect("join with the id");
        assert_eq!(joined(&effects, &id).generation, 1);
        assert_eq!(
            groups.join(join("g", "stranger", &["range"]), 0).err(),
            Some(ClassicError::UnknownMember)
        );
        assert!(matches!(
            groups.join(join("g", "", &["sticky"]), 0),
            Err(ClassicError::InconsistentProtocol(_))
        ));
        let mut short = join("g", "", &["range"]);
        short.session_timeout_ms = 1;
        assert!(matches!(
            groups.join(short, 0),
            Err(ClassicError::InvalidTimeout(_))
        ));
        assert_eq!(
            groups.sync("g", &id, 7, vec![], 0).err(),
            Some(ClassicError::IllegalGeneration { current: 1, got: 7 })
        );
        assert_eq!(
            groups.validate_commit("g", &id, 1),
            Some(Err(ClassicError::RebalanceInProgress)),
            "not while assignments are handed out"
        );
        groups.sync("g", &id, 1, vec![], 0).expect("sync");
        assert_eq!(groups.validate_commit("g", &id, 1), Some(Ok(())));
        assert_eq!(
            groups.validate_commit("g", "", -1),
            Some(Err(ClassicError::UnknownMember))
        );
        assert_eq!(groups.validate_commit("other", "", -1), None);
    }
}
