//! `quiver consume TOPIC`: print records, one per line.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use quiver_client::{
    Admin, Client, ClientError, Consumer, ConsumerConfig, ConsumerRecord, FetchModule,
    GroupSettings, Offset, TopicPartition,
};

use super::ClientArgs;

/// How long one poll waits for data.
const POLL_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Read only this partition (default: all).
    #[arg(long, conflicts_with = "group")]
    partition: Option<u32>,
    /// Consume as a member of this group: the group assigns partitions,
    /// each starts at the group's committed offset (--from applies where
    /// there is none), and what is printed is committed.
    #[arg(long)]
    group: Option<String>,
    /// Where to start: earliest, latest, an offset, or a time
    /// (RFC 3339, e.g. 2026-11-25T10:00:00Z: the first record at or after it).
    #[arg(long, default_value = "earliest", value_parser = parse_from)]
    from: Offset,
    /// Stop after this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end; across
    /// broker restarts too (reconnecting with backoff, forever).
    #[arg(long)]
    follow: bool,
    /// Output format: %t topic, %p partition, %o offset, %k key, %v value,
    /// %T timestamp (ms), %h headers, %% a percent sign.
    #[arg(long, default_value = "%v")]
    format: String,
    /// A stored module the broker runs on each record before sending it
    /// (e.g. the filter): only what it keeps is printed.
    #[arg(long)]
    module: Option<String>,
    /// An `init` parameter `k=v` of --module. Repeatable.
    #[arg(long = "param", value_name = "K=V", requires = "module", value_parser = super::transform::parse_pair)]
    params: Vec<(String, String)>,
    #[command(flatten)]
    client: ClientArgs,
}

impl ConsumeArgs {
    /// How long to keep retrying a lost broker: forever with `--follow`.
    fn reconnect_timeout(&self) -> Option<Duration> {
        if self.follow {
            None
        } else {
            ConsumerConfig::default().reconnect_timeout
        }
    }

    fn fetch_module(&self) -> Option<FetchModule> {
        self.module.as_ref().map(|name| FetchModule {
            name: name.clone(),
            params: self.params.clone(),
        })
    }
}

fn parse_from(s: &str) -> Result<Offset, String> {
    match s {
        "earliest" => Ok(Offset::Earliest),
        "latest" => Ok(Offset::Latest),
        other => other.parse().map(Offset::At).or_else(|_| {
            parse_time(other).map(Offset::Timestamp).map_err(|_| {
                format!("expected earliest, latest, an offset or an RFC 3339 time, not {other:?}")
            })
        }),
    }
}

/// An RFC 3339 time as ms since the epoch.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let time = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|e| e.to_string())
}

pub(crate) async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    check_format(&args.format)?;
    let client = args.client.connect().await?;
    let result = match args.group.clone() {
        Some(group) => run_in_group(&args, client.clone(), &group).await,
        None => run_assigned(&args, client.clone()).await,
    };
    // Close explicitly, so the broker frees the connection at once.
    client.close().await;
    result
}

/// Assigned mode: every partition (or `--partition`), from `--from`.
async fn run_assigned(args: &ConsumeArgs, client: Client) -> anyhow::Result<()> {
    let description = Admin::new(client.clone())
        .describe_topic(&args.topic)
        .await?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p as usize >= description.partitions.len() => bail!(
            "topic {} has {} partitions; there is no partition {p}",
            args.topic,
            description.partitions.len()
        ),
        Some(p) => vec![p],
        None => description.partitions.iter().map(|p| p.partition).collect(),
    };
    // Without --follow, stop at the high watermarks seen now.
    let mut end: HashMap<u32, u64> = description
        .partitions
        .iter()
        .filter(|p| partitions.contains(&p.partition))
        .map(|p| (p.partition, p.high_watermark))
        .collect();
    let config = ConsumerConfig {
        start: args.from,
        module: args.fetch_module(),
        reconnect_timeout: args.reconnect_timeout(),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    consumer.assign(
        partitions
            .iter()
            .map(|&p| TopicPartition::new(&args.topic, p)),
    );

    let stdout = std::io::stdout();
    let mut printed = 0u64;
    loop {
        if !args.follow {
            end.retain(|&p, &mut hw| {
                let position = consumer.position(&TopicPartition::new(&args.topic, p));
                position.is_none_or(|pos| pos < hw)
            });
            if end.is_empty() {
                break;
            }
        }
        if args.count.is_some_and(|n| printed >= n) {
            break;
        }
        let records = consumer.poll(POLL_WAIT).await?;
        let mut out = stdout.lock();
        for record in &records {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            if !args.follow
                && end
                    .get(&record.partition)
                    .is_none_or(|&hw| record.offset >= hw)
            {
                continue;
            }
            writeln!(out, "{}", render(&args.format, record)).context("cannot write to stdout")?;
            printed += 1;
        }
        out.flush().context("cannot write to stdout")?;
    }
    Ok(())
}

