//! Consumer-group membership for [`Consumer`]: join, heartbeat, cooperative
//! hand-over of partitions, committed offsets, auto-commit, leave.
//!
//! Everything happens inside [`Consumer::poll`] (and the explicit commit and
//! close calls): no background task. A member that stops polling for longer
//! than its session timeout is evicted, as in Kafka with
//! `max.poll.interval.ms`.
//!
//! Hand-over: when the broker asks the member to give a partition up, the
//! consumer stops fetching it and reports a [`RebalanceEvent::Revoked`];
//! the partition is released at the *next* poll, after an auto-commit of its
//! position, so between the two polls the application may
//! [`commit`](Consumer::commit) what it processed. Only then can another
//! member get it, so no two live members consume a partition at once.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use quiver_proto::ErrorCode;
use quiver_proto::WireError;
use quiver_proto::api::GroupMemberRef;
use quiver_proto::api::groups::{
    CommitOffsetsRequest, FetchOffsetsRequest, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, OffsetCommit, PartitionRef,
};

use crate::consumer::{Assigned, Consumer, Offset, TopicPartition};
use crate::error::ClientError;

/// Joins refused with `GroupBusy` are retried this many times...
const JOIN_BUSY_RETRIES: u32 = 50;
/// ... this far apart.
const JOIN_BUSY_BACKOFF: Duration = Duration::from_millis(100);

/// How a consumer takes part in a group.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `range`, `roundrobin` or `sticky`.
    pub strategy: String,
    /// The broker evicts the member after this long without a poll.
    pub session_timeout: Duration,
    /// Commit positions this often from `poll` (and before giving a
    /// partition up, and on close); `None` to commit only explicitly.
    pub auto_commit_interval: Option<Duration>,
    /// A name for operators; the member id starts with it.
    pub client_id: String,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            strategy: "range".into(),
            session_timeout: Duration::from_secs(10),
            auto_commit_interval: Some(Duration::from_secs(5)),
            client_id: "quiver-consumer".into(),
        }
    }
}

/// A change of the partitions a group member owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// These partitions were given to this member.
    Assigned(Vec<TopicPartition>),
    /// These partitions are being taken away: they are no longer fetched
    /// and are released at the next poll; commit what was processed before.
    Revoked(Vec<TopicPartition>),
    /// These partitions were lost without a hand-over (this member was
    /// evicted or fenced); another member may already own them.
    Lost(Vec<TopicPartition>),
}

#[derive(Debug)]
pub(crate) struct Membership {
    group: String,
    topics: Vec<String>,
    member_id: String,
    epoch: u64,
    heartbeat_due: Instant,
    interval: Duration,
    commit_due: Option<Instant>,
}

impl Membership {
    pub(crate) fn member_ref(&self) -> GroupMemberRef {
        GroupMemberRef {
            group: self.group.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
        }
    }
}

impl Consumer {
    /// Joins `group` to consume `topics`; partitions arrive through `poll`
    /// as the group assigns them. Each starts at the group's committed
    /// offset, or at [`ConsumerConfig::start`](crate::ConsumerConfig::start)
    /// when there is none. Replaces any manual assignment.
    pub async fn subscribe(&mut self, group: &str, topics: &[&str]) -> Result<(), ClientError> {
        self.assigned.clear();
        let topics: Vec<String> = topics.iter().map(|&t| t.to_owned()).collect();
        let (member_id, epoch) = self.join(group, &topics).await?;
        let interval = self.config.group.session_timeout / 3;
        self.membership = Some(Membership {
            group: group.to_owned(),
            topics,
            member_id,
            epoch,
            heartbeat_due: Instant::now(),
            interval,
            commit_due: self
                .config
                .group
                .auto_commit_interval
                .map(|every| Instant::now() + every),
        });
        Ok(())
    }

    /// The member id while in a group.
    pub fn member_id(&self) -> Option<&str> {
        self.membership.as_ref().map(|m| m.member_id.as_str())
    }

