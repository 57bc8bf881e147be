//! Request kinds and the postcard-encoded heads of requests and responses.
//!
//! Every request type implements [`Request`], which ties it to its kind,
//! version and response type. Heads are encoded with postcard; record
//! batches never go through postcard but travel in the frame body (see
//! [`crate::frame`]), described by byte counts in the head.

pub mod groups;
pub mod modules;
pub mod transforms;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::WireError;
use crate::batch::Compression;
use crate::frame::{FrameError, FrameHeader, HEADER_BYTES};

/// What a request asks for. The number is the frame's `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum RequestKind {
    /// Append record batches to partitions.
    Produce = 1,
    /// Read record batches from partitions, long-polling if asked.
    Fetch = 2,
    /// Create a topic.
    CreateTopic = 3,
    /// Delete a topic and its data.
    DeleteTopic = 4,
    /// List topics.
    ListTopics = 5,
    /// Describe one topic's partitions and configuration.
    DescribeTopic = 6,
    /// Change a topic's settings or add partitions.
    AlterTopic = 7,
    /// Resolve earliest, latest or by-timestamp offsets.
    ListOffsets = 8,
    /// Join a consumer group.
    JoinGroup = 9,
    /// Stay in a group; learn the assignment.
    Heartbeat = 10,
    /// Leave a group.
    LeaveGroup = 11,
    /// Commit consumed positions.
    CommitOffsets = 12,
    /// Read committed positions.
    FetchOffsets = 13,
    /// List groups.
    ListGroups = 14,
    /// Describe a group.
    DescribeGroup = 15,
    /// Delete a group's offsets.
    DeleteGroup = 16,
    /// Reset a group's offsets.
    ResetOffsets = 17,
    /// Upload a WebAssembly module.
    UploadModule = 18,
    /// List modules.
    ListModules = 19,
    /// Delete a module.
    DeleteModule = 20,
    /// Deploy a transform.
    DeployTransform = 21,
    /// List transforms with their status.
    ListTransforms = 22,
    /// Pause, resume, upgrade or delete a transform.
    ControlTransform = 23,
    /// Read a transform's recent log lines.
    TransformLogs = 24,
    /// Read a transform's state store.
    TransformState = 25,
    /// An identity for an idempotent producer.
    InitProducer = 26,
}

impl RequestKind {
    /// The version of this kind's heads that this crate speaks: raised
    /// whenever their layout changes, so that a peer of another build gets
    /// `UnsupportedVersion` rather than a head it misreads.
    pub const fn version(self) -> u16 {
        match self {
            // Version 2 of the topic kinds: topic configs carry
            // `compression.type`. Of DeployTransform and ListTransforms: each
            // partition of a transform's status carries its own error. Of
            // TransformLogs: paged (`since_ms`, `tail`, `more`). Of
            // ListOffsets: a lookup by time answers the record's timestamp.
            Self::ListOffsets
            | Self::CreateTopic
            | Self::ListTopics
            | Self::DescribeTopic
            | Self::AlterTopic
            | Self::DeployTransform
            | Self::ListTransforms
            | Self::TransformLogs => 2,
            _ => 1,
        }
    }

    /// Every kind, in number order.
    pub const ALL: [RequestKind; 26] = [
        Self::Produce,
        Self::Fetch,
        Self::CreateTopic,
        Self::DeleteTopic,
        Self::ListTopics,
        Self::DescribeTopic,
        Self::AlterTopic,
        Self::ListOffsets,
        Self::JoinGroup,
        Self::Heartbeat,
        Self::LeaveGroup,
        Self::CommitOffsets,
        Self::FetchOffsets,
        Self::ListGroups,
        Self::DescribeGroup,
        Self::DeleteGroup,
        Self::ResetOffsets,
        Self::UploadModule,
        Self::ListModules,
        Self::DeleteModule,
        Self::DeployTransform,
        Self::ListTransforms,
        Self::ControlTransform,
        Self::TransformLogs,
        Self::TransformState,
        Self::InitProducer,
    ];

