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
//!     fn process(batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String> {
//!         Ok(batch
//!             .iter()
//!             .map(|r| match r.value {
//!                 Some(value) => OutputRecord::forward(r).with_value(value.to_ascii_uppercase()),
//!                 None => OutputRecord::forward(r), // a tombstone stays one
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
//! The host passes each call's input as the stored record batches
//! (contract 0.3.0); the SDK decodes them ([`input`]) into records that
//! borrow from them, so a record costs the guest no allocation unless it
//! has headers.
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
        export_macro_name: "export_bindings",
        default_bindings_module: "quiver_guest::bindings",
    });
}

pub mod input;
pub mod json;
pub mod log;
pub mod malformed;
pub mod params;
mod record;
mod scan;
pub mod state;
pub mod window;

pub use bindings::quiver::transform::types::{Headers, OutputRecord};
pub use input::InputRecord;
pub use malformed::{Malformed, OnMalformed};
pub use params::{InitCell, Params};
pub use state::State;

/// The version of the `quiver:transform` package these bindings speak.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// A transform: what a module implements. The calling model and the
/// exactly-once contract are those of `wit/transform.wit`.
pub trait Guest {
    /// Called once on each new instance, before any other call, with the
    /// deployment's parameters in the order given; an `Err` stops the
    /// transform.
    fn init(params: Vec<(String, String)>) -> Result<(), String>;

    /// Processes a non-empty batch of records of one input partition, in
    /// offset order; returns the records to append to the outputs. An
    /// `Err`, like a panic, changes nothing.
    fn process(batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String>;

    /// Called from time to time with the event-time watermark (see the
    /// contract), so that windows can close without new records.
    fn on_tick(watermark: i64) -> Result<Vec<OutputRecord>, String>;
}

/// The contract's `guest` export for a [`Guest`] `T`: decodes each call's
/// batches and hands `T` the records. Used by [`export!`].
#[doc(hidden)]
pub struct Export<T>(std::marker::PhantomData<T>);

impl<T: Guest> bindings::exports::quiver::transform::guest::Guest for Export<T> {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        T::init(params)
    }

    fn process(
        batch: bindings::quiver::transform::types::InputBatch,
    ) -> Result<Vec<OutputRecord>, String> {
        T::process(input::decode(&batch)?)
    }

    fn on_tick(watermark: i64) -> Result<Vec<OutputRecord>, String> {
        T::on_tick(watermark)
    }
}

/// Exports a type implementing [`Guest`] as the module's transform:
/// `quiver_guest::export!(MyTransform);` (the argument is an identifier).
#[macro_export]
macro_rules! export {
    ($ty:ident) => {
        #[doc(hidden)]
        type QuiverGuestExport = $crate::Export<$ty>;
        $crate::bindings::export_bindings!(QuiverGuestExport with_types_in $crate::bindings);
    };
}
