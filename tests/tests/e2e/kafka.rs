//! The Kafka listener with a real Kafka client (kcat, librdkafka) and with
//! hand-made requests on a bare TCP connection, against `quiver serve`.
//!
//! kcat comes from Debian, confluent-kafka and kafka-python from `PyPI`:
//! `tests/kafka_clients/setup.sh` installs them (the README's test command
//! and `.ci/run` run it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrementalResource, AlterableConfig as IncrementalAlterableConfig,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetFetchRequest, ProduceRequest, ProducerId, SyncGroupRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as RecordTimestampType,
};
use quiver_host::kafka::{KafkaConfig, MAX_PIPELINED_PRODUCES};
use quiver_host::service::MAX_INFLIGHT_REQUEST_BYTES;
use quiver_proto::batch::{BatchBuilder, NewRecord};
use quiver_proto::kafka::MAX_KAFKA_REQUEST_BYTES;
use quiver_proto::partitioner::partition_for_key;
use quiver_tests::cli::run_quiver;
use quiver_tests::kafka::{
    KafkaWire, correlation_id, header_bytes, kcat, kcat_read, python, python_command,
};
use quiver_tests::{BrokerProcess, TestBroker, quiver_bin, quiver_command};

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

    let read = kcat_read(kafka, "clicks", "%k %p %o %s\n");
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
    let mut batch = one_record_batch();
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
    assert_eq!(produce_to_first_partition(addr, "events", batch), 2);

    // A compression bomb: a 1 KiB zstd batch whose records would take
    // 40 MiB. MESSAGE_TOO_LARGE once decompression passes its limit,
    // nothing stored.
    let mut fake = one_record_batch();
    fake.truncate(61);
    fake.resize(61 + 40 * 1024 * 1024, 0);
    let length = (fake.len() - 12) as i32;
    fake[8..12].copy_from_slice(&length.to_be_bytes());
    let bomb = quiver_proto::batch::compress(&fake, quiver_proto::batch::Compression::Zstd)
        .expect("compress");
    assert!(bomb.len() < 4096, "{} bytes", bomb.len());
    assert_eq!(produce_to_first_partition(addr, "events", bomb), 10);

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

/// `DeleteRecords` moves a partition's log start to any offset, inside a
/// batch too: kcat and the Quiver CLI then read from there; an offset past
/// the high watermark, an unknown partition and an unknown topic are
/// refused with Kafka's codes; -1 deletes everything.
#[test]
fn delete_records_moves_the_log_start_even_inside_a_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    quiver(&broker, &["topic", "create", "events"], None);
    for batch in 0..3 {
        let lines = (0..10).fold(String::new(), |mut lines, i| {
            let _ = writeln!(lines, "v{}", batch * 10 + i);
            lines
        });
        quiver(&broker, &["produce", "events"], Some(&lines));
    }
    let delete = |topic_name: &str, partitions: &[(i32, i64)]| {
        let request = DeleteRecordsRequest::default().with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic(topic_name))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(index, offset)| {
                            DeleteRecordsPartition::default()
                                .with_partition_index(index)
                                .with_offset(offset)
                        })
                        .collect(),
                ),
        ]);
        let answer = KafkaWire::connect(kafka).call(&request, 2);
        answer.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.low_watermark, p.error_code))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        delete("events", &[(0, 15), (4, 1)]),
        [(0, 15, 0), (4, -1, 3)],
        "partition 0 starts at 15; there is no partition 4"
    );
    assert_eq!(delete("events", &[(0, 31)]), [(0, -1, 1)], "past the end");
    assert_eq!(delete("events", &[(0, 3)]), [(0, 15, 0)], "below the start");
    assert_eq!(delete("nowhere", &[(0, 1)]), [(0, -1, 3)]);
    assert_eq!(
        delete("events", &[(-1, 1), (0, -5)]),
        [(-1, -1, 3), (0, -1, 1)]
    );
    let read = kcat_read(kafka, "events", "%o %s\n");
    let expected = (15..30).fold(String::new(), |mut lines, i| {
        let _ = writeln!(lines, "{i} v{i}");
        lines
    });
    assert_eq!(read, expected);
    let through_quic = quiver(&broker, &["consume", "events", "--format", "%o %v"], None);
    assert_eq!(through_quic, expected);
    assert_eq!(delete("events", &[(0, -1)]), [(0, 30, 0)]);
    assert_eq!(kcat_read(kafka, "events", "%o %s\n"), "");
}