    /// The kind for a frame's `kind` field, if known.
    pub fn from_u16(kind: u16) -> Option<Self> {
        Some(match kind {
            1 => Self::Produce,
            2 => Self::Fetch,
            3 => Self::CreateTopic,
            4 => Self::DeleteTopic,
            5 => Self::ListTopics,
            6 => Self::DescribeTopic,
            7 => Self::AlterTopic,
            8 => Self::ListOffsets,
            9 => Self::JoinGroup,
            10 => Self::Heartbeat,
            11 => Self::LeaveGroup,
            12 => Self::CommitOffsets,
            13 => Self::FetchOffsets,
            14 => Self::ListGroups,
            15 => Self::DescribeGroup,
            16 => Self::DeleteGroup,
            17 => Self::ResetOffsets,
            18 => Self::UploadModule,
            19 => Self::ListModules,
            20 => Self::DeleteModule,
            21 => Self::DeployTransform,
            22 => Self::ListTransforms,
            23 => Self::ControlTransform,
            24 => Self::TransformLogs,
            25 => Self::TransformState,
            26 => Self::InitProducer,
            _ => return None,
        })
    }
}

/// A request type: its kind, the version this crate speaks, and its response.
pub trait Request: Serialize + DeserializeOwned {
    /// The frame's kind.
    const KIND: RequestKind;
    /// The version this crate encodes and the broker accepts.
    const VERSION: u16 = Self::KIND.version();
    /// The response head type.
    type Response: Serialize + DeserializeOwned;
}

/// A head that would not encode or decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame around the head breaks a limit or is truncated.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// postcard could not decode or encode the head.
    #[error("head does not decode: {0}")]
    Postcard(#[from] postcard::Error),
    /// The head decoded but bytes were left over.
    #[error("{0} stray bytes after the head")]
    TrailingBytes(usize),
}

/// Encodes a request's frame header and head; the caller sends `body_len`
/// bytes of body after it.
pub fn encode_request<R: Request>(request: &R, body_len: usize) -> Result<Vec<u8>, CodecError> {
    encode_frame(R::KIND as u16, R::VERSION, request, body_len)
}

/// Encodes a successful response's frame header and head.
pub fn encode_response<T: Serialize>(
    version: u16,
    response: &T,
    body_len: usize,
) -> Result<Vec<u8>, CodecError> {
    encode_frame(0, version, response, body_len)
}

/// Encodes an error response (no body).
pub fn encode_error(version: u16, error: &WireError) -> Result<Vec<u8>, CodecError> {
    encode_frame(error.code.code() as u16, version, error, 0)
}

/// Decodes a head, refusing trailing bytes.
pub fn decode_head<T: DeserializeOwned>(head: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes(head)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(CodecError::TrailingBytes(rest.len()))
    }
}

fn encode_frame<T: Serialize>(
    tag: u16,
    version: u16,
    head: &T,
    body_len: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![0u8; HEADER_BYTES];
    out = postcard::to_extend(head, out)?;
    let header = FrameHeader::for_parts(tag, version, out.len() - HEADER_BYTES, body_len)?;
    out[..HEADER_BYTES].copy_from_slice(&header.to_bytes());
    Ok(out)
}

/// Per-topic settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// Keep data at least this long (ms); `None` keeps it forever.
    pub retention_ms: Option<u64>,
    /// Keep at most about this many bytes per partition; `None` for no limit.
    pub retention_bytes: Option<u64>,
    /// Whose clock gives record timestamps (Kafka's `message.timestamp.type`).
    pub timestamp_type: TimestampType,
    /// How stored batches are compressed (Kafka's `compression.type`).
    pub compression: TopicCompression,
}

/// How a topic's stored batches are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TopicCompression {
    /// As each producer sent them (Kafka's `producer`).
    #[default]
    Producer,
    /// With this codec: batches sent otherwise are recompressed on arrival,
    /// as Kafka does (`uncompressed` is [`Compression::None`]).
    Codec(Compression),
}

impl TopicCompression {
    /// Kafka's value for the setting: `producer`, `uncompressed` or a codec.
    pub fn name(self) -> &'static str {
        match self {
            Self::Producer => "producer",
            Self::Codec(Compression::None) => "uncompressed",
            Self::Codec(codec) => codec.name(),
        }
    }
}

