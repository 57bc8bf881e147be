//! One file per Kafka API: each turns Kafka's request into calls of
//! [`crate::service`] and the answers into Kafka's response.

mod alter_configs;
pub(super) mod api_versions;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_configs;
mod describe_groups;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_fetch;
mod produce;
mod sync_group;

use std::pin::Pin;

use bytes::BytesMut;
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use quiver_proto::kafka::{Framed, Request, encode_response};
use quiver_proto::{ErrorCode, WireError};
use tokio::sync::OwnedSemaphorePermit;

use super::Context;
use crate::coordinator::MAX_GROUP_NAME_BYTES;
use crate::groups::classic::ClassicError;
use crate::service::Session;

/// An encoded response, if the request wants one (acks=0 produce requests
/// do not), and its share of the memory budget, held until written.
pub(super) struct Answer {
    pub(super) bytes: Option<BytesMut>,
    pub(super) memory: Option<OwnedSemaphorePermit>,
}

impl Answer {
    fn of<T: Encodable + HeaderVersion>(
        correlation_id: i32,
        version: i16,
        response: &T,
    ) -> Result<Self, String> {
        Ok(Self {
            bytes: Some(encode_response(correlation_id, version, response)?),
            memory: None,
        })
    }
}

/// What handling a request gave. An `Err` answer (a response that cannot
/// be encoded) closes the connection.
pub(super) enum Handled<'a> {
    /// The answer, now.
    Now(Result<Answer, String>),
    /// A produce, its batches queued for the writer: what answers it once
    /// they are durable (see `connection` for why it is not awaited here).
    Queued(Pin<Box<dyn Future<Output = Result<Answer, String>> + Send + 'a>>),
}

/// Handles one request.
pub(super) async fn handle<'a>(
    context: &'a Context,
    session: &Session,
    framed: Framed,
) -> Handled<'a> {
    let correlation_id = framed.header.correlation_id;
    let version = framed.header.request_api_version;
    let client_id = framed.header.client_id.as_deref().unwrap_or_default();
    macro_rules! answer {
        ($response:expr) => {
            Answer::of(correlation_id, version, &$response)
        };
    }
    let answer = match framed.request {
        Request::ApiVersions(_) => answer!(api_versions::served()),
        Request::Metadata(r) => answer!(metadata::handle(context, r, version).await),
        Request::Produce(r) => {
            let answer = start_produce(context, correlation_id, version, r).await;
            return Handled::Queued(Box::pin(answer));
        }
        Request::Fetch(r) => {
            let (response, memory) = fetch::handle(context, r).await;
            answer!(response).map(|mut answer| {
                answer.memory = memory;
                answer
            })
        }
        Request::ListOffsets(r) => answer!(list_offsets::handle(context, r).await),
        Request::InitProducerId(r) => answer!(init_producer_id::handle(context, &r).await),
        Request::FindCoordinator(r) => answer!(find_coordinator::handle(context, &r, version)),
        Request::JoinGroup(r) => {
            answer!(join_group::handle(context, session, client_id, r, version).await)
        }
        Request::SyncGroup(r) => answer!(sync_group::handle(context, r).await),
        Request::ConsumerGroupHeartbeat(r) => {
            answer!(consumer_group_heartbeat::handle(context, client_id, &r))
        }
        Request::Heartbeat(r) => answer!(heartbeat::handle(context, &r)),
        Request::LeaveGroup(r) => answer!(leave_group::handle(context, r, version)),
        Request::OffsetCommit(r) => answer!(offset_commit::handle(context, r).await),
        Request::OffsetFetch(r) => answer!(offset_fetch::handle(context, r, version)),
        Request::ListGroups(_) => answer!(list_groups::handle(context)),
        Request::DescribeGroups(r) => answer!(describe_groups::handle(context, &r)),
        Request::DeleteGroups(r) => answer!(delete_groups::handle(context, r).await),
        Request::DeleteRecords(r) => answer!(delete_records::handle(context, r).await),
        Request::CreateTopics(r) => answer!(create_topics::handle(context, r).await),
        Request::DeleteTopics(r) => answer!(delete_topics::handle(context, r).await),
        Request::CreatePartitions(r) => answer!(create_partitions::handle(context, r).await),
        Request::DescribeConfigs(r) => answer!(describe_configs::handle(context, &r)),
        Request::AlterConfigs(r) => answer!(alter_configs::handle(context, r).await),
        Request::IncrementalAlterConfigs(r) => {
            answer!(incremental_alter_configs::handle(context, r).await)
        }
    };
    Handled::Now(answer)
}

