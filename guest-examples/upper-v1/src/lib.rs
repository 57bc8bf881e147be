//! `upper-v1`: a module built for the previous contract,
//! `quiver:transform@0.1.0` (`wit/v0.1.0/transform.wit`), with wit-bindgen
//! directly, as modules built before 0.2.0 were. It passes each record to
//! the default output with its value upper-cased (ASCII), keeping key,
//! headers and timestamp. The broker must go on running such modules.

#[allow(
    unsafe_code,
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    clippy::pedantic,
    clippy::all
)]
mod bindings {
    wit_bindgen::generate!({
        world: "transform",
        path: "../../wit/v0.1.0",
    });
}

use bindings::exports::quiver::transform::guest::Guest;
use bindings::quiver::transform::types::{InputRecord, OutputRecord};

struct UpperV1;

impl Guest for UpperV1 {
    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<InputRecord>) -> Result<Vec<OutputRecord>, String> {
        Ok(batch
            .into_iter()
            .map(|r| OutputRecord {
                output: None,
                key: r.key,
                value: r.value.to_ascii_uppercase(),
                headers: r.headers,
                timestamp: Some(r.timestamp),
            })
            .collect())
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

/// The export glue wit-bindgen writes is `unsafe` (it is `allow`ed here
/// only, as in the SDK's `bindings` module).
#[allow(unsafe_code)]
mod export {
    use super::{UpperV1, bindings};

    bindings::export!(UpperV1 with_types_in bindings);
}
