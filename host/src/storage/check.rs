//! `quiver storage check`: an offline check of a stopped broker's database.
//!
//! First redb's own integrity check (the checksum of every page; it repairs
//! what it can, such as the allocator state), then Quiver's: every stored
//! batch parses and its CRC matches, each partition's batches follow one
//! another without gaps, and the stored offsets agree with them.

use std::fmt;
use std::path::Path;

use quiver_proto::batch::BatchView;
use redb::{Database, ReadableDatabase, ReadableTable};

use super::DATABASE_FILE;
use super::error::StorageError;
use super::tables::{BATCHES, PARTITION_STATE, TOPICS, TopicRecord};

/// What redb's page check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCheck {
    /// Every page verified.
    Clean,
    /// Damage was found and repaired (redb rebuilt what it could).
    Repaired,
}

/// The outcome of [`check`].
#[derive(Debug)]
pub struct CheckReport {
    /// redb's verdict on the pages.
    pub pages: PageCheck,
    /// Topics found.
    pub topics: usize,
    /// Partitions found.
    pub partitions: usize,
    /// Batches read and verified.
    pub batches: u64,
    /// Records in them.
    pub records: u64,
    /// Everything wrong, one line each (empty when the data is sound).
    pub problems: Vec<String>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pages = match self.pages {
            PageCheck::Clean => "every page verified",
            PageCheck::Repaired => "damage found and repaired by redb",
        };
        writeln!(f, "pages: {pages}")?;
        writeln!(
            f,
            "data: {} topics, {} partitions, {} batches, {} records",
            self.topics, self.partitions, self.batches, self.records
        )?;
        for problem in &self.problems {
            writeln!(f, "problem: {problem}")?;
        }
        Ok(())
    }
}

/// Checks the database in `dir`; the broker must not be running on it.
/// `Err` when it cannot be opened or redb finds damage it cannot repair.
pub fn check(dir: &Path) -> Result<CheckReport, StorageError> {
    let path = dir.join(DATABASE_FILE);
    if !path.exists() {
        return Err(StorageError::CorruptMetadata {
            what: path.display().to_string(),
            reason: "no such file: is this a quiver data directory?".into(),
        });
    }
    let damaged = |reason: String| StorageError::Damaged {
        path: path.clone(),
        reason,
    };
    // A plain open trusts a cleanly closed file, and redb may panic on a
    // damaged page anywhere in the check: a panic is a finding too.
    std::panic::catch_unwind(|| check_file(&path))
        .unwrap_or_else(|_| Err(damaged("redb panicked reading it".into())))
}

fn check_file(path: &Path) -> Result<CheckReport, StorageError> {
    let damaged = |reason: String| StorageError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let mut db = match Database::builder().open(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(StorageError::CorruptMetadata {
                what: path.display().to_string(),
                reason: "it is open in another process: stop the broker first".into(),
            });
        }
        Err(e) => return Err(damaged(e.to_string())),
    };
    let clean = db.check_integrity().map_err(|e| damaged(e.to_string()))?;
    let mut report = CheckReport {
        pages: if clean {
            PageCheck::Clean
        } else {
            PageCheck::Repaired
        },
        topics: 0,
        partitions: 0,
        batches: 0,
        records: 0,
        problems: Vec::new(),
    };
    check_data(&db, &mut report)?;
    Ok(report)
}

fn check_data(db: &Database, report: &mut CheckReport) -> Result<(), StorageError> {
    let txn = db.begin_read()?;
    let topics = txn.open_table(TOPICS)?;
    let state = txn.open_table(PARTITION_STATE)?;
    let batches = txn.open_table(BATCHES)?;
    for entry in topics.iter()? {
        let (name, value) = entry?;
        let name = name.value();
        let record = match TopicRecord::decode(value.value()) {
            Ok(record) => record,
            Err(e) => {
                report
                    .problems
                    .push(format!("topic {name:?}: undecodable ({e})"));
                continue;
            }
        };
        report.topics += 1;
        for partition in 0..record.partitions {
            report.partitions += 1;
            let at = |offset: u64| format!("{name}/{partition} at offset {offset}");
            let (log_start, high_watermark, _, _) = state
                .get((record.id, partition))?
                .map_or((0, 0, 0, i64::MIN), |v| v.value());
            let mut next = None;
            for entry in
                batches.range((record.id, partition, 0)..=(record.id, partition, u64::MAX))?
            {
                let (key, value) = entry?;
                let offset = key.value().2;
                let view = match BatchView::parse(value.value()) {
                    Ok(view) => view,
                    Err(e) => {
                        report.problems.push(format!("{}: {e}", at(offset)));
                        next = None;
                        continue;
                    }
                };
                report.batches += 1;
                report.records += u64::from(view.record_count());
                if let Err(e) = view.verify_crc() {
                    report.problems.push(format!("{}: {e}", at(offset)));
                }
                if view.base_offset() != offset {
                    report.problems.push(format!(
                        "{}: the batch says it starts at {}",
                        at(offset),
                        view.base_offset()
                    ));
                }
                if let Some(expected) = next
                    && expected != offset
                {
                    report.problems.push(format!(
                        "{}: a gap, the previous batch ended at {expected}",
                        at(offset)
                    ));
                }
                next = view.last_offset().checked_add(1);
            }
            if let Some(end) = next
                && end != high_watermark
            {
                report.problems.push(format!(
                    "{name}/{partition}: the stored high watermark {high_watermark} disagrees with the last batch's end {end}"
                ));
            }
            if next.is_none() && log_start < high_watermark {
                report.problems.push(format!(
                    "{name}/{partition}: offsets {log_start}..{high_watermark} are recorded but no batch is stored"
                ));
            }
        }
    }
    Ok(())
}
