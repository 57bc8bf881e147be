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
//! in `field`, is malformed: with `on_malformed=skip` (the default) it is
//! left out with a log line; with `on_malformed=fail` it fails the batch
//! with a message naming its position.

use quiver_guest::json;
use quiver_guest::{
    Guest, InitCell, InputRecord, Malformed, OnMalformed, OutputRecord, Params, malformed,
};

/// The field to key by.
struct Config {
    field: String,
    on_malformed: OnMalformed,
}

static CONFIG: InitCell<Config> = InitCell::new();

/// Re-keys every record of `batch`, leaving out the malformed ones.
fn rekey(
    config: &Config,
    batch: Vec<InputRecord<'_>>,
) -> Result<(Vec<OutputRecord>, Malformed), String> {
    let mut malformed = Malformed::new(config.on_malformed);
    let mut out = Vec::new();
    for r in batch {
        match key_of(config, &r) {
            Ok(key) => out.push(OutputRecord::forward(&r).with_key(Some(key.into_bytes()))),
            Err(e) => malformed.record(e)?,
        }
    }
    Ok((out, malformed))
}

/// The new key of `r`, or why it is malformed.
fn key_of(config: &Config, r: &InputRecord<'_>) -> Result<String, String> {
    json::get(r.value_or_empty(), &config.field)
        .map_err(|e| format!("{}: {e}", r.position()))?
        .and_then(json::into_text)
        .ok_or_else(|| {
            format!(
                "{}: field `{}` is missing or not a string, number or boolean",
                r.position(),
                config.field
            )
        })
}

struct Rekey;

impl Guest for Rekey {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        let params = Params::new(params);
        params.only(&["field", malformed::PARAM])?;
        CONFIG.set(Config {
            field: params.required("field")?.to_string(),
            on_malformed: OnMalformed::from_params(&params)?,
        });
        Ok(())
    }

    fn process(batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        let (out, malformed) = rekey(&config, batch)?;
        malformed.log();
        Ok(out)
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

quiver_guest::export!(Rekey);

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &str) -> InputRecord<'_> {
        InputRecord {
            topic: "click",
            partition: 1,
            offset: 4,
            timestamp: 9,
            key: Some(b"user-1"),
            value: Some(value.as_bytes()),
            headers: vec![("h", None)],
        }
    }

    #[test]
    fn keys_by_field() {
        let mut c = Config {
            field: "page".into(),
            on_malformed: OnMalformed::Skip,
        };
        let (out, malformed) = rekey(
            &c,
            vec![
                record(r#"{"page": "/home"}"#),
                record("nope"),
                record(r#"{"page": 3}"#),
            ],
        )
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(malformed.skipped(), 1);
        assert_eq!(out[0].key.as_deref(), Some(&b"/home"[..]));
        assert_eq!(out[1].key.as_deref(), Some(&b"3"[..]));
        assert_eq!(out[0].value.as_deref(), Some(&br#"{"page": "/home"}"#[..]));
        assert_eq!(out[0].timestamp, Some(9));
        assert_eq!(out[0].headers, vec![("h".to_string(), None)]);
        c.on_malformed = OnMalformed::Fail;
        for bad in [r#"{"x": 1}"#, r#"{"page": null}"#, "nope"] {
            let err = rekey(&c, vec![record(bad)]).unwrap_err();
            assert!(err.starts_with("click/1@4: "), "{err}");
        }
    }
}
