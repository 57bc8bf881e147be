//! `quiver module upload|list|delete`: the WebAssembly module registry.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use quiver_client::Admin;
use quiver_proto::api::modules::ModuleDescription;

use super::ClientArgs;

#[derive(Debug, Subcommand)]
pub(crate) enum ModuleCommand {
    /// Upload a component (checked against the transform contract).
    Upload {
        /// Module name.
        name: String,
        /// The .wasm component.
        file: PathBuf,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List modules.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a module.
    Delete {
        /// Module name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl ModuleCommand {
    fn client_args(&self) -> &ClientArgs {
        match self {
            Self::Upload { client, .. } | Self::List { client } | Self::Delete { client, .. } => {
                client
            }
        }
    }
}

pub(crate) async fn run(command: ModuleCommand) -> anyhow::Result<()> {
    // Read the file before connecting: a bad path fails without the network.
    let component = match &command {
        ModuleCommand::Upload { file, .. } => {
            Some(std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?)
        }
        _ => None,
    };
    let client = command.client_args().connect().await?;
    let admin = Admin::new(client.clone());
    let result = async {
        match command {
            ModuleCommand::Upload { name, .. } => {
                let module = admin
                    .upload_module(&name, component.unwrap_or_default().into())
                    .await?;
                println!("{}", uploaded(&module));
            }
            ModuleCommand::List { .. } => {
                for m in admin.list_modules().await? {
                    for v in &m.versions {
                        let latest = v.version == m.version;
                        println!(
                            "{}\tversion={}{}\tbytes={}\tsha256={}\ttransforms={}{}",
                            m.name,
                            v.version,
                            if latest { " (latest)" } else { "" },
                            v.size_bytes,
                            v.sha256,
                            if v.transforms.is_empty() {
                                "-".to_owned()
                            } else {
                                v.transforms.join(",")
                            },
                            if latest {
                                format!("\timports={}", m.imports.join(","))
                            } else {
                                String::new()
                            }
                        );
                    }
                }
            }
            ModuleCommand::Delete { name, .. } => {
                admin.delete_module(&name).await?;
                println!("deleted module {name}");
            }
        }
        Ok(())
    }
    .await;
    // Close explicitly, so the broker frees the connection at once.
    client.close().await;
    result
}

/// What an upload says: the version, and for a new version of an existing
/// name, that transforms keep theirs (naming those on older versions).
fn uploaded(module: &ModuleDescription) -> String {
    let mut said = format!(
        "uploaded module {} version {} ({} bytes, sha256 {})",
        module.name, module.version, module.size_bytes, module.sha256
    );
    if module.version > 1 {
        said.push_str("; transforms keep their version until upgraded");
        let older: Vec<String> = module
            .versions
            .iter()
            .filter(|v| v.version != module.version)
            .flat_map(|v| {
                v.transforms
                    .iter()
                    .map(move |t| format!("{t} runs version {}", v.version))
            })
            .collect();
        if !older.is_empty() {
            let _ = write!(said, " ({})", older.join(", "));
        }
    }
    said
}
