//! `DeleteTopics`: each topic through the service's delete (refused while
//! a transform reads or writes it, as for Quiver's own clients).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::api::DeleteTopicRequest;

use super::{error_code, topic_name};
use crate::kafka::{Context, topic_by_id};
use crate::service::delete_topic;

/// Kafka's error for a topic asked for by an id the broker does not know.
const UNKNOWN_TOPIC_ID: i16 = 100;

pub(super) async fn handle(
    context: &Context,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // Versions up to 5 name topics in a list of names; 6 on in a list of
    // (name or id).
    let storage = &context.service.storage;
    let names: Vec<Option<TopicName>> = if request.topics.is_empty() {
        request.topic_names.into_iter().map(Some).collect()
    } else {
        request
            .topics
            .into_iter()
            .map(|t| {
                t.name.or_else(|| {
                    topic_by_id(storage, t.topic_id).map(|topic| topic_name(&topic.name))
                })
            })
            .collect()
    };
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let result = DeletableTopicResult::default().with_name(name.clone());
        let Some(name) = name else {
            responses.push(result.with_error_code(UNKNOWN_TOPIC_ID));
            continue;
        };
        let asked = DeleteTopicRequest {
            name: name.0.to_string(),
            force: false,
        };
        responses.push(match delete_topic::handle(&context.service, asked).await {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(error_code(&e))
                .with_error_message(Some(StrBytes::from_string(e.message))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