/// `ListOffsets` by time answers the first record at or after the time
/// with that record's own timestamp (not the one asked for), -1 when no
/// record is that recent, and the log start and high watermark for -2 and
/// -1.
#[test]
fn list_offsets_by_time_answers_the_found_record_s_timestamp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    quiver(&broker, &["topic", "create", "clicks"], None);
    for ts in ["1000", "2000", "3000"] {
        quiver(
            &broker,
            &["produce", "clicks", "--timestamp", ts],
            Some("a\nb\nc\nd\ne\n"),
        );
    }
    let mut wire = KafkaWire::connect(kafka);
    let mut lookup = |timestamp: i64| {
        let answer = wire.call(&first_partition_offset("clicks", timestamp), 6);
        let p = &answer.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        (p.offset, p.timestamp)
    };
    assert_eq!(lookup(1500), (5, 2000));
    assert_eq!(lookup(2000), (5, 2000));
    assert_eq!(lookup(0), (0, 1000));
    assert_eq!(lookup(3001), (-1, -1));
    assert_eq!(lookup(-2), (0, -1));
    assert_eq!(lookup(-1), (15, -1));
}

/// A `ListOffsets` request for partition 0 of `name` at `timestamp` (-1
/// latest, -2 earliest, else by time).
fn first_partition_offset(name: &str, timestamp: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp),
                ]),
        ])
}

/// Produces `batch` to partition 0 of `name` with acks=-1 on a new
/// connection; the partition's error code.
fn produce_to_first_partition(addr: SocketAddr, name: &str, batch: Vec<u8>) -> i16 {
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch.into())),
                ]),
        ]);
    let answer = KafkaWire::connect(addr).call(&produce, 9);
    answer.responses[0].partition_responses[0].error_code
}

/// Produce requests pipelined on one connection (librdkafka and the Java
/// client send up to five at once), three times as many as the broker
/// queues at once, are appended in the order sent and answered in order; a
/// `ListOffsets` request behind them is answered after them and sees
/// everything they wrote; kcat reads the records in the order sent.
#[test]
fn pipelined_produce_requests_are_appended_and_answered_in_order() {
    const PER_BATCH: usize = 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    quiver(&broker, &["topic", "create", "piped"], None);
    let requests = 3 * MAX_PIPELINED_PRODUCES;
    let value = |i: usize, j: usize| format!("request {i} record {j}");
    let mut wire = KafkaWire::connect(kafka);
    let sent: Vec<i32> = (0..requests)
        .map(|i| {
            let mut builder = BatchBuilder::default();
            for j in 0..PER_BATCH {
                let value = value(i, j);
                let record = NewRecord {
                    key: None,
                    value: Some(value.as_bytes()),
                    headers: &[],
                    timestamp: 1_700_000_000_000,
                };
                builder.push(&record).expect("push");
            }
            let request = ProduceRequest::default()
                .with_acks(-1)
                .with_topic_data(vec![
                    TopicProduceData::default()
                        .with_name(topic("piped"))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(builder.finish().into())),
                        ]),
                ]);
            wire.send(&request, 9)
        })
        .collect();
    let asked = wire.send(&first_partition_offset("piped", -1), 6);
    for (i, id) in sent.into_iter().enumerate() {
        let answer = wire.receive::<ProduceRequest>(id, 9);
        let partition = &answer.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.base_offset, (i * PER_BATCH) as i64);
    }
    let end = wire.receive::<ListOffsetsRequest>(asked, 6);
    assert_eq!(
        end.topics[0].partitions[0].offset,
        (requests * PER_BATCH) as i64
    );
    let read = kcat_read(kafka, "piped", "%s\n");
    let expected: Vec<String> = (0..requests)
        .flat_map(|i| (0..PER_BATCH).map(move |j| value(i, j)))
        .collect();
    assert_eq!(read.lines().collect::<Vec<_>>(), expected);
}

