//! `quiver serve`: run the broker until SIGINT or SIGTERM.
//!
//! The options and how the config file, `QUIVER_*` variables and flags
//! merge live in `quiver_host::config`; this file only wires them up.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use quiver_host::Broker;
use quiver_host::config::{Config, LogFormat, Settings};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML config file (keys as the flags, with `_` for `-`); flags and
    /// QUIVER_* variables override it.
    #[arg(long, env = "QUIVER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    settings: Settings,
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args.settings, args.config.as_deref())?;
    if args.print_config {
        let text = config.to_toml()?;
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("cannot write the configuration")?;
        return Ok(());
    }
    init_logging(config.log_format)?;
    let broker = Broker::start(config.broker_config())
        .await
        .with_context(|| format!("cannot start the broker in {}", config.data_dir.display()))?;
    let cert = broker.cert();
    let http = broker
        .http_addr()
        .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
    let kafka = broker
        .kafka_addr()
        .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
    let kafka_tls = broker
        .kafka_tls_addr()
        .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
    tracing::info!(
        listen = %broker.local_addr(),
        kafka = %kafka,
        kafka_tls = %kafka_tls,
        http = %http,
        data_dir = %config.data_dir.display(),
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

/// Logs to standard error, filtered by `RUST_LOG` (default `info`).
fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
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
