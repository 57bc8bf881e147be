//! `quiver group list|describe|reset-offsets|delete`.

use clap::Subcommand;
use quiver_client::{Admin, OffsetSpec, ResetTarget};

use super::ClientArgs;
use super::consume::parse_time;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List groups (with members or committed offsets).
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show members, their partitions, committed offsets, high watermarks and lag.
    Describe {
        /// Group name.
        group: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Move the group's committed offsets for a topic (refused while the group has members).
    ResetOffsets {
        /// Group name.
        group: String,
        /// The topic whose partitions to reset.
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, or an RFC 3339 time.
        #[arg(long, value_parser = parse_target)]
        to: ResetTarget,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete the group's committed offsets (refused while the group has members).
    Delete {
        /// Group name.
        group: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn parse_target(s: &str) -> Result<ResetTarget, String> {
    match s {
        "earliest" => Ok(ResetTarget::Spec(OffsetSpec::Earliest)),
        "latest" => Ok(ResetTarget::Spec(OffsetSpec::Latest)),
        other => other.parse().map(ResetTarget::Offset).or_else(|_| {
            parse_time(other)
                .map(|ms| ResetTarget::Spec(OffsetSpec::Timestamp(ms)))
                .map_err(|_| {
                    format!(
                        "expected earliest, latest, an offset or an RFC 3339 time, not {other:?}"
                    )
                })
        }),
    }
}

pub(crate) async fn run(command: GroupCommand) -> anyhow::Result<()> {
    let client = command.client_args().connect().await?;
    let result = execute(command, Admin::new(client.clone())).await;
    // Close explicitly, so the broker frees the connection at once.
    client.close().await;
    result
}

impl GroupCommand {
    fn client_args(&self) -> &ClientArgs {
        match self {
            Self::List { client }
            | Self::Describe { client, .. }
            | Self::ResetOffsets { client, .. }
            | Self::Delete { client, .. } => client,
        }
    }
}

async fn execute(command: GroupCommand, admin: Admin) -> anyhow::Result<()> {
    match command {
        GroupCommand::List { .. } => {
            for group in admin.list_groups().await? {
                println!("{group}");
            }
        }
        GroupCommand::Describe { group, .. } => {
            let description = admin.describe_group(&group).await?;
            println!(
                "group {}\tstate={}\tepoch={}\tstrategy={}\tmembers={}",
                description.group,
                description.state,
                description.group_epoch,
                description.strategy.as_deref().unwrap_or("-"),
                description.members.len()
            );
            for member in &description.members {
                let partitions: Vec<String> = member
                    .assigned
                    .iter()
                    .map(|p| format!("{}/{}", p.topic, p.partition))
                    .collect();
                println!(
                    "member {}\tclient={}\tepoch={}\tpartitions={}",
                    member.member_id,
                    member.client_id,
                    member.member_epoch,
                    partitions.join(",")
                );
            }
            println!("topic\tpartition\towner\tcommitted\thigh_watermark\tlag");
            for p in &description.partitions {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    p.partition.topic,
                    p.partition.partition,
                    p.owner.as_deref().unwrap_or("-"),
                    p.committed
                        .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                    p.high_watermark,
                    p.lag
                );
            }
        }
        GroupCommand::ResetOffsets {
            group, topic, to, ..
        } => {
            let offsets = admin.reset_offsets(&group, &topic, to).await?;
            for c in offsets {
                println!(
                    "{}\t{}\t{}",
                    c.partition.topic,
                    c.partition.partition,
                    c.offset.map_or_else(|| "-".to_owned(), |o| o.to_string())
                );
            }
        }
        GroupCommand::Delete { group, .. } => {
            admin.delete_group(&group).await?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}
