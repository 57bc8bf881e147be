//! `quiver bench produce|consume` (and `transform`, in `bench_transform.rs`): throughput and latency against a running
//! broker, with a progress bar on a terminal and `--json` for scripts.
//!
//! The topic is created when missing and deleted afterwards unless it
//! existed or `--keep` is given; `bench consume` first fills a topic that
//! holds fewer records than it is to read (untimed), so each bench runs on
//! its own.
//!
//! Produce latency is reported two ways: per produce request, from sending
//! it to its durable acknowledgement (every request; the figure comparable
//! to a broker benchmark that sends a batch and waits), and per record, from
//! `enqueue` to its acknowledgement, sampled every
//! [`LATENCY_SAMPLE_EVERY`]-th record (this adds the time a record waits in
//! the producer's buffer). Consume latency is the round trip of each fetch
//! that returned data.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use quiver_client::{
    Admin, ClientError, Compression, Consumer, ConsumerConfig, ErrorCode, Offset, Producer,
    ProducerConfig, ProducerRecord, RequestObserver, RequestStats, TopicConfig, TopicName,
    TopicPartition,
};
use tokio::sync::mpsc;

use super::ClientArgs;
use super::procfs::{CpuClock, CpuUsed};

/// One produce latency sample per this many records.
const LATENCY_SAMPLE_EVERY: u64 = 16;
/// Samples waiting for their acknowledgement, at most, per producer.
const MAX_PENDING_SAMPLES: usize = 65_536;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Produce records as fast as the broker acknowledges them.
    Produce(ProduceBench),
    /// Consume a topic from the start.
    Consume(ConsumeBench),
    /// Produce through the broker's Kafka listener (batches built ahead,
    /// as a batching Kafka producer sends them).
    KafkaProduce(super::bench_kafka::KafkaProduceBench),
    /// Consume a topic from the start through the broker's Kafka listener.
    KafkaConsume(super::bench_kafka::KafkaConsumeBench),
    /// Run a module as a deployed transform over a filled topic.
    Transform(super::bench_transform::TransformBench),
    /// Open and hold many connections; report how many the broker holds
    /// and (with --broker-pid) its memory per connection.
    Connections(super::bench_connections::ConnectionsBench),
}

#[derive(Debug, Args)]
pub(crate) struct Common {
    /// Topic to use; created if missing (and then deleted afterwards,
    /// unless --keep).
    #[arg(long, default_value = "bench")]
    pub(super) topic: String,
    /// Records in total.
    #[arg(long, default_value_t = 1_000_000)]
    pub(super) records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    pub(super) record_size: usize,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 4)]
    pub(super) partitions: u32,
    /// Keep a topic the bench created (e.g. to consume it later).
    #[arg(long)]
    pub(super) keep: bool,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub(super) json: bool,
    /// The broker's process id (a broker on this machine): its CPU time
    /// is reported beside this client's.
    #[arg(long)]
    pub(super) broker_pid: Option<u32>,
    #[command(flatten)]
    pub(super) client: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ProduceBench {
    #[command(flatten)]
    common: Common,
    /// Records per batch.
    #[arg(long, default_value_t = 1_000)]
    batch_size: u32,
    /// Concurrent producers, each on its own connection.
    #[arg(long, default_value_t = 4)]
    producers: u32,
    /// Producer linger in ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Bytes each producer may hold unacknowledged, in KiB (default: two
    /// batches per partition). Latency counts the wait for this room.
    #[arg(long)]
    buffer_kb: Option<usize>,
    /// Before producing, measure the disk under this directory (the
    /// broker's data directory's disk) as `dd bs=1M conv=fdatasync` would,
    /// and report the produce rate as a share of it.
    #[arg(long, value_name = "DIR")]
    disk_reference: Option<PathBuf>,
    /// MiB the disk reference writes.
    #[arg(long, default_value_t = 256)]
    disk_reference_mb: u64,
    /// Compress each batch before sending: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: Compression,
    /// Send without producer ids and sequence numbers (and without
    /// retries), to measure what idempotence costs.
    #[arg(long)]
    no_idempotence: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConsumeBench {
    #[command(flatten)]
    common: Common,
    /// Concurrent consumers, each on its own connection with a share of the partitions.
    #[arg(long, default_value_t = 1)]
    consumers: u32,
}

pub(crate) async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Produce(args) => produce(args).await,
        BenchCommand::Consume(args) => consume(args).await,
        BenchCommand::KafkaProduce(args) => super::bench_kafka::run(args).await,
        BenchCommand::KafkaConsume(args) => super::bench_kafka::consume(args).await,
        BenchCommand::Transform(args) => super::bench_transform::run(args).await,
        BenchCommand::Connections(args) => super::bench_connections::run(args).await,
    }
}

