//! The open redb database: how it is opened (with an integrity check), and
//! how the writer closes and reopens it after a write error.
//!
//! After an I/O error redb refuses every later write until the database is
//! closed and opened again, so the handle is replaceable: readers and the
//! writer take the current one for each transaction. A reader that comes
//! during a reopen waits for it (a reopen takes milliseconds to a second);
//! after a reopen failed, or for longer than [`REOPEN_WAIT`], it gets a
//! typed, retriable error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

use super::error::StorageError;
use super::health::{StorageHealth, StorageProblem};
use super::space::{LimitedFile, Space, used_bytes};

/// How long a reopen waits for readers to let go of the old handle.
const READERS_GRACE: Duration = Duration::from_secs(5);

/// How long a reader waits for a reopen in progress before it is told to
/// retry.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// A read transaction with the database it reads (fields drop in order:
/// the transaction first).
pub(crate) struct ReadTxn {
    txn: ReadTransaction,
    _db: Arc<Database>,
}

impl std::ops::Deref for ReadTxn {
    type Target = ReadTransaction;

    fn deref(&self) -> &ReadTransaction {
        &self.txn
    }
}

/// The current database, replaceable by the writer.
#[derive(Debug)]
pub(crate) struct OpenDatabase {
    path: PathBuf,
    cache_bytes: usize,
    pub(crate) space: Arc<Space>,
    pub(crate) health: Arc<StorageHealth>,
    current: Mutex<Current>,
    /// Signalled when a reopen ends, either way.
    reopened: Condvar,
}

/// Where the handle stands.
#[derive(Debug)]
enum Current {
    Open(Arc<Database>),
    /// The writer is closing and opening the file.
    Reopening,
    /// The last reopen failed (the writer retries it), or storage failed.
    Closed,
}

impl OpenDatabase {
    /// Opens (or creates) the database file at `path`, checking every page
    /// of a file that was not created now, and takes the space reserve.
    pub(crate) fn open(
        path: &Path,
        cache_bytes: usize,
        space: Arc<Space>,
        health: Arc<StorageHealth>,
    ) -> Result<Self, StorageError> {
        let db = open_file(path, cache_bytes, &space)?;
        let opened = Self {
            path: path.to_owned(),
            cache_bytes,
            space,
            health,
            current: Mutex::new(Current::Open(Arc::new(db))),
            reopened: Condvar::new(),
        };
        opened.take_reserve();
        Ok(opened)
    }

    /// The current database, waiting for a reopen in progress; a typed
    /// error after a failed reopen, or after storage failed.
    pub(crate) fn get(&self) -> Result<Arc<Database>, StorageError> {
        if let Some(StorageProblem::Failed(reason)) = self.health.problem() {
            return Err(StorageError::Failed(reason));
        }
        let (current, _) = self
            .reopened
            .wait_timeout_while(self.current(), REOPEN_WAIT, |current| {
                matches!(current, Current::Reopening)
            })
            .unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Current::Open(db) => Ok(Arc::clone(db)),
            Current::Reopening | Current::Closed => Err(match self.health.problem() {
                Some(StorageProblem::Failed(reason)) => StorageError::Failed(reason),
                Some(problem) => StorageError::Recovering(format!(
                    "the database is being reopened after {problem}"
                )),
                None => StorageError::Recovering("the database is being reopened".into()),
            }),
        }
    }

    fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends a reopen (or a failure) with `current`, waking waiting readers.
    fn set_current(&self, current: Current) {
        *self.current() = current;
        self.reopened.notify_all();
    }

    /// A read transaction that keeps its database open while it lives (a
    /// reopen waits for it).
    pub(crate) fn begin_read(&self) -> Result<ReadTxn, StorageError> {
        let db = self.get()?;
        Ok(ReadTxn {
            txn: db.begin_read()?,
            _db: db,
        })
    }

    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StorageError> {
        Ok(self.get()?.begin_write()?)
    }

    /// Closes the database and opens it again: redb recovers the file as
    /// after a crash. Only the writer calls this. On failure there is no
    /// current database until a later call succeeds.
    pub(crate) fn reopen(&self) -> Result<(), StorageError> {
        let result = self.close_and_open();
        self.set_current(match &result {
            Ok(db) => Current::Open(Arc::clone(db)),
            Err(_) => Current::Closed,
        });
        result.map(drop)
    }

    fn close_and_open(&self) -> Result<Arc<Database>, StorageError> {
        let old = std::mem::replace(&mut *self.current(), Current::Reopening);
        if let Current::Open(old) = old {
            // Readers hold a handle only for one call; the file is closed
            // (and its lock released) when the last one drops it.
            let deadline = Instant::now() + READERS_GRACE;
            let mut old = old;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        old = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => {
                        return Err(StorageError::Recovering(
                            "readers still hold the old database".into(),
                        ));
                    }
                }
            }
        }
        let started = Instant::now();
        let db = open_file(&self.path, self.cache_bytes, &self.space)?;
        tracing::info!(
            path = %self.path.display(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "database reopened"
        );
        Ok(Arc::new(db))
    }

    /// Stops serving the database for good, after a fatal failure. The
    /// handle is leaked on purpose, not closed: closing a damaged database
    /// writes to it, and redb may panic on state a panic left behind.
    pub(crate) fn abandon(&self) {
        let old = std::mem::replace(&mut *self.current(), Current::Closed);
        self.reopened.notify_all();
        std::mem::forget(old);
    }

    /// Takes the space reserve if there is room for it; `true` when held.
    pub(crate) fn take_reserve(&self) -> bool {
        let database_used = std::fs::metadata(&self.path).map_or(0, |m| used_bytes(&m));
        match self.space.take_reserve(database_used) {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(
                    bytes = self.space.reserve_bytes(),
                    "no room for the space reserve; a full disk may then block deletes too"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the space reserve");
                false
            }
        }
    }
}

/// Opens the file with redb's integrity check on every open, so that a
/// damaged file is refused at start rather than met by a panic later. The
/// check reads every page (about as long as the recovery after a crash).
fn open_file(
    path: &Path,
    cache_bytes: usize,
    space: &Arc<Space>,
) -> Result<Database, StorageError> {
    let backend = LimitedFile::open(path, Arc::clone(space))?;
    Database::builder()
        .set_cache_size(cache_bytes)
        .set_check_integrity_on_open(true)
        .create_with_backend(backend)
        .map_err(|e| match e {
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)) => {
                StorageError::Damaged {
                    path: path.to_owned(),
                    reason,
                }
            }
            e => e.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_during_a_reopen_wait_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let space = Arc::new(Space::new(dir.path(), 0, None));
        let db = Arc::new(
            OpenDatabase::open(
                &dir.path().join("db"),
                1024 * 1024,
                space,
                Arc::new(StorageHealth::default()),
            )
            .unwrap(),
        );
        let writer = {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for _ in 0..20 {
                    db.reopen().unwrap();
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() {
            db.begin_read()
                .expect("a read during a reopen waits for it");
            reads += 1;
        }
        writer.join().unwrap();
        assert!(reads > 0);
    }
}
