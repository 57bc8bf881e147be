//! The async Rust SDK for Quiver.
//!
//! # Layout
//! - [`Client`] (`client.rs`): one QUIC connection to a broker at a time,
//!   re-dialled when lost; every other type sends its requests through it.
//!   [`ClientConfig`] says where, which certificate authority to trust, and
//!   how long to wait.
//! - `reconnect.rs`: the backoff with which a [`Consumer`] and an
//!   idempotent [`Producer`] retry a lost broker.
//! - [`Producer`] (`producer.rs`): batching by size and linger, keyed
//!   partitioning ([`partitioner`]), durable acknowledgements.
//! - [`Consumer`] (`consumer.rs`): assigned partitions, seek, long-poll;
//!   or consumer-group membership (`group.rs`): subscribe, cooperative
//!   rebalancing, committed offsets.
//! - [`Admin`] (`admin.rs`): create, list, describe and delete topics.
//! - [`quic`]: the endpoint and transport settings the broker shares.
//! - [`ClientError`] (`error.rs`): every failure, typed, with the broker's
//!   stable error code where there is one.
//!
//! ```no_run
//! # async fn demo() -> Result<(), quiver_client::ClientError> {
//! use quiver_client::{Client, ClientConfig, Producer, ProducerConfig, ProducerRecord};
//! let client = Client::connect(ClientConfig::new("127.0.0.1:7400").ca_file("quiver-data/tls/cert.pem")).await?;
//! let producer = Producer::new(client.clone(), ProducerConfig::default());
//! let ack = producer.send(ProducerRecord::new("click", "hello").key("user-1")).await?;
//! println!("stored at {}/{}", ack.partition, ack.offset);
//! # Ok(()) }
//! ```

mod ack;
mod admin;
mod buffers;
mod client;
mod consumer;
mod error;
mod group;
mod prefetch;
pub use quiver_proto::partitioner;
mod producer;
pub mod quic;
mod reconnect;
mod wall_clock;

pub use admin::Admin;
pub use client::{
    Client, ClientConfig, DEFAULT_BROKER, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, MAX_DECOMPRESSED_POLL_BYTES, Offset, TopicPartition,
};
pub use error::ClientError;
pub use group::{GroupSettings, RebalanceEvent};
pub use producer::{
    DEFAULT_DELIVERY_TIMEOUT, DeliveryFuture, Producer, ProducerConfig, ProducerRecord,
    RecordMetadata, RequestObserver, RequestStats, TopicName,
};
pub use quiver_proto::api::groups::{
    CommittedOffset, GroupDescription, GroupMember, GroupPartition, PartitionRef, ResetTarget,
};
pub use quiver_proto::api::modules::ModuleDescription;
pub use quiver_proto::api::transforms::{
    DeployTransformRequest, LogLevel, LogLine, OnError, RunState, StartFrom, StateEntry,
    TransformAction, TransformPartition, TransformStatus,
};
pub use quiver_proto::api::{
    AlterTopicRequest, Change, FetchModule, ListOffsetsPartition, ListOffsetsResult, OffsetSpec,
    PartitionDescription, TimestampType, TopicCompression, TopicConfig, TopicDescription,
    TopicSummary,
};
pub use quiver_proto::batch::{Compression, Header};
pub use quiver_proto::{ErrorCode, ErrorDetail, WireError};
pub use reconnect::{DEFAULT_RECONNECT_TIMEOUT, RECONNECT_BACKOFF_INITIAL, RECONNECT_BACKOFF_MAX};
