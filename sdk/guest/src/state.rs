//! The transform's durable key-value store, typed.
//!
//! [`Store`] is the raw store: [`HostStore`] calls the broker's
//! `quiver:transform/state` import; [`MemStore`] keeps entries in memory so
//! that logic written against `Store` can be unit-tested off the broker.
//! [`State`] adds typed access on top of any `Store`:
//!
//! - counters (`u64`, `i64`) stored as decimal ASCII text (`b"42"`), so
//!   `quiver transform state NAME KEY` shows them as they are;
//! - JSON values stored as compact JSON text;
//! - per-window keys ([`WindowKeys`]) as readable text,
//!   `<scope>window/<start-ms>/<group>`, sorted by window start.
//!
//! Everything written during a call commits with the call's outputs and
//! input position, or not at all (see `wit/transform.wit`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A key-value store with prefix scans, in unsigned byte order of keys.
pub trait Store {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Stores `value` under `key`.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`, if present.
    fn delete(&mut self, key: &[u8]);
    /// Up to `limit` entries whose keys start with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)>;
}

/// The broker's state store for this transform (the `state` import).
///
/// Only meaningful inside the broker: on targets other than `wasm32` the
/// import does not exist and calls panic.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostStore;

impl Store for HostStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        crate::bindings::quiver::transform::state::get(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        crate::bindings::quiver::transform::state::put(key, value);
    }

    fn delete(&mut self, key: &[u8]) {
        crate::bindings::quiver::transform::state::delete(key);
    }

    fn scan_prefix(&self, prefix: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        crate::bindings::quiver::transform::state::scan_prefix(prefix, limit)
    }
}

/// An in-memory [`Store`], for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemStore {
    /// The entries.
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.entries.insert(key.to_vec(), value.to_vec());
    }

    fn delete(&mut self, key: &[u8]) {
        self.entries.remove(key);
    }

    fn scan_prefix(&self, prefix: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit as usize)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl<S: Store + ?Sized> Store for &mut S {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        (**self).get(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        (**self).put(key, value);
    }

    fn delete(&mut self, key: &[u8]) {
        (**self).delete(key);
    }

    fn scan_prefix(&self, prefix: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        (**self).scan_prefix(prefix, limit)
    }
}

/// Typed access to a [`Store`] (by default the broker's).
#[derive(Debug, Clone, Default)]
pub struct State<S = HostStore> {
    store: S,
}

impl State<HostStore> {
    /// The broker's state store for this transform.
    pub fn host() -> Self {
        Self { store: HostStore }
    }
}

impl<S: Store> State<S> {
    /// Typed access to `store`.
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// The underlying store.
    pub fn store(&mut self) -> &mut S {
        &mut self.store
    }

    /// Gives the underlying store back.
    pub fn into_inner(self) -> S {
        self.store
    }

    /// The raw value under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.store.get(key)
    }

    /// Stores a raw value.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.store.put(key, value);
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) {
        self.store.delete(key);
    }

    /// Up to `limit` raw entries under `prefix`, in key order.
    pub fn scan_prefix(&self, prefix: &[u8], limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.store.scan_prefix(prefix, limit)
    }

    /// The counter under `key` (`None` if absent).
    pub fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, String> {
        self.get(key).map(|v| decode_u64(key, &v)).transpose()
    }

    /// Stores a counter.
    pub fn put_u64(&mut self, key: &[u8], value: u64) {
        self.put(key, value.to_string().as_bytes());
    }

    /// Adds `delta` to the counter under `key` (absent counts as 0) and
    /// returns the new value; fails on overflow without writing.
    pub fn add_u64(&mut self, key: &[u8], delta: u64) -> Result<u64, String> {
        let old = self.get_u64(key)?.unwrap_or(0);
        let new = old
            .checked_add(delta)
            .ok_or_else(|| format!("counter {} overflows u64", show_key(key)))?;
        self.put_u64(key, new);
        Ok(new)
    }

    /// The signed counter under `key` (`None` if absent).
    pub fn get_i64(&self, key: &[u8]) -> Result<Option<i64>, String> {
        self.get(key).map(|v| decode_i64(key, &v)).transpose()
    }

    /// Stores a signed counter.
    pub fn put_i64(&mut self, key: &[u8], value: i64) {
        self.put(key, value.to_string().as_bytes());
    }

    /// Adds `delta` to the signed counter under `key` (absent counts as 0)
    /// and returns the new value; fails on overflow without writing.
    pub fn add_i64(&mut self, key: &[u8], delta: i64) -> Result<i64, String> {
        let old = self.get_i64(key)?.unwrap_or(0);
        let new = old
            .checked_add(delta)
            .ok_or_else(|| format!("counter {} overflows i64", show_key(key)))?;
        self.put_i64(key, new);
        Ok(new)
    }

    /// The JSON value under `key` decoded as a `T` (`None` if absent).
    pub fn get_json<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, String> {
        self.get(key)
            .map(|v| {
                serde_json::from_slice(&v)
                    .map_err(|e| format!("state {}: not the JSON expected: {e}", show_key(key)))
            })
            .transpose()
    }

    /// Stores `value` as JSON under `key`.
    pub fn put_json<T: Serialize + ?Sized>(&mut self, key: &[u8], value: &T) -> Result<(), String> {
        let bytes = crate::json::to_vec(value)?;
        self.put(key, &bytes);
        Ok(())
    }
}

/// Largest window start [`WindowKeys`] can write (2286-11-20T17:46:39.999Z):
/// starts have 13 digits, so the text sorts like the numbers.
pub const MAX_WINDOW_START_MS: i64 = 9_999_999_999_999;

/// Readable keys for values per event-time window and group value:
/// `<scope>window/<start>/<group>`, the window start in ms since the epoch
/// with 13 digits (zero-padded), so a prefix scan of
/// [`prefix`](Self::prefix) returns the windows oldest first, and
/// `quiver transform state NAME GROUP` finds a group's windows. For example
/// `partition/0/window/1764064800000//docs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowKeys {
    prefix: String,
}