async fn produce(args: ProduceBench) -> anyhow::Result<()> {
    let common = &args.common;
    if args.producers == 0 || args.batch_size == 0 || common.records == 0 {
        bail!("--producers, --batch-size and --records must be at least 1");
    }
    let disk = match &args.disk_reference {
        Some(dir) => Some(super::disk::fdatasync_mb_per_sec(
            dir,
            args.disk_reference_mb.saturating_mul(1024 * 1024),
        )?),
        None => None,
    };
    let topic = BenchTopic::ensure(common).await?;
    let progress = progress_bar(common);
    let values = sample_values(common.record_size);
    // Room for a full batch of records with their framing.
    let batch_max_bytes = args.batch_size as usize * (common.record_size + 32) + 64;
    let buffer_bytes = args
        .buffer_kb
        .map_or(2 * batch_max_bytes * common.partitions as usize, |kb| {
            kb.saturating_mul(1024)
        });
    // Produce-request latency (sent to durable ack), from every producer.
    let requests = Arc::new(Mutex::new(new_histogram()));
    let observer = {
        let requests = Arc::clone(&requests);
        RequestObserver(Arc::new(move |stats: &RequestStats| {
            let micros = stats.latency.as_micros().max(1) as u64;
            let _ = requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(micros);
        }))
    };
    let cpu = CpuClock::start(common.broker_pid)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..u64::from(args.producers) {
        let share = share_of(common.records, args.producers, i);
        let client = common.client.connect().await?;
        let config = ProducerConfig {
            batch_max_records: args.batch_size,
            batch_max_bytes,
            linger: Duration::from_millis(args.linger_ms),
            buffer_bytes,
            compression: args.compression,
            idempotence: !args.no_idempotence,
            observer: Some(observer.clone()),
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client, config);
        // One name for all records: cloning it allocates nothing.
        let topic = TopicName::from(&common.topic);
        let (values, progress) = (values.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            produce_share(producer, &topic, &values, share, &progress).await
        }));
    }
    let record_latency = merged(tasks).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.used()?;
    progress.finish_and_clear();
    let bytes = common.records * common.record_size as u64;
    let request_latency = requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let stored = topic.stored_bytes(common).await?;
    report(
        common,
        "produce",
        Measured {
            bytes,
            seconds,
            cpu,
            disk,
            stored: Some(stored),
        },
        &request_latency,
        Some(&record_latency),
    );
    topic
        .finish(
            common,
            &format!("wrote {} records ({})", common.records, megabytes(bytes)),
        )
        .await
}

async fn produce_share(
    producer: Producer,
    topic: &TopicName,
    values: &[Bytes],
    records: u64,
    progress: &ProgressBar,
) -> Result<Histogram<u64>, ClientError> {
    let (samples, mut acks) = mpsc::channel(MAX_PENDING_SAMPLES);
    let collector = tokio::spawn(async move {
        let mut histogram = new_histogram();
        while let Some((sent, ack)) = acks.recv().await {
            let ack: quiver_client::DeliveryFuture = ack;
            ack.await?;
            let _ = histogram.record(micros(sent));
        }
        Ok::<_, ClientError>(histogram)
    });
    for i in 0..records {
        // Only sampled records read the clock (it costs as much as an
        // enqueue's batching on some machines).
        let sent = (i % LATENCY_SAMPLE_EVERY == 0).then(Instant::now);
        let ack = producer
            .enqueue(ProducerRecord::new(
                topic.clone(),
                values[i as usize % values.len()].clone(),
            ))
            .await?;
        if let Some(sent) = sent
            && samples.send((sent, ack)).await.is_err()
        {
            // The collector stopped at a failed acknowledgement: report
            // that failure (a full disk, say), not the closed channel.
            return match collector.await {
                Ok(Err(e)) => Err(e),
                _ => Err(ClientError::Closed),
            };
        }
        if i % 1_000 == 999 {
            progress.inc(1_000);
            // Enqueue rarely waits; give the connection's I/O tasks a turn.
            tokio::task::yield_now().await;
        }
    }
    producer.flush().await?;
    drop(samples);
    collector.await.map_err(|_| ClientError::Closed)?
}

