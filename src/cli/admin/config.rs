//! `strand admin config set|get|rm|watch --scope SCOPE …`: scoped configs.
//!
//! SCOPE is `CLUSTER=C[,PARTICIPANT=I|,RESOURCE=R[,PARTITION=P]]`, or strand's short
//! `PARTICIPANT=C,I`, `RESOURCE=C,R`, `PARTITION=C,R,P`. It may also come as the first
//! argument instead of `--scope` (`config set RESOURCE=C,myDB k1=v1`). For `watch`, a `*`
//! name watches every scope of that kind (`CLUSTER=C,PARTICIPANT=*`).

use serde_json::json;

use super::common::{cli_error, Common};
use crate::admin::{parse_key_values, parse_keys, ConfigScope, ConfigScopeType};
use crate::cli::output::table;
use crate::cli::CliError;
use crate::config::{ConfigAccessor, ConfigChange, ConfigError, ConfigFilter, ConfigStart};

/// Arguments of `strand admin config`.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// The scope, by flag or as the first argument.
#[derive(Debug, clap::Args)]
pub struct ScopeArgs {
    /// CLUSTER=C[,PARTICIPANT=I|,RESOURCE=R[,PARTITION=P]] (or give it as the first argument).
    #[arg(long)]
    pub scope: Option<String>,
    /// [SCOPE] and then what the command takes.
    pub args: Vec<String>,
}

