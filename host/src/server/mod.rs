//! The QUIC front end: accepts connections, runs one task per request
//! stream, and hands each decoded request to its handler in [`requests`].
//!
//! - [`stream`]: reading one request frame and writing its response.
//! - [`dispatch`]: decoding a request's head, calling its operation in
//!   [`crate::service`], encoding the answer.

mod dispatch;
mod stream;

pub use stream::{
    FIRST_PIECE_BYTES, FRAME_READ_BASE, MAX_CONNECTION_REQUEST_BYTES, MIN_FRAME_RATE,
    frame_read_deadline,
};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use quinn::{Endpoint, Incoming, TransportConfig, VarInt};
use quiver_client::quic;
use quiver_proto::ErrorCode;
use quiver_proto::limits::{MAX_CONNECTIONS, MAX_STREAMS_PER_CONNECTION};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::service::Service;
use crate::tls::{ServerCert, TlsError};

/// Request bodies up to this size skip the broker-wide memory budget (they
/// still count against their connection's): heartbeats and commits never
/// queue behind large frames whose senders are slow.
pub const SMALL_REQUEST_BYTES: usize = 64 * 1024;

/// A connection with no traffic (not even keep-alives) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_mins(1);

/// How long a connection may stay open without sending its first request
/// (its keep-alives do not count): a client holding slots it never uses is
/// let go.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_mins(1);

/// How long the 12 header bytes of a frame may take to arrive once its
/// stream is open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections from one IP address, at most, unless configured: a quarter
/// of [`MAX_CONNECTIONS`], so one client cannot take every slot.
pub const MAX_CONNECTIONS_PER_IP: usize = MAX_CONNECTIONS / 4;

/// How many connections a listener takes, and how long it waits for a
/// client's first request and for a frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections at once, at most; more are refused with
    /// `TooManyConnections`.
    pub max_connections: usize,
    /// Connections from one IP address at once, at most (also refused with
    /// `TooManyConnections`).
    pub max_connections_per_ip: usize,
    /// See [`FIRST_REQUEST_TIMEOUT`].
    pub first_request_timeout: Duration,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_connections_per_ip: MAX_CONNECTIONS_PER_IP,
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            header_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// How long shutdown waits for in-flight requests before closing anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Shared by every connection and request task.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) service: Arc<Service>,
    pub(crate) header_timeout: Duration,
    /// This listener's stop; a child of the service's, so a broker stopping
    /// stops it too.
    pub(crate) shutdown: CancellationToken,
}

/// A running QUIC listener.
#[derive(Debug)]
pub struct Server {
    endpoint: Endpoint,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Server {
    /// Binds `listen` and starts accepting connections.
    pub fn start(
        listen: SocketAddr,
        limits: ConnectionLimits,
        cert: &ServerCert,
        service: Arc<Service>,
    ) -> Result<Self, ServerError> {
        let crypto = cert.quic_config()?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport_config()));
        let endpoint =
            quic::endpoint(listen, Some(config)).map_err(|source| ServerError::Bind {
                addr: listen,
                source,
            })?;
        let shutdown = service.shutdown.child_token();
        let tasks = TaskTracker::new();
        let context = Arc::new(Context {
            service,
            header_timeout: limits.header_timeout,
            shutdown: shutdown.clone(),
        });
        tasks.spawn(accept_loop(
            endpoint.clone(),
            context,
            tasks.clone(),
            limits,
        ));
        Ok(Self {
            endpoint,
            shutdown,
            tasks,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Stops accepting, lets in-flight requests finish (long polls return
    /// early), then closes every connection.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        self.endpoint.close(
            VarInt::from(ErrorCode::ShuttingDown.code() as u16),
            b"broker shutting down",
        );
        self.endpoint.wait_idle().await;
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The certificate or key was refused.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn transport_config() -> TransportConfig {
    let mut transport = quic::transport_config();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS_PER_CONNECTION))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(
            IDLE_TIMEOUT
                .try_into()
                .unwrap_or(quinn::IdleTimeout::from(VarInt::from_u32(60_000))),
        ));
    transport
}