async fn consume(args: ConsumeBench) -> anyhow::Result<()> {
    let common = &args.common;
    if args.consumers == 0 {
        bail!("--consumers must be at least 1");
    }
    let topic = BenchTopic::ensure(common).await?;
    topic.fill(common).await?;
    let partitions = topic.partitions;
    let progress = progress_bar(common);
    let cpu = CpuClock::start(common.broker_pid)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mine, share) in consumer_shares(common.records, partitions, args.consumers) {
        let client = common.client.connect().await?;
        let mut consumer = Consumer::new(
            client,
            ConsumerConfig {
                start: Offset::Earliest,
                ..ConsumerConfig::default()
            },
        );
        consumer.assign(mine.iter().map(|&p| TopicPartition::new(&common.topic, p)));
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            consume_share(consumer, share, &progress).await
        }));
    }
    let mut histogram = new_histogram();
    let (mut consumed, mut bytes) = (0, 0);
    for task in tasks {
        let (count, size, h) = task.await.context("consumer task failed")??;
        consumed += count;
        bytes += size;
        histogram.add(h)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.used()?;
    progress.finish_and_clear();
    if consumed < common.records {
        bail!(
            "only {consumed} of {} records were there to consume; run `quiver bench produce` first",
            common.records
        );
    }
    report(
        common,
        "consume",
        Measured {
            bytes,
            seconds,
            cpu,
            disk: None,
            stored: None,
        },
        &histogram,
        None,
    );
    topic
        .finish(
            common,
            &format!("read {consumed} records ({})", megabytes(bytes)),
        )
        .await
}

/// Reads until `records` have come or a poll finds nothing more.
async fn consume_share(
    mut consumer: Consumer,
    records: u64,
    progress: &ProgressBar,
) -> Result<(u64, u64, Histogram<u64>), ClientError> {
    let mut histogram = new_histogram();
    let (mut count, mut bytes) = (0u64, 0u64);
    while count < records {
        let sent = Instant::now();
        let batch = consumer.poll(Duration::from_secs(1)).await?;
        if batch.is_empty() {
            break;
        }
        let _ = histogram.record(micros(sent));
        count += batch.len() as u64;
        bytes += batch
            .iter()
            .map(|r| r.value.as_ref().map_or(0, |v| v.len() as u64))
            .sum::<u64>();
        progress.inc(batch.len() as u64);
    }
    Ok((count, bytes, histogram))
}

/// The bench's topic: created if missing, and deleted at the end if the
/// bench created it (unless `--keep`).
pub(super) struct BenchTopic {
    admin: Admin,
    partitions: u32,
    created: bool,
}

impl BenchTopic {
    pub(super) async fn ensure(common: &Common) -> anyhow::Result<Self> {
        let admin = Admin::new(common.client.connect().await?);
        let (partitions, created) = match admin
            .create_topic(&common.topic, common.partitions, TopicConfig::default())
            .await
        {
            Ok(topic) => (topic.partitions.len() as u32, true),
            Err(e) if e.code() == Some(ErrorCode::TopicAlreadyExists) => {
                let topic = admin.describe_topic(&common.topic).await?;
                (topic.partitions.len() as u32, false)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            admin,
            partitions,
            created,
        })
    }

