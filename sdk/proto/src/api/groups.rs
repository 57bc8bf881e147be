//! Consumer-group requests: membership (join, heartbeat, leave), committed
//! offsets, and the operator's view (list, describe, delete, reset).
//!
//! Assignment is computed by the broker (as in Kafka's KIP-848): a member
//! joins with its subscription, then heartbeats, reporting the partitions it
//! owns; each heartbeat answers with the partitions it should own now and
//! those it must give up. A partition moves to a new owner only after the
//! old owner has reported it gone, so two live members never own one
//! partition at once.

use serde::{Deserialize, Serialize};

use super::{OffsetSpec, Request, RequestKind};
use crate::WireError;

/// A topic and partition number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionRef {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

/// Join a group (or rejoin after being fenced).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroupRequest {
    /// The group.
    pub group: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Assignment strategy: `range`, `roundrobin` or `sticky`; all members
    /// of a group use the same one.
    pub strategy: String,
    /// The member is removed when it has not heartbeated for this long.
    pub session_timeout_ms: u64,
    /// The client's name, for operators.
    pub client_id: String,
}

impl Request for JoinGroupRequest {
    const KIND: RequestKind = RequestKind::JoinGroup;
    type Response = JoinGroupResponse;
}

/// The new member's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroupResponse {
    /// The member id, for every later request.
    pub member_id: String,
    /// The member's epoch, for heartbeats and commits.
    pub member_epoch: u64,
}

/// Stay in the group and learn the current assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// The group.
    pub group: String,
    /// The member id.
    pub member_id: String,
    /// The member's epoch as last answered.
    pub member_epoch: u64,
    /// Partitions the member owns now (revocations it has finished are no
    /// longer listed).
    pub owned: Vec<PartitionRef>,
}

impl Request for HeartbeatRequest {
    const KIND: RequestKind = RequestKind::Heartbeat;
    type Response = HeartbeatResponse;
}

/// The member's assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The member's epoch; commits must carry it.
    pub member_epoch: u64,
    /// Partitions the member owns now.
    pub assigned: Vec<PartitionRef>,
    /// Partitions the member must give up (commit, then stop reporting them).
    pub revoke: Vec<PartitionRef>,
    /// The group's epoch (changes on every membership change).
    pub group_epoch: u64,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: u64,
}

/// Leave a group; its partitions move at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveGroupRequest {
    /// The group.
    pub group: String,
    /// The member id.
    pub member_id: String,
}

impl Request for LeaveGroupRequest {
    const KIND: RequestKind = RequestKind::LeaveGroup;
    type Response = ();
}

/// Commit consumed positions: the offset of the next record to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOffsetsRequest {
    /// The group.
    pub group: String,
    /// The member id; empty for a consumer outside group membership (allowed
    /// only while the group has no members).
    pub member_id: String,
    /// The member's epoch; fenced if stale.
    pub member_epoch: u64,
    /// What to commit.
    pub offsets: Vec<OffsetCommit>,
}

/// One committed position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommit {
    /// The partition.
    pub partition: PartitionRef,
    /// The next offset to read.
    pub offset: u64,
    /// Free-form metadata stored with it.
    pub metadata: Option<String>,
}

impl Request for CommitOffsetsRequest {
    const KIND: RequestKind = RequestKind::CommitOffsets;
    type Response = CommitOffsetsResponse;
}

/// Per-partition results, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOffsetsResponse {
    /// One per committed partition.
    pub results: Vec<Result<(), WireError>>,
}

/// Read committed positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchOffsetsRequest {
    /// The group.
    pub group: String,
    /// Which partitions; empty for every committed one.
    pub partitions: Vec<PartitionRef>,
}

impl Request for FetchOffsetsRequest {
    const KIND: RequestKind = RequestKind::FetchOffsets;
    type Response = FetchOffsetsResponse;
}

/// Committed positions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchOffsetsResponse {
    /// One per asked (or committed) partition.
    pub offsets: Vec<CommittedOffset>,
}

/// A partition's committed position, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The partition.
    pub partition: PartitionRef,
    /// The next offset to read; `None` when nothing was committed.
    pub offset: Option<u64>,
    /// The metadata committed with it.
    pub metadata: Option<String>,
}

/// List groups (with members or committed offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListGroupsRequest;

impl Request for ListGroupsRequest {
    const KIND: RequestKind = RequestKind::ListGroups;
    type Response = ListGroupsResponse;
}

/// Group names, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListGroupsResponse {
    /// The groups.
    pub groups: Vec<String>,
}

/// Describe a group: members, assignments, committed offsets and lag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribeGroupRequest {
    /// The group.
    pub group: String,
}

impl Request for DescribeGroupRequest {
    const KIND: RequestKind = RequestKind::DescribeGroup;
    type Response = GroupDescription;
}

/// A group as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// `Empty`, `Stable` or `Reconciling`.
    pub state: String,
    /// The group epoch.
    pub group_epoch: u64,
    /// The members' strategy, if any member.
    pub strategy: Option<String>,
    /// The members.
    pub members: Vec<GroupMember>,
    /// Every partition with a committed offset or an owner.
    pub partitions: Vec<GroupPartition>,
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    /// Its id.
    pub member_id: String,
    /// Its client's name.
    pub client_id: String,
    /// Its epoch.
    pub member_epoch: u64,
    /// Its subscription.
    pub topics: Vec<String>,
    /// The partitions it owns.
    pub assigned: Vec<PartitionRef>,
}

/// One partition's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPartition {
    /// The partition.
    pub partition: PartitionRef,
    /// Its owner, if any.
    pub owner: Option<String>,
    /// The committed offset, if any.
    pub committed: Option<u64>,
    /// The partition's high watermark.
    pub high_watermark: u64,
    /// Records behind: high watermark minus committed (or minus the log
    /// start when nothing is committed).
    pub lag: u64,
}

/// Delete a group's committed offsets; refused while it has members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteGroupRequest {
    /// The group.
    pub group: String,
}

impl Request for DeleteGroupRequest {
    const KIND: RequestKind = RequestKind::DeleteGroup;
    type Response = ();
}

/// Set a group's committed offsets for a topic; refused while it has members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetOffsetsRequest {
    /// The group.
    pub group: String,
    /// The topic (every partition of it).
    pub topic: String,
    /// Where to: earliest, latest, a time, or an offset.
    pub to: ResetTarget,
}

/// Where a reset moves committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetTarget {
    /// Resolved per partition.
    Spec(OffsetSpec),
    /// This offset in every partition (clamped to each partition's range).
    Offset(u64),
}

impl Request for ResetOffsetsRequest {
    const KIND: RequestKind = RequestKind::ResetOffsets;
    type Response = FetchOffsetsResponse;
}
