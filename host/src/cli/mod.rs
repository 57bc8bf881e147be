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

mod bench;
mod bench_transform;
mod consume;
mod format;
mod group;
mod module;
mod produce;
mod serve;
mod text;
mod topic;
mod transform;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use quiver_client::{Client, ClientConfig, DEFAULT_BROKER};

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
    Serve(serve::ServeArgs),
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
}

/// Where the broker is and whom to trust; shared by every client command.
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
}

/// The certificate `quiver serve` generates with its default data dir.
const LOCAL_BROKER_CERT: &str = "quiver-data/tls/cert.pem";

impl ClientArgs {
    pub(crate) fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(&self.broker);
        config.ca_file = self.ca.clone().or_else(|| {
            let local = PathBuf::from(LOCAL_BROKER_CERT);
            local.exists().then_some(local)
        });
        config
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(self.config())
            .await
            .with_context(|| format!("cannot reach the broker at {}", self.broker))
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Topic(command) => topic::run(command).await,
        Command::Produce(args) => produce::run(args).await,
        Command::Consume(args) => consume::run(args).await,
        Command::Group(command) => group::run(command).await,
        Command::Module(command) => module::run(command).await,
        Command::Transform(command) => transform::run(command).await,
        Command::Bench(command) => bench::run(command).await,
    }
}