/// A batch of one record, as the Quiver SDK builds it.
fn one_record_batch() -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    builder
        .push(&NewRecord {
            key: None,
            value: Some(b"value"),
            headers: &[],
            timestamp: 1_700_000_000_000,
        })
        .expect("push");
    builder.finish()
}

/// Topic admin and committed offsets through Kafka's admin and group
/// APIs, seen by Quiver's own CLI too: create (with a config, a bad
/// replication factor, a duplicate, a dry run), describe and alter configs
/// (incremental and whole), add partitions, commit and fetch offsets of a
/// standalone consumer's group, find its coordinator, list, describe and
/// delete it, delete the topic.
#[test]
#[expect(clippy::too_many_lines, reason = "one scenario, step by step")]
fn topic_admin_and_offsets_through_the_kafka_protocol() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    let mut wire = KafkaWire::connect(kafka);
    let text = |s: &str| StrBytes::from_string(s.to_owned());

    // Create.
    let creatable = |name: &str, partitions: i32, replication: i16| {
        CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)
    };
    let created = wire.call(
        &CreateTopicsRequest::default().with_topics(vec![
            creatable("orders", 3, 1).with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name(text("retention.ms"))
                    .with_value(Some(text("60000"))),
            ]),
            creatable("mirrored", 1, 3),
            creatable("orders", 3, -1),
        ]),
        7,
    );
    let codes: Vec<i16> = created.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, 38, 36]);
    assert_eq!(created.topics[0].num_partitions, 3);
    let dry = wire.call(
        &CreateTopicsRequest::default()
            .with_topics(vec![creatable("dry", 2, -1)])
            .with_validate_only(true),
        7,
    );
    assert_eq!(dry.topics[0].error_code, 0);
    let listed = quiver(&broker, &["topic", "list"], None);
    assert!(
        listed.contains("orders") && !listed.contains("dry"),
        "{listed}"
    );

    // Describe and alter configs.
    let describe = |wire: &mut KafkaWire| {
        let response = wire.call(
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(text("orders")),
            ]),
            4,
        );
        assert_eq!(response.results[0].error_code, 0);
        response.results[0]
            .configs
            .iter()
            .map(|c| {
                let value = c
                    .value
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (c.name.to_string(), (value, c.config_source))
            })
            .collect::<BTreeMap<String, (String, i8)>>()
    };
    let configs = describe(&mut wire);
    assert_eq!(configs["retention.ms"], ("60000".to_owned(), 1));
    assert_eq!(configs["retention.bytes"], ("-1".to_owned(), 5));
    assert_eq!(configs["cleanup.policy"].0, "delete");

    let incremental = |name: &str, operation: i8, value: Option<&str>| {
        IncrementalAlterableConfig::default()
            .with_name(text(name))
            .with_config_operation(operation)
            .with_value(value.map(text))
    };
    let altered = wire.call(
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            IncrementalResource::default()
                .with_resource_type(2)
                .with_resource_name(text("orders"))
                .with_configs(vec![
                    incremental("retention.bytes", 0, Some("1000000")),
                    incremental("retention.ms", 1, None),
                ]),
        ]),
        1,
    );
    assert_eq!(altered.responses[0].error_code, 0);
    let configs = describe(&mut wire);
    assert_eq!(configs["retention.ms"], ("-1".to_owned(), 5));
    assert_eq!(configs["retention.bytes"], ("1000000".to_owned(), 1));
    let unknown = wire.call(
        &IncrementalAlterConfigsRequest::default().with_resources(vec![
            IncrementalResource::default()
                .with_resource_type(2)
                .with_resource_name(text("orders"))
                .with_configs(vec![incremental("segment.bytes", 0, Some("1"))]),
        ]),
        1,
    );
    assert_eq!(unknown.responses[0].error_code, 40);
    // A whole alter resets what it does not name.
    let whole = wire.call(
        &AlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(text("orders"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(text("retention.ms"))
                        .with_value(Some(text("5000"))),
                ]),
        ]),
        2,
    );
    assert_eq!(whole.responses[0].error_code, 0);
    let configs = describe(&mut wire);
    assert_eq!(configs["retention.ms"], ("5000".to_owned(), 1));
    assert_eq!(configs["retention.bytes"], ("-1".to_owned(), 5));

    // More partitions; never fewer.
    let grow = |wire: &mut KafkaWire, count: i32| {
        wire.call(
            &CreatePartitionsRequest::default().with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(topic("orders"))
                    .with_count(count),
            ]),
            3,
        )
        .results[0]
            .error_code
    };
    assert_eq!(grow(&mut wire, 5), 0);
    assert_eq!(grow(&mut wire, 2), 37);
    let metadata = wire.call(
        &MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("orders"))),
        ])),
        12,
    );
    assert_eq!(metadata.topics[0].partitions.len(), 5);

    // A standalone consumer's offsets, committed and fetched.
    let coordinator = wire.call(
        &FindCoordinatorRequest::default().with_key(text("billing")),
        3,
    );
    assert_eq!(
        (coordinator.error_code, coordinator.port),
        (0, i32::from(kafka.port()))
    );
    let batched = wire.call(
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![text("billing")]),
        4,
    );
    assert_eq!(batched.coordinators[0].port, i32::from(kafka.port()));
    let committed = wire.call(
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(text("billing")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(5),
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(7),
                    ]),
            ]),
        8,
    );
    let codes: Vec<i16> = committed.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, [0, 0]);
    let fetched = wire.call(
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(text("billing")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partition_indexes(vec![0, 1, 2]),
            ])),
        7,
    );
    let offsets: Vec<i64> = fetched.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect();
    assert_eq!(offsets, [5, 7, -1]);
    let all = wire.call(
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default().with_group_id(GroupId(text("billing"))),
        ]),
        8,
    );
    assert_eq!(all.groups[0].topics[0].partitions.len(), 2);
    let described = quiver(&broker, &["group", "describe", "billing"], None);
    assert!(described.contains("orders\t1\t"), "{described}");

    // List, describe, delete the group.
    let groups = |wire: &mut KafkaWire| -> Vec<String> {
        wire.call(&ListGroupsRequest::default(), 4)
            .groups
            .iter()
            .map(|g| g.group_id.0.to_string())
            .collect()
    };
    assert_eq!(groups(&mut wire), ["billing"]);
    let description = wire.call(
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(text("billing"))]),
        5,
    );
    assert_eq!(description.groups[0].error_code, 0);
    assert!(description.groups[0].members.is_empty());
    let deleted = wire.call(
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text("billing"))]),
        2,
    );
    assert_eq!(deleted.results[0].error_code, 0);
    assert!(groups(&mut wire).is_empty());

    // Delete the topic (by name in version 6's list, and an unknown one in
    // version 4's).
    let removed = wire.call(
        &DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic("orders"))),
        ]),
        6,
    );
    assert_eq!(removed.responses[0].error_code, 0);
    let unknown = wire.call(
        &DeleteTopicsRequest::default().with_topic_names(vec![topic("nothing")]),
        4,
    );
    assert_eq!(unknown.responses[0].error_code, 3);
    assert!(!quiver(&broker, &["topic", "list"], None).contains("orders"));
}

