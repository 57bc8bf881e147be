//! Everything that can go wrong in the SDK.

use std::time::Duration;

use quiver_proto::{ErrorCode, WireError};

/// A client-side failure. Broker refusals carry the broker's [`WireError`]
/// with its stable code.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is unusable (bad address, unreadable CA file).
    #[error("configuration: {0}")]
    Config(String),
    /// Connecting failed otherwise (the endpoint, or the handshake was
    /// refused); see [`ConnectTimeout`](Self::ConnectTimeout) and
    /// [`UntrustedCertificate`](Self::UntrustedCertificate).
    #[error("cannot connect to {broker}: {reason}")]
    Connect {
        /// The broker address as given.
        broker: String,
        /// Why.
        reason: String,
    },
    /// The broker did not answer the handshake within the connect timeout.
    #[error(
        "cannot reach the broker at {broker} within {after:?}: is quiver serve running there? \
         (QUIC runs over UDP: check that UDP to that port is allowed)"
    )]
    ConnectTimeout {
        /// The broker address as given.
        broker: String,
        /// The connect timeout that ran out.
        after: Duration,
    },
    /// The broker presented a certificate this client does not trust (or
    /// one not valid for the name it was reached by).
    #[error(
        "the broker at {broker} presented a certificate this client does not trust \
         ({problem}); its SHA-256 fingerprint is {fingerprint}"
    )]
    UntrustedCertificate {
        /// The broker address as given.
        broker: String,
        /// SHA-256 of the broker's certificate, colon-separated upper-case
        /// hex (as `quiver serve` logs it).
        fingerprint: String,
        /// What verification found, in words.
        problem: String,
    },
    /// The connection was lost or closed by the broker. `code` is the
    /// broker's close code (e.g. [`ErrorCode::TooManyConnections`]).
    #[error("connection closed: {reason}")]
    Connection {
        /// The broker's error code, when it closed the connection on purpose.
        code: Option<ErrorCode>,
        /// Why.
        reason: String,
    },
    /// The broker refused the request.
    #[error("broker: {0}")]
    Broker(WireError),
    /// The broker's answer did not decode.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer within the request timeout.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// A record too large for any batch.
    #[error("record of about {size} bytes exceeds the batch limit of {max} bytes")]
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A consumer was asked about a partition it is not assigned.
    #[error("partition {topic}/{partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// The producer or consumer was used after it was closed.
    #[error("closed")]
    Closed,
}

impl ClientError {
    /// The broker's error code, if the broker sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Broker(e) => Some(e.code),
            Self::Connection { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether the request may succeed if sent again once the broker is
    /// back: the broker is shutting down or busy (at a limit of concurrent
    /// work: compilations, fetch-time instances), its storage takes no
    /// writes for now (a full disk), the connection was lost or timed out,
    /// or the broker could not be reached. A consumer retries these
    /// with backoff; so does an idempotent producer, except a full disk (the
    /// broker stores a retried batch once); a producer without idempotence
    /// does not (a retried produce could store its records twice).
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::ConnectTimeout { .. } | Self::Timeout(_) => true,
            Self::Connection { code, .. } => {
                matches!(code, None | Some(ErrorCode::ShuttingDown))
            }
            Self::Broker(e) => matches!(
                e.code,
                ErrorCode::ShuttingDown | ErrorCode::StorageUnavailable | ErrorCode::Busy
            ),
            _ => false,
        }
    }
}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        Self::Broker(e)
    }
}

impl From<quinn::ConnectionError> for ClientError {
    fn from(e: quinn::ConnectionError) -> Self {
        if matches!(e, quinn::ConnectionError::LocallyClosed) {
            return Self::Closed;
        }
        let code = match &e {
            // Code 0 is a plain close, not an error code.
            quinn::ConnectionError::ApplicationClosed(close) => {
                i16::try_from(close.error_code.into_inner())
                    .ok()
                    .filter(|&code| code != 0)
                    .map(ErrorCode::from_code)
            }
            _ => None,
        };
        Self::Connection {
            code,
            reason: e.to_string(),
        }
    }
}

impl From<quinn::WriteError> for ClientError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(e) => e.into(),
            other => Self::Protocol(format!("write failed: {other}")),
        }
    }
}

impl From<quinn::ReadExactError> for ClientError {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(e)) => e.into(),
            other => Self::Protocol(format!("read failed: {other}")),
        }
    }
}

impl From<quiver_proto::api::CodecError> for ClientError {
    fn from(e: quiver_proto::api::CodecError) -> Self {
        Self::Protocol(e.to_string())
    }
}

impl From<quiver_proto::frame::FrameError> for ClientError {
    fn from(e: quiver_proto::frame::FrameError) -> Self {
        Self::Protocol(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_with(code: u32) -> ClientError {
        quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: quinn::VarInt::from_u32(code),
            reason: bytes::Bytes::from_static(b"why"),
        })
        .into()
    }

    #[test]
    fn close_codes_map_to_error_codes() {
        let shutting_down = closed_with(ErrorCode::ShuttingDown.code() as u32);
        assert_eq!(shutting_down.code(), Some(ErrorCode::ShuttingDown));
        assert!(shutting_down.is_retriable());
        // Code 0 is a plain close: no code, and retriable as a lost connection.
        let plain = closed_with(0);
        assert_eq!(plain.code(), None);
        assert!(plain.is_retriable());
        let refused = closed_with(ErrorCode::TooManyConnections.code() as u32);
        assert_eq!(refused.code(), Some(ErrorCode::TooManyConnections));
        assert!(!refused.is_retriable());
        let lost: ClientError = quinn::ConnectionError::TimedOut.into();
        assert!(matches!(lost, ClientError::Connection { code: None, .. }));
        assert!(lost.is_retriable());
        let local: ClientError = quinn::ConnectionError::LocallyClosed.into();
        assert!(matches!(local, ClientError::Closed));
        assert!(!local.is_retriable());
    }

    #[test]
    fn only_transient_failures_are_retriable() {
        let timeout = ClientError::ConnectTimeout {
            broker: "127.0.0.1:9".into(),
            after: Duration::from_secs(5),
        };
        assert!(timeout.is_retriable());
        assert_eq!(
            timeout.to_string(),
            "cannot reach the broker at 127.0.0.1:9 within 5s: is quiver serve running there? \
             (QUIC runs over UDP: check that UDP to that port is allowed)"
        );
        assert!(ClientError::Timeout(Duration::from_secs(30)).is_retriable());
        assert!(ClientError::Broker(WireError::new(ErrorCode::ShuttingDown, "bye")).is_retriable());
        assert!(
            ClientError::Broker(WireError::new(ErrorCode::StorageUnavailable, "full"))
                .is_retriable()
        );
        assert!(
            !ClientError::Broker(WireError::new(ErrorCode::StorageError, "bad")).is_retriable()
        );
        assert!(!ClientError::Broker(WireError::new(ErrorCode::UnknownTopic, "no")).is_retriable());
        assert!(ClientError::Broker(WireError::new(ErrorCode::Busy, "later")).is_retriable());
        assert!(
            !ClientError::Broker(WireError::new(ErrorCode::LimitReached, "full")).is_retriable()
        );
        let untrusted = ClientError::UntrustedCertificate {
            broker: "b:1".into(),
            fingerprint: "AB:CD".into(),
            problem: "signed by an unknown authority".into(),
        };
        assert!(!untrusted.is_retriable());
        assert!(!ClientError::Config("bad".into()).is_retriable());
        assert!(!ClientError::Closed.is_retriable());
    }
}
