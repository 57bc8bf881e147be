//! Every bound the protocol puts on sizes and counts. Units are in the names.
//!
//! The broker checks each of these before it allocates or loops, and answers a
//! request that exceeds one with a typed error, never a panic.

/// Largest frame (everything after the 4-byte length prefix) a peer accepts.
pub const MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;

/// Largest postcard-encoded head inside a frame.
pub const MAX_HEAD_BYTES: u32 = 1024 * 1024;

/// Largest single record batch the broker stores (Kafka's `max.message.bytes`
/// plays this role; ours is larger so that 1,000 records of 1 KiB fit).
pub const MAX_BATCH_BYTES: u32 = 8 * 1024 * 1024;

/// Most bytes a compressed batch's records may decompress to (checked as
/// they decompress, so a compression bomb costs at most about twice this
/// much memory: the buffer grows by doubling).
pub const MAX_DECOMPRESSED_BATCH_BYTES: u32 = 32 * 1024 * 1024;

/// Most bytes the compressed batches of one produce request may decompress
/// to in all; the compressed batches after that are refused (each batch is
/// checked by decompressing it, so this bounds a request's work).
pub const MAX_DECOMPRESSED_REQUEST_BYTES: u64 = 64 * 1024 * 1024;

/// Batches the broker remembers per idempotent producer and partition, to
/// recognise a retry (Kafka's limit of batches in flight per connection
/// with idempotence). A producer sends at most this many batches of one
/// partition in one request, so that all of a lost reply's batches are
/// still recognised when they are sent again.
pub const REMEMBERED_PRODUCER_BATCHES: usize = 5;

/// Most records in one batch.
pub const MAX_RECORDS_PER_BATCH: u32 = 100_000;

/// Most headers on one record.
pub const MAX_HEADERS_PER_RECORD: u32 = 1_024;

/// Most partitions a topic may have.
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 1_024;

/// Most partition entries in one produce, fetch or list request.
pub const MAX_PARTITIONS_PER_REQUEST: usize = 4_096;

/// Longest topic name, as in Kafka.
pub const MAX_TOPIC_NAME_BYTES: usize = 249;

/// Longest a fetch may wait for `min_bytes` to arrive.
pub const MAX_FETCH_WAIT_MS: u32 = 30_000;

/// Most bytes one fetch response carries (a fetch returns at least one whole
/// batch even when that batch is larger than the requested maximum).
pub const MAX_FETCH_BYTES: u32 = 16 * 1024 * 1024 - MAX_HEAD_BYTES - 64;

/// Concurrent bidirectional streams (requests in flight) per connection;
/// QUIC flow control makes a client wait for a free stream beyond this.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Concurrent client connections per broker; more are closed with
/// [`crate::ErrorCode::TooManyConnections`] as the close code.
pub const MAX_CONNECTIONS: usize = 1_024;

/// Largest WebAssembly component the broker stores.
pub const MAX_MODULE_BYTES: u32 = 8 * 1024 * 1024;

/// Longest module name (the topic-name rule applies).
pub const MAX_MODULE_NAME_BYTES: usize = MAX_TOPIC_NAME_BYTES;

/// Longest transform log line kept; longer ones are cut.
pub const MAX_LOG_LINE_BYTES: usize = 4_096;

/// Most log lines one `TransformLogs` request returns.
pub const MAX_LOG_LINES_PER_READ: u32 = 1_000;

/// About the most bytes of log messages one `TransformLogs` response holds:
/// lines stop before the one that would cross it (at least one comes), so a
/// response stays far below [`MAX_HEAD_BYTES`] whatever the lines hold.
pub const MAX_LOG_READ_BYTES: usize = 256 * 1024;

/// Most state entries one `TransformState` request returns.
pub const MAX_STATE_ENTRIES_PER_READ: u32 = 10_000;

/// About the most bytes of keys and values one `TransformState` response
/// holds: entries stop after the one that crosses it (values are at most
/// 1 MiB, so the response stays well within a frame).
pub const MAX_STATE_READ_BYTES: usize = 8 * 1024 * 1024;

/// Most `--param` pairs and named outputs of a transform, each.
pub const MAX_TRANSFORM_PARAMS: usize = 256;

/// Longest parameter name or value.
pub const MAX_TRANSFORM_PARAM_BYTES: usize = 4_096;
