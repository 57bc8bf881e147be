//! `CreatePartitions`: grows a topic to `count` partitions through the
//! service's alter (a topic never shrinks, as in Kafka).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::api::AlterTopicRequest;
use quiver_proto::{ErrorCode, WireError};

use super::error_code;
use crate::kafka::Context;
use crate::service::alter_topic;

pub(super) async fn handle(
    context: &Context,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let assigned = topic.assignments.as_ref().is_some_and(|a| !a.is_empty());
        let grown = grow(
            context,
            &topic.name.0,
            topic.count,
            assigned,
            request.validate_only,
        )
        .await;
        results.push(match grown {
            Ok(()) => result,
            Err(e) => result
                .with_error_code(error_code(&e))
                .with_error_message(Some(StrBytes::from_string(e.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

async fn grow(
    context: &Context,
    name: &str,
    count: i32,
    assigned: bool,
    validate_only: bool,
) -> Result<(), WireError> {
    let invalid = |message: String| WireError::new(ErrorCode::InvalidPartitions, message);
    if assigned {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            "replica assignments are not taken: this broker leads every partition",
        ));
    }
    let current = context.service.storage.topic(name)?.partitions.len();
    let count = u32::try_from(count).map_err(|_| invalid(format!("{count} partitions")))?;
    if (count as usize) <= current {
        return Err(invalid(format!(
            "topic {name:?} has {current} partitions; a new count must be larger"
        )));
    }
    if validate_only {
        return Ok(());
    }
    let request = AlterTopicRequest {
        name: name.to_owned(),
        partitions: Some(count),
        ..AlterTopicRequest::default()
    };
    alter_topic::handle(&context.service, request)
        .await
        .map(|_| ())
}
