//! `strand admin …`: raw store access (`ls|get|put|rm|watch PATH`, like zkCli or etcdctl)
//! and every helix-admin command as `strand admin <noun> <verb>`.
//!
//! ```text
//!   strand admin cluster    add|list|drop|info|pause|resume|maintenance
//!   strand admin instance   add|drop|list|info|enable|disable|tag|untag|zone|weight|reset|swap
//!   strand admin resource   add|add-ideal-state|drop|list|info|rebalance|enable|disable|reset|property
//!   strand admin partition  enable|disable|reset|info
//!   strand admin statemodel add|list|show
//!   strand admin config     set|get|rm|watch
//!   strand admin propertystore get|set|create|ls|rm|watch   (the application property store)
//!   strand admin constraint set|get|rm
//!   strand admin send       --cluster C --criteria '…' --type T [--body JSON] [--wait]
//!   strand admin alert      add|ls|rm --cluster C ['RULE']    (health alert rules)
//!   strand admin stat       add|ls|rm --cluster C ['STAT']    (stats to aggregate)
//!   strand admin health     --cluster C                        (the aggregates, what fires)
//! ```
//!
//! The files here only parse and print; every decision is in [`crate::admin`].

mod alert;
mod audit;
mod cluster;
mod common;
mod config;
mod constraint;
mod instance;
mod partition;
mod propertystore;
mod raw;
mod resource;
mod send;
mod statemodel;

pub use raw::{event_json, PathArgs, PutArgs, RmArgs, WatchArgs};

/// Time helpers shared with `strand status`.
pub mod common_parts {
    pub use super::alert::{ago, now_ms};
}
pub use resource::helix_resource_info;

use super::store::runtime;
use super::CliError;

/// Arguments of `strand admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `strand admin …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// List a path's children.
    Ls(PathArgs),
    /// Print a key's value and metadata.
    Get(PathArgs),
    /// Write a key.
    Put(PutArgs),
    /// Delete a key.
    Rm(RmArgs),
    /// Stream changes under a path as JSON lines.
    Watch(WatchArgs),
    /// Clusters: add, list, drop, info, pause, resume, maintenance.
    Cluster(cluster::ClusterArgs),
    /// Instances: add, drop, list, info, enable, disable, tags, zone, weight, reset.
    Instance(instance::InstanceArgs),
    /// Resources: add, drop, list, info, rebalance, enable, disable, reset, properties.
    Resource(resource::ResourceArgs),
    /// Partitions on an instance: enable, disable, reset; where a partition is.
    Partition(partition::PartitionArgs),
    /// State model definitions of a cluster: add, list, show.
    Statemodel(statemodel::StatemodelArgs),
    /// Scoped configs (CLUSTER, PARTICIPANT, RESOURCE, PARTITION): set, get, rm, watch.
    Config(config::ConfigArgs),
    /// The application property store (`/<C>/PROPERTYSTORE`): get, set, create, ls, rm, watch.
    Propertystore(propertystore::PropertystoreArgs),
    /// Message and state constraints: set, get, rm.
    Constraint(constraint::ConstraintArgs),
    /// Send a message by criteria (`--wait` for replies); exit 1 if any recipient failed.
    Send(send::SendArgs),
    /// Alert rules on the participants' health reports: add, ls, rm.
    Alert(alert::EntryArgs),
    /// Stats the controller aggregates besides the alert rules' own: add, ls, rm.
    Stat(alert::EntryArgs),
    /// The health aggregates, the alert rules with what fires, the last transitions.
    Health(alert::HealthArgs),
    /// Who changed what and when: the administrative writes the store recorded.
    Audit(audit::AuditArgs),
}

/// Runs `strand admin`. The command runs as a task on the runtime's workers, not as the
/// main thread's `block_on` future: an answer (a watch's events above all) is taken up by
/// the worker that read it, with no wake-up of a thread outside the pool.
pub fn run(args: AdminArgs) -> Result<(), CliError> {
    let rt = runtime()?;
    let command = rt.spawn(async move {
        match args.command {
            AdminCommand::Ls(a) => raw::ls(a).await,
            AdminCommand::Get(a) => raw::get(a).await,
            AdminCommand::Put(a) => raw::put(a).await,
            AdminCommand::Rm(a) => raw::rm(a).await,
            AdminCommand::Watch(a) => raw::watch(a).await,
            AdminCommand::Cluster(a) => cluster::run(a).await,
            AdminCommand::Instance(a) => instance::run(a).await,
            AdminCommand::Resource(a) => resource::run(a).await,
            AdminCommand::Partition(a) => partition::run(a).await,
            AdminCommand::Statemodel(a) => statemodel::run(a).await,
            AdminCommand::Config(a) => config::run(a).await,
            AdminCommand::Propertystore(a) => propertystore::run(a).await,
            AdminCommand::Constraint(a) => constraint::run(a).await,
            AdminCommand::Send(a) => send::run(a).await,
            AdminCommand::Alert(a) => alert::run_entries(alert::Entries::Alerts, a).await,
            AdminCommand::Stat(a) => alert::run_entries(alert::Entries::Stats, a).await,
            AdminCommand::Health(a) => alert::run_health(a).await,
            AdminCommand::Audit(a) => audit::run(a).await,
        }
    });
    rt.block_on(command)
        .map_err(|e| CliError::failed(format!("the command stopped: {e}")))?
}
