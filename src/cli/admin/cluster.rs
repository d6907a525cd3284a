//! `strand admin cluster add|list|drop|info|pause|resume|maintenance`.

use serde_json::json;

use super::common::{cli_error, record_value, yes_no, Common};
use crate::admin::ClusterInfo;
use crate::cli::output::table;
use crate::cli::CliError;

/// Arguments of `strand admin cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Switch it on.
    On,
    /// Switch it off.
    Off,
}

/// `strand admin cluster …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster: Helix's layout, its config and the built-in state models.
    Add {
        /// The cluster's name.
        cluster: String,
        #[command(flatten)]
        common: Common,
    },
    /// List the clusters in the store.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Delete a cluster and everything under it (refused while instances are live).
    Drop {
        /// The cluster.
        cluster: String,
        #[command(flatten)]
        common: Common,
    },
    /// Resources, instances (live or not), switches and config of a cluster.
    Info {
        /// The cluster.
        cluster: String,
        #[command(flatten)]
        common: Common,
    },
    /// Pause the cluster: the controller sends no transitions until `resume`.
    Pause {
        /// The cluster.
        cluster: String,
        /// Why (recorded in the pause record).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Resume a paused cluster.
    Resume {
        /// The cluster.
        cluster: String,
        #[command(flatten)]
        common: Common,
    },
    /// Switch maintenance mode on (no replica is moved) or off.
    Maintenance {
        /// The cluster.
        cluster: String,
        /// on or off.
        #[arg(value_enum)]
        state: Switch,
        /// Why (recorded in the maintenance record).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs `strand admin cluster`.
pub async fn run(args: ClusterArgs) -> Result<(), CliError> {
    match args.command {
        ClusterCommand::Add { cluster, common } => {
            common.admin()?.add_cluster(&cluster).await.map_err(cli_error)?;
            common.done(
                format!("cluster {cluster} added"),
                json!({ "cluster": cluster, "added": true }),
            );
        }
        ClusterCommand::List { common } => {
            let names = common.admin()?.list_clusters().await.map_err(cli_error)?;
            common.names("CLUSTER", "clusters", &names);
        }
        ClusterCommand::Drop { cluster, common } => {
            common.admin()?.drop_cluster(&cluster).await.map_err(cli_error)?;
            common.done(
                format!("cluster {cluster} dropped"),
                json!({ "cluster": cluster, "dropped": true }),
            );
        }
        ClusterCommand::Info { cluster, common } => {
            let info = common.admin()?.cluster_info(&cluster).await.map_err(cli_error)?;
            print_info(&info, &common);
        }
        ClusterCommand::Pause {
            cluster,
            reason,
            common,
        } => {
            common
                .admin()?
                .pause_cluster(&cluster, reason.as_deref())
                .await
                .map_err(cli_error)?;
            common.done(
                format!("cluster {cluster} paused"),
                json!({ "cluster": cluster, "paused": true }),
            );
        }
        ClusterCommand::Resume { cluster, common } => {
            common
                .admin()?
                .resume_cluster(&cluster)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("cluster {cluster} resumed"),
                json!({ "cluster": cluster, "paused": false }),
            );
        }
        ClusterCommand::Maintenance {
            cluster,
            state,
            reason,
            common,
        } => {
            let on = state == Switch::On;
            common
                .admin()?
                .set_maintenance(&cluster, on, reason.as_deref())
                .await
                .map_err(cli_error)?;
            common.done(
                format!(
                    "cluster {cluster}: maintenance mode {}",
                    if on { "on" } else { "off" }
                ),
                json!({ "cluster": cluster, "maintenance": on }),
            );
        }
    }
    Ok(())
}

fn print_info(info: &ClusterInfo, common: &Common) {
    if common.json() {
        println!(
            "{}",
            json!({
                "cluster": info.cluster,
                "resources": info.resources,
                "instances": info.instances,
                "live_instances": info.live_instances,
                "state_models": info.state_models,
                "paused": info.paused,
                "maintenance": record_value(info.maintenance.as_ref()),
                "leader": record_value(info.leader.as_ref()),
                "config": info.config.to_value(),
            })
        );
        return;
    }
    println!("cluster      {}", info.cluster);
    println!("paused       {}", yes_no(info.paused));
    match &info.maintenance {
        Some(m) => println!(
            "maintenance  on ({})",
            m.simple("REASON")
                .filter(|r| !r.is_empty())
                .unwrap_or("no reason given")
        ),
        None => println!("maintenance  off"),
    }
    let leader = info.leader.as_ref().map_or("none".to_string(), |r| r.id.clone());
    println!("leader       {leader}");
    println!("state models {}", info.state_models.join(", "));
    println!();
    let rows: Vec<Vec<String>> = info.resources.iter().map(|r| vec![r.clone()]).collect();
    print!("{}", table(&["RESOURCE"], &rows));
    println!();
    let rows: Vec<Vec<String>> = info
        .instances
        .iter()
        .map(|i| vec![i.clone(), yes_no(info.live_instances.contains(i))])
        .collect();
    print!("{}", table(&["INSTANCE", "LIVE"], &rows));
}
