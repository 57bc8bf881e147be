//! Deploy-time parameters (`--param name=value`) and where to keep the
//! configuration `init` derives from them.

use std::fmt::Display;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

/// The `name=value` pairs passed to `init`. A name given twice takes its
/// last value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Wraps the pairs `init` received.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// Parameters from string pairs (for tests and fixed configurations).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::new(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
        )
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or an error saying it is required.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("missing required parameter `{name}`"))
    }

    /// The value of `name` parsed as a `T`, or `default` if not given.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| format!("parameter `{name}`: cannot parse {raw:?}: {e}")),
        }
    }

    /// Fails naming the first parameter that is not in `known` (catches
    /// typos such as `window-ms` for `window_ms`).
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self
            .pairs
            .iter()
            .find(|(n, _)| !known.contains(&n.as_str()))
        {
            None => Ok(()),
            Some((name, _)) => Err(format!(
                "unknown parameter `{name}` (this module takes: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )),
        }
    }
}

/// A slot for what `init` computes, read by the later calls.
///
/// `init` runs once per instance before any other call, so a module keeps
/// its configuration in a `static InitCell` that `init` sets and `process`
/// and `on-tick` read:
///
/// ```ignore
/// static CONFIG: InitCell<Config> = InitCell::new();
/// // in init:    CONFIG.set(config);
/// // in process: let config = CONFIG.get()?;
/// ```
pub struct InitCell<T> {
    value: Mutex<Option<Arc<T>>>,
}

impl<T> InitCell<T> {
    /// An empty cell.
    pub const fn new() -> Self {
        Self {
            value: Mutex::new(None),
        }
    }

    /// Stores `value`, replacing any earlier one.
    pub fn set(&self, value: T) {
        *self.value.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(value));
    }

    /// The stored value, or an error if `init` has not stored one.
    pub fn get(&self) -> Result<Arc<T>, String> {
        self.value
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| "called before a successful init".to_string())
    }
}

impl<T> Default for InitCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs)
    }

    #[test]
    fn lookups() {
        let p = params(&[("a", "1"), ("b", "x"), ("a", "2")]);
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("c"), None);
        assert_eq!(p.required("b"), Ok("x"));
        assert!(p.required("c").unwrap_err().contains("`c`"));
        assert_eq!(p.parse_or("a", 0_u64), Ok(2));
        assert_eq!(p.parse_or("c", 9_u64), Ok(9));
        let err = p.parse_or("b", 0_u64).unwrap_err();
        assert!(err.contains("`b`") && err.contains("\"x\""), "{err}");
    }

    #[test]
    fn unknown_names_are_refused() {
        let p = params(&[("window-ms", "5")]);
        let err = p.only(&["window_ms", "group_by"]).unwrap_err();
        assert!(
            err.contains("`window-ms`") && err.contains("window_ms, group_by"),
            "{err}"
        );
        assert!(params(&[("x", "")]).only(&[]).unwrap_err().contains("none"));
        assert_eq!(params(&[("group_by", "page")]).only(&["group_by"]), Ok(()));
    }

    #[test]
    fn init_cell() {
        let cell = InitCell::new();
        assert!(cell.get().is_err());
        cell.set(1);
        cell.set(2);
        assert_eq!(*cell.get().unwrap(), 2);
    }
}
