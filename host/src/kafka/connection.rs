//! One Kafka connection: read a size-prefixed request, answer it, repeat.
//!
//! Answers go out in the order the requests came, as Kafka clients expect.
//! Clients pipeline produce requests (librdkafka and the Java client send
//! up to five at once): a produce request's batches are queued for the
//! writer as it arrives, and the connection reads the next request while
//! that commit is under way, up to [`MAX_PIPELINED_PRODUCES`] unanswered,
//! so that one connection's requests can share group commits. Since each
//! request's batches are queued before the next request is read, batches
//! are appended in the order sent. Any other request is handled once the
//! produces before it are answered, one at a time, as Kafka's own broker
//! takes every request. The size is checked against
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use quiver_proto::kafka::{
    self, ApiKey, DecodeError, MAX_KAFKA_REQUEST_BYTES, SIZE_BYTES, request_size,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::OwnedSemaphorePermit;

use super::apis::{self, Handled};
use super::{Context, KAFKA_IDLE_TIMEOUT, request_read_deadline};
use crate::server::{FIRST_PIECE_BYTES, FRAME_READ_BASE, SMALL_REQUEST_BYTES};
use crate::service::Session;

/// How long writing one response may take.
const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Produce requests a connection may have queued and not yet answered:
/// what Kafka clients send at once by default
/// (`max.in.flight.requests.per.connection`).
pub const MAX_PIPELINED_PRODUCES: usize = 5;

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
    let answers = Answers {
        context: &context,
        session: &session,
        peer,
        broken: AtomicBool::new(false),
    };
    // Produce requests queued for the writer, answered in order as their
    // commits become durable.
    let mut pending = FuturesOrdered::new();
    // A client that connects and sends nothing is let go sooner than one
    // that has been talking.
    let mut idle = context.first_request_timeout;
    'connection: loop {
        while pending.len() >= MAX_PIPELINED_PRODUCES {
            let Some(reply) = pending.next().await else {
                break;
            };
            if !answers.send(&mut writer, reply).await {
                break 'connection;
            }
        }
        let Some(request) =
            next_request(&mut reader, &mut writer, &answers, &mut pending, idle).await
        else {
            break;
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
        let framed = match kafka::decode_request(frame.freeze()) {
            Ok(framed) => framed,
            Err(DecodeError::UnsupportedVersion {
                api: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                let reply = unsupported_api_versions(correlation_id, request_bytes);
                if drain(&answers, &mut writer, &mut pending).await
                    && answers.send(&mut writer, reply).await
                {
                    continue;
                }
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "Kafka request refused; closing the connection");
                break;
            }
        };
        let api = framed.api;
        // A produce is queued and answered once durable, while the next
        // request is read; its request's bytes (its batches are slices of
        // them) and their share of the memory budget are held until then.
        // Any other request first waits for the produces before it, so it
        // sees what they wrote, as when requests are taken one at a time,
        // and gives its share of the budget back now: a fetch waiting for
        // room for its answer never holds room its request no longer needs.
        let memory = memory.filter(|_| api == ApiKey::Produce);
        if api != ApiKey::Produce && !drain(&answers, &mut writer, &mut pending).await {
            break;
        }
        match apis::handle(&context, &session, framed).await {
            Handled::Queued(answer) => pending.push_back(async move {
                let answer = answer.await;
                drop(memory);
                Reply {
                    api,
                    request_bytes,
                    answer,
                }
            }),
            Handled::Now(answer) => {
                let reply = Reply {
                    api,
                    request_bytes,
                    answer,
                };
                if !answers.send(&mut writer, reply).await {
                    break;
                }
            }
        }
    }
    // Produces already queued are answered before the connection closes,
    // whatever closes it (the client's end, a request refused, the
    // broker's shutdown, which lets in-flight requests finish), unless an
    // answer could not go out.
    drain(&answers, &mut writer, &mut pending).await;
    tracing::debug!(%peer, "Kafka connection closed");
}

/// A request's answer, with what the metrics count of it.
struct Reply {
    api: ApiKey,
    request_bytes: u64,
    /// `Err`: no answer can be encoded; the connection closes.
    answer: Result<apis::Answer, String>,
}

