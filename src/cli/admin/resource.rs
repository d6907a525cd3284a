//! `strand admin resource add|add-ideal-state|drop|list|info|rebalance|enable|disable|reset|property`.

use std::path::PathBuf;

use serde_json::json;

use super::common::{cli_error, read_record, record_value, Common};
use crate::admin::{AddResource, ResourceInfo};
use crate::cli::output::table;
use crate::cli::CliError;
use crate::model::IdealState;

/// Arguments of `strand admin resource`.
#[derive(Debug, clap::Args)]
pub struct ResourceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ResourceCommand,
}

/// A cluster and a resource.
#[derive(Debug, clap::Args)]
pub struct Named {
    /// The cluster.
    pub cluster: String,
    /// The resource.
    pub resource: String,
    #[command(flatten)]
    pub common: Common,
}

/// `strand admin resource …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ResourceCommand {
    /// Add a resource: an ideal state with NUM_PARTITIONS partitions of a state model.
    Add {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// Number of partitions.
        partitions: usize,
        /// State model (MasterSlave, LeaderStandby, OnlineOffline, …).
        state_model: String,
        /// FULL_AUTO, SEMI_AUTO (default) or CUSTOMIZED; Helix's AUTO_REBALANCE, AUTO, CUSTOM too.
        #[arg(long, default_value = "SEMI_AUTO")]
        mode: String,
        /// MAX_PARTITIONS_PER_INSTANCE.
        #[arg(long, value_name = "N")]
        max_partitions_per_instance: Option<usize>,
        /// BUCKET_SIZE.
        #[arg(long, value_name = "N")]
        bucket_size: Option<usize>,
        #[command(flatten)]
        common: Common,
    },
    /// Add a resource from a whole ideal state (Helix JSON; its id must be the resource).
    AddIdealState {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// The JSON file (`-` for standard input).
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Drop a resource (its replicas walk to DROPPED).
    Drop(Named),
    /// List the resources: partitions, replicas, mode, state model.
    List {
        /// The cluster.
        cluster: String,
        /// Only resources with this INSTANCE_GROUP_TAG.
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// A resource's ideal state and external view.
    Info(Named),
    /// Place REPLICAS replicas of every partition over the enabled instances.
    Rebalance {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// Replicas per partition.
        replicas: usize,
        /// Only over instances with this tag (written as INSTANCE_GROUP_TAG).
        #[arg(long)]
        instance_group_tag: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Enable a resource.
    Enable(Named),
    /// Disable a resource (its replicas go to the initial state).
    Disable(Named),
    /// Reset every replica of the resource in ERROR.
    Reset(Named),
    /// Ideal-state properties (simpleFields): set, get, rm.
    Property(PropertyArgs),
}

/// Arguments of `strand admin resource property`.
#[derive(Debug, clap::Args)]
pub struct PropertyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PropertyCommand,
}

/// `strand admin resource property …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PropertyCommand {
    /// Set a property.
    Set {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// The property (a simpleField of the ideal state).
        key: String,
        /// Its value.
        value: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show properties (all, or one).
    Get {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// The property.
        key: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a property.
    Rm {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// The property.
        key: String,
        #[command(flatten)]
        common: Common,
    },
}

/// `helix-admin --listResourceInfo`'s output: the ideal state and the external view as
/// Helix prints them.
pub fn helix_resource_info(info: &ResourceInfo) -> String {
    let mut out = format!(
        "IdealState for {}:\n{}\n\n",
        info.resource,
        info.ideal_state.to_helix_json()
    );
    match &info.external_view {
        Some(ev) => out.push_str(&format!(
            "ExternalView for {}:\n{}\n",
            info.resource,
            ev.to_helix_json()
        )),
        None => out.push_str(&format!("No externalView for {}\n", info.resource)),
    }
    out
}

/// Runs `strand admin resource`.
pub async fn run(args: ResourceArgs) -> Result<(), CliError> {
    match args.command {
        ResourceCommand::Add {
            cluster,
            resource,
            partitions,
            state_model,
            mode,
            max_partitions_per_instance,
            bucket_size,
            common,
        } => {
            let mut spec = AddResource::new(partitions, state_model)
                .mode(AddResource::parse_mode(&mode).map_err(cli_error)?);
            spec.max_partitions_per_instance = max_partitions_per_instance;
            spec.bucket_size = bucket_size;
            let is = common
                .admin()?
                .add_resource(&cluster, &resource, &spec)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("resource {resource} added"),
                json!({ "cluster": cluster, "resource": resource, "ideal_state": is.record.to_value() }),
            );
        }
        ResourceCommand::AddIdealState {
            cluster,
            resource,
            file,
            common,
        } => {
            let record = read_record(&file)?;
            common
                .admin()?
                .add_ideal_state(&cluster, &resource, record)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("resource {resource} added"),
                json!({ "cluster": cluster, "resource": resource, "added": true }),
            );
        }
        ResourceCommand::Drop(n) => {
            n.common
                .admin()?
                .drop_resource(&n.cluster, &n.resource)
                .await
                .map_err(cli_error)?;
            n.common.done(
                format!("resource {} dropped", n.resource),
                json!({ "cluster": n.cluster, "resource": n.resource, "dropped": true }),
            );
        }
        ResourceCommand::List { cluster, tag, common } => {
            let admin = common.admin()?;
            let names = admin
                .list_resources(&cluster, tag.as_deref())
                .await
                .map_err(cli_error)?;
            let mut rows = Vec::new();
            let mut items = Vec::new();
            for n in &names {
                let is = admin.ideal_state(&cluster, n).await.map_err(cli_error)?;
                let (partitions, replicas, mode, sm, enabled) = summary(&is);
                rows.push(vec![
                    n.clone(),
                    partitions.clone(),
                    replicas.clone(),
                    mode.clone(),
                    sm.clone(),
                    enabled.clone(),
                ]);
                items.push(json!({
                    "resource": n, "partitions": partitions, "replicas": replicas,
                    "mode": mode, "state_model": sm, "enabled": enabled == "yes",
                }));
            }
            if common.json() {
                println!("{}", json!({ "cluster": cluster, "resources": items }));
            } else {
                print!(
                    "{}",
                    table(
                        &[
                            "RESOURCE",
                            "PARTITIONS",
                            "REPLICAS",
                            "MODE",
                            "STATE MODEL",
                            "ENABLED"
                        ],
                        &rows
                    )
                );
            }
        }
        ResourceCommand::Info(n) => {
            let info = n
                .common
                .admin()?
                .resource_info(&n.cluster, &n.resource)
                .await
                .map_err(cli_error)?;
            if n.common.json() {
                println!(
                    "{}",
                    json!({
                        "resource": info.resource,
                        "ideal_state": info.ideal_state.to_value(),
                        "external_view": record_value(info.external_view.as_ref()),
                        "config": record_value(info.config.as_ref()),
                    })
                );
            } else {
                print!("{}", helix_resource_info(&info));
            }
        }
        ResourceCommand::Rebalance {
            cluster,
            resource,
            replicas,
            instance_group_tag,
            common,
        } => {
            let is = common
                .admin()?
                .rebalance(&cluster, &resource, replicas, instance_group_tag.as_deref())
                .await
                .map_err(cli_error)?;
            if common.json() {
                println!("{}", is.record.to_value());
            } else {
                println!("IdealState for {resource}:");
                println!("{}", is.record.to_helix_json());
            }
        }
        ResourceCommand::Enable(n) => enable(n, true).await?,
        ResourceCommand::Disable(n) => enable(n, false).await?,
        ResourceCommand::Reset(n) => {
            let sent = n
                .common
                .admin()?
                .reset_resource(&n.cluster, &n.resource)
                .await
                .map_err(cli_error)?;
            super::partition::print_resets(&sent, &n.common);
        }
        ResourceCommand::Property(p) => property(p).await?,
    }
    Ok(())
}

