//! `quiver bench transform`: records per second through a deployed
//! transform, end to end from committed input to committed output.
//!
//! The bench fills a fresh input topic with JSON click events (acknowledged,
//! so committed), uploads the module, deploys it from the earliest offset
//! and times from the moment the deploy returns (the module is compiled and
//! initialised by then) until every input partition's committed position
//! reaches its end: each position commits in the same transaction as the
//! outputs it produced. The topics and the transform are deleted afterwards.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use quiver_client::{Admin, Producer, ProducerConfig, ProducerRecord, TopicConfig};
use quiver_proto::api::transforms::{
    DeployTransformRequest, OnError, RunState, StartFrom, TransformAction,
};

use super::ClientArgs;
use super::procfs::CpuClock;

/// How often the bench asks for the transform's progress.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long the bench waits for a transform that makes no progress.
const STALL_TIMEOUT: Duration = Duration::from_mins(1);

#[derive(Debug, Args)]
pub(crate) struct TransformBench {
    /// The module to run (a .wasm component).
    #[arg(long)]
    module_file: PathBuf,
    /// `init` parameters `k=v`, repeatable (e.g. `--param field=action
    /// --param equals=click` for the filter).
    #[arg(long = "param", value_name = "K=V")]
    params: Vec<String>,
    /// Input records.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Bytes of each input record's value (a JSON click event, padded).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Partitions of the input topic.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
    /// Distinct pages in the events (the click-aggregate group count).
    #[arg(long, default_value_t = 100)]
    pages: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    /// The broker's process id (a broker on this machine): its CPU time
    /// while the transform runs is reported per input record.
    #[arg(long)]
    broker_pid: Option<u32>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: TransformBench) -> anyhow::Result<()> {
    let module = std::fs::read(&args.module_file)
        .with_context(|| format!("cannot read {}", args.module_file.display()))?;
    let params = args
        .params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--param {p:?}: expected K=V"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.records == 0 || args.partitions == 0 {
        bail!("--records and --partitions must be at least 1");
    }
    // Checked before anything is created, so that a wrong --broker-pid
    // leaves nothing behind.
    CpuClock::start(args.broker_pid)?;
    let client = args.client.connect().await?;
    let admin = Admin::new(client.clone());
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let name = format!("bench-transform-{run_id}");
    let input = format!("{name}-in");
    admin
        .create_topic(&input, args.partitions, TopicConfig::default())
        .await?;
    fill(&client, &args, &input).await?;
    admin.upload_module(&name, Bytes::from(module)).await?;
    admin
        .deploy_transform(DeployTransformRequest {
            name: name.clone(),
            module: name.clone(),
            input: input.clone(),
            default_output: None,
            outputs: Vec::new(),
            params,
            from: StartFrom::Earliest,
            on_error: OnError::Stop,
            deadline_ms: None,
            memory_bytes: None,
        })
        .await?;
    let cpu = CpuClock::start(args.broker_pid);
    let started = Instant::now();
    let result = wait_caught_up(&admin, &name, args.records).await;
    let seconds = started.elapsed().as_secs_f64();
    // Failures wait until the cleanup below is done.
    let used = cpu.and_then(|cpu| cpu.used());
    let records_out = result.as_ref().map_or(0, |&out| out);
    admin
        .control_transform(&name, TransformAction::Delete)
        .await?;
    for topic in [input, format!("{name}-out")] {
        admin.delete_topic(&topic).await?;
    }
    admin.delete_module(&name).await?;
    client.close().await;
    result?;
    let broker_cpu = used?.broker;
    let rate = args.records as f64 / seconds;
    let broker_us_per_record = broker_cpu.map(|s| s * 1e6 / args.records as f64);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "transform",
                "module": args.module_file.display().to_string(),
                "records": args.records,
                "record_size": args.record_size,
                "partitions": args.partitions,
                "records_out": records_out,
                "seconds": seconds,
                "records_per_sec": rate,
                "broker_cpu_s": broker_cpu,
                "broker_cpu_us_per_record": broker_us_per_record,
            })
        );
    } else {
        println!(
            "transform {}: {} records of {} B through in {seconds:.2} s: {rate:.0} records/s ({records_out} records out)",
            args.module_file.display(),
            args.records,
            args.record_size,
        );
        if let (Some(seconds), Some(per_record)) = (broker_cpu, broker_us_per_record) {
            println!("  broker CPU {seconds:.2} s ({per_record:.2} us/input record)");
        }
    }
    Ok(())
}

/// Produces the click events, keyed by user id, and waits for every ack.
async fn fill(
    client: &quiver_client::Client,
    args: &TransformBench,
    topic: &str,
) -> anyhow::Result<()> {
    let producer = Producer::new(client.clone(), ProducerConfig::default());
    let base_ts: i64 = 1_700_000_000_000;
    let mut pending = Vec::new();
    for i in 0..args.records {
        let user = i % 10_007;
        let action = if i % 2 == 0 { "click" } else { "upload" };
        let mut value = format!(
            r#"{{"user_id":{user},"page":"/p{}","action":"{action}","ts":{},"pad":""#,
            i % args.pages.max(1),
            base_ts + i64::try_from(i).unwrap_or(i64::MAX),
        );
        let pad = args.record_size.saturating_sub(value.len() + 2);
        value.extend(std::iter::repeat_n('x', pad));
        value.push_str("\"}");
        let record = ProducerRecord::new(topic, value).key(user.to_string());
        pending.push(producer.enqueue(record).await?);
        if pending.len() >= 100_000 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    producer.flush().await?;
    for ack in pending {
        ack.await?;
    }
    Ok(())
}

/// Polls the transform until its positions cover `records`; returns the
/// records it wrote.
async fn wait_caught_up(admin: &Admin, name: &str, records: u64) -> anyhow::Result<u64> {
    let mut last_progress = (Instant::now(), 0);
    loop {
        let status = admin.transform_status(name).await?;
        if let RunState::Failed { error } = &status.state {
            bail!("transform failed: {error}");
        }
        let done: u64 = status.partitions.iter().map(|p| p.position).sum();
        if done >= records {
            return Ok(status.records_out);
        }
        if done > last_progress.1 {
            last_progress = (Instant::now(), done);
        } else if last_progress.0.elapsed() > STALL_TIMEOUT {
            bail!("transform stalled at {done} of {records} records");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
