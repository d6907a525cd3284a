//! `strand admin partition enable|disable|reset|info`.

use serde_json::json;

use super::common::{cli_error, record_value, Common};
use crate::cli::output::table;
use crate::cli::CliError;
use crate::model::Message;

/// Arguments of `strand admin partition`.
#[derive(Debug, clap::Args)]
pub struct PartitionArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PartitionCommand,
}

/// Partitions of a resource on one instance.
#[derive(Debug, clap::Args)]
pub struct OnInstance {
    /// The cluster.
    pub cluster: String,
    /// The instance.
    pub instance: String,
    /// The resource.
    pub resource: String,
    /// The partitions.
    #[arg(required = true)]
    pub partitions: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

/// `strand admin partition …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PartitionCommand {
    /// Enable partitions of a resource on an instance.
    Enable(OnInstance),
    /// Disable partitions of a resource on an instance (those replicas go to the initial state).
    Disable(OnInstance),
    /// Reset replicas in ERROR (a transition ERROR → initial state for the current session).
    Reset(OnInstance),
    /// Where a partition is: its part of the ideal state and of the external view.
    Info {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// The partition.
        partition: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs `strand admin partition`.
pub async fn run(args: PartitionArgs) -> Result<(), CliError> {
    match args.command {
        PartitionCommand::Enable(a) => enable(a, true).await,
        PartitionCommand::Disable(a) => enable(a, false).await,
        PartitionCommand::Reset(a) => {
            let sent = a
                .common
                .admin()?
                .reset_partitions(&a.cluster, &a.instance, &a.resource, &a.partitions)
                .await
                .map_err(cli_error)?;
            print_resets(&sent, &a.common);
            Ok(())
        }
        PartitionCommand::Info {
            cluster,
            resource,
            partition,
            common,
        } => {
            let info = common
                .admin()?
                .partition_info(&cluster, &resource, &partition)
                .await
                .map_err(cli_error)?;
            if common.json() {
                println!(
                    "{}",
                    json!({
                        "ideal_state": info.ideal_state.to_value(),
                        "external_view": record_value(info.external_view.as_ref()),
                    })
                );
            } else {
                println!("IdealState for {resource}/{partition}:");
                println!("{}", info.ideal_state.to_helix_json());
                println!();
                match &info.external_view {
                    Some(ev) => {
                        println!("ExternalView for {resource}/{partition}:");
                        println!("{}", ev.to_helix_json());
                    }
                    None => println!("No externalView for {resource}/{partition}"),
                }
            }
            Ok(())
        }
    }
}

async fn enable(a: OnInstance, enabled: bool) -> Result<(), CliError> {
    a.common
        .admin()?
        .enable_partitions(&a.cluster, &a.instance, &a.resource, &a.partitions, enabled)
        .await
        .map_err(cli_error)?;
    let verb = if enabled { "enabled" } else { "disabled" };
    a.common.done(
        format!(
            "{} on {}: {} {verb}",
            a.resource,
            a.instance,
            a.partitions.join(", ")
        ),
        json!({
            "cluster": a.cluster,
            "instance": a.instance,
            "resource": a.resource,
            "partitions": a.partitions,
            "enabled": enabled,
        }),
    );
    Ok(())
}

/// Prints the reset messages written.
pub fn print_resets(sent: &[Message], common: &Common) {
    if common.json() {
        let items: Vec<serde_json::Value> = sent.iter().map(|m| m.record.to_value()).collect();
        println!("{}", json!({ "messages": items }));
        return;
    }
    if sent.is_empty() {
        println!("no replica in ERROR");
        return;
    }
    let rows: Vec<Vec<String>> = sent
        .iter()
        .map(|m| {
            vec![
                m.tgt_name().unwrap_or("").to_string(),
                m.resource_name().unwrap_or("").to_string(),
                m.partition_name().unwrap_or("").to_string(),
                format!("{}-{}", m.from_state().unwrap_or(""), m.to_state().unwrap_or("")),
                m.id().to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["INSTANCE", "RESOURCE", "PARTITION", "TRANSITION", "MESSAGE"],
            &rows
        )
    );
}
