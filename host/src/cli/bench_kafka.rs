//! `quiver bench kafka-produce` and `kafka-consume`: throughput through the
//! broker's Kafka listener, as a Kafka producer that batches ahead of time
//! and a Kafka consumer would drive it.
//!
//! Each producer opens its own TCP connection and sends `Produce` requests
//! (version 9, `acks=-1`), up to `--in-flight` unanswered at once as Kafka
//! clients pipeline them, each holding one batch of `--batch-size` records
//! for the next partition in turn; a batch is built once per request with
//! Quiver's `BatchBuilder` and framed with the `kafka-protocol` crate. So the client's cost per record is small and
//! the figure shows what the broker's Kafka path carries, where a client
//! library such as librdkafka spends about a microsecond per record of its
//! own (see `bench/kafka.sh` for kcat).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::{BufMut as _, Bytes, BytesMut};
use clap::Args;
use hdrhistogram::Histogram;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{
    Decodable as _, Encodable as _, HeaderVersion as _, Request, StrBytes,
};
use quiver_proto::batch::{
    BatchBuilder, BatchView, Compression, NewRecord, compress, decompress, split_batches,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::bench::{
    BenchTopic, Common, Measured, consumer_shares, merged, micros, new_histogram, progress_bar,
    report, sample_values, share_of,
};
use super::procfs::CpuClock;

/// The `Produce` version sent (flexible, names topics).
const PRODUCE_VERSION: i16 = 9;

/// What `kafka-produce` did to the topic, as `finish` reports it.
const WROTE: &str = "wrote";

/// How long one produce request may wait for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub(crate) struct KafkaProduceBench {
    #[command(flatten)]
    common: Common,
    /// The broker's Kafka listener.
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka: SocketAddr,
    /// Records per batch (one batch per request).
    #[arg(long, default_value_t = 1_000)]
    batch_size: u32,
    /// Concurrent producers, each on its own connection.
    #[arg(long, default_value_t = 4)]
    producers: u32,
    /// Requests a producer sends before it waits for the oldest one's
    /// answer (Kafka clients' `max.in.flight.requests.per.connection`,
    /// 5 by default).
    #[arg(long, default_value_t = 5)]
    in_flight: u32,
    /// Compress each batch before sending: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: Compression,
}

pub(crate) async fn run(args: KafkaProduceBench) -> anyhow::Result<()> {
    let common = &args.common;
    if args.producers == 0 || args.batch_size == 0 || args.in_flight == 0 || common.records == 0 {
        bail!("--producers, --batch-size, --in-flight and --records must be at least 1");
    }
    let topic = BenchTopic::ensure(common).await?;
    let progress = progress_bar(common);
    let values = Arc::new(sample_values(common.record_size));
    let cpu = CpuClock::start(common.broker_pid)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..u64::from(args.producers) {
        let share = share_of(common.records, args.producers, i);
        let wire = Wire::connect(args.kafka).await?;
        let job = Job {
            topic: common.topic.clone(),
            partitions: topic.partitions(),
            first_partition: i as u32,
            batch_size: u64::from(args.batch_size),
            in_flight: args.in_flight as usize,
            values: Arc::clone(&values),
            compression: args.compression,
        };
        let progress = Arc::clone(&progress);
        tasks.push(tokio::spawn(async move {
            job.produce(wire, share, &progress).await
        }));
    }
    let run = Run {
        progress,
        cpu,
        started,
    };
    finish(common, topic, "kafka-produce", WROTE, run, tasks).await
}

/// What a bench run started with.
struct Run {
    progress: Arc<indicatif::ProgressBar>,
    cpu: CpuClock,
    started: Instant,
}

/// Waits for the tasks, reports the run as `what` (with the bytes the topic
/// stores after a run that wrote) and says what it `did` to the topic.
async fn finish(
    common: &Common,
    topic: BenchTopic,
    what: &str,
    did: &str,
    run: Run,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Histogram<u64>>>>,
) -> anyhow::Result<()> {
    let latency = merged(tasks).await?;
    let seconds = run.started.elapsed().as_secs_f64();
    let cpu = run.cpu.used()?;
    run.progress.finish_and_clear();
    let bytes = common.records * common.record_size as u64;
    let stored = if did == WROTE {
        Some(topic.stored_bytes(common).await?)
    } else {
        None
    };
    let measured = Measured {
        bytes,
        seconds,
        cpu,
        disk: None,
        stored,
    };
    report(common, what, measured, &latency, None);
    let did = format!("{did} {} records over the Kafka listener", common.records);
    topic.finish(common, &did).await
}

