//! `strand admin config set|get|rm SCOPE …`: scoped configs.
//!
//! SCOPE is `CLUSTER=C`, `PARTICIPANT=C,INSTANCE`, `RESOURCE=C,R` or `PARTITION=C,R,P`
//! (Helix's `CLUSTER=C,RESOURCE=R` works too).

use serde_json::json;

use super::common::{cli_error, Common};
use crate::admin::{parse_key_values, parse_keys, ConfigScope};
use crate::cli::output::table;
use crate::cli::CliError;

/// Arguments of `strand admin config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `strand admin config …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Set keys: `config set RESOURCE=C,myDB k1=v1,k2=v2`.
    Set {
        /// CLUSTER=C, PARTICIPANT=C,I, RESOURCE=C,R or PARTITION=C,R,P.
        scope: String,
        /// k1=v1,k2=v2.
        values: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show keys (all, or those listed as k1,k2).
    Get {
        /// CLUSTER=C, PARTICIPANT=C,I, RESOURCE=C,R or PARTITION=C,R,P.
        scope: String,
        /// k1,k2 (default: all).
        keys: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Remove keys (k1,k2).
    Rm {
        /// CLUSTER=C, PARTICIPANT=C,I, RESOURCE=C,R or PARTITION=C,R,P.
        scope: String,
        /// k1,k2.
        keys: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Runs `strand admin config`.
pub async fn run(args: ConfigArgs) -> Result<(), CliError> {
    match args.command {
        ConfigCommand::Set {
            scope,
            values,
            common,
        } => {
            let scope = ConfigScope::parse(&scope).map_err(cli_error)?;
            let values = parse_key_values(&values).map_err(cli_error)?;
            common
                .admin()?
                .set_config(&scope, &values)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("{scope}: {} key(s) set", values.len()),
                json!({ "scope": scope.to_string(), "set": values }),
            );
        }
        ConfigCommand::Get { scope, keys, common } => {
            let scope = ConfigScope::parse(&scope).map_err(cli_error)?;
            let keys = keys.as_deref().map(parse_keys).unwrap_or_default();
            let values = common
                .admin()?
                .get_config(&scope, &keys)
                .await
                .map_err(cli_error)?;
            if common.json() {
                println!("{}", json!({ "scope": scope.to_string(), "values": values }));
            } else {
                let rows: Vec<Vec<String>> = values.into_iter().map(|(k, v)| vec![k, v]).collect();
                print!("{}", table(&["KEY", "VALUE"], &rows));
            }
        }
        ConfigCommand::Rm { scope, keys, common } => {
            let scope = ConfigScope::parse(&scope).map_err(cli_error)?;
            let keys = parse_keys(&keys);
            if keys.is_empty() {
                return Err(CliError::usage("name the keys to remove: k1,k2"));
            }
            common
                .admin()?
                .remove_config(&scope, &keys)
                .await
                .map_err(cli_error)?;
            common.done(
                format!("{scope}: {} removed", keys.join(", ")),
                json!({ "scope": scope.to_string(), "removed": keys }),
            );
        }
    }
    Ok(())
}
