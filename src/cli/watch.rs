//! `strand watch --cluster C [--resource R] [-o json]`: the live external view. On a
//! terminal it is redrawn in place (one table per resource: partition, then each instance's
//! state); with `-o json`, or when stdout is not a terminal, one JSON line per change:
//! `{"revision":…,"resource":…,"mapFields":{…}}`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::node_setup::{self, NodeSettings};
use super::output::{table, OutputFormat};
use super::CliError;
use crate::model::sort_partitions;
use crate::spectator::{RoutingTable, Spectator};

/// Arguments of `strand watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The cluster.
    #[arg(long)]
    pub cluster: String,
    /// Only this resource.
    #[arg(long)]
    pub resource: Option<String>,
    /// Stop after this many changes (default: until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Settings.
    #[command(flatten)]
    pub node: NodeSettings,
}

/// The external view of the table's resources as text.
pub fn render(t: &RoutingTable, only: Option<&str>) -> String {
    let mut out = String::new();
    for resource in t.resources().filter(|r| only.is_none_or(|o| o == *r)) {
        let states = t.states(resource);
        let mut partitions: Vec<String> = states.keys().cloned().collect();
        sort_partitions(&mut partitions);
        let rows: Vec<Vec<String>> = partitions
            .iter()
            .map(|p| {
                let holders = states[p]
                    .iter()
                    .map(|(i, s)| format!("{i}={s}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![p.clone(), holders]
            })
            .collect();
        out.push_str(&format!("{resource}\n"));
        out.push_str(&table(&["PARTITION", "REPLICAS"], &rows));
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("(no external view yet)\n");
    }
    out
}

/// How many partitions of `resource` each instance is MASTER of.
pub fn masters_by_instance(t: &RoutingTable, resource: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for m in t.states(resource).values() {
        for (i, s) in m {
            if s == "MASTER" {
                *out.entry(i.clone()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// Runs `strand watch`.
pub fn run(args: WatchArgs) -> Result<(), CliError> {
    let flags = args.node.flags();
    node_setup::runtime()?.block_on(async move {
        let store = node_setup::store(&flags)?;
        let spectator = Spectator::connect(store, &args.cluster)
            .await
            .map_err(CliError::failed)?;
        let json = args.output == OutputFormat::Json || !std::io::stdout().is_terminal();
        let mut changes = spectator.changes();
        let mut shown = 0u64;
        let mut last: std::collections::BTreeMap<String, _> = Default::default();
        loop {
            let t = spectator.table();
            if json {
                for r in t
                    .resources()
                    .filter(|r| args.resource.as_deref().is_none_or(|o| o == *r))
                {
                    let states = t.states(r);
                    if last.get(r) != Some(&states) {
                        let line = serde_json::json!({
                            "revision": t.revision(), "resource": r, "mapFields": states,
                        });
                        println!("{line}");
                        last.insert(r.to_string(), states);
                    }
                }
            } else {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\x1b[2J\x1b[H{}", render(&t, args.resource.as_deref()));
                let _ = writeln!(
                    out,
                    "cluster {} at revision {} (Ctrl-C to stop)",
                    args.cluster,
                    t.revision()
                );
                let _ = out.flush();
            }
            shown += 1;
            if args.count.is_some_and(|c| shown >= c) {
                return Ok(());
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return Ok(()); },
                _ = node_setup::terminated() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    })
}
