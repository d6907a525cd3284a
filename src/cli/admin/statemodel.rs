//! `strand admin statemodel add|list|show`: the state models of a cluster.

use std::path::PathBuf;

use serde_json::json;

use super::common::{cli_error, read_record, Common};
use crate::cli::output::table;
use crate::cli::CliError;
use crate::statemodel::StateModelDefinition;

/// Arguments of `strand admin statemodel`.
#[derive(Debug, clap::Args)]
pub struct StatemodelArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StatemodelCommand,
}

/// `strand admin statemodel …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StatemodelCommand {
    /// Add a state model from a STATEMODELDEFS record (Helix JSON), validated first.
    Add {
        /// The cluster.
        cluster: String,
        /// The JSON file (`-` for standard input).
        file: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// List the cluster's state models.
    List {
        /// The cluster.
        cluster: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show a state model: states, bounds, transitions (its record with `-o json`).
    Show {
        /// The cluster.
        cluster: String,
        /// The state model.
        name: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs `strand admin statemodel`.
pub async fn run(args: StatemodelArgs) -> Result<(), CliError> {
    match args.command {
        StatemodelCommand::Add {
            cluster,
            file,
            common,
        } => {
            let record = read_record(&file)?;
            let name = record.id.clone();
            common
                .admin()?
                .add_state_model(&cluster, &record)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("state model {name} added"),
                json!({ "cluster": cluster, "state_model": name, "added": true }),
            );
        }
        StatemodelCommand::List { cluster, common } => {
            let names = common
                .admin()?
                .list_state_models(&cluster)
                .await
                .map_err(cli_error)?;
            common.names("STATE MODEL", "state_models", &names);
        }
        StatemodelCommand::Show {
            cluster,
            name,
            common,
        } => {
            let record = common
                .admin()?
                .state_model(&cluster, &name)
                .await
                .map_err(cli_error)?;
            if common.json() {
                common.record(&record);
                return Ok(());
            }
            let def = StateModelDefinition::from_record(&record).map_err(|errors| {
                CliError::failed(format!(
                    "state model {name} is stored but invalid: {}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            })?;
            println!("{} (initial state {})", def.name(), def.initial_state());
            let rows: Vec<Vec<String>> = def
                .states()
                .iter()
                .enumerate()
                .map(|(i, s)| vec![i.to_string(), s.clone(), def.upper_bound(s).as_helix()])
                .collect();
            print!("{}", table(&["PRIORITY", "STATE", "BOUND"], &rows));
            println!();
            let rows: Vec<Vec<String>> = def
                .transitions()
                .iter()
                .enumerate()
                .map(|(i, t)| vec![i.to_string(), t.to_string()])
                .collect();
            print!("{}", table(&["PRIORITY", "TRANSITION"], &rows));
        }
    }
    Ok(())
}