impl std::fmt::Display for TopicCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TopicCompression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "producer" {
            return Ok(Self::Producer);
        }
        s.parse().map(Self::Codec).map_err(|_| {
            format!(
                "compression.type is producer, uncompressed, gzip, snappy, lz4 or zstd, not {s:?}"
            )
        })
    }
}

/// Whose clock gives record timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TimestampType {
    /// The producer's (the record's own timestamp is kept).
    #[default]
    CreateTime,
    /// The broker's, when it receives the batch (every record of a batch
    /// then has the same timestamp).
    LogAppendTime,
}

/// Produce: append batches. The body holds the batches back to back, in the
/// order of `batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceRequest {
    /// The topic.
    pub topic: String,
    /// One entry per batch in the body.
    pub batches: Vec<ProduceBatch>,
}

/// One batch in a produce body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceBatch {
    /// Target partition.
    pub partition: u32,
    /// The batch's size in the body.
    pub bytes: u32,
}

impl Request for ProduceRequest {
    const KIND: RequestKind = RequestKind::Produce;
    type Response = ProduceResponse;
}

/// The outcome of each batch, in request order. A batch is acknowledged only
/// once the commit holding it is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResponse {
    /// One result per batch.
    pub results: Vec<ProduceResult>,
}

/// Ask for an idempotent producer's identity: a new producer id, or, given
/// the one it has, the next epoch of it (the producer then numbers every
/// partition's batches from 0 again; Kafka's `InitProducerId`, KIP-360).
/// Batches carry the identity and a sequence number per partition, so the
/// broker stores a retried batch once and answers it with its first offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitProducerRequest {
    /// The identity the producer has, if any.
    pub current: Option<ProducerIdentity>,
}

impl Request for InitProducerRequest {
    const KIND: RequestKind = RequestKind::InitProducer;
    type Response = ProducerIdentity;
}

/// An idempotent producer's id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerIdentity {
    /// The producer id.
    pub producer_id: u64,
    /// Its epoch.
    pub epoch: i16,
}

/// One batch's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceResult {
    /// The partition.
    pub partition: u32,
    /// The offset given to the batch's first record, or why it was refused.
    pub outcome: Result<u64, WireError>,
}

/// Fetch: read batches from partitions. The broker waits up to
/// `max_wait_ms` for `min_bytes` to be available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRequest {
    /// Longest wait, capped at [`crate::limits::MAX_FETCH_WAIT_MS`].
    pub max_wait_ms: u32,
    /// Answer as soon as this many bytes are available (0 = at once).
    pub min_bytes: u32,
    /// Total bytes to return at most (at least one batch is returned).
    pub max_bytes: u32,
    /// Where to read.
    pub partitions: Vec<FetchPartition>,
    /// For a group member: its identity, so that the broker refuses a fetch
    /// of a partition the member does not own at this epoch (fencing).
    pub member: Option<GroupMemberRef>,
    /// A stored module to run on the records before they are sent: only
    /// what it returns crosses the network (see [`FetchModule`]).
    pub module: Option<FetchModule>,
}

/// A fetch-time module: a filter or map the broker runs on each fetched
/// record (one call per record, so that each record it keeps keeps its
/// offset). It may return at most one record per input record, to the
/// default output; its state store is not available.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchModule {
    /// The stored module (its latest version).
    pub name: String,
    /// Its `init` parameters.
    pub params: Vec<(String, String)>,
}

/// A group member's identity on a fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMemberRef {
    /// The group.
    pub group: String,
    /// The member id.
    pub member_id: String,
    /// The member's epoch.
    pub member_epoch: u64,
}

/// One partition to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: u64,
    /// Bytes to return for this partition at most.
    pub max_bytes: u32,
}

impl Request for FetchRequest {
    const KIND: RequestKind = RequestKind::Fetch;
    type Response = FetchResponse;
}

/// Fetch results in request order; the body holds each partition's batches
/// back to back, in that order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResponse {
    /// One result per requested partition.
    pub partitions: Vec<FetchResult>,
}

/// One partition's fetch result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The data's place in the body, or why there is none.
    pub outcome: Result<FetchedData, WireError>,
}

