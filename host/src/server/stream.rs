//! One request per bidirectional stream: read the frame (checking the
//! header against the limits before reading the rest), run the request,
//! write the response, finish the stream.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quinn::{ReadExactError, RecvStream, SendStream};
use quiver_proto::api::encode_error;
use quiver_proto::frame::{self, FrameError, FrameHeader, HEADER_BYTES};
use quiver_proto::{ErrorCode, ErrorDetail, WireError};
use tokio::io::AsyncReadExt as _;

use super::Context;
use super::requests::{self, Reply};

/// The QUIC stream error code sent when a stream is abandoned mid-frame.
const STOP_CODE_BAD_FRAME: u32 = ErrorCode::InvalidRequest.code() as u32;

pub(super) async fn serve(context: Arc<Context>, mut send: SendStream, mut recv: RecvStream) {
    let mut header_bytes = [0u8; HEADER_BYTES];
    let reply = match recv.read_exact(&mut header_bytes).await {
        Ok(()) => read_and_run(&context, &header_bytes, &mut recv).await,
        Err(ReadExactError::FinishedEarly(got)) => Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("truncated frame: the stream ended after {got} of {HEADER_BYTES} header bytes"),
        )),
        // The client reset the stream or the connection went away.
        Err(ReadExactError::ReadError(_)) => return,
    };
    let (version, result) = match reply {
        Ok(reply) => (reply.version, Ok(reply)),
        Err(error) => (1, Err(error)),
    };
    let mut chunks: Vec<Bytes> = match result {
        Ok(reply) => {
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
    if send.write_all_chunks(&mut chunks).await.is_ok() {
        let _ = send.finish();
    }
}

/// Reads the rest of the frame and runs it.
async fn read_and_run(
    context: &Context,
    header_bytes: &[u8; HEADER_BYTES],
    recv: &mut RecvStream,
) -> Result<Reply, WireError> {
    let header = FrameHeader::parse(header_bytes).map_err(frame_error)?;
    let rest_len = header.rest_len();
    // Reserve the frame's memory before allocating it; waits when the
    // broker already holds MAX_INFLIGHT_REQUEST_BYTES of requests.
    let _memory = context
        .request_memory
        .acquire_many(rest_len as u32)
        .await
        .map_err(|_| WireError::new(ErrorCode::ShuttingDown, "broker shutting down"))?;
    // Read into spare capacity: no zeroing of what is about to be overwritten.
    let mut rest = BytesMut::with_capacity(rest_len);
    let mut limited = (&mut *recv).take(rest_len as u64);
    while rest.len() < rest_len {
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
    // Check lengths once more through the codec's own split.
    frame::split(&header, &rest).map_err(frame_error)?;
    let body = rest.split_off(header.head_len as usize);
    requests::dispatch(context, header.tag, header.version, &rest, body).await
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
