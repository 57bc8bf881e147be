//! Checking an uploaded component against the `quiver:transform` contract
//! before it is stored.
//!
//! A component may import only the contract's interfaces, at the one
//! version of the contract it exports `guest` at (one this broker speaks),
//! and the WASI interfaces Rust's standard library links on
//! `wasm32-wasip2`, which the host provides locked down (no preopened
//! directories, no network, empty environment). Anything else (`wasi:http`,
//! `wasi:sockets`, another contract version) is refused at upload, naming
//! the import. It must export the contract's `guest` interface.
//!
//! These checks run first on the component's sections as declared
//! ([`precheck`]), before it is compiled, so a component that breaks the
//! contract costs no compilation; the compiled component is checked again.

use std::fmt::Write as _;

use wasmtime::component::Component;

use super::WasmEngine;

use quiver_proto::limits::MAX_MODULE_BYTES;

/// The contract package this broker speaks.
pub const CONTRACT_PACKAGE: &str = "quiver:transform";
/// The current contract version, which new modules are built for.
pub const CONTRACT_VERSION: &str = Contract::CURRENT.version();
/// Every contract version this broker speaks, newest first.
pub const CONTRACT_VERSIONS: [&str; 3] = [
    Contract::V3.version(),
    Contract::V2.version(),
    Contract::V1.version(),
];

/// A version of the contract this broker speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `quiver:transform@0.1.0`: `process` takes one list element per
    /// record.
    V1,
    /// `quiver:transform@0.2.0`: `process` takes the stored batches.
    V2,
    /// `quiver:transform@0.3.0`: as 0.2.0, and an output record's value
    /// may be null (a tombstone).
    V3,
}

impl Contract {
    /// The version new modules are built for.
    pub const CURRENT: Self = Self::V3;

    /// The package version, e.g. `0.2.0`.
    pub const fn version(self) -> &'static str {
        match self {
            Self::V1 => "0.1.0",
            Self::V2 => "0.2.0",
            Self::V3 => "0.3.0",
        }
    }

    fn of(version: &str) -> Option<Self> {
        [Self::V3, Self::V2, Self::V1]
            .into_iter()
            .find(|c| c.version() == version)
    }
}
/// The contract interfaces a module may import.
pub const CONTRACT_IMPORTS: [&str; 3] = ["types", "log", "state"];
/// The interface a module must export.
pub const GUEST_EXPORT: &str = "guest";
/// WASI interfaces a module may import (Rust's std links them); the host
/// gives them no directories, no network and no environment. Of the clocks
/// only the wall clock: the monotonic clock's timers would let a guest block
/// inside a host call, where its deadline cannot stop it.
pub const ALLOWED_WASI_PACKAGES: [&str; 5] = [
    "wasi:io/",
    "wasi:cli/",
    "wasi:clocks/wall-clock@",
    "wasi:random/",
    "wasi:filesystem/",
];

/// Why an upload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// Larger than [`MAX_MODULE_BYTES`].
    #[error("module of {size} bytes exceeds the limit of {MAX_MODULE_BYTES}")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// Does not start with the WebAssembly magic bytes.
    #[error("not a WebAssembly file (it does not start with the \\0asm header)")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component; build with --target wasm32-wasip2 to get a component"
    )]
    CoreModule,
    /// Not a WebAssembly component wasmtime can compile (the reason on one
    /// line).
    #[error("not a valid WebAssembly component: {0}")]
    NotAComponent(String),
    /// Imports things outside the contract and the allowed WASI set.
    #[error(
        "module imports {}, which transforms may not use (allowed: quiver:transform/{{types,log,state}} at the version of its guest export, wasi:{{io,cli,random,filesystem}} and wasi:clocks/wall-clock)",
        quoted(imports)
    )]
    ForbiddenImports {
        /// Every forbidden import, sorted.
        imports: Vec<String>,
    },
    /// Built for another version of the contract.
    #[error(
        "module was built for {found}; this broker speaks {CONTRACT_PACKAGE}@{CONTRACT_VERSION} (and {}), one version per module: rebuild it against the current contract",
        older_versions()
    )]
    ContractVersion {
        /// The import or export naming the other version.
        found: String,
    },
    /// Does not export the contract's guest interface.
    #[error(
        "module does not export {CONTRACT_PACKAGE}/{GUEST_EXPORT}@{CONTRACT_VERSION} (or {}) (exports: {exports})",
        older_versions()
    )]
    MissingGuest {
        /// What it exports instead.
        exports: String,
    },
}

