//! WebAssembly module registry requests: upload (the component travels in
//! the frame body), list, delete.
//!
//! The broker validates an upload before storing it: it must be a
//! component, import nothing beyond the `quiver:transform` contract and the
//! WASI interfaces the host provides locked down, and export the contract's
//! `guest` interface at the version the broker speaks.

use serde::{Deserialize, Serialize};

use super::{Request, RequestKind};

/// Store a module under a name (a new version if the name exists). The body
/// is the component's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadModuleRequest {
    /// The module's name (the topic-name rule).
    pub name: String,
}

impl Request for UploadModuleRequest {
    const KIND: RequestKind = RequestKind::UploadModule;
    type Response = ModuleDescription;
}

/// List stored modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListModulesRequest;

impl Request for ListModulesRequest {
    const KIND: RequestKind = RequestKind::ListModules;
    type Response = ListModulesResponse;
}

/// Stored modules, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListModulesResponse {
    /// The modules.
    pub modules: Vec<ModuleDescription>,
}

/// Delete a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteModuleRequest {
    /// The module's name.
    pub name: String,
}

impl Request for DeleteModuleRequest {
    const KIND: RequestKind = RequestKind::DeleteModule;
    type Response = ();
}

/// A stored module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleDescription {
    /// Its name.
    pub name: String,
    /// 1 for the first upload under this name, then one more per upload.
    pub version: u32,
    /// SHA-256 of the component, lower-case hex.
    pub sha256: String,
    /// The component's size.
    pub size_bytes: u64,
    /// When it was uploaded, ms since the epoch.
    pub uploaded_at_ms: i64,
    /// What it imports (contract and WASI interfaces).
    pub imports: Vec<String>,
    /// Every stored version, oldest first (the latest, and older ones that
    /// transforms still run), with the transforms running each.
    pub versions: Vec<ModuleVersion>,
}

/// One stored version of a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleVersion {
    /// The version.
    pub version: u32,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
    /// Its size.
    pub size_bytes: u64,
    /// The transforms that run it, sorted.
    pub transforms: Vec<String>,
}
