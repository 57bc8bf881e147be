//! `router`: fans records out to named outputs by the value of a JSON field.
//!
//! Parameters: `field` (required, a top-level field name) and `outputs`
//! (optional, a comma-separated list of output names). Each record goes,
//! unchanged, to the output named by its field's value: with `field=action`,
//! `{"action": "click", ...}` goes to output `click` and `{"action":
//! "upload", ...}` to output `upload`; deploy with `--output click=TOPIC
//! --output upload=TOPIC` to map them to topics. Numbers and booleans name
//! outputs by their JSON text.
//!
//! A record goes to the default output instead when its value lacks the
//! field, holds `null`, an array or an object there, or, if `outputs` is
//! given, names an output not in that list. Without `outputs`, every value
//! must be mapped at deploy: the host fails a batch that names an unmapped
//! output. A record that is not a JSON object is malformed: with
//! `on_malformed=skip` (the default) it is dropped with a log line; with
//! `on_malformed=fail` it fails the call.

use quiver_guest::json;
use quiver_guest::{
    Guest, InitCell, InputRecord, Malformed, OnMalformed, OutputRecord, Params, malformed,
};

/// How to route.
struct Config {
    field: String,
    /// The output names allowed, if restricted.
    outputs: Option<Vec<String>>,
    on_malformed: OnMalformed,
}

static CONFIG: InitCell<Config> = InitCell::new();

/// The output for a record value: `None` is the default output; an error
/// if the value is not a JSON object.
fn route(config: &Config, value: &[u8]) -> Result<Option<String>, String> {
    let Some(name) = json::get(value, &config.field)?.and_then(json::into_text) else {
        return Ok(None);
    };
    Ok(match &config.outputs {
        Some(allowed) if !allowed.contains(&name) => None,
        _ => Some(name),
    })
}

/// Routes every record of `batch`, leaving out the malformed ones.
fn run(
    config: &Config,
    batch: Vec<InputRecord<'_>>,
) -> Result<(Vec<OutputRecord>, Malformed), String> {
    let mut malformed = Malformed::new(config.on_malformed);
    let mut out = Vec::new();
    for record in batch {
        match route(config, record.value_or_empty()) {
            Ok(output) => {
                let mut forwarded = OutputRecord::forward(&record);
                forwarded.output = output;
                out.push(forwarded);
            }
            Err(e) => malformed.record(format!("{}: {e}", record.position()))?,
        }
    }
    Ok((out, malformed))
}

/// Parses `config` from the parameters.
fn configure(params: &Params) -> Result<Config, String> {
    params.only(&["field", "outputs", malformed::PARAM])?;
    let field = params.required("field")?.to_string();
    let outputs = params.get("outputs").map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    });
    if outputs.as_ref().is_some_and(Vec::is_empty) {
        return Err("parameter `outputs` names no output".to_string());
    }
    Ok(Config {
        field,
        outputs,
        on_malformed: OnMalformed::from_params(params)?,
    })
}

struct Router;

impl Guest for Router {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        CONFIG.set(configure(&Params::new(params))?);
        Ok(())
    }

    fn process(batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        let (out, malformed) = run(&config, batch)?;
        malformed.log();
        Ok(out)
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        Ok(Vec::new())
    }
}

quiver_guest::export!(Router);

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs)
    }

    #[test]
    fn routes_by_field_value() {
        let c = configure(&params(&[("field", "action")])).unwrap();
        let route = |c: &Config, v: &[u8]| route(c, v).unwrap();
        assert_eq!(
            route(&c, br#"{"action": "click"}"#).as_deref(),
            Some("click")
        );
        assert_eq!(
            route(&c, br#"{"action": "upload"}"#).as_deref(),
            Some("upload")
        );
        assert_eq!(route(&c, br#"{"action": 7}"#).as_deref(), Some("7"));
        assert_eq!(route(&c, br#"{"page": "/"}"#), None);
        assert_eq!(route(&c, br#"{"action": null}"#), None);
        assert!(super::route(&c, b"garbage").is_err());
    }

    #[test]
    fn restricted_outputs() {
        let c = configure(&params(&[
            ("field", "action"),
            ("outputs", "click, upload"),
        ]))
        .unwrap();
        let route = |c: &Config, v: &[u8]| route(c, v).unwrap();
        assert_eq!(
            route(&c, br#"{"action": "upload"}"#).as_deref(),
            Some("upload")
        );
        assert_eq!(route(&c, br#"{"action": "view"}"#), None);
        assert!(configure(&params(&[("field", "a"), ("outputs", " , ")])).is_err());
        assert!(configure(&params(&[("outputs", "a")])).is_err());
    }

    #[test]
    fn run_keeps_records_whole() {
        let c = configure(&params(&[("field", "action")])).unwrap();
        let input = InputRecord {
            topic: "events",
            partition: 1,
            offset: 9,
            timestamp: 77,
            key: Some(b"u"),
            value: Some(br#"{"action": "click"}"#),
            headers: Vec::new(),
        };
        let mut garbage = input.clone();
        garbage.value = Some(b"garbage");
        let (out, malformed) = run(&c, vec![input.clone(), garbage.clone()]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].output.as_deref(), Some("click"));
        assert_eq!(out[0].key.as_deref(), Some(&b"u"[..]));
        assert_eq!(out[0].timestamp, Some(77));
        assert_eq!(malformed.skipped(), 1);
        let strict = configure(&params(&[("field", "action"), ("on_malformed", "fail")])).unwrap();
        let error = run(&strict, vec![input, garbage]).unwrap_err();
        assert!(error.starts_with("events/1@9: invalid JSON"), "{error}");
    }
}
