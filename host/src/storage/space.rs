//! Disk space: a reserve released when the disk fills, and an optional
//! limit on the database's size that behaves like a full disk.
//!
//! When a write fails for lack of space, the writer releases the reserve
//! (a file of zeros beside the database), so that the writes that free
//! space (deleting topics, retention, lowering retention) still have room
//! to commit; redb's copy-on-write pages need room even to delete. The
//! reserve is taken again once space is back.
//!
//! The limit (`max_storage_mb`) counts the disk blocks the database file
//! takes (redb grows its file sparsely, doubling its length, so the length
//! says little) and the held reserve; a write that would take new blocks
//! (into a hole of the file) past it fails as ENOSPC does on a full disk,
//! through the same recovery. A write over blocks the file has (pages redb
//! freed and reuses) takes nothing new.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::ops::Bound;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::StorageBackend;
use redb::backends::FileBackend;
use rustix::fs::SeekFrom;

/// The reserve file inside the data directory.
pub const RESERVE_FILE: &str = "space-reserve";

/// Default size of the reserve: room for the commits that free space.
pub const DEFAULT_RESERVE_BYTES: u64 = 64 * 1024 * 1024;

/// The reserve file is written in chunks of this size.
const RESERVE_CHUNK: usize = 1024 * 1024;

/// The data directory's space: the reserve and the optional size limit.
#[derive(Debug)]
pub(crate) struct Space {
    reserve_path: PathBuf,
    reserve_bytes: u64,
    held: AtomicBool,
    /// Bytes the database file plus the held reserve may take, if limited.
    limit: Option<u64>,
}

impl Space {
    pub(crate) fn new(dir: &Path, reserve_bytes: u64, limit: Option<u64>) -> Self {
        Self {
            reserve_path: dir.join(RESERVE_FILE),
            reserve_bytes,
            held: AtomicBool::new(false),
            limit,
        }
    }

    /// Bytes the reserve holds now.
    fn held_bytes(&self) -> u64 {
        if self.held.load(Ordering::Acquire) {
            self.reserve_bytes
        } else {
            0
        }
    }

    /// Whether the limit leaves room for a database taking `used` bytes.
    fn within_limit(&self, used: u64) -> bool {
        self.limit
            .is_none_or(|limit| used.saturating_add(self.held_bytes()) <= limit)
    }

