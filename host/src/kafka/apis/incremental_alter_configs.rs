//! `IncrementalAlterConfigs`: sets or deletes (back to the default) the
//! named settings of a topic, leaving the others. `APPEND` and `SUBTRACT`
//! apply to list settings, which no kept topic setting is.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::Context;
use crate::kafka::topic_configs::{self, INVALID_CONFIG, check_topic_resource};

const SET: i8 = 0;
const DELETE: i8 = 1;

pub(super) async fn handle(
    context: &Context,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let altered = async {
            check_topic_resource(resource.resource_type)?;
            let mut update = Vec::with_capacity(resource.configs.len());
            for c in &resource.configs {
                let value = match c.config_operation {
                    SET => c.value.as_deref(),
                    DELETE => None,
                    op => {
                        return Err((
                            INVALID_CONFIG,
                            format!(
                                "operation {op} on {}: only SET (0) and DELETE (1) apply to topic settings",
                                &*c.name
                            ),
                        ));
                    }
                };
                update.push((&*c.name, value));
            }
            let target = topic_configs::updated(context, &resource.resource_name, update)?;
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
