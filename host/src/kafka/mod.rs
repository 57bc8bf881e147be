//! The Kafka front end: a TCP listener speaking Kafka's wire protocol, so
//! that Kafka clients in any language (kcat, librdkafka, kafka-python, the
//! Java client) produce to and fetch from the same topics as Quiver's own
//! clients.
//!
//! Like the QUIC front end it is a thin adapter: [`connection`] reads
//! size-prefixed requests (the size checked before anything is read) and
//! decodes them with [`quiver_proto::kafka`] (every element count checked
//! before the `kafka-protocol` crate allocates for it); [`apis`] turns each
//! into a call of [`crate::service`] and its answer into Kafka's response.
//!
//! The broker presents itself as a one-node Kafka cluster: node
//! [`NODE_ID`], leader of every partition, at the advertised address.

mod apis;
mod connection;
mod topic_configs;

pub use connection::MAX_PIPELINED_PRODUCES;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::PerIp;
use crate::service::{Listener, Service};
use crate::storage::{Storage, Topic};
use uuid::Uuid;

/// The node id this broker has in the cluster Kafka clients see.
pub const NODE_ID: i32 = 0;

/// The cluster id Kafka clients see.
pub const CLUSTER_ID: &str = "quiver";

/// The high half of every topic id handed to Kafka clients (`quiver` in
/// ASCII): Quiver numbers topics with a `u64` that is never reused, which
/// becomes the low half, so an id is stable for the topic's life.
const TOPIC_ID_PREFIX: u64 = 0x7175_6976_6572_0000;

/// The Kafka topic id of a topic (Metadata v10 on, KIP-848 assignments).
pub(crate) fn topic_id(topic: &Topic) -> Uuid {
    Uuid::from_u64_pair(TOPIC_ID_PREFIX, topic.id)
}

/// The topic a Kafka topic id names, if it still exists.
pub(crate) fn topic_by_id(storage: &Storage, id: Uuid) -> Option<Arc<Topic>> {
    let (prefix, number) = id.as_u64_pair();
    (prefix == TOPIC_ID_PREFIX)
        .then(|| storage.topics().into_iter().find(|t| t.id == number))
        .flatten()
}

/// Kafka connections at once, at most; more are closed at once.
pub const MAX_KAFKA_CONNECTIONS: usize = quiver_proto::limits::MAX_CONNECTIONS;

/// A connection sending nothing for this long is closed (Kafka's
/// `connections.max.idle.ms` is ten minutes; clients reconnect on demand);
/// before its first request, after [`KafkaConfig::first_request_timeout`].
pub const KAFKA_IDLE_TIMEOUT: Duration = Duration::from_mins(10);

/// How long a request's bytes may take to arrive once its size has, as for
/// QUIC frames: a base plus the time its size takes at 1 MiB/s.
fn request_read_deadline(len: usize) -> Duration {
    crate::server::frame_read_deadline(len)
}

/// What the Kafka listener needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Where to listen, plaintext (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The address Metadata hands to plaintext clients; the bound address
    /// if none.
    pub advertise: Option<Advertised>,
    /// Where to listen with TLS (the broker's certificate), if at all; its
    /// clients are handed its bound address.
    pub tls_listen: Option<SocketAddr>,
    /// Whether Metadata creates a missing topic a client asks for.
    pub auto_create_topics: bool,
    /// Partitions of such a topic.
    pub default_partitions: u32,
    /// How long a connection may stay open before its first request.
    pub first_request_timeout: Duration,
    /// Connections from one IP address at once, at most (both Kafka
    /// listeners together).
    pub max_connections_per_ip: usize,
}

impl KafkaConfig {
    /// Listening on `listen`, advertising the bound address, creating
    /// topics on demand with one partition.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            advertise: None,
            tls_listen: None,
            auto_create_topics: true,
            default_partitions: crate::config::DEFAULT_PARTITIONS,
            first_request_timeout: crate::server::FIRST_REQUEST_TIMEOUT,
            max_connections_per_ip: crate::server::MAX_CONNECTIONS_PER_IP,
        }
    }
}

/// A `HOST:PORT` clients can reach the broker at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Advertised {
    /// A host name or address.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl FromStr for Advertised {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not HOST:PORT");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

