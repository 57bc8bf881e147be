//! One request per bidirectional stream: read the frame (checking the
//! header against the limits before reading the rest), run the request,
//! write the response, finish the stream.
//!
//! A frame's memory is reserved as its bytes arrive, in steps of
//! [`RESERVE_STEP_BYTES`], from its connection's budget
//! ([`MAX_CONNECTION_REQUEST_BYTES`]) and then from the broker's
//! ([`super::MAX_INFLIGHT_REQUEST_BYTES`]); its body must arrive within
//! [`frame_read_deadline`] (a base plus the time at [`MIN_FRAME_RATE`]). So
//! a client that announces large frames and sends nothing holds no memory,
//! and one that trickles holds only what it sent, until its deadline. The
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
use tokio::sync::{Semaphore, SemaphorePermit};

use super::Context;
use super::requests::{self, Reply};

/// Bytes of request frames one connection may hold in memory at once.
pub const MAX_CONNECTION_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// How long the rest of a frame may take to arrive once its header has,
/// beyond the time its size takes at [`MIN_FRAME_RATE`].
pub const FRAME_READ_BASE: Duration = Duration::from_secs(10);

/// The slowest a frame's body may arrive, in bytes per second, on average.
pub const MIN_FRAME_RATE: u64 = 1024 * 1024;

/// A frame's memory is reserved in steps of this many bytes, as they arrive.
pub const RESERVE_STEP_BYTES: usize = 1024 * 1024;

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
    // Small frames skip the broker's budget: heartbeats and commits never
    // queue behind large frames whose senders are slow.
    let budgets = Budgets {
        connection: connection_memory,
        broker: (rest_len > super::SMALL_REQUEST_BYTES).then_some(&*context.request_memory),
    };
    let deadline = frame_read_deadline(rest_len);
    let (rest, _memory) = tokio::select! {
        read = tokio::time::timeout(deadline, read_rest(recv, rest_len, &budgets)) => {
            read.map_err(|_| WireError::new(
                ErrorCode::InvalidRequest,
                format!("the frame's {rest_len} bytes did not arrive within {deadline:?}"),
            ))??
        }
        () = context.shutdown.cancelled() => return Err(shutting_down()),
    };
    let mut rest = rest;
    // Check lengths once more through the codec's own split.
    frame::split(&header, &rest).map_err(frame_error)?;
    let body = rest.split_off(header.head_len as usize);
    requests::dispatch(context, header.tag, header.version, &rest, body).await
}

/// The memory budgets a frame's bytes are reserved from.
struct Budgets<'a> {
    connection: &'a Semaphore,
    broker: Option<&'a Semaphore>,
}

/// Memory reserved for one frame, given back when dropped.
#[derive(Default)]
struct Reserved<'a> {
    permits: Vec<SemaphorePermit<'a>>,
    bytes: usize,
}

impl<'a> Reserved<'a> {
    /// Reserves `bytes` more from every budget, waiting for them.
    async fn grow(&mut self, budgets: &Budgets<'a>, bytes: usize) -> Result<(), WireError> {
        let closed = |_| WireError::new(ErrorCode::ShuttingDown, "broker shutting down");
        let count = bytes as u32;
        self.permits.push(
            budgets
                .connection
                .acquire_many(count)
                .await
                .map_err(closed)?,
        );
        if let Some(broker) = budgets.broker {
            self.permits
                .push(broker.acquire_many(count).await.map_err(closed)?);
        }
        self.bytes += bytes;
        Ok(())
    }
}

/// Reads exactly `rest_len` bytes into spare capacity (no zeroing first;
/// the pages are touched only as bytes arrive), reserving memory for them
/// step by step just before reading them.
async fn read_rest<'a>(
    recv: &mut RecvStream,
    rest_len: usize,
    budgets: &Budgets<'a>,
) -> Result<(BytesMut, Reserved<'a>), WireError> {
    let mut rest = BytesMut::with_capacity(rest_len);
    let mut reserved = Reserved::default();
    let mut limited = (&mut *recv).take(0);
    while rest.len() < rest_len {
        if rest.len() == reserved.bytes {
            let step = RESERVE_STEP_BYTES.min(rest_len - reserved.bytes);
            reserved.grow(budgets, step).await?;
            limited.set_limit(step as u64);
        }
        match limited.read_buf(&mut rest).await {
            Ok(0) => {
                return Err(frame_error(FrameError::Truncated {
                    expected: rest_len,
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
    Ok((rest, reserved))
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