fn summary(is: &IdealState) -> (String, String, String, String, String) {
    let r = &is.record;
    (
        r.simple("NUM_PARTITIONS").unwrap_or("").to_string(),
        r.simple("REPLICAS").unwrap_or("").to_string(),
        is.rebalance_mode()
            .map(|m| m.as_str().to_string())
            .unwrap_or_else(|_| "?".into()),
        r.simple("STATE_MODEL_DEF_REF").unwrap_or("").to_string(),
        if is.enabled().unwrap_or(true) { "yes" } else { "no" }.to_string(),
    )
}

async fn enable(n: Named, enabled: bool) -> Result<(), CliError> {
    n.common
        .admin()?
        .enable_resource(&n.cluster, &n.resource, enabled)
        .await
        .map_err(cli_error)?;
    n.common.done(
        format!(
            "resource {} {}",
            n.resource,
            if enabled { "enabled" } else { "disabled" }
        ),
        json!({ "cluster": n.cluster, "resource": n.resource, "enabled": enabled }),
    );
    Ok(())
}

async fn property(p: PropertyArgs) -> Result<(), CliError> {
    match p.command {
        PropertyCommand::Set {
            cluster,
            resource,
            key,
            value,
            common,
        } => {
            common
                .admin()?
                .set_resource_property(&cluster, &resource, &key, &value)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("resource {resource}: {key}={value}"),
                json!({ "cluster": cluster, "resource": resource, "key": key, "value": value }),
            );
        }
        PropertyCommand::Get {
            cluster,
            resource,
            key,
            common,
        } => {
            let mut props = common
                .admin()?
                .resource_properties(&cluster, &resource)
                .await
                .map_err(cli_error)?;
            if let Some(k) = &key {
                props.retain(|x, _| x == k);
                if props.is_empty() {
                    return Err(CliError::failed(format!(
                        "resource {resource} has no property {k}"
                    )));
                }
            }
            if common.json() {
                println!("{}", json!(props));
            } else {
                let rows: Vec<Vec<String>> = props.into_iter().map(|(k, v)| vec![k, v]).collect();
                print!("{}", table(&["PROPERTY", "VALUE"], &rows));
            }
        }
        PropertyCommand::Rm {
            cluster,
            resource,
            key,
            common,
        } => {
            common
                .admin()?
                .remove_resource_property(&cluster, &resource, &key)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("resource {resource}: {key} removed"),
                json!({ "cluster": cluster, "resource": resource, "key": key, "removed": true }),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Record;

    #[test]
    fn resource_info_prints_like_helix_admin() {
        let mut info = ResourceInfo {
            resource: "myDB".into(),
            ideal_state: Record::new("myDB"),
            external_view: None,
            config: None,
        };
        let empty = "{\n  \"id\" : \"myDB\",\n  \"mapFields\" : {\n  },\n  \"listFields\" : {\n  },\n  \"simpleFields\" : {\n  }\n}";
        assert_eq!(
            helix_resource_info(&info),
            format!("IdealState for myDB:\n{empty}\n\nNo externalView for myDB\n")
        );
        info.external_view = Some(Record::new("myDB"));
        assert_eq!(
            helix_resource_info(&info),
            format!("IdealState for myDB:\n{empty}\n\nExternalView for myDB:\n{empty}\n")
        );
    }
}
