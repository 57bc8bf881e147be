//! Clients that hold the broker's connection slots or memory without using
//! them (issue 9, items 5 and 6): a frame header that never completes is
//! answered within the header deadline, a connection that never sends a
//! request is closed after the first-request deadline (its keep-alives do
//! not save it), one client address holds at most its share of the slots,
//! and frames announced but not sent hold no memory.
//!
//! The deadlines are shortened here through the broker's configuration;
//! the defaults are `HEADER_READ_TIMEOUT` (10 s) and
//! `FIRST_REQUEST_TIMEOUT` (60 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_client::{Admin, Client, ErrorCode, Producer, ProducerConfig, ProducerRecord};
use quiver_host::service::MAX_INFLIGHT_REQUEST_BYTES;
use quiver_proto::WireError;
use quiver_proto::api::{RequestKind, decode_head};
use quiver_proto::frame::HEADER_BYTES;
use quiver_proto::limits::MAX_FRAME_BYTES;
use quiver_tests::{RawConnection, RawReply, TestBroker, frame};

const SHORT: Duration = Duration::from_millis(500);

async fn broker_with_short_deadlines() -> TestBroker {
    TestBroker::start_with(|config| {
        config.connections.header_timeout = SHORT;
        config.connections.first_request_timeout = SHORT;
    })
    .await
}

#[tokio::test]
async fn a_partial_header_is_answered_at_its_deadline() {
    let broker = broker_with_short_deadlines().await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;
    let started = Instant::now();
    // 11 of the 12 header bytes, and the stream left open.
    let reply = raw.send_unfinished(&[0u8; 11]).await;
    let RawReply::Frame { header, head, .. } = reply else {
        panic!("expected an error frame, got {reply:?}");
    };
    let error: WireError = decode_head(&head).expect("an error head");
    assert_eq!(header.tag as i16, ErrorCode::InvalidRequest.code());
    assert_eq!(error.code, ErrorCode::InvalidRequest);
    assert!(
        error
            .message
            .contains("frame header's 12 bytes did not arrive within 500ms"),
        "{}",
        error.message
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection itself still serves.
    let ok = broker.client().await;
    Admin::new(ok).list_topics().await.expect("still serving");
}

#[tokio::test]
async fn a_connection_without_requests_is_closed() {
    let broker = broker_with_short_deadlines().await;
    let idle = RawConnection::connect(broker.addr(), broker.ca()).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.closed())
        .await
        .expect("closed within the deadline");
    let quinn::ConnectionError::ApplicationClosed(close) = closed else {
        panic!("expected an application close, got {closed:?}");
    };
    assert_eq!(
        close.error_code.into_inner(),
        ErrorCode::InvalidRequest.code() as u64
    );
    assert_eq!(
        String::from_utf8_lossy(&close.reason),
        "no request within 500ms of connecting"
    );
    // A connection that sends requests stays, past the deadline.
    let busy = broker.client().await;
    let admin = Admin::new(busy);
    admin.list_topics().await.expect("first request");
    tokio::time::sleep(SHORT * 3).await;
    admin
        .list_topics()
        .await
        .expect("still open after the deadline");
}

#[tokio::test]
async fn one_address_holds_at_most_its_share_of_connections() {
    let broker =
        TestBroker::start_with(|config| config.connections.max_connections_per_ip = 2).await;
    let first = broker.client().await;
    let second = broker.client().await;
    let refused = match Client::connect(broker.client_config()).await {
        Err(e) => e,
        Ok(third) => Admin::new(third)
            .list_topics()
            .await
            .expect_err("a third connection from 127.0.0.1 must be refused"),
    };
    assert_eq!(
        refused.code(),
        Some(ErrorCode::TooManyConnections),
        "{refused:?}"
    );
    assert!(
        refused
            .to_string()
            .contains("too many connections from 127.0.0.1 (at most 2)"),
        "{refused}"
    );
    // Closing one frees its slot.
    second.close().await;
    drop(second);
    let again = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(client) = Client::connect(broker.client_config()).await
                && Admin::new(client.clone()).list_topics().await.is_ok()
            {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a slot frees up once a connection closes");
    Admin::new(first)
        .list_topics()
        .await
        .expect("first still serving");
    drop(again);
}

/// Frames announced and never sent (issue 9, item 5): nine connections
/// each open four streams whose headers claim nearly the largest frame,
/// more than the broker's whole request-memory budget together, and send
/// nothing more. Memory is reserved as bytes arrive, so they hold none of
/// it: a 70 KB produce from another client is answered at once, where it
/// used to wait for the announced frames' deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_frames_hold_no_memory_until_their_bytes_arrive() {
    let broker = TestBroker::start().await;
    broker.create_topic("t", 1).await;
    let claimed = MAX_FRAME_BYTES as usize - 1024;
    let header = frame(RequestKind::Produce as u16, 1, &[], &vec![0; claimed]);
    let header = header[..HEADER_BYTES].to_vec();
    let mut attackers = Vec::new();
    let mut stalled = tokio::task::JoinSet::new();
    for _ in 0..9 {
        let raw = Arc::new(RawConnection::connect(broker.addr(), broker.ca()).await);
        for _ in 0..4 {
            let (raw, header) = (Arc::clone(&raw), header.clone());
            stalled.spawn(async move { raw.send_unfinished(&header).await });
        }
        attackers.push(raw);
    }
    assert!(9 * 4 * claimed > MAX_INFLIGHT_REQUEST_BYTES);
    // Let the headers reach the broker.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let producer = Producer::new(broker.client().await, ProducerConfig::default());
    let value = vec![b'x'; 70_000];
    tokio::time::timeout(
        Duration::from_secs(5),
        producer.send(ProducerRecord::new("t", value).partition(0)),
    )
    .await
    .expect("answered while the announced frames wait for their bytes")
    .expect("acknowledged");
    stalled.abort_all();
    drop(attackers);
}
