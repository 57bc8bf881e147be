//! The Quiver broker as a library, and the code behind the `quiver` binary.
//!
//! # Layout
//! - [`storage`]: redb tables, the group-commit writer, partition handles.
//! - [`server`]: the QUIC listener, frame handling, and one file per request
//!   kind under `server/requests/`.
//! - [`tls`]: the broker's certificate: loaded, or generated and kept.
//! - [`broker`]: [`Broker`], which ties storage and server together and
//!   shuts them down in order.
//! - [`cli`]: the `quiver` command line (serve, topic, produce, consume, bench).

pub mod broker;
pub mod cli;
pub mod server;
pub mod storage;
pub mod tls;

pub use broker::{Broker, BrokerConfig};
