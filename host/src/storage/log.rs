//! Writing the log inside a write transaction: a batch appended at its
//! partition's next offset, and the partitions' new offsets and stats,
//! stored with the transaction and published once it is committed. Used by
//! produce's group commit and by a transform's exactly-once commit alike.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use quiver_proto::batch::set_base_offset;
use redb::WriteTransaction;

use super::StorageError;
use super::partition::{LogStats, Offsets, Partition};
use super::tables::{PARTITION_STATE, PartitionState};

/// A batch to append to a partition, with what the time index needs.
pub struct NewBatch {
    /// Where it goes.
    pub partition: Arc<Partition>,
    /// A validated batch; its base offset is set when it is written.
    pub batch: BytesMut,
    /// Records in it.
    pub records: u32,
    /// Its largest record timestamp.
    pub max_timestamp: i64,
}

/// Writes one batch at its partition's next offset (as this transaction
/// sees it) and returns that base offset.
pub(super) fn append_batch(
    batches: &mut redb::Table<'_, (u64, u32, u64), &[u8]>,
    time_index: &mut redb::Table<'_, (u64, u32, i64), u64>,
    touched: &mut HashMap<(u64, u32), PartitionUpdate>,
    new: &mut NewBatch,
) -> Result<u64, StorageError> {
    let partition = &new.partition;
    let key = (partition.topic_id(), partition.index());
    let update = touched
        .entry(key)
        .or_insert_with(|| PartitionUpdate::of(partition));
    let base = update.offsets.high_watermark;
    set_base_offset(&mut new.batch, base);
    batches.insert((key.0, key.1, base), &new.batch[..])?;
    if new.max_timestamp > update.stats.max_timestamp {
        time_index.insert((key.0, key.1, new.max_timestamp), base)?;
        update.stats.max_timestamp = new.max_timestamp;
    }
    update.offsets.high_watermark += u64::from(new.records);
    update.stats.size_bytes += new.batch.len() as u64;
    Ok(base)
}

/// Stores the new offsets and stats of the partitions a transaction touched.
pub(super) fn store_partition_updates(
    txn: &WriteTransaction,
    touched: &HashMap<(u64, u32), PartitionUpdate>,
) -> Result<(), StorageError> {
    let mut state = txn.open_table(PARTITION_STATE)?;
    for (key, update) in touched {
        state.insert(key, update.state())?;
    }
    Ok(())
}

/// A partition's offsets and stats as a transaction changes them; published
/// only after the commit.
pub(super) struct PartitionUpdate {
    pub(super) partition: Arc<Partition>,
    pub(super) offsets: Offsets,
    pub(super) stats: LogStats,
}

impl PartitionUpdate {
    pub(super) const EMPTY_STATE: PartitionState = (0, 0, 0, i64::MIN);

    pub(super) fn of(partition: &Arc<Partition>) -> Self {
        Self {
            partition: Arc::clone(partition),
            offsets: partition.offsets(),
            stats: partition.stats(),
        }
    }

    pub(super) fn state(&self) -> PartitionState {
        (
            self.offsets.log_start_offset,
            self.offsets.high_watermark,
            self.stats.size_bytes,
            self.stats.max_timestamp,
        )
    }

    pub(super) fn publish(self) {
        self.partition.set_stats(self.stats);
        self.partition.publish(self.offsets);
    }
}
