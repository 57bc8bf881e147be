//! Topic administration.

use quiver_proto::api::{
    CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest, ListTopicsRequest, TopicConfig,
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

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        let request = DeleteTopicRequest { name: name.into() };
        self.client.request(&request, Vec::new()).await?;
        Ok(())
    }
}
