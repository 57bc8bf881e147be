//! The `quiver` command line: one file per command group.
//!
//! - `serve.rs`: run the broker.
//! - `topic.rs`: create, list, describe, delete topics.
//! - `produce.rs`: stdin lines to records.
//! - `consume.rs`: records to stdout lines (assigned, or as a group member);
//!   `format.rs`: the `--format` template or JSON of each line.
//! - `text.rs`: `--value-format` (text, hex, base64) and the unknown-topic
//!   hint both produce and consume give.
//! - `group.rs`: list, describe, reset and delete consumer groups.
//! - `module.rs`: upload, list and delete WebAssembly modules.
//! - `transform.rs`: deploy and operate transforms.
//! - `bench.rs`: produce and consume benchmarks; `bench_transform.rs`:
//!   throughput through a deployed transform.
//! - `storage.rs`: check a stopped broker's data directory.
//! - `tls.rs`: a certificate authority and the brokers' certificates.

mod bench;
mod bench_connections;
mod bench_kafka;
mod bench_transform;
mod consume;
mod disk;
mod format;
mod group;
mod module;
mod procfs;
mod produce;
mod serve;
mod storage;
mod text;
mod tls;
mod topic;
mod transform;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, Parser, Subcommand};
use quiver_client::{Client, ClientConfig, ClientError, DEFAULT_BROKER};

/// Quiver: a durable, partitioned log over QUIC.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(Box<serve::ServeArgs>),
    /// Manage topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Send one record per line of standard input.
    Produce(produce::ProduceArgs),
    /// Print records, one per line.
    Consume(consume::ConsumeArgs),
    /// Manage consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Manage WebAssembly modules.
    #[command(subcommand)]
    Module(module::ModuleCommand),
    /// Manage transforms (modules the broker runs on a topic).
    #[command(subcommand)]
    Transform(transform::TransformCommand),
    /// Measure throughput and latency against a running broker.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Check a stopped broker's data directory.
    #[command(subcommand)]
    Storage(storage::StorageCommand),
    /// Make a certificate authority and sign brokers' certificates.
    #[command(subcommand)]
    Tls(tls::TlsCommand),
}

/// Where the broker is, whom to trust and how long to wait; shared by every
/// client command.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// The broker's HOST:PORT.
    #[arg(long, env = "QUIVER_BROKER", default_value = DEFAULT_BROKER)]
    broker: String,
    /// PEM file of the CA (or self-signed certificate) to trust. Without it,
    /// ./quiver-data/tls/cert.pem is used if present (the certificate a local
    /// `quiver serve` generates), else the system's roots.
    #[arg(long, env = "QUIVER_CA")]
    ca: Option<PathBuf>,
    /// Seconds to wait for the broker to answer when connecting (and when
    /// reconnecting); requests, once connected, have their own 30 s limit.
    #[arg(long, env = "QUIVER_TIMEOUT", value_name = "SECS", default_value = "5", value_parser = parse_timeout)]
    timeout: Duration,
}

/// The certificate `quiver serve` generates with its default data dir.
const LOCAL_BROKER_CERT: &str = "quiver-data/tls/cert.pem";

impl ClientArgs {
    pub(crate) fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(&self.broker).connect_timeout(self.timeout);
        config.ca_file = self.ca.clone().or_else(|| {
            let local = PathBuf::from(LOCAL_BROKER_CERT);
            local.exists().then_some(local)
        });
        config
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        let config = self.config();
        Client::connect(config.clone())
            .await
            .map_err(|e| self.explain(e, &config))
    }

    /// A connect error as the user should read it: what was tried and what
    /// to do about it.
    fn explain(&self, error: ClientError, config: &ClientConfig) -> anyhow::Error {
        match error {
            ClientError::UntrustedCertificate { .. } => {
                let trusted = match (&self.ca, &config.ca_file) {
                    (Some(ca), _) => format!("{} (--ca or QUIVER_CA)", ca.display()),
                    (None, Some(local)) => format!("./{}", local.display()),
                    (None, None) => "the system's roots".to_owned(),
                };
                anyhow!(
                    "{error}. This client trusted {trusted}: pass the broker's certificate \
                     with --ca FILE or QUIVER_CA=FILE (a local quiver serve writes it to \
                     DATA/tls/cert.pem and logs its fingerprint)"
                )
            }
            ClientError::ConnectTimeout { .. } | ClientError::Connect { .. } => error.into(),
            other => anyhow::Error::new(other)
                .context(format!("cannot reach the broker at {}", self.broker)),
        }
    }
}

/// `--timeout`: seconds, fractions allowed, above zero.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("expected a number of seconds, not {s:?}"))?;
    if secs <= 0.0 {
        return Err("the timeout must be above zero".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).await,
        Command::Topic(command) => topic::run(command).await,
        Command::Produce(args) => produce::run(args).await,
        Command::Consume(args) => consume::run(args).await,
        Command::Group(command) => group::run(command).await,
        Command::Module(command) => module::run(command).await,
        Command::Transform(command) => transform::run(command).await,
        Command::Bench(command) => bench::run(command).await,
        Command::Storage(command) => storage::run(command),
        Command::Tls(command) => tls::run(command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(parse_timeout("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_timeout("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("5s").is_err());
    }
}
