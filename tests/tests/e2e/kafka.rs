//! The Kafka listener with a real Kafka client (kcat, librdkafka) and with
//! hand-made requests on a bare TCP connection, against `quiver serve`.
//!
//! kcat comes from Debian (`apt-get install kcat`; `.ci/run` installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::Command;

use bytes::{BufMut as _, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use quiver_proto::batch::{BatchBuilder, NewRecord};
use quiver_tests::cli::run_quiver;
use quiver_tests::kafka::{KafkaWire, correlation_id, header_bytes, kcat};
use quiver_tests::{BrokerProcess, quiver_command};

fn quiver(broker: &BrokerProcess, args: &[&str], input: Option<&str>) -> String {
    let mut command: Command = quiver_command(broker.addr(), broker.ca());
    command.args(args);
    run_quiver(command, input.map(str::as_bytes)).ok()
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// The seed's scenario across clients: kcat (librdkafka) produces keyed
/// click events into a topic made with the Quiver CLI and reads them back
/// with key, partition and offset; the Quiver CLI reads the same records;
/// kcat reads what the Quiver CLI wrote.
#[test]
fn kcat_and_the_quiver_cli_read_each_others_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("the Kafka listener runs");
    quiver(
        &broker,
        &["topic", "create", "clicks", "--partitions", "3"],
        None,
    );

    let users = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let mut events = String::new();
    for i in 0..60 {
        writeln!(events, "{}:click page-{i}", users[i % users.len()]).expect("write");
    }
    kcat(
        kafka,
        &["-P", "-t", "clicks", "-K:"],
        Some(events.as_bytes()),
    )
    .ok();

    let read = kcat(
        kafka,
        &[
            "-C",
            "-t",
            "clicks",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k %p %o %s\n",
        ],
        None,
    )
    .ok();
    let lines: Vec<Vec<&str>> = read.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    assert_eq!(lines.len(), 60, "{read}");
    let mut partitions_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut offsets: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for line in &lines {
        partitions_of.entry(line[0]).or_default().insert(line[1]);
        offsets
            .entry(line[1])
            .or_default()
            .push(line[2].parse().expect("offset"));
    }
    // One key, one partition; each partition's offsets run 0, 1, 2, ...
    assert!(
        partitions_of.values().all(|p| p.len() == 1),
        "{partitions_of:?}"
    );
    for (partition, offsets) in &offsets {
        assert_eq!(
            *offsets,
            (0..offsets.len() as u64).collect::<Vec<_>>(),
            "partition {partition}"
        );
    }
    let values: BTreeSet<&str> = lines.iter().map(|l| l[3]).collect();
    assert_eq!(values.len(), 60);

    // The Quiver CLI reads the same records, with the same keys.
    let through_quic = quiver(
        &broker,
        &["consume", "clicks", "--format", "%k %p %o %v"],
        None,
    );
    let mut from_quic: Vec<&str> = through_quic.lines().collect();
    let mut from_kafka: Vec<&str> = read.lines().collect();
    from_quic.sort_unstable();
    from_kafka.sort_unstable();
    assert_eq!(from_quic, from_kafka);

    // And kcat reads what the Quiver CLI wrote, from the end backwards
    // (a ListOffsets for the latest offset).
    quiver(
        &broker,
        &[
            "produce",
            "clicks",
            "--key-separator",
            ":",
            "--partition",
            "2",
        ],
        Some("zoe:upload photo.jpg\n"),
    );
    let last = kcat(
        kafka,
        &[
            "-C", "-t", "clicks", "-p", "2", "-o", "-1", "-e", "-q", "-f", "%k %s\n",
        ],
        None,
    )
    .ok();
    assert_eq!(last, "zoe upload photo.jpg\n");
}

/// A Metadata request for a missing topic creates it when the client
/// allows it (with `--default-partitions`), and answers
/// `UNKNOWN_TOPIC_OR_PARTITION` when it does not; Quiver's own clients see
/// the created topic.
#[test]
fn metadata_creates_topics_when_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let mut wire = KafkaWire::connect(broker.kafka_addr().expect("Kafka listener"));
    let ask = |name: &str, allow: bool| {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic(name))),
            ]))
            .with_allow_auto_topic_creation(allow)
    };

    let refused = wire.call(&ask("views", false), 12);
    assert_eq!(refused.topics[0].error_code, 3);
    let created = wire.call(&ask("views", true), 12);
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(created.topics[0].partitions.len(), 1);
    assert_eq!(created.brokers.len(), 1);
    assert_eq!(
        created.brokers[0].port,
        i32::from(broker.kafka_addr().expect("addr").port())
    );
    let invalid = wire.call(&ask("no spaces", true), 12);
    assert_eq!(invalid.topics[0].error_code, 17);

    // Version 0 asks for every topic with an empty list.
    let all = wire.call(&MetadataRequest::default().with_topics(Some(Vec::new())), 0);
    let names: Vec<String> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert_eq!(names, ["views"]);
    assert!(quiver(&broker, &["topic", "list"], None).contains("views"));
}