/// Where a partition's batches are and where the partition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedData {
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// The offset the next record will get.
    pub high_watermark: u64,
    /// Bytes of whole batches in the body for this partition. The first
    /// batch may start before the requested offset.
    pub bytes: u32,
    /// Where the next fetch of this partition starts: past the last record
    /// read, whether or not a fetch-time module kept it (the requested
    /// offset when nothing was read).
    pub next_offset: u64,
}

/// Create a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicRequest {
    /// Its name (Kafka's rule).
    pub name: String,
    /// How many partitions.
    pub partitions: u32,
    /// Settings.
    pub config: TopicConfig,
}

impl Request for CreateTopicRequest {
    const KIND: RequestKind = RequestKind::CreateTopic;
    type Response = TopicDescription;
}

/// The broker-wide retention defaults, for topics that set none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionDefaults {
    /// Default `retention.ms`; `None` keeps records forever.
    pub retention_ms: Option<u64>,
    /// Default `retention.bytes`; `None` is unlimited.
    pub retention_bytes: Option<u64>,
}

impl RetentionDefaults {
    /// The limits in force for a topic: its own, else these.
    pub fn effective(&self, config: &TopicConfig) -> (Option<u64>, Option<u64>) {
        (
            config.retention_ms.or(self.retention_ms),
            config.retention_bytes.or(self.retention_bytes),
        )
    }
}

/// Delete a topic and its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicRequest {
    /// The topic.
    pub name: String,
    /// Delete it even though transforms read or write it (they then fail);
    /// without it such a delete is refused with `TopicInUse`.
    pub force: bool,
}

impl Request for DeleteTopicRequest {
    const KIND: RequestKind = RequestKind::DeleteTopic;
    type Response = ();
}

/// List every topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTopicsRequest;

impl Request for ListTopicsRequest {
    const KIND: RequestKind = RequestKind::ListTopics;
    type Response = ListTopicsResponse;
}

/// The topics, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTopicsResponse {
    /// Name, partition count and settings of each.
    pub topics: Vec<TopicSummary>,
}

/// A topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// The name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Settings.
    pub config: TopicConfig,
}

/// Describe one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribeTopicRequest {
    /// The topic.
    pub name: String,
}

impl Request for DescribeTopicRequest {
    const KIND: RequestKind = RequestKind::DescribeTopic;
    type Response = TopicDescription;
}

/// Change a topic: settings, and partitions (which can only be added).
/// What is left at its default stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterTopicRequest {
    /// The topic.
    pub name: String,
    /// New `retention.ms`.
    pub retention_ms: Change<u64>,
    /// New `retention.bytes`.
    pub retention_bytes: Change<u64>,
    /// New `compression.type`.
    pub compression: Option<TopicCompression>,
    /// New partition count, at least the current one.
    pub partitions: Option<u32>,
}

impl Request for AlterTopicRequest {
    const KIND: RequestKind = RequestKind::AlterTopic;
    type Response = TopicDescription;
}

/// How an alter treats one optional setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change<T> {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Set it.
    Set(T),
    /// Remove it (fall back to the broker default).
    Clear,
}

impl<T: Copy> Change<T> {
    /// The setting after the change.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Set(value) => Some(value),
            Self::Clear => None,
        }
    }
}

/// Resolve offsets: earliest, latest, or the first at or after a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsRequest {
    /// What to resolve.
    pub partitions: Vec<ListOffsetsPartition>,
}

impl Request for ListOffsetsRequest {
    const KIND: RequestKind = RequestKind::ListOffsets;
    type Response = ListOffsetsResponse;
}

/// One partition to resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Which offset.
    pub spec: OffsetSpec,
}

/// Which offset to resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The high watermark.
    Latest,
    /// The first offset whose timestamp is at least this (ms since the
    /// epoch); the high watermark when no record is that recent.
    Timestamp(i64),
}

/// Resolved offsets, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsResponse {
    /// One result per requested partition.
    pub partitions: Vec<ListOffsetsResult>,
}

/// One partition's resolved offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOffsetsResult {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset, or why there is none.
    pub outcome: Result<u64, WireError>,
    /// For a lookup by time that found a record: that record's own
    /// timestamp (at or after the one asked for).
    pub timestamp: Option<i64>,
}