/// One producer's work.
struct Job {
    topic: String,
    partitions: u32,
    first_partition: u32,
    batch_size: u64,
    in_flight: usize,
    values: Arc<Vec<Bytes>>,
    compression: Compression,
}

impl Job {
    /// Sends `records` in batches, up to `in_flight` requests unanswered;
    /// the request latencies.
    async fn produce(
        self,
        mut wire: Wire,
        records: u64,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<Histogram<u64>> {
        let mut latency = new_histogram();
        // Sent and not yet answered: (correlation id, sent at, records).
        let mut unanswered = std::collections::VecDeque::with_capacity(self.in_flight);
        let mut sent = 0;
        let mut turn = 0;
        while sent < records || !unanswered.is_empty() {
            if sent < records && unanswered.len() < self.in_flight {
                let count = self.batch_size.min(records - sent);
                let partition = (self.first_partition + turn) % self.partitions;
                let request = self.request(partition, sent, count)?;
                let id = wire.send(&request, PRODUCE_VERSION).await?;
                unanswered.push_back((id, Instant::now(), count));
                sent += count;
                turn += 1;
                continue;
            }
            let Some((id, started, count)) = unanswered.pop_front() else {
                break;
            };
            let answer = wire.receive::<ProduceRequest>(id, PRODUCE_VERSION).await?;
            for partition in answer.responses.iter().flat_map(|t| &t.partition_responses) {
                if partition.error_code != 0 {
                    bail!("produce refused with Kafka error {}", partition.error_code);
                }
            }
            let _ = latency.record(micros(started));
            progress.inc(count);
        }
        Ok(latency)
    }

    /// A `Produce` request carrying one batch of `count` records for
    /// `partition`, the first being the producer's `first`-th.
    fn request(&self, partition: u32, first: u64, count: u64) -> anyhow::Result<ProduceRequest> {
        let size = self.values.first().map_or(0, Bytes::len);
        let mut builder = BatchBuilder::with_capacity(count as usize * (size + 16));
        for i in first..first + count {
            builder.push(&NewRecord {
                key: None,
                value: Some(&self.values[i as usize % self.values.len()]),
                headers: &[],
                timestamp: 0,
            })?;
        }
        let batch = compress(&builder.finish(), self.compression)?;
        Ok(ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(&self.topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition as i32)
                            .with_records(Some(Bytes::from(batch))),
                    ]),
            ]))
    }
}

#[derive(Debug, Args)]
pub(crate) struct KafkaConsumeBench {
    #[command(flatten)]
    common: Common,
    /// The broker's Kafka listener.
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka: SocketAddr,
    /// Concurrent consumers, each on its own connection with a share of the
    /// partitions.
    #[arg(long, default_value_t = 1)]
    consumers: u32,
}

/// `quiver bench kafka-consume`: reads a topic from the start through the
/// Kafka listener, with full `Fetch` requests (version 12) as a Kafka
/// consumer sends them, reading every record of every batch returned. The
/// topic is filled first (untimed) if it holds fewer than `--records`.
pub(crate) async fn consume(args: KafkaConsumeBench) -> anyhow::Result<()> {
    let common = &args.common;
    if args.consumers == 0 || common.records == 0 {
        bail!("--consumers and --records must be at least 1");
    }
    let topic = BenchTopic::ensure(common).await?;
    topic.fill(common).await?;
    let partitions = topic.partitions();
    let progress = progress_bar(common);
    let cpu = CpuClock::start(common.broker_pid)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mine, share) in consumer_shares(common.records, partitions, args.consumers) {
        let wire = Wire::connect(args.kafka).await?;
        let (name, progress) = (common.topic.clone(), Arc::clone(&progress));
        tasks.push(tokio::spawn(async move {
            fetch_share(wire, &name, &mine, share, &progress).await
        }));
    }
    let run = Run {
        progress,
        cpu,
        started,
    };
    finish(common, topic, "kafka-consume", "read", run, tasks).await
}

