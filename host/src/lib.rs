//! The Quiver broker as a library, and the code behind the `quiver` binary.
//!
//! # Layout
//! - [`storage`]: redb tables, the group-commit writer, partition handles.
//! - [`server`]: the QUIC listener, frame handling, and one file per request
//!   kind under `server/requests/`.
//! - [`tls`]: the broker's certificate: loaded, or generated and kept.
//! - [`broker`]: [`Broker`], which ties storage and server together, runs the
//!   retention cleaner, and shuts them down in order.
//! - [`clock`]: the injectable clock (tests move time by hand).
//!
//! The `quiver` binary's command line lives beside `main.rs` in `src/cli/`.

pub mod broker;
pub mod clock;
pub mod server;
pub mod storage;
pub mod tls;

pub use broker::{Broker, BrokerConfig};
