//! [`Broker`]: storage, the service, and its front ends (QUIC, Kafka),
//! started and stopped in order.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::coordinator::Coordinator;
use crate::http::{HttpError, HttpServer};
use crate::kafka::{KafkaConfig, KafkaServer};
use crate::metrics::Metrics;
use crate::server::{ConnectionLimits, Server, ServerError};
use crate::service::Service;
use crate::storage::{
    DATABASE_FILE, PRODUCER_ID_EXPIRATION_MS, RetentionDefaults, RetentionReport, Storage,
    StorageError, StorageOptions,
};
use crate::tls::{ServerCert, TlsError};
use crate::transforms::{TransformError, Transforms};
use crate::wasm::{EngineError, WasmEngine, WasmLimits};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "./quiver-data";
/// Where compiled WebAssembly modules are cached, inside the data directory.
pub const WASM_CACHE_DIR: &str = "wasm-cache";
/// How often retention runs unless configured (Kafka's default is 5 minutes;
/// batches are smaller than segments, so we look more often).
pub const DEFAULT_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(30);

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
    /// Connections at once (in all and per client address) and the
    /// deadlines for a client's first request and for a frame's header.
    pub connections: ConnectionLimits,
    /// Retention limits for topics that set none.
    pub retention_defaults: RetentionDefaults,
    /// How often the retention cleaner runs.
    pub retention_check_interval: Duration,
    /// The clock retention (and later session timeouts) go by.
    pub clock: Arc<dyn Clock>,
    /// The HTTP port (`/health`, `/ready`, `/metrics`), if any; port 0
    /// picks a free port.
    pub http: Option<SocketAddr>,
    /// Broker-wide limits on WebAssembly work (compilations, transforms,
    /// guest memory, fetch-time instances).
    pub wasm: WasmLimits,
    /// The Kafka listener, if any.
    pub kafka: Option<KafkaConfig>,
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
            connections: ConnectionLimits::default(),
            retention_defaults: RetentionDefaults::default(),
            retention_check_interval: DEFAULT_RETENTION_CHECK_INTERVAL,
            clock: Arc::new(SystemClock),
            http: None,
            wasm: WasmLimits::default(),
            kafka: None,
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The data directory could not be created or resolved.
    #[error("data directory {path}: {reason}")]
    DataDir {
        /// The directory as configured.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The certificate could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listener could not start.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The WebAssembly engine could not be set up.
    #[error(transparent)]
    WasmEngine(#[from] EngineError),
    /// The HTTP port could not start.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The Kafka listener could not start.
    #[error(
        "cannot listen for Kafka clients on {addr}: {source} (choose another address with --kafka-listen, or turn it off with --kafka-listen off)"
    )]
    Kafka {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A stored transform could not be started.
    #[error("cannot start the stored transforms: {0}")]
    Transforms(TransformError),
}

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    storage: Arc<Storage>,
    service: Arc<Service>,
    server: Server,
    kafka: Option<KafkaServer>,
    transforms: Arc<Transforms>,
    retention: Retention,
    /// Stops the background tasks (retention cleaner, member expiry).
    cleaner: CancellationToken,
    cleaner_task: tokio::task::JoinHandle<()>,
    expiry_task: tokio::task::JoinHandle<()>,
    local_addr: SocketAddr,
    cert: ServerCert,
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    http: Option<HttpServer>,
}

