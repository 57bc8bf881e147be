//! `quiver consume TOPIC`: print records, one per line.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use quiver_client::{
    Admin, Client, ClientError, Consumer, ConsumerConfig, FetchModule, GroupSettings, Offset,
    PartitionDescription, TopicPartition,
};

use super::ClientArgs;
use super::format::RecordFormat;
use super::text::{ValueFormat, explain_unknown_topic};

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
    /// Where to start: earliest, latest, an offset, -N (N before the end of
    /// each partition), @MS (a timestamp in ms since the epoch) or an
    /// RFC 3339 time (e.g. 2026-11-25T10:00:00Z): the first record at or
    /// after it. An offset past a partition's end skips that partition.
    #[arg(long, default_value = "earliest", value_parser = parse_from, allow_hyphen_values = true)]
    from: StartAt,
    /// Stop after this many records.
    #[arg(long)]
    count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end; across
    /// broker restarts too (reconnecting with backoff, forever).
    #[arg(long)]
    follow: bool,
    /// Output format: `json` (one object per record), or a template with
    /// %t topic, %p partition, %o offset, %k key, %v value, %T timestamp
    /// (ms), %h headers, %% a percent sign, and the escapes \t \n \\.
    #[arg(long, default_value = "%v")]
    format: String,
    /// How values are printed (hex and base64 for values that are not text).
    #[arg(long, value_enum, default_value = "text")]
    value_format: ValueFormat,
    /// What a template prints for a null key or value (a tombstone); by
    /// default nothing, as kcat. `json` always prints `null`.
    #[arg(long, value_name = "TEXT", default_value = "")]
    null_marker: String,
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

/// Where `--from` starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartAt {
    /// The same rule for every partition.
    Each(Offset),
    /// This many records before each partition's end.
    BeforeEnd(u64),
}

fn parse_from(s: &str) -> Result<StartAt, String> {
    let bad =
        || format!("expected earliest, latest, an offset, -N, @MS or an RFC 3339 time, not {s:?}");
    match s {
        "earliest" => Ok(StartAt::Each(Offset::Earliest)),
        "latest" => Ok(StartAt::Each(Offset::Latest)),
        _ if s.starts_with('-') => s[1..].parse().map(StartAt::BeforeEnd).map_err(|_| bad()),
        _ if s.starts_with('@') => s[1..]
            .parse()
            .map(|ms| StartAt::Each(Offset::Timestamp(ms)))
            .map_err(|_| bad()),
        other => other
            .parse()
            .map(Offset::At)
            .or_else(|_| parse_time(other).map(Offset::Timestamp))
            .map(StartAt::Each)
            .map_err(|_| bad()),
    }
}

/// Where one partition starts, or `Ok(None)` when `--from` is past its end;
/// an offset before its log start is an error naming the partition.
fn start_for(
    from: StartAt,
    topic: &str,
    p: &PartitionDescription,
) -> Result<Option<Offset>, String> {
    let range = || {
        format!(
            "partition {} of {topic} holds offsets {}..{}",
            p.partition, p.log_start_offset, p.high_watermark
        )
    };
    match from {
        StartAt::BeforeEnd(n) => Ok(Some(Offset::At(
            p.high_watermark.saturating_sub(n).max(p.log_start_offset),
        ))),
        StartAt::Each(Offset::At(offset)) if offset < p.log_start_offset => Err(format!(
            "{}; --from {offset} is before its first stored record",
            range()
        )),
        StartAt::Each(Offset::At(offset)) if offset > p.high_watermark => Ok(None),
        StartAt::Each(offset) => Ok(Some(offset)),
    }
}

/// An RFC 3339 time as ms since the epoch.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let time = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    i64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|e| e.to_string())
}

pub(crate) async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let format = RecordFormat::parse(&args.format)?;
    let client = args.client.connect().await?;
    let admin = Admin::new(client.clone());
    let result = match admin.describe_topic(&args.topic).await {
        Err(e) => Err(explain_unknown_topic(e, &admin, &args.topic).await),
        Ok(description) => {
            let out = Output {
                format,
                values: args.value_format,
                null: args.null_marker.clone(),
            };
            match args.group.clone() {
                Some(group) => run_in_group(&args, client.clone(), &group, &out).await,
                None => run_assigned(&args, client.clone(), &description, &out).await,
            }
        }
    };
    // Close explicitly, so the broker frees the connection at once.
    client.close().await;
    result
}

/// How records are printed.
struct Output {
    format: RecordFormat,
    values: ValueFormat,
    /// `--null-marker`.
    null: String,
}