/// Bad input on the Kafka port: each request is refused (an answer with
/// an error, or a closed connection), nothing panics, the broker goes on
/// serving other clients.
#[test]
fn bad_input_on_the_kafka_port_is_refused_and_harms_no_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let addr = broker.kafka_addr().expect("Kafka listener");

    // A well-formed ApiVersions lists what is served.
    let versions = KafkaWire::connect(addr).call(&ApiVersionsRequest::default(), 3);
    assert_eq!(versions.error_code, 0);
    assert!(
        versions
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Produce as i16)
    );

    // An ApiVersions version from the future gets version 0's body with
    // UNSUPPORTED_VERSION and the versions served (KIP-511).
    let mut wire = KafkaWire::connect(addr);
    wire.send_frame(&header_bytes(ApiKey::ApiVersions, 99));
    let mut answer = wire.read_frame().expect("an answer");
    assert_eq!(correlation_id(answer.clone()), 7);
    let body = answer.split_off(4);
    assert_eq!(&body[..2], &35i16.to_be_bytes());

    let closes = |bytes: &[u8], finish: bool, what: &str| {
        let mut wire = KafkaWire::connect(addr);
        wire.send_raw(bytes);
        if finish {
            wire.finish();
        }
        assert!(
            wire.closed_by_broker(),
            "{what}: the connection stayed open"
        );
    };
    // A size prefix over the limit, and a negative one.
    closes(&i32::MAX.to_be_bytes(), false, "oversized size prefix");
    closes(&(-5i32).to_be_bytes(), false, "negative size prefix");
    // Garbage (an HTTP request: its first four bytes are a 1.2 GB size).
    closes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, "garbage");
    // A request cut short.
    let mut cut = BytesMut::new();
    cut.put_i32(100);
    cut.put_slice(&header_bytes(ApiKey::Metadata, 1));
    closes(&cut, true, "truncated request");
    // An unknown API key, and a version not served.
    let mut unknown = BytesMut::new();
    unknown.put_i32(8);
    unknown.put_i16(999);
    unknown.put_i16(0);
    unknown.put_i32(1);
    closes(&unknown, false, "unknown API key");
    let mut old = header_bytes(ApiKey::Produce, 2);
    old.put_slice(&[0; 16]);
    let mut framed = BytesMut::new();
    framed.put_i32(old.len() as i32);
    framed.put_slice(&old);
    closes(&framed, false, "unsupported produce version");
    // A tiny Metadata request announcing 54 million topics: refused before
    // anything is allocated for them.
    let mut bomb = header_bytes(ApiKey::Metadata, 0);
    bomb.put_slice(&[0x03, 0x3c, 0x0c, 0x00, 0xb6]);
    let mut framed = BytesMut::new();
    framed.put_i32(bomb.len() as i32);
    framed.put_slice(&bomb);
    closes(&framed, false, "huge element count");

    // A batch whose CRC does not match: CORRUPT_MESSAGE for its partition,
    // nothing stored.
    quiver(
        &broker,
        &["topic", "create", "events", "--partitions", "1"],
        None,
    );
    let mut builder = BatchBuilder::default();
    builder
        .push(&NewRecord {
            key: None,
            value: b"value",
            headers: &[],
            timestamp: 1_700_000_000_000,
        })
        .expect("push");
    let mut batch = builder.finish();
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("events"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.into())),
                ]),
        ]);
    let answer = KafkaWire::connect(addr).call(&produce, 9);
    assert_eq!(answer.responses[0].partition_responses[0].error_code, 2);

    // Other clients were never affected.
    let mut wire = KafkaWire::connect(addr);
    let metadata = wire.call(&MetadataRequest::default().with_topics(None), 12);
    assert_eq!(metadata.topics.len(), 1);
    let empty = kcat(
        addr,
        &["-C", "-t", "events", "-o", "beginning", "-e", "-q"],
        None,
    )
    .ok();
    assert_eq!(empty, "");
}
