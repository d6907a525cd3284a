//! `strand admin alert add|ls|rm` (alert rules) and `strand admin stat add|ls|rm` (stats
//! aggregated besides the rules'); `strand admin health` prints the aggregates.

use serde_json::json;

use super::common::{cli_error, Common};
use crate::admin::HealthOverview;
use crate::cli::output::table;
use crate::cli::CliError;
use crate::health::format_value;

/// Which configured entries `strand admin alert|stat` works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entries {
    /// Alert rules.
    Alerts,
    /// Stats aggregated besides the rules' own.
    Stats,
}

impl Entries {
    fn noun(self) -> &'static str {
        match self {
            Entries::Alerts => "alert rule",
            Entries::Stats => "stat",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Entries::Alerts => "rule",
            Entries::Stats => "stat",
        }
    }
}

/// Arguments of `strand admin alert` and `strand admin stat`.
#[derive(Debug, clap::Args)]
pub struct EntryArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: EntryCommand,
}

/// `strand admin alert|stat …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum EntryCommand {
    /// Add one: `alert add --cluster C 'AVG(latency_ms)[RESOURCE=*] > 50'` (SUM, AVG,
    /// EXPONENTIAL(α), WINDOW(n); INSTANCE, RESOURCE, PARTITION with * patterns;
    /// > >= < <= ==), `stat add --cluster C 'WINDOW(5)(latency_ms)'`.
    Add {
        /// The cluster.
        #[arg(long)]
        cluster: String,
        /// The rule or the stat.
        text: String,
        #[command(flatten)]
        common: Common,
    },
    /// List them (rules with what of each fires).
    Ls {
        /// The cluster.
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove one, as added (any spelling of it).
    Rm {
        /// The cluster.
        #[arg(long)]
        cluster: String,
        /// The rule or the stat.
        text: String,
        #[command(flatten)]
        common: Common,
    },
}

/// Arguments of `strand admin health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// The cluster.
    #[arg(long)]
    pub cluster: String,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `strand admin alert` or `strand admin stat`.
pub async fn run_entries(entries: Entries, args: EntryArgs) -> Result<(), CliError> {
    match args.command {
        EntryCommand::Add {
            cluster,
            text,
            common,
        } => {
            let admin = common.admin()?;
            let added = match entries {
                Entries::Alerts => admin.add_alert(&cluster, &text).await.map(|r| r.text()),
                Entries::Stats => admin.add_stat(&cluster, &text).await.map(|s| s.to_string()),
            }
            .map_err(cli_error)?;
            common.done(
                format!("{} {added} added", entries.noun()),
                json!({ "cluster": cluster, entries.key(): added }),
            );
        }
        EntryCommand::Ls { cluster, common } => {
            let o = common.admin()?.health(&cluster).await.map_err(cli_error)?;
            match entries {
                Entries::Alerts if common.json() => {
                    println!("{}", json!({ "cluster": cluster, "alerts": o.alerts }))
                }
                Entries::Alerts => print!("{}", alerts_table(&o)),
                Entries::Stats => common.names("STAT", "stats", &o.stats),
            }
        }
        EntryCommand::Rm {
            cluster,
            text,
            common,
        } => {
            let admin = common.admin()?;
            match entries {
                Entries::Alerts => admin.remove_alert(&cluster, &text).await,
                Entries::Stats => admin.remove_stat(&cluster, &text).await,
            }
            .map_err(cli_error)?;
            common.done(
                format!("{} {text} removed", entries.noun()),
                json!({ "cluster": cluster, entries.key(): text, "removed": true }),
            );
        }
    }
    Ok(())
}

/// Runs `strand admin health`.
pub async fn run_health(args: HealthArgs) -> Result<(), CliError> {
    let o = args
        .common
        .admin()?
        .health(&args.cluster)
        .await
        .map_err(cli_error)?;
    if args.common.json() {
        println!("{}", serde_json::to_value(&o).unwrap_or_default());
        return Ok(());
    }
    let now = now_ms();
    let rows: Vec<Vec<String>> = o
        .aggregates
        .iter()
        .map(|a| {
            vec![
                a.stat.clone(),
                a.scope.clone(),
                format_value(a.value),
                a.count.to_string(),
                ago(now, a.updated_ms),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no aggregates yet (add a rule with `strand admin alert add` or a stat with `strand admin stat add`)");
    } else {
        print!(
            "{}",
            table(&["STAT", "SCOPE", "VALUE", "COUNT", "UPDATED"], &rows)
        );
    }
    if !o.alerts.is_empty() {
        println!();
        print!("{}", alerts_table(&o));
    }
    if !o.history.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = o
            .history
            .iter()
            .rev()
            .take(10)
            .map(|h| {
                vec![
                    ago(now, h.at_ms),
                    h.event.clone(),
                    h.rule.clone(),
                    h.scope.clone(),
                    h.value.map(format_value).unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        print!("{}", table(&["WHEN", "EVENT", "RULE", "SCOPE", "VALUE"], &rows));
    }
    Ok(())
}

fn alerts_table(o: &HealthOverview) -> String {
    let now = now_ms();
    let mut rows = Vec::new();
    for a in &o.alerts {
        if let Some(why) = &a.invalid {
            rows.push(vec![
                a.rule.clone(),
                "INVALID".into(),
                why.clone(),
                String::new(),
                String::new(),
            ]);
        } else if a.firing.is_empty() {
            rows.push(vec![
                a.rule.clone(),
                "ok".into(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for f in &a.firing {
            rows.push(vec![
                a.rule.clone(),
                "FIRING".into(),
                f.scope.clone(),
                format_value(f.value),
                ago(now, f.since_ms),
            ]);
        }
    }
    table(&["RULE", "STATE", "SCOPE", "VALUE", "SINCE"], &rows)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `3s ago`, `2m ago`, `-` for 0.
pub fn ago(now_ms: u64, at_ms: u64) -> String {
    if at_ms == 0 {
        return "-".into();
    }
    let s = now_ms.saturating_sub(at_ms) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}
