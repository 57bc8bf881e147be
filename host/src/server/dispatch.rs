//! Request dispatch for the QUIC front end: decode a request's head at its
//! version, call its operation in [`crate::service`], encode the answer.
//!
//! Each operation returns its response head (and, for fetch, body chunks)
//! or a [`WireError`]; nothing here decides anything about topics, groups
//! or modules.

use bytes::{Bytes, BytesMut};
use quiver_proto::api::groups::{
    CommitOffsetsRequest, DeleteGroupRequest, DescribeGroupRequest, FetchOffsetsRequest,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ResetOffsetsRequest,
};
use quiver_proto::api::modules::{DeleteModuleRequest, ListModulesRequest, UploadModuleRequest};
use quiver_proto::api::transforms::{
    ControlTransformRequest, DeployTransformRequest, ListTransformsRequest, TransformLogsRequest,
    TransformStateRequest,
};
use quiver_proto::api::{
    AlterTopicRequest, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest, FetchRequest,
    FetchResponse, FetchResult, FetchedData, InitProducerRequest, ListOffsetsRequest,
    ListTopicsRequest, ProduceRequest, ProduceResponse, Request, RequestKind, decode_head,
    encode_response,
};
use quiver_proto::{ErrorCode, WireError};
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;

use crate::service::fetch::PartitionRead;
use crate::service::{Listener, Service};
use crate::service::{
    alter_topic, commit_offsets, control_transform, create_topic, delete_group, delete_module,
    delete_topic, deploy_transform, describe_group, describe_topic, fetch, fetch_offsets,
    heartbeat, init_producer_id, join_group, leave_group, list_groups, list_modules, list_offsets,
    list_topics, list_transforms, produce, reset_offsets, transform_logs, transform_state,
    upload_module,
};

/// A response ready to write: frame header and head, then body chunks.
pub(crate) struct Reply {
    pub(crate) head: Vec<u8>,
    pub(crate) body: Vec<Bytes>,
    /// The body's share of the broker's memory budget, held until the
    /// response has been written.
    pub(crate) memory: Option<OwnedSemaphorePermit>,
}

impl Reply {
    fn new<T: Serialize>(version: u16, head: &T, body: Vec<Bytes>) -> Result<Self, WireError> {
        let body_len = body.iter().map(Bytes::len).sum();
        let head = encode_response(version, head, body_len).map_err(|e| {
            WireError::new(
                ErrorCode::UnknownServerError,
                format!("cannot encode response: {e}"),
            )
        })?;
        Ok(Self {
            head,
            body,
            memory: None,
        })
    }
}

/// Decodes the head for `kind`, runs its operation, and counts the request
/// in the per-listener metrics.
pub(crate) async fn dispatch(
    service: &Service,
    kind: u16,
    version: u16,
    head: &[u8],
    body: BytesMut,
) -> Result<Reply, WireError> {
    let request_bytes = (head.len() + body.len()) as u64;
    let reply = run(service, kind, version, head, body).await;
    let api =
        RequestKind::from_u16(kind).map_or_else(|| "Unknown".to_owned(), |k| format!("{k:?}"));
    let response_bytes = reply.as_ref().map_or(0, |r| {
        (r.head.len() + r.body.iter().map(Bytes::len).sum::<usize>()) as u64
    });
    service.metrics.record_request(
        Listener::Quic.as_str(),
        &api,
        request_bytes,
        response_bytes,
        reply.is_err(),
    );
    reply
}