/// `strand admin config …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Set keys: `config set --scope CLUSTER=C,RESOURCE=myDB k1=v1,k2=v2`.
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Show keys (all, or those listed as k1,k2).
    Get {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Remove keys (k1,k2).
    Rm {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        common: Common,
    },
    /// Print every change of a scope (or, with `*` as a name, of every scope of a kind) as a
    /// line, in store order; JSON lines with `-o json`.
    Watch {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Start at this store revision (a previous line's revision + 1) instead of now.
        #[arg(long)]
        from: Option<u64>,
        /// Stop after this many changes.
        #[arg(long)]
        count: Option<u64>,
        /// Add the time each change was received (`received_unix_us`), for latency checks.
        #[arg(long)]
        timestamps: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// The scope text and the remaining arguments; at most `max_rest` of them.
fn scope_and_rest(a: ScopeArgs, max_rest: usize) -> Result<(String, Vec<String>), CliError> {
    let (scope, rest) = match a.scope {
        Some(s) => (s, a.args),
        None => {
            let mut args = a.args.into_iter();
            let s = args.next().ok_or_else(|| {
                CliError::usage("name the scope: --scope CLUSTER=C[,PARTICIPANT=I|,RESOURCE=R[,PARTITION=P]]")
            })?;
            (s, args.collect())
        }
    };
    if rest.len() > max_rest {
        return Err(CliError::usage(format!(
            "unexpected arguments: {}",
            rest[max_rest..].join(" ")
        )));
    }
    Ok((scope, rest))
}

/// A watch filter: a scope, or every scope of a kind when a name is `*`.
pub fn parse_filter(text: &str) -> Result<ConfigFilter, ConfigError> {
    if !text.contains('*') {
        return Ok(ConfigFilter::Scope(ConfigScope::parse(text)?));
    }
    // Parse with two stand-in names: the kind and cluster are what they agree on.
    let scope = ConfigScope::parse(&text.replace('*', "a"))?;
    let other = ConfigScope::parse(&text.replace('*', "b"))?;
    if scope.cluster() != other.cluster() {
        return Err(crate::admin::AdminError::InvalidArgument {
            what: format!("config scope {text:?}"),
            reason: "the cluster cannot be '*'".into(),
        }
        .into());
    }
    let kind = scope.kind();
    if kind == ConfigScopeType::Cluster {
        return Ok(ConfigFilter::Scope(scope));
    }
    Ok(ConfigFilter::Kind {
        cluster: scope.cluster().to_string(),
        kind,
    })
}

fn config_cli_error(e: ConfigError) -> CliError {
    match e {
        ConfigError::Admin(e) => cli_error(e),
        e if e.is_usage() => CliError::usage(e),
        e => CliError::failed(e),
    }
}

/// A change as one line of JSON.
pub fn change_json(c: &ConfigChange, received_unix_us: Option<u64>) -> serde_json::Value {
    let mut v = json!({
        "scope": c.scope.to_string(),
        "key": c.key,
        "old": c.old,
        "new": c.new,
        "revision": c.revision,
    });
    if let Some(t) = received_unix_us {
        v["received_unix_us"] = json!(t);
    }
    v
}

/// Runs `strand admin config`.
pub async fn run(args: ConfigArgs) -> Result<(), CliError> {
    match args.command {
        ConfigCommand::Set { scope, common } => {
            let (scope, rest) = scope_and_rest(scope, 1)?;
            let scope = ConfigScope::parse(&scope).map_err(cli_error)?;
            let values = rest
                .first()
                .ok_or_else(|| CliError::usage("give the keys to set: k1=v1,k2=v2"))?;
            let values = parse_key_values(values).map_err(cli_error)?;
            ConfigAccessor::from_admin(common.admin()?)
                .set(&scope, &values)
                .await
                .map_err(config_cli_error)?;
            common.done(
                format!("{scope}: {} key(s) set", values.len()),
                json!({ "scope": scope.to_string(), "set": values }),
            );
        }
        ConfigCommand::Get { scope, common } => {
            let (scope, rest) = scope_and_rest(scope, 1)?;
            let scope = ConfigScope::parse(&scope).map_err(cli_error)?;
            let keys = rest.first().map(|k| parse_keys(k)).unwrap_or_default();
            let values = ConfigAccessor::from_admin(common.admin()?)
                .get(&scope, &keys)
                .await
                .map_err(config_cli_error)?;
            if common.json() {
                println!("{}", json!({ "scope": scope.to_string(), "values": values }));
            } else {
                let rows: Vec<Vec<String>> = values.into_iter().map(|(k, v)| vec![k, v]).collect();
                print!("{}", table(&["KEY", "VALUE"], &rows));
            }
        }
        ConfigCommand::Rm { scope, common } => {
            let (scope, rest) = scope_and_rest(scope, 1)?;
            let scope = ConfigScope::parse(&scope).map_err(cli_error)?;
            let keys = rest.first().map(|k| parse_keys(k)).unwrap_or_default();
            if keys.is_empty() {
                return Err(CliError::usage("name the keys to remove: k1,k2"));
            }
            ConfigAccessor::from_admin(common.admin()?)
                .remove(&scope, &keys)
                .await
                .map_err(config_cli_error)?;
            common.done(
                format!("{scope}: {} removed", keys.join(", ")),
                json!({ "scope": scope.to_string(), "removed": keys }),
            );
        }
        ConfigCommand::Watch {
            scope,
            from,
            count,
            timestamps,
            common,
        } => {
            let (scope, _) = scope_and_rest(scope, 0)?;
            let filter = parse_filter(&scope).map_err(config_cli_error)?;
            let start = from.map_or(ConfigStart::Now, ConfigStart::From);
            let mut sub = ConfigAccessor::from_admin(common.admin()?)
                .subscribe(filter, start)
                .await
                .map_err(config_cli_error)?;
            let mut seen = 0u64;
            while count.is_none_or(|n| seen < n) {
                let batch = sub.next_batch().await.map_err(config_cli_error)?;
                let at = timestamps.then(crate::participant::now_us);
                if let Some(c) = batch.first() {
                    crate::telemetry::marks::mark(crate::telemetry::marks::Stage::Delivered, c.revision);
                }
                for c in batch {
                    if common.json() {
                        println!("{}", change_json(&c, at));
                    } else {
                        let show = |v: &Option<String>| {
                            v.as_deref().map_or("(unset)".to_string(), |v| format!("{v:?}"))
                        };
                        println!(
                            "{} {} {}: {} -> {}",
                            c.revision,
                            c.scope,
                            c.key,
                            show(&c.old),
                            show(&c.new)
                        );
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
    use super::*;

    #[test]
    fn a_star_name_watches_every_scope_of_its_kind() {
        assert_eq!(
            parse_filter("CLUSTER=C,PARTICIPANT=*").unwrap(),
            ConfigFilter::Kind {
                cluster: "C".into(),
                kind: ConfigScopeType::Participant
            }
        );
        assert_eq!(
            parse_filter("PARTITION=C,db,*").unwrap(),
            ConfigFilter::Kind {
                cluster: "C".into(),
                kind: ConfigScopeType::Partition
            }
        );
        assert!(matches!(
            parse_filter("RESOURCE=C,db").unwrap(),
            ConfigFilter::Scope(_)
        ));
        assert!(parse_filter("CLUSTER=*").unwrap_err().is_usage());
        assert!(parse_filter("NODE=C,*").unwrap_err().is_usage());
    }
}