/// Queues a produce request's batches for the writer (in the order sent)
/// and returns what answers it once they are durable: `None` bytes for
/// acks=0, which gets no answer.
async fn start_produce(
    context: &Context,
    correlation_id: i32,
    version: i16,
    request: ProduceRequest,
) -> impl Future<Output = Result<Answer, String>> + '_ {
    let acks = request.acks;
    let response = produce::start(context, request).await;
    async move {
        let response = response.await;
        if acks == 0 {
            return Ok(Answer {
                bytes: None,
                memory: None,
            });
        }
        Answer::of(correlation_id, version, &response)
    }
}

/// Kafka's error code for a Quiver error. Codes below 1000 are Kafka's
/// own numbers already; Quiver's own ones map to the Kafka error a client
/// acts on the same way.
pub(in crate::kafka) fn error_code(error: &WireError) -> i16 {
    const UNKNOWN_SERVER_ERROR: i16 = -1;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    const REQUEST_TIMED_OUT: i16 = 7;
    const MESSAGE_TOO_LARGE: i16 = 10;
    const INVALID_REQUEST: i16 = 42;
    const POLICY_VIOLATION: i16 = 44;
    const KAFKA_STORAGE_ERROR: i16 = 56;
    match error.code {
        ErrorCode::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode::FrameTooLarge => MESSAGE_TOO_LARGE,
        // Retriable: the client refreshes its metadata and tries again.
        ErrorCode::ShuttingDown => NOT_LEADER_OR_FOLLOWER,
        ErrorCode::StorageUnavailable => KAFKA_STORAGE_ERROR,
        ErrorCode::Busy => REQUEST_TIMED_OUT,
        ErrorCode::LimitReached | ErrorCode::TopicInUse => POLICY_VIOLATION,
        ErrorCode::UnknownRequestKind
        | ErrorCode::NotAssigned
        | ErrorCode::TooManyConnections
        | ErrorCode::TooManyGroups => INVALID_REQUEST,
        code if code.code() < 1000 => code.code(),
        _ => UNKNOWN_SERVER_ERROR,
    }
}

/// Kafka's error code for a classic-protocol refusal.
fn classic_error_code(error: &ClassicError) -> i16 {
    const ILLEGAL_GENERATION: i16 = 22;
    const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const INVALID_SESSION_TIMEOUT: i16 = 26;
    const REBALANCE_IN_PROGRESS: i16 = 27;
    const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    const MEMBER_ID_REQUIRED: i16 = 79;
    const GROUP_MAX_SIZE_REACHED: i16 = 81;
    match error {
        ClassicError::UnknownMember => UNKNOWN_MEMBER_ID,
        ClassicError::IllegalGeneration { .. } => ILLEGAL_GENERATION,
        ClassicError::RebalanceInProgress => REBALANCE_IN_PROGRESS,
        ClassicError::InconsistentProtocol(_) => INCONSISTENT_GROUP_PROTOCOL,
        ClassicError::InvalidTimeout(_) => INVALID_SESSION_TIMEOUT,
        ClassicError::GroupFull => GROUP_MAX_SIZE_REACHED,
        ClassicError::MemberIdRequired(_) => MEMBER_ID_REQUIRED,
        // Retriable: the client tries again later.
        ClassicError::TooManyGroups => COORDINATOR_NOT_AVAILABLE,
    }
}

/// A group id must be 1 to [`MAX_GROUP_NAME_BYTES`] bytes.
fn valid_group_id(group: &str) -> bool {
    (1..=MAX_GROUP_NAME_BYTES).contains(&group.len())
}

/// A topic name for a response.
fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}