/// The seed's scenario across languages: kafka-python (Python) writes
/// keyed click and upload events; kcat (C, librdkafka) reads them with key,
/// partition and offset; the Quiver CLI reads the same records. Every key
/// is on the partition Kafka's own partitioner (murmur2) gives it, which is
/// also the Quiver SDK's.
#[test]
fn a_python_producer_kcat_and_the_quiver_cli_see_the_same_events() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    quiver(
        &broker,
        &["topic", "create", "events", "--partitions", "3"],
        None,
    );
    assert_eq!(python("produce_events.py", kafka, &[]).ok().trim(), "50");

    let read = kcat_read(kafka, "events", "%k %p %o %s\n");
    let lines: Vec<Vec<&str>> = read.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    assert_eq!(lines.len(), 50, "{read}");
    for line in &lines {
        let expected = partition_for_key(line[0].as_bytes(), 3);
        assert_eq!(
            line[1],
            expected.to_string(),
            "key {} on partition {}",
            line[0],
            line[1]
        );
        assert!(
            line[3].contains(&format!("\"user\": \"{}\"", line[0])),
            "{}",
            line[3]
        );
    }
    let uploads = lines.iter().filter(|l| l[3].contains("upload")).count();
    assert_eq!(uploads, 10);

    let mut through_quic: Vec<String> = quiver(
        &broker,
        &["consume", "events", "--format", "%k %p %o %v"],
        None,
    )
    .lines()
    .map(str::to_owned)
    .collect();
    let mut through_kafka: Vec<String> = read.lines().map(str::to_owned).collect();
    through_quic.sort_unstable();
    through_kafka.sort_unstable();
    assert_eq!(through_quic, through_kafka);
}