/// What validation learned about a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// Its imports, sorted.
    pub imports: Vec<String>,
    /// The contract version it was built for.
    pub contract: Contract,
}

/// The cheap checks, before anything is compiled: the size, the preamble,
/// and the component's top-level imports and exports as its sections
/// declare them (a scan of section headers and names, linear in the size
/// and far cheaper than compiling). A component that breaks the contract is
/// refused here, costing the broker no compilation.
pub fn precheck(bytes: &[u8]) -> Result<(), ModuleError> {
    if bytes.len() > MAX_MODULE_BYTES as usize {
        return Err(ModuleError::TooLarge { size: bytes.len() });
    }
    check_preamble(bytes)?;
    let (mut imports, exports) = scan_sections(bytes)?;
    imports.sort();
    check_imports(&imports)?;
    let contract = check_exports(&exports)?;
    check_one_version(&imports, contract)
}

impl WasmEngine {
    /// Checks a component cheaply ([`precheck`]), then compiles it and
    /// checks what the compiled component imports and exports. CPU-heavy:
    /// call it off the async threads, holding a compile permit.
    pub fn validate(&self, bytes: &[u8]) -> Result<ModuleInfo, ModuleError> {
        precheck(bytes)?;
        let engine = self.engine();
        let component = Component::from_binary(engine, bytes)
            .map_err(|e| ModuleError::NotAComponent(one_line(&format!("{e:#}"))))?;
        let ty = component.component_type();
        let mut imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        imports.sort();
        check_imports(&imports)?;
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let contract = check_exports(&exports)?;
        check_one_version(&imports, contract)?;
        Ok(ModuleInfo {
            sha256: sha256_hex(bytes),
            imports,
            contract,
        })
    }
}

/// Every import (sorted) must be allowed; all forbidden ones are named.
fn check_imports(imports: &[String]) -> Result<(), ModuleError> {
    let mut forbidden = Vec::new();
    for import in imports {
        match check_import(import) {
            Ok(()) => {}
            Err(ModuleError::ForbiddenImports { imports }) => forbidden.extend(imports),
            Err(other) => return Err(other),
        }
    }
    if forbidden.is_empty() {
        Ok(())
    } else {
        Err(ModuleError::ForbiddenImports { imports: forbidden })
    }
}

