//! [`Broker`]: storage plus the QUIC server, started and stopped in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use quiver_proto::limits::MAX_CONNECTIONS;

use crate::server::{Server, ServerError};
use crate::storage::{Storage, StorageError, StorageOptions};
use crate::tls::{ServerCert, TlsError};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./quiver-data";

/// What a broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where the database and generated certificate live.
    pub data_dir: PathBuf,
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The user's certificate chain (PEM), with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The user's private key (PEM), with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Storage settings.
    pub storage: StorageOptions,
    /// Concurrent client connections, at most; more are refused with
    /// `TooManyConnections`.
    pub max_connections: usize,
}

impl BrokerConfig {
    /// Defaults with the given data directory and listen address.
    pub fn new(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen,
            tls_cert: None,
            tls_key: None,
            storage: StorageOptions::default(),
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The database could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The certificate could not be set up.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The listener could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    storage: Arc<Storage>,
    server: Server,
    local_addr: SocketAddr,
    cert: ServerCert,
    data_dir: PathBuf,
}

impl Broker {
    /// Opens storage, sets up TLS and starts listening.
    pub async fn start(config: BrokerConfig) -> Result<Self, BrokerError> {
        let data_dir = config.data_dir.clone();
        let cert = ServerCert::load_or_generate(
            &data_dir,
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
        )?;
        let options = config.storage.clone();
        let dir = data_dir.clone();
        let storage = tokio::task::spawn_blocking(move || Storage::open(&dir, &options))
            .await
            .map_err(|e| StorageError::CommitFailed(format!("open task failed: {e}")))??;
        let storage = Arc::new(storage);
        let server = Server::start(
            config.listen,
            config.max_connections,
            &cert,
            Arc::clone(&storage),
        )?;
        let local_addr = server.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        Ok(Self {
            storage,
            server,
            local_addr,
            cert,
            data_dir,
        })
    }

    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The certificate the broker serves.
    pub fn cert(&self) -> &ServerCert {
        &self.cert
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The storage, for in-process inspection.
    pub fn storage(&self) -> &Arc<Storage> {
        &self.storage
    }

    /// Stops accepting, finishes in-flight requests and commits, and closes
    /// the database.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
        self.storage.shutdown().await;
        tracing::info!("broker stopped");
    }
}
