//! `quiver tls`: a certificate authority of one's own, and broker
//! certificates it signs (`quiver_host::tls::authority`).

use std::path::PathBuf;

use clap::Subcommand;
use quiver_host::tls::authority::{self, IssueRequest};

#[derive(Debug, Subcommand)]
pub(crate) enum TlsCommand {
    /// Make a certificate authority: DIR/ca.pem (what clients and brokers
    /// trust) and DIR/ca-key.pem (its private key: keep it secret).
    InitCa {
        /// The directory to write to (created if missing; existing files
        /// are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// The CA's name (its certificate's subject).
        #[arg(long, default_value = "Quiver CA")]
        name: String,
        /// Days of validity.
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
    },
    /// Sign a broker's certificate with a CA made by `init-ca`:
    /// OUT/cert.pem and OUT/key.pem, for `quiver serve --tls-cert --tls-key`.
    Issue {
        /// The CA's directory (its ca.pem and ca-key.pem), or its ca.pem.
        #[arg(long)]
        ca: PathBuf,
        /// A host name or IP address clients connect to; repeatable.
        #[arg(long = "host", value_name = "HOST", required = true)]
        hosts: Vec<String>,
        /// The broker's cluster node id (the subject becomes
        /// quiver-node-N; else it is the first host).
        #[arg(long)]
        node_id: Option<u64>,
        /// The directory to write to (created if missing; existing files
        /// are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Days of validity.
        #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        days: u32,
    },
}

pub(crate) fn run(command: TlsCommand) -> anyhow::Result<()> {
    match command {
        TlsCommand::InitCa { out, name, days } => {
            let written = authority::init_ca(&out, &name, days)?;
            println!(
                "wrote {} (trust it: --ca {0} or QUIVER_CA) and {} (keep it secret)",
                written.cert.display(),
                written.key.display()
            );
            println!("fingerprint {}", written.fingerprint);
        }
        TlsCommand::Issue {
            ca,
            hosts,
            node_id,
            out,
            days,
        } => {
            let request = IssueRequest {
                hosts,
                node_id,
                days,
            };
            let written = authority::issue(&ca, &request, &out)?;
            println!(
                "wrote {} and {} for {}, signed by the CA in {}",
                written.cert.display(),
                written.key.display(),
                request.hosts.join(", "),
                ca.display()
            );
            println!(
                "serve with: quiver serve --tls-cert {} --tls-key {}",
                written.cert.display(),
                written.key.display()
            );
            println!("fingerprint {}", written.fingerprint);
        }
    }
    Ok(())
}
