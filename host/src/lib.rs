//! The Quiver broker as a library, and the code behind the `quiver` binary.
//!
//! # Layout
//! - [`storage`]: redb tables, the group-commit writer, partition handles.
//! - [`service`]: the broker's operations, one file each, shared by every
//!   front end (validation, limits, metrics and error codes live there).
//! - [`server`]: the QUIC front end: listener, frames, dispatch to the
//!   service.
//! - [`kafka`]: the Kafka front end: a TCP listener speaking Kafka's
//!   protocol, each API calling the same service.
//! - [`tls`]: the broker's certificate: loaded, or generated and kept.
//! - [`wasm`]: the WebAssembly engine, the check an uploaded component must
//!   pass, and the sandbox guests run in.
//! - [`transforms`]: deployed transforms: a worker thread each, exactly-once
//!   commits of outputs, state and input position.
//! - [`broker`]: [`Broker`], which ties storage and server together, runs the
//!   retention cleaner, and shuts them down in order.
//! - [`clock`]: the injectable clock (tests move time by hand).
//! - [`coordinator`]: consumer groups as a service: the state machine of
//!   [`groups`] behind a lock, with committed offsets in storage.
//! - [`config`]: the `serve` configuration: TOML file, environment, flags.
//! - [`metrics`]: [`Metrics`](metrics::Metrics), one registry per broker.
//! - [`http`]: the operator's HTTP port (`/health`, `/ready`, `/metrics`).
//! - [`groups`]: the consumer-group coordinator, a pure state machine.
//!
//! The `quiver` binary's command line lives beside `main.rs` in `src/cli/`.

pub mod broker;
pub mod clock;
pub mod config;
pub mod coordinator;
pub mod groups;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod server;
pub mod service;
pub mod storage;
pub mod tls;
pub mod transforms;
pub mod wasm;

pub use broker::{Broker, BrokerConfig};