/// Two confluent-kafka consumers in one group share the partitions without
/// duplicates; one leaves and the other takes over from the committed
/// offsets (the script checks each step); `quiver group describe` shows
/// the group's committed offsets afterwards. The classic protocol, then
/// KIP-848's (`group.protocol=consumer`).
#[test]
fn confluent_kafka_group_members_share_and_take_over() {
    group_members_share_and_take_over("classic");
}

#[test]
fn confluent_kafka_kip_848_group_members_share_and_take_over() {
    group_members_share_and_take_over("consumer");
}

fn group_members_share_and_take_over(protocol: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    assert_eq!(
        python("group_takeover.py", kafka, &[protocol]).ok().trim(),
        "140"
    );
    let described = quiver(&broker, &["group", "describe", "dashboards"], None);
    let committed: u64 = described
        .lines()
        .filter(|l| l.starts_with("clicks\t"))
        .map(|l| {
            l.split('\t')
                .nth(3)
                .and_then(|c| c.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(committed, 140, "{described}");
}

/// kafka-python commits part of a topic and a new consumer in the group
/// resumes from there (the script checks each step).
#[test]
fn kafka_python_commits_and_resumes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    assert_eq!(python("commit_resume.py", kafka, &[]).ok().trim(), "30");
}

/// The classic group protocol on the wire: a new member gets its id first
/// (KIP-394), joins as leader, assigns, heartbeats; a commit at another
/// generation is refused with `ILLEGAL_GENERATION`; leaving empties the group.
#[test]
fn kafka_group_members_on_the_wire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let mut wire = KafkaWire::connect(broker.kafka_addr().expect("Kafka listener"));
    quiver(
        &broker,
        &["topic", "create", "views", "--partitions", "2"],
        None,
    );
    let text = |s: &str| StrBytes::from_string(s.to_owned());
    let group = GroupId(text("wire"));
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(group.clone())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(text(member))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(text("range"))
                    .with_metadata(Bytes::from_static(b"subscription")),
            ])
    };
    let first = wire.call(&join(""), 9);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = first.member_id.to_string();
    let joined = wire.call(&join(&member), 9);
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader.to_string(), member);
    assert_eq!(
        joined.members[0].metadata,
        Bytes::from_static(b"subscription")
    );
    let synced = wire.call(
        &SyncGroupRequest::default()
            .with_group_id(group.clone())
            .with_generation_id(1)
            .with_member_id(text(&member))
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(text(&member))
                    .with_assignment(Bytes::from_static(b"both partitions")),
            ]),
        5,
    );
    assert_eq!(synced.assignment, Bytes::from_static(b"both partitions"));
    let beat = |generation: i32, wire: &mut KafkaWire| {
        wire.call(
            &HeartbeatRequest::default()
                .with_group_id(group.clone())
                .with_generation_id(generation)
                .with_member_id(text(&member)),
            4,
        )
        .error_code
    };
    assert_eq!(beat(1, &mut wire), 0);
    assert_eq!(beat(2, &mut wire), 22);
    let commit = |generation: i32, wire: &mut KafkaWire| {
        wire.call(
            &OffsetCommitRequest::default()
                .with_group_id(group.clone())
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(text(&member))
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(topic("views"))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(3),
                        ]),
                ]),
            8,
        )
        .topics[0]
            .partitions[0]
            .error_code
    };
    assert_eq!(commit(7, &mut wire), 22, "ILLEGAL_GENERATION");
    assert_eq!(commit(1, &mut wire), 0);
    let described = quiver(&broker, &["group", "describe", "wire"], None);
    assert!(
        described.contains("Stable") && described.contains(&member),
        "{described}"
    );
    let left = wire.call(
        &LeaveGroupRequest::default()
            .with_group_id(group.clone())
            .with_members(vec![
                MemberIdentity::default().with_member_id(text(&member)),
            ]),
        5,
    );
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(beat(1, &mut wire), 25, "UNKNOWN_MEMBER_ID after leaving");
}