    /// Partition changes since the last call.
    pub fn take_rebalance_events(&mut self) -> Vec<RebalanceEvent> {
        std::mem::take(&mut self.events)
    }

    /// Commits the position (next offset to read) of every owned partition,
    /// waiting until it is durable.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let positions: Vec<(TopicPartition, u64)> = self
            .assigned
            .iter()
            .filter_map(|a| a.position.map(|p| (a.tp(), p)))
            .collect();
        self.commit_offsets(positions).await
    }

    /// Commits the given positions (next offsets to read), waiting until
    /// they are durable. Outside a group they are stored for the group named
    /// by [`subscribe`](Self::subscribe) only; without one this fails.
    pub async fn commit_offsets(
        &mut self,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Result<(), ClientError> {
        let Some(request) = self.commit_request(positions) else {
            return Err(ClientError::Config(
                "commit needs a group: call subscribe first".into(),
            ));
        };
        commit(&self.client, request).await
    }

    /// Starts committing every owned partition's position and returns at
    /// once; the handle reports the outcome.
    pub fn commit_async(&mut self) -> tokio::task::JoinHandle<Result<(), ClientError>> {
        let positions: Vec<(TopicPartition, u64)> = self
            .assigned
            .iter()
            .filter_map(|a| a.position.map(|p| (a.tp(), p)))
            .collect();
        let request = self.commit_request(positions);
        let client = self.client.clone();
        tokio::spawn(async move {
            match request {
                Some(request) => commit(&client, request).await,
                None => Err(ClientError::Config(
                    "commit needs a group: call subscribe first".into(),
                )),
            }
        })
    }

    /// Leaves the group (committing first with auto-commit) so its
    /// partitions move at once.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let Some(membership) = self.membership.take() else {
            return Ok(());
        };
        let committed = if self.config.group.auto_commit_interval.is_some() {
            self.membership = Some(membership);
            let result = self.commit().await;
            self.membership.take().map(|m| (m, result))
        } else {
            Some((membership, Ok(())))
        };
        let Some((membership, committed)) = committed else {
            return Ok(());
        };
        let leave = LeaveGroupRequest {
            group: membership.group,
            member_id: membership.member_id,
        };
        self.client.request(&leave, Vec::new()).await?;
        committed
    }

    /// Group work before a fetch; returns how long the fetch may wait.
    pub(crate) async fn group_step(&mut self, timeout: Duration) -> Result<Duration, ClientError> {
        self.release_revoked().await?;
        let now = Instant::now();
        if self
            .membership
            .as_ref()
            .is_some_and(|m| now >= m.heartbeat_due)
        {
            self.heartbeat().await?;
        }
        let commit_due = self
            .membership
            .as_ref()
            .and_then(|m| m.commit_due)
            .is_some_and(|due| Instant::now() >= due);
        if commit_due {
            self.commit().await?;
            if let (Some(m), Some(every)) =
                (&mut self.membership, self.config.group.auto_commit_interval)
            {
                m.commit_due = Some(Instant::now() + every);
            }
        }
        let until_heartbeat = self.membership.as_ref().map_or(timeout, |m| {
            m.heartbeat_due.saturating_duration_since(Instant::now())
        });
        Ok(timeout.min(until_heartbeat.max(Duration::from_millis(1))))
    }

    /// After a retriable failure: a group member heartbeats first thing on
    /// the next attempt, which rejoins if the broker no longer knows it.
    pub(crate) fn connection_lost(&mut self) {
        if let Some(m) = &mut self.membership {
            m.heartbeat_due = Instant::now();
        }
    }

    /// A fetch error in group mode: fenced or unassigned means the group
    /// moved on (heartbeat now); out of range means the committed offset
    /// is gone (start over from the reset policy).
    pub(crate) fn recover_from_fetch_error(&mut self, index: usize, error: &WireError) {
        match error.code {
            ErrorCode::OffsetOutOfRange => {
                self.assigned[index].seek = Some(self.config.start);
            }
            _ => {
                if let Some(m) = &mut self.membership {
                    m.heartbeat_due = Instant::now();
                }
            }
        }
    }

    async fn join(&self, group: &str, topics: &[String]) -> Result<(String, u64), ClientError> {
        let settings = &self.config.group;
        let request = JoinGroupRequest {
            group: group.to_owned(),
            topics: topics.to_vec(),
            strategy: settings.strategy.clone(),
            session_timeout_ms: u64::try_from(settings.session_timeout.as_millis())
                .unwrap_or(u64::MAX),
            client_id: settings.client_id.clone(),
        };
        // A group whose offsets are being reset or deleted refuses joins for
        // the length of one storage commit: try again shortly.
        let mut attempts = 0;
        loop {
            match self.client.request(&request, Vec::new()).await {
                Ok((response, _)) => return Ok((response.member_id, response.member_epoch)),
                Err(e)
                    if e.code() == Some(ErrorCode::GroupBusy) && attempts < JOIN_BUSY_RETRIES =>
                {
                    attempts += 1;
                    tokio::time::sleep(JOIN_BUSY_BACKOFF).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops partitions marked for revocation (committing them first with
    /// auto-commit), so the next heartbeat reports them released.
    async fn release_revoked(&mut self) -> Result<(), ClientError> {
        if !self.assigned.iter().any(|a| a.revoking) {
            return Ok(());
        }
        if self.config.group.auto_commit_interval.is_some() {
            let positions: Vec<(TopicPartition, u64)> = self
                .assigned
                .iter()
                .filter(|a| a.revoking)
                .filter_map(|a| a.position.map(|p| (a.tp(), p)))
                .collect();
            if let Some(request) = self.commit_request(positions) {
                // A fenced commit means the partition has moved already;
                // the next heartbeat sorts that out.
                if let Err(e) = commit(&self.client, request).await {
                    tracing::debug!(error = %e, "commit before revocation failed");
                }
            }
        }
        self.assigned.retain(|a| !a.revoking);
        if let Some(m) = &mut self.membership {
            m.heartbeat_due = Instant::now();
        }
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), ClientError> {
        let Some(m) = &self.membership else {
            return Ok(());
        };
        let request = HeartbeatRequest {
            group: m.group.clone(),
            member_id: m.member_id.clone(),
            member_epoch: m.epoch,
            owned: self.assigned.iter().map(|a| to_ref(&a.tp())).collect(),
        };
        let response = match self.client.request(&request, Vec::new()).await {
            Ok((response, _)) => response,
            // The broker forgot this member (evicted, fenced, or restarted:
            // then the whole group is gone until someone joins).
            Err(e)
                if matches!(
                    e.code(),
                    Some(
                        ErrorCode::UnknownMember
                            | ErrorCode::FencedMemberEpoch
                            | ErrorCode::GroupNotFound
                    )
                ) =>
            {
                return self.rejoin().await;
            }
            Err(e) => return Err(e),
        };
        let assigned: BTreeSet<TopicPartition> = response.assigned.iter().map(from_ref).collect();
        let revoke: BTreeSet<TopicPartition> = response.revoke.iter().map(from_ref).collect();
        let owned: BTreeSet<TopicPartition> = self.assigned.iter().map(Assigned::tp).collect();

        let mut revoked = Vec::new();
        for a in &mut self.assigned {
            let tp = a.tp();
            if revoke.contains(&tp) && !a.revoking {
                a.revoking = true;
                revoked.push(tp);
            }
        }
        // Partitions neither kept nor being handed over were lost.
        let lost: Vec<TopicPartition> = owned
            .iter()
            .filter(|tp| !assigned.contains(*tp) && !revoke.contains(*tp))
            .cloned()
            .collect();
        self.assigned.retain(|a| !lost.contains(&a.tp()));
        let added: Vec<TopicPartition> = assigned.difference(&owned).cloned().collect();
        if !added.is_empty() {
            let starts = self.committed_starts(&added).await?;
            for (tp, start) in added.iter().cloned().zip(starts) {
                self.assigned.push(Assigned::new(tp, start));
            }
        }
        for (event, partitions) in [
            (RebalanceEvent::Revoked as fn(_) -> _, revoked),
            (RebalanceEvent::Lost, lost),
            (RebalanceEvent::Assigned, added),
        ] {
            if !partitions.is_empty() {
                self.events.push(event(partitions));
            }
        }
        let settled = revoke.is_empty() && self.assigned.len() == assigned.len();
        if let Some(m) = &mut self.membership {
            m.epoch = response.member_epoch;
            m.interval = Duration::from_millis(response.heartbeat_interval_ms)
                .min(self.config.group.session_timeout / 3);
            // While partitions are moving, come back soon.
            let next = if settled { m.interval } else { m.interval / 4 };
            m.heartbeat_due = Instant::now() + next;
        }
        Ok(())
    }

    /// After eviction, fencing or a broker restart: everything owned is
    /// lost; join again.
    async fn rejoin(&mut self) -> Result<(), ClientError> {
        let lost: Vec<TopicPartition> = self.assigned.drain(..).map(|a| a.tp()).collect();
        if !lost.is_empty() {
            self.events.push(RebalanceEvent::Lost(lost));
        }
        let Some(m) = &self.membership else {
            return Ok(());
        };
        let (group, topics) = (m.group.clone(), m.topics.clone());
        // Leave as the old member first (best effort): otherwise the broker
        // keeps its partitions reserved until the old session times out.
        let leave = LeaveGroupRequest {
            group: group.clone(),
            member_id: m.member_id.clone(),
        };
        let _ = self.client.request(&leave, Vec::new()).await;
        let (member_id, epoch) = self.join(&group, &topics).await?;
        if let Some(m) = &mut self.membership {
            m.member_id = member_id;
            m.epoch = epoch;
            m.heartbeat_due = Instant::now();
        }
        Ok(())
    }

    /// Where newly assigned partitions start: the committed offset, else the
    /// reset policy.
    async fn committed_starts(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Offset>, ClientError> {
        let Some(m) = &self.membership else {
            return Ok(vec![self.config.start; partitions.len()]);
        };
        let request = FetchOffsetsRequest {
            group: m.group.clone(),
            partitions: partitions.iter().map(to_ref).collect(),
        };
        let response = self.client.request(&request, Vec::new()).await?.0;
        Ok(partitions
            .iter()
            .map(|tp| {
                response
                    .offsets
                    .iter()
                    .find(|c| {
                        c.partition.topic == tp.topic && c.partition.partition == tp.partition
                    })
                    .and_then(|c| c.offset)
                    .map_or(self.config.start, Offset::At)
            })
            .collect())
    }

    fn commit_request(
        &self,
        positions: Vec<(TopicPartition, u64)>,
    ) -> Option<CommitOffsetsRequest> {
        let m = self.membership.as_ref()?;
        Some(CommitOffsetsRequest {
            group: m.group.clone(),
            member_id: m.member_id.clone(),
            member_epoch: m.epoch,
            offsets: positions
                .into_iter()
                .map(|(tp, offset)| OffsetCommit {
                    partition: to_ref(&tp),
                    offset,
                    metadata: None,
                })
                .collect(),
        })
    }
}

async fn commit(client: &crate::Client, request: CommitOffsetsRequest) -> Result<(), ClientError> {
    if request.offsets.is_empty() {
        return Ok(());
    }
    let response = client.request(&request, Vec::new()).await?.0;
    for result in response.results {
        result.map_err(ClientError::Broker)?;
    }
    Ok(())
}

fn to_ref(tp: &TopicPartition) -> PartitionRef {
    PartitionRef {
        topic: tp.topic.clone(),
        partition: tp.partition,
    }
}

fn from_ref(p: &PartitionRef) -> TopicPartition {
    TopicPartition::new(p.topic.clone(), p.partition)
}
