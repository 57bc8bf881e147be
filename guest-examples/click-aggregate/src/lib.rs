//! `click-aggregate`: counts records per tumbling event-time window and
//! group value (the website-tracking scenario).
//!
//! Input: JSON objects such as
//! `{"user_id": 7, "page": "/home", "action": "click", "ts": 1700000000123}`.
//! Event time is the integer field `ts` (ms since the epoch).
//!
//! Parameters: `window_ms` (default 60000), `group_by` (a top-level field
//! name, default `page`), `grace_ms` (default 0), `on_malformed` (`skip`,
//! the default, or `fail`).
//!
//! Windows are aligned to the epoch (`start = ts - ts mod window_ms`). Every
//! record is counted in its window under its group value (a string as is, a
//! number or boolean as its JSON text). A window closes when the highest
//! `ts` seen on that input partition minus `grace_ms` reaches its end; its
//! counts are then emitted on the default output, one record per group
//! value: key = the group value, value =
//! `{"key": "/home", "window_start": ms, "window_end": ms, "count": n}`,
//! timestamp = `window_end - 1`. Closed windows are emitted by the `process`
//! call that advances the partition's highest `ts`, and by `on-tick`, which
//! flushes whatever is due (the host's watermark is not used: event time
//! here is the `ts` field, not the record timestamp).
//!
//! Counts live in the state store, committed with the input position, so a
//! restart neither loses nor double-counts them. Each input partition keeps
//! its own counts and highest `ts`, so with several input partitions a
//! (window, group value) comes out as one partial count per partition, whose
//! sum is the true count; re-key by the group field first for one global
//! count (see the README). A record that arrives after its window closed is
//! still counted: it comes out as one more partial count for that window.
//!
//! A record that is not a JSON object, or lacks an integer `ts` (in 1970 to
//! 2286) or a scalar group value, is malformed: skipped with a log line, or
//! with `on_malformed=fail` it fails the batch with a message naming its
//! position (the transform's `--on-error` policy then applies).
//!
//! State layout (text keys, decimal text values):
//!
//! - `partition/<P>/window/<start-ms, 13 digits>/<group value>` → count
//!   (see `quiver_guest::state::WindowKeys`), for example
//!   `partition/0/window/1764064800000//docs`;
//! - `high-ts/<P>` → highest `ts` seen on input partition `P`.

use std::collections::BTreeMap;

use quiver_guest::state::{Store, WindowKeys};
use quiver_guest::window::{Window, Windows, closed, window_start};
use quiver_guest::{
    Guest, InitCell, InputRecord, Malformed, OnMalformed, OutputRecord, Params, State, json,
    malformed,
};
use serde::Serialize;

/// Entries read per state scan while emitting closed windows.
const SCAN_PAGE: u32 = 512;
/// The most input partitions `on-tick` looks at.
const MAX_PARTITIONS: u32 = 1 << 16;

/// The deployment's parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    windows: Windows,
    group_by: String,
    on_malformed: OnMalformed,
}

impl Config {
    fn from_params(params: &Params) -> Result<Self, String> {
        params.only(&["window_ms", "group_by", "grace_ms", malformed::PARAM])?;
        let window_ms = params.parse_or("window_ms", 60_000_i64)?;
        let grace_ms = params.parse_or("grace_ms", 0_i64)?;
        let group_by = params.get("group_by").unwrap_or("page").to_string();
        if group_by.is_empty() {
            return Err("parameter `group_by` must name a field".to_string());
        }
        let windows = Windows::tumbling(window_ms)
            .and_then(|w| w.with_grace(grace_ms))
            .map_err(|e| format!("parameters: {e}"))?;
        Ok(Self {
            windows,
            group_by,
            on_malformed: OnMalformed::from_params(params)?,
        })
    }
}

static CONFIG: InitCell<Config> = InitCell::new();

/// The value of an emitted record.
#[derive(Serialize)]
struct Emitted<'a> {
    key: &'a str,
    window_start: i64,
    window_end: i64,
    count: u64,
}

/// The count keys of input partition `partition`.
fn count_keys(partition: u32) -> WindowKeys {
    WindowKeys::new(&format!("partition/{partition}/"))
}

/// What the keys of the highest `ts` per partition start with.
const HIGH_PREFIX: &str = "high-ts/";

/// The key of the highest `ts` seen on `partition`.
fn high_key(partition: u32) -> String {
    format!("{HIGH_PREFIX}{partition}")
}

/// The counting and emitting logic, over any store.
struct Aggregator<'a, S> {
    config: &'a Config,
    state: &'a mut State<S>,
}

