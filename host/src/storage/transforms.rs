//! Deployed transforms' storage: their records, input positions and state
//! stores, and the exactly-once commit.
//!
//! A transform call commits in ONE write transaction: its output batches
//! (appended to their partitions as a produce would), its state changes and
//! its input partition's new position. A crash before the commit leaves
//! none of it; after, all of it. Resuming from the stored position with the
//! stored state therefore reflects every input record exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use quiver_proto::api::transforms::StateEntry;
use redb::{ReadOnlyTable, ReadableTable};
use tokio::sync::oneshot;

use super::command::Command;
use super::database::ReadTxn;
use super::health::StorageHealth;
use super::log::{NewBatch, PartitionUpdate, append_batch, store_partition_updates};
use super::modules::prune_module_code;
use super::tables::{
    MODULE_CODE, TRANSFORM_COUNTERS, TRANSFORM_POSITIONS, TRANSFORM_STATE, TRANSFORMS,
    TransformRecord,
};
use super::writer::Writer;
use super::{Storage, StorageError};
use crate::storage::tables::{BATCHES, TIME_INDEX};

/// A transform's counters since its deploy, stored with its positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransformCounters {
    /// Input records processed (committed).
    pub records_in: u64,
    /// Output records committed (dead letters not included).
    pub records_out: u64,
    /// Failed calls.
    pub errors: u64,
}

/// State writes of one call: `Some(value)` stores, `None` deletes.
pub type StateWrites = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A transform commit on its way to disk.
#[derive(Debug)]
pub struct PendingCommit {
    reply: oneshot::Receiver<Result<(), StorageError>>,
    health: Arc<StorageHealth>,
}

impl PendingCommit {
    /// Waits until the commit is durable (or failed, changing nothing).
    pub async fn wait(self) -> Result<(), StorageError> {
        self.reply.await.map_err(|_| self.health.stopped_error())?
    }
}

/// One transform call's effects, committed together.
pub(crate) struct TransformCommit {
    pub(super) name: String,
    pub(super) position: Option<(u32, u64)>,
    /// The counters once this commit is in.
    pub(super) counters: TransformCounters,
    pub(super) outputs: Vec<NewBatch>,
    pub(super) state: Arc<StateWrites>,
    pub(super) reply: oneshot::Sender<Result<(), StorageError>>,
}

pub(crate) fn decode_transform(name: &str, bytes: &[u8]) -> Result<TransformRecord, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageError::CorruptMetadata {
        what: format!("transform {name:?}"),
        reason: e.to_string(),
    })
}

fn encode_transform(name: &str, record: &TransformRecord) -> Result<Vec<u8>, StorageError> {
    postcard::to_stdvec(record).map_err(|e| StorageError::CorruptMetadata {
        what: format!("transform {name:?}"),
        reason: e.to_string(),
    })
}

impl Storage {
    /// Stores a new transform with its starting input positions; refused if
    /// the name is taken or the module is gone.
    pub async fn deploy_transform(
        &self,
        name: String,
        record: TransformRecord,
        positions: Vec<(u32, u64)>,
    ) -> Result<(), StorageError> {
        self.call(|reply| Command::PutTransform {
            name,
            record,
            positions: Some(positions),
            counters: Some(TransformCounters::default()),
            reply,
        })
        .await?
    }

    /// Replaces an existing transform's record (pause, resume, failure,
    /// upgrade, alter), and its counters if given; positions and state stay.
    pub async fn update_transform(
        &self,
        name: String,
        record: TransformRecord,
        counters: Option<TransformCounters>,
    ) -> Result<(), StorageError> {
        self.call(|reply| Command::PutTransform {
            name,
            record,
            positions: None,
            counters,
            reply,
        })
        .await?
    }

    /// Deletes a transform with its positions and state.
    pub async fn delete_transform(&self, name: String) -> Result<(), StorageError> {
        self.call(|reply| Command::DeleteTransform { name, reply })
            .await?
    }

