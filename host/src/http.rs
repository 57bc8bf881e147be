//! The operator's HTTP port: plain HTTP/1.1 over TCP (no TLS), separate from
//! the QUIC client port.
//!
//! | path | answer |
//! |---|---|
//! | `/health` | 200 while the process runs |
//! | `/ready` | 200 once the database is open and the QUIC listener is up; 503 before that, during shutdown, and while storage takes no writes (a full disk, a reopen after a write error, a failure), with the reason |
//! | `/metrics` | 200, every [`Metrics`] in the Prometheus text format (0.0.4) |
//!
//! Only `GET` and `HEAD` are served (405 otherwise, 404 for other paths).
//! Request bodies are never read. The port is bounded by
//! [`MAX_HTTP_CONNECTIONS`], [`MAX_HTTP_BUFFER_BYTES`] (request line and
//! headers), [`HTTP_HEADER_READ_TIMEOUT`] and [`HTTP_CONNECTION_LIFETIME`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::{self, Metrics};
use crate::storage::StorageHealth;

/// HTTP connections open at once, at most; more are closed on accept.
pub const MAX_HTTP_CONNECTIONS: usize = 64;
/// A connection must deliver a request's line and headers within this
/// (also closes a keep-alive connection idle this long).
pub const HTTP_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes buffered per connection, at most; a request whose line and headers
/// exceed it is answered 431 and the connection closed.
pub const MAX_HTTP_BUFFER_BYTES: usize = 16 * 1024;
/// After this long a connection finishes its current request and closes
/// (bounds a client that never reads its response).
pub const HTTP_CONNECTION_LIFETIME: Duration = Duration::from_mins(1);
/// On shutdown or at the end of its lifetime, a connection gets this long to
/// finish its current response.
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (such as running out of file descriptors),
/// so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Why the HTTP port could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot listen for HTTP on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error (in the message, so not also a `source`).
        error: std::io::Error,
    },
}

/// What every request handler sees.
#[derive(Debug)]
struct State {
    ready: AtomicBool,
    /// Storage's health, once it is open: `/ready` fails while it has a
    /// problem (a full disk, a reopen, a failure).
    storage: OnceLock<Arc<StorageHealth>>,
    metrics: Arc<Metrics>,
    database: PathBuf,
}

/// A running HTTP port.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl HttpServer {
    /// Binds `addr` and starts serving; `/ready` answers 503 until
    /// [`set_ready`](Self::set_ready). `database` is the file whose size
    /// `/metrics` reports.
    pub async fn start(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        database: PathBuf,
    ) -> Result<Self, HttpError> {
        let bind_error = |error| HttpError::Bind { addr, error };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let state = Arc::new(State {
            ready: AtomicBool::new(false),
            storage: OnceLock::new(),
            metrics,
            database,
        });
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(accept_loop(
            listener,
            Arc::clone(&state),
            shutdown.clone(),
            tasks.clone(),
        ));
        tracing::debug!(%local_addr, "HTTP port listening");
        Ok(Self {
            local_addr,
            state,
            shutdown,
            tasks,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Makes `/ready` answer 503, with the reason, while storage has a
    /// problem.
    pub fn watch_storage(&self, health: Arc<StorageHealth>) {
        let _ = self.state.storage.set(health);
    }

    /// Sets what `/ready` answers: 200 when true, 503 when false.
    pub fn set_ready(&self, ready: bool) {
        self.state.ready.store(ready, Ordering::Release);
    }

    /// Stops accepting, lets open connections finish their current response
    /// (at most [`HTTP_SHUTDOWN_GRACE`]), and closes them.
    pub async fn shutdown(&self) {
        self.set_ready(false);
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for HttpServer {
    /// Stops accepting (open connections finish as on shutdown), so a
    /// broker that fails to start does not leave its HTTP port behind.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let connections = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "HTTP accept failed");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%peer, limit = MAX_HTTP_CONNECTIONS, "too many HTTP connections");
            drop(stream);
            continue;
        };
        tasks.spawn(serve_connection(
            stream,
            Arc::clone(&state),
            shutdown.clone(),
            permit,
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    state: Arc<State>,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(respond(&state, &request).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HTTP_HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HTTP_BUFFER_BYTES)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let finished = tokio::select! {
        result = connection.as_mut() => Some(result),
        () = shutdown.cancelled() => None,
        () = tokio::time::sleep(HTTP_CONNECTION_LIFETIME) => None,
    };
    let result = if let Some(result) = finished {
        result
    } else {
        // Finish the current response, then close; past the grace period
        // the connection is dropped, which closes it.
        connection.as_mut().graceful_shutdown();
        tokio::time::timeout(HTTP_SHUTDOWN_GRACE, connection)
            .await
            .unwrap_or(Ok(()))
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

async fn respond(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/health" | "/ready" | "/metrics") {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /health, /ready or /metrics\n",
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => {
            let problem = state.storage.get().and_then(|health| health.problem());
            match (state.ready.load(Ordering::Acquire), problem) {
                (true, None) => text(StatusCode::OK, "ready\n"),
                (_, Some(problem)) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {problem}\n"),
                ),
                (false, None) => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            }
        }
        _ => {
            // The file appears once the database is open; until then the
            // gauge keeps its last value.
            if let Ok(metadata) = tokio::fs::metadata(&state.database).await {
                state.metrics.set_storage_size(metadata.len());
            }
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            no_store(&mut response);
            response
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    no_store(&mut response);
    response
}

fn no_store(response: &mut Response<Full<Bytes>>) {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}
