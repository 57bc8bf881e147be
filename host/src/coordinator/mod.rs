//! The group coordinator service: the pure state machine of
//! [`crate::groups`] behind a mutex, driven by the broker's clock, with
//! committed offsets kept durably in storage. Request handlers call it; the
//! broker runs [`Coordinator::run_expiry`] to evict silent members.
//!
//! Membership lives in memory: after a broker restart members rejoin (their
//! old ids are unknown), while committed offsets survive.
//!
//! Kafka clients' groups (the classic protocol: the client's leader
//! assigns) run in [`crate::groups::classic`] beside these, behind their own
//! lock, with the requests that wait for other members in [`classic`]. Both
//! kinds share group names (one kind per name while it has members) and
//! the committed offsets.

mod classic;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use quiver_proto::api::groups::{
    CommitOffsetsRequest, CommitOffsetsResponse, CommittedOffset, DescribeGroupRequest,
    FetchOffsetsRequest, FetchOffsetsResponse, GroupDescription, GroupMember, GroupPartition,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    PartitionRef, ResetOffsetsRequest, ResetTarget,
};
use quiver_proto::api::{GroupMemberRef, OffsetSpec};
use quiver_proto::limits::{MAX_PARTITIONS_PER_REQUEST, MAX_TOPIC_NAME_BYTES};
use quiver_proto::topic::validate_topic_name;
use quiver_proto::{ErrorCode, WireError};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::groups::classic::{ClassicGroups, INITIAL_REBALANCE_DELAY_MS};
use crate::groups::{
    GroupCoordinator, GroupError, GroupState, JoinRequest, Strategy, TopicPartition,
};
use crate::storage::{OffsetToCommit, Storage};

/// How often members are told to heartbeat, at most (a member with a short
/// session timeout heartbeats at a third of it).
pub const HEARTBEAT_INTERVAL_MS: u64 = 1_000;

/// How often silent members are looked for.
pub const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How often the consumer-group lag gauges are refreshed, in expiry ticks.
const LAG_REFRESH_TICKS: u32 = 50;

/// Topics one member may subscribe to, at most.
pub const MAX_SUBSCRIBED_TOPICS: usize = 256;

/// Longest client id.
pub const MAX_CLIENT_ID_BYTES: usize = 255;

/// Longest group name, as for topics.
pub const MAX_GROUP_NAME_BYTES: usize = MAX_TOPIC_NAME_BYTES;

/// Groups, their members, and their committed offsets.
#[derive(Debug)]
pub struct Coordinator {
    state: Mutex<GroupCoordinator>,
    /// Kafka clients' classic groups; locked after `state` when both are.
    classic: Mutex<ClassicGroups>,
    /// Classic-protocol requests waiting for other members.
    waiters: Mutex<classic::Waiters>,
    /// Groups whose offsets are being reset or deleted: joins are refused
    /// until the storage write is done, so no member starts from offsets
    /// about to change. Only touched while `state` is locked.
    busy: Mutex<BTreeSet<String>>,
    storage: Arc<Storage>,
    clock: Arc<dyn Clock>,
}