/// Where a connection's answers go, and what it counts of them.
struct Answers<'a> {
    context: &'a Context,
    session: &'a Session,
    peer: SocketAddr,
    /// Set once an answer could not be written or encoded: no later answer
    /// may go out, since the client reads them by position.
    broken: AtomicBool,
}

impl Answers<'_> {
    /// Counts `reply` and writes its answer, if it has one (acks=0 produce
    /// requests get none); `false` when the connection must close.
    async fn send(&self, writer: &mut (impl AsyncWrite + Unpin), reply: Reply) -> bool {
        if self.broken.load(Ordering::Relaxed) {
            return false;
        }
        let sent = self.write(writer, reply).await;
        if !sent {
            self.broken.store(true, Ordering::Relaxed);
        }
        sent
    }

    /// Counts `reply` and writes its answer; `false` if it cannot.
    async fn write(&self, writer: &mut (impl AsyncWrite + Unpin), reply: Reply) -> bool {
        let peer = self.peer;
        let (api, metrics) = (reply.api, &self.context.service.metrics);
        let listener = self.session.listener.as_str();
        let answer = match reply.answer {
            Ok(answer) => answer,
            Err(reason) => {
                tracing::warn!(%peer, ?api, %reason, "cannot answer a Kafka request; closing the connection");
                metrics.record_request(listener, &format!("{api:?}"), reply.request_bytes, 0, true);
                return false;
            }
        };
        let response_bytes = answer.bytes.as_ref().map_or(0, |b| b.len() as u64);
        metrics.record_request(
            listener,
            &format!("{api:?}"),
            reply.request_bytes,
            response_bytes,
            false,
        );
        let Some(bytes) = &answer.bytes else {
            return true;
        };
        match tokio::time::timeout(RESPONSE_WRITE_TIMEOUT, writer.write_all(bytes)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "Kafka client went away");
                false
            }
            Err(_) => {
                tracing::warn!(%peer, "Kafka client did not read its response in time");
                false
            }
        }
    }
}

/// Reads the next request while the answers of queued produces go out as
/// their commits become durable (the read is never cancelled halfway);
/// `None` when the connection is to close.
async fn next_request<F: Future<Output = Reply>>(
    reader: &mut (impl AsyncRead + Unpin),
    writer: &mut (impl AsyncWrite + Unpin),
    answers: &Answers<'_>,
    pending: &mut FuturesOrdered<F>,
    idle: Duration,
) -> Option<RequestRead> {
    let context = answers.context;
    let read = read_request(reader, context, idle);
    tokio::pin!(read);
    loop {
        tokio::select! {
            biased;
            () = context.shutdown.cancelled() => return None,
            Some(reply) = pending.next() => {
                if !answers.send(writer, reply).await {
                    return None;
                }
            }
            request = &mut read => return Some(request),
        }
    }
}

/// What reading a request gave: the request and its share of the memory
/// budget, `None` when the client stopped sending, or why it failed.
type RequestRead = Result<Option<(BytesMut, Option<OwnedSemaphorePermit>)>, String>;

/// Writes the answers of every queued produce, in order; `false` when the
/// connection must close.
async fn drain(
    answers: &Answers<'_>,
    writer: &mut (impl AsyncWrite + Unpin),
    pending: &mut FuturesOrdered<impl Future<Output = Reply>>,
) -> bool {
    // Nothing can go out once an answer did not: no waiting for commits.
    if answers.broken.load(Ordering::Relaxed) {
        return false;
    }
    while let Some(reply) = pending.next().await {
        if !answers.send(writer, reply).await {
            return false;
        }
    }
    true
}

/// Reads one request (the bytes after the size), holding its share of the
/// memory budget; `None` when the client closed the connection between
/// requests or sent nothing for `idle`.
async fn read_request(
    reader: &mut (impl AsyncRead + Unpin),
    context: &Context,
    idle: Duration,
) -> RequestRead {
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
fn unsupported_api_versions(correlation_id: i32, request_bytes: u64) -> Reply {
    let response = apis::api_versions::served().with_error_code(UNSUPPORTED_VERSION);
    let answer = kafka::encode_response(correlation_id, 0, &response).map(|bytes| apis::Answer {
        bytes: Some(bytes),
        memory: None,
    });
    Reply {
        api: ApiKey::ApiVersions,
        request_bytes,
        answer,
    }
}
