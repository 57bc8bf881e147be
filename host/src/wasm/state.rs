//! A call's view of its transform's state store: the call's own writes
//! layered over a snapshot of what was committed before the call began.
//!
//! The host commits the writes ([`StateChanges`]) together with the call's
//! outputs and input position, or drops them when the call fails, so a
//! failed call leaves no trace.

use std::collections::BTreeMap;
use std::ops::Bound;

use quiver_proto::api::transforms::StateEntry;

/// Longest state key.
pub const MAX_STATE_KEY_BYTES: usize = 4 * 1024;
/// Largest state value.
pub const MAX_STATE_VALUE_BYTES: usize = 1024 * 1024;
/// Most bytes of keys and values one call may write (its changes are held
/// in memory until they commit).
pub const MAX_STATE_WRITE_BYTES_PER_CALL: usize = 64 * 1024 * 1024;
/// Most entries one `scan-prefix` returns, whatever the guest asks.
pub const MAX_SCAN_ENTRIES: u32 = 10_000;
/// Most bytes of keys and values one `scan-prefix` may return; a scan that
/// would return more fails the call (ask for fewer entries).
pub const MAX_SCAN_BYTES: usize = 16 * 1024 * 1024;

/// Committed state as of the start of a call.
pub trait StateSnapshot: Send {
    /// The committed value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
    /// The first `limit` committed entries whose keys start with `prefix`,
    /// in key order.
    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<StateEntry>, String>;
}

/// Where an instance gets a fresh snapshot for each call (and for `init`).
pub trait StateSource: Send + Sync {
    /// The state as committed now.
    fn snapshot(&self) -> Result<Box<dyn StateSnapshot>, String>;
}

/// A call's writes: `Some(value)` stores, `None` deletes.
pub type StateChanges = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Why a state call failed the guest's call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A write during `init`, which sees the store read-only.
    #[error("state is read-only during init")]
    ReadOnly,
    /// No snapshot: the call runs without a state store.
    #[error("state is not available to this call")]
    Unavailable,
    /// A key over [`MAX_STATE_KEY_BYTES`].
    #[error("state key of {0} bytes exceeds the limit of {MAX_STATE_KEY_BYTES}")]
    KeyTooLarge(usize),
    /// A value over [`MAX_STATE_VALUE_BYTES`].
    #[error("state value of {0} bytes exceeds the limit of {MAX_STATE_VALUE_BYTES}")]
    ValueTooLarge(usize),
    /// More than [`MAX_STATE_WRITE_BYTES_PER_CALL`] written in one call.
    #[error("a call wrote more than {MAX_STATE_WRITE_BYTES_PER_CALL} bytes of state")]
    TooManyWrites,
    /// A scan whose entries hold more than [`MAX_SCAN_BYTES`].
    #[error("a state scan returned more than {MAX_SCAN_BYTES} bytes; scan fewer entries at a time")]
    ScanTooLarge,
    /// Reading the snapshot failed.
    #[error("state store: {0}")]
    Storage(String),
}

/// The store as one call sees it.
#[derive(Default)]
pub struct CallState {
    snapshot: Option<Box<dyn StateSnapshot>>,
    writable: bool,
    changes: StateChanges,
    written_bytes: usize,
}

impl CallState {
    /// A call over `snapshot` (none: state calls fail); `writable` is false
    /// for `init` and fetch-time calls.
    pub fn new(snapshot: Option<Box<dyn StateSnapshot>>, writable: bool) -> Self {
        Self {
            snapshot,
            writable,
            changes: StateChanges::new(),
            written_bytes: 0,
        }
    }

    /// The call's writes, leaving the view empty.
    pub fn take_changes(&mut self) -> StateChanges {
        self.snapshot = None;
        self.written_bytes = 0;
        std::mem::take(&mut self.changes)
    }

    /// The value of `key`: the call's own write, else the snapshot's.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let snapshot = self.snapshot()?;
        overlay_get(&self.changes, snapshot, key).map_err(StateError::Storage)
    }

    /// Stores `value` under `key`.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StateError> {
        if value.len() > MAX_STATE_VALUE_BYTES {
            return Err(StateError::ValueTooLarge(value.len()));
        }
        self.write(key, Some(value))
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: Vec<u8>) -> Result<(), StateError> {
        self.write(key, None)
    }

    /// The first `limit` live entries under `prefix`, merging the call's
    /// writes into the snapshot's entries.
    pub fn scan_prefix(&self, prefix: &[u8], limit: u32) -> Result<Vec<StateEntry>, StateError> {
        let limit = limit.min(MAX_SCAN_ENTRIES) as usize;
        let snapshot = self.snapshot()?;
        let entries =
            overlay_scan(&self.changes, snapshot, prefix, limit).map_err(StateError::Storage)?;
        let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > MAX_SCAN_BYTES {
            return Err(StateError::ScanTooLarge);
        }
        Ok(entries)
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<(), StateError> {
        if !self.writable {
            return Err(if self.snapshot.is_some() {
                StateError::ReadOnly
            } else {
                StateError::Unavailable
            });
        }
        if key.len() > MAX_STATE_KEY_BYTES {
            return Err(StateError::KeyTooLarge(key.len()));
        }
        self.written_bytes += key.len() + value.as_ref().map_or(0, Vec::len);
        if self.written_bytes > MAX_STATE_WRITE_BYTES_PER_CALL {
            return Err(StateError::TooManyWrites);
        }
        self.changes.insert(key, value);
        Ok(())
    }

    fn snapshot(&self) -> Result<&dyn StateSnapshot, StateError> {
        self.snapshot.as_deref().ok_or(StateError::Unavailable)
    }
}