/// Decodes the head for `kind` and runs its operation.
async fn run(
    service: &Service,
    kind: u16,
    version: u16,
    head: &[u8],
    body: BytesMut,
) -> Result<Reply, WireError> {
    let Some(kind) = RequestKind::from_u16(kind) else {
        return Err(WireError::new(
            ErrorCode::UnknownRequestKind,
            format!("unknown request kind {kind}"),
        ));
    };
    service.check_running()?;
    let takes_body = matches!(kind, RequestKind::Produce | RequestKind::UploadModule);
    if !takes_body && !body.is_empty() {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("{kind:?} takes no body, but {} bytes came", body.len()),
        ));
    }
    match kind {
        RequestKind::Produce => {
            let request = decode::<ProduceRequest>(version, head)?;
            let batches = split_batches(&request, body)?;
            let budget = produce::DecompressionBudget::new();
            let results = produce::handle(service, &request.topic, batches, &budget).await?;
            Reply::new(version, &ProduceResponse { results }, Vec::new())
        }
        RequestKind::Fetch => {
            let request = decode::<FetchRequest>(version, head)?;
            let fetched = fetch::handle(service, &request).await?;
            let (response, body) = fetch_response(&request, fetched.partitions);
            let mut reply = Reply::new(version, &response, body)?;
            reply.memory = Some(fetched.memory);
            Ok(reply)
        }
        RequestKind::CreateTopic => {
            let request = decode::<CreateTopicRequest>(version, head)?;
            Reply::new(
                version,
                &create_topic::handle(service, request).await?,
                Vec::new(),
            )
        }
        RequestKind::DeleteTopic => {
            let request = decode::<DeleteTopicRequest>(version, head)?;
            Reply::new(
                version,
                &delete_topic::handle(service, request).await?,
                Vec::new(),
            )
        }
        RequestKind::ListTopics => {
            let request = decode::<ListTopicsRequest>(version, head)?;
            Reply::new(version, &list_topics::handle(service, request), Vec::new())
        }
        RequestKind::AlterTopic => {
            let request = decode::<AlterTopicRequest>(version, head)?;
            let response = alter_topic::handle(service, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::ListOffsets => {
            let request = decode::<ListOffsetsRequest>(version, head)?;
            let response = list_offsets::handle(service, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::InitProducer => {
            let request = decode::<InitProducerRequest>(version, head)?;
            let identity = init_producer_id::handle(service, request.current).await?;
            Reply::new(version, &identity, Vec::new())
        }
        RequestKind::JoinGroup
        | RequestKind::Heartbeat
        | RequestKind::LeaveGroup
        | RequestKind::CommitOffsets
        | RequestKind::FetchOffsets
        | RequestKind::ListGroups
        | RequestKind::DescribeGroup
        | RequestKind::DeleteGroup
        | RequestKind::ResetOffsets => dispatch_group(service, kind, version, head).await,
        RequestKind::UploadModule | RequestKind::ListModules | RequestKind::DeleteModule => {
            dispatch_module(service, kind, version, head, body).await
        }
        RequestKind::DeployTransform
        | RequestKind::ListTransforms
        | RequestKind::ControlTransform
        | RequestKind::TransformLogs
        | RequestKind::TransformState => dispatch_transform(service, kind, version, head).await,
        RequestKind::DescribeTopic => {
            let request = decode::<DescribeTopicRequest>(version, head)?;
            Reply::new(
                version,
                &describe_topic::handle(service, &request).await?,
                Vec::new(),
            )
        }
        _ => Err(WireError::new(
            ErrorCode::UnknownRequestKind,
            format!("request kind {kind:?} is not served"),
        )),
    }
}

/// The module-registry kinds.
async fn dispatch_module(
    service: &Service,
    kind: RequestKind,
    version: u16,
    head: &[u8],
    body: BytesMut,
) -> Result<Reply, WireError> {
    match kind {
        RequestKind::UploadModule => {
            let request = decode::<UploadModuleRequest>(version, head)?;
            let response = upload_module::handle(service, request, body).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::ListModules => {
            let request = decode::<ListModulesRequest>(version, head)?;
            Reply::new(
                version,
                &list_modules::handle(service, request)?,
                Vec::new(),
            )
        }
        RequestKind::DeleteModule => {
            let request = decode::<DeleteModuleRequest>(version, head)?;
            Reply::new(
                version,
                &delete_module::handle(service, request).await?,
                Vec::new(),
            )
        }
        _ => Err(WireError::new(
            ErrorCode::UnknownRequestKind,
            format!("request kind {kind:?} is not a module request"),
        )),
    }
}

/// The deployed-transform kinds.
async fn dispatch_transform(
    service: &Service,
    kind: RequestKind,
    version: u16,
    head: &[u8],
) -> Result<Reply, WireError> {
    match kind {
        RequestKind::DeployTransform => {
            let request = decode::<DeployTransformRequest>(version, head)?;
            let response = deploy_transform::handle(service, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::ListTransforms => {
            let request = decode::<ListTransformsRequest>(version, head)?;
            let response = list_transforms::handle(service, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::ControlTransform => {
            let request = decode::<ControlTransformRequest>(version, head)?;
            control_transform::handle(service, request).await?;
            Reply::new(version, &(), Vec::new())
        }
        RequestKind::TransformLogs => {
            let request = decode::<TransformLogsRequest>(version, head)?;
            let response = transform_logs::handle(service, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::TransformState => {
            let request = decode::<TransformStateRequest>(version, head)?;
            let response = transform_state::handle(service, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        _ => Err(WireError::new(
            ErrorCode::UnknownRequestKind,
            format!("request kind {kind:?} is not a transform request"),
        )),
    }
}

/// The consumer-group kinds.
async fn dispatch_group(
    service: &Service,
    kind: RequestKind,
    version: u16,
    head: &[u8],
) -> Result<Reply, WireError> {
    match kind {
        RequestKind::JoinGroup => {
            let request = decode::<JoinGroupRequest>(version, head)?;
            Reply::new(version, &join_group::handle(service, request)?, Vec::new())
        }
        RequestKind::Heartbeat => {
            let request = decode::<HeartbeatRequest>(version, head)?;
            Reply::new(version, &heartbeat::handle(service, &request)?, Vec::new())
        }
        RequestKind::LeaveGroup => {
            let request = decode::<LeaveGroupRequest>(version, head)?;
            Reply::new(
                version,
                &leave_group::handle(service, &request)?,
                Vec::new(),
            )
        }
        RequestKind::CommitOffsets => {
            let request = decode::<CommitOffsetsRequest>(version, head)?;
            let response = commit_offsets::handle(service, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::FetchOffsets => {
            let request = decode::<FetchOffsetsRequest>(version, head)?;
            Reply::new(
                version,
                &fetch_offsets::handle(service, &request)?,
                Vec::new(),
            )
        }
        RequestKind::ListGroups => {
            let request = decode::<ListGroupsRequest>(version, head)?;
            Reply::new(version, &list_groups::handle(service, request)?, Vec::new())
        }
        RequestKind::DescribeGroup => {
            let request = decode::<DescribeGroupRequest>(version, head)?;
            Reply::new(
                version,
                &describe_group::handle(service, &request)?,
                Vec::new(),
            )
        }
        RequestKind::DeleteGroup => {
            let request = decode::<DeleteGroupRequest>(version, head)?;
            Reply::new(
                version,
                &delete_group::handle(service, request).await?,
                Vec::new(),
            )
        }
        RequestKind::ResetOffsets => {
            let request = decode::<ResetOffsetsRequest>(version, head)?;
            let response = reset_offsets::handle(service, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        _ => Err(WireError::new(
            ErrorCode::UnknownRequestKind,
            format!("request kind {kind:?} is not a group request"),
        )),
    }
}

/// A fetch's reads as a response head and its body: each partition's
/// batches in request order, their lengths in the head.
fn fetch_response(
    request: &FetchRequest,
    reads: Vec<Result<PartitionRead, WireError>>,
) -> (FetchResponse, Vec<Bytes>) {
    let mut body = Vec::new();
    let partitions = request
        .partitions
        .iter()
        .zip(reads)
        .map(|(p, read)| FetchResult {
            topic: p.topic.clone(),
            partition: p.partition,
            outcome: read.map(|read| {
                let data = FetchedData {
                    log_start_offset: read.offsets.log_start_offset,
                    high_watermark: read.offsets.high_watermark,
                    bytes: read.batches.len() as u32,
                    next_offset: read.next_offset,
                };
                if !read.batches.is_empty() {
                    body.push(read.batches);
                }
                data
            }),
        })
        .collect();
    (FetchResponse { partitions }, body)
}

/// Cuts a produce body into the batches its head describes.
fn split_batches(
    request: &ProduceRequest,
    mut body: BytesMut,
) -> Result<Vec<(u32, BytesMut)>, WireError> {
    let declared: u64 = request.batches.iter().map(|b| u64::from(b.bytes)).sum();
    if declared != body.len() as u64 {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!(
                "the head describes {declared} batch bytes but the body has {}",
                body.len()
            ),
        ));
    }
    Ok(request
        .batches
        .iter()
        .map(|entry| (entry.partition, body.split_to(entry.bytes as usize)))
        .collect())
}

fn decode<R: Request>(version: u16, head: &[u8]) -> Result<R, WireError> {
    if version != R::VERSION {
        return Err(WireError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "{:?} version {version} is not supported; this broker speaks version {}",
                R::KIND,
                R::VERSION
            ),
        ));
    }
    decode_head(head).map_err(|e| {
        WireError::new(
            ErrorCode::InvalidRequest,
            format!("malformed {:?} request: {e}", R::KIND),
        )
    })
}
