//! Quiver's wire format: a pure codec with no I/O and no async, shared by the
//! broker (`quiver-host`) and the SDK (`quiver-client`).
//!
//! # Layout
//! - [`frame`]: the length-prefixed request and response frames that travel on
//!   one QUIC bidirectional stream each, drawn byte by byte in its docs.
//! - [`api`]: the request kinds and their postcard-encoded heads.
//! - [`batch`]: Kafka's `RecordBatch` v2 layout: building, validating and reading
//!   batches, and rewriting the base offset in place.
//! - [`varint`]: the zig-zag varints the record layout uses.
//! - [`error`]: stable numeric error codes ([`ErrorCode`]) and the error body
//!   carried on the wire ([`WireError`]).
//! - [`limits`]: every size and count the protocol bounds, in one place.
//! - [`topic`]: topic-name rules shared by client-side and broker-side checks.
//! - `kafka` (feature `kafka`): Kafka's framing and request headers, the
//!   APIs served, and the element-count check run before decoding.

pub mod api;
pub mod batch;
pub mod error;
pub mod frame;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod limits;
pub mod partitioner;
pub mod topic;
pub mod varint;

pub use error::{ErrorCode, ErrorDetail, WireError};

/// The ALPN protocol id Quiver speaks over QUIC.
pub const ALPN: &[u8] = b"quiver/1";

/// The longest a QUIC peer should wait before acknowledging what it
/// received, asked of it through QUIC's ACK frequency extension (the
/// protocol's default is 25 ms): a request's last packets waiting that long
/// for their ACK hold the requests behind them. At 2 ms, `quiver bench
/// produce`'s request p99 fell from about 40 ms to about 19 ms.
pub const PEER_MAX_ACK_DELAY: std::time::Duration = std::time::Duration::from_millis(2);

/// The largest UDP payload a QUIC endpoint accepts and its path MTU
/// discovery probes for (quinn's defaults stop at Ethernet's 1,472 and
/// 1,452). A path that carries larger datagrams (loopback, jumbo frames)
/// then takes fewer packets per request, each with its own encryption and
/// acknowledgement; a path that does not loses only the probes. Not QUIC's
/// maximum (65,527): quinn hands the kernel up to 10 datagrams in one
/// segmentation-offload send, and Linux refuses a send over 64 KiB in all,
/// so 10 of these plus IPv6 and UDP headers must fit in 65,535 bytes.
pub const MAX_UDP_PAYLOAD: u16 = 6_500;
