//! Committed consumer-group offsets: durable, per (group, topic, partition).
//! Writes go through the writer (one commit, one fsync); reads use a
//! snapshot.

use redb::ReadableTable;

use super::command::Command;
use super::tables::COMMITTED_OFFSETS;
use super::writer::OffsetToCommit;
use super::{Storage, StorageError};

/// A stored committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedPosition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The next offset to read.
    pub offset: u64,
    /// The metadata committed with it (`None` when empty).
    pub metadata: Option<String>,
}

impl Storage {
    /// Stores a group's committed offsets durably.
    pub async fn commit_offsets(
        &self,
        group: String,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<(), StorageError> {
        self.call(|reply| Command::CommitOffsets {
            group,
            offsets,
            reply,
        })
        .await?
    }

    /// Forgets a group's committed offsets; returns how many there were.
    pub async fn delete_group_offsets(&self, group: String) -> Result<u64, StorageError> {
        self.call(|reply| Command::DeleteGroupOffsets { group, reply })
            .await?
    }

    /// Every committed position of a group, by topic and partition.
    pub fn committed_offsets(&self, group: &str) -> Result<Vec<CommittedPosition>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COMMITTED_OFFSETS)?;
        let mut out = Vec::new();
        for entry in table.range((group, "", 0)..)? {
            let (key, value) = entry?;
            let (g, topic, partition) = key.value();
            if g != group {
                break;
            }
            let (offset, metadata) = value.value();
            out.push(CommittedPosition {
                topic: topic.to_owned(),
                partition,
                offset,
                metadata: (!metadata.is_empty()).then(|| metadata.to_owned()),
            });
        }
        Ok(out)
    }

    /// Groups that have committed offsets, sorted.
    pub fn groups_with_offsets(&self) -> Result<Vec<String>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(COMMITTED_OFFSETS)?;
        let mut groups: Vec<String> = Vec::new();
        for entry in table.iter()? {
            let (key, _) = entry?;
            let group = key.value().0;
            if groups.last().is_none_or(|last| last != group) {
                groups.push(group.to_owned());
            }
        }
        Ok(groups)
    }
}