/// A batch from an idempotent producer, encoded by the `kafka-protocol`
/// crate as a Kafka client would.
fn idempotent_batch(producer_id: i64, epoch: i16, first_sequence: i32, values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .zip(0..)
        .map(|(value, i)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: RecordTimestampType::Creation,
            offset: i64::from(i),
            sequence: first_sequence + i,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from((*value).to_owned())),
            headers: kafka_protocol::indexmap::IndexMap::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode a batch");
    out.freeze()
}

/// Idempotent producers: ids and epochs from `InitProducerId`; a batch
/// sent again is stored once and answered with its first offset, also
/// after a SIGKILL of the broker (the producer state is stored with the
/// log); a gap in the sequence is `OUT_OF_ORDER_SEQUENCE_NUMBER`, an old
/// epoch `INVALID_PRODUCER_EPOCH`; a transactional id is refused.
#[test]
fn idempotent_producers_are_deduplicated_across_a_crash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    quiver(
        &broker,
        &["topic", "create", "payments", "--partitions", "1"],
        None,
    );
    let mut wire = KafkaWire::connect(broker.kafka_addr().expect("Kafka listener"));
    let first = wire.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1)),
        4,
    );
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let producer = first.producer_id;
    let bumped = wire.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(producer)
            .with_producer_epoch(0),
        4,
    );
    assert_eq!((bumped.producer_id, bumped.producer_epoch), (producer, 1));
    let transactional = wire.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("txn")))),
        4,
    );
    assert_eq!(transactional.error_code, 15);

    let produce = |wire: &mut KafkaWire, batch: Bytes| {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic("payments"))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch)),
                    ]),
            ]);
        let answer = wire.call(&request, 9);
        let p = &answer.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    };
    let id = producer.0;
    assert_eq!(
        produce(&mut wire, idempotent_batch(id, 1, 0, &["a", "b", "c"])),
        (0, 0)
    );
    assert_eq!(
        produce(&mut wire, idempotent_batch(id, 1, 0, &["a", "b", "c"])),
        (0, 0),
        "a retry"
    );
    assert_eq!(
        produce(&mut wire, idempotent_batch(id, 1, 3, &["d"])),
        (0, 3)
    );
    assert_eq!(
        produce(&mut wire, idempotent_batch(id, 1, 9, &["x"])).0,
        45,
        "a gap"
    );
    assert_eq!(
        produce(&mut wire, idempotent_batch(id, 0, 4, &["y"])).0,
        47,
        "an old epoch"
    );

    // The broker dies; a retry of the last batch after the restart is
    // still recognised.
    let addr = broker.addr();
    broker.kill();
    let broker = BrokerProcess::spawn_on(dir.path(), addr);
    let mut wire = KafkaWire::connect(broker.kafka_addr().expect("Kafka listener"));
    assert_eq!(
        produce(&mut wire, idempotent_batch(id, 1, 3, &["d"])),
        (0, 3),
        "a retry after the crash"
    );
    assert_eq!(
        produce(&mut wire, idempotent_batch(id, 1, 4, &["e"])),
        (0, 4)
    );
    let read = kcat_read(
        broker.kafka_addr().expect("Kafka listener"),
        "payments",
        "%s",
    );
    assert_eq!(read, "abcde");
}

