//! `strand status --cluster C`: one screen of a cluster (leader, epoch, standbys, switches,
//! instances, resources converged or not, alerts that fire). The status is
//! [`crate::admin::Admin::status`]; standbys come from the leading controller's gossip view
//! (asked at the address in its leadership record, or `--node`), shown as unknown when it
//! does not answer.

use std::net::SocketAddr;
use std::time::Duration;

use super::admin::common_parts::{ago, now_ms};
use super::output::{table, OutputFormat};
use super::store::{connect, runtime};
use super::CliError;
use crate::admin::{Admin, ClusterStatus};
use crate::health::format_value;
use crate::model::{Layout, Record};
use crate::participant::register::ADDR_FIELD;
use crate::settings::{Settings, SettingsFlags};

/// Arguments of `strand status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The cluster.
    #[arg(long)]
    pub cluster: String,
    /// A gossip member to ask for standbys (default: the leading controller).
    #[arg(long, value_name = "ADDR")]
    pub node: Option<SocketAddr>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// Runs `strand status`; exits 0 whatever the cluster's state (the output says it).
pub fn run(args: StatusArgs) -> Result<(), CliError> {
    let rt = runtime()?;
    rt.block_on(async move {
        let admin = Admin::new(connect(&args.settings)?);
        let err = |e: crate::admin::AdminError| {
            if e.is_usage() {
                CliError::usage(e)
            } else {
                CliError::failed(e)
            }
        };
        // Standbys: the gossip view of the leader (or of --node).
        let node = match args.node {
            Some(n) => Some(n),
            None => leader_addr(&admin, &args.cluster).await,
        };
        let members = match node {
            Some(n) => {
                let settings = Settings::load(&args.settings).map_err(CliError::failed)?;
                match super::members::fetch(&settings, n, Duration::from_secs(1)).await {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::debug!(error = %e, "asking for the gossip view");
                        None
                    }
                }
            }
            None => None,
        };
        let status = admin
            .status(&args.cluster, members.as_deref())
            .await
            .map_err(err)?;
        match args.output {
            OutputFormat::Json => println!("{}", serde_json::to_value(&status).unwrap_or_default()),
            OutputFormat::Table => print!("{}", render(&status, now_ms())),
        }
        Ok(())
    })
}

async fn leader_addr(admin: &Admin, cluster: &str) -> Option<SocketAddr> {
    crate::admin::validate_name("cluster", cluster).ok()?;
    let r = admin.store().get(&Layout::new(cluster).leader()).await.ok()??;
    let rec = Record::from_stored(&r.value).ok()??;
    rec.simple(ADDR_FIELD)?.parse().ok()
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The screen `strand status` prints.
pub fn render(s: &ClusterStatus, now_ms: u64) -> String {
    let mut out = String::new();
    out.push_str(&format!("cluster     {} (revision {})\n", s.cluster, s.revision));
    match &s.leader {
        Some(l) => out.push_str(&format!(
            "controller  {} leads, epoch {}{}\n",
            l.name,
            l.epoch,
            l.since_ms
                .map(|t| format!(", since {}", ago(now_ms, t)))
                .unwrap_or_default()
        )),
        None => out.push_str("controller  NONE leads\n"),
    }
    let standbys = match &s.standbys {
        Some(v) if v.is_empty() => "none".to_string(),
        Some(v) => v.join(", "),
        None => "unknown (the gossip did not answer)".to_string(),
    };
    out.push_str(&format!("standbys    {standbys}\n"));
    let switch = |name: &str, sw: &Option<crate::http::view::Switch>| match sw {
        Some(sw) => format!(
            "{name}  ON: {}{}\n",
            sw.reason,
            sw.by.as_ref().map(|b| format!(" (by {b})")).unwrap_or_default()
        ),
        None => format!("{name}  off\n"),
    };
    out.push_str(&switch("paused     ", &s.paused));
    out.push_str(&switch("maintenance", &s.maintenance));
    let live = s.instances.iter().filter(|i| i.live).count();
    out.push_str(&format!("\ninstances ({live} of {} live)\n", s.instances.len()));
    let rows: Vec<Vec<String>> = s
        .instances
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                if i.live { "live" } else { "OFFLINE" }.into(),
                yes_no(i.enabled),
                i.zone.clone().unwrap_or_else(|| "-".into()),
                if i.tags.is_empty() {
                    "-".into()
                } else {
                    i.tags.join(",")
                },
                i.replicas.to_string(),
                i.top_states.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &["INSTANCE", "STATUS", "ENABLED", "ZONE", "TAGS", "REPLICAS", "TOP"],
        &rows,
    ));
    let converged = s.resources.iter().filter(|r| r.converged).count();
    out.push_str(&format!(
        "\nresources ({converged} of {} converged)\n",
        s.resources.len()
    ));
    let rows: Vec<Vec<String>> = s
        .resources
        .iter()
        .map(|r| {
            let mut why = Vec::new();
            if r.pending > 0 {
                why.push(format!("{} pending", r.pending));
            }
            if r.errors > 0 {
                why.push(format!("{} ERROR", r.errors));
            }
            if r.differences > 0 {
                why.push(format!("{} differ from the ideal state", r.differences));
            }
            if r.without_top_state > 0 {
                why.push(format!("{} without top state", r.without_top_state));
            }
            vec![
                r.name.clone(),
                r.state_model.clone(),
                r.partitions.to_string(),
                yes_no(r.enabled),
                if r.converged {
                    "yes".into()
                } else {
                    format!("NO: {}", why.join(", "))
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &["RESOURCE", "STATE MODEL", "PARTITIONS", "ENABLED", "CONVERGED"],
        &rows,
    ));
    if s.alerts.is_empty() {
        out.push_str("\nalerts      none firing\n");
    } else {
        out.push_str(&format!("\nalerts ({} firing)\n", s.alerts.len()));
        let rows: Vec<Vec<String>> = s
            .alerts
            .iter()
            .map(|a| {
                vec![
                    a.rule.clone(),
                    a.scope.clone(),
                    format_value(a.value),
                    ago(now_ms, a.since_ms),
                ]
            })
            .collect();
        out.push_str(&table(&["RULE", "SCOPE", "VALUE", "SINCE"], &rows));
    }
    out
}
