//! The QUIC transport as the SDK's settings (`quiver_client::quic`) meet
//! the broker's: on loopback, path MTU discovery finds datagrams larger
//! than Ethernet's, so a request takes a few large packets instead of many
//! small ones (each with its own encryption, send and acknowledgement).

use std::time::Duration;

use quiver_tests::{RawConnection, TestBroker};

/// The largest UDP payload of a standard Ethernet frame; quinn's own
/// defaults stop here.
const ETHERNET_UDP_PAYLOAD: u16 = 1_472;

/// How long discovery may take; it needs a few round trips on loopback.
const DISCOVERY: Duration = Duration::from_secs(10);

#[tokio::test]
async fn loopback_connections_find_datagrams_larger_than_ethernet() {
    let broker = TestBroker::start().await;
    let raw = RawConnection::connect(broker.addr(), broker.ca()).await;
    let deadline = tokio::time::Instant::now() + DISCOVERY;
    while raw.path_mtu() <= ETHERNET_UDP_PAYLOAD && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mtu = raw.path_mtu();
    assert!(
        mtu > ETHERNET_UDP_PAYLOAD && mtu <= quiver_proto::MAX_UDP_PAYLOAD,
        "path MTU towards the broker is {mtu} after {DISCOVERY:?}; expected above \
         {ETHERNET_UDP_PAYLOAD} and at most {}",
        quiver_proto::MAX_UDP_PAYLOAD
    );
}
