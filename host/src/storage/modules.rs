//! The WebAssembly module registry's storage: validated components by name,
//! the latest version's bytes kept. Writes go through the writer.

use quiver_proto::api::modules::{ModuleDescription, ModuleVersion};
use std::collections::{BTreeMap, BTreeSet};

use redb::{ReadableTable, WriteTransaction};

use super::command::Command;
use super::tables::{MODULE_CODE, MODULES, ModuleRecord, TRANSFORMS};
use super::transforms::decode_transform;
use super::{Storage, StorageError};

/// A validated module to store.
#[derive(Debug, Clone)]
pub struct NewModule {
    /// Its name.
    pub name: String,
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// What it imports.
    pub imports: Vec<String>,
    /// Upload time, ms since the epoch.
    pub uploaded_at_ms: i64,
}

impl Storage {
    /// Stores a module as the next version of its name; the previous
    /// version's bytes are dropped.
    pub async fn put_module(&self, module: NewModule) -> Result<ModuleDescription, StorageError> {
        self.call(|reply| Command::PutModule { module, reply })
            .await?
    }

    /// Deletes a module and its bytes.
    pub async fn delete_module(&self, name: String) -> Result<(), StorageError> {
        self.call(|reply| Command::DeleteModule { name, reply })
            .await?
    }

    /// Every stored module, sorted by name.
    pub fn modules(&self) -> Result<Vec<ModuleDescription>, StorageError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MODULES)?;
        let code = txn.open_table(MODULE_CODE)?;
        let transforms = txn.open_table(TRANSFORMS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (name, value) = entry?;
            let record = decode_record(name.value(), value.value())?;
            let versions = module_versions(&code, &transforms, name.value())?;
            out.push(describe(name.value(), record, versions));
        }
        Ok(out)
    }

    /// A module's latest version and its bytes.
    pub fn module_code(&self, name: &str) -> Result<(u32, Vec<u8>), StorageError> {
        let txn = self.db.begin_read()?;
        let record = txn
            .open_table(MODULES)?
            .get(name)?
            .map(|v| decode_record(name, v.value()))
            .transpose()?
            .ok_or_else(|| StorageError::UnknownModule(name.into()))?;
        let code = txn
            .open_table(MODULE_CODE)?
            .get((name, record.version))?
            .map(|v| (record.version, v.value().to_vec()));
        code.ok_or_else(|| StorageError::CorruptMetadata {
            what: format!("module {name:?}"),
            reason: format!("no bytes for version {}", record.version),
        })
    }
}

impl Storage {
    /// A module's latest version.
    pub fn module_version(&self, name: &str) -> Result<u32, StorageError> {
        let txn = self.db.begin_read()?;
        txn.open_table(MODULES)?
            .get(name)?
            .map(|v| decode_record(name, v.value()).map(|record| record.version))
            .transpose()?
            .ok_or_else(|| StorageError::UnknownModule(name.into()))
    }

    /// The bytes of a given version of a module (kept while a transform
    /// runs that version, even after newer uploads).
    pub fn module_code_at(&self, name: &str, version: u32) -> Result<Vec<u8>, StorageError> {
        let txn = self.db.begin_read()?;
        let code = txn
            .open_table(MODULE_CODE)?
            .get((name, version))?
            .map(|v| v.value().to_vec());
        code.ok_or_else(|| StorageError::UnknownModule(format!("{name} version {version}")))
    }
}

/// Drops the stored versions of module `name` that are neither its latest
/// nor run by a transform.
pub(crate) fn prune_module_code(txn: &WriteTransaction, name: &str) -> Result<(), StorageError> {
    let latest = txn
        .open_table(MODULES)?
        .get(name)?
        .map(|v| decode_record(name, v.value()))
        .transpose()?
        .map(|record| record.version);
    let mut keep: BTreeSet<u32> = latest.into_iter().collect();
    for entry in txn.open_table(TRANSFORMS)?.iter()? {
        let (transform, value) = entry?;
        let record = decode_transform(transform.value(), value.value())?;
        if record.module == name {
            keep.insert(record.module_version);
        }
    }
    txn.open_table(MODULE_CODE)?
        .retain_in((name, 0)..=(name, u32::MAX), |(_, version), _| {
            keep.contains(&version)
        })?;
    Ok(())
}

pub(crate) fn decode_record(name: &str, bytes: &[u8]) -> Result<ModuleRecord, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageError::CorruptMetadata {
        what: format!("module {name:?}"),
        reason: e.to_string(),
    })
}

pub(crate) fn describe(
    name: &str,
    record: ModuleRecord,
    versions: Vec<ModuleVersion>,
) -> ModuleDescription {
    ModuleDescription {
        name: name.to_owned(),
        version: record.version,
        sha256: record.sha256,
        size_bytes: record.size_bytes,
        uploaded_at_ms: record.uploaded_at_ms,
        imports: record.imports,
        versions,
    }
}

/// Every stored version of module `name`, oldest first, with the
/// transforms running each.
pub(crate) fn module_versions(
    code: &impl ReadableTable<(&'static str, u32), &'static [u8]>,
    transforms: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Vec<ModuleVersion>, StorageError> {
    let mut users: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for entry in transforms.iter()? {
        let (transform, value) = entry?;
        let record = decode_transform(transform.value(), value.value())?;
        if record.module == name {
            users
                .entry(record.module_version)
                .or_default()
                .push(transform.value().to_owned());
        }
    }
    let mut out = Vec::new();
    for entry in code.range((name, 0)..=(name, u32::MAX))? {
        let (key, bytes) = entry?;
        let version = key.value().1;
        out.push(ModuleVersion {
            version,
            sha256: crate::wasm::sha256_hex(bytes.value()),
            size_bytes: bytes.value().len() as u64,
            transforms: users.remove(&version).unwrap_or_default(),
        });
    }
    Ok(out)
}
