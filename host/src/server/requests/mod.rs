//! Request dispatch, and one file per request kind.
//!
//! Each handler takes its decoded head (and, for produce, the body) and
//! returns its response head plus body chunks, or a [`WireError`].

mod alter_topic;
mod commit_offsets;
mod control_transform;
mod create_topic;
mod delete_group;
mod delete_module;
mod delete_topic;
mod deploy_transform;
mod describe_group;
mod describe_topic;
mod fetch;
mod fetch_offsets;
mod heartbeat;
mod join_group;
mod leave_group;
mod list_groups;
mod list_modules;
mod list_offsets;
mod list_topics;
mod list_transforms;
mod produce;
mod reset_offsets;
mod transform_logs;
mod transform_state;
mod upload_module;

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
    ListOffsetsRequest, ListTopicsRequest, ProduceRequest, Request, RequestKind, decode_head,
    encode_response,
};
use quiver_proto::limits::MAX_PARTITIONS_PER_REQUEST;
use quiver_proto::{ErrorCode, WireError};
use serde::Serialize;
use tokio::sync::OwnedSemaphorePermit;

use super::Context;
use crate::storage::StorageError;
use crate::transforms::TransformError;

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

/// Decodes the head for `kind` and runs its handler.
pub(crate) async fn dispatch(
    context: &Context,
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
    if context.shutdown.is_cancelled() {
        return Err(WireError::new(
            ErrorCode::ShuttingDown,
            "broker shutting down",
        ));
    }
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
            let response = produce::handle(context, request, body).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::Fetch => {
            let request = decode::<FetchRequest>(version, head)?;
            let (response, body, memory) = fetch::handle(context, request).await?;
            let mut reply = Reply::new(version, &response, body)?;
            reply.memory = Some(memory);
            Ok(reply)
        }
        RequestKind::CreateTopic => {
            let request = decode::<CreateTopicRequest>(version, head)?;
            Reply::new(
                version,
                &create_topic::handle(context, request).await?,
                Vec::new(),
            )
        }
        RequestKind::DeleteTopic => {
            let request = decode::<DeleteTopicRequest>(version, head)?;
            Reply::new(
                version,
                &delete_topic::handle(context, request).await?,
                Vec::new(),
            )
        }
        RequestKind::ListTopics => {
            let request = decode::<ListTopicsRequest>(version, head)?;
            Reply::new(version, &list_topics::handle(context, request), Vec::new())
        }
        RequestKind::AlterTopic => {
            let request = decode::<AlterTopicRequest>(version, head)?;
            let response = alter_topic::handle(context, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::ListOffsets => {
            let request = decode::<ListOffsetsRequest>(version, head)?;
            let response = list_offsets::handle(context, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::JoinGroup
        | RequestKind::Heartbeat
        | RequestKind::LeaveGroup
        | RequestKind::CommitOffsets
        | RequestKind::FetchOffsets
        | RequestKind::ListGroups
        | RequestKind::DescribeGroup
        | RequestKind::DeleteGroup
        | RequestKind::ResetOffsets => dispatch_group(context, kind, version, head).await,
        RequestKind::UploadModule | RequestKind::ListModules | RequestKind::DeleteModule => {
            dispatch_module(context, kind, version, head, body).await
        }
        RequestKind::DeployTransform
        | RequestKind::ListTransforms
        | RequestKind::ControlTransform
        | RequestKind::TransformLogs
        | RequestKind::TransformState => dispatch_transform(context, kind, version, head).await,
        RequestKind::DescribeTopic => {
            let request = decode::<DescribeTopicRequest>(version, head)?;
            Reply::new(
                version,
                &describe_topic::handle(context, &request).await?,
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
    context: &Context,
    kind: RequestKind,
    version: u16,
    head: &[u8],
    body: BytesMut,
) -> Result<Reply, WireError> {
    match kind {
        RequestKind::UploadModule => {
            let request = decode::<UploadModuleRequest>(version, head)?;
            let response = upload_module::handle(context, request, body).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::ListModules => {
            let request = decode::<ListModulesRequest>(version, head)?;
            Reply::new(
                version,
                &list_modules::handle(context, request)?,
                Vec::new(),
            )
        }
        RequestKind::DeleteModule => {
            let request = decode::<DeleteModuleRequest>(version, head)?;
            Reply::new(
                version,
                &delete_module::handle(context, request).await?,
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
    context: &Context,
    kind: RequestKind,
    version: u16,
    head: &[u8],
) -> Result<Reply, WireError> {
    match kind {
        RequestKind::DeployTransform => {
            let request = decode::<DeployTransformRequest>(version, head)?;
            let response = deploy_transform::handle(context, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::ListTransforms => {
            let request = decode::<ListTransformsRequest>(version, head)?;
            let response = list_transforms::handle(context, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::ControlTransform => {
            let request = decode::<ControlTransformRequest>(version, head)?;
            control_transform::handle(context, request).await?;
            Reply::new(version, &(), Vec::new())
        }
        RequestKind::TransformLogs => {
            let request = decode::<TransformLogsRequest>(version, head)?;
            let response = transform_logs::handle(context, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::TransformState => {
            let request = decode::<TransformStateRequest>(version, head)?;
            let response = transform_state::handle(context, request).await?;
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
    context: &Context,
    kind: RequestKind,
    version: u16,
    head: &[u8],
) -> Result<Reply, WireError> {
    match kind {
        RequestKind::JoinGroup => {
            let request = decode::<JoinGroupRequest>(version, head)?;
            Reply::new(version, &join_group::handle(context, request)?, Vec::new())
        }
        RequestKind::Heartbeat => {
            let request = decode::<HeartbeatRequest>(version, head)?;
            Reply::new(version, &heartbeat::handle(context, &request)?, Vec::new())
        }
        RequestKind::LeaveGroup => {
            let request = decode::<LeaveGroupRequest>(version, head)?;
            Reply::new(
                version,
                &leave_group::handle(context, &request)?,
                Vec::new(),
            )
        }
        RequestKind::CommitOffsets => {
            let request = decode::<CommitOffsetsRequest>(version, head)?;
            let response = commit_offsets::handle(context, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        RequestKind::FetchOffsets => {
            let request = decode::<FetchOffsetsRequest>(version, head)?;
            Reply::new(
                version,
                &fetch_offsets::handle(context, &request)?,
                Vec::new(),
            )
        }
        RequestKind::ListGroups => {
            let request = decode::<ListGroupsRequest>(version, head)?;
            Reply::new(version, &list_groups::handle(context, request)?, Vec::new())
        }
        RequestKind::DescribeGroup => {
            let request = decode::<DescribeGroupRequest>(version, head)?;
            Reply::new(
                version,
                &describe_group::handle(context, &request)?,
                Vec::new(),
            )
        }
        RequestKind::DeleteGroup => {
            let request = decode::<DeleteGroupRequest>(version, head)?;
            Reply::new(
                version,
                &delete_group::handle(context, request).await?,
                Vec::new(),
            )
        }
        RequestKind::ResetOffsets => {
            let request = decode::<ResetOffsetsRequest>(version, head)?;
            let response = reset_offsets::handle(context, request).await?;
            Reply::new(version, &response, Vec::new())
        }
        _ => Err(WireError::new(
            ErrorCode::UnknownRequestKind,
            format!("request kind {kind:?} is not a group request"),
        )),
    }
}

/// Refuses a request that lists more than [`MAX_PARTITIONS_PER_REQUEST`]
/// entries (batches, partitions or offsets).
fn check_entries(count: usize, what: &str) -> Result<(), WireError> {
    if count > MAX_PARTITIONS_PER_REQUEST {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("{count} {what} in one request; the limit is {MAX_PARTITIONS_PER_REQUEST}"),
        ));
    }
    Ok(())
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

impl From<StorageError> for WireError {
    fn from(e: StorageError) -> Self {
        WireError::from(&e)
    }
}

impl From<TransformError> for WireError {
    fn from(e: TransformError) -> Self {
        WireError::from(&e)
    }
}
