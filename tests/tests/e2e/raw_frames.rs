//! Hostile and broken frames on a bare QUIC connection: garbage, truncated
//! frames, length prefixes above the limit or too short to hold a header,
//! heads that are not postcard, streams reset mid-frame, and 200 streams of
//! seeded random garbage.
//!
//! Each stream gets the error frame the frame rules predict (or, when reset,
//! nothing), and the raw connection keeps working. Throughout, a
//! [`Witness`] (a normal SDK producer and consumer on their own connections
//! to the same broker) produces records and reads back exactly those records
//! (keys, values and offsets) between the bad streams and at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use quiver_client::{
    Consumer, ConsumerConfig, ErrorCode, ErrorDetail, Offset, Producer, ProducerConfig,
    ProducerRecord, WireError,
};
use quiver_proto::api::{
    DescribeTopicRequest, ListTopicsRequest, ListTopicsResponse, RequestKind, decode_head,
    encode_request,
};
use quiver_proto::frame::{FrameError, FrameHeader, HEADER_BYTES};
use quiver_proto::limits::{MAX_FRAME_BYTES, MAX_HEAD_BYTES};
use quiver_tests::RecordValue as _;
use quiver_tests::{RawConnection, RawReply, TestBroker, frame};
use tokio::task::JoinSet;

/// The SDK's topic.
const WITNESS: &str = "witness";

/// Upper bound for a poll that has data waiting; polls return at once.
const POLL: Duration = Duration::from_secs(10);

/// A normal SDK producer and consumer that check, round after round, that
/// the broker stores and returns exactly what is sent.
struct Witness {
    producer: Producer,
    consumer: Consumer,
    round: u32,
}