impl Broker {
    /// Starts the HTTP port (if configured; `/ready` answers 503 until the
    /// broker is up), opens storage, sets up TLS and starts listening.
    ///
    /// The data directory is resolved to an absolute path once, here (a
    /// relative one is relative to the working directory at start). If this
    /// call created it and the start fails, it is removed again, so a
    /// failed first start leaves nothing half-made behind.
    pub async fn start(mut config: BrokerConfig) -> Result<Self, BrokerError> {
        let configured = config.data_dir.clone();
        let dir_error = |e: std::io::Error| BrokerError::DataDir {
            path: configured.clone(),
            reason: e.to_string(),
        };
        let created = !configured.exists();
        std::fs::create_dir_all(&configured).map_err(dir_error)?;
        config.data_dir = std::fs::canonicalize(&configured).map_err(dir_error)?;
        let data_dir = config.data_dir.clone();
        let started = Self::start_in(config).await;
        if started.is_err() && created {
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        started
    }

    async fn start_in(config: BrokerConfig) -> Result<Self, BrokerError> {
        let data_dir = config.data_dir.clone();
        let metrics = Arc::new(Metrics::new());
        // Dropped on an early return below, which stops it.
        let http = match config.http {
            Some(addr) => Some(
                HttpServer::start(addr, Arc::clone(&metrics), data_dir.join(DATABASE_FILE)).await?,
            ),
            None => None,
        };
        let cert = ServerCert::load_or_generate(
            &data_dir,
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
        )?;
        let options = config.storage.clone();
        let dir = data_dir.clone();
        let storage_metrics = Arc::clone(&metrics);
        let storage = tokio::task::spawn_blocking(move || {
            Storage::open_with_metrics(&dir, &options, storage_metrics)
        })
        .await
        .map_err(|e| StorageError::CommitFailed(format!("open task failed: {e}")))??;
        let storage = Arc::new(storage);
        let coordinator = Arc::new(Coordinator::new(
            Arc::clone(&storage),
            Arc::clone(&config.clock),
        ));
        let wasm = WasmEngine::new(Some(&data_dir.join(WASM_CACHE_DIR)))?
            .with_compile_limits(config.wasm.max_compiles, config.wasm.compile_queue);
        let transforms = Arc::new(
            Transforms::start(
                Arc::clone(&storage),
                wasm.clone(),
                Arc::clone(&config.clock),
                config.wasm,
            )
            .await
            .map_err(BrokerError::Transforms)?,
        );
        let service = Arc::new(Service::new(
            Arc::clone(&storage),
            Arc::clone(&coordinator),
            wasm,
            Arc::clone(&transforms),
            config.retention_defaults,
            Arc::clone(&config.clock),
        ));
        let server = Server::start(
            config.listen,
            config.connections,
            &cert,
            Arc::clone(&service),
        )?;
        let local_addr = server.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let kafka = start_kafka(config.kafka, &service, &cert).await?;
        let retention = Retention {
            storage: Arc::clone(&storage),
            defaults: config.retention_defaults,
            clock: Arc::clone(&config.clock),
        };
        let cleaner = CancellationToken::new();
        let expiry_task = tokio::spawn(Arc::clone(&coordinator).run_expiry(cleaner.clone()));
        let cleaner_task = tokio::spawn(
            retention
                .clone()
                .run(config.retention_check_interval, cleaner.clone()),
        );
        if let Some(http) = &http {
            http.watch_storage(Arc::clone(storage.health()));
            http.set_ready(true);
        }
        Ok(Self {
            storage,
            service,
            server,
            kafka,
            transforms,
            retention,
            cleaner,
            cleaner_task,
            expiry_task,
            local_addr,
            cert,
            data_dir,
            metrics,
            http,
        })
    }

    /// The HTTP port's bound address, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(HttpServer::local_addr)
    }

    /// The broker's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The Kafka listener's bound address, if it runs.
    pub fn kafka_addr(&self) -> Option<SocketAddr> {
        self.kafka.as_ref().map(KafkaServer::local_addr)
    }

    /// The Kafka TLS listener's bound address, if it runs.
    pub fn kafka_tls_addr(&self) -> Option<SocketAddr> {
        self.kafka.as_ref().and_then(KafkaServer::tls_addr)
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

    /// The deployed transforms.
    pub fn transforms(&self) -> &Arc<Transforms> {
        &self.transforms
    }

    /// Runs one retention pass now, at the configured clock's time.
    pub async fn enforce_retention(&self) -> Result<RetentionReport, StorageError> {
        self.retention.pass().await
    }

    /// Stops accepting, finishes in-flight requests and commits, and closes
    /// the database.
    pub async fn shutdown(self) {
        if let Some(http) = &self.http {
            http.set_ready(false);
        }
        self.service.begin_shutdown();
        self.cleaner.cancel();
        let _ = self.cleaner_task.await;
        let _ = self.expiry_task.await;
        if let Some(kafka) = &self.kafka {
            kafka.shutdown().await;
        }
        self.server.shutdown().await;
        self.transforms.shutdown().await;
        self.storage.shutdown().await;
        if let Some(http) = &self.http {
            http.shutdown().await;
        }
        tracing::info!("broker stopped");
    }
}

/// Starts the Kafka listener, if configured.
async fn start_kafka(
    config: Option<KafkaConfig>,
    service: &Arc<Service>,
    cert: &ServerCert,
) -> Result<Option<KafkaServer>, BrokerError> {
    let Some(config) = config else {
        return Ok(None);
    };
    let addr = config.listen;
    let tls = match config.tls_listen {
        Some(_) => Some(cert.tcp_config()?),
        None => None,
    };
    KafkaServer::start(config, Arc::clone(service), tls)
        .await
        .map(Some)
        .map_err(|source| BrokerError::Kafka { addr, source })
}

/// The retention cleaner: a pass every interval until cancelled.
#[derive(Debug, Clone)]
struct Retention {
    storage: Arc<Storage>,
    defaults: RetentionDefaults,
    clock: Arc<dyn Clock>,
}

impl Retention {
    async fn run(self, interval: Duration, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => return,
            }
            match self.pass().await {
                Ok(report) if report.batches > 0 => tracing::info!(
                    partitions = report.partitions,
                    batches = report.batches,
                    bytes = report.bytes,
                    "retention deleted old batches"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
        }
    }

    async fn pass(&self) -> Result<RetentionReport, StorageError> {
        let storage = Arc::clone(&self.storage);
        let (now, defaults) = (self.clock.now_ms(), self.defaults);
        let plan = tokio::task::spawn_blocking(move || storage.retention_plan(now, defaults))
            .await
            .map_err(|e| StorageError::CommitFailed(format!("retention task failed: {e}")))??;
        let report = self.storage.apply_retention(plan).await?;
        // Idle idempotent producers are forgotten on the same schedule.
        let expired = self
            .storage
            .expire_producers(now.saturating_sub(PRODUCER_ID_EXPIRATION_MS))
            .await?;
        if expired > 0 {
            tracing::info!(expired, "idle producer states forgotten");
        }
        Ok(report)
    }
}
