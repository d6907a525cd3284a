//! `strand admin constraint set|get|rm`: message and state constraints.

use serde_json::json;

use super::common::{cli_error, Common};
use crate::admin::{parse_constraint_type, parse_key_values};
use crate::cli::output::table;
use crate::cli::CliError;

/// Arguments of `strand admin constraint`.
#[derive(Debug, clap::Args)]
pub struct ConstraintArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConstraintCommand,
}

/// `strand admin constraint …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConstraintCommand {
    /// Add or replace a constraint: `constraint set C MESSAGE_CONSTRAINT c1
    /// MESSAGE_TYPE=STATE_TRANSITION,INSTANCE=.*,CONSTRAINT_VALUE=10`.
    Set {
        /// The cluster.
        cluster: String,
        /// MESSAGE_CONSTRAINT or STATE_CONSTRAINT.
        constraint_type: String,
        /// The constraint's id.
        id: String,
        /// Attributes and CONSTRAINT_VALUE, as k1=v1,k2=v2.
        attributes: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show the constraints of a type.
    Get {
        /// The cluster.
        cluster: String,
        /// MESSAGE_CONSTRAINT or STATE_CONSTRAINT.
        constraint_type: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a constraint.
    Rm {
        /// The cluster.
        cluster: String,
        /// MESSAGE_CONSTRAINT or STATE_CONSTRAINT.
        constraint_type: String,
        /// The constraint's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs `strand admin constraint`.
pub async fn run(args: ConstraintArgs) -> Result<(), CliError> {
    match args.command {
        ConstraintCommand::Set {
            cluster,
            constraint_type,
            id,
            attributes,
            common,
        } => {
            let t = parse_constraint_type(&constraint_type).map_err(cli_error)?;
            let attributes = parse_key_values(&attributes).map_err(cli_error)?;
            common
                .admin()?
                .set_constraint(&cluster, t, &id, &attributes)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("{} {id} set", t.as_str()),
                json!({ "cluster": cluster, "type": t.as_str(), "id": id, "attributes": attributes }),
            );
        }
        ConstraintCommand::Get {
            cluster,
            constraint_type,
            common,
        } => {
            let t = parse_constraint_type(&constraint_type).map_err(cli_error)?;
            let c = common
                .admin()?
                .constraints(&cluster, t)
                .await
                .map_err(cli_error)?;
            if common.json() {
                common.record(&c.record);
            } else {
                let rows: Vec<Vec<String>> = c
                    .record
                    .map_fields
                    .iter()
                    .map(|(id, attrs)| {
                        let value = attrs.get("CONSTRAINT_VALUE").cloned().unwrap_or_default();
                        let rest = attrs
                            .iter()
                            .filter(|(k, _)| *k != "CONSTRAINT_VALUE")
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(",");
                        vec![id.clone(), rest, value]
                    })
                    .collect();
                print!("{}", table(&["ID", "ATTRIBUTES", "VALUE"], &rows));
            }
        }
        ConstraintCommand::Rm {
            cluster,
            constraint_type,
            id,
            common,
        } => {
            let t = parse_constraint_type(&constraint_type).map_err(cli_error)?;
            common
                .admin()?
                .remove_constraint(&cluster, t, &id)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("{} {id} removed", t.as_str()),
                json!({ "cluster": cluster, "type": t.as_str(), "id": id, "removed": true }),
            );
        }
    }
    Ok(())
}
