//! The count check walks exactly what the crate encodes, at every served
//! version, and refuses counts a body cannot hold.

use bytes::{BufMut as _, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, Request as _, StrBytes};
use proptest::prelude::*;

use super::bounds::{self, BoundsError};
use super::{ApiKey, DecodeError, Request, SUPPORTED, decode_request};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A request of every served API at every served version, with `topics`
/// topics of `partitions` partitions each (where the API has them).
fn requests(topics: usize, partitions: usize, text: &str) -> Vec<(ApiKey, BytesMut, i16)> {
    let mut out = Vec::new();
    for &(api, min, max) in SUPPORTED {
        for version in min..=max {
            let mut bytes = BytesMut::new();
            let names = || (0..topics).map(|t| name(&format!("{text}{t}")));
            let encoded = match api {
                ApiKey::ApiVersions => ApiVersionsRequest::default()
                    .with_client_software_name(StrBytes::from_string(text.to_owned()))
                    .with_client_software_version(StrBytes::from_static_str("1.0"))
                    .encode(&mut bytes, version),
                ApiKey::Metadata => MetadataRequest::default()
                    .with_topics(Some(
                        names()
                            .map(|n| MetadataRequestTopic::default().with_name(Some(n)))
                            .collect(),
                    ))
                    .encode(&mut bytes, version),
                ApiKey::Produce => {
                    produce(names().collect(), partitions).encode(&mut bytes, version)
                }
                ApiKey::Fetch => {
                    fetch(names().collect(), partitions, text, version).encode(&mut bytes, version)
                }
                ApiKey::ListOffsets => {
                    list_offsets(names().collect(), partitions).encode(&mut bytes, version)
                }
                other => panic!("no test request for {other:?}"),
            };
            encoded.expect("encode");
            out.push((api, bytes, version));
        }
    }
    out
}

fn produce(topics: Vec<TopicName>, partitions: usize) -> ProduceRequest {
    let data = topics
        .into_iter()
        .map(|topic| {
            TopicProduceData::default()
                .with_name(topic)
                .with_partition_data(
                    (0..partitions)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p as i32)
                                .with_records(Some(Bytes::from(vec![7u8; p])))
                        })
                        .collect(),
                )
        })
        .collect();
    ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(data)
}

fn fetch(topics: Vec<TopicName>, partitions: usize, text: &str, version: i16) -> FetchRequest {
    let list = topics
        .into_iter()
        .map(|topic| {
            FetchTopic::default().with_topic(topic).with_partitions(
                (0..partitions)
                    .map(|p| FetchPartition::default().with_partition(p as i32))
                    .collect(),
            )
        })
        .collect();
    let mut request = FetchRequest::default().with_topics(list);
    if version >= 7 {
        request = request.with_forgotten_topics_data(vec![
            ForgottenTopic::default()
                .with_topic(name(text))
                .with_partitions((0..partitions as i32).collect()),
        ]);
    }
    if version >= 11 {
        request = request.with_rack_id(StrBytes::from_string(text.to_owned()));
    }
    request
}

fn list_offsets(topics: Vec<TopicName>, partitions: usize) -> ListOffsetsRequest {
    let list = topics
        .into_iter()
        .map(|topic| {
            ListOffsetsTopic::default()
                .with_name(topic)
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(p as i32)
                                .with_timestamp(-2)
                        })
                        .collect(),
                )
        })
        .collect();
    ListOffsetsRequest::default().with_topics(list)
}

/// A whole request: header then body.
fn framed(api: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("test"));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, api.request_header_version(version))
        .expect("header");
    out.put_slice(body);
    out.freeze()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The walk consumes exactly the bytes the crate wrote, so its schema
    /// matches the crate's at every version; and the request decodes.
    #[test]
    fn the_walk_matches_the_crate(topics in 0usize..4, partitions in 0usize..5, text in "[a-z]{0,20}") {
        for (api, body, version) in requests(topics, partitions, &text) {
            let walked = bounds::check(api, version, &body)
                .map_err(|e| TestCaseError::fail(format!("{api:?} v{version}: {e}")))?;
            prop_assert_eq!(walked, body.len(), "{:?} v{}", api, version);
            let decoded = decode_request(framed(api, version, 42, &body))
                .map_err(|e| TestCaseError::fail(format!("{api:?} v{version}: {e}")))?;
            prop_assert_eq!(decoded.api, api);
            prop_assert_eq!(decoded.header.correlation_id, 42);
        }
    }

    /// Any truncation of a valid body is refused by the walk or the
    /// decoder, never a panic.
    #[test]
    fn truncated_bodies_are_refused(cut in 0usize..200, topics in 1usize..3) {
        for (api, body, version) in requests(topics, 2, "t") {
            if cut >= body.len() {
                continue;
            }
            let _ = decode_request(framed(api, version, 1, &body[..cut]));
        }
    }

    /// Arbitrary bytes after a valid fixed header decode or fail cleanly.
    #[test]
    fn garbage_never_panics(api in 0i16..20, version in 0i16..14, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = BytesMut::new();
        bytes.put_i16(api);
        bytes.put_i16(version);
        bytes.put_i32(7);
        bytes.put_slice(&body);
        let _ = decode_request(bytes.freeze());
    }
}

