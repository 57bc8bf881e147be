//! Talking to the broker's Kafka listener: [`kcat`] and [`python`] run real
//! Kafka clients (librdkafka; confluent-kafka and kafka-python scripts in
//! `tests/kafka_clients/`), and [`KafkaWire`], a bare TCP connection that
//! sends hand-made requests encoded with the `kafka-protocol` crate.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use quiver_proto::batch::{Compression, ProducerFields, split_batches};

use crate::cli::{Run, run_quiver};

/// Runs `kcat -b BROKER ARGS` with `input` on standard input.
pub fn kcat(broker: SocketAddr, args: &[&str], input: Option<&[u8]>) -> Run {
    let mut command = Command::new("kcat");
    command.arg("-b").arg(broker.to_string()).args(args);
    run_quiver(command, input)
}

/// Runs `tests/kafka_clients/SCRIPT BROKER ARGS` (see [`python_command`])
/// to its end.
pub fn python(script: &str, broker: SocketAddr, args: &[&str]) -> Run {
    let mut command = python_command(script, broker);
    command.args(args);
    run_quiver(command, None)
}

/// `tests/kafka_clients/SCRIPT BROKER` with the Python that
/// `tests/kafka_clients/setup.sh` set up (confluent-kafka, kafka-python)
/// in `target/kafka-clients`.
pub fn python_command(script: &str, broker: SocketAddr) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let python = root.join("target/kafka-clients/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/kafka_clients/setup.sh first",
        python.display()
    );
    let mut command = Command::new(python);
    command
        .current_dir(root.join("tests/kafka_clients"))
        .arg(script)
        .arg(broker.to_string());
    command
}

/// Every record of `topic` from the beginning, one `format` (kcat's `-f`)
/// each.
pub fn kcat_read(broker: SocketAddr, topic: &str, format: &str) -> String {
    kcat(
        broker,
        &[
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            format,
        ],
        None,
    )
    .ok()
}

/// How long a bare connection waits for an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A bare Kafka connection.
#[derive(Debug)]
pub struct KafkaWire {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl KafkaWire {
    /// Connects to a Kafka listener.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the Kafka listener");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        Self {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Sends `request` at `version` and decodes the response.
    pub fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let correlation_id = self.send(request, version);
        self.receive::<R>(correlation_id, version)
    }

    /// Sends `request` at `version` without waiting for its answer (as a
    /// client pipelines requests); its correlation id.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str("quiver-tests"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        self.send_frame(&body);
        correlation_id
    }

    /// Reads the next response, which must answer `correlation_id` (an
    /// `R` sent at `version`), and decodes it.
    pub fn receive<R: Request>(&mut self, correlation_id: i32, version: i16) -> R::Response {
        let mut response = self.read_frame().expect("a response");
        let header = ResponseHeader::decode(
            &mut response,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .expect("response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "answers come in the order of the requests"
        );
        R::Response::decode(&mut response, version).expect("decode response")
    }

    /// Sends a size prefix and `body`.
    pub fn send_frame(&mut self, body: &[u8]) {
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(i32::try_from(body.len()).expect("small frame"));
        frame.put_slice(body);
        self.send_raw(&frame);
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Ends the sending side (the broker reads end of stream).
    pub fn finish(&mut self) {
        self.stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown write");
    }

    /// Reads one response frame (after its size prefix); `None` when the
    /// broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut frame = vec![0u8; usize::try_from(i32::from_be_bytes(size)).ok()?];
        self.stream.read_exact(&mut frame).ok()?;
        Some(Bytes::from(frame))
    }

    /// Whether the broker closed the connection (end of stream or reset)
    /// without sending anything, within the read timeout.
    pub fn closed_by_broker(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}

/// A stored batch's header fields, as a Kafka fetch returns the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBatch {
    /// The partition.
    pub partition: u32,
    /// Its first offset.
    pub base_offset: u64,
    /// Its records.
    pub records: u32,
    /// How its records are compressed.
    pub compression: Compression,
    /// The idempotent producer's id, epoch and first sequence, if any.
    pub producer: Option<ProducerFields>,
}

/// The batches stored in `partitions` of `topic`, in offset order per
/// partition, as a Kafka fetch (version 12) returns them: the bytes as
/// stored, not decompressed.
pub fn stored_batches(addr: SocketAddr, topic: &str, partitions: u32) -> Vec<StoredBatch> {
    let mut wire = KafkaWire::connect(addr);
    let mut stored = Vec::new();
    for partition in 0..partitions {
        let mut offset = 0;
        loop {
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_bytes(64 * 1024 * 1024)
                .with_session_epoch(-1)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(partition as i32)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(16 * 1024 * 1024),
                        ]),
                ]);
            let answer = wire.call(&request, 12);
            let data = &answer.responses[0].partitions[0];
            assert_eq!(data.error_code, 0, "fetch {topic}/{partition} at {offset}");
            let batches = data.records.clone().unwrap_or_default();
            for view in split_batches(&batches) {
                let view = view.expect("a stored batch");
                let producer =
                    u64::try_from(view.producer_id())
                        .ok()
                        .map(|producer_id| ProducerFields {
                            producer_id,
                            epoch: view.producer_epoch(),
                            base_sequence: view.base_sequence(),
                        });
                stored.push(StoredBatch {
                    partition,
                    base_offset: view.base_offset(),
                    records: view.record_count(),
                    compression: view.compression().expect("a codec"),
                    producer,
                });
                offset = view.last_offset() as i64 + 1;
            }
            if offset >= data.high_watermark {
                break;
            }
        }
    }
    stored
}

/// The codecs of the batches stored in `partitions` of `topic`.
pub fn stored_codecs(addr: SocketAddr, topic: &str, partitions: u32) -> BTreeSet<Compression> {
    stored_batches(addr, topic, partitions)
        .iter()
        .map(|batch| batch.compression)
        .collect()
}

/// A request header for `api` at `version` with correlation id 7, encoded.
pub fn header_bytes(api: ApiKey, version: i16) -> BytesMut {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    let mut out = BytesMut::new();
    header
        .encode(&mut out, api.request_header_version(version))
        .expect("encode header");
    out
}

/// The correlation id at the start of a response frame.
pub fn correlation_id(mut frame: Bytes) -> i32 {
    frame.get_i32()
}
