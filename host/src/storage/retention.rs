//! Retention: which whole batches a partition's limits let go, and the pass
//! that removes them through the writer.
//!
//! As in Kafka, deletion works on whole units (here batches, there segments)
//! from the start of the log, and stops at the first batch that must stay:
//! - by time, a batch goes once its largest timestamp is older than
//!   `now - retention_ms`;
//! - by size, the oldest batch goes while the partition would still hold at
//!   least `retention_bytes` without it.
//!
//! Removing batches frees their redb pages, which later commits reuse, so a
//! steady stream under retention keeps the database file from growing.

use std::sync::Arc;

use quiver_proto::batch::BatchView;

use super::tables::BATCHES;
use super::{Partition, Storage, StorageError, corrupt_batch, holding_batch};

pub use quiver_proto::api::RetentionDefaults;

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Partitions whose log start moved.
    pub partitions: u64,
    /// Batches deleted.
    pub batches: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Storage {
    /// Decides, for every partition, the new log start offset retention
    /// allows at `now_ms`. Blocking: reads batch headers from the log start.
    pub fn retention_plan(
        &self,
        now_ms: i64,
        defaults: RetentionDefaults,
    ) -> Result<Vec<(Arc<Partition>, u64)>, StorageError> {
        let mut plan = Vec::new();
        for topic in self.topics() {
            let (retention_ms, retention_bytes) = defaults.effective(&topic.config);
            if retention_ms.is_none() && retention_bytes.is_none() {
                continue;
            }
            let cutoff =
                retention_ms.map(|ms| now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX)));
            for partition in &topic.partitions {
                if let Some(before) = self.plan_partition(partition, cutoff, retention_bytes)? {
                    plan.push((Arc::clone(partition), before));
                }
            }
        }
        Ok(plan)
    }

    /// Carries out a plan from [`retention_plan`](Self::retention_plan).
    pub async fn apply_retention(
        &self,
        plan: Vec<(Arc<Partition>, u64)>,
    ) -> Result<RetentionReport, StorageError> {
        let mut report = RetentionReport::default();
        for (partition, before) in plan {
            let truncated = self.truncate(Arc::clone(&partition), before).await?;
            if truncated.batches > 0 {
                report.partitions += 1;
                report.batches += truncated.batches;
                report.bytes += truncated.bytes;
                tracing::debug!(
                    topic = partition.topic(),
                    partition = partition.index(),
                    log_start_offset = before,
                    batches = truncated.batches,
                    bytes = truncated.bytes,
                    "retention"
                );
            }
        }
        if report.batches > 0 {
            self.metrics()
                .record_retention_deletion(report.batches, report.bytes);
        }
        Ok(report)
    }

    fn plan_partition(
        &self,
        partition: &Partition,
        cutoff: Option<i64>,
        retention_bytes: Option<u64>,
    ) -> Result<Option<u64>, StorageError> {
        let offsets = partition.offsets();
        let mut remaining = partition.stats().size_bytes;
        let (id, index) = (partition.topic_id(), partition.index());
        let txn = self.db.begin_read()?;
        let batches = txn.open_table(BATCHES)?;
        let mut before = None;
        let start = holding_batch(&batches, id, index, offsets.log_start_offset)?;
        let range = (id, index, start)..(id, index, offsets.high_watermark);
        for entry in batches.range(range)? {
            let (_, value) = entry?;
            let bytes = value.value();
            let view = BatchView::parse(bytes).map_err(|e| corrupt_batch(partition, &e))?;
            let size = bytes.len() as u64;
            let expired = cutoff.is_some_and(|cutoff| view.max_timestamp() < cutoff);
            let oversize =
                retention_bytes.is_some_and(|limit| remaining.saturating_sub(size) >= limit);
            if !(expired || oversize) {
                break;
            }
            remaining = remaining.saturating_sub(size);
            before = Some(view.last_offset() + 1);
        }
        Ok(before)
    }
}
