//! `strand demo`: Helix's tutorial on a real local cluster, then a participant's and a
//! controller's SIGKILL, with what was measured.
//!
//! ```text
//!   store (1 or 3 replicas) ─ helix-admin steps (MYCLUSTER, myDB: 6 partitions, MasterSlave,
//!   3 replicas) ─ 2 controllers ─ N participants ─ external view shown as it changes
//!   ─ SIGKILL the MASTER-heaviest participant: detection, every partition has a MASTER
//!   ─ restart it ─ SIGKILL the leading controller: takeover; the new leader handles a
//!     second participant kill ─ summary ─ stop everything (or --keep)
//! ```
//!
//! Every process is a child of the demo (they die with it); Ctrl-C stops everything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::local_cluster::{wait_for, LocalCluster};
use super::CliError;
use crate::admin::{AddResource, Admin};
use crate::model::{Layout, RebalanceMode};
use crate::propertystore::{EventKind, PropertyStore};
use crate::spectator::{RoutingTable, Spectator};

/// Arguments of `strand demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How many participants (at least 3, the tutorial's replica count).
    #[arg(long, default_value_t = 3)]
    pub participants: usize,
    /// Store replicas: 1 or 3.
    #[arg(long, default_value_t = 1)]
    pub store_replicas: usize,
    /// Leave the cluster running at the end, to explore with `strand admin` and `strand watch`.
    #[arg(long)]
    pub keep: bool,
    /// Keep the cluster's files here instead of a temp dir.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Serve the dashboard and REST API while the demo runs (with --keep, until Ctrl-C).
    #[command(flatten)]
    pub http: super::http::HttpFlags,
}

const CLUSTER: &str = "MYCLUSTER";
const RESOURCE: &str = "myDB";
const WAIT: Duration = Duration::from_secs(30);

fn say(start: Instant, text: impl AsRef<str>) {
    super::progress::clear_line();
    println!("[{:>7.3}s] {}", start.elapsed().as_secs_f64(), text.as_ref());
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Runs `strand demo`.
pub fn run(args: DemoArgs) -> Result<(), CliError> {
    if args.participants < 3 {
        return Err(CliError::usage(
            "--participants: at least 3 (the tutorial uses 3 replicas)",
        ));
    }
    if args.store_replicas != 1 && args.store_replicas != 3 {
        return Err(CliError::usage("--store-replicas: 1 or 3"));
    }
    super::process::init_logging("error");
    let rt = super::node_setup::runtime()?;
    rt.block_on(async move {
        let mut cluster = LocalCluster::new(args.dir.as_deref(), CLUSTER)?;
        let mut http = None;
        let outcome = tokio::select! {
            r = demo(&mut cluster, &args, &mut http) => r,
            _ = tokio::signal::ctrl_c() => {
                println!("\ninterrupted: stopping everything the demo started");
                Ok(())
            }
        };
        if outcome.is_ok() && args.keep {
            print_keep(&cluster);
            let _ = tokio::signal::ctrl_c().await;
        }
        if let Some(h) = http.take() {
            h.shutdown().await;
        }
        stop_all(&mut cluster);
        outcome
    })
}

fn stop_all(cluster: &mut LocalCluster) {
    let names: Vec<String> = cluster.participants.keys().cloned().collect();
    for n in names {
        cluster.end_participant(&n, true);
    }
    for c in cluster.controllers.values_mut() {
        c.stop(Duration::from_secs(3));
    }
    for s in cluster.stores.values_mut() {
        s.stop(Duration::from_secs(3));
    }
}

fn print_keep(cluster: &LocalCluster) {
    println!();
    println!("The cluster keeps running (Ctrl-C stops it). Explore it with:");
    println!(
        "  export STRAND_TLS_DIR={} STRAND_STORE={}",
        cluster.tls_dir().display(),
        cluster.store_flag()
    );
    println!("  strand watch --cluster {CLUSTER}");
    println!(
        "  strand helix-admin --zkSvr {} --listResourceInfo {CLUSTER} {RESOURCE}",
        cluster.store_addrs[0]
    );
    println!("  strand admin ls /{CLUSTER}");
}

fn render(t: &RoutingTable) -> String {
    let states = t.states(RESOURCE);
    let mut out = String::new();
    for (p, m) in &states {
        let holders: Vec<String> = m
            .iter()
            .map(|(i, s)| format!("{}={}", i.trim_start_matches("localhost_"), s))
            .collect();
        out.push_str(&format!("            {p:<8} {}\n", holders.join(" ")));
    }
    out
}

fn one_master_each(t: &RoutingTable, partitions: usize) -> bool {
    let states = t.states(RESOURCE);
    states.len() == partitions
        && states
            .values()
            .all(|m| m.values().filter(|s| *s == "MASTER").count() == 1)
}

/// Prints the external view whenever it changes, until the demo ends.
fn show_live(spectator: &Spectator, start: Instant) -> tokio::task::JoinHandle<()> {
    let mut changes = spectator.changes();
    let reader = spectator.reader();
    let mut last = reader.table().states(RESOURCE);
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            let t = reader.table();
            let now = t.states(RESOURCE);
            if now != last && !now.is_empty() {
                say(start, "external view:");
                print!("{}", render(&t));
            }
            last = now;
        }
    })
}

