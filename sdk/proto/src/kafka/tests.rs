//! The count check walks exactly what the crate encodes, at every served
//! version, and refuses counts a body cannot hold.

use bytes::{BufMut as _, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

use super::bounds::{self, BoundsError};
use super::schemas::{
    CONSUMER_PROTOCOL_ASSIGNMENT, CONSUMER_PROTOCOL_SUBSCRIPTION, Field, Schema, Shape, schema,
};
use super::{ApiKey, DecodeError, Request, SUPPORTED, decode_request};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A small deterministic random source (xorshift), seeded by proptest.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Writes a random body from a schema, as a client would: the inverse of
/// the walk, so the crate decoding and re-encoding it byte for byte shows
/// that the schema and the crate agree.
struct Writer {
    rng: Rng,
    version: i16,
    flexible: bool,
    out: BytesMut,
}

impl Writer {
    fn fields(&mut self, fields: &[Field]) {
        for f in fields {
            if f.tag.is_none() && f.in_version(self.version) {
                self.shape(f.shape);
            }
        }
        if self.flexible {
            // No tagged fields.
            self.out.put_u8(0);
        }
    }

    fn shape(&mut self, shape: Shape) {
        match shape {
            // Booleans must read back as written.
            Shape::Fixed(1) => self.out.put_u8(self.rng.below(2) as u8),
            Shape::Fixed(n) => {
                for _ in 0..n {
                    self.out.put_u8(self.rng.below(256) as u8);
                }
            }
            Shape::String => {
                let len = self.rng.below(6) as usize;
                self.length(len, 2);
                for _ in 0..len {
                    self.out.put_u8(b'a' + self.rng.below(26) as u8);
                }
            }
            Shape::Bytes => {
                let len = self.rng.below(6) as usize;
                self.length(len, 4);
                for _ in 0..len {
                    self.out.put_u8(self.rng.below(256) as u8);
                }
            }
            Shape::Structs(inner) => {
                let count = self.rng.below(3) as usize;
                self.length(count, 4);
                for _ in 0..count {
                    self.fields(inner);
                }
            }
            Shape::Values(n) => {
                let count = self.rng.below(3) as usize;
                self.length(count, 4);
                for _ in 0..count * n {
                    self.out.put_u8(self.rng.below(256) as u8);
                }
            }
            Shape::Strings => {
                let count = self.rng.below(3) as usize;
                self.length(count, 4);
                for _ in 0..count {
                    self.shape(Shape::String);
                }
            }
        }
    }

    /// A length or count: compact (varint of n + 1) or `width` bytes.
    fn length(&mut self, n: usize, width: usize) {
        if self.flexible {
            let mut v = n as u32 + 1;
            while v >= 0x80 {
                self.out.put_u8((v as u8 & 0x7f) | 0x80);
                v >>= 7;
            }
            self.out.put_u8(v as u8);
        } else if width == 2 {
            self.out.put_i16(n as i16);
        } else {
            self.out.put_i32(n as i32);
        }
    }
}

/// A random body of `api` at `version`.
fn random_body(api: ApiKey, version: i16, seed: u64) -> BytesMut {
    random_message(
        schema(api).expect("a served API has a schema"),
        version,
        seed,
    )
}

/// A random message of `schema` at `version`.
fn random_message(schema: Schema, version: i16, seed: u64) -> BytesMut {
    let mut writer = Writer {
        rng: Rng(seed | 1),
        version,
        flexible: version >= schema.flexible_from,
        out: BytesMut::new(),
    };
    writer.fields(schema.fields);
    writer.out
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

    /// For every served API and version: a body written from the schema
    /// walks to its end, decodes with the crate, and re-encodes to the same
    /// bytes, so the schema the walk checks is the layout the crate reads.
    #[test]
    fn the_schemas_match_the_crate(seed in any::<u64>()) {
        for &(api, min, max) in SUPPORTED {
            for version in min..=max {
                let body = random_body(api, version, seed);
                let walked = bounds::check(api, version, &body)
                    .map_err(|e| TestCaseError::fail(format!("{api:?} v{version}: {e}")))?;
                prop_assert_eq!(walked, body.len(), "{:?} v{}", api, version);
                let decoded = decode_request(framed(api, version, 42, &body))
                    .map_err(|e| TestCaseError::fail(format!("{api:?} v{version}: {e}")))?;
                prop_assert_eq!(decoded.header.correlation_id, 42);
                let again = decoded.request.encode_body(version)
                    .map_err(|e| TestCaseError::fail(format!("{api:?} v{version}: {e}")))?;
                prop_assert_eq!(&again[..], &body[..], "{:?} v{}", api, version);
            }
        }
    }

    /// The consumer protocol's messages (client-written, read by the
    /// broker) too, at versions 0 to 3, behind their version prefix.
    #[test]
    fn the_consumer_protocol_schemas_match_the_crate(seed in any::<u64>()) {
        for version in 0..=3i16 {
            for (schema, is_subscription) in [(CONSUMER_PROTOCOL_SUBSCRIPTION, true), (CONSUMER_PROTOCOL_ASSIGNMENT, false)] {
                let body = random_message(schema, version, seed);
                let mut bytes = BytesMut::new();
                bytes.put_i16(version);
                bytes.put_slice(&body);
                let mut again = BytesMut::new();
                if is_subscription {
                    let message = super::consumer_subscription(&bytes).expect("decodes");
                    message.encode(&mut again, version).expect("encodes");
                } else {
                    let message = super::consumer_assignment(&bytes).expect("decodes");
                    message.encode(&mut again, version).expect("encodes");
                }
                prop_assert_eq!(&again[..], &body[..], "version {}", version);
            }
        }
    }

    /// Any truncation of a valid body is refused by the walk or the
    /// decoder, never a panic.
    #[test]
    fn truncated_bodies_are_refused(seed in any::<u64>(), cut in 0usize..64) {
        for &(api, min, max) in SUPPORTED {
            for version in min..=max {
                let body = random_body(api, version, seed);
                if cut < body.len() {
                    let _ = decode_request(framed(api, version, 1, &body[..cut]));
                }
            }
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
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("clicks"))
                .with_partition_data(
                    (0..3)
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(Bytes::from(vec![7u8; p as usize])))
                        })
                        .collect(),
                ),
        ]);
    let mut body = BytesMut::new();
    request.encode(&mut body, 9).expect("encode");
    let decoded = decode_request(framed(ApiKey::Produce, 9, 3, &body)).expect("decodes");
    let Request::Produce(produce) = decoded.request else {
        panic!("not a produce request");
    };
    let partitions = &produce.topic_data[0].partition_data;
    assert_eq!(partitions.len(), 3);
    assert_eq!(partitions[2].records.as_deref(), Some(&[7u8, 7][..]));
}

