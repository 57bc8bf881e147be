//! `quiver bench connections`: how many connections a broker holds, and
//! what each costs it in memory.
//!
//! Opens the connections one after another, each sending one request (so
//! the broker's first-request deadline does not close it), holds them all
//! for a while, then closes them. With `--broker-pid` (a broker on this
//! machine) it reads the broker's resident memory from `/proc` before and
//! while they are held.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use quiver_client::{Admin, Client};

use super::ClientArgs;
use super::procfs::resident_bytes;

#[derive(Debug, Args)]
pub(crate) struct ConnectionsBench {
    /// Connections to open.
    #[arg(long, default_value_t = 1_000)]
    count: u32,
    /// Seconds to hold them once open.
    #[arg(long, default_value_t = 5)]
    hold_secs: u64,
    /// The broker's process id, to read its resident memory (Linux).
    #[arg(long)]
    broker_pid: Option<u32>,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: ConnectionsBench) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    let rss_before = args.broker_pid.map(resident_bytes).transpose()?;
    let started = Instant::now();
    let mut held = Vec::new();
    let mut refused = 0u32;
    let mut first_refusal = None;
    for _ in 0..args.count {
        let opened = match args.client.connect().await {
            Ok(client) => Admin::new(client.clone())
                .list_topics()
                .await
                .map(|_| client)
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        match opened {
            Ok(client) => held.push(client),
            Err(e) => {
                refused += 1;
                first_refusal.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let opening = started.elapsed();
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let rss_held = args.broker_pid.map(resident_bytes).transpose()?;
    // Still serving every one of them?
    let mut still_serving = 0u32;
    for client in &held {
        if Admin::new(client.clone()).list_topics().await.is_ok() {
            still_serving += 1;
        }
    }
    close_all(&held).await;
    println!(
        "opened {} of {} connections in {:.2} s; {} still served after {} s",
        held.len(),
        args.count,
        opening.as_secs_f64(),
        still_serving,
        args.hold_secs
    );
    if let Some(reason) = first_refusal {
        println!("refused {refused}, the first because: {reason}");
    }
    if let (Some(before), Some(held_rss)) = (rss_before, rss_held) {
        let per = held_rss.saturating_sub(before) / (held.len().max(1) as u64);
        println!(
            "broker resident memory: {} MiB before, {} MiB holding them: about {} KiB per connection",
            before / (1024 * 1024),
            held_rss / (1024 * 1024),
            per / 1024
        );
    }
    Ok(())
}

async fn close_all(clients: &[Client]) {
    for client in clients {
        client.close().await;
    }
}
