//! Input a module cannot read (not a JSON object, a needed field missing or
//! of the wrong type), and the `on_malformed` parameter every example module
//! takes:
//!
//! - `skip` (the default): the record is left out; one log line per call
//!   says how many were and names the first;
//! - `fail`: the call fails naming the record, and the transform's
//!   `--on-error` policy applies.

use crate::Params;

/// The parameter's name.
pub const PARAM: &str = "on_malformed";

/// What a module does with a malformed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnMalformed {
    /// Leave it out, with a log line.
    #[default]
    Skip,
    /// Fail the call.
    Fail,
}

impl OnMalformed {
    /// The policy from the `on_malformed` parameter (`skip` if absent).
    pub fn from_params(params: &Params) -> Result<Self, String> {
        match params.get(PARAM) {
            None | Some("skip") => Ok(Self::Skip),
            Some("fail") => Ok(Self::Fail),
            Some(other) => Err(format!(
                "parameter `{PARAM}` must be `skip` or `fail`, not {other:?}"
            )),
        }
    }
}

/// The malformed records of one call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Malformed {
    policy: OnMalformed,
    skipped: u64,
    first: Option<String>,
}

impl Malformed {
    /// None seen yet, under `policy`.
    pub fn new(policy: OnMalformed) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// One malformed record, described by `error` (which should name its
    /// position): `Err(error)` under `fail`, so `?` fails the call;
    /// `Ok(())` under `skip`, and the caller leaves the record out.
    pub fn record(&mut self, error: String) -> Result<(), String> {
        match self.policy {
            OnMalformed::Fail => Err(error),
            OnMalformed::Skip => {
                self.skipped += 1;
                self.first.get_or_insert(error);
                Ok(())
            }
        }
    }

    /// Records skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The log line for the records skipped, if any.
    pub fn summary(&self) -> Option<String> {
        let first = self.first.as_ref()?;
        Some(match self.skipped {
            1 => format!("skipped 1 malformed record: {first}"),
            n => format!("skipped {n} malformed records; the first: {first}"),
        })
    }

    /// Writes [`summary`](Self::summary) to the transform's log as a warning.
    pub fn log(&self) {
        if let Some(line) = self.summary() {
            crate::log::warn(&line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parameter() {
        let policy = |pairs: &[(&str, &str)]| OnMalformed::from_params(&Params::from_pairs(pairs));
        assert_eq!(policy(&[]), Ok(OnMalformed::Skip));
        assert_eq!(policy(&[(PARAM, "skip")]), Ok(OnMalformed::Skip));
        assert_eq!(policy(&[(PARAM, "fail")]), Ok(OnMalformed::Fail));
        let wrong = policy(&[(PARAM, "drop")]).unwrap_err();
        assert!(wrong.contains("`skip` or `fail`"), "{wrong}");
    }

    #[test]
    fn skip_counts_and_summarises_fail_fails() {
        let mut skip = Malformed::new(OnMalformed::Skip);
        assert_eq!(skip.summary(), None);
        assert_eq!(skip.record("t/0@5: not JSON".into()), Ok(()));
        assert_eq!(
            skip.summary().as_deref(),
            Some("skipped 1 malformed record: t/0@5: not JSON")
        );
        assert_eq!(skip.record("t/0@9: no ts".into()), Ok(()));
        assert_eq!(skip.skipped(), 2);
        assert_eq!(
            skip.summary().as_deref(),
            Some("skipped 2 malformed records; the first: t/0@5: not JSON")
        );
        let mut fail = Malformed::new(OnMalformed::Fail);
        assert_eq!(
            fail.record("t/0@5: not JSON".into()),
            Err("t/0@5: not JSON".into())
        );
        assert_eq!(fail.summary(), None);
    }
}