/// Records when each live instance's session ended (its LIVEINSTANCES key deleted).
fn watch_sessions(
    store: PropertyStore,
    from: u64,
) -> tokio::sync::watch::Receiver<BTreeMap<String, Instant>> {
    let (tx, rx) = tokio::sync::watch::channel(BTreeMap::new());
    let prefix = format!("{}/", Layout::new(CLUSTER).live_instances());
    tokio::spawn(async move {
        let mut w = store.watch(&prefix, from);
        loop {
            match w.next_batch().await {
                Ok(events) => {
                    for e in events {
                        if matches!(e.kind, EventKind::Delete) {
                            let name = e.path[prefix.len()..].to_string();
                            tx.send_modify(|m| {
                                m.insert(name, Instant::now());
                            });
                        }
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    rx
}

async fn demo(
    cluster: &mut LocalCluster,
    args: &DemoArgs,
    http: &mut Option<crate::http::HttpServer>,
) -> Result<(), CliError> {
    let start = Instant::now();
    say(start, format!("files in {}", cluster.dir().display()));

    // 1. The store.
    cluster.start_store(args.store_replicas)?;
    let store = cluster.client()?;
    let admin = Admin::new(store.clone());
    *http = args
        .http
        .start(
            &cluster.settings(),
            "demo-http",
            crate::authz::Role::Spectator,
            store.clone(),
            Default::default(),
        )
        .await?;
    if let Some(h) = http.as_ref() {
        say(start, format!("dashboard: {}", h.url()));
    }
    let deadline = Instant::now() + WAIT;
    let starting = super::progress::Progress::start("waiting for the store to start");
    while admin.list_clusters().await.is_err() {
        if Instant::now() > deadline {
            return Err(CliError::failed(
                "the store did not start (see its log in the demo's directory)",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    starting.finish();
    say(
        start,
        format!(
            "store: {} replica(s) at {} (Raft, RocksDB), ready",
            args.store_replicas,
            cluster.store_flag()
        ),
    );

    // 2. The tutorial's helix-admin steps.
    admin.add_cluster(CLUSTER).await.map_err(CliError::failed)?;
    say(start, format!("helix-admin --addCluster {CLUSTER}"));
    let instances: Vec<String> = (0..args.participants)
        .map(|i| format!("localhost_{}", 12913 + i))
        .collect();
    for i in &instances {
        let id = i.replace('_', ":");
        admin.add_instance(CLUSTER, &id).await.map_err(CliError::failed)?;
        say(start, format!("helix-admin --addNode {CLUSTER} {id}"));
    }
    let mut spec = AddResource::new(6, "MasterSlave");
    spec.mode = RebalanceMode::SemiAuto;
    admin
        .add_resource(CLUSTER, RESOURCE, &spec)
        .await
        .map_err(CliError::failed)?;
    say(
        start,
        format!("helix-admin --addResource {CLUSTER} {RESOURCE} 6 MasterSlave"),
    );
    let ideal = admin
        .rebalance(CLUSTER, RESOURCE, 3, None)
        .await
        .map_err(CliError::failed)?;
    say(
        start,
        format!("helix-admin --rebalance {CLUSTER} {RESOURCE} 3; the ideal state:"),
    );
    let mut ideal_table = BTreeMap::new();
    for (p, m) in &ideal.record.map_fields {
        ideal_table.insert(p.clone(), m.clone());
        let holders: Vec<String> = m
            .iter()
            .map(|(i, s)| format!("{}={}", i.trim_start_matches("localhost_"), s))
            .collect();
        println!("            {p:<8} {}", holders.join(" "));
    }

    // 3. Watch the external view and the sessions.
    let (_, revision) = store
        .get_with(
            &Layout::new(CLUSTER).root(),
            crate::propertystore::protocol::ReadMode::Linearizable,
        )
        .await
        .map_err(CliError::failed)?;
    let sessions = watch_sessions(store.clone(), revision + 1);
    let spectator = Spectator::connect(store.clone(), CLUSTER)
        .await
        .map_err(CliError::failed)?;
    let printer = show_live(&spectator, start);

    // 4. Two controllers.
    for name in ["controller-1", "controller-2"] {
        cluster.start_controller(name)?;
    }
    wait_for(WAIT, "a controller to lead", || {
        cluster.leading_controller().is_some()
    })
    .await?;
    let (leader, epoch, _) = cluster.leading_controller().expect("checked");
    say(
        start,
        format!("controllers started; {leader} leads (epoch {epoch}), the other stands by"),
    );

    // 5. Participants; convergence.
    let started = Instant::now();
    for i in &instances {
        cluster.start_participant(i, &[])?;
    }
    say(
        start,
        format!(
            "{} participants started ({})",
            instances.len(),
            instances.join(", ")
        ),
    );
    let converged = wait_for(WAIT, "the external view to equal the ideal state", || {
        spectator.table().states(RESOURCE) == ideal_table
    })
    .await?;
    let convergence = converged - started;
    say(
        start,
        format!("converged: external view = ideal state, {} after the participants were started (process start-up included)", ms(convergence)),
    );

    // 6. SIGKILL the participant holding the most MASTERs.
    let masters = super::watch::masters_by_instance(&spectator.table(), RESOURCE);
    let victim = masters
        .iter()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse((*i).clone())))
        .map(|(i, _)| i.clone())
        .unwrap_or_else(|| instances[0].clone());
    say(
        start,
        format!(
            "SIGKILL {victim} (MASTER of {} partitions)",
            masters.get(&victim).copied().unwrap_or(0)
        ),
    );
    let killed = cluster
        .end_participant(&victim, false)
        .unwrap_or_else(Instant::now);
    let detected = wait_for(WAIT, "the session to end", || {
        sessions.borrow().get(&victim).is_some_and(|t| *t >= killed)
    })
    .await?;
    let recovered = wait_for(WAIT, "a MASTER for every partition", || {
        let t = spectator.table();
        one_master_each(&t, 6) && t.states(RESOURCE).values().all(|m| !m.contains_key(&victim))
    })
    .await?;
    let detection = detected - killed;
    let failover = recovered - killed;
    say(
        start,
        format!(
            "{victim}'s session ended {} after the kill (SWIM: down)",
            ms(detection)
        ),
    );
    say(
        start,
        format!(
            "every partition has a MASTER again {} after the kill",
            ms(failover)
        ),
    );

    // 7. Restart it: back to the ideal state.
    cluster.start_participant(&victim, &[])?;
    wait_for(WAIT, "the external view to equal the ideal state again", || {
        spectator.table().states(RESOURCE) == ideal_table
    })
    .await?;
    say(
        start,
        format!("{victim} restarted: the external view equals the ideal state again"),
    );

    // 8. SIGKILL the leading controller.
    let (leader, epoch, _) = cluster
        .leading_controller()
        .ok_or_else(|| CliError::failed("no controller leads"))?;
    say(
        start,
        format!("SIGKILL {leader} (the leading controller, epoch {epoch})"),
    );
    let ctl_killed = Instant::now();
    if let Some(mut p) = cluster.controllers.remove(&leader) {
        p.kill();
    }
    let took_over = wait_for(WAIT, "the standby to take over", || {
        cluster
            .leading_controller()
            .is_some_and(|(n, e, at)| n != leader && e > epoch && at >= ctl_killed)
    })
    .await?;
    let (new_leader, new_epoch, _) = cluster.leading_controller().expect("checked");
    let takeover = took_over - ctl_killed;
    say(
        start,
        format!(
            "{new_leader} leads (epoch {new_epoch}) {} after the kill",
            ms(takeover)
        ),
    );

    // 9. The new leader handles a participant failure.
    let masters = super::watch::masters_by_instance(&spectator.table(), RESOURCE);
    let second = masters
        .iter()
        .max_by_key(|(i, n)| (**n, std::cmp::Reverse((*i).clone())))
        .map(|(i, _)| i.clone())
        .unwrap_or_else(|| instances[1].clone());
    say(start, format!("SIGKILL {second} under the new leader"));
    let killed2 = cluster
        .end_participant(&second, false)
        .unwrap_or_else(Instant::now);
    let recovered2 = wait_for(WAIT, "a MASTER for every partition", || {
        let t = spectator.table();
        one_master_each(&t, 6) && t.states(RESOURCE).values().all(|m| !m.contains_key(&second))
    })
    .await?;
    let failover2 = recovered2 - killed2;
    say(
        start,
        format!(
            "every partition has a MASTER again {} after the kill",
            ms(failover2)
        ),
    );
    cluster.start_participant(&second, &[])?;

    // 10. What was measured, and the invariant over every participant's log.
    let lines = crate::participant::audit::parse_lines(&cluster.transition_log());
    let violations = crate::participant::audit::violations(&lines, "MASTER", 1, &cluster.ends);
    printer.abort();
    println!();
    println!("measured (one run; `strand bench failover` for p50/p99 over many):");
    println!(
        "  convergence after start (incl. process start-up)   {}",
        ms(convergence)
    );
    println!(
        "  participant SIGKILL → session ended (detection)     {}",
        ms(detection)
    );
    println!(
        "  participant SIGKILL → every partition has a MASTER  {}",
        ms(failover)
    );
    println!(
        "  leading controller SIGKILL → standby leads           {}",
        ms(takeover)
    );
    println!(
        "  participant SIGKILL under the new leader → MASTERs  {}",
        ms(failover2)
    );
    println!(
        "  transitions reported: {}; two MASTERs at once: {}",
        lines.len(),
        violations.len()
    );
    println!(
        "  Helix on ZooKeeper: ≥ 30 s to fail over with the default session timeout (4 s at its minimum)"
    );
    if !violations.is_empty() {
        return Err(CliError::failed(format!("two MASTERs at once: {violations:?}")));
    }
    Ok(())
}