/// A SIGKILL of the broker under a Kafka producer (acks=all, idempotent)
/// loses no record the producer saw acknowledged.
#[test]
fn a_sigkill_loses_nothing_a_kafka_producer_saw_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    let addr = broker.addr();
    quiver(
        &broker,
        &["topic", "create", "ledger", "--partitions", "2"],
        None,
    );
    let mut producer = python_command("produce_until_killed.py", kafka)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the producer");
    let lines = BufReader::new(producer.stdout.take().expect("stdout")).lines();
    let mut broker = Some(broker);
    let mut acked = BTreeSet::new();
    for line in lines.map_while(Result::ok) {
        if let Some(value) = line.strip_prefix("acked ") {
            acked.insert(value.parse::<u32>().expect("a number"));
        }
        // Kill the broker mid-stream, once a good share is acknowledged.
        if acked.len() >= 3_000
            && let Some(running) = broker.take()
        {
            running.kill();
        }
    }
    let status = producer.wait().expect("the producer exits");
    assert!(status.success(), "{status}");
    assert!(broker.is_none(), "the broker was killed under load");
    let broker = BrokerProcess::spawn_on(dir.path(), addr);
    let stored: BTreeSet<u32> = kcat_read(
        broker.kafka_addr().expect("Kafka listener"),
        "ledger",
        "%s\n",
    )
    .lines()
    .map(|l| l.parse().expect("a number"))
    .collect();
    let lost: Vec<&u32> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// `--kafka-tls-listen`: kcat reaches the broker over TLS, trusting the
/// broker's certificate, and Metadata there hands out the TLS port.
#[test]
fn kafka_clients_connect_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn_with(
        dir.path(),
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &["--kafka-tls-listen", "127.0.0.1:0"],
    );
    let tls = broker.kafka_tls_addr().expect("the TLS listener runs");
    let ca = format!("ssl.ca.location={}", broker.ca().display());
    let with_tls = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| (*a).to_owned())
            .chain(["-X", "security.protocol=ssl", "-X", &ca].map(str::to_owned))
            .collect()
    };
    let run = |args: Vec<String>, input: Option<&[u8]>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kcat(tls, &args, input).ok()
    };
    run(
        with_tls(&["-P", "-t", "secure", "-K:"]),
        Some(b"k:sealed\n"),
    );
    let read = run(
        with_tls(&[
            "-C",
            "-t",
            "secure",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k %s\n",
        ]),
        None,
    );
    assert_eq!(read, "k sealed\n");
    let metadata = run(with_tls(&["-L"]), None);
    assert!(metadata.contains(&format!("at {tls}")), "{metadata}");
}

/// `quiver bench kafka-produce` writes every record through the Kafka
/// listener (batches split over the producers and partitions), and `bench
/// kafka-consume` reads them back.
#[test]
fn bench_kafka_produce_and_consume_go_through_the_kafka_listener() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    let out = quiver(
        &broker,
        &[
            "bench",
            "kafka-produce",
            "--kafka",
            &kafka.to_string(),
            "--records",
            "2500",
            "--producers",
            "2",
            "--partitions",
            "2",
            "--keep",
            "--json",
        ],
        None,
    );
    let summary: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("a summary")).expect("JSON");
    assert_eq!(summary["records"], 2500);
    assert_eq!(summary["bench"], "kafka-produce");
    let read = kcat_read(kafka, "bench", "%p %o\n");
    assert_eq!(read.lines().count(), 2500, "{read}");
    assert!(
        read.lines().any(|l| l.starts_with("1 ")),
        "both partitions written"
    );
    // And `bench kafka-consume` reads them back, two consumers sharing the
    // partitions.
    let out = quiver(
        &broker,
        &[
            "bench",
            "kafka-consume",
            "--kafka",
            &kafka.to_string(),
            "--records",
            "2500",
            "--consumers",
            "2",
            "--json",
        ],
        None,
    );
    let summary: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("a summary")).expect("JSON");
    assert_eq!(summary["bench"], "kafka-consume");
    assert_eq!(summary["records"], 2500);
}