    /// Queues one call's commit: `outputs` appended, `state` applied, the
    /// counters stored and, for a `process` call (or a seek), the input
    /// partition's new position, all in one transaction. The returned
    /// [`PendingCommit`] resolves once it is durable, so the caller may work
    /// on while the disk syncs.
    pub async fn begin_transform_commit(
        &self,
        name: String,
        position: Option<(u32, u64)>,
        counters: TransformCounters,
        outputs: Vec<NewBatch>,
        state: Arc<StateWrites>,
    ) -> Result<PendingCommit, StorageError> {
        let (reply, done) = oneshot::channel();
        let commit = TransformCommit {
            name,
            position,
            counters,
            outputs,
            state,
            reply,
        };
        self.writer
            .send(Command::CommitTransform(commit))
            .await
            .map_err(|_| self.db.health.stopped_error())?;
        Ok(PendingCommit {
            reply: done,
            health: Arc::clone(&self.db.health),
        })
    }

    /// Every stored transform, sorted by name.
    pub fn transforms(&self) -> Result<Vec<(String, TransformRecord)>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TRANSFORMS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (name, value) = entry?;
            out.push((
                name.value().to_owned(),
                decode_transform(name.value(), value.value())?,
            ));
        }
        Ok(out)
    }

    /// A transform's committed input positions by partition.
    pub fn transform_positions(&self, name: &str) -> Result<BTreeMap<u32, u64>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TRANSFORM_POSITIONS)?;
        let mut out = BTreeMap::new();
        for entry in table.range((name, 0)..=(name, u32::MAX))? {
            let (key, value) = entry?;
            out.insert(key.value().1, value.value());
        }
        Ok(out)
    }

    /// A transform's stored counters (zeros if it has none yet).
    pub fn transform_counters(&self, name: &str) -> Result<TransformCounters, StorageError> {
        let txn = self.db.begin_read()?;
        let counters = txn.open_table(TRANSFORM_COUNTERS)?.get(name)?.map(|v| {
            let (records_in, records_out, errors) = v.value();
            TransformCounters {
                records_in,
                records_out,
                errors,
            }
        });
        Ok(counters.unwrap_or_default())
    }

    /// A read-only view of a transform's state store as last committed.
    pub fn transform_state(&self, name: &str) -> Result<StateReader, StorageError> {
        let txn = self.db.begin_read()?;
        Ok(StateReader {
            name: name.to_owned(),
            table: txn.open_table(TRANSFORM_STATE)?,
            _txn: txn,
        })
    }
}

/// A snapshot of one transform's state store.
pub struct StateReader {
    name: String,
    table: ReadOnlyTable<(&'static str, &'static [u8]), &'static [u8]>,
    /// Keeps the database open while the snapshot is read.
    _txn: ReadTxn,
}

impl std::fmt::Debug for StateReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl StateReader {
    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .table
            .get((self.name.as_str(), key))?
            .map(|v| v.value().to_vec()))
    }

    /// The first `limit` entries whose keys start with `prefix`, in key
    /// order, stopping early once they hold more than `max_bytes` of keys
    /// and values.
    pub fn scan_prefix(
        &self,
        prefix: &[u8],
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<StateEntry>, StorageError> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for entry in self.table.range((self.name.as_str(), prefix)..)? {
            if out.len() == limit || bytes > max_bytes {
                break;
            }
            let (key, value) = entry?;
            let (name, key) = key.value();
            if name != self.name || !key.starts_with(prefix) {
                break;
            }
            bytes += key.len() + value.value().len();
            out.push((key.to_vec(), value.value().to_vec()));
        }
        Ok(out)
    }
}

