//! `InitProducerId`: a new id for an idempotent producer, or the next
//! epoch of one it already has (KIP-360: a producer that lost track of its
//! sequences starts over under a new epoch instead of a new id).

use quiver_proto::WireError;
pub(crate) use quiver_proto::api::ProducerIdentity;

use crate::service::Service;

/// A new identity, or `current` with its epoch raised (a new id once the
/// epoch would overflow).
pub(crate) async fn handle(
    service: &Service,
    current: Option<ProducerIdentity>,
) -> Result<ProducerIdentity, WireError> {
    if let Some(current) = current
        && current.epoch < i16::MAX
    {
        return Ok(ProducerIdentity {
            producer_id: current.producer_id,
            epoch: current.epoch + 1,
        });
    }
    let producer_id = service.storage.init_producer_id().await?;
    Ok(ProducerIdentity {
        producer_id,
        epoch: 0,
    })
}
