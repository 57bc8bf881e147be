//! Whether storage takes writes: set by the writer, read by `/ready` and by
//! every request that meets a stopped or refusing writer.

use std::fmt;
use std::sync::{PoisonError, RwLock};

use super::error::StorageError;

/// What is wrong with storage, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageProblem {
    /// A write failed for lack of space; writes that add data are refused
    /// until space is freed. Reads and deletes work.
    DiskFull(String),
    /// A write failed (I/O); the database is being reopened.
    Recovering(String),
    /// Storage cannot go on (a corrupted database, a panic in the writer);
    /// the broker must be restarted, after `quiver storage check`.
    Failed(String),
}

impl fmt::Display for StorageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DiskFull(reason) => write!(f, "disk full: {reason}"),
            Self::Recovering(reason) => write!(f, "recovering from a write error: {reason}"),
            Self::Failed(reason) => write!(f, "storage failed: {reason}"),
        }
    }
}

/// Storage's current problem, shared.
#[derive(Debug, Default)]
pub struct StorageHealth {
    problem: RwLock<Option<StorageProblem>>,
}

impl StorageHealth {
    /// What is wrong now, or `None` when storage takes writes.
    pub fn problem(&self) -> Option<StorageProblem> {
        self.problem
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set(&self, problem: Option<StorageProblem>) {
        let mut current = self.problem.write().unwrap_or_else(PoisonError::into_inner);
        // A failure is final: nothing the writer does afterwards clears it.
        if matches!(*current, Some(StorageProblem::Failed(_))) {
            return;
        }
        match (&*current, &problem) {
            (None, Some(p)) => tracing::warn!(problem = %p, "storage not ready"),
            (Some(_), None) => tracing::info!("storage ready again"),
            _ => {}
        }
        *current = problem;
    }

    /// The error for a request that found the writer gone: the failure if
    /// storage failed, else a shutdown.
    pub(crate) fn stopped_error(&self) -> StorageError {
        match self.problem() {
            Some(StorageProblem::Failed(reason)) => StorageError::Failed(reason),
            _ => StorageError::WriterStopped,
        }
    }
}
