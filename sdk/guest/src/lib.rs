//! Guest SDK for Quiver transforms.
//!
//! A transform is a WebAssembly component of the `quiver:transform` world
//! (`wit/transform.wit` in the repository, the one source of truth). This
//! crate generates the bindings for that world once, so that a module is a
//! small `impl` plus an `export!`:
//!
//! ```no_run
//! use quiver_guest::{Guest, InputRecord, OutputRecord};
//!
//! struct Upper;
//!
//! impl Guest for Upper {
//!     fn init(_params: Vec<(String, String)>) -> Result<(), String> {
//!         Ok(())
//!     }
//!     fn process(batch: Vec<InputRecord>) -> Result<Vec<OutputRecord>, String> {
//!         Ok(batch
//!             .into_iter()
//!             .map(|r| {
//!                 let value = r.value.to_ascii_uppercase();
//!                 OutputRecord::forward(r).with_value(value)
//!             })
//!             .collect())
//!     }
//!     fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
//!         Ok(Vec::new())
//!     }
//! }
//!
//! quiver_guest::export!(Upper);
//! ```
//!
//! Build the module with `cargo build --release --target wasm32-wasip2`;
//! the `.wasm` that cargo writes is already a component.
//!
//! Besides the bindings, the crate has helpers whose logic is pure Rust and
//! is unit-tested on the host target ([`json`], [`params`], [`window`], and
//! [`state`] through the in-memory [`state::MemStore`]). The host imports
//! (logging and the state store) only work inside the broker; on other
//! targets [`log`] prints to stderr and [`state::HostStore`] must not be
//! used.

/// The raw bindings generated from `wit/transform.wit` (world `transform`).
///
/// The useful items are re-exported at the crate root; this module is public
/// because the [`export!`] macro refers to it.
#[allow(
    unsafe_code,
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    clippy::pedantic,
    clippy::all
)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transform",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "quiver_guest::bindings",
    });
}

pub mod json;
pub mod log;
pub mod malformed;
pub mod params;
mod record;
pub mod state;
pub mod window;

/// Exports a type implementing [`Guest`] as the module's transform:
/// `quiver_guest::export!(MyTransform);` (the argument is an identifier).
pub use bindings::export;
pub use bindings::exports::quiver::transform::guest::Guest;
pub use bindings::quiver::transform::types::{Headers, InputRecord, OutputRecord};
pub use malformed::{Malformed, OnMalformed};
pub use params::{InitCell, Params};
pub use state::State;

/// The version of the `quiver:transform` package these bindings speak.
pub const CONTRACT_VERSION: &str = "0.1.0";
