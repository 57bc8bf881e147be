//! One request per bidirectional stream: read the frame (checking the
//! header against the limits before reading the rest), run the request,
//! write the response, finish the stream.
//!
//! A frame's memory is reserved, all of it at once, once its body starts
//! to arrive ([`FIRST_PIECE_BYTES`] within [`FRAME_READ_BASE`]): from its
//! connection's budget ([`MAX_CONNECTION_REQUEST_BYTES`]) and then from the
//! broker's ([`crate::service::MAX_INFLIGHT_REQUEST_BYTES`]); the rest must arrive
//! within [`frame_read_deadline`] (a base plus the time at
//! [`MIN_FRAME_RATE`]). So a client that announces large frames and sends
//! nothing holds no memory, and one that trickles holds its frames only
//! until their deadline. The
//! header itself must arrive within the listener's header timeout
//! ([`super::HEADER_READ_TIMEOUT`] by default).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::{ReadExactError, RecvStream, SendStream};
use quiver_proto::api::encode_error;
use quiver_proto::frame::{self, FrameError, FrameHeader, HEADER_BYTES};
use quiver_proto::{ErrorCode, ErrorDetail, WireError};
use tokio::io::AsyncReadExt as _;
use tokio::sync::Semaphore;

use super::Context;
use super::dispatch::{self, Reply};

/// Bytes of request frames one connection may hold in memory at once.
pub const MAX_CONNECTION_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// How long the rest of a frame may take to arrive once its header has,
/// beyond the time its size takes at [`MIN_FRAME_RATE`].
pub const FRAME_READ_BASE: Duration = Duration::from_secs(10);

/// The slowest a frame's body may arrive, in bytes per second, on average.
pub const MIN_FRAME_RATE: u64 = 1024 * 1024;

/// Bytes of a frame's body read before its memory is reserved (to learn
/// that it is being sent at all); small, and already in QUIC's buffers.
pub const FIRST_PIECE_BYTES: usize = 4 * 1024;

/// How long a body of `len` bytes may take to arrive.
pub fn frame_read_deadline(len: usize) -> Duration {
    FRAME_READ_BASE + Duration::from_millis(len as u64 * 1000 / MIN_FRAME_RATE)
}

/// How long writing a response may take.
const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a finished response may take to be acknowledged by the client
/// before the stream task lets go of it.
const RESPONSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The QUIC stream error code sent when a stream is abandoned mid-frame.
const STOP_CODE_BAD_FRAME: u32 = ErrorCode::InvalidRequest.code() as u32;

/// The version an error response carries when the request's is unknown.
const FALLBACK_VERSION: u16 = 1;

pub(super) async fn serve(
    context: Arc<Context>,
    connection_memory: Arc<Semaphore>,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let mut header_bytes = [0u8; HEADER_BYTES];
    let header = tokio::time::timeout(context.header_timeout, recv.read_exact(&mut header_bytes));
    let (version, result) = match header.await {
        Err(_) => (
            FALLBACK_VERSION,
            Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "the frame header's {HEADER_BYTES} bytes did not arrive within {:?}",
                    context.header_timeout
                ),
            )),
        ),
        Ok(Ok(())) => {
            // Echo the request's version, even in an error response.
            let version = u16::from_be_bytes([header_bytes[6], header_bytes[7]]);
            let result = read_and_run(&context, &connection_memory, &header_bytes, &mut recv).await;
            (version, result)
        }
        Ok(Err(ReadExactError::FinishedEarly(got))) => (
            FALLBACK_VERSION,
            Err(WireError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "truncated frame: the stream ended after {got} of {HEADER_BYTES} header bytes"
                ),
            )),
        ),
        // The client reset the stream or the connection went away.
        Ok(Err(ReadExactError::ReadError(_))) => return,
    };
    let mut memory = None;
    let mut chunks: Vec<Bytes> = match result {
        Ok(reply) => {
            memory = reply.memory;
            let mut chunks = Vec::with_capacity(1 + reply.body.len());
            chunks.push(Bytes::from(reply.head));
            chunks.extend(reply.body);
            chunks
        }
        Err(error) => {
            tracing::debug!(code = %error.code, message = %error.message, "request refused");
            // Stop the client's sending: whatever it still sends is not read.
            let _ = recv.stop(STOP_CODE_BAD_FRAME.into());
            match encode_error(version, &error) {
                Ok(bytes) => vec![Bytes::from(bytes)],
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode an error response");
                    return;
                }
            }
        }
    };
    // A client that stops reading may not hold the response (and its memory)
    // forever.
    let written =
        tokio::time::timeout(RESPONSE_WRITE_TIMEOUT, send.write_all_chunks(&mut chunks)).await;
    drop(memory);
    if matches!(written, Ok(Ok(()))) && send.finish().is_ok() {
        // Stay until the client has the whole answer, so that closing the
        // connection (at shutdown) cannot discard it.
        let _ = tokio::time::timeout(RESPONSE_FLUSH_TIMEOUT, send.stopped()).await;
    }
}