/// Changes layered over a snapshot: what a call sees while the previous
/// call's commit is still on its way to disk.
pub struct Layered {
    /// The committed state.
    pub base: Box<dyn StateSnapshot>,
    /// Changes not yet committed, newer than `base`.
    pub top: std::sync::Arc<StateChanges>,
}

impl StateSnapshot for Layered {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        overlay_get(&self.top, self.base.as_ref(), key)
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<StateEntry>, String> {
        overlay_scan(&self.top, self.base.as_ref(), prefix, limit)
    }
}

/// The value of `key` in `changes` over `base`.
fn overlay_get(
    changes: &StateChanges,
    base: &dyn StateSnapshot,
    key: &[u8],
) -> Result<Option<Vec<u8>>, String> {
    match changes.get(key) {
        Some(change) => Ok(change.clone()),
        None => base.get(key),
    }
}

/// The first `limit` live entries under `prefix` of `changes` over `base`.
fn overlay_scan(
    changes: &StateChanges,
    base: &dyn StateSnapshot,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<StateEntry>, String> {
    let overlay: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = changes
        .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(|(key, _)| key.starts_with(prefix))
        .collect();
    // Each overlay entry hides at most one committed entry, so this many
    // committed entries always cover the first `limit` live ones.
    let committed = base.scan_prefix(prefix, limit + overlay.len())?;
    let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = committed
        .into_iter()
        .map(|(key, value)| (key, Some(value)))
        .collect();
    for (key, value) in overlay {
        merged.insert(key.clone(), value.clone());
    }
    Ok(merged
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key, value)))
        .take(limit)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A committed snapshot held in memory.
    struct Committed(BTreeMap<Vec<u8>, Vec<u8>>);

    impl StateSnapshot for Committed {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
            Ok(self.0.get(key).cloned())
        }

        fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<StateEntry>, String> {
            Ok(self
                .0
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .take(limit)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect())
        }
    }

    fn committed(keys: &[&str]) -> Box<dyn StateSnapshot> {
        Box::new(Committed(
            keys.iter()
                .map(|k| (k.as_bytes().to_vec(), k.as_bytes().to_vec()))
                .collect(),
        ))
    }

    fn keys(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<String> {
        entries
            .iter()
            .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
            .collect()
    }

    #[test]
    fn reads_see_the_calls_own_writes_first() {
        let mut state = CallState::new(Some(committed(&["a", "b"])), true);
        state.put(b"a".to_vec(), b"new".to_vec()).unwrap();
        state.delete(b"b".to_vec()).unwrap();
        assert_eq!(state.get(b"a").unwrap(), Some(b"new".to_vec()));
        assert_eq!(state.get(b"b").unwrap(), None);
        let changes = state.take_changes();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[&b"b".to_vec()], None);
    }

    #[test]
    fn scans_merge_writes_and_hide_deletes_within_the_limit() {
        let mut state = CallState::new(Some(committed(&["p1", "p2", "p3", "p4", "q1"])), true);
        state.delete(b"p1".to_vec()).unwrap();
        state.delete(b"p2".to_vec()).unwrap();
        state.put(b"p0".to_vec(), b"x".to_vec()).unwrap();
        state.put(b"q0".to_vec(), b"x".to_vec()).unwrap();
        assert_eq!(keys(&state.scan_prefix(b"p", 2).unwrap()), ["p0", "p3"]);
        assert_eq!(
            keys(&state.scan_prefix(b"p", 10).unwrap()),
            ["p0", "p3", "p4"]
        );
        assert_eq!(
            keys(&state.scan_prefix(b"", 10).unwrap()),
            ["p0", "p3", "p4", "q0", "q1"]
        );
    }

    #[test]
    fn layers_stack_uncommitted_changes_over_the_snapshot() {
        let mut pending = StateChanges::new();
        pending.insert(b"p1".to_vec(), None);
        pending.insert(b"p9".to_vec(), Some(b"new".to_vec()));
        let layered = Layered {
            base: committed(&["p1", "p2"]),
            top: std::sync::Arc::new(pending),
        };
        let mut state = CallState::new(Some(Box::new(layered)), true);
        state.put(b"p3".to_vec(), b"x".to_vec()).unwrap();
        assert_eq!(state.get(b"p1").unwrap(), None);
        assert_eq!(state.get(b"p9").unwrap(), Some(b"new".to_vec()));
        assert_eq!(
            keys(&state.scan_prefix(b"p", 10).unwrap()),
            ["p2", "p3", "p9"]
        );
    }

    #[test]
    fn init_is_read_only_and_sizes_are_limited() {
        let mut state = CallState::new(Some(committed(&["a"])), false);
        assert_eq!(state.get(b"a").unwrap(), Some(b"a".to_vec()));
        assert_eq!(state.put(b"a".to_vec(), vec![]), Err(StateError::ReadOnly));
        let mut state = CallState::new(Some(committed(&[])), true);
        assert_eq!(
            state.put(vec![0; MAX_STATE_KEY_BYTES + 1], vec![]),
            Err(StateError::KeyTooLarge(MAX_STATE_KEY_BYTES + 1))
        );
        assert_eq!(
            state.put(vec![0], vec![0; MAX_STATE_VALUE_BYTES + 1]),
            Err(StateError::ValueTooLarge(MAX_STATE_VALUE_BYTES + 1))
        );
        let mut none = CallState::new(None, false);
        assert_eq!(none.get(b"a"), Err(StateError::Unavailable));
        assert_eq!(none.delete(b"a".to_vec()), Err(StateError::Unavailable));
    }
}