/// Fetches `partitions` of `topic` from offset 0 until `records` records
/// were read; the fetch latencies.
async fn fetch_share(
    mut wire: Wire,
    topic: &str,
    partitions: &[u32],
    records: u64,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Histogram<u64>> {
    let mut latency = new_histogram();
    let mut offsets: Vec<i64> = vec![0; partitions.len()];
    let mut read = 0;
    while read < records {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .zip(&offsets)
                            .map(|(&p, &offset)| {
                                FetchPartition::default()
                                    .with_partition(p as i32)
                                    .with_fetch_offset(offset)
                                    .with_partition_max_bytes(FETCH_MAX_BYTES)
                            })
                            .collect(),
                    ),
            ]);
        let started = Instant::now();
        let answer = wire.call(&request, FETCH_VERSION).await?;
        let _ = latency.record(micros(started));
        let data = answer.responses.iter().flat_map(|t| &t.partitions);
        let mut at_end = true;
        for (partition, offset) in data.zip(offsets.iter_mut()) {
            if partition.error_code != 0 {
                bail!("fetch refused with Kafka error {}", partition.error_code);
            }
            let batches = partition.records.as_deref().unwrap_or_default();
            for batch in split_batches(batches) {
                let batch = batch?;
                // Every record is read (decompressed first when it was
                // compressed), as a consumer hands each one out.
                let plain = decompress(batch.as_bytes())?;
                let mut count = 0;
                for record in BatchView::parse(&plain)?.records() {
                    record?;
                    count += 1;
                }
                read += count;
                progress.inc(count);
                *offset = batch.last_offset() as i64 + 1;
            }
            at_end &= *offset >= partition.high_watermark;
        }
        if at_end && read < records {
            bail!(
                "only {read} of {records} records were there to read in this consumer's partitions"
            );
        }
    }
    Ok(latency)
}

/// The `Fetch` version sent (the last that names topics).
const FETCH_VERSION: i16 = 12;

/// Bytes asked for per fetch (the broker caps what it sends).
const FETCH_MAX_BYTES: i32 = 50 * 1024 * 1024;

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// A Kafka connection sending one request at a time.
struct Wire {
    connection: TcpStream,
    correlation_id: i32,
    buffer: BytesMut,
}

impl Wire {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let connection = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot reach the Kafka listener at {addr}"))?;
        connection.set_nodelay(true)?;
        Ok(Self {
            connection,
            correlation_id: 0,
            buffer: BytesMut::new(),
        })
    }

    /// Sends `request` at `version` and reads its answer.
    async fn call<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<R::Response> {
        let id = self.send(request, version).await?;
        self.receive::<R>(id, version).await
    }

    /// Sends `request` at `version`; its correlation id.
    async fn send<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<i32> {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("quiver-bench"));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header.encode(&mut frame, R::header_version(version))?;
        request.encode(&mut frame, version)?;
        let size = i32::try_from(frame.len() - 4)?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.connection.write_all(&frame).await?;
        Ok(self.correlation_id)
    }

    /// Reads the next answer, which must be the one to request `id`.
    async fn receive<R: Request>(&mut self, id: i32, version: i16) -> anyhow::Result<R::Response> {
        let read = async {
            let size = usize::try_from(self.connection.read_i32().await?)
                .context("negative response size")?;
            self.buffer.resize(size, 0);
            self.connection.read_exact(&mut self.buffer).await?;
            anyhow::Ok(())
        };
        tokio::time::timeout(ANSWER_TIMEOUT, read)
            .await
            .context("no answer in time")??;
        let mut answer = self.buffer.split().freeze();
        let header = ResponseHeader::decode(&mut answer, R::Response::header_version(version))?;
        if header.correlation_id != id {
            bail!("answer {} to request {id}", header.correlation_id);
        }
        R::Response::decode(&mut answer, version)
    }
}
