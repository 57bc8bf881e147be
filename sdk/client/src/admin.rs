//! Topic administration.

use quiver_proto::api::{
    AlterTopicRequest, Change, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest,
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsResult, ListTopicsRequest, TopicConfig,
    TopicDescription, TopicSummary,
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

    /// Changes a topic's retention settings and/or raises its partition count.
    pub async fn alter_topic(
        &self,
        name: &str,
        retention_ms: Change<u64>,
        retention_bytes: Change<u64>,
        partitions: Option<u32>,
    ) -> Result<TopicDescription, ClientError> {
        let request = AlterTopicRequest {
            name: name.into(),
            retention_ms,
            retention_bytes,
            partitions,
        };
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

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let request = DeleteTopicRequest { name: name.into() };
        self.client.request(&request, Vec::new()).await?;
        Ok(())
    }
}
