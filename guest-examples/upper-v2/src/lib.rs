//! `upper-v2`: a module built for the previous contract,
//! `quiver:transform@0.2.0` (`wit/v0.2.0/transform.wit`), with wit-bindgen
//! directly, as modules built before 0.3.0 were. It decodes the stored
//! batches it is passed and sends each record in its range to the default
//! output with its value upper-cased (ASCII), keeping key, headers and
//! timestamp. 0.2.0 output values cannot be null, so a tombstone leaves as
//! an empty value. The broker must go on running such modules.

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
        path: "../../wit/v0.2.0",
    });
}

use bindings::exports::quiver::transform::guest::Guest;
use bindings::quiver::transform::types::{InputBatch, OutputRecord};
use quiver_proto::batch::BatchView;

struct UpperV2;

impl Guest for UpperV2 {
    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(input: InputBatch) -> Result<Vec<OutputRecord>, String> {
        let mut out = Vec::new();
        for bytes in &input.batches {
            let view = BatchView::parse(bytes).map_err(|e| e.to_string())?;
            for record in view.records() {
                let record = record.map_err(|e| e.to_string())?;
                let delta = u64::from(record.offset_delta.max(0).cast_unsigned());
                let offset = view.base_offset() + delta;
                if !(input.first_offset..input.end_offset).contains(&offset) {
                    continue;
                }
                out.push(OutputRecord {
                    output: None,
                    key: record.key.map(<[u8]>::to_vec),
                    value: record.value.unwrap_or_default().to_ascii_uppercase(),
                    headers: record
                        .headers()
                        .map(|(name, value)| (name.to_owned(), value.map(<[u8]>::to_vec)))
                        .collect(),
                    timestamp: Some(record.timestamp),
                });
            }
        }
        Ok(out)
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

/// The export glue wit-bindgen writes is `unsafe` (it is `allow`ed here
/// only, as in the SDK's `bindings` module).
#[allow(unsafe_code)]
mod export {
    use super::{UpperV2, bindings};

    bindings::export!(UpperV2 with_types_in bindings);
}