impl<S: Store> Aggregator<'_, S> {
    /// Counts `batch` and returns the windows it closed, and what it
    /// skipped as malformed.
    fn process(
        &mut self,
        batch: &[InputRecord<'_>],
    ) -> Result<(Vec<OutputRecord>, Malformed), String> {
        let windows = self.config.windows;
        let mut malformed = Malformed::new(self.config.on_malformed);
        // Per (partition, window start, group value): this batch's count.
        let mut counts: BTreeMap<(u32, i64, String), u64> = BTreeMap::new();
        // Per partition: this batch's highest ts.
        let mut highs: BTreeMap<u32, i64> = BTreeMap::new();
        for record in batch {
            let (ts, start, group) = match self.read(record) {
                Ok(read) => read,
                Err(error) => {
                    malformed.record(error)?;
                    continue;
                }
            };
            *counts.entry((record.partition, start, group)).or_default() += 1;
            highs
                .entry(record.partition)
                .and_modify(|h| *h = (*h).max(ts))
                .or_insert(ts);
        }

        for ((partition, start, group), n) in &counts {
            let key = count_keys(*partition).key(*start, group)?;
            self.state.add_u64(key.as_bytes(), *n)?;
        }

        let mut outputs = Vec::new();
        for (partition, batch_high) in highs {
            let key = high_key(partition);
            let old = self.state.get_i64(key.as_bytes())?;
            let high = old.map_or(batch_high, |old| old.max(batch_high));
            if old != Some(high) {
                self.state.put_i64(key.as_bytes(), high);
            }
            // Windows closed before this batch were emitted already; what
            // may close now is a window whose end the new high (minus
            // grace) passed, or a window this batch counted late into.
            let edge = high.saturating_sub(windows.grace());
            let crossed = old.is_none_or(|old| {
                window_start(old.saturating_sub(windows.grace()), windows.size())
                    < window_start(edge, windows.size())
            });
            let late = counts.keys().any(|(p, start, _)| {
                *p == partition && windows.is_closed(windows.at(*start), high)
            });
            if crossed || late {
                self.emit_closed(partition, high, &mut outputs)?;
            }
        }
        Ok((outputs, malformed))
    }

    /// A record's `ts`, its window start and its group value, or why it is
    /// malformed.
    fn read(&self, record: &InputRecord<'_>) -> Result<(i64, i64, String), String> {
        let [ts, group] = json::fields(record.value_or_empty(), ["ts", &self.config.group_by])
            .map_err(|e| format!("{}: {e}", record.position()))?;
        let ts = ts.as_ref().and_then(json::as_i64).ok_or_else(|| {
            format!(
                "{}: field `ts` is missing or not an integer",
                record.position()
            )
        })?;
        let group = group.and_then(json::into_text).ok_or_else(|| {
            format!(
                "{}: field `{}` is missing or not a string, number or boolean",
                record.position(),
                self.config.group_by
            )
        })?;
        let start = self.config.windows.latest(ts).start;
        // A window start the keys cannot hold is malformed input too.
        WindowKeys::check_start(start)
            .map_err(|e| format!("{}: field `ts`: {e}", record.position()))?;
        Ok((ts, start, group))
    }

    /// Emits every window of every partition that is due.
    fn on_tick(&mut self) -> Result<Vec<OutputRecord>, String> {
        let mut outputs = Vec::new();
        for (key, value) in self
            .state
            .scan_prefix(HIGH_PREFIX.as_bytes(), MAX_PARTITIONS)
        {
            let partition = key
                .strip_prefix(HIGH_PREFIX.as_bytes())
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| p.parse().ok())
                .ok_or("state: bad partition key")?;
            let high = std::str::from_utf8(&value)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("state: bad highest ts")?;
            self.emit_closed(partition, high, &mut outputs)?;
        }
        Ok(outputs)
    }

    /// Emits (and deletes) the counts of `partition`'s windows that `high`
    /// closed, oldest window first.
    fn emit_closed(
        &mut self,
        partition: u32,
        high: i64,
        outputs: &mut Vec<OutputRecord>,
    ) -> Result<(), String> {
        let windows = self.config.windows;
        let keys = count_keys(partition);
        loop {
            let page = self.state.scan_prefix(keys.prefix().as_bytes(), SCAN_PAGE);
            let full = page.len() == SCAN_PAGE as usize;
            for (key, value) in page {
                let (start, group) = keys.parse(&key)?;
                let window: Window = windows.at(start);
                if !closed(window.end, high, windows.grace()) {
                    // Keys sort by window start: the rest are open too.
                    return Ok(());
                }
                let count = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("state: bad count")?;
                let body = json::to_vec(&Emitted {
                    key: group,
                    window_start: window.start,
                    window_end: window.end,
                    count,
                })?;
                outputs.push(
                    OutputRecord::new(body)
                        .with_key(Some(group.as_bytes().to_vec()))
                        .with_timestamp(window.end.saturating_sub(1)),
                );
                self.state.delete(&key);
            }
            if !full {
                return Ok(());
            }
        }
    }
}

struct ClickAggregate;

impl Guest for ClickAggregate {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        CONFIG.set(Config::from_params(&Params::new(params))?);
        Ok(())
    }

    fn process(batch: Vec<InputRecord<'_>>) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        let mut state = State::host();
        let (outputs, malformed) = Aggregator {
            config: &config,
            state: &mut state,
        }
        .process(&batch)?;
        malformed.log();
        Ok(outputs)
    }

    fn on_tick(_watermark: i64) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        let mut state = State::host();
        Aggregator {
            config: &config,
            state: &mut state,
        }
        .on_tick()
    }
}

quiver_guest::export!(ClickAggregate);

#[cfg(test)]
mod tests;
