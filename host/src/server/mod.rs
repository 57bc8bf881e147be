//! The QUIC front end: accepts connections, runs one task per request
//! stream, and hands each decoded request to its handler in [`requests`].
//!
//! - [`stream`]: reading one request frame and writing its response.
//! - [`requests`]: dispatch, and one file per request kind.

mod requests;
mod stream;

pub use stream::{FRAME_READ_TIMEOUT, MAX_CONNECTION_REQUEST_BYTES};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::{Endpoint, Incoming, TransportConfig, VarInt};
use quiver_proto::ErrorCode;
use quiver_proto::limits::{MAX_FRAME_BYTES, MAX_STREAMS_PER_CONNECTION};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::coordinator::Coordinator;
use crate::metrics::Metrics;
use crate::storage::{RetentionDefaults, Storage};
use crate::tls::{ServerCert, TlsError};
use crate::transforms::Transforms;
use crate::wasm::WasmEngine;

/// Bytes of request frames held in memory across all connections, at most;
/// a request beyond it waits for memory before its body is read.
pub const MAX_INFLIGHT_REQUEST_BYTES: usize = 512 * 1024 * 1024;

/// Fetches reading from storage at once, at most; with
/// [`quiver_proto::limits::MAX_FETCH_BYTES`] each, this bounds the memory of
/// reads not yet counted in [`MAX_INFLIGHT_REQUEST_BYTES`].
pub const MAX_CONCURRENT_FETCH_READS: usize = 16;

/// Request bodies up to this size skip the broker-wide memory budget (they
/// still count against their connection's): heartbeats and commits never
/// queue behind large frames whose senders are slow.
pub const SMALL_REQUEST_BYTES: usize = 64 * 1024;

/// A connection with no traffic (not even keep-alives) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_mins(1);

/// How long shutdown waits for in-flight requests before closing anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Per-connection receive window; a connection may have this much unread.
const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;

/// The broker's parts the requests act on.
#[derive(Debug)]
pub struct Services {
    /// Topics, partitions and every table.
    pub storage: Arc<Storage>,
    /// Consumer groups.
    pub coordinator: Arc<Coordinator>,
    /// The WebAssembly engine (uploads are checked with it).
    pub wasm: WasmEngine,
    /// Deployed transforms.
    pub transforms: Arc<Transforms>,
    /// Retention for topics that set none (shown by describe).
    pub retention_defaults: RetentionDefaults,
}

/// Shared by every connection and request task.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) storage: Arc<Storage>,
    pub(crate) coordinator: Arc<Coordinator>,
    pub(crate) wasm: WasmEngine,
    pub(crate) transforms: Arc<Transforms>,
    pub(crate) retention_defaults: RetentionDefaults,
    pub(crate) shutdown: CancellationToken,
    pub(crate) request_memory: Arc<Semaphore>,
    pub(crate) fetch_reads: Semaphore,
    pub(crate) metrics: Arc<Metrics>,
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
        max_connections: usize,
        cert: &ServerCert,
        services: Services,
    ) -> Result<Self, ServerError> {
        let crypto = cert.quic_config()?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(transport_config()));
        let endpoint = Endpoint::server(config, listen).map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let context = Arc::new(Context {
            metrics: Arc::clone(services.storage.metrics()),
            storage: services.storage,
            coordinator: services.coordinator,
            wasm: services.wasm,
            transforms: services.transforms,
            retention_defaults: services.retention_defaults,
            shutdown: shutdown.clone(),
            request_memory: Arc::new(Semaphore::new(MAX_INFLIGHT_REQUEST_BYTES)),
            fetch_reads: Semaphore::new(MAX_CONCURRENT_FETCH_READS),
        });
        tasks.spawn(accept_loop(
            endpoint.clone(),
            context,
            tasks.clone(),
            max_connections,
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
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS_PER_CONNECTION))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(MAX_FRAME_BYTES))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW_BYTES))
        .send_window(u64::from(CONNECTION_WINDOW_BYTES))
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
    max_connections: usize,
) {
    let connections = Arc::new(Semaphore::new(max_connections));
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            () = context.shutdown.cancelled() => break,
        };
        let Some(incoming) = incoming else { break };
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                let context = Arc::clone(&context);
                tasks.spawn(async move {
                    serve_connection(incoming, context).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tasks.spawn(refuse_connection(
                    incoming,
                    max_connections,
                    Arc::clone(&context.metrics),
                ));
            }
        }
    }
}

/// Completes the handshake only to tell the client why it is refused.
async fn refuse_connection(incoming: Incoming, limit: usize, metrics: Arc<Metrics>) {
    metrics.connection_refused();
    if let Ok(connection) = incoming.await {
        tracing::warn!(peer = %connection.remote_address(), limit, "too many connections");
        connection.close(
            VarInt::from(ErrorCode::TooManyConnections.code() as u16),
            b"too many connections",
        );
    }
}

async fn serve_connection(incoming: Incoming, context: Arc<Context>) {
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let peer = connection.remote_address();
    tracing::debug!(%peer, "connection open");
    let _open = context.metrics.connection_opened();
    let streams = TaskTracker::new();
    let memory = Arc::new(Semaphore::new(MAX_CONNECTION_REQUEST_BYTES));
    loop {
        let accepted = tokio::select! {
            accepted = connection.accept_bi() => accepted,
            () = context.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((send, recv)) => {
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