    /// Produces (untimed) what the topic lacks for `--records` to be read.
    pub(super) async fn fill(&self, common: &Common) -> anyhow::Result<()> {
        let topic = self.admin.describe_topic(&common.topic).await?;
        let stored: u64 = topic
            .partitions
            .iter()
            .map(|p| p.high_watermark - p.log_start_offset)
            .sum();
        let missing = common.records.saturating_sub(stored);
        if missing == 0 {
            return Ok(());
        }
        let producer = Producer::new(common.client.connect().await?, ProducerConfig::default());
        produce_share(
            producer,
            &TopicName::from(&common.topic),
            &sample_values(common.record_size),
            missing,
            &ProgressBar::hidden(),
        )
        .await?;
        if !common.json {
            println!(
                "filled topic {} with {missing} records of {} B first (not timed)",
                common.topic, common.record_size
            );
        }
        Ok(())
    }

    /// The topic's partition count.
    pub(super) fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Bytes the topic's partitions hold (as stored: compressed batches
    /// count compressed).
    pub(super) async fn stored_bytes(&self, common: &Common) -> anyhow::Result<u64> {
        let topic = self.admin.describe_topic(&common.topic).await?;
        Ok(topic.partitions.iter().map(|p| p.size_bytes).sum())
    }

    /// Deletes the topic if the bench created it and `--keep` is off, and
    /// says what the bench did to it.
    pub(super) async fn finish(self, common: &Common, did: &str) -> anyhow::Result<()> {
        let fate = if self.created && !common.keep {
            self.admin.delete_topic(&common.topic).await?;
            "deleted it (--keep keeps it)"
        } else if self.created {
            "kept it"
        } else {
            "it existed before, so it stays"
        };
        if !common.json {
            println!("{did} on topic {}; {fate}", common.topic);
        }
        Ok(())
    }
}

/// Distinct record values cycled through by the produce benches: click
/// and upload events as JSON, like the seed's, cut or padded with spaces to
/// `size` bytes, so that compressed runs see realistic redundancy (a
/// repeated constant value would compress to nothing).
pub(super) fn sample_values(size: usize) -> Vec<Bytes> {
    const COUNT: u64 = 1_024;
    (0..COUNT)
        .map(|i| {
            // A cheap, fixed scramble of `i` (splitmix64's multiplier).
            let mix = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let kind = if mix % 5 == 0 { "upload" } else { "click" };
            let mut value = format!(
                r#"{{"user":"user-{:05}","kind":"{kind}","page":"/products/{}","session":"{:012x}","ts":{}}}"#,
                mix % 50_000,
                (mix >> 20) % 500,
                (mix >> 8) & 0xffff_ffff_ffff,
                1_700_000_000_000 + i * 37
            )
            .into_bytes();
            value.resize(size, b' ');
            Bytes::from(value)
        })
        .collect()
}

/// The records the `index`-th of `parts` producers sends: an even share,
/// the first ones one more while `total` does not divide evenly.
pub(super) fn share_of(total: u64, parts: u32, index: u64) -> u64 {
    total / u64::from(parts) + u64::from(index < total % u64::from(parts))
}

/// Each consumer's partitions (every `consumers`-th, round the topic) and
/// the records it reads from them, for consumers that get any.
pub(super) fn consumer_shares(
    records: u64,
    partitions: u32,
    consumers: u32,
) -> Vec<(Vec<u32>, u64)> {
    (0..consumers)
        .map(|i| {
            (0..partitions)
                .filter(|p| p % consumers == i)
                .collect::<Vec<u32>>()
        })
        .filter(|mine| !mine.is_empty())
        .map(|mine| {
            let share = records * mine.len() as u64 / u64::from(partitions);
            (mine, share)
        })
        .collect()
}

/// Waits for the producer tasks and merges their latency histograms.
pub(super) async fn merged<E: Into<anyhow::Error>>(
    tasks: Vec<tokio::task::JoinHandle<Result<Histogram<u64>, E>>>,
) -> anyhow::Result<Histogram<u64>> {
    let mut merged = new_histogram();
    for task in tasks {
        let latency = task
            .await
            .context("producer task failed")?
            .map_err(Into::into)?;
        merged.add(latency)?;
    }
    Ok(merged)
}