/// Reads the rest of the frame and runs it.
async fn read_and_run(
    context: &Context,
    connection_memory: &Semaphore,
    header_bytes: &[u8; HEADER_BYTES],
    recv: &mut RecvStream,
) -> Result<Reply, WireError> {
    let header = FrameHeader::parse(header_bytes).map_err(frame_error)?;
    let rest_len = header.rest_len();
    let shutting_down = || WireError::new(ErrorCode::ShuttingDown, "broker shutting down");
    let timed_out = |within: Duration, got: usize| {
        WireError::new(
            ErrorCode::InvalidRequest,
            format!("the frame's {rest_len} bytes did not arrive within {within:?} ({got} did)"),
        )
    };
    let mut rest = BytesMut::with_capacity(rest_len);
    // Its first bytes must come before anything is reserved: a frame
    // announced and not sent holds no memory.
    let first = tokio::select! {
        read = tokio::time::timeout(FRAME_READ_BASE, read_some(recv, &mut rest, FIRST_PIECE_BYTES.min(rest_len))) => read,
        () = context.shutdown.cancelled() => return Err(shutting_down()),
    };
    first.map_err(|_| timed_out(FRAME_READ_BASE, 0))??;
    // Then the whole frame at once, first from this connection's budget,
    // then (above the small-request size, so that heartbeats and commits
    // never queue behind large frames) from the broker's. All at once, in
    // order: a frame never holds part of a budget while it waits for the
    // rest, so frames cannot starve each other.
    let closed = |_| shutting_down();
    let _memory = tokio::select! {
        reserved = async {
            let connection = connection_memory.acquire_many(rest_len as u32).await.map_err(closed)?;
            let broker = if rest_len > super::SMALL_REQUEST_BYTES {
                Some(context.service.request_memory.acquire_many(rest_len as u32).await.map_err(closed)?)
            } else {
                None
            };
            Ok::<_, WireError>((connection, broker))
        } => reserved?,
        () = context.shutdown.cancelled() => return Err(shutting_down()),
    };
    let deadline = frame_read_deadline(rest_len);
    tokio::select! {
        read = tokio::time::timeout(deadline, read_some(recv, &mut rest, rest_len)) => {
            read.map_err(|_| timed_out(deadline, rest.len()))??;
        }
        () = context.shutdown.cancelled() => return Err(shutting_down()),
    }
    // Check lengths once more through the codec's own split.
    frame::split(&header, &rest).map_err(frame_error)?;
    let body = rest.split_off(header.head_len as usize);
    dispatch::dispatch(&context.service, header.tag, header.version, &rest, body).await
}

/// Reads into `rest` (spare capacity, not zeroed first) until it holds
/// `until` bytes.
async fn read_some(
    recv: &mut RecvStream,
    rest: &mut BytesMut,
    until: usize,
) -> Result<(), WireError> {
    let expected = rest.capacity();
    let mut limited = (&mut *recv).take((until - rest.len()) as u64);
    while rest.len() < until {
        match limited.read_buf(rest).await {
            Ok(0) => {
                return Err(frame_error(FrameError::Truncated {
                    expected,
                    actual: rest.len(),
                }));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(WireError::new(
                    ErrorCode::InvalidRequest,
                    format!("read failed: {e}"),
                ));
            }
        }
    }
    Ok(())
}

fn frame_error(error: FrameError) -> WireError {
    match error {
        FrameError::TooLarge { len } => WireError::new(ErrorCode::FrameTooLarge, error.to_string())
            .with_detail(ErrorDetail::Size {
                size: u64::from(len),
                max: u64::from(quiver_proto::limits::MAX_FRAME_BYTES),
            }),
        _ => WireError::new(ErrorCode::InvalidRequest, error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_may_take_the_base_plus_its_size_at_the_minimum_rate() {
        assert_eq!(frame_read_deadline(0), FRAME_READ_BASE);
        assert_eq!(
            frame_read_deadline(16 * 1024 * 1024),
            FRAME_READ_BASE + Duration::from_secs(16)
        );
    }
}