#[test]
fn a_known_tag_must_fill_its_size() {
    // A Fetch v12 (flexible) body whose top-level tagged fields are one
    // field: tag 0 (the cluster id, a compact string) declaring 1 byte but
    // holding 3 (length 2 + 1, then "id").
    let mut body = random_body(ApiKey::Fetch, 12, 0);
    body.truncate(body.len() - 1);
    body.put_slice(&[1, 0, 1, 3, b'i', b'd']);
    let error = bounds::check(ApiKey::Fetch, 12, &body).expect_err("refused");
    assert!(
        matches!(
            error,
            BoundsError::TagSize {
                tag: 0,
                size: 1,
                held: 3
            }
        ),
        "{error:?}"
    );
}

#[test]
fn long_names_and_too_many_elements_in_all_are_refused() {
    // Metadata v1: one topic whose name is 300 bytes.
    let mut body = BytesMut::new();
    body.put_i32(1);
    body.put_i16(300);
    body.put_slice(&[b'n'; 300]);
    let error = bounds::check(ApiKey::Metadata, 1, &body).expect_err("refused");
    assert!(
        matches!(
            error,
            BoundsError::NameTooLong {
                field: "name",
                len: 300
            }
        ),
        "{error:?}"
    );
    // OffsetFetch v1: three topics of 3,000 partition indexes each (each
    // array within its limit, 9,003 elements in all).
    let mut body = BytesMut::new();
    body.put_i16(1);
    body.put_u8(b'g');
    body.put_i32(3);
    for _ in 0..3 {
        body.put_i16(1);
        body.put_u8(b't');
        body.put_i32(3_000);
        for p in 0..3_000 {
            body.put_i32(p);
        }
    }
    let error = bounds::check(ApiKey::OffsetFetch, 1, &body).expect_err("refused");
    assert!(matches!(error, BoundsError::TooManyInAll), "{error:?}");
}