    /// Takes the reserve (writes the file in full, unless it is already
    /// whole), given the bytes the database file takes on disk. `Ok(false)`
    /// when there is no room for it; no partial file is left behind then.
    pub(crate) fn take_reserve(&self, database_used: u64) -> io::Result<bool> {
        if self.reserve_bytes == 0 || self.held.load(Ordering::Acquire) {
            return Ok(true);
        }
        let room = self
            .limit
            .is_none_or(|limit| database_used.saturating_add(self.reserve_bytes) <= limit);
        if !room {
            return Ok(false);
        }
        if std::fs::metadata(&self.reserve_path).is_ok_and(|m| m.len() == self.reserve_bytes) {
            self.held.store(true, Ordering::Release);
            return Ok(true);
        }
        match self.write_reserve() {
            Ok(()) => {
                self.held.store(true, Ordering::Release);
                Ok(true)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&self.reserve_path);
                if e.kind() == io::ErrorKind::StorageFull {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Zeros written out (not a sparse file, which would hold no space).
    fn write_reserve(&self) -> io::Result<()> {
        let mut file = File::create(&self.reserve_path)?;
        let chunk = vec![0; RESERVE_CHUNK];
        let mut left = self.reserve_bytes;
        while left > 0 {
            let n = left.min(RESERVE_CHUNK as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    }

    /// Releases the reserve; returns whether it was held.
    pub(crate) fn release_reserve(&self) -> bool {
        let held = self.held.swap(false, Ordering::AcqRel);
        if let Err(e) = std::fs::remove_file(&self.reserve_path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.reserve_path.display(), error = %e, "cannot remove the space reserve");
        }
        held && self.reserve_bytes > 0
    }

    pub(crate) fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }
}

/// Bytes a file takes on disk (its allocated blocks, not its length).
pub(crate) fn used_bytes(metadata: &std::fs::Metadata) -> u64 {
    metadata.blocks().saturating_mul(512)
}

/// redb's file backend, refusing writes that would take the database past
/// the [`Space`] limit.
pub(crate) struct LimitedFile {
    file: FileBackend,
    /// The same file, to find its holes (redb reads and writes at given
    /// offsets, so seeking this handle disturbs nothing).
    holes: File,
    space: Arc<Space>,
}

impl LimitedFile {
    /// Opens (or creates) the database file at `path`.
    pub(crate) fn open(path: &Path, space: Arc<Space>) -> Result<Self, redb::DatabaseError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        let holes = file
            .try_clone()
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        Ok(Self {
            file: FileBackend::new(file)?,
            holes,
            space,
        })
    }

    /// Whether writing `len` bytes at `offset` keeps the file within the
    /// limit: the blocks it has, plus the holes the write fills.
    fn room_for(&self, offset: u64, len: u64) -> io::Result<bool> {
        if self.space.limit.is_none() {
            return Ok(true);
        }
        let metadata = self.holes.metadata()?;
        let new = unallocated(&self.holes, metadata.len(), offset, len)?;
        Ok(self
            .space
            .within_limit(used_bytes(&metadata).saturating_add(new)))
    }
}

/// Bytes of `offset..offset + len` in holes of `file` (of length
/// `file_len`): what writing there takes on disk.
fn unallocated(file: &File, file_len: u64, offset: u64, len: u64) -> io::Result<u64> {
    let end = offset.saturating_add(len);
    let mut pos = offset;
    let mut holes = 0;
    while pos < end.min(file_len) {
        let hole = rustix::fs::seek(file, SeekFrom::Hole(pos))?;
        if hole >= end {
            return Ok(holes);
        }
        // The next data after the hole, or none up to the end of the file.
        let data = match rustix::fs::seek(file, SeekFrom::Data(hole)) {
            Ok(data) => data,
            Err(rustix::io::Errno::NXIO) => file_len,
            Err(e) => return Err(e.into()),
        };
        holes += data.min(end) - hole;
        pos = data;
    }
    // Past the end of the file, everything is new.
    Ok(holes + end.saturating_sub(pos.max(file_len)))
}

impl fmt::Debug for LimitedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedFile")
            .field("limit", &self.space.limit)
            .finish_non_exhaustive()
    }
}

impl StorageBackend for LimitedFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.room_for(offset, data.len() as u64)? {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "the database would pass max_storage_mb ({} bytes with the reserve)",
                    self.space.limit.unwrap_or_default()
                ),
            ));
        }
        self.file.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<(), redb::BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), redb::BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, redb::BackendError> {
        self.file.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_taken_released_and_bounded_by_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let space = Space::new(dir.path(), 4096, Some(10_000));
        assert!(space.take_reserve(1000).unwrap());
        let path = dir.path().join(RESERVE_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        assert!(space.within_limit(5904));
        assert!(!space.within_limit(5905));
        assert!(space.release_reserve());
        assert!(!path.exists());
        assert!(space.within_limit(10_000));
        // No room for it beside a database of 7000 bytes.
        assert!(!space.take_reserve(7000).unwrap());
        assert!(!path.exists());
    }

    #[test]
    fn only_holes_count_as_new_space() {
        use std::io::{Seek as _, SeekFrom as StdSeekFrom};
        let dir = tempfile::tempdir().unwrap();
        let mut file = File::create(dir.path().join("f")).unwrap();
        let block = 64 * 1024;
        file.write_all(&vec![1; block]).unwrap();
        // A hole of 1 MiB, then another written block.
        file.seek(StdSeekFrom::Start(block as u64 + 1024 * 1024))
            .unwrap();
        file.write_all(&vec![1; block]).unwrap();
        file.sync_all().unwrap();
        let len = file.metadata().unwrap().len();
        let block = block as u64;
        assert_eq!(unallocated(&file, len, 0, block).unwrap(), 0);
        assert_eq!(unallocated(&file, len, block, 4096).unwrap(), 4096);
        assert_eq!(unallocated(&file, len, 0, len).unwrap(), 1024 * 1024);
        assert_eq!(unallocated(&file, len, len - 10, 110).unwrap(), 100);
    }
}
