//! Who is calling: the front end a request came through and its peer.
//!
//! Every operation that records per-client facts (metrics per listener
//! today; the authenticated principal and its ACL decisions with the
//! security work) reads them from here, never from a front end's own types.

use std::fmt;
use std::net::SocketAddr;

/// The front end a connection came in through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The QUIC listener (TLS always on).
    Quic,
    /// The Kafka listener, plaintext TCP.
    Kafka,
    /// The Kafka listener over TLS.
    KafkaTls,
}

impl Listener {
    /// The name used in metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quic => "quic",
            Self::Kafka => "kafka",
            Self::KafkaTls => "kafka-tls",
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One client connection, as the operations see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The front end.
    pub listener: Listener,
    /// The client's address.
    pub peer: SocketAddr,
}

impl Session {
    /// A session of `peer` on `listener`.
    pub fn new(listener: Listener, peer: SocketAddr) -> Self {
        Self { listener, peer }
    }
}