/// The names of a component's top-level imports and exports, from its
/// sections (nested modules and components are skipped: only the outer
/// component's imports reach the host).
fn scan_sections(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), ModuleError> {
    use wasmparser::Payload;
    let malformed =
        |e: wasmparser::BinaryReaderError| ModuleError::NotAComponent(one_line(&e.to_string()));
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    imports.push(import.map_err(malformed)?.name.name.to_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    exports.push(export.map_err(malformed)?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

/// An import is allowed if it is a contract interface at a version this
/// broker speaks, or in an allowed WASI package.
fn check_import(import: &str) -> Result<(), ModuleError> {
    if let Some((interface, version)) = contract_item(import) {
        if Contract::of(version).is_none() {
            return Err(ModuleError::ContractVersion {
                found: import.to_owned(),
            });
        }
        return if CONTRACT_IMPORTS.contains(&interface) {
            Ok(())
        } else {
            Err(forbidden(import))
        };
    }
    if ALLOWED_WASI_PACKAGES.iter().any(|p| import.starts_with(p)) {
        Ok(())
    } else {
        Err(forbidden(import))
    }
}

fn forbidden(import: &str) -> ModuleError {
    ModuleError::ForbiddenImports {
        imports: vec![import.to_owned()],
    }
}

/// The versions spoken besides the current one, for messages:
/// `@0.2.0, @0.1.0`.
fn older_versions() -> String {
    CONTRACT_VERSIONS[1..]
        .iter()
        .map(|v| format!("@{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"a", "b"` for the message.
fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The 8-byte preamble: `\0asm`, then a version and a layer (u16 each,
/// little-endian): layer 0 is a core module, layer 1 a component.
fn check_preamble(bytes: &[u8]) -> Result<(), ModuleError> {
    let Some((b"\0asm", rest)) = bytes.split_first_chunk::<4>() else {
        return Err(ModuleError::NotWasm);
    };
    match rest.get(2..4) {
        Some([0, 0]) => Err(ModuleError::CoreModule),
        _ => Ok(()),
    }
}

/// The text with its lines joined, so an error prints as one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The contract version of the `guest` export.
pub(crate) fn check_exports(exports: &[String]) -> Result<Contract, ModuleError> {
    let mut other_version = None;
    for export in exports {
        if let Some((GUEST_EXPORT, version)) = contract_item(export) {
            if let Some(contract) = Contract::of(version) {
                return Ok(contract);
            }
            other_version = Some(export.clone());
        }
    }
    match other_version {
        Some(found) => Err(ModuleError::ContractVersion { found }),
        None => Err(ModuleError::MissingGuest {
            exports: if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.join(", ")
            },
        }),
    }
}

/// The contract imports must be at the version of the guest export: the
/// host links one version's interfaces per module.
fn check_one_version(imports: &[String], contract: Contract) -> Result<(), ModuleError> {
    match imports
        .iter()
        .find(|i| contract_item(i).is_some_and(|(_, v)| v != contract.version()))
    {
        Some(other) => Err(ModuleError::ContractVersion {
            found: other.clone(),
        }),
        None => Ok(()),
    }
}

/// `quiver:transform/NAME@VERSION` as `(NAME, VERSION)`.
fn contract_item(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(CONTRACT_PACKAGE)?.strip_prefix('/')?;
    rest.split_once('@')
}

/// SHA-256 of `bytes`, lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for byte in digest.as_ref() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_checked_by_package_and_version() {
        assert_eq!(check_import("quiver:transform/log@0.1.0"), Ok(()));
        assert_eq!(check_import("quiver:transform/log@0.2.0"), Ok(()));
        assert_eq!(check_import("quiver:transform/log@0.3.0"), Ok(()));
        assert_eq!(check_import("wasi:io/streams@0.2.6"), Ok(()));
        assert!(matches!(
            check_import("quiver:transform/log@0.4.0"),
            Err(ModuleError::ContractVersion { .. })
        ));
        assert_eq!(
            check_import("wasi:http/outgoing-handler@0.2.0"),
            Err(forbidden("wasi:http/outgoing-handler@0.2.0"))
        );
        assert!(matches!(
            check_import("wasi:sockets/tcp@0.2.0"),
            Err(ModuleError::ForbiddenImports { .. })
        ));
        assert_eq!(check_import("wasi:clocks/wall-clock@0.2.6"), Ok(()));
        assert!(matches!(
            check_import("wasi:clocks/monotonic-clock@0.2.6"),
            Err(ModuleError::ForbiddenImports { .. })
        ));
        assert!(matches!(
            check_import("quiver:transform/admin@0.1.0"),
            Err(ModuleError::ForbiddenImports { .. })
        ));
    }

    #[test]
    fn the_guest_export_must_be_there_at_a_spoken_version() {
        assert_eq!(
            check_exports(&["quiver:transform/guest@0.1.0".into()]),
            Ok(Contract::V1)
        );
        assert_eq!(
            check_exports(&["quiver:transform/guest@0.2.0".into()]),
            Ok(Contract::V2)
        );
        assert_eq!(
            check_exports(&["quiver:transform/guest@0.3.0".into()]),
            Ok(Contract::V3)
        );
        let newer = check_exports(&["quiver:transform/guest@0.4.0".into()]).unwrap_err();
        assert!(matches!(newer, ModuleError::ContractVersion { .. }));
        assert!(
            newer.to_string().contains("@0.3.0 (and @0.2.0, @0.1.0)"),
            "{newer}"
        );
        // Imports at another version than the export's.
        let mixed = ["quiver:transform/state@0.1.0".to_owned()];
        assert!(matches!(
            check_one_version(&mixed, Contract::V2),
            Err(ModuleError::ContractVersion { found }) if found == mixed[0]
        ));
        assert_eq!(check_one_version(&mixed, Contract::V1), Ok(()));
        assert!(matches!(
            check_exports(&[]),
            Err(ModuleError::MissingGuest { .. })
        ));
    }

    #[test]
    fn the_precheck_reads_top_level_names_without_compiling() {
        let good = wat::parse_str(
            r#"(component
                (import "wasi:io/error@0.2.6" (instance))
                (component $inner (import "wasi:sockets/tcp@0.2.0" (instance)))
                (instance $guest)
                (export "quiver:transform/guest@0.1.0" (instance $guest)))"#,
        )
        .unwrap();
        assert_eq!(
            precheck(&good),
            Ok(()),
            "a nested component's imports are its own"
        );
        assert_eq!(
            scan_sections(&good).unwrap(),
            (
                vec!["wasi:io/error@0.2.6".to_owned()],
                vec!["quiver:transform/guest@0.1.0".to_owned()]
            )
        );
        let old_contract = wat::parse_str(
            r#"(component (instance $g) (export "quiver:transform/guest@0.0.9" (instance $g)))"#,
        )
        .unwrap();
        assert!(matches!(
            precheck(&old_contract),
            Err(ModuleError::ContractVersion { .. })
        ));
        let mut truncated = good.clone();
        truncated.truncate(good.len() - 3);
        assert!(matches!(
            precheck(&truncated),
            Err(ModuleError::NotAComponent(_))
        ));
    }

    #[test]
    fn components_are_compiled_and_their_imports_named() {
        let engine = WasmEngine::new(None).unwrap();
        assert_eq!(engine.validate(b"not wasm"), Err(ModuleError::NotWasm));
        let core = wat::parse_str("(module)").unwrap();
        assert_eq!(engine.validate(&core), Err(ModuleError::CoreModule));
        // A component preamble with a broken body: one line, whatever
        // wasmtime's error says.
        let mut broken = wat::parse_str("(component)").unwrap();
        broken.extend_from_slice(&[0xff; 8]);
        match engine.validate(&broken) {
            Err(e @ ModuleError::NotAComponent(_)) => {
                assert_eq!(e.to_string().lines().count(), 1, "{e}");
            }
            other => panic!("{other:?}"),
        }
        let forbidden = wat::parse_str(
            r#"(component
                (import "wasi:sockets/tcp@0.2.0" (instance))
                (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#,
        )
        .unwrap();
        let refused = engine.validate(&forbidden).unwrap_err();
        assert_eq!(
            refused,
            ModuleError::ForbiddenImports {
                imports: vec![
                    "wasi:http/outgoing-handler@0.2.0".into(),
                    "wasi:sockets/tcp@0.2.0".into()
                ]
            }
        );
        assert!(
            refused.to_string().starts_with(
                r#"module imports "wasi:http/outgoing-handler@0.2.0", "wasi:sockets/tcp@0.2.0", which"#
            ),
            "{refused}"
        );
        let no_guest =
            wat::parse_str(r#"(component (import "wasi:io/error@0.2.6" (instance)))"#).unwrap();
        assert!(matches!(
            engine.validate(&no_guest),
            Err(ModuleError::MissingGuest { .. })
        ));
        assert_eq!(
            engine.validate(&vec![0u8; MAX_MODULE_BYTES as usize + 1]),
            Err(ModuleError::TooLarge {
                size: MAX_MODULE_BYTES as usize + 1
            })
        );
    }
}
