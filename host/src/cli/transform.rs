//! `quiver transform deploy|list|status|pause|resume|upgrade|alter|seek|delete|logs|state`:
//! transforms the broker runs on an input topic.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use quiver_client::Admin;
use quiver_proto::api::transforms::{
    DeployTransformRequest, LogLevel, OnError, RunState, StartFrom, TransformAction,
    TransformLogsRequest, TransformPartition, TransformStatus,
};
use quiver_proto::limits::{MAX_LOG_LINES_PER_READ, MAX_STATE_ENTRIES_PER_READ};

use super::ClientArgs;

/// How often `logs --follow` asks for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Subcommand)]
pub(crate) enum TransformCommand {
    /// Deploy a stored module as a transform of an input topic.
    Deploy(DeployArgs),
    /// List transforms.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a transform's state, positions, lag, counters and last error.
    Status(NameArgs),
    /// Stop calling the module (positions and state stay).
    Pause(NameArgs),
    /// Run again after a pause or a failure (retries the failed batch).
    Resume(NameArgs),
    /// Run another module from the next batch on, keeping positions and state.
    Upgrade {
        /// Transform name.
        name: String,
        /// The module to run now.
        #[arg(long)]
        module: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Change what a failed call does (a failed transform stays failed until
    /// `resume`).
    Alter {
        /// Transform name.
        name: String,
        /// The new policy.
        #[arg(long, value_enum)]
        on_error: OnErrorArg,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Move one input partition's position, keeping state (a failed
    /// transform stays failed until `resume`).
    Seek {
        /// Transform name.
        name: String,
        /// The input partition.
        #[arg(long)]
        partition: u32,
        /// The next offset to process (log start to high watermark).
        #[arg(long)]
        offset: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a transform and delete its positions and state.
    Delete(NameArgs),
    /// Print a transform's recent log lines (the broker keeps the last
    /// 1,000, in memory).
    Logs {
        /// Transform name.
        name: String,
        /// Keep printing new lines.
        #[arg(long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u32>,
        /// Only lines written since then: a duration back from now (`90s`,
        /// `10m`, `2h`, `1d`) or an RFC 3339 time (`2026-11-28T10:00:00Z`).
        #[arg(long, value_name = "WHEN", value_parser = parse_since)]
        since: Option<i64>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a transform's state store: one key's value, or every entry.
    State {
        /// Transform name.
        name: String,
        /// Only this key (as text); if no key is exactly this, the entries
        /// whose keys end in `/KEY` (a window's group value, say).
        key: Option<String>,
        /// Only keys starting with this text.
        #[arg(long, conflicts_with = "key")]
        prefix: Option<String>,
        /// Entries at most.
        #[arg(long, default_value_t = 1_000)]
        limit: u32,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct NameArgs {
    /// Transform name.
    name: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// Transform name.
    name: String,
    /// The stored module to run.
    #[arg(long)]
    module: String,
    /// The input topic.
    #[arg(long)]
    input: String,
    /// An output: `NAME=TOPIC` maps a name the module writes to (the topic
    /// must exist); a bare `TOPIC` sets the default output (else NAME-out,
    /// created if missing). Repeatable.
    #[arg(long = "output", value_name = "NAME=TOPIC")]
    outputs: Vec<String>,
    /// An `init` parameter `k=v`. Repeatable.
    #[arg(long = "param", value_name = "K=V", value_parser = parse_pair)]
    params: Vec<(String, String)>,
    /// Where to start in each input partition: earliest, latest or an offset.
    #[arg(long, default_value = "earliest", value_parser = parse_from)]
    from: StartFrom,
    /// What a failed call does.
    #[arg(long, value_enum, default_value_t = OnErrorArg::Stop)]
    on_error: OnErrorArg,
    /// Per-call deadline in ms (default: the broker's, 5000).
    #[arg(long)]
    deadline_ms: Option<u32>,
    /// Guest memory cap in MiB (default: the broker's, 64).
    #[arg(long)]
    memory_mb: Option<u64>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OnErrorArg {
    /// Stop with the error in status; `resume` retries.
    Stop,
    /// Skip the failed batch.
    Skip,
    /// Write the failed batch to NAME-dlq with the error in a header.
    DeadLetter,
}

impl OnErrorArg {
    fn policy(self) -> OnError {
        match self {
            Self::Stop => OnError::Stop,
            Self::Skip => OnError::Skip,
            Self::DeadLetter => OnError::DeadLetter,
        }
    }
}

pub(crate) fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected K=V, got {text:?}"))
}

fn parse_from(text: &str) -> Result<StartFrom, String> {
    match text {
        "earliest" => Ok(StartFrom::Earliest),
        "latest" => Ok(StartFrom::Latest),
        offset => offset
            .parse()
            .map(StartFrom::Offset)
            .map_err(|_| format!("expected earliest, latest or an offset, got {text:?}")),
    }
}

impl TransformCommand {
    fn client_args(&self) -> &ClientArgs {
        match self {
            Self::Deploy(args) => &args.client,
            Self::Status(args) | Self::Pause(args) | Self::Resume(args) | Self::Delete(args) => {
                &args.client
            }
            Self::List { client }
            | Self::Upgrade { client, .. }
            | Self::Alter { client, .. }
            | Self::Seek { client, .. }
            | Self::Logs { client, .. }
            | Self::State { client, .. } => client,
        }
    }
}

pub(crate) async fn run(command: TransformCommand) -> anyhow::Result<()> {
    let request = match &command {
        TransformCommand::Deploy(args) => Some(deploy_request(args)?),
        _ => None,
    };
    let client = command.client_args().connect().await?;
    let admin = Admin::new(client.clone());
    let result = async {
        match command {
            TransformCommand::Deploy(_) => {
                let request = request.context("deploy request")?;
                let status = admin.deploy_transform(request).await?;
                println!(
                    "deployed transform {} (module {} version {}) from {} to {}",
                    status.name,
                    status.module,
                    status.module_version,
                    status.input,
                    status.default_output
                );
            }
            TransformCommand::List { .. } => print_list(&admin).await?,
            TransformCommand::Status(args) => {
                print_status(&admin.transform_status(&args.name).await?);
            }
            TransformCommand::Pause(args) => {
                admin
                    .control_transform(&args.name, TransformAction::Pause)
                    .await?;
                println!("paused transform {}", args.name);
            }
            TransformCommand::Resume(args) => {
                admin
                    .control_transform(&args.name, TransformAction::Resume)
                    .await?;
                println!("resumed transform {}", args.name);
            }
            TransformCommand::Upgrade { name, module, .. } => {
                admin
                    .control_transform(
                        &name,
                        TransformAction::Upgrade {
                            module: module.clone(),
                        },
                    )
                    .await?;
                println!("transform {name} now runs module {module}");
            }
            TransformCommand::Alter { name, on_error, .. } => {
                alter(&admin, &name, on_error.policy()).await?;
            }
            TransformCommand::Seek {
                name,
                partition,
                offset,
                ..
            } => seek(&admin, &name, partition, offset).await?,
            TransformCommand::Delete(args) => {
                admin
                    .control_transform(&args.name, TransformAction::Delete)
                    .await?;
                println!("deleted transform {}", args.name);
            }
            TransformCommand::Logs {
                name,
                follow,
                tail,
                since,
                ..
            } => {
                print_logs(&admin, &name, follow, tail, since).await?;
            }
            TransformCommand::State {
                name,
                key,
                prefix,
                limit,
                ..
            } => {
                print_state(&admin, &name, key.as_deref(), prefix.as_deref(), limit).await?;
            }
        }
        Ok(())
    }
    .await;
    client.close().await;
    result
}

async fn alter(admin: &Admin, name: &str, on_error: OnError) -> anyhow::Result<()> {
    admin.alter_transform(name, on_error).await?;
    let dead_letters = if on_error == OnError::DeadLetter {
        format!(" (failed records go to {name}-dlq)")
    } else {
        String::new()
    };
    println!(
        "transform {name}: on-error is now {on_error}{dead_letters}{}",
        still_stopped(admin, name).await?
    );
    Ok(())
}

async fn seek(admin: &Admin, name: &str, partition: u32, offset: u64) -> anyhow::Result<()> {
    let before = admin.transform_status(name).await?;
    admin.seek_transform(name, partition, offset).await?;
    let from = before
        .partitions
        .iter()
        .find(|p| p.partition == partition)
        .map_or(0, |p| p.position);
    println!(
        "transform {name}: partition {partition} moved from offset {from} to {offset}{}",
        still_stopped(admin, name).await?
    );
    Ok(())
}

/// What to add after an alter or a seek when the transform does not run.
async fn still_stopped(admin: &Admin, name: &str) -> anyhow::Result<String> {
    Ok(match admin.transform_status(name).await?.state {
        RunState::Running => String::new(),
        RunState::Paused => {
            format!("; it stays paused until `quiver transform resume {name}`")
        }
        RunState::Failed { .. } => {
            format!("; it stays failed until `quiver transform resume {name}`")
        }
    })
}

async fn print_list(admin: &Admin) -> anyhow::Result<()> {
    for status in admin.list_transforms().await? {
        let lag: u64 = status.partitions.iter().map(TransformPartition::lag).sum();
        println!(
            "{}\tmodule={}@{}\tinput={}\toutput={}\tstate={}\tlag={lag}",
            status.name,
            status.module,
            status.module_version,
            status.input,
            status.default_output,
            run_state(&status.state)
        );
    }
    Ok(())
}

/// Prints the lines `tail` and `since` select, page after page, then (with
/// `follow`) new ones as they come.
async fn print_logs(
    admin: &Admin,
    name: &str,
    follow: bool,
    tail: Option<u32>,
    since_ms: Option<i64>,
) -> anyhow::Result<()> {
    let mut after_seq = 0;
    // A tail is counted once, on the first page; later pages go on after it.
    let mut tail = tail;
    let mut left = tail.map_or(u64::MAX, u64::from);
    loop {
        let page = admin
            .transform_logs_page(&TransformLogsRequest {
                name: name.to_owned(),
                after_seq,
                max_lines: u32::try_from(left).unwrap_or(MAX_LOG_LINES_PER_READ),
                since_ms,
                tail: tail.take(),
            })
            .await?;
        for line in &page.lines {
            after_seq = line.seq;
            println!(
                "{} {} [{}] {}",
                super::text::rfc3339_ms(line.at_ms),
                level_name(line.level),
                line.source,
                line.message
            );
        }
        left = left.saturating_sub(page.lines.len() as u64);
        if page.more && left > 0 {
            continue;
        }
        if !follow {
            return Ok(());
        }
        left = u64::MAX;
        tokio::time::sleep(FOLLOW_INTERVAL).await;
    }
}

/// `--since`: a duration back from now (a number and `s`, `m`, `h` or `d`)
/// or an RFC 3339 time, as ms since the epoch.
fn parse_since(text: &str) -> Result<i64, String> {
    if let Ok(time) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return i64::try_from(time.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| format!("{text:?} is out of range"));
    }
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} is neither a duration (90s, 10m, 2h, 1d) nor an RFC 3339 time"
            ));
        }
    };
    let back = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .ok_or_else(|| format!("{text:?}: the number is missing or too large"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Ok(now.saturating_sub(back))
}

async fn print_state(
    admin: &Admin,
    name: &str,
    key: Option<&str>,
    prefix: Option<&str>,
    limit: u32,
) -> anyhow::Result<()> {
    let Some(key) = key else {
        let prefix = prefix.unwrap_or_default();
        for (key, value) in admin
            .transform_state(name, prefix.as_bytes(), limit)
            .await?
        {
            println!("{}\t{}", show_bytes(&key), show_value(&value));
        }
        return Ok(());
    };
    let entries = admin.transform_state(name, key.as_bytes(), 1).await?;
    if let Some((_, value)) = entries.iter().find(|(k, _)| *k == key.as_bytes()) {
        println!("{}", show_value(value));
        return Ok(());
    }
    // No key is exactly KEY: the keys that end in `/KEY`, such as the
    // windows of group `KEY` under `.../window/<start>/KEY`.
    let suffix = format!("/{key}");
    let all = admin
        .transform_state(name, b"", MAX_STATE_ENTRIES_PER_READ)
        .await?;
    let found: Vec<_> = all
        .iter()
        .filter(|(k, _)| k.ends_with(suffix.as_bytes()))
        .take(limit as usize)
        .collect();
    if found.is_empty() {
        bail!("transform {name} has no state under {key:?} (nor keys ending in {suffix:?})");
    }
    for (key, value) in found {
        println!("{}\t{}", show_bytes(key), show_value(value));
    }
    Ok(())
}

/// A value as JSON when it is JSON (on one line), else as [`show_bytes`].
fn show_value(value: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(json) => json.to_string(),
        Err(_) => show_bytes(value),
    }
}

/// UTF-8 text as is, with control characters escaped; other bytes escaped
/// as `\xNN`.
fn show_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text
            .chars()
            .map(|c| {
                if c.is_ascii_control() || c == '\\' {
                    // `\t`, `\n`, `\\`, `\x00`: as the bytes would print.
                    (c as u8).escape_ascii().to_string()
                } else if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
        Err(_) => bytes.escape_ascii().to_string(),
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "TRACE",
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warn => "WARN",
        LogLevel::Error => "ERROR",
    }
}

fn deploy_request(args: &DeployArgs) -> anyhow::Result<DeployTransformRequest> {
    let mut default_output = None;
    let mut outputs = Vec::new();
    for output in &args.outputs {
        match output.split_once('=') {
            Some((name, topic)) if !name.is_empty() && !topic.is_empty() => {
                outputs.push((name.to_owned(), topic.to_owned()));
            }
            Some(_) => bail!("--output {output:?}: expected NAME=TOPIC or TOPIC"),
            None if default_output.is_some() => bail!("--output: only one default output topic"),
            None => default_output = Some(output.clone()),
        }
    }
    Ok(DeployTransformRequest {
        name: args.name.clone(),
        module: args.module.clone(),
        input: args.input.clone(),
        default_output,
        outputs,
        params: args.params.clone(),
        from: args.from,
        on_error: args.on_error.policy(),
        deadline_ms: args.deadline_ms,
        memory_bytes: args.memory_mb.map(|mb| mb.saturating_mul(1024 * 1024)),
    })
}

fn run_state(state: &RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Paused => "paused",
        RunState::Failed { .. } => "failed",
    }
}

fn print_status(status: &TransformStatus) {
    println!("transform: {}", status.name);
    println!(
        "module:    {} version {}",
        status.module, status.module_version
    );
    println!("input:     {}", status.input);
    println!("output:    {}", status.default_output);
    for (name, topic) in &status.outputs {
        println!("output:    {name} -> {topic}");
    }
    for (k, v) in &status.params {
        println!("param:     {k}={v}");
    }
    println!("on-error:  {}", status.on_error);
    println!(
        "limits:    deadline {} ms, memory {} MiB",
        status.deadline_ms,
        status.memory_bytes / (1024 * 1024)
    );
    match &status.state {
        RunState::Failed { error } => println!("state:     failed: {error}"),
        other => println!("state:     {}", run_state(other)),
    }
    println!(
        "records:   in {} out {} errors {}",
        status.records_in, status.records_out, status.errors
    );
    if let Some(error) = &status.last_error {
        println!("last error: {error}");
    }
    println!("partition\tposition\thigh_watermark\tlag");
    for p in &status.partitions {
        let stopped = p
            .error
            .as_ref()
            .map_or_else(String::new, |e| format!("\tstopped: {e}"));
        println!(
            "{}\t{}\t{}\t{}{stopped}",
            p.partition,
            p.position,
            p.high_watermark,
            p.lag()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_duration_back_or_a_time() {
        assert_eq!(parse_since("2026-11-28T10:00:00Z"), Ok(1_795_860_000_000));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let ten_minutes_ago = parse_since("10m").expect("a duration");
        assert!((now - 600_000 - ten_minutes_ago).abs() < 60_000);
        assert!(parse_since("1d").expect("a day") < ten_minutes_ago);
        assert!(parse_since("10 minutes").is_err());
        assert!(parse_since("m").is_err());
        assert!(parse_since("99999999999999999d").is_err());
    }

    #[test]
    fn values_print_as_json_text_or_escaped_bytes() {
        assert_eq!(show_value(b"42"), "42");
        assert_eq!(show_value(br#"{ "count": 3 }"#), r#"{"count":3}"#);
        assert_eq!(show_value(b"plain text"), "plain text");
        assert_eq!(show_value(b"\x00\xff"), "\\x00\\xff");
        assert_eq!(
            show_bytes("partition/0/window/0000000000005//docs".as_bytes()),
            "partition/0/window/0000000000005//docs"
        );
        assert_eq!(show_bytes("caf\u{e9}\t\\".as_bytes()), "caf\u{e9}\\t\\\\");
        assert_eq!(show_bytes(b"c\x00\x00\x00\x01"), "c\\x00\\x00\\x00\\x01");
    }
}
