//! `quiver serve`: run the broker until SIGINT or SIGTERM.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use quiver_host::broker::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use quiver_host::storage::{DEFAULT_CACHE_BYTES, StorageOptions};
use quiver_host::{Broker, BrokerConfig};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Where the database and the generated certificate live.
    #[arg(long, env = "QUIVER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Address to listen on (UDP, QUIC); port 0 picks a free port.
    #[arg(long, env = "QUIVER_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// PEM certificate chain; without it a self-signed one is generated
    /// in the data directory (tls/cert.pem) and reused.
    #[arg(long, env = "QUIVER_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "QUIVER_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Page cache for stored data, in MiB; bounds the broker's memory use.
    #[arg(long, env = "QUIVER_CACHE_MB", default_value_t = DEFAULT_CACHE_BYTES / (1024 * 1024))]
    cache_mb: usize,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let mut config = BrokerConfig::new(&args.data_dir, args.listen);
    config.tls_cert = args.tls_cert;
    config.tls_key = args.tls_key;
    config.storage = StorageOptions {
        cache_bytes: args.cache_mb.saturating_mul(1024 * 1024),
    };
    let broker = Broker::start(config)
        .await
        .with_context(|| format!("cannot start the broker in {}", args.data_dir.display()))?;
    let cert = broker.cert();
    tracing::info!(
        listen = %broker.local_addr(),
        data_dir = %args.data_dir.display(),
        cert = %cert.cert_path.display(),
        fingerprint = %cert.fingerprint,
        self_signed = cert.generated,
        "quiver broker listening"
    );
    wait_for_signal().await?;
    tracing::info!("shutting down: no new requests; finishing in-flight commits");
    broker.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("cannot watch SIGINT")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
