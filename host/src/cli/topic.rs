//! `quiver topic create|list|describe|delete`.

use clap::Subcommand;
use quiver_client::{
    Admin, AlterTopicRequest, Change, TimestampType, TopicCompression, TopicConfig,
};

/// A retention setting as shown: the topic's own number, or the broker
/// default that applies when unset (`none`: no limit).
fn show(value: Option<u64>, default: Option<u64>) -> String {
    match (value, default) {
        (Some(v), _) => v.to_string(),
        (None, Some(d)) => format!("{d} (broker default)"),
        (None, None) => "none (broker default)".to_owned(),
    }
}

/// A partition's timestamp column: RFC 3339, or `-` when it has none.
fn show_time(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), super::text::rfc3339_ms)
}

/// `--retention-*` values for alter: a number, or "none" to clear.
fn parse_change(s: &str) -> Result<Change<u64>, String> {
    if s == "none" {
        return Ok(Change::Clear);
    }
    s.parse()
        .map(Change::Set)
        .map_err(|_| format!("expected a number or \"none\", not {s:?}"))
}

/// `--timestamp-type` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum TimestampArg {
    /// The producer's clock.
    CreateTime,
    /// The broker's clock on arrival.
    LogAppendTime,
}

use super::ClientArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name: 1 to 249 of a-z A-Z 0-9 . _ -
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Keep records at least this long (ms); forever when unset.
        #[arg(long)]
        retention_ms: Option<u64>,
        /// Keep about this many bytes per partition; unlimited when unset.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// Record timestamps from the producer (create-time) or the broker
        /// on arrival (log-append-time).
        #[arg(long, value_enum, default_value = "create-time")]
        timestamp_type: TimestampArg,
        /// How stored batches are compressed (Kafka's compression.type):
        /// producer keeps each as sent; uncompressed, gzip, snappy, lz4 or
        /// zstd recompresses the others on arrival.
        #[arg(long, default_value = "producer")]
        compression: TopicCompression,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change a topic's retention or add partitions.
    Alter {
        /// Topic name.
        name: String,
        /// New retention.ms, or "none" to fall back to the broker default.
        #[arg(long, value_parser = parse_change)]
        retention_ms: Option<Change<u64>>,
        /// New retention.bytes, or "none" to fall back to the broker default.
        #[arg(long, value_parser = parse_change)]
        retention_bytes: Option<Change<u64>>,
        /// New compression.type: producer, uncompressed, gzip, snappy, lz4
        /// or zstd (batches already stored stay as they are).
        #[arg(long)]
        compression: Option<TopicCompression>,
        /// New partition count (partitions can be added, not removed).
        #[arg(long)]
        partitions: Option<u32>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List topics.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a topic's partitions with log start offset and high watermark.
    Describe {
        /// Topic name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a topic and its data (refused while a transform reads or
    /// writes it, unless --force).
    Delete {
        /// Topic name.
        name: String,
        /// Delete even though transforms use the topic (they then fail).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub(crate) async fn run(command: TopicCommand) -> anyhow::Result<()> {
    let client = command.client_args().connect().await?;
    let result = execute(command, Admin::new(client.clone())).await;
    // Close explicitly, so the broker frees the connection at once.
    client.close().await;
    result
}

impl TopicCommand {
    fn client_args(&self) -> &ClientArgs {
        match self {
            Self::Create { client, .. }
            | Self::Alter { client, .. }
            | Self::List { client }
            | Self::Describe { client, .. }
            | Self::Delete { client, .. } => client,
        }
    }
}

async fn execute(command: TopicCommand, admin: Admin) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            timestamp_type,
            compression,
            ..
        } => {
            let config = TopicConfig {
                retention_ms,
                retention_bytes,
                timestamp_type: match timestamp_type {
                    TimestampArg::CreateTime => TimestampType::CreateTime,
                    TimestampArg::LogAppendTime => TimestampType::LogAppendTime,
                },
                compression,
            };
            admin.create_topic(&name, partitions, config).await?;
            println!("created topic {name} with {partitions} partitions");
        }
        TopicCommand::Alter {
            name,
            retention_ms,
            retention_bytes,
            compression,
            partitions,
            ..
        } => {
            let topic = admin
                .alter_topic(AlterTopicRequest {
                    name: name.clone(),
                    retention_ms: retention_ms.unwrap_or_default(),
                    retention_bytes: retention_bytes.unwrap_or_default(),
                    compression,
                    partitions,
                })
                .await?;
            let defaults = topic.default_retention;
            println!(
                "altered topic {name}: partitions={} retention.ms={} retention.bytes={} compression.type={}",
                topic.partitions.len(),
                show(topic.config.retention_ms, defaults.retention_ms),
                show(topic.config.retention_bytes, defaults.retention_bytes),
                topic.config.compression
            );
        }
        TopicCommand::List { .. } => {
            for topic in admin.list_topics().await? {
                println!("{}\tpartitions={}", topic.name, topic.partitions);
            }
        }
        TopicCommand::Describe { name, .. } => {
            let topic = admin.describe_topic(&name).await?;
            let defaults = topic.default_retention;
            println!(
                "topic {}\tpartitions={}\tretention.ms={}\tretention.bytes={}\ttimestamp.type={}\tcompression.type={}",
                topic.name,
                topic.partitions.len(),
                show(topic.config.retention_ms, defaults.retention_ms),
                show(topic.config.retention_bytes, defaults.retention_bytes),
                match topic.config.timestamp_type {
                    TimestampType::CreateTime => "create-time",
                    TimestampType::LogAppendTime => "log-append-time",
                },
                topic.config.compression
            );
            println!(
                "partition\tlog_start_offset\thigh_watermark\tsize_bytes\tfirst_timestamp\tlast_timestamp"
            );
            for p in topic.partitions {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    p.partition,
                    p.log_start_offset,
                    p.high_watermark,
                    p.size_bytes,
                    show_time(p.first_timestamp),
                    show_time(p.last_timestamp)
                );
            }
        }
        TopicCommand::Delete { name, force, .. } => {
            if force {
                admin.force_delete_topic(&name).await?;
            } else {
                admin.delete_topic(&name).await?;
            }
            println!("deleted topic {name}");
        }
    }
    Ok(())
}
