//! `quiver bench kafka-produce`: produce throughput through the broker's
//! Kafka listener, as a Kafka producer that batches ahead of time would
//! drive it.
//!
//! Each producer opens its own TCP connection and sends `Produce` requests
//! (version 9, `acks=-1`) one after another, each holding one batch of
//! `--batch-size` records for the next partition in turn; a batch is built
//! once per request with Quiver's `BatchBuilder` and framed with the
//! `kafka-protocol` crate. So the client's cost per record is small and
//! the figure shows what the broker's Kafka path carries, where a client
//! library such as librdkafka spends about a microsecond per record of its
//! own (see `bench/kafka.sh` for kcat).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::{BufMut as _, Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable as _, Encodable as _, HeaderVersion as _, StrBytes};
use quiver_proto::batch::{BatchBuilder, NewRecord};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::bench::{
    BenchTopic, Common, Measured, merged, new_histogram, progress_bar, report, share_of,
};
use super::procfs::CpuClock;

/// The `Produce` version sent (flexible, names topics).
const PRODUCE_VERSION: i16 = 9;

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
}

pub(crate) async fn run(args: KafkaProduceBench) -> anyhow::Result<()> {
    let common = &args.common;
    if args.producers == 0 || args.batch_size == 0 || common.records == 0 {
        bail!("--producers, --batch-size and --records must be at least 1");
    }
    let topic = BenchTopic::ensure(common).await?;
    let progress = progress_bar(common);
    let value = Bytes::from(vec![b'x'; common.record_size]);
    let cpu = CpuClock::start(common.broker_pid)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..u64::from(args.producers) {
        let share = share_of(common.records, args.producers, i);
        let connection = TcpStream::connect(args.kafka)
            .await
            .with_context(|| format!("cannot reach the Kafka listener at {}", args.kafka))?;
        let job = Job {
            topic: common.topic.clone(),
            partitions: topic.partitions(),
            first_partition: i as u32,
            batch_size: u64::from(args.batch_size),
            value: value.clone(),
        };
        let progress = Arc::clone(&progress);
        tasks.push(tokio::spawn(async move {
            job.produce(connection, share, &progress).await
        }));
    }
    let latency = merged(tasks).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.used()?;
    progress.finish_and_clear();
    let bytes = common.records * common.record_size as u64;
    report(
        common,
        "kafka-produce",
        Measured {
            bytes,
            seconds,
            cpu,
            disk: None,
        },
        &latency,
        None,
    );
    topic
        .finish(
            common,
            &format!("wrote {} records over the Kafka listener", common.records),
        )
        .await
}

/// One producer's work.
struct Job {
    topic: String,
    partitions: u32,
    first_partition: u32,
    batch_size: u64,
    value: Bytes,
}

impl Job {
    /// Sends `records` in batches, one request at a time; the request
    /// latencies.
    async fn produce(
        self,
        mut connection: TcpStream,
        records: u64,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
        connection.set_nodelay(true)?;
        let mut latency = new_histogram();
        let mut sent = 0;
        let mut correlation_id = 0;
        let mut response = BytesMut::new();
        while sent < records {
            let count = self.batch_size.min(records - sent);
            let partition = (self.first_partition + correlation_id as u32) % self.partitions;
            let frame = self.request(correlation_id, partition, count)?;
            let started = Instant::now();
            connection.write_all(&frame).await?;
            tokio::time::timeout(ANSWER_TIMEOUT, read_frame(&mut connection, &mut response))
                .await
                .context("no answer to a produce request")??;
            check_answer(&mut response.split().freeze(), correlation_id)?;
            let _ = latency.record(started.elapsed().as_micros().max(1) as u64);
            sent += count;
            correlation_id += 1;
            progress.inc(count);
        }
        Ok(latency)
    }

    /// A size-prefixed `Produce` request carrying one batch of `count`
    /// records for `partition`.
    fn request(&self, correlation_id: i32, partition: u32, count: u64) -> anyhow::Result<BytesMut> {
        let mut builder = BatchBuilder::with_capacity(count as usize * (self.value.len() + 16));
        for _ in 0..count {
            builder.push(&NewRecord {
                key: None,
                value: &self.value,
                headers: &[],
                timestamp: 0,
            })?;
        }
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition as i32)
                            .with_records(Some(Bytes::from(builder.finish()))),
                    ]),
            ]);
        let mut header = RequestHeader::default();
        header.request_api_key = ApiKey::Produce as i16;
        header.request_api_version = PRODUCE_VERSION;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("quiver-bench"));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header.encode(&mut frame, ProduceRequest::header_version(PRODUCE_VERSION))?;
        request.encode(&mut frame, PRODUCE_VERSION)?;
        let size = i32::try_from(frame.len() - 4)?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        Ok(frame)
    }
}

/// Reads one size-prefixed response into `into`.
async fn read_frame(connection: &mut TcpStream, into: &mut BytesMut) -> anyhow::Result<()> {
    let size = usize::try_from(connection.read_i32().await?).context("negative response size")?;
    into.resize(size, 0);
    connection.read_exact(into).await?;
    Ok(())
}

/// Fails on a response for another request or with an error code.
fn check_answer(response: &mut Bytes, correlation_id: i32) -> anyhow::Result<()> {
    let header =
        ResponseHeader::decode(response, ProduceResponse::header_version(PRODUCE_VERSION))?;
    if header.correlation_id != correlation_id {
        bail!(
            "answer {} to request {correlation_id}",
            header.correlation_id
        );
    }
    let answer = ProduceResponse::decode(response, PRODUCE_VERSION)?;
    for partition in answer.responses.iter().flat_map(|t| &t.partition_responses) {
        if partition.error_code != 0 {
            bail!("produce refused with Kafka error {}", partition.error_code);
        }
    }
    Ok(())
}
