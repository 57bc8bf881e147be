//! `FindCoordinator`: this broker coordinates every group. Transactions
//! are not served, so a transaction coordinator is not available.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::{Context, NODE_ID};

/// The key type of a consumer group (1 is a transactional id).
const GROUP_KEY: i8 = 0;
/// Kafka's error for a coordinator that is not available.
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

pub(super) fn handle(
    context: &Context,
    request: &FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let host = StrBytes::from_string(context.advertised.host.clone());
    let port = i32::from(context.advertised.port);
    let error_code = if request.key_type == GROUP_KEY {
        0
    } else {
        COORDINATOR_NOT_AVAILABLE
    };
    // Version 4 on asks for many keys at once.
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(host.clone())
                    .with_port(port)
                    .with_error_code(error_code)
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    FindCoordinatorResponse::default()
        .with_error_code(error_code)
        .with_node_id(BrokerId(NODE_ID))
        .with_host(host)
        .with_port(port)
}
