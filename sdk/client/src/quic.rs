//! The QUIC settings both ends of a Quiver connection use: the SDK's
//! [`Client`](crate::Client) and the broker build their endpoints and
//! transport configurations here, so the two agree.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{Endpoint, EndpointConfig, TransportConfig, VarInt};
use quiver_proto::limits::MAX_FRAME_BYTES;
use quiver_proto::{MAX_UDP_PAYLOAD, PEER_MAX_ACK_DELAY};

/// Per-connection flow-control window: a connection may have this much
/// unread on either end.
pub const CONNECTION_WINDOW_BYTES: u32 = 64 * 1024 * 1024;

/// The UDP socket buffers (receive and send) an endpoint asks for. The
/// kernel grants at most `net.core.rmem_max` / `wmem_max` (often 208 KiB,
/// which holds about 90 full-size datagrams). A burst of requests into a
/// full receive buffer is dropped and sent again after QUIC's loss
/// detection, which at 208 KiB cost about 4 % of the broker's datagrams
/// under `quiver bench produce` with 4 producers.
pub const SOCKET_BUFFER_BYTES: usize = 8 << 20;

/// A QUIC endpoint on a UDP socket bound to `bind`, with
/// [`SOCKET_BUFFER_BYTES`] asked for and datagrams up to
/// [`MAX_UDP_PAYLOAD`]; a server when `server` is given.
pub fn endpoint(bind: SocketAddr, server: Option<quinn::ServerConfig>) -> io::Result<Endpoint> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(bind),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer than asked for still works, and a
    // broker says so (Linux caps the request at net.core.rmem_max and
    // reports twice what it grants).
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER_BYTES);
    let granted = socket.recv_buffer_size().unwrap_or(0);
    if granted < SOCKET_BUFFER_BYTES {
        let hint = "raise net.core.rmem_max and wmem_max (sysctl) for fewer dropped datagrams";
        if server.is_some() {
            tracing::info!(
                granted,
                asked = SOCKET_BUFFER_BYTES,
                "small UDP receive buffer: {hint}"
            );
        } else {
            tracing::debug!(
                granted,
                asked = SOCKET_BUFFER_BYTES,
                "small UDP receive buffer: {hint}"
            );
        }
    }
    socket.bind(&bind.into())?;
    let mut config = EndpointConfig::default();
    config
        .max_udp_payload_size(MAX_UDP_PAYLOAD)
        .map_err(io::Error::other)?;
    Endpoint::new(config, server, socket.into(), Arc::new(quinn::TokioRuntime))
}

/// The transport settings of both ends: flow-control windows that fit one
/// maximum frame per stream, path MTU discovery up to [`MAX_UDP_PAYLOAD`],
/// and acknowledgements within [`PEER_MAX_ACK_DELAY`].
pub fn transport_config() -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport
        .stream_receive_window(VarInt::from_u32(MAX_FRAME_BYTES))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW_BYTES))
        .send_window(u64::from(CONNECTION_WINDOW_BYTES));
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.max_ack_delay(Some(PEER_MAX_ACK_DELAY));
    transport.ack_frequency_config(Some(acks));
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(MAX_UDP_PAYLOAD);
    transport.mtu_discovery_config(Some(mtu));
    transport
}
