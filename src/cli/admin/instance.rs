//! `strand admin instance add|drop|list|info|enable|disable|tag|untag|zone|weight|reset|swap`.

use serde_json::json;

use super::common::{cli_error, record_value, yes_no, Common};
use crate::admin::Admin;
use crate::cli::output::table;
use crate::cli::CliError;

/// Arguments of `strand admin instance`.
#[derive(Debug, clap::Args)]
pub struct InstanceArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: InstanceCommand,
}

/// `strand admin instance …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum InstanceCommand {
    /// Register instances (`host:port` becomes `host_port`).
    Add {
        /// The cluster.
        cluster: String,
        /// Instances, as host:port or names.
        #[arg(required = true)]
        instances: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Remove an instance (it must be disabled and not live).
    Drop {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        #[command(flatten)]
        common: Common,
    },
    /// List the instances: enabled, live, tags, zone.
    List {
        /// The cluster.
        cluster: String,
        /// Only instances with this tag.
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// An instance's config, session and current states.
    Info {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        #[command(flatten)]
        common: Common,
    },
    /// Enable an instance.
    Enable {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        #[command(flatten)]
        common: Common,
    },
    /// Disable an instance: its replicas go to the initial state.
    Disable {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        #[command(flatten)]
        common: Common,
    },
    /// Add a tag to an instance.
    Tag {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        /// The tag.
        tag: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a tag from an instance.
    Untag {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        /// The tag.
        tag: String,
        #[command(flatten)]
        common: Common,
    },
    /// Set an instance's fault zone (no zone: clear it).
    Zone {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        /// The zone.
        zone: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Set an instance's weight (no weight: clear it).
    Weight {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        /// The weight.
        weight: Option<u32>,
        #[command(flatten)]
        common: Common,
    },
    /// Reset every replica the instance holds in ERROR.
    Reset {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
        #[command(flatten)]
        common: Common,
    },
    /// Put a new instance in an old one's place in every SEMI_AUTO and CUSTOMIZED resource.
    Swap {
        /// The cluster.
        cluster: String,
        /// The instance leaving (disabled, not live).
        old: String,
        /// The instance taking its place.
        new: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs `strand admin instance`.
pub async fn run(args: InstanceArgs) -> Result<(), CliError> {
    match args.command {
        InstanceCommand::Add {
            cluster,
            instances,
            common,
        } => {
            let admin = common.admin()?;
            let mut added = Vec::new();
            for i in &instances {
                added.push(admin.add_instance(&cluster, i).await.map_err(cli_error)?);
            }
            common.done(
                added
                    .iter()
                    .map(|n| format!("instance {n} added"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                json!({ "cluster": cluster, "added": added }),
            );
        }
        InstanceCommand::Drop {
            cluster,
            instance,
            common,
        } => {
            common
                .admin()?
                .drop_instance(&cluster, &instance)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("instance {instance} dropped"),
                json!({ "cluster": cluster, "instance": instance, "dropped": true }),
            );
        }
        InstanceCommand::List { cluster, tag, common } => {
            list(&common.admin()?, &cluster, tag.as_deref(), &common).await?
        }
        InstanceCommand::Info {
            cluster,
            instance,
            common,
        } => {
            let d = common
                .admin()?
                .instance_info(&cluster, &instance)
                .await
                .map_err(cli_error)?;
            if common.json() {
                println!(
                    "{}",
                    json!({
                        "instance": d.instance,
                        "config": d.config.to_value(),
                        "live": record_value(d.live.as_ref()),
                        "session": d.session,
                        "current_states": d.current_states,
                    })
                );
            } else {
                println!("InstanceConfig: {}", d.config.to_helix_json());
                match &d.session {
                    Some(s) => println!("live, session {s}"),
                    None => println!("not live"),
                }
                let rows: Vec<Vec<String>> = d
                    .current_states
                    .iter()
                    .flat_map(|(r, parts)| {
                        parts
                            .iter()
                            .map(move |(p, s)| vec![r.clone(), p.clone(), s.clone()])
                    })
                    .collect();
                if !rows.is_empty() {
                    print!("{}", table(&["RESOURCE", "PARTITION", "STATE"], &rows));
                }
            }
        }
        InstanceCommand::Enable {
            cluster,
            instance,
            common,
        } => enable(&cluster, &instance, true, &common).await?,
        InstanceCommand::Disable {
            cluster,
            instance,
            common,
        } => enable(&cluster, &instance, false, &common).await?,
        InstanceCommand::Tag {
            cluster,
            instance,
            tag,
            common,
        } => {
            common
                .admin()?
                .add_instance_tag(&cluster, &instance, &tag)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("instance {instance}: tag {tag} added"),
                json!({ "cluster": cluster, "instance": instance, "tag": tag, "tagged": true }),
            );
        }
        InstanceCommand::Untag {
            cluster,
            instance,
            tag,
            common,
        } => {
            common
                .admin()?
                .remove_instance_tag(&cluster, &instance, &tag)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("instance {instance}: tag {tag} removed"),
                json!({ "cluster": cluster, "instance": instance, "tag": tag, "tagged": false }),
            );
        }
        InstanceCommand::Zone {
            cluster,
            instance,
            zone,
            common,
        } => {
            common
                .admin()?
                .set_instance_zone(&cluster, &instance, zone.as_deref())
                .await
                .map_err(cli_error)?;
            common.done(
                format!(
                    "instance {instance}: zone {}",
                    zone.as_deref().unwrap_or("cleared")
                ),
                json!({ "cluster": cluster, "instance": instance, "zone": zone }),
            );
        }
        InstanceCommand::Weight {
            cluster,
            instance,
            weight,
            common,
        } => {
            common
                .admin()?
                .set_instance_weight(&cluster, &instance, weight)
                .await
                .map_err(cli_error)?;
            common.done(
                format!(
                    "instance {instance}: weight {}",
                    weight.map_or("cleared".to_string(), |w| w.to_string())
                ),
                json!({ "cluster": cluster, "instance": instance, "weight": weight }),
            );
        }
        InstanceCommand::Reset {
            cluster,
            instance,
            common,
        } => {
            let sent = common
                .admin()?
                .reset_instance(&cluster, &instance)
                .await
                .map_err(cli_error)?;
            super::partition::print_resets(&sent, &common);
        }
        InstanceCommand::Swap {
            cluster,
            old,
            new,
            common,
        } => {
            let changed = common
                .admin()?
                .swap_instance(&cluster, &old, &new)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("instance {new} replaces {old} in {} resource(s)", changed.len()),
                json!({ "cluster": cluster, "old": old, "new": new, "resources": changed }),
            );
        }
    }
    Ok(())
}

async fn enable(cluster: &str, instance: &str, enabled: bool, common: &Common) -> Result<(), CliError> {
    common
        .admin()?
        .enable_instance(cluster, instance, enabled)
        .await
        .map_err(cli_error)?;
    common.done(
        format!(
            "instance {instance} {}",
            if enabled { "enabled" } else { "disabled" }
        ),
        json!({ "cluster": cluster, "instance": instance, "enabled": enabled }),
    );
    Ok(())
}

async fn list(admin: &Admin, cluster: &str, tag: Option<&str>, common: &Common) -> Result<(), CliError> {
    let names = admin.list_instances(cluster, tag).await.map_err(cli_error)?;
    let live = admin.live_instances(cluster).await.map_err(cli_error)?;
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for n in &names {
        let c = admin.instance_config(cluster, n).await.map_err(cli_error)?;
        let enabled = c.enabled().unwrap_or(true);
        let is_live = live.contains(n);
        rows.push(vec![
            n.clone(),
            yes_no(enabled),
            yes_no(is_live),
            c.tags().join(","),
            c.zone().unwrap_or("").to_string(),
        ]);
        items.push(json!({
            "instance": n,
            "enabled": enabled,
            "live": is_live,
            "tags": c.tags(),
            "zone": c.zone(),
        }));
    }
    if common.json() {
        println!("{}", json!({ "cluster": cluster, "instances": items }));
    } else {
        print!(
            "{}",
            table(&["INSTANCE", "ENABLED", "LIVE", "TAGS", "ZONE"], &rows)
        );
    }
    Ok(())
}
