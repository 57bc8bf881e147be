//! `quiver produce TOPIC`: one record per line of standard input.
//!
//! Lines are bytes, not necessarily UTF-8; the trailing `\n` is not part
//! of the record. Rules a user can rely on (and the README states):
//! - an empty line is skipped, and counted in the summary (kcat does the
//!   same), never sent as an empty record;
//! - with `--key-separator`, a line without the separator is an error naming
//!   the line (Kafka's console producer does the same); the records before
//!   it are still acknowledged, and the error says how many;
//! - `--value-format hex|base64` reads values that are not text;
//! - with `--null-marker TEXT`, a key or value that is exactly TEXT is
//!   sent as null: no key, or a null value (a tombstone). Kafka's console
//!   producer calls it `null.marker`; `--null-marker ''` with
//!   `--key-separator` makes `KEY<SEP>` a tombstone, as kcat's `-Z`.

use std::collections::VecDeque;

use anyhow::Context as _;
use clap::Args;
use quiver_client::{Admin, Compression, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};

use super::ClientArgs;
use super::text::{ValueFormat, explain_unknown_topic};

/// Acknowledgements awaited at once, at most, before reading more input.
const MAX_PENDING_ACKS: usize = 100_000;
/// The longest input line read, in bytes (a record's value is bounded by
/// the batch limit anyway).
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// The topic.
    topic: String,
    /// The key of every record.
    #[arg(long, conflicts_with = "key_separator")]
    key: Option<String>,
    /// Split each line at the first SEP into key and value; a line without
    /// SEP is an error.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// How values are written on the input lines.
    #[arg(long, value_enum, default_value = "text")]
    value_format: ValueFormat,
    /// A key or value that is exactly TEXT is sent as null (a null value
    /// is a tombstone); matched before --value-format decoding.
    #[arg(long, value_name = "TEXT")]
    null_marker: Option<String>,
    /// A header `k=v` on every record. Repeatable.
    #[arg(long = "header", value_name = "K=V", value_parser = super::transform::parse_pair)]
    headers: Vec<(String, String)>,
    /// The timestamp of every record (ms since the epoch); default: now.
    #[arg(long, value_name = "MS")]
    timestamp: Option<i64>,
    /// Compress each batch: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: Compression,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let client = args.client.connect().await?;
    let result = produce(
        &args,
        Producer::new(
            client.clone(),
            ProducerConfig {
                compression: args.compression,
                ..ProducerConfig::default()
            },
        ),
    )
    .await;
    let result = match result {
        Err(Failure::Client(e)) => {
            Err(explain_unknown_topic(e, &Admin::new(client.clone()), &args.topic).await)
        }
        Err(Failure::Other(e)) => Err(e),
        Ok(summary) => {
            println!("{summary}");
            Ok(())
        }
    };
    client.close().await;
    result
}

/// A produce that stopped: the broker's refusal (which may deserve a hint),
/// or anything else.
enum Failure {
    Client(quiver_client::ClientError),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

/// Reads standard input to the end, sending each line; returns the
/// summary line.
async fn produce(args: &ProduceArgs, producer: Producer) -> Result<String, Failure> {
    let mut input = BufReader::new(tokio::io::stdin());
    let mut acks = Acks::default();
    let mut skipped = 0u64;
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = (&mut input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
            .context("cannot read standard input")?;
        if read == 0 {
            break;
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_LINE_BYTES {
            return Err(acks
                .stop(
                    &producer,
                    format!("line {number} is longer than {MAX_LINE_BYTES} bytes"),
                )
                .await);
        }
        if line.is_empty() {
            skipped += 1;
            continue;
        }
        let record = match to_record(args, &line) {
            Ok(record) => record,
            Err(reason) => {
                return Err(acks
                    .stop(&producer, format!("line {number}: {reason}"))
                    .await);
            }
        };
        let ack = producer.enqueue(record).await.map_err(Failure::Client)?;
        acks.push(ack).await?;
    }
    let acknowledged = acks.finish(&producer).await?;
    let records = match acknowledged {
        1 => "1 record acknowledged".to_owned(),
        n => format!("{n} records acknowledged"),
    };
    Ok(match skipped {
        0 => records,
        1 => format!("{records} (1 empty line skipped)"),
        n => format!("{records} ({n} empty lines skipped)"),
    })
}

/// One input line (without its `\n`) as a record, or why it is not one.
fn to_record(args: &ProduceArgs, line: &[u8]) -> Result<ProducerRecord, String> {
    let (key, value): (Option<Vec<u8>>, &[u8]) = match (&args.key, &args.key_separator) {
        (Some(key), _) => (Some(key.clone().into_bytes()), line),
        (None, Some(sep)) => {
            let at = find(line, sep.as_bytes()).ok_or_else(|| {
                format!("no key separator {sep:?} (every line must be KEY{sep}VALUE; --key gives all lines one key)")
            })?;
            (Some(line[..at].to_vec()), &line[at + sep.len()..])
        }
        (None, None) => (None, line),
    };
    let is_null = |field: &[u8]| args.null_marker.as_deref().map(str::as_bytes) == Some(field);
    let mut record = ProducerRecord::new(&args.topic, Vec::new());
    record.value = if is_null(value) {
        None
    } else {
        Some(args.value_format.decode(value)?.into())
    };
    if let Some(key) = key.filter(|key| !is_null(key)) {
        record = record.key(key);
    }
    if let Some(partition) = args.partition {
        record = record.partition(partition);
    }
    for (key, value) in &args.headers {
        record = record.header(key.clone(), value.clone().into_bytes());
    }
    if let Some(timestamp) = args.timestamp {
        record = record.timestamp(timestamp);
    }
    Ok(record)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The acknowledgements not yet awaited, and how many came back.
#[derive(Default)]
struct Acks {
    pending: VecDeque<DeliveryFuture>,
    acknowledged: u64,
}

impl Acks {
    async fn push(&mut self, ack: DeliveryFuture) -> Result<(), Failure> {
        self.pending.push_back(ack);
        if self.pending.len() >= MAX_PENDING_ACKS
            && let Some(ack) = self.pending.pop_front()
        {
            ack.await.map_err(Failure::Client)?;
            self.acknowledged += 1;
        }
        Ok(())
    }

    /// Sends what is buffered and waits for every acknowledgement.
    async fn finish(mut self, producer: &Producer) -> Result<u64, Failure> {
        producer.flush().await.map_err(Failure::Client)?;
        while let Some(ack) = self.pending.pop_front() {
            ack.await.map_err(Failure::Client)?;
            self.acknowledged += 1;
        }
        Ok(self.acknowledged)
    }

    /// Input that cannot be sent: finishes what was sent before it, and
    /// the error saying both.
    async fn stop(self, producer: &Producer, reason: String) -> Failure {
        match self.finish(producer).await {
            Ok(n) => Failure::Other(anyhow::anyhow!(
                "{reason}; the {n} record{} before it {} acknowledged",
                if n == 1 { "" } else { "s" },
                if n == 1 { "was" } else { "were" }
            )),
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn separators_are_found_as_byte_strings() {
        assert_eq!(find(b"user-1|{}", b"|"), Some(6));
        assert_eq!(find(b"a::b::c", b"::"), Some(1));
        assert_eq!(find(b"\xff\xfe:x", b":"), Some(2));
        assert_eq!(find(b"no separator", b"|"), None);
        assert_eq!(find(b"x", b""), None);
    }
}
