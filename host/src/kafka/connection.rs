//! One Kafka connection: read a size-prefixed request, answer it, repeat.
//!
//! Requests on one connection are handled one at a time, in order, as
//! Kafka's own broker does (clients pipeline, and read the answers in the
//! order they sent). The size is checked against
//! [`MAX_KAFKA_REQUEST_BYTES`] before anything else is read; as for QUIC
//! frames, nothing is reserved until the request's first bytes arrive
//! ([`FIRST_PIECE_BYTES`] within [`FRAME_READ_BASE`]); then a request above
//! [`SMALL_REQUEST_BYTES`] waits for its share of the broker-wide memory
//! budget, and the rest must arrive within its deadline.
//!
//! What cannot be answered closes the connection, as Kafka does: a size
//! out of range, an API not served, a malformed request. An `ApiVersions`
//! request at a version not served is answered at version 0 with the
//! versions served (KIP-511), so that old and new clients find a common one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::ApiVersionsResponse;
use quiver_proto::kafka::{
    self, ApiKey, DecodeError, MAX_KAFKA_REQUEST_BYTES, SIZE_BYTES, request_size,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::OwnedSemaphorePermit;

use super::{Context, KAFKA_IDLE_TIMEOUT, apis, request_read_deadline};
use crate::server::{FIRST_PIECE_BYTES, FRAME_READ_BASE, SMALL_REQUEST_BYTES};
use crate::service::Session;

/// How long writing one response may take.
const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka's error code for a version not served.
const UNSUPPORTED_VERSION: i16 = 35;

pub(super) async fn serve<S>(stream: S, peer: SocketAddr, context: Arc<Context>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let session = Session::new(context.listener, peer);
    let _open = context.service.metrics.connection_opened();
    tracing::debug!(%peer, listener = %context.listener, "Kafka connection open");
    let (mut reader, mut writer) = tokio::io::split(stream);
    // A client that connects and sends nothing is let go sooner than one
    // that has been talking.
    let mut idle = context.first_request_timeout;
    loop {
        let request = tokio::select! {
            request = read_request(&mut reader, &context, idle) => request,
            () = context.shutdown.cancelled() => break,
        };
        let (frame, memory) = match request {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(reason) => {
                tracing::warn!(%peer, %reason, "Kafka connection closed");
                break;
            }
        };
        idle = KAFKA_IDLE_TIMEOUT;
        let request_bytes = frame.len() as u64;
        let (api, answer) = match kafka::decode_request(frame.freeze()) {
            Ok(framed) => {
                let api = framed.api;
                // Only a produce keeps its request's bytes (its batches are
                // slices of them); the others give their share of the
                // budget back now, so a fetch waiting for room for its
                // answer never holds room its request no longer needs.
                let _memory = (api == ApiKey::Produce).then_some(memory);
                (api, apis::handle(&context, &session, framed).await)
            }
            Err(DecodeError::UnsupportedVersion {
                api: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => (
                ApiKey::ApiVersions,
                kafka::encode_response(correlation_id, 0, &unsupported_api_versions()).map(
                    |bytes| apis::Answer {
                        bytes: Some(bytes),
                        memory: None,
                    },
                ),
            ),
            Err(e) => {
                tracing::warn!(%peer, error = %e, "Kafka request refused; closing the connection");
                break;
            }
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err(reason) => {
                tracing::warn!(%peer, ?api, %reason, "cannot answer a Kafka request; closing the connection");
                context.service.metrics.record_request(
                    session.listener.as_str(),
                    &format!("{api:?}"),
                    request_bytes,
                    0,
                    true,
                );
                break;
            }
        };
        let response_bytes = answer.bytes.as_ref().map_or(0, |b| b.len() as u64);
        context.service.metrics.record_request(
            session.listener.as_str(),
            &format!("{api:?}"),
            request_bytes,
            response_bytes,
            false,
        );
        // acks=0 produce requests get no answer at all.
        if let Some(bytes) = &answer.bytes {
            match tokio::time::timeout(RESPONSE_WRITE_TIMEOUT, writer.write_all(bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "Kafka client went away");
                    break;
                }
                Err(_) => {
                    tracing::warn!(%peer, "Kafka client did not read its response in time");
                    break;
                }
            }
        }
    }
    tracing::debug!(%peer, "Kafka connection closed");
}

/// Reads one request (the bytes after the size), holding its share of the
/// memory budget; `None` when the client closed the connection between
/// requests or sent nothing for `idle`.
async fn read_request(
    reader: &mut (impl AsyncRead + Unpin),
    context: &Context,
    idle: Duration,
) -> Result<Option<(BytesMut, Option<OwnedSemaphorePermit>)>, String> {
    let mut prefix = [0u8; SIZE_BYTES];
    match tokio::time::timeout(idle, reader.read_exact(&mut prefix)).await {
        Err(_) => return Ok(None),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(_)) => {}
    }
    let size = request_size(prefix).map_err(|size| {
        format!("a request of {size} bytes (the limit is {MAX_KAFKA_REQUEST_BYTES})")
    })?;
    // Its first bytes must come before anything is reserved or allocated
    // for the rest: a request announced and not sent holds no memory.
    let first = size.min(FIRST_PIECE_BYTES);
    let mut frame = BytesMut::with_capacity(first);
    read_into(reader, &mut frame, first, FRAME_READ_BASE).await?;
    let memory = if size > SMALL_REQUEST_BYTES {
        Some(
            Arc::clone(&context.service.request_memory)
                .acquire_many_owned(size as u32)
                .await
                .map_err(|_| "the broker is shutting down".to_owned())?,
        )
    } else {
        None
    };
    frame.reserve(size - frame.len());
    read_into(reader, &mut frame, size, request_read_deadline(size)).await?;
    Ok(Some((frame, memory)))
}

/// Reads into `frame` until it holds `until` bytes, within `deadline`.
async fn read_into(
    reader: &mut (impl AsyncRead + Unpin),
    frame: &mut BytesMut,
    until: usize,
    deadline: Duration,
) -> Result<(), String> {
    let read = async {
        let mut limited = (&mut *reader).take((until - frame.len()) as u64);
        while frame.len() < until {
            if limited.read_buf(frame).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
        }
        Ok(())
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("reading a request: {e}")),
        Err(_) => Err(format!(
            "a request's bytes did not arrive within {deadline:?} ({} of {until} did)",
            frame.len()
        )),
    }
}

/// The KIP-511 answer to an `ApiVersions` request at a version not served:
/// version 0, `UNSUPPORTED_VERSION`, and the versions served.
fn unsupported_api_versions() -> ApiVersionsResponse {
    apis::api_versions::served().with_error_code(UNSUPPORTED_VERSION)
}
