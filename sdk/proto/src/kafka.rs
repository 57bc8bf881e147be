//! Kafka's wire protocol, as the broker's Kafka listener reads and writes
//! it: framing, request headers, the APIs and versions served, and the
//! count check that runs before any message is decoded. No I/O.
//!
//! Message types come from the `kafka-protocol` crate (generated from
//! Kafka 4.1's schemas); this module decides what reaches its decoder.
//!
//! ```text
//! Request (integers big-endian)
//! +-----------+-------------+--------------+------------------+------------------+------+
//! | size: i32 | api_key:i16 | version: i16 | correlation: i32 | client_id, tags* | body |
//! +-----------+-------------+--------------+------------------+------------------+------+
//!   0           4             6              8                  12
//!
//! Response
//! +-----------+------------------+--------+------+
//! | size: i32 | correlation: i32 | tags** | body |
//! +-----------+------------------+--------+------+
//!
//! size         bytes after the size field; a request's is checked
//!              against MAX_KAFKA_REQUEST_BYTES before anything is read
//! client_id    a nullable string (i16 length, -1 for null)
//! tags*        request header v2 (flexible versions): tagged fields
//! tags**       response header v1 (flexible versions, except
//!              ApiVersions, whose response header is always v0)
//! body         the request or response message at `version`
//! ```
//!
//! [`decode_request`] reads a request in three steps: the fixed 8 bytes
//! (so that even an unserved API or version can be answered or logged with
//! its correlation id), the header, then [`bounds::check`] over the body
//! before the crate decodes it.

pub mod bounds;
mod schemas;
#[cfg(test)]
mod tests;

use bytes::{BufMut as _, Bytes, BytesMut};
pub use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{self, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

pub use bounds::BoundsError;

/// A request's size (after the size field), at most.
pub const MAX_KAFKA_REQUEST_BYTES: u32 = crate::limits::MAX_FRAME_BYTES;

/// Bytes of the size prefix.
pub const SIZE_BYTES: usize = 4;

/// The APIs served and the versions of each, lowest to highest, as
/// `ApiVersions` announces them.
///
/// Produce and Fetch stop at the last versions that name topics (later
/// ones carry topic ids only); `ListOffsets` at 6 (later ones add offset
/// specs the log does not keep, such as the max-timestamp record).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
];

/// The versions of `api` served, if any.
pub fn supported_versions(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// Declares [`Request`], one variant per served API, and its decoder.
macro_rules! served {
    ($($api:ident => $message:ident),* $(,)?) => {
        /// A decoded request of a served API.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(clippy::large_enum_variant)] // one per request, moved once
        pub enum Request {
            $(
                #[doc = concat!("`", stringify!($api), "`.")]
                $api(messages::$message),
            )*
        }

        #[cfg(test)]
        impl Request {
            /// Encodes the body at `version` (tests compare it with what
            /// was decoded).
            fn encode_body(&self, version: i16) -> Result<BytesMut, String> {
                let mut out = BytesMut::new();
                match self {
                    $(Request::$api(message) => message.encode(&mut out, version),)*
                }
                .map_err(|e| e.to_string())?;
                Ok(out)
            }
        }

        /// Decodes a body that has walked clean.
        fn decode_body(api: ApiKey, frame: &mut Bytes, version: i16) -> Option<Result<Request, String>> {
            Some(match api {
                $(ApiKey::$api => messages::$message::decode(frame, version)
                    .map(Request::$api)
                    .map_err(|e| e.to_string()),)*
                _ => return None,
            })
        }
    };
}

served! {
    ApiVersions => ApiVersionsRequest,
    Metadata => MetadataRequest,
    Produce => ProduceRequest,
    Fetch => FetchRequest,
    ListOffsets => ListOffsetsRequest,
    FindCoordinator => FindCoordinatorRequest,
    OffsetCommit => OffsetCommitRequest,
    OffsetFetch => OffsetFetchRequest,
    CreateTopics => CreateTopicsRequest,
    DeleteTopics => DeleteTopicsRequest,
    DeleteRecords => DeleteRecordsRequest,
    CreatePartitions => CreatePartitionsRequest,
    DescribeConfigs => DescribeConfigsRequest,
    AlterConfigs => AlterConfigsRequest,
    IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
    ListGroups => ListGroupsRequest,
    DescribeGroups => DescribeGroupsRequest,
    DeleteGroups => DeleteGroupsRequest,
    JoinGroup => JoinGroupRequest,
    SyncGroup => SyncGroupRequest,
    Heartbeat => HeartbeatRequest,
    LeaveGroup => LeaveGroupRequest,
    InitProducerId => InitProducerIdRequest,
    ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
}

/// A request with its header.
#[derive(Debug, Clone, PartialEq)]
pub struct Framed {
    /// The API.
    pub api: ApiKey,
    /// The header (version, correlation id, client id).
    pub header: RequestHeader,
    /// The body.
    pub request: Request,
}

/// Why a request was not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the fixed header: nothing can be answered.
    #[error("a request of {0} bytes is shorter than its fixed header")]
    TooShort(usize),
    /// An API key this broker does not serve.
    #[error("API key {api_key} is not served")]
    UnknownApi {
        /// The key.
        api_key: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// A served API at a version outside [`SUPPORTED`].
    #[error("{api:?} version {version} is not served (versions {min} to {max} are)")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
        /// The lowest served.
        min: i16,
        /// The highest served.
        max: i16,
        /// The request's correlation id.
        correlation_id: i32,
    },
    /// The header or body does not decode.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The request's correlation id.
        correlation_id: i32,
        /// What was wrong.
        reason: String,
    },
}

