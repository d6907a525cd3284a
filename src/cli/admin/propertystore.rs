//! `strand admin propertystore get|set|create|ls|rm|watch --cluster C PATH`: the application
//! property store (`/<C>/PROPERTYSTORE`), with application paths (`/myapp/settings`).

use serde_json::json;

use super::common::Common;
use crate::cli::output::table;
use crate::cli::store::connect;
use crate::cli::CliError;
use crate::config::{AppChange, AppPropertyStore, AppValue, ConfigError};

/// Arguments of `strand admin propertystore`.
#[derive(Debug, clap::Args)]
pub struct PropertystoreArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PropertystoreCommand,
}

/// The cluster and the application path.
#[derive(Debug, clap::Args)]
pub struct AppPathArgs {
    /// The cluster.
    #[arg(long)]
    pub cluster: String,
    /// The application path (`/` is the store's root).
    pub path: String,
}

/// `strand admin propertystore …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PropertystoreCommand {
    /// Print a value (as text when it is UTF-8) and its version.
    Get {
        #[command(flatten)]
        at: AppPathArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Write a value (created if absent).
    Set {
        #[command(flatten)]
        at: AppPathArgs,
        /// The value (text).
        value: String,
        /// Only if the path is at this version (0: only if absent).
        #[arg(long)]
        if_version: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
    /// Create a value; fails if the path exists.
    Create {
        #[command(flatten)]
        at: AppPathArgs,
        /// The value (text).
        value: String,
        #[command(flatten)]
        common: Common,
    },
    /// List a path's children.
    Ls {
        #[command(flatten)]
        at: AppPathArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a path and everything under it.
    Rm {
        #[command(flatten)]
        at: AppPathArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Print each change of a path (or, with --subtree, of everything under it) as a line.
    Watch {
        #[command(flatten)]
        at: AppPathArgs,
        /// Also changes under the path.
        #[arg(long)]
        subtree: bool,
        /// Stop after this many changes.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
}

fn app_error(e: ConfigError) -> CliError {
    if e.is_usage() {
        CliError::usage(e)
    } else {
        CliError::failed(e)
    }
}

fn text(value: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(value) {
        Ok(s) => json!(s),
        Err(_) => json!({ "bytes": value }),
    }
}

fn value_json(path: &str, v: &AppValue) -> serde_json::Value {
    json!({ "path": path, "value": text(&v.value), "version": v.version, "revision": v.revision })
}

fn open(at: &AppPathArgs, common: &Common) -> Result<AppPropertyStore, CliError> {
    crate::admin::validate_name("cluster", &at.cluster).map_err(super::common::cli_error)?;
    Ok(AppPropertyStore::new(connect(&common.settings)?, &at.cluster))
}

/// Runs `strand admin propertystore`.
pub async fn run(args: PropertystoreArgs) -> Result<(), CliError> {
    match args.command {
        PropertystoreCommand::Get { at, common } => {
            let store = open(&at, &common)?;
            let v = store
                .get_fresh(&at.path)
                .await
                .map_err(app_error)?
                .ok_or_else(|| {
                    CliError::failed(format!(
                        "{} does not exist in {}'s property store",
                        at.path, at.cluster
                    ))
                })?;
            if common.json() {
                println!("{}", value_json(&at.path, &v));
            } else {
                println!("{}", String::from_utf8_lossy(&v.value));
                eprintln!("version {}, revision {}", v.version, v.revision);
            }
        }
        PropertystoreCommand::Set {
            at,
            value,
            if_version,
            common,
        } => {
            let store = open(&at, &common)?;
            let v = match if_version {
                Some(n) => store.set_if(&at.path, value.as_bytes(), n).await,
                None => store.set(&at.path, value.as_bytes()).await,
            }
            .map_err(app_error)?;
            common.done(
                format!("{}: version {}", at.path, v.version),
                value_json(&at.path, &v),
            );
        }
        PropertystoreCommand::Create { at, value, common } => {
            let store = open(&at, &common)?;
            let v = store
                .create(&at.path, value.as_bytes())
                .await
                .map_err(app_error)?;
            common.done(format!("{}: created", at.path), value_json(&at.path, &v));
        }
        PropertystoreCommand::Ls { at, common } => {
            let store = open(&at, &common)?;
            let names = store.children(&at.path).await.map_err(app_error)?;
            if common.json() {
                println!("{}", json!({ "path": at.path, "children": names }));
            } else {
                let rows: Vec<Vec<String>> = names.into_iter().map(|n| vec![n]).collect();
                print!("{}", table(&["NAME"], &rows));
            }
        }
        PropertystoreCommand::Rm { at, common } => {
            let store = open(&at, &common)?;
            let n = store.remove(&at.path).await.map_err(app_error)?;
            common.done(
                format!("{}: {n} key(s) removed", at.path),
                json!({ "path": at.path, "removed": n }),
            );
        }
        PropertystoreCommand::Watch {
            at,
            subtree,
            count,
            common,
        } => {
            let store = open(&at, &common)?;
            let mut watch = store.watch(&at.path, subtree).await.map_err(app_error)?;
            let mut seen = 0u64;
            while count.is_none_or(|n| seen < n) {
                for e in watch.next_batch().await.map_err(app_error)? {
                    let (kind, value) = match &e.change {
                        AppChange::Put(v) => ("put", Some(v)),
                        AppChange::Deleted => ("delete", None),
                    };
                    if common.json() {
                        println!(
                            "{}",
                            json!({
                                "revision": e.revision,
                                "path": e.path,
                                "kind": kind,
                                "value": value.map(|v| text(&v.value)),
                                "version": value.map(|v| v.version),
                            })
                        );
                    } else {
                        let shown = value.map_or(String::new(), |v| {
                            format!(" {:?}", String::from_utf8_lossy(&v.value))
                        });
                        println!("{} {kind} {}{shown}", e.revision, e.path);
                    }
                    seen += 1;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Args;

    #[test]
    fn the_config_and_propertystore_commands_are_well_formed() {
        super::PropertystoreArgs::augment_args(clap::Command::new("propertystore")).debug_assert();
        super::super::config::ConfigArgs::augment_args(clap::Command::new("config")).debug_assert();
        crate::cli::bench::config_notify::ConfigBenchArgs::augment_args(clap::Command::new("bench"))
            .debug_assert();
    }
}