/// Assigned mode: every partition (or `--partition`), from `--from`.
async fn run_assigned(
    args: &ConsumeArgs,
    client: Client,
    description: &quiver_client::TopicDescription,
    out: &Output,
) -> anyhow::Result<()> {
    let chosen: Vec<&PartitionDescription> = match args.partition {
        Some(p) if p as usize >= description.partitions.len() => bail!(
            "topic {} has {} partitions; there is no partition {p}",
            args.topic,
            description.partitions.len()
        ),
        Some(p) => vec![&description.partitions[p as usize]],
        None => description.partitions.iter().collect(),
    };
    let mut starts = Vec::new();
    for p in &chosen {
        match start_for(args.from, &args.topic, p) {
            Err(reason) => bail!(reason),
            Ok(Some(offset)) => starts.push((p.partition, offset)),
            // One partition asked for by name: reading nothing is an error.
            Ok(None) if args.partition.is_some() => bail!(
                "partition {} of {} holds offsets {}..{}; --from {} is past its end",
                p.partition,
                args.topic,
                p.log_start_offset,
                p.high_watermark,
                from_text(args.from)
            ),
            Ok(None) => eprintln!(
                "note: partition {} of {} ends at offset {}: nothing from {} there",
                p.partition,
                args.topic,
                p.high_watermark,
                from_text(args.from)
            ),
        }
    }
    // Without --follow, stop at the high watermarks seen now.
    let mut end: HashMap<u32, u64> = chosen
        .iter()
        .filter(|p| starts.iter().any(|(s, _)| *s == p.partition))
        .map(|p| (p.partition, p.high_watermark))
        .collect();
    let config = ConsumerConfig {
        module: args.fetch_module(),
        reconnect_timeout: args.reconnect_timeout(),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config);
    consumer.assign(
        starts
            .iter()
            .map(|&(p, _)| TopicPartition::new(&args.topic, p)),
    );
    for &(p, offset) in &starts {
        consumer.seek(&TopicPartition::new(&args.topic, p), offset)?;
    }
    if starts.is_empty() {
        return Ok(());
    }

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
        let mut stdout = stdout.lock();
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
            if !print_line(
                &mut stdout,
                &out.format.render(record, out.values, &out.null),
            )? {
                return Ok(());
            }
            printed += 1;
        }
        if !flush(&mut stdout)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes one line; `Ok(false)` when the reader has gone (a closed pipe,
/// as with `| head`): the consume then stops quietly, as Unix tools do.
fn print_line(out: &mut impl Write, line: &str) -> anyhow::Result<bool> {
    gone_is_false(writeln!(out, "{line}"))
}

/// Flushes standard output; `Ok(false)` when the reader has gone.
fn flush(out: &mut impl Write) -> anyhow::Result<bool> {
    gone_is_false(out.flush())
}

fn gone_is_false(written: std::io::Result<()>) -> anyhow::Result<bool> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// `--from` as the user wrote it, for messages.
fn from_text(from: StartAt) -> String {
    match from {
        StartAt::Each(Offset::At(offset)) => offset.to_string(),
        StartAt::Each(other) => format!("{other:?}"),
        StartAt::BeforeEnd(n) => format!("-{n}"),
    }
}

/// Group mode: print what the group assigns, commit what was printed
/// after every poll and on exit (SIGINT, SIGTERM, `--count`, or the end).
///
/// Across a broker restart the member joins again and resumes from the
/// committed offsets; a commit the restart interrupted is retried after the
/// next poll, and records this process printed already are not printed
/// again.
async fn run_in_group(
    args: &ConsumeArgs,
    client: Client,
    group: &str,
    out: &Output,
) -> anyhow::Result<()> {
    let StartAt::Each(start) = args.from else {
        bail!(
            "with --group, --from is where partitions without a committed offset start: earliest, latest, an offset or a time, not -N"
        );
    };
    let config = ConsumerConfig {
        start,
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
    let mut reader_gone = false;
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
        let mut stdout = stdout.lock();
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
            if !print_line(
                &mut stdout,
                &out.format.render(record, out.values, &out.null),
            )? {
                reader_gone = true;
                break;
            }
            printed_up_to.insert(tp, record.offset + 1);
            printed += 1;
            uncommitted = true;
        }
        reader_gone |= !flush(&mut stdout)?;
        drop(stdout);
        if reader_gone {
            // What was written is committed below; the rest is read again
            // by the group's next member.
            break;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_offsets_relative_offsets_and_times() {
        assert_eq!(parse_from("17"), Ok(StartAt::Each(Offset::At(17))));
        assert_eq!(parse_from("-5"), Ok(StartAt::BeforeEnd(5)));
        assert_eq!(
            parse_from("@1764064800000"),
            Ok(StartAt::Each(Offset::Timestamp(1_764_064_800_000)))
        );
        assert_eq!(
            parse_from("2026-11-25T10:00:00Z"),
            Ok(StartAt::Each(Offset::Timestamp(1_795_600_800_000)))
        );
        assert_eq!(
            parse_from("2026-11-25T11:00:00+01:00"),
            Ok(StartAt::Each(Offset::Timestamp(1_795_600_800_000)))
        );
        for bad in ["soon", "-x", "@", "@soon"] {
            assert!(parse_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn starts_are_clamped_skipped_or_refused_per_partition() {
        let p = PartitionDescription {
            partition: 1,
            log_start_offset: 10,
            high_watermark: 40,
            size_bytes: 0,
            first_timestamp: None,
            last_timestamp: None,
        };
        let start = |from| start_for(from, "click", &p);
        assert_eq!(start(StartAt::BeforeEnd(5)), Ok(Some(Offset::At(35))));
        assert_eq!(start(StartAt::BeforeEnd(500)), Ok(Some(Offset::At(10))));
        assert_eq!(
            start(StartAt::Each(Offset::At(40))),
            Ok(Some(Offset::At(40)))
        );
        assert_eq!(start(StartAt::Each(Offset::At(41))), Ok(None));
        assert_eq!(
            start(StartAt::Each(Offset::At(3))),
            Err("partition 1 of click holds offsets 10..40; --from 3 is before its first stored record".into())
        );
    }
}
