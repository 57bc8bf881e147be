//! `rekey`: sets each record's key to the value of one of its JSON fields.
//!
//! Parameter `field` (required, a top-level field name). Each record goes to
//! the default output with its value, headers and timestamp unchanged and
//! its key replaced by the field's value (a string as is, a number or
//! boolean as its JSON text). Because the host partitions keyed output
//! records by key, every record with the same field value lands in the same
//! partition of the output topic: this is the first step of a global
//! per-value aggregation (`rekey` by `page`, then `click-aggregate`).
//!
//! A record that is not a JSON object, or lacks a string, number or boolean
//! in `field`, fails the batch with a message naming its position.

use quiver_guest::json;
use quiver_guest::{Guest, InitCell, InputRecord, OutputRecord, Params};

/// The field to key by.
struct Config {
    field: String,
}

static CONFIG: InitCell<Config> = InitCell::new();

/// Re-keys every record of `batch`.
fn rekey(config: &Config, batch: Vec<InputRecord>) -> Result<Vec<OutputRecord>, String> {
    batch
        .into_iter()
        .map(|r| {
            let key = json::get(&r.value, &config.field)
                .map_err(|e| format!("{}: {e}", r.position()))?
                .and_then(json::into_text)
                .ok_or_else(|| {
                    format!(
                        "{}: field `{}` is missing or not a string, number or boolean",
                        r.position(),
                        config.field
                    )
                })?;
            Ok(OutputRecord::forward(r).with_key(Some(key.into_bytes())))
        })
        .collect()
}

struct Rekey;

impl Guest for Rekey {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        let params = Params::new(params);
        params.only(&["field"])?;
        CONFIG.set(Config {
            field: params.required("field")?.to_string(),
        });
        Ok(())
    }

    fn process(batch: Vec<InputRecord>) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        rekey(&config, batch)
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

quiver_guest::export!(Rekey);

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> InputRecord {
        InputRecord {
            topic: "click".into(),
            partition: 1,
            offset: 4,
            timestamp: 9,
            key: Some(b"user-1".to_vec()),
            value: value.as_bytes().to_vec(),
            headers: vec![("h".into(), None)],
        }
    }

    #[test]
    fn keys_by_field() {
        let c = Config {
            field: "page".into(),
        };
        let out = rekey(
            &c,
            vec![record(r#"{"page": "/home"}"#), record(r#"{"page": 3}"#)],
        )
        .unwrap();
        assert_eq!(out[0].key.as_deref(), Some(&b"/home"[..]));
        assert_eq!(out[1].key.as_deref(), Some(&b"3"[..]));
        assert_eq!(out[0].value, br#"{"page": "/home"}"#);
        assert_eq!(out[0].timestamp, Some(9));
        assert_eq!(out[0].headers, vec![("h".to_string(), None)]);
        for bad in [r#"{"x": 1}"#, r#"{"page": null}"#, "nope"] {
            let err = rekey(&c, vec![record(bad)]).unwrap_err();
            assert!(err.starts_with("click/1@4: "), "{err}");
        }
    }
}