impl Witness {
    /// Creates the witness topic (two partitions) and connects a producer
    /// and a consumer, each on its own connection.
    async fn start(broker: &TestBroker) -> Self {
        broker.create_topic(WITNESS, 2).await;
        let producer = Producer::new(broker.client().await, ProducerConfig::default());
        let config = ConsumerConfig {
            start: Offset::Earliest,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(broker.client().await, config);
        let partitions = consumer
            .assign_topic(WITNESS)
            .await
            .expect("assign the witness topic");
        assert_eq!(partitions, 2);
        Self {
            producer,
            consumer,
            round: 0,
        }
    }

    /// Produces `count` keyed records and reads back exactly those: every
    /// one at the partition and offset its acknowledgement names, with its
    /// key and value, and nothing else.
    async fn round(&mut self, count: usize) {
        self.round += 1;
        let round = self.round;
        let mut pending = Vec::with_capacity(count);
        for i in 0..count {
            let key = format!("key-{}", i % 7);
            let value = format!("round {round} record {i}");
            let record = ProducerRecord::new(WITNESS, value.clone()).key(key.clone());
            let delivery = self.producer.enqueue(record).await.expect("enqueue");
            pending.push((key, value, delivery));
        }
        self.producer.flush().await.expect("flush");
        let mut expected = BTreeMap::new();
        for (key, value, delivery) in pending {
            let ack = delivery
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            expected.insert((ack.partition, ack.offset), (key, value));
        }
        let mut seen = BTreeMap::new();
        while seen.len() < count {
            let records = self
                .consumer
                .poll(POLL)
                .await
                .unwrap_or_else(|e| panic!("round {round}: poll: {e}"));
            assert!(
                !records.is_empty(),
                "round {round}: stalled at {} of {count}",
                seen.len()
            );
            for record in records {
                let key = record.key.clone().expect("witness records have keys");
                let key = String::from_utf8(key.to_vec()).expect("UTF-8 key");
                let value = String::from_utf8(record.value_bytes().to_vec()).expect("UTF-8 value");
                let previous = seen.insert((record.partition, record.offset), (key, value));
                assert!(previous.is_none(), "round {round}: a record came twice");
            }
        }
        assert_eq!(seen, expected, "round {round}");
    }
}

/// The code in an error frame, after checking the frame is one: nonzero
/// code, a head that decodes as a `WireError` with the same code, no body.
fn error_of(reply: &RawReply) -> WireError {
    let RawReply::Frame { header, head, body } = reply else {
        panic!("expected an error frame, got {reply:?}");
    };
    assert_ne!(header.code(), 0, "expected an error, got success");
    let error: WireError = decode_head(head).expect("an error head decodes");
    assert_eq!(error.code.code(), header.code());
    assert!(body.is_empty(), "an error frame carries no body");
    error
}

/// What the broker must answer to `bytes` sent as a whole stream, when the
/// frame rules alone decide it; `None` when the head's content would.
fn expected_code(bytes: &[u8]) -> Option<ErrorCode> {
    let Some(header) = bytes.first_chunk::<HEADER_BYTES>() else {
        return Some(ErrorCode::InvalidRequest);
    };
    let header = match FrameHeader::parse(header) {
        Ok(header) => header,
        Err(FrameError::TooLarge { .. }) => return Some(ErrorCode::FrameTooLarge),
        Err(_) => return Some(ErrorCode::InvalidRequest),
    };
    let rest = &bytes[HEADER_BYTES..];
    if rest.len() < header.rest_len() {
        return Some(ErrorCode::InvalidRequest);
    }
    if rest.len() > header.rest_len() {
        // Bytes after the frame on the same stream: not pinned down here.
        return None;
    }
    let (head, body) = rest.split_at(header.head_len as usize);
    let Some(kind) = RequestKind::from_u16(header.tag) else {
        return Some(ErrorCode::UnknownRequestKind);
    };
    if kind != RequestKind::Produce && !body.is_empty() {
        return Some(ErrorCode::InvalidRequest);
    }
    if header.version != kind.version() {
        return Some(ErrorCode::UnsupportedVersion);
    }
    // A varint that never ends is not the start of any head.
    if head.starts_with(&[0xFF; 11]) {
        return Some(ErrorCode::InvalidRequest);
    }
    None
}

/// The version the broker speaks for request kind `kind`.
fn served_version(kind: u16) -> u16 {
    RequestKind::from_u16(kind).map_or(1, RequestKind::version)
}

/// Sends `bytes`, expects the error `code`, and checks the oracle agrees.
async fn expect(raw: &RawConnection, what: &str, bytes: &[u8], code: ErrorCode) -> WireError {
    assert_eq!(expected_code(bytes), Some(code), "oracle for {what}");
    let error = error_of(&raw.send(bytes).await);
    assert_eq!(error.code, code, "{what}: {}", error.message);
    error
}

/// A 12-byte header with any field values, limits ignored.
fn raw_header(len: u32, kind: u16, version: u16, head_len: u32) -> Vec<u8> {
    FrameHeader {
        len,
        tag: kind,
        version,
        head_len,
    }
    .to_bytes()
    .to_vec()
}

/// A valid `DescribeTopic` head.
fn describe_head(name: &str) -> Vec<u8> {
    let bytes = encode_request(&DescribeTopicRequest { name: name.into() }, 0).expect("encode");
    bytes[HEADER_BYTES..].to_vec()
}

/// The raw connection answers a real request after the bad ones.
async fn assert_raw_works(raw: &RawConnection) {
    let reply = raw
        .send(&encode_request(&ListTopicsRequest, 0).expect("encode"))
        .await;
    let RawReply::Frame { header, head, .. } = reply else {
        panic!("list topics failed: {reply:?}");
    };
    assert_eq!(header.code(), 0);
    let response: ListTopicsResponse = decode_head(&head).expect("a list response");
    let names: Vec<String> = response.topics.into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec![WITNESS.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_short_streams_get_an_error_frame() {
    let broker = TestBroker::start().await;
    let mut witness = Witness::start(&broker).await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;
    witness.round(20).await;

    let cases: [(&str, &[u8], ErrorCode); 7] = [
        ("an empty stream", b"", ErrorCode::InvalidRequest),
        (
            "five bytes",
            b"\x00\x00\x00\x10\x00",
            ErrorCode::InvalidRequest,
        ),
        ("eleven bytes", &[0u8; 11], ErrorCode::InvalidRequest),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: quiver\r\n\r\n",
            ErrorCode::FrameTooLarge,
        ),
        (
            "a TLS record header",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00",
            ErrorCode::FrameTooLarge,
        ),
        ("64 bytes of 0xFF", &[0xFF; 64], ErrorCode::FrameTooLarge),
        ("twelve zero bytes", &[0u8; 12], ErrorCode::InvalidRequest),
    ];
    for (what, bytes, code) in cases {
        expect(&raw, what, bytes, code).await;
        witness.round(5).await;
    }
    assert_raw_works(&raw).await;
    witness.round(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_get_invalid_request() {
    let broker = TestBroker::start().await;
    let mut witness = Witness::start(&broker).await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;
    witness.round(20).await;

    let head = describe_head(WITNESS);
    // The header promises a head of 20 bytes; 5 come, then the stream ends.
    let mut bytes = raw_header(8 + 20, 6, 1, 20);
    bytes.extend_from_slice(&head[..5]);
    expect(&raw, "a cut head", &bytes, ErrorCode::InvalidRequest).await;
    witness.round(5).await;

    // A header alone, promising a head.
    let bytes = raw_header(8 + 8, 6, 1, 8);
    expect(&raw, "a header alone", &bytes, ErrorCode::InvalidRequest).await;
    witness.round(5).await;

    // A produce promising a 1 MiB body, of which 100 bytes come.
    let body_len = 1 << 20;
    let mut bytes = raw_header((8 + head.len() + body_len) as u32, 1, 1, head.len() as u32);
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(&[7u8; 100]);
    expect(&raw, "a cut body", &bytes, ErrorCode::InvalidRequest).await;
    witness.round(5).await;

    // Exactly the frame limit is allowed, so this is truncated, not too large.
    let bytes = raw_header(MAX_FRAME_BYTES, 1, 1, 0);
    expect(
        &raw,
        "a frame at the limit",
        &bytes,
        ErrorCode::InvalidRequest,
    )
    .await;
    witness.round(5).await;

    // One byte short of a complete, valid request.
    let mut bytes = frame(6, 1, &head, &[]);
    bytes.pop();
    expect(&raw, "one byte short", &bytes, ErrorCode::InvalidRequest).await;

    assert_raw_works(&raw).await;
    witness.round(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_prefix_above_the_limit_gets_frame_too_large() {
    let broker = TestBroker::start().await;
    let mut witness = Witness::start(&broker).await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;
    witness.round(20).await;

    let head = describe_head(WITNESS);
    for len in [MAX_FRAME_BYTES + 1, 2 * MAX_FRAME_BYTES, u32::MAX] {
        for trailing in [0usize, 64 * 1024] {
            let mut bytes = raw_header(len, 6, 1, head.len() as u32);
            bytes.extend_from_slice(&head);
            bytes.resize(bytes.len() + trailing, 0xAB);
            let what = format!("len {len} with {trailing} more bytes");
            let error = expect(&raw, &what, &bytes, ErrorCode::FrameTooLarge).await;
            assert_eq!(
                error.detail,
                ErrorDetail::Size {
                    size: u64::from(len),
                    max: u64::from(MAX_FRAME_BYTES),
                },
                "{what}"
            );
            witness.round(5).await;
        }
    }
    assert_raw_works(&raw).await;
    witness.round(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lengths_too_short_for_the_header_or_the_head_get_invalid_request() {
    let broker = TestBroker::start().await;
    let mut witness = Witness::start(&broker).await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;
    witness.round(20).await;

    // A length that cannot hold the 8 counted header bytes.
    for len in 0..8u32 {
        let mut bytes = raw_header(len, 6, 1, 0);
        bytes.extend_from_slice(&[0u8; 8]);
        let what = format!("len {len}");
        expect(&raw, &what, &bytes, ErrorCode::InvalidRequest).await;
    }
    witness.round(5).await;

    // A head longer than the frame.
    let head = describe_head(WITNESS);
    let mut bytes = raw_header(8 + head.len() as u32, 6, 1, head.len() as u32 + 1);
    bytes.extend_from_slice(&head);
    expect(
        &raw,
        "head past the frame",
        &bytes,
        ErrorCode::InvalidRequest,
    )
    .await;
    witness.round(5).await;

    // A head longer than the head limit, in a frame that could hold it.
    let len = 8 + MAX_HEAD_BYTES + 16;
    let mut bytes = raw_header(len, 6, 1, MAX_HEAD_BYTES + 1);
    bytes.extend_from_slice(&head);
    expect(
        &raw,
        "head above its limit",
        &bytes,
        ErrorCode::InvalidRequest,
    )
    .await;

    assert_raw_works(&raw).await;
    witness.round(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_that_are_not_postcard_get_invalid_request() {
    let broker = TestBroker::start().await;
    let mut witness = Witness::start(&broker).await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;
    witness.round(20).await;

    // For every kind, a varint that never ends.
    for kind in 1..=6u16 {
        let body: &[u8] = if kind == RequestKind::Produce as u16 {
            b"a body"
        } else {
            b""
        };
        let bytes = frame(kind, served_version(kind), &[0xFF; 11], body);
        let what = format!("kind {kind}");
        expect(&raw, &what, &bytes, ErrorCode::InvalidRequest).await;
    }
    witness.round(5).await;

    // Heads whose content decides; the oracle cannot tell, the rules can.
    let mut stray = describe_head(WITNESS);
    stray.push(0);
    let cases: [(&str, u16, Vec<u8>); 5] = [
        ("a unit request with a head byte", 5, vec![0]),
        ("a valid head and a stray byte", 6, stray),
        ("a string running past the head", 6, vec![5, b'a']),
        ("a string that is not UTF-8", 6, vec![2, 0xC3, 0x28]),
        ("an empty head for a struct", 3, Vec::new()),
    ];
    for (what, kind, head) in cases {
        let error = error_of(
            &raw.send(&frame(kind, served_version(kind), &head, &[]))
                .await,
        );
        assert_eq!(error.code, ErrorCode::InvalidRequest, "{what}");
        witness.round(5).await;
    }
    assert_raw_works(&raw).await;
    witness.round(20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_reset_mid_frame_get_nothing_and_break_nothing() {
    let broker = TestBroker::start().await;
    let mut witness = Witness::start(&broker).await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;
    witness.round(20).await;

    // Reset inside the header, and inside the head.
    raw.send_and_reset(&[0, 0, 0]).await;
    let mut bytes = frame(6, 1, &describe_head(WITNESS), &[]);
    bytes.truncate(HEADER_BYTES + 2);
    raw.send_and_reset(&bytes).await;
    witness.round(5).await;

    // Reset inside the body of produce frames that each declare the whole
    // frame limit. The broker reserves a frame's size from its request
    // memory before reading the body, and 40 of these would reserve more
    // than all of it, so a reset stream that kept its reservation would
    // stall the witness. (Whether a given stream's bytes reach the broker
    // before its reset does is up to QUIC: resetting discards what is not
    // yet sent, and the harness resets right after writing. Some do.)
    let head = describe_head(WITNESS);
    let body_len = MAX_FRAME_BYTES as usize - 8 - head.len();
    let mut bytes = raw_header(MAX_FRAME_BYTES, 1, 1, head.len() as u32);
    bytes.extend_from_slice(&head);
    bytes.extend_from_slice(&[0x42; 1024]);
    assert!(bytes.len() < HEADER_BYTES + head.len() + body_len);
    for _ in 0..40 {
        raw.send_and_reset(&bytes).await;
    }
    witness.round(20).await;

    // The connection that reset its streams is still served.
    assert_raw_works(&raw).await;
    witness.round(20).await;
}

/// `SplitMix64`: a small, seeded generator, so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[self.below(options.len() as u64) as usize]
    }
}

/// One stream of garbage whose answer the frame rules decide, and that
/// answer. Three shapes: bytes with no structure; a plausible header with
/// random fields over random head and body (sometimes cut short); and a
/// header with small random lengths over random bytes.
fn garbage(rng: &mut Rng) -> (Vec<u8>, ErrorCode) {
    loop {
        let bytes = match rng.below(3) {
            0 => {
                let n = rng.below(96) as usize;
                rng.bytes(n)
            }
            1 => {
                let kind = rng.pick(&[0, 1, 2, 3, 4, 5, 6, 7, 0x1234, u16::MAX]);
                let version = rng.pick(&[0, 1, 1, 1, 2, u16::MAX]);
                let head_len = rng.below(48) as usize;
                let mut head = rng.bytes(head_len);
                if head.len() >= 11 && rng.below(2) == 0 {
                    head[..11].fill(0xFF);
                }
                let body_len = if rng.below(2) == 0 {
                    0
                } else {
                    rng.below(300) as usize
                };
                let body = rng.bytes(body_len);
                let mut bytes = frame(kind, version, &head, &body);
                if rng.below(4) == 0 {
                    bytes.truncate(rng.below(bytes.len() as u64) as usize);
                }
                bytes
            }
            _ => {
                let len = rng.below(80) as u32;
                let head_len = rng.below(80) as u32;
                let kind = rng.pick(&[0, 1, 3, 6, 9]);
                let mut bytes = raw_header(len, kind, rng.pick(&[0, 1]), head_len);
                let n = rng.below(96) as usize;
                bytes.extend(rng.bytes(n));
                bytes
            }
        };
        if let Some(code) = expected_code(&bytes) {
            return (bytes, code);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_garbage_streams_get_the_error_the_frame_rules_predict() {
    const STREAMS: usize = 200;
    let broker = TestBroker::start().await;
    let mut witness = Witness::start(&broker).await;
    let raw = Arc::new(RawConnection::connect(broker.addr(), broker.ca()).await);
    witness.round(20).await;

    let mut rng = Rng(0x5155_4956_4552); // "QUIVER"
    let cases: Vec<(Vec<u8>, ErrorCode)> = (0..STREAMS).map(|_| garbage(&mut rng)).collect();
    // The generator reaches every code the frame rules can give.
    let codes: BTreeSet<i16> = cases.iter().map(|(_, code)| code.code()).collect();
    let wanted: BTreeSet<i16> = [
        ErrorCode::InvalidRequest,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnknownRequestKind,
        ErrorCode::UnsupportedVersion,
    ]
    .iter()
    .map(|c| c.code())
    .collect();
    assert_eq!(codes, wanted);

    // All 200 streams at once on one connection, while the witness works
    // on its own connections.
    let mut streams = JoinSet::new();
    for (i, (bytes, code)) in cases.into_iter().enumerate() {
        let raw = Arc::clone(&raw);
        streams.spawn(async move {
            let reply = raw.send(&bytes).await;
            (i, bytes, code, reply)
        });
    }
    let garbage = async {
        let mut answered = 0;
        while let Some(joined) = streams.join_next().await {
            let (i, bytes, code, reply) = joined.unwrap();
            let error = error_of(&reply);
            assert_eq!(
                error.code, code,
                "stream {i}: {bytes:02x?}: {}",
                error.message
            );
            answered += 1;
        }
        answered
    };
    let work = async {
        for _ in 0..5 {
            witness.round(10).await;
        }
    };
    let (answered, ()) = tokio::join!(garbage, work);
    assert_eq!(answered, STREAMS);

    assert_raw_works(&raw).await;
    witness.round(50).await;
}
