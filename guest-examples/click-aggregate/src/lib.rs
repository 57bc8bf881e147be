//! `click-aggregate`: counts records per tumbling event-time window and
//! group value (the website-tracking scenario).
//!
//! Input: JSON objects such as
//! `{"user_id": 7, "page": "/home", "action": "click", "ts": 1700000000123}`.
//! Event time is the integer field `ts` (ms since the epoch).
//!
//! Parameters: `window_ms` (default 60000), `group_by` (a top-level field
//! name, default `page`), `grace_ms` (default 0).
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
//! A record that is not a JSON object, or lacks an integer `ts` or a scalar
//! group value, fails the batch with a message naming its position (the
//! transform's `--on-error` policy applies).
//!
//! State layout (keys are binary; integers are big-endian):
//!
//! - `b"c" ++ partition (u32) ++ window_start (i64, sign bit flipped so the
//!   bytes sort like the numbers) ++ group value` → count, decimal text;
//! - `b"t" ++ partition (u32)` → highest `ts` seen, decimal text.

use std::collections::BTreeMap;

use quiver_guest::state::Store;
use quiver_guest::window::{Window, Windows, closed, window_start};
use quiver_guest::{Guest, InitCell, InputRecord, OutputRecord, Params, State, json};
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
}

impl Config {
    fn from_params(params: &Params) -> Result<Self, String> {
        params.only(&["window_ms", "group_by", "grace_ms"])?;
        let window_ms = params.parse_or("window_ms", 60_000_i64)?;
        let grace_ms = params.parse_or("grace_ms", 0_i64)?;
        let group_by = params.get("group_by").unwrap_or("page").to_string();
        if group_by.is_empty() {
            return Err("parameter `group_by` must name a field".to_string());
        }
        let windows = Windows::tumbling(window_ms)
            .and_then(|w| w.with_grace(grace_ms))
            .map_err(|e| format!("parameters: {e}"))?;
        Ok(Self { windows, group_by })
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

/// Maps an `i64` to 8 bytes that sort like the numbers.
fn ordered(n: i64) -> [u8; 8] {
    (n.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

/// Inverse of [`ordered`].
fn unordered(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)).cast_signed()
}

/// The prefix of every count key of `partition`.
fn count_prefix(partition: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(13);
    key.push(b'c');
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

/// The key of the count of (`partition`, window `start`, `group`).
fn count_key(partition: u32, start: i64, group: &str) -> Vec<u8> {
    let mut key = count_prefix(partition);
    key.extend_from_slice(&ordered(start));
    key.extend_from_slice(group.as_bytes());
    key
}

/// The window start and group value of a count key of `partition`.
fn parse_count_key(key: &[u8]) -> Result<(i64, &str), String> {
    let rest = key.get(5..).ok_or("state: count key too short")?;
    let (start, group) = rest
        .split_at_checked(8)
        .ok_or("state: count key too short")?;
    let start = unordered(start.try_into().map_err(|_| "state: count key too short")?);
    let group = std::str::from_utf8(group).map_err(|_| "state: group value is not UTF-8")?;
    Ok((start, group))
}

/// The key of the highest `ts` seen on `partition`.
fn high_key(partition: u32) -> [u8; 5] {
    let [a, b, c, d] = partition.to_be_bytes();
    [b't', a, b, c, d]
}

/// The counting and emitting logic, over any store.
struct Aggregator<'a, S> {
    config: &'a Config,
    state: &'a mut State<S>,
}

impl<S: Store> Aggregator<'_, S> {
    /// Counts `batch` and returns the windows it closed.
    fn process(&mut self, batch: &[InputRecord]) -> Result<Vec<OutputRecord>, String> {
        let windows = self.config.windows;
        // Per (partition, window start, group value): this batch's count.
        let mut counts: BTreeMap<(u32, i64, String), u64> = BTreeMap::new();
        // Per partition: this batch's highest ts.
        let mut highs: BTreeMap<u32, i64> = BTreeMap::new();
        for record in batch {
            let [ts, group] = json::fields(&record.value, ["ts", &self.config.group_by])
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
            let start = windows.latest(ts).start;
            *counts.entry((record.partition, start, group)).or_default() += 1;
            highs
                .entry(record.partition)
                .and_modify(|h| *h = (*h).max(ts))
                .or_insert(ts);
        }

        for ((partition, start, group), n) in &counts {
            self.state
                .add_u64(&count_key(*partition, *start, group), *n)?;
        }

        let mut outputs = Vec::new();
        for (partition, batch_high) in highs {
            let key = high_key(partition);
            let old = self.state.get_i64(&key)?;
            let high = old.map_or(batch_high, |old| old.max(batch_high));
            if old != Some(high) {
                self.state.put_i64(&key, high);
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
        Ok(outputs)
    }

    /// Emits every window of every partition that is due.
    fn on_tick(&mut self) -> Result<Vec<OutputRecord>, String> {
        let mut outputs = Vec::new();
        for (key, value) in self.state.scan_prefix(b"t", MAX_PARTITIONS) {
            let partition = key
                .get(1..5)
                .and_then(|p| p.try_into().ok())
                .map(u32::from_be_bytes)
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
        let prefix = count_prefix(partition);
        loop {
            let page = self.state.scan_prefix(&prefix, SCAN_PAGE);
            let full = page.len() == SCAN_PAGE as usize;
            for (key, value) in page {
                let (start, group) = parse_count_key(&key)?;
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

    fn process(batch: Vec<InputRecord>) -> Result<Vec<OutputRecord>, String> {
        let config = CONFIG.get()?;
        let mut state = State::host();
        Aggregator {
            config: &config,
            state: &mut state,
        }
        .process(&batch)
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
