//! `AlterConfigs`: replaces a topic's settings with the ones given (those
//! not given go back to their defaults), as Kafka's non-incremental alter
//! does.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::api::TopicConfig;

use crate::kafka::Context;
use crate::kafka::topic_configs::{self, check_topic_resource};

pub(super) async fn handle(
    context: &Context,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let altered = async {
            check_topic_resource(resource.resource_type)?;
            // Every setting not given returns to its default; the creation-time
            // ones stay as they are.
            let current = topic_configs::updated(context, &resource.resource_name, [])?;
            let reset = TopicConfig {
                timestamp_type: current.timestamp_type,
                ..TopicConfig::default()
            };
            let mut target = reset;
            for c in &resource.configs {
                topic_configs::set(&mut target, &c.name, c.value.as_deref(), false)
                    .map_err(|m| (topic_configs::INVALID_CONFIG, m))?;
            }
            topic_configs::apply(
                context,
                &resource.resource_name,
                target,
                request.validate_only,
            )
            .await
        };
        responses.push(match altered.await {
            Ok(()) => response,
            Err((code, message)) => response
                .with_error_code(code)
                .with_error_message(Some(StrBytes::from_string(message))),
        });
    }
    AlterConfigsResponse::default().with_responses(responses)
}
