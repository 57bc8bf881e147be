//! `Metadata`: this broker as the whole cluster, and the topics asked for
//! (all of them when none are named), creating missing ones when the
//! client allows it and the broker is configured to
//! (`--auto-create-topics`, as Kafka's `auto.create.topics.enable`).

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::api::{CreateTopicRequest, TopicConfig};
use quiver_proto::{ErrorCode, WireError};

use super::{error_code, topic_name};
use crate::kafka::{CLUSTER_ID, Context, NODE_ID, topic_by_id, topic_id};
use crate::service::create_topic;
use crate::storage::Topic;

pub(super) async fn handle(
    context: &Context,
    request: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let storage = &context.service.storage;
    // Version 0 asks for every topic with an empty list, later ones with
    // a null one.
    let named = match request.topics {
        Some(topics) if !(topics.is_empty() && version == 0) => Some(topics),
        _ => None,
    };
    // Before version 4 a request could not say, and Kafka created.
    let may_create =
        context.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let topics = match named {
        None => storage.topics().iter().map(|t| describe(t)).collect(),
        Some(named) => {
            let mut topics = Vec::with_capacity(named.len());
            for MetadataRequestTopic { name, topic_id, .. } in named {
                topics.push(match name {
                    Some(name) => lookup(context, &name.0, may_create).await,
                    // Asked by topic id only (version 10 on).
                    None => match topic_by_id(storage, topic_id) {
                        Some(topic) => describe(&topic),
                        None => MetadataResponseTopic::default()
                            .with_name(None)
                            .with_topic_id(topic_id)
                            .with_error_code(UNKNOWN_TOPIC_ID),
                    },
                });
            }
            topics
        }
    };
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE_ID))
                .with_host(StrBytes::from_string(context.advertised.host.clone()))
                .with_port(i32::from(context.advertised.port)),
        ])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(topics)
}

/// Kafka's error for a topic asked for by an id the broker does not know.
const UNKNOWN_TOPIC_ID: i16 = 100;

/// One named topic: described, created first if missing and allowed, or
/// the error.
async fn lookup(context: &Context, name: &str, may_create: bool) -> MetadataResponseTopic {
    let service = &context.service;
    let found = match service.storage.topic(name) {
        Err(_) if may_create => {
            let request = CreateTopicRequest {
                name: name.to_owned(),
                partitions: context.default_partitions,
                config: TopicConfig::default(),
            };
            match create_topic::create(service, request).await {
                Ok(topic) => {
                    tracing::info!(
                        topic = name,
                        partitions = context.default_partitions,
                        "topic created for a Kafka client's metadata request"
                    );
                    Ok(topic)
                }
                // Created meanwhile by another client.
                Err(e) if e.code == ErrorCode::TopicAlreadyExists => {
                    service.storage.topic(name).map_err(WireError::from)
                }
                Err(e) => Err(e),
            }
        }
        found => found.map_err(WireError::from),
    };
    match found {
        Ok(topic) => describe(&topic),
        Err(e) => MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(error_code(&e)),
    }
}

/// A topic (with its id) with every partition led by this node.
fn describe(topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(NODE_ID);
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic_id(topic))
        .with_partitions(
            (0..topic.partitions.len() as i32)
                .map(|index| {
                    MetadataResponsePartition::default()
                        .with_partition_index(index)
                        .with_leader_id(node)
                        .with_leader_epoch(0)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}