async fn accept_loop(
    endpoint: Endpoint,
    context: Arc<Context>,
    tasks: TaskTracker,
    limits: ConnectionLimits,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = PerIp::default();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = context.shutdown.cancelled() => break,
        };
        let Some(incoming) = incoming else { break };
        let ip = incoming.remote_address().ip();
        let Some(slot) = per_ip.take(ip, limits.max_connections_per_ip) else {
            tasks.spawn(refuse_connection(
                incoming,
                format!(
                    "too many connections from {ip} (at most {})",
                    limits.max_connections_per_ip
                ),
                Arc::clone(&context.service.metrics),
            ));
            continue;
        };
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                let context = Arc::clone(&context);
                let first_request_timeout = limits.first_request_timeout;
                tasks.spawn(async move {
                    serve_connection(incoming, context, first_request_timeout).await;
                    drop((permit, slot));
                });
            }
            Err(_) => {
                tasks.spawn(refuse_connection(
                    incoming,
                    format!("too many connections (at most {})", limits.max_connections),
                    Arc::clone(&context.service.metrics),
                ));
            }
        }
    }
}

/// Open connections per client IP address (shared by a listener's accept
/// loop; the Kafka listeners keep their own).
#[derive(Debug, Clone, Default)]
pub(crate) struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection's place in [`PerIp`]; given back when dropped.
pub(crate) struct IpSlot {
    counts: PerIp,
    ip: IpAddr,
}

impl PerIp {
    /// A slot for `ip`, unless it already holds `limit`.
    pub(crate) fn take(&self, ip: IpAddr, limit: usize) -> Option<IpSlot> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Completes the handshake only to tell the client why it is refused.
async fn refuse_connection(incoming: Incoming, reason: String, metrics: Arc<Metrics>) {
    metrics.connection_refused();
    if let Ok(connection) = incoming.await {
        tracing::warn!(peer = %connection.remote_address(), %reason, "connection refused");
        connection.close(
            VarInt::from(ErrorCode::TooManyConnections.code() as u16),
            reason.as_bytes(),
        );
    }
}

async fn serve_connection(
    incoming: Incoming,
    context: Arc<Context>,
    first_request_timeout: Duration,
) {
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let peer = connection.remote_address();
    tracing::debug!(%peer, "connection open");
    let _open = context.service.metrics.connection_opened();
    let streams = TaskTracker::new();
    let memory = Arc::new(Semaphore::new(MAX_CONNECTION_REQUEST_BYTES));
    let first_request = tokio::time::sleep(first_request_timeout);
    tokio::pin!(first_request);
    let mut served_one = false;
    loop {
        let accepted = tokio::select! {
            accepted = connection.accept_bi() => accepted,
            () = &mut first_request, if !served_one => {
                tracing::debug!(%peer, "no request within the first-request deadline");
                connection.close(
                    VarInt::from(ErrorCode::InvalidRequest.code() as u16),
                    format!("no request within {first_request_timeout:?} of connecting").as_bytes(),
                );
                return;
            }
            () = context.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((send, recv)) => {
                served_one = true;
                streams.spawn(stream::serve(
                    Arc::clone(&context),
                    Arc::clone(&memory),
                    send,
                    recv,
                ));
            }
            Err(e) => {
                tracing::debug!(%peer, reason = %e, "connection closed");
                streams.close();
                streams.wait().await;
                return;
            }
        }
    }
    // Shutting down: let in-flight requests answer (long polls return
    // early), then tell the client why the connection closes.
    streams.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, streams.wait())
        .await
        .is_err()
    {
        tracing::warn!(%peer, "requests still running after the shutdown grace period");
    }
    connection.close(
        VarInt::from(ErrorCode::ShuttingDown.code() as u16),
        b"broker shutting down",
    );
}
