//! `quiver produce TOPIC`: one record per line of standard input.

use std::collections::VecDeque;

use anyhow::Context as _;
use clap::Args;
use quiver_client::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::ClientArgs;

/// Acknowledgements awaited at once, at most, before reading more input.
const MAX_PENDING_ACKS: usize = 100_000;

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The topic.
    topic: String,
    /// The key of every record.
    #[arg(long, conflicts_with = "key_separator")]
    key: Option<String>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<u32>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let client = args.client.connect().await?;
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut acknowledged = 0u64;
    while let Some(line) = lines
        .next_line()
        .await
        .context("cannot read standard input")?
    {
        let (key, value) = match (&args.key, &args.key_separator) {
            (Some(key), _) => (Some(key.clone()), line),
            (None, Some(sep)) => match line.split_once(sep.as_str()) {
                Some((key, value)) => (Some(key.to_owned()), value.to_owned()),
                None => (None, line),
            },
            (None, None) => (None, line),
        };
        let mut record = ProducerRecord::new(&args.topic, value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        pending.push_back(producer.enqueue(record).await?);
        if pending.len() >= MAX_PENDING_ACKS
            && let Some(ack) = pending.pop_front()
        {
            ack.await?;
            acknowledged += 1;
        }
    }
    producer.flush().await?;
    for ack in pending {
        ack.await.with_context(|| {
            format!("{acknowledged} records were acknowledged before this failure")
        })?;
        acknowledged += 1;
    }
    println!("{acknowledged} records acknowledged");
    drop(producer);
    client.close().await;
    Ok(())
}
