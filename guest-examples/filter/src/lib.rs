//! `filter`: keeps the records whose JSON field equals a value.
//!
//! Parameters: `field` (a top-level field name) and `equals` (the value to
//! match). A record is kept, unchanged (key, value, headers, timestamp), on
//! the default output when its value is a JSON object whose `field` is the
//! string `equals`, or a number or boolean whose JSON text is `equals`
//! (`equals=42` matches `42` and `"42"`, not `42.0`). Records that lack the
//! field, or hold `null`, an array or an object there, do not match and are
//! dropped. A record that is not a JSON object is malformed: with
//! `on_malformed=skip` (the default) it is dropped with a log line, so the
//! filter also suits fetch-time filtering; with `on_malformed=fail` it
//! fails the call.
//!
//! A record with a null value (a tombstone: in a compacted topic, "delete
//! this key") has no field to match. Parameter `tombstones`: `drop` (the
//! default) leaves tombstones out; `keep` passes every one through
//! unchanged, so that a consumer of the output also sees the deletes.

use quiver_guest::json;
use quiver_guest::{
    Guest, InitCell, InputRecord, Malformed, OnMalformed, OutputRecord, Params, malformed,
};

/// What to match.
struct Config {
    field: String,
    equals: String,
    on_malformed: OnMalformed,
    /// `tombstones=keep`.
    keep_tombstones: bool,
}

static CONFIG: InitCell<Config> = InitCell::new();

/// Whether `value` (a record value) matches `config`; an error if it is
/// not a JSON object.
fn matches(config: &Config, value: &[u8]) -> Result<bool, String> {
    json::field_text_is(value, &config.field, &config.equals)
}

/// The records of `batch` that match, passed through, and the malformed
/// ones left out.
fn filter(
    config: &Config,
    batch: Vec<InputRecord<'_>>,
) -> Result<(Vec<OutputRecord>, Malformed), String> {
    let mut malformed = Malformed::new(config.on_malformed);
    let mut out = Vec::new();
    for record in batch {
        let Some(value) = record.value else {
            if config.keep_tombstones {
                out.push(OutputRecord::forward(&record));
            }
            continue;
        };
        match matches(config, value) {
            Ok(true) => out.push(OutputRecord::forward(&record)),
            Ok(false) => {}
            Err(e) => malformed.record(format!("{}: {e}", record.position()))?,
        }
    }
    Ok((out, malformed))
}

struct Filter;

impl Guest for Filter {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        let params = Params::new(params);
        params.only(&["field", "equals", "tombstones", malformed::PARAM])?;
        let keep_tombstones = match params.get("tombstones") {
            None | Some("drop") => false,
            Some("keep") => true,
            Some(other) => {
                return Err(format!(
                    "parameter `tombstones` must be `drop` or `keep`, not {other:?}"
                ));
            }
        };
        CONFIG.set(Config {
            field: params.required("field")?.to_string(),
            equals: params.required("equals")?.to_string(),
            on_malformed: OnMalformed::from_params(&params)?,
            keep_tombstones,
        });
        Ok(())
    }

    fn process(batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        let (out, malformed) = filter(&config, batch)?;
        malformed.log();
        Ok(out)
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

quiver_guest::export!(Filter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let c = Config {
            field: "action".into(),
            equals: "click".into(),
            on_malformed: OnMalformed::Skip,
            keep_tombstones: false,
        };
        let matches = |c: &Config, v: &[u8]| matches(c, v).unwrap_or(false);
        assert!(matches(&c, br#"{"action": "click", "ts": 1}"#));
        assert!(!matches(&c, br#"{"action": "upload"}"#));
        assert!(!matches(&c, br#"{"page": "click"}"#));
        assert!(!matches(&c, br#"{"action": null}"#));
        assert!(!matches(&c, b"click"));
        assert!(!matches(&c, b""));
        let n = Config {
            field: "user_id".into(),
            equals: "42".into(),
            on_malformed: OnMalformed::Skip,
            keep_tombstones: false,
        };
        assert!(matches(&n, br#"{"user_id": 42}"#));
        assert!(matches(&n, br#"{"user_id": "42"}"#));
        assert!(!matches(&n, br#"{"user_id": 42.5}"#));
    }

    #[test]
    fn process_forwards_matches_unchanged() {
        let mut config = Config {
            field: "action".into(),
            equals: "click".into(),
            on_malformed: OnMalformed::Skip,
            keep_tombstones: false,
        };
        let record = |offset, value: Option<&'static [u8]>| InputRecord {
            topic: "events",
            partition: 0,
            offset,
            timestamp: 5,
            key: Some(b"u1"),
            value,
            headers: vec![("h", Some(b"1"))],
        };
        let batch = || {
            vec![
                record(0, Some(br#"{"action": "click"}"#)),
                record(1, Some(br#"{"action": "upload"}"#)),
                record(2, Some(b"not json")),
                record(3, Some(br#"{"page": "/"}"#)),
                record(4, None),
            ]
        };
        let (out, malformed) = filter(&config, batch()).unwrap();
        assert_eq!(malformed.skipped(), 1, "only the record that is not JSON");
        assert!(malformed.summary().unwrap().contains("events/0@2"));
        assert_eq!(out.len(), 1, "the tombstone is dropped by default");
        assert_eq!(
            out[0].value.as_deref(),
            Some(&br#"{"action": "click"}"#[..])
        );
        assert_eq!(out[0].key.as_deref(), Some(&b"u1"[..]));
        assert_eq!(out[0].timestamp, Some(5));
        assert_eq!(out[0].output, None);
        config.keep_tombstones = true;
        let (out, _) = filter(&config, batch()).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[1].key.as_deref(), &out[1].value),
            (Some(&b"u1"[..]), &None)
        );
        config.on_malformed = OnMalformed::Fail;
        let error = filter(&config, batch()).unwrap_err();
        assert!(error.starts_with("events/0@2: invalid JSON"), "{error}");
    }

    #[test]
    fn init_requires_both_parameters() {
        let p = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect()
        };
        assert!(
            Filter::init(p(&[("field", "a")]))
                .unwrap_err()
                .contains("`equals`")
        );
        assert!(Filter::init(p(&[("field", "a"), ("equals", "b"), ("x", "")])).is_err());
        assert!(Filter::init(p(&[("field", "a"), ("equals", "b")])).is_ok());
        let keep = p(&[("field", "a"), ("equals", "b"), ("tombstones", "keep")]);
        assert!(Filter::init(keep).is_ok());
        let bad = p(&[("field", "a"), ("equals", "b"), ("tombstones", "yes")]);
        assert!(Filter::init(bad).unwrap_err().contains("`tombstones`"));
    }
}
