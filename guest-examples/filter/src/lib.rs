//! `filter`: keeps the records whose JSON field equals a value.
//!
//! Parameters: `field` (a top-level field name) and `equals` (the value to
//! match). A record is kept, unchanged (key, value, headers, timestamp), on
//! the default output when its value is a JSON object whose `field` is the
//! string `equals`, or a number or boolean whose JSON text is `equals`
//! (`equals=42` matches `42` and `"42"`, not `42.0`). Records that are not
//! JSON objects, lack the field, or hold `null`, an array or an object there
//! are dropped: a filter never fails on input, so it can also run at fetch
//! time.

use quiver_guest::json;
use quiver_guest::{Guest, InitCell, InputRecord, OutputRecord, Params};

/// What to match.
struct Config {
    field: String,
    equals: String,
}

static CONFIG: InitCell<Config> = InitCell::new();

/// Whether `value` (a record value) matches `config`.
fn matches(config: &Config, value: &[u8]) -> bool {
    match json::get(value, &config.field) {
        Ok(Some(v)) => json::text(&v).is_some_and(|t| t == config.equals),
        Ok(None) | Err(_) => false,
    }
}

/// The records of `batch` that match, passed through.
fn filter(config: &Config, batch: Vec<InputRecord>) -> Vec<OutputRecord> {
    batch
        .into_iter()
        .filter(|r| matches(config, &r.value))
        .map(OutputRecord::forward)
        .collect()
}

struct Filter;

impl Guest for Filter {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        let params = Params::new(params);
        params.only(&["field", "equals"])?;
        CONFIG.set(Config {
            field: params.required("field")?.to_string(),
            equals: params.required("equals")?.to_string(),
        });
        Ok(())
    }

    fn process(batch: Vec<InputRecord>) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        Ok(filter(&config, batch))
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
        };
        assert!(matches(&c, br#"{"action": "click", "ts": 1}"#));
        assert!(!matches(&c, br#"{"action": "upload"}"#));
        assert!(!matches(&c, br#"{"page": "click"}"#));
        assert!(!matches(&c, br#"{"action": null}"#));
        assert!(!matches(&c, b"click"));
        assert!(!matches(&c, b""));
        let n = Config {
            field: "user_id".into(),
            equals: "42".into(),
        };
        assert!(matches(&n, br#"{"user_id": 42}"#));
        assert!(matches(&n, br#"{"user_id": "42"}"#));
        assert!(!matches(&n, br#"{"user_id": 42.5}"#));
    }

    #[test]
    fn process_forwards_matches_unchanged() {
        let config = Config {
            field: "action".into(),
            equals: "click".into(),
        };
        let record = |offset, value: &[u8]| InputRecord {
            topic: "events".into(),
            partition: 0,
            offset,
            timestamp: 5,
            key: Some(b"u1".to_vec()),
            value: value.to_vec(),
            headers: vec![("h".into(), Some(b"1".to_vec()))],
        };
        let out = filter(
            &config,
            vec![
                record(0, br#"{"action": "click"}"#),
                record(1, br#"{"action": "upload"}"#),
                record(2, b"not json"),
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].value, br#"{"action": "click"}"#);
        assert_eq!(out[0].key.as_deref(), Some(&b"u1"[..]));
        assert_eq!(out[0].timestamp, Some(5));
        assert_eq!(out[0].output, None);
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
    }
}
