//! The disk reference `quiver bench produce --disk-reference DIR` measures
//! in the same run as the bench: sequential 1 MiB writes to a new file,
//! then one `fdatasync`, as `dd if=/dev/zero of=F bs=1M count=N
//! conv=fdatasync` does. Produce throughput is reported as a ratio of it,
//! since absolute figures move between machines and disks.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

/// Bytes per write.
const CHUNK: usize = 1024 * 1024;

/// MB/s (10^6 bytes a second) of writing `bytes` to a new file in `dir`
/// in 1 MiB writes and syncing it; the file is removed afterwards.
pub(crate) fn fdatasync_mb_per_sec(dir: &Path, bytes: u64) -> anyhow::Result<f64> {
    let file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let chunk = vec![0u8; CHUNK];
    let started = Instant::now();
    let mut out: &File = file.as_file();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        out.write_all(&chunk[..n])
            .context("disk reference: write")?;
        left -= n as u64;
    }
    out.sync_data().context("disk reference: fdatasync")?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(bytes as f64 / seconds / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_syncs_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let rate = fdatasync_mb_per_sec(dir.path(), 4 * CHUNK as u64).unwrap();
        assert!(rate > 0.0 && rate.is_finite());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(fdatasync_mb_per_sec(&dir.path().join("missing"), 1).is_err());
    }
}