impl Coordinator {
    /// A coordinator with no groups in memory.
    pub fn new(storage: Arc<Storage>, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(GroupCoordinator::new()),
            classic: Mutex::new(ClassicGroups::new(INITIAL_REBALANCE_DELAY_MS)),
            waiters: Mutex::new(classic::Waiters::default()),
            busy: Mutex::new(BTreeSet::new()),
            storage,
            clock,
        }
    }

    /// Adds a member.
    pub fn join(&self, request: JoinGroupRequest) -> Result<JoinGroupResponse, WireError> {
        check_group_name(&request.group)?;
        if request.topics.is_empty() || request.topics.len() > MAX_SUBSCRIBED_TOPICS {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!("a member subscribes to 1 to {MAX_SUBSCRIBED_TOPICS} topics"),
            ));
        }
        for topic in &request.topics {
            validate_topic_name(topic)
                .map_err(|e| WireError::new(ErrorCode::InvalidTopicName, e.to_string()))?;
        }
        if request.client_id.len() > MAX_CLIENT_ID_BYTES {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!("a client id has at most {MAX_CLIENT_ID_BYTES} bytes"),
            ));
        }
        let strategy = Strategy::from_name(&request.strategy).ok_or_else(|| {
            WireError::new(
                ErrorCode::InconsistentStrategy,
                format!(
                    "unknown assignment strategy {:?}; use range, roundrobin or sticky",
                    request.strategy
                ),
            )
        })?;
        let join = JoinRequest {
            topics: request.topics,
            strategy,
            session_timeout_ms: request.session_timeout_ms,
            client_id: request.client_id,
        };
        let now = self.now();
        let joined = {
            let mut state = self.state();
            if self.busy().contains(&request.group) {
                return Err(WireError::new(
                    ErrorCode::GroupBusy,
                    format!(
                        "group {:?} is having its offsets reset or deleted; join again shortly",
                        request.group
                    ),
                ));
            }
            if self.classic().has_members(&request.group) {
                return Err(WireError::new(
                    ErrorCode::InconsistentStrategy,
                    format!(
                        "group {:?} has Kafka clients as members (the classic protocol)",
                        request.group
                    ),
                ));
            }
            state
                .join(&request.group, join, now, &|t| self.partition_count(t))
                .map_err(|e| group_error(&request.group, &e))?
        };
        tracing::info!(
            group = request.group,
            member = joined.member_id,
            "member joined"
        );
        Ok(JoinGroupResponse {
            member_id: joined.member_id,
            member_epoch: joined.member_epoch,
        })
    }

    /// Records liveness and answers with the member's assignment.
    pub fn heartbeat(&self, request: &HeartbeatRequest) -> Result<HeartbeatResponse, WireError> {
        let owned: Vec<TopicPartition> = request.owned.iter().map(to_tp).collect();
        let now = self.now();
        let response = self
            .state()
            .heartbeat(
                &request.group,
                &request.member_id,
                request.member_epoch,
                &owned,
                now,
                &|t| self.partition_count(t),
            )
            .map_err(|e| group_error(&request.group, &e))?;
        Ok(HeartbeatResponse {
            member_epoch: response.member_epoch,
            assigned: response.assigned.iter().map(to_ref).collect(),
            revoke: response.revoke.iter().map(to_ref).collect(),
            group_epoch: response.group_epoch,
            heartbeat_interval_ms: (response.session_timeout_ms / 3)
                .clamp(1, HEARTBEAT_INTERVAL_MS),
        })
    }

    /// Removes a member; its partitions move at once.
    pub fn leave(&self, request: &LeaveGroupRequest) -> Result<(), WireError> {
        {
            let mut state = self.state();
            state
                .leave(&request.group, &request.member_id)
                .map_err(|e| group_error(&request.group, &e))?;
            forget_if_empty(&mut state, &request.group);
        }
        tracing::info!(
            group = request.group,
            member = request.member_id,
            "member left"
        );
        Ok(())
    }

    /// Checks each commit against the member's assignment and epoch, then
    /// stores the accepted ones durably.
    pub async fn commit(
        &self,
        request: CommitOffsetsRequest,
    ) -> Result<CommitOffsetsResponse, WireError> {
        check_group_name(&request.group)?;
        let mut results = Vec::with_capacity(request.offsets.len());
        let mut accepted = Vec::new();
        {
            let state = self.state();
            let classic = self.classic().validate_commit(
                &request.group,
                &request.member_id,
                i32::try_from(request.member_epoch).unwrap_or(i32::MAX),
            );
            for commit in &request.offsets {
                let tp = to_tp(&commit.partition);
                let checked = match &classic {
                    Some(checked) => checked
                        .clone()
                        .map_err(|e| classic::wire_error(&request.group, &e)),
                    None => state
                        .validate_commit(
                            &request.group,
                            &request.member_id,
                            request.member_epoch,
                            &tp,
                        )
                        .map_err(|e| group_error(&request.group, &e)),
                }
                .and_then(|()| {
                    self.storage
                        .partition(&tp.topic, tp.partition)
                        .map(|_| ())
                        .map_err(WireError::from)
                });
                if checked.is_ok() {
                    accepted.push(OffsetToCommit {
                        topic: tp.topic,
                        partition: tp.partition,
                        offset: commit.offset,
                        metadata: commit.metadata.clone(),
                    });
                }
                results.push(checked);
            }
        }
        if !accepted.is_empty() {
            self.storage
                .commit_offsets(request.group.clone(), accepted)
                .await?;
        }
        Ok(CommitOffsetsResponse { results })
    }

    /// Committed positions of a group (all, or the asked partitions).
    pub fn fetch_offsets(
        &self,
        request: &FetchOffsetsRequest,
    ) -> Result<FetchOffsetsResponse, WireError> {
        if request.partitions.len() > MAX_PARTITIONS_PER_REQUEST {
            return Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!("at most {MAX_PARTITIONS_PER_REQUEST} partitions per request"),
            ));
        }
        let committed = self.storage.committed_offsets(&request.group)?;
        let offsets = if request.partitions.is_empty() {
            committed
                .into_iter()
                .map(|c| CommittedOffset {
                    partition: PartitionRef {
                        topic: c.topic,
                        partition: c.partition,
                    },
                    offset: Some(c.offset),
                    metadata: c.metadata,
                })
                .collect()
        } else {
            let by_partition: BTreeMap<(&str, u32), &crate::storage::CommittedPosition> = committed
                .iter()
                .map(|c| ((c.topic.as_str(), c.partition), c))
                .collect();
            request
                .partitions
                .iter()
                .map(|p| {
                    let found = by_partition.get(&(p.topic.as_str(), p.partition));
                    CommittedOffset {
                        partition: p.clone(),
                        offset: found.map(|c| c.offset),
                        metadata: found.and_then(|c| c.metadata.clone()),
                    }
                })
                .collect()
        };
        Ok(FetchOffsetsResponse { offsets })
    }

    /// Groups with members or committed offsets, sorted.
    pub fn list(&self) -> Result<Vec<String>, WireError> {
        let mut groups = self.storage.groups_with_offsets()?;
        groups.extend(self.state().list());
        groups.extend(self.classic().list());
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    /// Members, owners, committed offsets and lag.
    pub fn describe(&self, request: &DescribeGroupRequest) -> Result<GroupDescription, WireError> {
        let group = &request.group;
        let live = self.live(group);
        let committed = self.storage.committed_offsets(group)?;
        if live.is_none() && committed.is_empty() {
            return Err(unknown_group(group));
        }
        let mut partitions: BTreeMap<PartitionRef, GroupPartition> = BTreeMap::new();
        for c in &committed {
            let tp = PartitionRef {
                topic: c.topic.clone(),
                partition: c.partition,
            };
            entry(&mut partitions, tp).committed = Some(c.offset);
        }
        let Live {
            state,
            group_epoch,
            strategy,
            members,
        } = live.unwrap_or_else(|| Live {
            state: format!("{:?}", GroupState::Empty),
            group_epoch: 0,
            strategy: None,
            members: Vec::new(),
        });
        for member in &members {
            for tp in &member.assigned {
                entry(&mut partitions, tp.clone()).owner = Some(member.member_id.clone());
            }
        }
        for p in partitions.values_mut() {
            if let Ok(partition) = self
                .storage
                .partition(&p.partition.topic, p.partition.partition)
            {
                let offsets = partition.offsets();
                p.high_watermark = offsets.high_watermark;
                let from = p.committed.unwrap_or(offsets.log_start_offset);
                p.lag = offsets.high_watermark.saturating_sub(from);
            }
        }
        Ok(GroupDescription {
            group: group.clone(),
            state,
            group_epoch,
            strategy,
            members,
            partitions: partitions.into_values().collect(),
        })
    }

    /// The group's members and state, of whichever kind it is.
    fn live(&self, group: &str) -> Option<Live> {
        if let Some(g) = self.state().describe(group) {
            return Some(Live {
                state: format!("{:?}", g.state),
                group_epoch: g.group_epoch,
                strategy: g.strategy.map(|s| s.name().to_owned()),
                members: g
                    .members
                    .into_iter()
                    .map(|m| GroupMember {
                        assigned: m.assigned.iter().map(to_ref).collect(),
                        member_id: m.member_id,
                        client_id: m.client_id,
                        member_epoch: m.member_epoch,
                        topics: m.topics,
                    })
                    .collect(),
            });
        }
        self.classic().describe(group).map(classic::live)
    }

    /// Forgets a group (its committed offsets); refused while it has members.
    pub async fn delete(&self, group: &str) -> Result<(), WireError> {
        let known = {
            let mut state = self.state();
            let mut classic = self.classic();
            if !state.is_empty(group) || classic.has_members(group) {
                return Err(non_empty(group));
            }
            self.busy().insert(group.to_owned());
            let classic_known = classic.remove_if_empty(group);
            state.delete(group).is_ok() || classic_known
        };
        let removed = self.storage.delete_group_offsets(group.to_owned()).await;
        self.busy().remove(group);
        let removed = removed?;
        if !known && removed == 0 {
            return Err(unknown_group(group));
        }
        Ok(())
    }

    /// Sets a group's committed offsets for every partition of a topic;
    /// refused while the group has members.
    pub async fn reset(
        &self,
        request: ResetOffsetsRequest,
    ) -> Result<FetchOffsetsResponse, WireError> {
        check_group_name(&request.group)?;
        {
            let state = self.state();
            let classic = self.classic();
            if !state.is_empty(&request.group) || classic.has_members(&request.group) {
                return Err(non_empty(&request.group));
            }
            self.busy().insert(request.group.clone());
        }
        let group = request.group.clone();
        let result = self.reset_offsets(request).await;
        self.busy().remove(&group);
        result
    }

    async fn reset_offsets(
        &self,
        request: ResetOffsetsRequest,
    ) -> Result<FetchOffsetsResponse, WireError> {
        let topic = self.storage.topic(&request.topic)?;
        let storage = Arc::clone(&self.storage);
        let to = request.to;
        let resolved = tokio::task::spawn_blocking(move || {
            topic
                .partitions
                .iter()
                .map(|p| {
                    let offsets = p.offsets();
                    let offset = match to {
                        ResetTarget::Spec(OffsetSpec::Earliest) => offsets.log_start_offset,
                        ResetTarget::Spec(OffsetSpec::Latest) => offsets.high_watermark,
                        ResetTarget::Spec(OffsetSpec::Timestamp(ts)) => {
                            storage.find_by_timestamp(p, ts)?.offset()
                        }
                        ResetTarget::Offset(offset) => {
                            offset.clamp(offsets.log_start_offset, offsets.high_watermark)
                        }
                    };
                    Ok(OffsetToCommit {
                        topic: p.topic().to_owned(),
                        partition: p.index(),
                        offset,
                        metadata: None,
                    })
                })
                .collect::<Result<Vec<_>, crate::storage::StorageError>>()
        })
        .await
        .map_err(|e| {
            WireError::new(
                ErrorCode::UnknownServerError,
                format!("reset task failed: {e}"),
            )
        })??;
        self.storage
            .commit_offsets(request.group.clone(), resolved.clone())
            .await?;
        Ok(FetchOffsetsResponse {
            offsets: resolved
                .into_iter()
                .map(|c| CommittedOffset {
                    partition: PartitionRef {
                        topic: c.topic,
                        partition: c.partition,
                    },
                    offset: Some(c.offset),
                    metadata: None,
                })
                .collect(),
        })
    }

    /// The fencing check for a group member's fetch of `partition`.
    pub fn check_fetch(
        &self,
        member: &GroupMemberRef,
        topic: &str,
        partition: u32,
    ) -> Result<(), WireError> {
        let tp = TopicPartition::new(topic, partition);
        self.state()
            .validate_commit(&member.group, &member.member_id, member.member_epoch, &tp)
            .map_err(|e| group_error(&member.group, &e))
    }

    /// Evicts members whose session timed out, every
    /// [`EXPIRY_CHECK_INTERVAL`], until `stop`.
    pub async fn run_expiry(self: Arc<Self>, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(EXPIRY_CHECK_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = 0u32;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => return,
            }
            self.expire_silent();
            tick = tick.wrapping_add(1);
            if tick.is_multiple_of(LAG_REFRESH_TICKS) {
                let this = Arc::clone(&self);
                let refreshed = tokio::task::spawn_blocking(move || this.refresh_lag()).await;
                if let Ok(Err(e)) = refreshed {
                    tracing::warn!(error = %e, "cannot refresh consumer-group lag");
                }
            }
        }
    }

    /// Evicts members whose session timed out by the broker's clock.
    fn expire_silent(&self) {
        let now = self.now();
        {
            let mut state = self.state();
            for (group, member) in state.expire(now) {
                tracing::info!(group, member, "member evicted: session timed out");
                forget_if_empty(&mut state, &group);
            }
        }
        let effects = self.classic().tick(now);
        self.deliver(effects);
    }

    /// Sets `quiver_consumer_group_lag` for every committed partition of
    /// every group: high watermark minus committed offset.
    fn refresh_lag(&self) -> Result<(), WireError> {
        let metrics = self.storage.metrics();
        let mut lags = Vec::new();
        for group in self.storage.groups_with_offsets()? {
            for c in self.storage.committed_offsets(&group)? {
                if let Ok(partition) = self.storage.partition(&c.topic, c.partition) {
                    let lag = partition.offsets().high_watermark.saturating_sub(c.offset);
                    lags.push((group.clone(), c.topic, c.partition, lag));
                }
            }
        }
        metrics.clear_consumer_group_lag();
        for (group, topic, partition, lag) in lags {
            metrics.set_consumer_group_lag(&group, &topic, partition, lag);
        }
        Ok(())
    }

    fn state(&self) -> MutexGuard<'_, GroupCoordinator> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn classic(&self) -> MutexGuard<'_, ClassicGroups> {
        self.classic.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn busy(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.clock.now_ms()).unwrap_or(0)
    }

    fn partition_count(&self, topic: &str) -> Option<u32> {
        self.storage
            .topic(topic)
            .ok()
            .map(|t| t.partitions.len() as u32)
    }
}

