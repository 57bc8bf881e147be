//! `InitProducerId`: ids for idempotent producers, through the service.
//! Transactions are not served: a transactional id is refused.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::error_code;
use crate::kafka::Context;
use crate::service::init_producer_id::{self, ProducerIdentity};

/// Kafka's error for a transaction coordinator that is not available.
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

pub(super) async fn handle(
    context: &Context,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let refused = |code| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !id.is_empty())
    {
        return refused(COORDINATOR_NOT_AVAILABLE);
    }
    // Version 3 on: a producer that has an id asks for its next epoch.
    let current = u64::try_from(request.producer_id.0)
        .ok()
        .zip((request.producer_epoch >= 0).then_some(request.producer_epoch))
        .map(|(producer_id, epoch)| ProducerIdentity { producer_id, epoch });
    match init_producer_id::handle(&context.service, current).await {
        Ok(identity) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(
                i64::try_from(identity.producer_id).unwrap_or(i64::MAX),
            ))
            .with_producer_epoch(identity.epoch),
        Err(e) => refused(error_code(&e)),
    }
}