/// Requests announced near the size limit and never sent hold none of the
/// broker's request memory: with more of them than the whole budget
/// stalled, a 70 KB produce (above the small-request size, so it needs the
/// budget) is still answered.
#[test]
fn announced_kafka_requests_hold_no_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::spawn(dir.path());
    let kafka = broker.kafka_addr().expect("Kafka listener");
    quiver(
        &broker,
        &["topic", "create", "big", "--partitions", "1"],
        None,
    );
    // The largest size allowed: 32 of them take the whole budget.
    let announced = i32::try_from(MAX_KAFKA_REQUEST_BYTES).expect("fits");
    let stalled: Vec<KafkaWire> = (0..36)
        .map(|_| {
            let mut wire = KafkaWire::connect(kafka);
            wire.send_raw(&i32::to_be_bytes(announced));
            wire
        })
        .collect();
    assert!(36 * announced as usize > MAX_INFLIGHT_REQUEST_BYTES);
    let mut builder = BatchBuilder::default();
    let value = [b'v'; 100];
    for _ in 0..700 {
        builder
            .push(&NewRecord {
                key: None,
                value: Some(&value),
                headers: &[],
                timestamp: 1_700_000_000_000,
            })
            .expect("push");
    }
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("big"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(builder.finish()))),
                ]),
        ]);
    let answer = KafkaWire::connect(kafka).call(&request, 9);
    assert_eq!(answer.responses[0].partition_responses[0].error_code, 0);
    drop(stalled);
}

/// A Kafka client that connects and sends nothing is let go after the
/// first-request deadline (shortened here), while one that talks stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_kafka_connection_is_closed_after_the_first_request_deadline() {
    let (_broker, addr) =
        with_kafka(|kafka| kafka.first_request_timeout = Duration::from_millis(200)).await;
    tokio::task::spawn_blocking(move || {
        let mut silent = KafkaWire::connect(addr);
        let mut talking = KafkaWire::connect(addr);
        talking.call(&ApiVersionsRequest::default(), 3);
        assert!(
            silent.closed_by_broker(),
            "the silent connection stays open"
        );
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            talking.call(&ApiVersionsRequest::default(), 3).error_code,
            0
        );
    })
    .await
    .expect("the clients");
}

/// One client address holds at most `--max-connections-per-ip` Kafka
/// connections (2 here); the next is closed at once, the others serve on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_kafka_connections() {
    let (_broker, addr) = with_kafka(|kafka| kafka.max_connections_per_ip = 2).await;
    tokio::task::spawn_blocking(move || {
        let mut first = KafkaWire::connect(addr);
        let mut second = KafkaWire::connect(addr);
        first.call(&ApiVersionsRequest::default(), 3);
        second.call(&ApiVersionsRequest::default(), 3);
        assert!(
            KafkaWire::connect(addr).closed_by_broker(),
            "a third was let in"
        );
        assert_eq!(first.call(&ApiVersionsRequest::default(), 3).error_code, 0);
        assert_eq!(second.call(&ApiVersionsRequest::default(), 3).error_code, 0);
    })
    .await
    .expect("the clients");
}

/// An in-process broker whose Kafka listener `adjust` configures, and that
/// listener's address.
async fn with_kafka(
    adjust: impl Fn(&mut KafkaConfig) + Send + Sync + 'static,
) -> (TestBroker, SocketAddr) {
    let broker = TestBroker::start_with(move |config| {
        let mut kafka = KafkaConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        adjust(&mut kafka);
        config.kafka = Some(kafka);
    })
    .await;
    let addr = broker
        .broker()
        .kafka_addr()
        .expect("the Kafka listener runs");
    (broker, addr)
}

/// A Kafka port already taken (say, by a Kafka broker on this machine)
/// stops `quiver serve` with one line that names the flag to change, and a
/// first start leaves no data directory behind.
#[test]
fn a_taken_kafka_port_is_one_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let mut serve = Command::new(quiver_bin());
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "off"])
        .args(["--kafka-listen", &port, "--data-dir"])
        .arg(&data);
    let run = run_quiver(serve, None);
    assert_eq!(run.code, Some(1), "{run:?}");
    // The broker's log lines come first; the error is the last line.
    let error = run.stderr.lines().last().unwrap_or_default().to_owned();
    assert!(error.starts_with("error: "), "{error}");
    assert!(
        error.contains(&format!("cannot listen for Kafka clients on {port}")),
        "{error}"
    );
    assert!(error.contains("--kafka-listen off"), "{error}");
    assert!(
        !data.exists(),
        "a failed first start left its data directory"
    );
}