/// A topic and where each of its partitions stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDescription {
    /// The name.
    pub name: String,
    /// Settings.
    pub config: TopicConfig,
    /// The retention that applies where `config` sets none: the broker's
    /// defaults.
    pub default_retention: RetentionDefaults,
    /// Each partition, in order.
    pub partitions: Vec<PartitionDescription>,
}

/// Where a partition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDescription {
    /// The partition.
    pub partition: u32,
    /// The first offset still stored.
    pub log_start_offset: u64,
    /// The offset the next record will get.
    pub high_watermark: u64,
    /// Bytes of stored batches.
    pub size_bytes: u64,
    /// The first stored batch's base timestamp (ms), if any is stored.
    pub first_timestamp: Option<i64>,
    /// The largest record timestamp appended (ms), if any was.
    pub last_timestamp: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use crate::frame::split;

    fn round_trip<R: Request + PartialEq + std::fmt::Debug>(request: &R) {
        let bytes = encode_request(request, 0).unwrap();
        let header = FrameHeader::parse(bytes[..HEADER_BYTES].try_into().unwrap()).unwrap();
        assert_eq!(RequestKind::from_u16(header.tag), Some(R::KIND));
        assert_eq!(header.version, R::VERSION);
        let (head, body) = split(&header, &bytes[HEADER_BYTES..]).unwrap();
        assert!(body.is_empty());
        assert_eq!(&decode_head::<R>(head).unwrap(), request);
    }

    #[test]
    fn requests_round_trip() {
        round_trip(&ProduceRequest {
            topic: "click".into(),
            batches: vec![ProduceBatch {
                partition: 3,
                bytes: 170,
            }],
        });
        round_trip(&FetchRequest {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1 << 20,
            partitions: vec![FetchPartition {
                topic: "click".into(),
                partition: 0,
                offset: 42,
                max_bytes: 1 << 20,
            }],
            member: None,
            module: None,
        });
        round_trip(&CreateTopicRequest {
            name: "t".into(),
            partitions: 4,
            config: TopicConfig {
                retention_ms: Some(60_000),
                retention_bytes: None,
                timestamp_type: TimestampType::LogAppendTime,
                compression: TopicCompression::Codec(Compression::Zstd),
            },
        });
        round_trip(&DeleteTopicRequest {
            name: "t".into(),
            force: true,
        });
        round_trip(&ListTopicsRequest);
        round_trip(&DescribeTopicRequest { name: "t".into() });
        round_trip(&AlterTopicRequest {
            name: "t".into(),
            retention_ms: Change::Set(1),
            retention_bytes: Change::Clear,
            compression: Some(TopicCompression::Producer),
            partitions: Some(8),
        });
        round_trip(&ListOffsetsRequest {
            partitions: vec![ListOffsetsPartition {
                topic: "t".into(),
                partition: 1,
                spec: OffsetSpec::Timestamp(-5),
            }],
        });
    }

    #[test]
    fn kinds_round_trip_through_their_numbers() {
        for (i, kind) in RequestKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as u16, i as u16 + 1);
            assert_eq!(RequestKind::from_u16(kind as u16), Some(kind));
        }
        assert_eq!(RequestKind::from_u16(0), None);
        assert_eq!(
            RequestKind::from_u16(RequestKind::ALL.len() as u16 + 1),
            None
        );
    }

    #[test]
    fn error_response_carries_its_code() {
        let error = WireError::new(ErrorCode::UnknownTopic, "no topic \"x\"");
        let bytes = encode_error(1, &error).unwrap();
        let header = FrameHeader::parse(bytes[..HEADER_BYTES].try_into().unwrap()).unwrap();
        assert_eq!(header.code(), 3);
        let (head, _) = split(&header, &bytes[HEADER_BYTES..]).unwrap();
        assert_eq!(decode_head::<WireError>(head).unwrap(), error);
    }

    #[test]
    fn trailing_bytes_and_garbage_are_refused() {
        let mut head = postcard::to_stdvec(&DeleteTopicRequest {
            name: "t".into(),
            force: false,
        })
        .unwrap();
        head.push(0);
        assert!(matches!(
            decode_head::<DeleteTopicRequest>(&head),
            Err(CodecError::TrailingBytes(1))
        ));
        assert!(decode_head::<FetchRequest>(&[0xff; 9]).is_err());
    }
}
