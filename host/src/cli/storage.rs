//! `quiver storage`: offline tools for a stopped broker's data directory.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum StorageCommand {
    /// Check a stopped broker's database: every page (redb repairs what it
    /// can), every stored batch's CRC, and the partitions' offsets.
    Check {
        /// The data directory.
        #[arg(default_value = "quiver-data")]
        dir: PathBuf,
    },
}

pub(crate) fn run(command: StorageCommand) -> anyhow::Result<()> {
    match command {
        StorageCommand::Check { dir } => {
            let report = quiver_host::storage::check(&dir)?;
            print!("{report}");
            if !report.problems.is_empty() {
                bail!(
                    "{} problem(s) in {}: restore it from a backup, or consume what is readable \
                     and produce it into a fresh broker",
                    report.problems.len(),
                    dir.display()
                );
            }
            println!("ok");
            Ok(())
        }
    }
}