/// Reads the size prefix of a request: the bytes that follow it, if within
/// [`MAX_KAFKA_REQUEST_BYTES`].
pub fn request_size(prefix: [u8; SIZE_BYTES]) -> Result<usize, i32> {
    let size = i32::from_be_bytes(prefix);
    match u32::try_from(size) {
        Ok(n) if n <= MAX_KAFKA_REQUEST_BYTES => Ok(n as usize),
        _ => Err(size),
    }
}

/// Decodes one request (the bytes after its size prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Framed, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|()| DecodeError::UnknownApi {
        api_key,
        correlation_id,
    })?;
    let (min, max) = supported_versions(api).ok_or(DecodeError::UnknownApi {
        api_key,
        correlation_id,
    })?;
    if !(min..=max).contains(&version) {
        return Err(DecodeError::UnsupportedVersion {
            api,
            version,
            min,
            max,
            correlation_id,
        });
    }
    let malformed = |reason: String| DecodeError::Malformed {
        api,
        version,
        correlation_id,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    bounds::check(api, version, &frame).map_err(|e| malformed(e.to_string()))?;
    // The body has walked clean: every count the crate will size a Vec
    // from is within the bytes that follow it.
    let request = decode_body(api, &mut frame, version)
        .ok_or(DecodeError::UnknownApi {
            api_key,
            correlation_id,
        })?
        .map_err(malformed)?;
    Ok(Framed {
        api,
        header,
        request,
    })
}

/// The highest consumer-protocol version read; later ones are read as
/// this one (their extra fields come last and are left), as Kafka does.
const CONSUMER_PROTOCOL_MAX_VERSION: i16 = 3;

/// A Kafka consumer's subscription from a classic group member's metadata
/// (a version, then the message), if it is one: checked like a request
/// before decoding, since a client wrote it.
pub fn consumer_subscription(bytes: &[u8]) -> Option<messages::ConsumerProtocolSubscription> {
    consumer_protocol(schemas::CONSUMER_PROTOCOL_SUBSCRIPTION, bytes)
}

/// A member's assignment as a Kafka group leader wrote it, if it is one.
pub fn consumer_assignment(bytes: &[u8]) -> Option<messages::ConsumerProtocolAssignment> {
    consumer_protocol(schemas::CONSUMER_PROTOCOL_ASSIGNMENT, bytes)
}

fn consumer_protocol<T: Decodable>(schema: schemas::Schema, bytes: &[u8]) -> Option<T> {
    let (version, body) = bytes.split_first_chunk::<2>()?;
    let version = i16::from_be_bytes(*version).clamp(0, CONSUMER_PROTOCOL_MAX_VERSION);
    bounds::walk(schema, version, body).ok()?;
    T::decode(&mut Bytes::copy_from_slice(body), version).ok()
}

/// Encodes a response to a request of `api` at `version`: size prefix,
/// response header, body.
pub fn encode_response<T: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &T,
) -> Result<BytesMut, String> {
    let mut out = BytesMut::new();
    out.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut out, T::header_version(version))
        .map_err(|e| e.to_string())?;
    response
        .encode(&mut out, version)
        .map_err(|e| e.to_string())?;
    let size = i32::try_from(out.len() - SIZE_BYTES).map_err(|e| e.to_string())?;
    out[..SIZE_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(out)
}