/// Bytes as MB with one decimal.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub(super) fn progress_bar(common: &Common) -> Arc<ProgressBar> {
    let bar = if !common.json && std::io::stderr().is_terminal() {
        ProgressBar::new(common.records)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} records, {rate}, eta {eta}")
    {
        bar.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} records/s", state.per_sec());
            },
        ));
    }
    Arc::new(bar)
}

pub(super) fn new_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

pub(super) fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().max(1) as u64
}

/// Prints the summary; `bytes` counts record values. `histogram` holds
/// request latencies (produce: request sent to durable ack; consume: fetch
/// round trip); `records`, for produce, each sampled record's time from
/// `enqueue` to its ack, which adds the wait in the producer's buffer.
/// What a bench run took.
#[derive(Clone, Copy)]
pub(super) struct Measured {
    pub(super) bytes: u64,
    pub(super) seconds: f64,
    pub(super) cpu: CpuUsed,
    /// The disk reference's MB/s, if measured.
    pub(super) disk: Option<f64>,
    /// Bytes the topic held after a produce run.
    pub(super) stored: Option<u64>,
}

pub(super) fn report(
    common: &Common,
    what: &str,
    measured: Measured,
    histogram: &Histogram<u64>,
    records_latency: Option<&Histogram<u64>>,
) {
    let Measured {
        bytes,
        seconds,
        cpu,
        disk,
        stored,
    } = measured;
    let records = common.records;
    // CPU microseconds per record.
    let per_record = |cpu_seconds: f64| cpu_seconds * 1e6 / records.max(1) as f64;
    let record_size = bytes / records.max(1);
    let records_per_sec = records as f64 / seconds;
    let mb_per_sec = bytes as f64 / seconds / 1e6;
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1_000.0;
    let record_ms = |q: f64| records_latency.map(|h| h.value_at_quantile(q) as f64 / 1_000.0);
    if common.json {
        let summary = serde_json::json!({
            "record_p50_ms": record_ms(0.5),
            "record_p99_ms": record_ms(0.99),
            "record_p999_ms": record_ms(0.999),
            "bench": what,
            "records": records,
            "record_size": record_size,
            "seconds": seconds,
            "records_per_sec": records_per_sec,
            "mb_per_sec": mb_per_sec,
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
            "p999_ms": ms(0.999),
            "latency_samples": histogram.len(),
            "client_cpu_s": cpu.client,
            "client_cpu_us_per_record": per_record(cpu.client),
            "broker_cpu_s": cpu.broker,
            "broker_cpu_us_per_record": cpu.broker.map(per_record),
            "disk_mb_per_sec": disk,
            "of_disk": disk.map(|d| mb_per_sec / d),
            "stored_bytes_per_record": stored.map(|b| b as f64 / records.max(1) as f64),
        });
        println!("{summary}");
    } else {
        println!(
            "{what}: {records} records of {record_size} B in {seconds:.2} s: {records_per_sec:.0} records/s, \
             {mb_per_sec:.1} MB/s; request latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms ({} requests)",
            ms(0.5),
            ms(0.99),
            ms(0.999),
            histogram.len()
        );
        if let (Some(p50), Some(p99), Some(p999)) =
            (record_ms(0.5), record_ms(0.99), record_ms(0.999))
        {
            println!(
                "  per record, enqueue to ack (includes the producer buffer): p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms"
            );
        }
        let broker = cpu.broker.map_or_else(
            || "broker CPU: pass --broker-pid".to_owned(),
            |b| format!("broker CPU {b:.2} s ({:.2} us/record)", per_record(b)),
        );
        println!(
            "  client CPU {:.2} s ({:.2} us/record); {broker}",
            cpu.client,
            per_record(cpu.client)
        );
        if let Some(stored) = stored {
            println!(
                "  stored {stored} B in the topic: {:.1} B per record",
                stored as f64 / records.max(1) as f64
            );
        }
        if let Some(disk) = disk {
            println!(
                "  disk reference (1 MiB writes, fdatasync, as dd conv=fdatasync): {disk:.0} MB/s; this run {:.2} of it",
                mb_per_sec / disk
            );
        }
    }
}
