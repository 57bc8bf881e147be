//! `ListTopics`: every topic, sorted by name.

use quiver_proto::api::{ListTopicsRequest, ListTopicsResponse, TopicSummary};

use crate::service::Service;

pub(crate) fn handle(service: &Service, _request: ListTopicsRequest) -> ListTopicsResponse {
    ListTopicsResponse {
        topics: service
            .storage
            .topics()
            .iter()
            .map(|t| TopicSummary {
                name: t.name.to_string(),
                partitions: t.partitions.len() as u32,
                config: t.config,
            })
            .collect(),
    }
}