/// A group's state and members, whichever protocol its members speak.
struct Live {
    state: String,
    group_epoch: u64,
    strategy: Option<String>,
    members: Vec<GroupMember>,
}

/// A partition's row in a description, added empty when new.
fn entry(
    partitions: &mut BTreeMap<PartitionRef, GroupPartition>,
    tp: PartitionRef,
) -> &mut GroupPartition {
    partitions
        .entry(tp.clone())
        .or_insert_with(|| GroupPartition {
            partition: tp,
            owner: None,
            committed: None,
            high_watermark: 0,
            lag: 0,
        })
}

/// Drops a group without members from memory: only its committed offsets
/// (in storage) outlive its members, so empty groups never pile up against
/// the group limit.
fn forget_if_empty(state: &mut GroupCoordinator, group: &str) {
    if state.is_empty(group) {
        let _ = state.delete(group);
    }
}

fn check_group_name(group: &str) -> Result<(), WireError> {
    if group.is_empty() || group.len() > MAX_GROUP_NAME_BYTES {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("a group name needs 1 to {MAX_GROUP_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn to_tp(p: &PartitionRef) -> TopicPartition {
    TopicPartition::new(p.topic.clone(), p.partition)
}

fn to_ref(tp: &TopicPartition) -> PartitionRef {
    PartitionRef {
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

fn unknown_group(group: &str) -> WireError {
    WireError::new(ErrorCode::GroupNotFound, format!("unknown group {group:?}"))
}

fn non_empty(group: &str) -> WireError {
    WireError::new(
        ErrorCode::NonEmptyGroup,
        format!("group {group:?} has members; stop them first"),
    )
}

/// The wire code for a coordinator error.
fn group_error(group: &str, e: &GroupError) -> WireError {
    let code = match e {
        GroupError::UnknownMember => ErrorCode::UnknownMember,
        GroupError::FencedMemberEpoch { .. } => ErrorCode::FencedMemberEpoch,
        GroupError::NotAssigned(_) => ErrorCode::NotAssigned,
        GroupError::InconsistentStrategy => ErrorCode::InconsistentStrategy,
        GroupError::NotEmpty => ErrorCode::NonEmptyGroup,
        GroupError::UnknownGroup => ErrorCode::GroupNotFound,
        GroupError::InvalidSessionTimeout { .. } => ErrorCode::InvalidSessionTimeout,
        GroupError::TooManyGroups => ErrorCode::TooManyGroups,
        GroupError::TooManyMembers => ErrorCode::GroupMaxSizeReached,
    };
    WireError::new(code, format!("group {group:?}: {e}"))
}