impl TryFrom<String> for Advertised {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Advertised> for String {
    fn from(a: Advertised) -> Self {
        a.to_string()
    }
}

impl fmt::Display for Advertised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What every connection of one listener shares.
#[derive(Debug)]
struct Context {
    service: Arc<Service>,
    /// Plaintext or TLS.
    listener: Listener,
    advertised: Advertised,
    auto_create_topics: bool,
    default_partitions: u32,
    first_request_timeout: Duration,
    /// This listener's stop; a child of the service's.
    shutdown: CancellationToken,
}

/// A running Kafka listener: plaintext, and TLS when configured.
#[derive(Debug)]
pub struct KafkaServer {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl KafkaServer {
    /// Binds the listeners and starts accepting connections; `tls` is the
    /// broker's certificate, for `config.tls_listen`.
    pub async fn start(
        config: KafkaConfig,
        service: Arc<Service>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        let shutdown = service.shutdown.child_token();
        let tasks = TaskTracker::new();
        let connections = Arc::new(Semaphore::new(MAX_KAFKA_CONNECTIONS));
        let per_ip = PerIp::default();
        let listen = |addr: SocketAddr,
                      listener: Listener,
                      advertise: Option<Advertised>,
                      acceptor: Option<TlsAcceptor>| {
            let service = Arc::clone(&service);
            let shutdown = shutdown.clone();
            let tasks = tasks.clone();
            let connections = Arc::clone(&connections);
            let per_ip = per_ip.clone();
            let config = &config;
            async move {
                let socket = TcpListener::bind(addr).await?;
                let local_addr = socket.local_addr()?;
                let context = Arc::new(Context {
                    service,
                    listener,
                    advertised: advertise.unwrap_or_else(|| Advertised {
                        host: local_addr.ip().to_string(),
                        port: local_addr.port(),
                    }),
                    auto_create_topics: config.auto_create_topics,
                    default_partitions: config.default_partitions,
                    first_request_timeout: config.first_request_timeout,
                    shutdown,
                });
                let limits = Limits {
                    connections,
                    per_ip,
                    max_per_ip: config.max_connections_per_ip,
                };
                tasks.spawn(accept_loop(
                    socket,
                    context,
                    acceptor,
                    limits,
                    tasks.clone(),
                ));
                tracing::info!(addr = %local_addr, %listener, "Kafka listener started");
                Ok::<_, std::io::Error>(local_addr)
            }
        };
        let local_addr = listen(
            config.listen,
            Listener::Kafka,
            config.advertise.clone(),
            None,
        )
        .await?;
        let tls_addr = match (config.tls_listen, tls) {
            (Some(addr), Some(tls)) => {
                Some(listen(addr, Listener::KafkaTls, None, Some(TlsAcceptor::from(tls))).await?)
            }
            _ => None,
        };
        Ok(Self {
            local_addr,
            tls_addr,
            shutdown,
            tasks,
        })
    }

    /// The plaintext listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The TLS listener's bound address, if it runs.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Stops accepting, lets in-flight requests answer, closes connections.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(crate::server::SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Kafka requests still running after the shutdown grace period");
        }
    }
}

/// How many connections a Kafka listener takes: in all, and per address.
struct Limits {
    connections: Arc<Semaphore>,
    per_ip: PerIp,
    max_per_ip: usize,
}

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept_loop(
    socket: TcpListener,
    context: Arc<Context>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            () = context.shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %e, "Kafka accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = limits.per_ip.take(peer.ip(), limits.max_per_ip) else {
            context.service.metrics.connection_refused();
            tracing::warn!(%peer, "Kafka connection refused: at most {} from one address", limits.max_per_ip);
            continue;
        };
        let Ok(permit) = Arc::clone(&limits.connections).try_acquire_owned() else {
            context.service.metrics.connection_refused();
            tracing::warn!(%peer, "Kafka connection refused: at most {MAX_KAFKA_CONNECTIONS}");
            continue;
        };
        let context = Arc::clone(&context);
        let tls = tls.clone();
        tasks.spawn(async move {
            let _ = stream.set_nodelay(true);
            match tls {
                None => connection::serve(stream, peer, context).await,
                Some(tls) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => connection::serve(stream, peer, context).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "Kafka TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "Kafka TLS handshake timed out"),
                    }
                }
            }
            drop((permit, slot));
        });
    }
}