/// Group mode: print what the group assigns, commit what was printed
/// after every poll and on exit (SIGINT, SIGTERM, `--count`, or the end).
///
/// Across a broker restart the member joins again and resumes from the
/// committed offsets; a commit the restart interrupted is retried after the
/// next poll, and records this process printed already are not printed
/// again.
async fn run_in_group(args: &ConsumeArgs, client: Client, group: &str) -> anyhow::Result<()> {
    let config = ConsumerConfig {
        start: args.from,
        group: GroupSettings {
            // The CLI commits exactly what it printed instead.
            auto_commit_interval: None,
            client_id: "quiver-cli".into(),
            ..GroupSettings::default()
        },
        module: args.fetch_module(),
        reconnect_timeout: args.reconnect_timeout(),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    consumer.subscribe(group, &[args.topic.as_str()]).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let mut printed_up_to: BTreeMap<TopicPartition, u64> = BTreeMap::new();
    let mut printed = 0u64;
    let mut uncommitted = false;
    let stdout = std::io::stdout();
    loop {
        if args.count.is_some_and(|n| printed >= n) {
            break;
        }
        let records = tokio::select! {
            records = consumer.poll(POLL_WAIT) => records?,
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        };
        let mut out = stdout.lock();
        for record in &records {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            let tp = TopicPartition::new(&*record.topic, record.partition);
            if printed_up_to
                .get(&tp)
                .is_some_and(|&next| record.offset < next)
            {
                continue;
            }
            writeln!(out, "{}", render(&args.format, record)).context("cannot write to stdout")?;
            printed_up_to.insert(tp, record.offset + 1);
            printed += 1;
            uncommitted = true;
        }
        out.flush().context("cannot write to stdout")?;
        if uncommitted {
            match commit_printed(&mut consumer, &printed_up_to).await {
                Ok(()) => uncommitted = false,
                // The broker is away: the next poll reconnects, then retry.
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "commit deferred");
                }
                Err(e) => return Err(e).context("cannot commit the printed offsets"),
            }
        }
        let caught_up = consumer.assignment().iter().all(|tp| {
            matches!((consumer.position(tp), consumer.high_watermark(tp)), (Some(p), Some(hw)) if p >= hw)
        });
        if !args.follow && records.is_empty() && caught_up {
            break;
        }
    }
    commit_printed(&mut consumer, &printed_up_to)
        .await
        .context("cannot commit the printed offsets")?;
    consumer.close().await?;
    Ok(())
}

/// Commits the printed positions of the partitions this member still owns.
async fn commit_printed(
    consumer: &mut Consumer,
    printed_up_to: &BTreeMap<TopicPartition, u64>,
) -> Result<(), ClientError> {
    let owned = consumer.assignment();
    let positions: Vec<(TopicPartition, u64)> = printed_up_to
        .iter()
        .filter(|(tp, _)| owned.contains(tp))
        .map(|(tp, &offset)| (tp.clone(), offset))
        .collect();
    consumer.commit_offsets(positions).await
}

fn check_format(format: &str) -> anyhow::Result<()> {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('t' | 'p' | 'o' | 'k' | 'v' | 'T' | 'h' | '%') => {}
                Some(other) => bail!("unknown placeholder %{other} in --format"),
                None => bail!("--format ends with a lone %"),
            }
        }
    }
    Ok(())
}

fn render(format: &str, record: &ConsumerRecord) -> String {
    let mut out = String::with_capacity(format.len() + record.value.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push_str(&record.topic),
            Some('p') => out.push_str(&record.partition.to_string()),
            Some('o') => out.push_str(&record.offset.to_string()),
            Some('k') => {
                if let Some(key) = &record.key {
                    out.push_str(&String::from_utf8_lossy(key));
                }
            }
            Some('v') => out.push_str(&String::from_utf8_lossy(&record.value)),
            Some('T') => out.push_str(&record.timestamp.to_string()),
            Some('h') => {
                let headers: Vec<String> = record
                    .headers
                    .iter()
                    .map(|h| {
                        let value = h.value.as_deref().map(String::from_utf8_lossy);
                        format!("{}={}", h.key, value.unwrap_or_default())
                    })
                    .collect();
                out.push_str(&headers.join(","));
            }
            Some('%') => out.push('%'),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn render_fills_every_placeholder() {
        let record = ConsumerRecord {
            topic: "click".into(),
            partition: 2,
            offset: 41,
            timestamp: 1_700,
            key: Some(Bytes::from_static(b"u1")),
            value: Bytes::from_static(b"hi"),
            headers: vec![quiver_client::Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"x")),
            }],
        };
        assert_eq!(
            render("%t/%p@%o %k=%v %T %h 100%%", &record),
            "click/2@41 u1=hi 1700 h=x 100%"
        );
    }

    #[test]
    fn bad_formats_and_offsets_are_refused() {
        assert!(check_format("%v %q").is_err());
        assert!(check_format("%").is_err());
        assert!(check_format("%t %p %o %k %v %T %h %%").is_ok());
        assert_eq!(parse_from("17"), Ok(Offset::At(17)));
        assert_eq!(
            parse_from("2026-11-25T10:00:00Z"),
            Ok(Offset::Timestamp(1_795_600_800_000))
        );
        assert_eq!(
            parse_from("2026-11-25T11:00:00+01:00"),
            Ok(Offset::Timestamp(1_795_600_800_000))
        );
        assert!(parse_from("soon").is_err());
    }
}
