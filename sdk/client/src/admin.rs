//! Topic administration.

use quiver_proto::api::{
    AlterTopicRequest, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest,
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsResult, ListTopicsRequest, TopicConfig,
    TopicDescription, TopicSummary,
};

use quiver_proto::api::groups::{
    CommittedOffset, DeleteGroupRequest, DescribeGroupRequest, FetchOffsetsRequest,
    GroupDescription, ListGroupsRequest, ResetOffsetsRequest, ResetTarget,
};

use bytes::Bytes;
use quiver_proto::api::modules::{
    DeleteModuleRequest, ListModulesRequest, ModuleDescription, UploadModuleRequest,
};
use quiver_proto::api::transforms::{
    ControlTransformRequest, DeployTransformRequest, ListTransformsRequest, LogLine, OnError,
    StateEntry, TransformAction, TransformLogsRequest, TransformLogsResponse,
    TransformStateRequest, TransformStatus,
};

use crate::client::Client;
use crate::error::ClientError;

/// Creates, lists, describes and deletes topics.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    /// An admin over `client`'s connection.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Creates a topic with `partitions` partitions.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<TopicDescription, ClientError> {
        let request = CreateTopicRequest {
            name: name.into(),
            partitions,
            config,
        };
        Ok(self.client.request(&request, Vec::new()).await?.0)
    }

    /// Every topic, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>, ClientError> {
        Ok(self
            .client
            .request(&ListTopicsRequest, Vec::new())
            .await?
            .0
            .topics)
    }

    /// One topic's partitions with their log start offsets and high watermarks.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        let request = DescribeTopicRequest { name: name.into() };
        Ok(self.client.request(&request, Vec::new()).await?.0)
    }

    /// Changes a topic's settings and/or raises its partition count; what
    /// `request` leaves at its default stays as it is.
    pub async fn alter_topic(
        &self,
        request: AlterTopicRequest,
    ) -> Result<TopicDescription, ClientError> {
        Ok(self.client.request(&request, Vec::new()).await?.0)
    }

    /// Resolves earliest, latest or by-timestamp offsets, in request order.
    pub async fn list_offsets(
        &self,
        partitions: Vec<ListOffsetsPartition>,
    ) -> Result<Vec<ListOffsetsResult>, ClientError> {
        let request = ListOffsetsRequest { partitions };
        let response = self.client.request(&request, Vec::new()).await?.0;
        if response.partitions.len() != request.partitions.len() {
            return Err(ClientError::Protocol(format!(
                "{} results for {} partitions",
                response.partitions.len(),
                request.partitions.len()
            )));
        }
        Ok(response.partitions)
    }

    /// Groups with members or committed offsets.
    pub async fn list_groups(&self) -> Result<Vec<String>, ClientError> {
        Ok(self
            .client
            .request(&ListGroupsRequest, Vec::new())
            .await?
            .0
            .groups)
    }

    /// A group's members, partition owners, committed offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let request = DescribeGroupRequest {
            group: group.into(),
        };
        Ok(self.client.request(&request, Vec::new()).await?.0)
    }

    /// Forgets a group's committed offsets (refused while it has members).
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let request = DeleteGroupRequest {
            group: group.into(),
        };
        self.client.request(&request, Vec::new()).await?;
        Ok(())
    }

    /// Moves a group's committed offsets for every partition of `topic`
    /// (refused while the group has members); returns the new offsets.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        to: ResetTarget,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let request = ResetOffsetsRequest {
            group: group.into(),
            topic: topic.into(),
            to,
        };
        Ok(self.client.request(&request, Vec::new()).await?.0.offsets)
    }

    /// A group's committed offsets.
    pub async fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let request = FetchOffsetsRequest {
            group: group.into(),
            partitions: Vec::new(),
        };
        Ok(self.client.request(&request, Vec::new()).await?.0.offsets)
    }

    /// Uploads a WebAssembly component; the broker checks it against the
    /// transform contract and stores it as the name's next version.
    pub async fn upload_module(
        &self,
        name: &str,
        component: Bytes,
    ) -> Result<ModuleDescription, ClientError> {
        let request = UploadModuleRequest { name: name.into() };
        Ok(self.client.request(&request, vec![component]).await?.0)
    }

    /// Stored modules.
    pub async fn list_modules(&self) -> Result<Vec<ModuleDescription>, ClientError> {
        Ok(self
            .client
            .request(&ListModulesRequest, Vec::new())
            .await?
            .0
            .modules)
    }

    /// Deletes a module.
    pub async fn delete_module(&self, name: &str) -> Result<(), ClientError> {
        let request = DeleteModuleRequest { name: name.into() };
        self.client.request(&request, Vec::new()).await?;
        Ok(())
    }

    /// Deploys a transform; returns its status once `init` succeeded and it
    /// runs.
    pub async fn deploy_transform(
        &self,
        request: DeployTransformRequest,
    ) -> Result<TransformStatus, ClientError> {
        Ok(self.client.request(&request, Vec::new()).await?.0)
    }

    /// Every transform's status.
    pub async fn list_transforms(&self) -> Result<Vec<TransformStatus>, ClientError> {
        let request = ListTransformsRequest { name: None };
        Ok(self
            .client
            .request(&request, Vec::new())
            .await?
            .0
            .transforms)
    }

    /// One transform's status.
    pub async fn transform_status(&self, name: &str) -> Result<TransformStatus, ClientError> {
        let request = ListTransformsRequest {
            name: Some(name.into()),
        };
        let mut list = self
            .client
            .request(&request, Vec::new())
            .await?
            .0
            .transforms;
        list.pop().ok_or_else(|| {
            ClientError::Protocol(format!("the broker sent no status for transform {name:?}"))
        })
    }

    /// Pauses, resumes, upgrades or deletes a transform.
    pub async fn control_transform(
        &self,
        name: &str,
        action: TransformAction,
    ) -> Result<(), ClientError> {
        let request = ControlTransformRequest {
            name: name.into(),
            action,
        };
        self.client.request(&request, Vec::new()).await?;
        Ok(())
    }

    /// Up to `max_lines` of a transform's log lines after `after_seq` (0
    /// for all kept), oldest first, asking page after page.
    pub async fn transform_logs(
        &self,
        name: &str,
        after_seq: u64,
        max_lines: usize,
    ) -> Result<Vec<LogLine>, ClientError> {
        let mut lines: Vec<LogLine> = Vec::new();
        let mut after_seq = after_seq;
        while lines.len() < max_lines {
            let page = self
                .transform_logs_page(&TransformLogsRequest {
                    name: name.into(),
                    after_seq,
                    max_lines: u32::try_from(max_lines - lines.len()).unwrap_or(u32::MAX),
                    since_ms: None,
                    tail: None,
                })
                .await?;
            let Some(last) = page.lines.last() else {
                break;
            };
            after_seq = last.seq;
            lines.extend(page.lines);
            if !page.more {
                break;
            }
        }
        Ok(lines)
    }

    /// One page of a transform's log lines, as `request` selects them.
    pub async fn transform_logs_page(
        &self,
        request: &TransformLogsRequest,
    ) -> Result<TransformLogsResponse, ClientError> {
        Ok(self.client.request(request, Vec::new()).await?.0)
    }

    /// A transform's committed state entries whose keys start with `prefix`.
    pub async fn transform_state(
        &self,
        name: &str,
        prefix: &[u8],
        limit: u32,
    ) -> Result<Vec<StateEntry>, ClientError> {
        let request = TransformStateRequest {
            name: name.into(),
            prefix: prefix.to_vec(),
            limit,
        };
        Ok(self.client.request(&request, Vec::new()).await?.0.entries)
    }

    /// Changes a transform's failure policy (kept durably; `DeadLetter`
    /// creates `NAME-dlq` if missing). A failed transform stays failed until
    /// resumed.
    pub async fn alter_transform(&self, name: &str, on_error: OnError) -> Result<(), ClientError> {
        self.control_transform(name, TransformAction::Alter { on_error })
            .await
    }

    /// Moves a transform's position on one input partition, keeping its
    /// state; `offset` must lie between the partition's log start and high
    /// watermark. A failed transform stays failed until resumed.
    pub async fn seek_transform(
        &self,
        name: &str,
        partition: u32,
        offset: u64,
    ) -> Result<(), ClientError> {
        self.control_transform(name, TransformAction::Seek { partition, offset })
            .await
    }

    /// Deletes a topic and its data; refused with `TopicInUse` while a
    /// transform reads or writes it.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        self.delete_topic_with(name, false).await
    }

    /// Deletes a topic and its data even while transforms read or write
    /// it (they then fail).
    pub async fn force_delete_topic(&self, name: &str) -> Result<(), ClientError> {
        self.delete_topic_with(name, true).await
    }

    async fn delete_topic_with(&self, name: &str, force: bool) -> Result<(), ClientError> {
        let request = DeleteTopicRequest {
            name: name.into(),
            force,
        };
        self.client.request(&request, Vec::new()).await?;
        Ok(())
    }
}