impl Writer {
    pub(super) fn put_transform(
        &self,
        name: &str,
        record: &TransformRecord,
        positions: Option<&[(u32, u64)]>,
        counters: Option<TransformCounters>,
    ) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        {
            let mut transforms = txn.open_table(TRANSFORMS)?;
            let exists = transforms.get(name)?.is_some();
            match positions {
                Some(_) if exists => return Err(StorageError::TransformExists(name.into())),
                None if !exists => return Err(StorageError::UnknownTransform(name.into())),
                _ => {}
            }
            // The very version it runs must be stored (an upload meanwhile may
            // have pruned an older one).
            let code = (record.module.as_str(), record.module_version);
            if txn.open_table(MODULE_CODE)?.get(code)?.is_none() {
                return Err(StorageError::UnknownModule(format!(
                    "{} version {}",
                    record.module, record.module_version
                )));
            }
            let previous = transforms
                .insert(name, encode_transform(name, record)?.as_slice())?
                .map(|old| decode_transform(name, old.value()))
                .transpose()?;
            drop(transforms);
            let mut table = txn.open_table(TRANSFORM_POSITIONS)?;
            for &(partition, offset) in positions.unwrap_or_default() {
                table.insert((name, partition), offset)?;
            }
            if let Some(counters) = counters {
                store_counters(&txn, name, counters)?;
            }
            // An upgrade may leave the old version unused.
            if let Some(previous) = previous {
                prune_module_code(&txn, &previous.module)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    pub(super) fn delete_transform(&self, name: &str) -> Result<(), StorageError> {
        let txn = self.db.begin_write()?;
        {
            let Some(record) = txn
                .open_table(TRANSFORMS)?
                .remove(name)?
                .map(|old| decode_transform(name, old.value()))
                .transpose()?
            else {
                return Err(StorageError::UnknownTransform(name.into()));
            };
            prune_module_code(&txn, &record.module)?;
            txn.open_table(TRANSFORM_POSITIONS)?
                .retain_in((name, 0)..=(name, u32::MAX), |_, _| false)?;
            txn.open_table(TRANSFORM_COUNTERS)?.remove(name)?;
            let mut state = txn.open_table(TRANSFORM_STATE)?;
            let mut keys: Vec<Vec<u8>> = Vec::new();
            for entry in state.range((name, &[][..])..)? {
                let (key, _) = entry?;
                let (owner, key) = key.value();
                if owner != name {
                    break;
                }
                keys.push(key.to_vec());
            }
            for key in keys {
                state.remove((name, key.as_slice()))?;
            }
        }
        txn.commit()?;
        tracing::info!(transform = name, "transform deleted");
        Ok(())
    }

    pub(super) fn commit_transform(
        &self,
        name: &str,
        position: Option<(u32, u64)>,
        counters: TransformCounters,
        mut outputs: Vec<NewBatch>,
        state: &StateWrites,
    ) -> Result<(), StorageError> {
        if let Some(gone) = outputs.iter().find(|o| o.partition.is_deleted()) {
            return Err(StorageError::UnknownTopic(gone.partition.topic().into()));
        }
        let mut touched: HashMap<(u64, u32), PartitionUpdate> = HashMap::new();
        let txn = self.db.begin_write()?;
        {
            // A transform deleted meanwhile must not get its rows back.
            if txn.open_table(TRANSFORMS)?.get(name)?.is_none() {
                return Err(StorageError::UnknownTransform(name.into()));
            }
            let mut batches = txn.open_table(BATCHES)?;
            let mut time_index = txn.open_table(TIME_INDEX)?;
            for output in &mut outputs {
                append_batch(&mut batches, &mut time_index, &mut touched, output)?;
            }
            let mut table = txn.open_table(TRANSFORM_STATE)?;
            for (key, value) in state {
                match value {
                    Some(value) => table.insert((name, key.as_slice()), value.as_slice())?,
                    None => table.remove((name, key.as_slice()))?,
                };
            }
            if let Some((partition, offset)) = position {
                txn.open_table(TRANSFORM_POSITIONS)?
                    .insert((name, partition), offset)?;
            }
            store_counters(&txn, name, counters)?;
        }
        store_partition_updates(&txn, &touched)?;
        txn.commit()?;
        for update in touched.into_values() {
            update.publish();
        }
        Ok(())
    }
}

fn store_counters(
    txn: &redb::WriteTransaction,
    name: &str,
    counters: TransformCounters,
) -> Result<(), StorageError> {
    let value = (counters.records_in, counters.records_out, counters.errors);
    txn.open_table(TRANSFORM_COUNTERS)?.insert(name, value)?;
    Ok(())
}
