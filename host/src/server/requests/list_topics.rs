//! `ListTopics`: every topic, sorted by name.

use quiver_proto::api::{ListTopicsRequest, ListTopicsResponse, TopicSummary};

use crate::server::Context;

pub(super) fn handle(context: &Context, _request: ListTopicsRequest) -> ListTopicsResponse {
    ListTopicsResponse {
        topics: context
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
