//! `DescribeConfigs`: a topic's settings under Kafka's names (all, or the
//! keys asked), each marked as the topic's own or the broker's default.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::WireError;

use super::error_code;
use crate::kafka::Context;
use crate::kafka::topic_configs::{self, check_topic_resource};

pub(super) fn handle(
    context: &Context,
    request: &DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match describe(
                context,
                resource.resource_type,
                &resource.resource_name,
                resource.configuration_keys.as_deref(),
            ) {
                Ok(configs) => result.with_configs(configs),
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn describe(
    context: &Context,
    resource_type: i8,
    topic: &str,
    keys: Option<&[StrBytes]>,
) -> Result<Vec<DescribeConfigsResourceResult>, (i16, String)> {
    check_topic_resource(resource_type)?;
    let config = context
        .service
        .storage
        .topic(topic)
        .map_err(|e| {
            let e = WireError::from(e);
            (error_code(&e), e.message)
        })?
        .config;
    Ok(
        topic_configs::describe(&config, context.service.retention_defaults)
            .into_iter()
            // No keys, or an empty list, asks for all (as Kafka reads it).
            .filter(|entry| {
                keys.is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| &**k == entry.name))
            })
            .map(|entry| {
                let source = entry.source();
                DescribeConfigsResourceResult::default()
                    .with_name(StrBytes::from_static_str(entry.name))
                    .with_value(Some(StrBytes::from_string(entry.value)))
                    .with_read_only(entry.read_only)
                    .with_config_source(source)
            })
            .collect(),
    )
}
