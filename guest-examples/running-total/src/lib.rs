//! `running-total`: an in-broker consumer with no output. It keeps, per
//! record key, a running total in the transform's state store, which a
//! client reads with `quiver transform state NAME [KEY]`.
//!
//! Parameter `field` (optional): when given, each record adds the integer
//! value of that top-level JSON field to its key's total; without it, each
//! record adds 1, so the totals are record counts. A record whose value is
//! not a JSON object, lacks the field or holds a non-integer there is
//! malformed: with `on_malformed=skip` (the default) it is left out with a
//! log line; with `on_malformed=fail` it fails the batch.
//!
//! The state key is the record key as is (a record without a key counts
//! under the empty key); the value is the total as decimal text (`b"42"`).
//! Totals are committed with the input position, so they count every record
//! exactly once across crashes and restarts.

use std::collections::HashMap;

use quiver_guest::state::Store;
use quiver_guest::{
    Guest, InitCell, InputRecord, Malformed, OnMalformed, OutputRecord, Params, State, json,
    malformed,
};

/// What to total.
struct Config {
    /// The field to sum, or `None` to count records.
    field: Option<String>,
    on_malformed: OnMalformed,
}

static CONFIG: InitCell<Config> = InitCell::new();

/// Adds `batch` into the totals in `state`; returns what it left out.
fn total<S: Store>(
    config: &Config,
    state: &mut State<S>,
    batch: &[InputRecord<'_>],
) -> Result<Malformed, String> {
    let mut malformed = Malformed::new(config.on_malformed);
    // Sum per key in the batch first: one read and one write per key.
    let mut sums: HashMap<&[u8], i64> = HashMap::new();
    for record in batch {
        let amount = match amount(config, record) {
            Ok(amount) => amount,
            Err(e) => {
                malformed.record(e)?;
                continue;
            }
        };
        let key = record.key.unwrap_or_default();
        let sum = sums.entry(key).or_default();
        *sum = sum
            .checked_add(amount)
            .ok_or_else(|| format!("{}: total overflows i64", record.position()))?;
    }
    for (key, sum) in sums {
        state.add_i64(key, sum)?;
    }
    Ok(malformed)
}

/// What `record` adds, or why it is malformed.
fn amount(config: &Config, record: &InputRecord<'_>) -> Result<i64, String> {
    let Some(field) = &config.field else {
        return Ok(1);
    };
    json::get(record.value_or_empty(), field)
        .map_err(|e| format!("{}: {e}", record.position()))?
        .as_ref()
        .and_then(json::as_i64)
        .ok_or_else(|| {
            format!(
                "{}: field `{field}` is missing or not an integer",
                record.position()
            )
        })
}

struct RunningTotal;

impl Guest for RunningTotal {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        let params = Params::new(params);
        params.only(&["field", malformed::PARAM])?;
        CONFIG.set(Config {
            field: params.get("field").map(str::to_string),
            on_malformed: OnMalformed::from_params(&params)?,
        });
        Ok(())
    }

    fn process(batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        total(&config, &mut State::host(), &batch)?.log();
        Ok(Vec::new())
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

quiver_guest::export!(RunningTotal);

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_guest::state::MemStore;

    fn record<'a>(key: Option<&'a str>, value: &'a str) -> InputRecord<'a> {
        InputRecord {
            topic: "orders",
            partition: 0,
            offset: 3,
            timestamp: 0,
            key: key.map(str::as_bytes),
            value: Some(value.as_bytes()),
            headers: Vec::new(),
        }
    }

    #[test]
    fn counts_per_key_across_batches() {
        let config = Config {
            field: None,
            on_malformed: OnMalformed::Skip,
        };
        let mut state = State::new(MemStore::default());
        total(
            &config,
            &mut state,
            &[
                record(Some("a"), ""),
                record(Some("b"), ""),
                record(Some("a"), ""),
            ],
        )
        .unwrap();
        total(
            &config,
            &mut state,
            &[record(Some("a"), ""), record(None, "")],
        )
        .unwrap();
        assert_eq!(state.get_i64(b"a"), Ok(Some(3)));
        assert_eq!(state.get_i64(b"b"), Ok(Some(1)));
        assert_eq!(state.get_i64(b""), Ok(Some(1)));
    }

    #[test]
    fn sums_a_field_and_skips_or_rejects_bad_records() {
        let mut config = Config {
            field: Some("amount".into()),
            on_malformed: OnMalformed::Skip,
        };
        let mut state = State::new(MemStore::default());
        total(
            &config,
            &mut state,
            &[
                record(Some("a"), r#"{"amount": 5}"#),
                record(Some("a"), r#"{"amount": -2}"#),
            ],
        )
        .unwrap();
        assert_eq!(state.get(b"a").as_deref(), Some(&b"3"[..]));
        let skipped = total(
            &config,
            &mut state,
            &[
                record(Some("a"), "nope"),
                record(Some("a"), r#"{"amount": 1}"#),
            ],
        )
        .unwrap();
        assert_eq!(skipped.skipped(), 1);
        assert_eq!(state.get(b"a").as_deref(), Some(&b"4"[..]));
        config.on_malformed = OnMalformed::Fail;
        let before = state.store().clone();
        for bad in [r#"{"amount": 1.5}"#, r#"{"x": 1}"#, "nope"] {
            let err = total(&config, &mut state, &[record(Some("a"), bad)]).unwrap_err();
            assert!(err.starts_with("orders/0@3: "), "{err}");
        }
        assert_eq!(state.store(), &before, "a failed batch writes nothing");
    }
}
