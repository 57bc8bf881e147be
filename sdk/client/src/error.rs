//! Everything that can go wrong in the SDK.

use quiver_proto::{ErrorCode, WireError};

/// A client-side failure. Broker refusals carry the broker's [`WireError`]
/// with its stable code.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is unusable (bad address, unreadable CA file).
    #[error("configuration: {0}")]
    Config(String),
    /// Connecting failed (resolution, handshake, certificate).
    #[error("cannot connect to {broker}: {reason}")]
    Connect {
        /// The broker address as given.
        broker: String,
        /// Why.
        reason: String,
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
    Timeout(std::time::Duration),
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
}

impl From<WireError> for ClientError {
    fn from(e: WireError) -> Self {
        Self::Broker(e)
    }
}

impl From<quinn::ConnectionError> for ClientError {
    fn from(e: quinn::ConnectionError) -> Self {
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
