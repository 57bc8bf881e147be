//! `CreateTopics`: each topic through the service's create, with its
//! configs mapped by [`topic_configs`](crate::kafka::topic_configs);
//! `validate_only` checks everything and creates nothing.
//!
//! One broker keeps one copy: a replication factor other than 1 (or -1,
//! the default) and manual replica assignments are refused.

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::api::{CreateTopicRequest, TopicConfig};
use quiver_proto::{ErrorCode, WireError};

use super::error_code;
use crate::kafka::topic_configs::{self, INVALID_CONFIG};
use crate::kafka::{Context, topic_id};
use crate::service::create_topic;
use uuid::Uuid;

const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;

pub(super) async fn handle(
    context: &Context,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        topics.push(match create(context, topic, request.validate_only).await {
            Ok((partitions, config, id)) => result
                .with_topic_id(id)
                .with_num_partitions(partitions as i32)
                .with_replication_factor(1)
                .with_configs(Some(configs(context, &config))),
            Err((code, message)) => result
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    CreateTopicsResponse::default().with_topics(topics)
}

/// Creates (or only checks) one topic: its partition count, config and id
/// (nil when only checked).
async fn create(
    context: &Context,
    topic: &CreatableTopic,
    validate_only: bool,
) -> Result<(u32, TopicConfig, Uuid), (i16, String)> {
    let partitions = match topic.num_partitions {
        -1 => context.default_partitions,
        n => u32::try_from(n).map_err(|_| (INVALID_PARTITIONS, format!("{n} partitions")))?,
    };
    if !matches!(topic.replication_factor, -1 | 1) {
        return Err((
            INVALID_REPLICATION_FACTOR,
            format!(
                "replication factor {}: this broker keeps one copy of each partition",
                topic.replication_factor
            ),
        ));
    }
    if !topic.assignments.is_empty() {
        return Err((
            INVALID_REPLICA_ASSIGNMENT,
            "replica assignments are not taken: this broker leads every partition".to_owned(),
        ));
    }
    let mut config = TopicConfig::default();
    for c in &topic.configs {
        topic_configs::set(&mut config, &c.name, c.value.as_deref(), true)
            .map_err(|message| (INVALID_CONFIG, message))?;
    }
    let request = CreateTopicRequest {
        name: topic.name.0.to_string(),
        partitions,
        config,
    };
    let refused = |e: WireError| (error_code(&e), e.message);
    if validate_only {
        create_topic::validate(&request).map_err(refused)?;
        if context.service.storage.topic(&request.name).is_ok() {
            return Err(refused(WireError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic {:?} already exists", request.name),
            )));
        }
        return Ok((partitions, config, Uuid::nil()));
    }
    let created = create_topic::create(&context.service, request)
        .await
        .map_err(refused)?;
    Ok((
        created.partitions.len() as u32,
        created.config,
        topic_id(&created),
    ))
}

/// The created topic's configs, as version 5 on returns them.
fn configs(context: &Context, config: &TopicConfig) -> Vec<CreatableTopicConfigs> {
    topic_configs::describe(config, context.service.retention_defaults)
        .into_iter()
        .map(|entry| {
            let source = entry.source();
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(entry.name))
                .with_value(Some(StrBytes::from_string(entry.value)))
                .with_read_only(entry.read_only)
                .with_config_source(source)
        })
        .collect()
}