impl WindowKeys {
    /// Keys under `scope` (empty, or ending in `/`, such as `partition/0/`).
    pub fn new(scope: &str) -> Self {
        Self {
            prefix: format!("{scope}window/"),
        }
    }

    /// What every key of this scope starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of (`start`, `group`); fails for a start outside
    /// `0..=MAX_WINDOW_START_MS`.
    pub fn key(&self, start: i64, group: &str) -> Result<String, String> {
        Self::check_start(start)?;
        Ok(format!("{}{start:013}/{group}", self.prefix))
    }

    /// Whether a key can hold window start `start` (see [`key`](Self::key)),
    /// without building one.
    pub fn check_start(start: i64) -> Result<(), String> {
        if (0..=MAX_WINDOW_START_MS).contains(&start) {
            Ok(())
        } else {
            Err(format!(
                "window start {start} ms is outside 0..={MAX_WINDOW_START_MS} (1970 to 2286)"
            ))
        }
    }

    /// The window start and group of a key of this scope.
    pub fn parse<'k>(&self, key: &'k [u8]) -> Result<(i64, &'k str), String> {
        let bad = || format!("state: {} is not a window key", show_key(key));
        let rest = key.strip_prefix(self.prefix.as_bytes()).ok_or_else(bad)?;
        let text = std::str::from_utf8(rest).map_err(|_| bad())?;
        let (start, group) = text.split_at_checked(13).ok_or_else(bad)?;
        let group = group.strip_prefix('/').ok_or_else(bad)?;
        let start = start
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| start.parse().ok())
            .flatten()
            .ok_or_else(bad)?;
        Ok((start, group))
    }
}

/// Parses a decimal counter.
fn decode_u64(key: &[u8], value: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "state {}: {} is not a u64 counter",
                show_key(key),
                show_key(value)
            )
        })
}

/// Parses a signed decimal counter.
fn decode_i64(key: &[u8], value: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "state {}: {} is not an i64 counter",
                show_key(key),
                show_key(value)
            )
        })
}