#[test]
fn a_huge_count_in_a_tiny_request_is_refused_before_decoding() {
    // Metadata v0: a topics array announcing 54 million entries in 5 bytes
    // (the allocation that aborts a process decoding it unchecked).
    let body = [0x03, 0x3c, 0x0c, 0x00, 0xb6];
    let error = bounds::check(ApiKey::Metadata, 0, &body).expect_err("refused");
    assert!(
        matches!(
            error,
            BoundsError::TooManyElements {
                field: "topics",
                count: 54_266_880,
                ..
            }
        ),
        "{error:?}"
    );
    match decode_request(framed(ApiKey::Metadata, 0, 9, &body)) {
        Err(DecodeError::Malformed {
            correlation_id: 9,
            reason,
            ..
        }) => {
            assert!(reason.contains("topics announces"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_count_within_the_limit_but_beyond_the_bytes_is_refused() {
    // Produce v3, no transactional id, acks -1, timeout, then 1,000 topics
    // announced and none sent.
    let mut body = BytesMut::new();
    body.put_i16(-1);
    body.put_i16(-1);
    body.put_i32(30_000);
    body.put_i32(1_000);
    let error = bounds::check(ApiKey::Produce, 3, &body).expect_err("refused");
    assert!(
        matches!(
            error,
            BoundsError::TooManyElements {
                count: 1_000,
                left: 0,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn compact_counts_are_checked_too() {
    // Produce v9 (flexible): null transactional id, acks, timeout, then a
    // compact array of u32::MAX - 1 topics.
    let mut body = BytesMut::new();
    body.put_u8(0);
    body.put_i16(1);
    body.put_i32(1_000);
    body.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let error = bounds::check(ApiKey::Produce, 9, &body).expect_err("refused");
    assert!(
        matches!(error, BoundsError::TooManyElements { .. }),
        "{error:?}"
    );
}

#[test]
fn unserved_apis_and_versions_keep_their_correlation_id() {
    let produce_v2 = framed(ApiKey::Produce, 2, 5, &[]);
    assert!(matches!(
        decode_request(produce_v2),
        Err(DecodeError::UnsupportedVersion {
            api: ApiKey::Produce,
            version: 2,
            min: 3,
            correlation_id: 5,
            ..
        })
    ));
    let sasl = framed(ApiKey::SaslHandshake, 1, 6, &[]);
    assert!(matches!(
        decode_request(sasl),
        Err(DecodeError::UnknownApi {
            api_key: 17,
            correlation_id: 6
        })
    ));
    let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 8]);
    assert!(matches!(
        decode_request(unknown),
        Err(DecodeError::UnknownApi {
            api_key: 0x7f00,
            correlation_id: 8
        })
    ));
    assert_eq!(
        decode_request(Bytes::from_static(&[0, 18])),
        Err(DecodeError::TooShort(2))
    );
}

#[test]
fn size_prefixes_are_checked_against_the_limit() {
    assert_eq!(super::request_size(100i32.to_be_bytes()), Ok(100));
    assert_eq!(super::request_size((-1i32).to_be_bytes()), Err(-1));
    let over = super::MAX_KAFKA_REQUEST_BYTES as i32 + 1;
    assert_eq!(super::request_size(over.to_be_bytes()), Err(over));
}

#[test]
fn a_produce_request_keeps_its_record_bytes() {
    let body = requests(1, 3, "clicks")
        .into_iter()
        .find(|(api, _, version)| *api == ApiKey::Produce && *version == 9)
        .expect("produce v9")
        .1;
    let decoded = decode_request(framed(ApiKey::Produce, 9, 3, &body)).expect("decodes");
    let Request::Produce(produce) = decoded.request else {
        panic!("not a produce request");
    };
    let partitions = &produce.topic_data[0].partition_data;
    assert_eq!(partitions.len(), 3);
    assert_eq!(partitions[2].records.as_deref(), Some(&[7u8, 7][..]));
    assert_eq!(ProduceRequest::KEY, ApiKey::Produce as i16);
}