/// A key for messages: text when it is UTF-8, else its bytes.
fn show_key(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => format!("{s:?}"),
        Err(_) => format!("{bytes:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn counters_are_decimal_text() {
        let mut state = State::new(MemStore::default());
        assert_eq!(state.get_u64(b"c"), Ok(None));
        assert_eq!(state.add_u64(b"c", 40), Ok(40));
        assert_eq!(state.add_u64(b"c", 2), Ok(42));
        assert_eq!(state.get(b"c").as_deref(), Some(&b"42"[..]));
        assert_eq!(state.add_i64(b"s", -5), Ok(-5));
        assert_eq!(state.get(b"s").as_deref(), Some(&b"-5"[..]));
        state.put_u64(b"m", u64::MAX);
        assert!(state.add_u64(b"m", 1).unwrap_err().contains("overflow"));
        assert_eq!(state.get_u64(b"m"), Ok(Some(u64::MAX)));
    }

    #[test]
    fn a_corrupt_counter_is_an_error() {
        let mut state = State::new(MemStore::default());
        state.put(b"c", b"x1");
        assert!(state.get_u64(b"c").unwrap_err().contains("not a u64"));
        assert!(state.add_i64(b"c", 1).is_err());
        assert_eq!(state.get(b"c").as_deref(), Some(&b"x1"[..]));
    }

    #[test]
    fn json_values() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Seen {
            n: u32,
            last: String,
        }
        let mut state = State::new(MemStore::default());
        let seen = Seen {
            n: 3,
            last: "/home".into(),
        };
        state.put_json(b"j", &seen).unwrap();
        assert_eq!(state.get_json::<Seen>(b"j"), Ok(Some(seen)));
        assert_eq!(state.get_json::<Seen>(b"none"), Ok(None));
        state.put(b"j", b"{");
        assert!(state.get_json::<Seen>(b"j").is_err());
    }

    #[test]
    fn window_keys_read_as_text_and_sort_by_start() {
        let keys = WindowKeys::new("partition/0/");
        let key = keys.key(1_764_064_800_000, "/docs").unwrap();
        assert_eq!(key, "partition/0/window/1764064800000//docs");
        assert_eq!(keys.parse(key.as_bytes()), Ok((1_764_064_800_000, "/docs")));
        assert_eq!(
            keys.key(5, "a").unwrap(),
            "partition/0/window/0000000000005/a"
        );
        assert!(keys.key(-1, "a").is_err());
        assert!(keys.key(MAX_WINDOW_START_MS + 1, "a").is_err());
        assert!(keys.parse(b"partition/1/window/0000000000005/a").is_err());
        assert!(keys.parse(b"partition/0/window/00000000000x5/a").is_err());
        assert!(keys.parse(b"partition/0/window/0000000000005a").is_err());

        // A prefix scan returns windows oldest first, whatever the groups.
        let mut state = State::new(MemStore::default());
        for (start, group) in [
            (120_000, "/a"),
            (60_000, "/zz"),
            (9_000_000, "/a"),
            (60_000, ""),
        ] {
            state
                .add_u64(keys.key(start, group).unwrap().as_bytes(), 1)
                .unwrap();
        }
        state.put(b"partition/10/window/0000000000001/x", b"1");
        let starts: Vec<(i64, String)> = state
            .scan_prefix(keys.prefix().as_bytes(), 10)
            .iter()
            .map(|(k, _)| {
                let (start, group) = keys.parse(k).unwrap();
                (start, group.to_owned())
            })
            .collect();
        assert_eq!(
            starts,
            [
                (60_000, String::new()),
                (60_000, "/zz".into()),
                (120_000, "/a".into()),
                (9_000_000, "/a".into())
            ]
        );
    }

    #[test]
    fn prefix_scans_are_ordered_bounded_and_exact() {
        let mut store = MemStore::default();
        for key in [&b"a"[..], b"b\x00", b"b", b"b\xff", b"ba", b"c"] {
            store.put(key, b"");
        }
        let keys = |prefix: &[u8], limit| -> Vec<Vec<u8>> {
            store
                .scan_prefix(prefix, limit)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            keys(b"b", 10),
            vec![
                b"b".to_vec(),
                b"b\x00".to_vec(),
                b"ba".to_vec(),
                b"b\xff".to_vec()
            ]
        );
        assert_eq!(keys(b"b", 2), vec![b"b".to_vec(), b"b\x00".to_vec()]);
        assert_eq!(keys(b"", 10).len(), 6);
        assert!(keys(b"d", 10).is_empty());
    }
}
