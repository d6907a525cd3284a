//! `strand bench chaos`: faults on a cluster of real processes, with the invariants checked
//! (issue 19 §3).
//!
//! The real binaries on loopback, every one started with `--net-faults` (the transport's
//! fault layer, `transport::faults`): 3 store replicas, 2 controllers, `--participants`
//! ready-made participants and three FULL_AUTO resources (MasterSlave, LeaderStandby,
//! OnlineOffline). While store clients run the linearizability workload of `bench
//! linearizability` (paced) and a watcher follows it, a seeded [`schedule`] injects one
//! fault after another — SIGKILL, SIGSTOP/SIGCONT and network faults (isolation, a one-way
//! cut, a partition of the store leader, 20% loss) on participants, the leading controller
//! and the store leader — holds it 1.5–3 s and heals it. Two recovery times per fault:
//! injection → the cluster serves again without the target ([`served`]: partitions on the
//! other participants, another controller leading, a store write acknowledged), and heal →
//! converged with every process back.
//!
//! Checked at the end, all of which must be 0: two replicas of a partition in a bounded top
//! state at once in the participants' transition logs (`participant::audit`, with killed
//! processes' intervals ended at the kill, paused spans taken out and a woken participant
//! granted [`WAKE_GRACE_US`] to step down — the overlaps are reported), a participant
//! accepting a transition of an older controller epoch after a newer one, the store
//! history's linearizability and the watch stream (`check`), recoveries that did not happen
//! within 30 s of the heal, and the final external view.

mod schedule;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use self::schedule::{Fault, Schedule, Step};
use super::detect::summary;
use super::linz::record::{self, Gets, Workload};
use crate::admin::AddResource;
use crate::cli::local_cluster::{wait_for, LocalCluster};
use crate::cli::CliError;
use crate::model::RebalanceMode;
use crate::participant::audit;
use crate::propertystore::PropertyStore;
use crate::spectator::{RoutingTable, Spectator};

/// Arguments of `strand bench chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosBenchArgs {
    /// How long faults are injected, in minutes (fractions allowed: `0.5`).
    #[arg(long, default_value_t = 2.0)]
    pub minutes: f64,
    /// The fault schedule's and the workload's seed.
    #[arg(long, default_value_t = 0xc4a0_5019)]
    pub seed: u64,
    /// Participants.
    #[arg(long, default_value_t = 5)]
    pub participants: usize,
    /// Only these kinds of fault (comma-separated; default: all ten, each once per round).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub faults: Vec<Fault>,
    /// Hold every fault this long (default: 1.5–3 s, drawn from the seed).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub hold_ms: Option<u64>,
    /// Stop after this many faults (default: as many as `--minutes` allows).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print one JSON document (the default prints it too, with progress on stderr).
    #[arg(long)]
    pub json: bool,
    /// Keep every process's data, logs and fault rules, and the transition log, here.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const CLUSTER: &str = "CHAOS";
/// The resources: name, state model, partitions, replicas, bounded top state.
const RESOURCES: [(&str, &str, usize, usize, &str); 3] = [
    ("db", "MasterSlave", 12, 3, "MASTER"),
    ("log", "LeaderStandby", 6, 2, "LEADER"),
    ("cache", "OnlineOffline", 6, 2, "ONLINE"),
];
/// How long a recovery may take before it counts as a violation.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);
const SETUP_LIMIT: Duration = Duration::from_secs(60);
/// How long a participant woken by `SIGCONT` may take to step down what another instance
/// took over meanwhile (it holds the state while frozen, and steps down once it runs and
/// hears it was declared down; see `participant::session`). The overlaps are reported.
const WAKE_GRACE_US: u64 = 500_000;

/// Runs `strand bench chaos`; fails (exit 1) after the report if any invariant broke.
pub fn run(args: ChaosBenchArgs) -> Result<(), CliError> {
    if !(args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        return Err(CliError::usage("--minutes: more than 0, at most a day"));
    }
    if args.participants < 3 {
        return Err(CliError::usage("--participants: at least 3"));
    }
    crate::cli::process::init_logging("error");
    let rt = crate::cli::node_setup::runtime()?;
    let out = rt.block_on(async {
        let mut cluster = LocalCluster::new(args.dir.as_deref(), CLUSTER)?.with_net_faults();
        let result = bench(&mut cluster, &args).await;
        for p in cluster
            .participants
            .values_mut()
            .chain(cluster.controllers.values_mut())
            .chain(cluster.stores.values_mut())
        {
            p.signal(Signal::SIGCONT);
            p.kill();
        }
        result
    })?;
    let text = if args.json {
        serde_json::to_string(&out)
    } else {
        serde_json::to_string_pretty(&out)
    };
    println!("{}", text.map_err(CliError::failed)?);
    match out["violations"]["total"].as_u64() {
        Some(0) => Ok(()),
        n => Err(CliError::failed(format!(
            "{} invariant violations under faults",
            n.unwrap_or(1)
        ))),
    }
}

/// Whether every partition of every resource has its replicas, all on `running`
/// instances, exactly one in the top state and the rest in the model's other serving state.
fn converged(t: &RoutingTable, running: &[String]) -> bool {
    RESOURCES.iter().all(|(name, model, partitions, replicas, top)| {
        let s = t.states(name);
        let second = match *model {
            "MasterSlave" => "SLAVE",
            "LeaderStandby" => "STANDBY",
            _ => "ONLINE",
        };
        s.len() == *partitions
            && s.values().all(|m| {
                m.len() == *replicas
                    && m.keys().all(|i| running.contains(i))
                    && if *top == second {
                        m.values().all(|st| st == top)
                    } else {
                        m.values().filter(|st| *st == top).count() == 1
                            && m.values().all(|st| st == top || st == second)
                    }
            })
    })
}

/// What happened to one fault.
struct Done {
    step: Step,
    target: String,
    at_ms: u64,
    /// Injection → served again without the target (see [`served`]), if within the hold.
    served_ms: Option<f64>,
    /// Heal → converged with every process running, if within [`RECOVERY_LIMIT`].
    settle_ms: Option<f64>,
}

/// Whether the cluster serves again despite `fault` on `target`: for a participant fault,
/// every partition has its replicas and one top state on the other running participants;
/// for a controller fault, another controller leads; for a store fault, a write is
/// acknowledged (within 250 ms); under loss, the cluster is converged.
async fn served(
    cluster: &LocalCluster,
    spectator: &Spectator,
    probe: &PropertyStore,
    fault: Fault,
    target: &str,
) -> bool {
    match fault {
        Fault::KillParticipant
        | Fault::PauseParticipant
        | Fault::IsolateParticipant
        | Fault::MuteParticipant => {
            let others: Vec<String> = cluster
                .participants
                .keys()
                .filter(|p| *p != target)
                .cloned()
                .collect();
            converged(&spectator.table(), &others)
        }
        Fault::KillController | Fault::PauseController => cluster
            .leading_controller()
            .is_some_and(|(name, _, _)| name != target),
        Fault::KillStoreLeader | Fault::PauseStoreLeader | Fault::PartitionStoreLeader => {
            let write = probe.set("/chaos-probe", b"1", None);
            matches!(
                tokio::time::timeout(Duration::from_millis(250), write).await,
                Ok(Ok(_))
            )
        }
        Fault::Loss => {
            let all: Vec<String> = cluster.participants.keys().cloned().collect();
            converged(&spectator.table(), &all)
        }
    }
}

/// The run's fault state: who is paused since when (wall µs), for the audit.
#[derive(Default)]
struct Pauses {
    spans: BTreeMap<String, Vec<(u64, u64)>>,
}

async fn bench(cluster: &mut LocalCluster, args: &ChaosBenchArgs) -> Result<Value, CliError> {
    let instances: Vec<String> = (0..args.participants).map(|i| format!("node_{i}")).collect();
    let admin = cluster
        .start_store_and_cluster(3, &instances, SETUP_LIMIT)
        .await?;
    let store = admin.store().clone();
    for (name, model, partitions, replicas, _) in RESOURCES {
        let mut spec = AddResource::new(partitions, model);
        spec.mode = RebalanceMode::FullAuto;
        admin
            .add_resource(CLUSTER, name, &spec)
            .await
            .map_err(CliError::failed)?;
        admin
            .set_resource_property(CLUSTER, name, "REPLICAS", &replicas.to_string())
            .await
            .map_err(CliError::failed)?;
    }
    let spectator = Spectator::connect(store.clone(), CLUSTER)
        .await
        .map_err(CliError::failed)?;
    cluster.start_controllers_and_participants(&["controller-1", "controller-2"], &instances)?;
    wait_for(SETUP_LIMIT, "the first convergence", || {
        converged(&spectator.table(), &instances)
    })
    .await?;

    // The store workload: paced clients and one watcher of their keys.
    let tls = cluster.tls_dir();
    let eps = cluster.store_addrs.clone();
    let probe = super::store::client(&tls, &eps, 0)?;
    let start_rev = probe
        .set("/chaos-ready", b"1", None)
        .await
        .map_err(CliError::failed)?
        .mod_revision
        + 1;
    let mut workload = Workload::new(4, Gets::Leader);
    workload.pace = Duration::from_millis(25);
    let mut clients = Vec::new();
    for id in 0..3 {
        let c = super::store::client(&tls, &eps, 0)?;
        clients.push(tokio::spawn(workload.clone().client(c, id, args.seed)));
    }
    let until = Arc::new(AtomicU64::new(u64::MAX));
    let run = Duration::from_secs_f64(args.minutes * 60.0);
    let watch_deadline = Instant::now() + run + Duration::from_secs(300);
    let watcher = tokio::spawn(record::watch(
        super::store::client(&tls, &eps, 0)?,
        start_rev,
        until.clone(),
        watch_deadline,
    ));

    // The faults.
    let base = Instant::now();
    let mut pauses = Pauses::default();
    let mut done: Vec<Done> = Vec::new();
    let count = args.count.map_or(usize::MAX, |n| n as usize);
    for mut step in Schedule::new(args.seed, &args.faults).take(count) {
        if base.elapsed() >= run {
            break;
        }
        if let Some(ms) = args.hold_ms {
            step.hold_ms = ms;
        }
        let at_ms = base.elapsed().as_millis() as u64;
        let target = inject(cluster, &probe, &eps, step, &mut pauses).await?;
        if step.fault.is_network() {
            // The processes read their rules every 50 ms: the fault is in force after this.
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
        let injected = Instant::now();
        eprintln!(
            "fault {} at {at_ms} ms: {} {target} for {} ms",
            done.len() + 1,
            step.fault.name(),
            step.hold_ms
        );
        let hold_until = injected + Duration::from_millis(step.hold_ms);
        let mut served_ms = None;
        while Instant::now() < hold_until {
            if served_ms.is_none() && served(cluster, &spectator, &probe, step.fault, &target).await {
                served_ms = Some(injected.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        heal(cluster, step.fault, &target, &mut pauses)?;
        let healed = Instant::now();
        let running: Vec<String> = cluster.participants.keys().cloned().collect();
        let settled = wait_for(RECOVERY_LIMIT, "recovery", || {
            converged(&spectator.table(), &running)
        })
        .await
        .ok();
        let settle_ms = settled.map(|t| (t - healed).as_secs_f64() * 1000.0);
        eprintln!(
            "  served again {} after the fault, settled {} after the heal",
            served_ms.map_or("NOT during the fault".into(), |ms| format!("{ms:.0} ms")),
            settle_ms.map_or(format!("NOT within {RECOVERY_LIMIT:?}"), |ms| format!(
                "{ms:.0} ms"
            )),
        );
        done.push(Done {
            step,
            target,
            at_ms,
            served_ms,
            settle_ms,
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The end: everything running and healed; the checks.
    workload.stop.store(true, std::sync::atomic::Ordering::Release);
    for c in clients {
        let _ = c.await;
    }
    let last = record::final_write(&probe, "/chaos-ready", watch_deadline).await?;
    until.store(last, Ordering::Release);
    let stream = match watcher.await {
        Ok(Ok(events)) => events,
        Ok(Err(e)) => return Err(CliError::failed(format!("watch: {e}"))),
        Err(e) => return Err(CliError::failed(format!("watch task: {e}"))),
    };
    let (store_report, _) = super::linz::check_history(&workload, &[stream], start_rev, last, "chaos store");
    let final_converged = wait_for(RECOVERY_LIMIT, "the final convergence", || {
        converged(&spectator.table(), &instances)
    })
    .await
    .is_ok();

    let log = cluster.transition_log();
    if let Some(dir) = &args.dir {
        std::fs::write(dir.join("transitions.jsonl"), &log)
            .map_err(|e| CliError::failed(format!("cannot write the transition log: {e}")))?;
    }
    let lines = audit::parse_lines(&log);
    // A woken participant's own step-down is granted WAKE_GRACE; how long each took is
    // reported, and an overlap beyond the grace is a violation.
    let graced: BTreeMap<String, Vec<(u64, u64)>> = pauses
        .spans
        .iter()
        .map(|(i, spans)| {
            let wide = spans
                .iter()
                .map(|&(from, to)| (from, to.saturating_add(WAKE_GRACE_US)))
                .collect();
            (i.clone(), wide)
        })
        .collect();
    let mut top_state = BTreeMap::new();
    let mut two_tops = Vec::new();
    let mut wake_overlaps_ms = Vec::new();
    for (_, _, _, _, top) in RESOURCES.iter().filter(|r| r.1 != "OnlineOffline") {
        let strict = audit::violations_with_pauses(&lines, top, 1, &cluster.ends, &pauses.spans);
        wake_overlaps_ms.extend(strict.iter().map(overlap_ms));
        let v = audit::violations_with_pauses(&lines, top, 1, &cluster.ends, &graced);
        top_state.insert(top.to_string(), v.len());
        two_tops.extend(v.into_iter().take(5).map(|v| {
            json!({"resource": v.resource, "partition": v.partition, "state": v.state,
                   "intervals": v.intervals.iter().map(|i| json!([i.instance, i.start_us, i.end_us])).collect::<Vec<_>>()})
        }));
    }
    let epoch_regressions = epoch_regressions(&log);
    let unrecovered = done.iter().filter(|d| d.settle_ms.is_none()).count();
    let store_violations = store_report["violations"].as_u64().unwrap_or(1);
    let total = top_state.values().sum::<usize>() as u64
        + epoch_regressions as u64
        + store_violations
        + unrecovered as u64
        + u64::from(!final_converged);

    let by_kind = |pick: fn(&Done) -> Option<f64>| {
        let mut m: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for d in &done {
            let e = m.entry(d.step.fault.name()).or_default();
            e.extend(pick(d));
        }
        m.into_iter()
            .map(|(k, v)| (k, summary(&v)))
            .collect::<BTreeMap<_, _>>()
    };
    let round = |ms: Option<f64>| ms.map(|m| m.round());
    Ok(json!({
        "minutes": args.minutes,
        "seed": args.seed,
        "setup": {
            "store_replicas": 3, "controllers": 2, "participants": args.participants,
            "resources": RESOURCES.iter().map(|(n, m, p, r, _)| json!({"name": n, "model": m, "partitions": p, "replicas": r})).collect::<Vec<_>>(),
        },
        "faults": {
            "total": done.len(),
            "by_kind": Fault::ALL.iter().map(|f| (f.name(), done.iter().filter(|d| d.step.fault == *f).count())).collect::<BTreeMap<_, _>>(),
            "log": done.iter().map(|d| json!({"at_ms": d.at_ms, "fault": d.step.fault.name(), "target": d.target,
                "hold_ms": d.step.hold_ms, "served_ms": round(d.served_ms), "settle_ms": round(d.settle_ms)})).collect::<Vec<_>>(),
        },
        "operations": {
            "store": store_report["ops"]["total"],
            "transitions": lines.iter().filter(|l| l.phase == "ok").count(),
        },
        "recovery_ms": {
            "served_again_after_the_fault": by_kind(|d| d.served_ms),
            "not_served_during_the_fault": done.iter().filter(|d| d.served_ms.is_none()).count(),
            "settled_after_the_heal": by_kind(|d| d.settle_ms),
            // How long a woken participant still held a top state another had taken over.
            "woken_participant_overlap": summary(&wake_overlaps_ms),
        },
        "store": store_report,
        "violations": {
            "two_top_states": top_state,
            "two_top_state_examples": two_tops,
            "epoch_regressions": epoch_regressions,
            "store": store_violations,
            "unrecovered": unrecovered,
            "final_not_converged": u64::from(!final_converged),
            "total": total,
        },
    }))
}

/// How long the replicas of a violation held the state together (ms).
fn overlap_ms(v: &audit::Violation) -> f64 {
    let start = v.intervals.iter().map(|i| i.start_us).max().unwrap_or(0);
    let end = v.intervals.iter().map(|i| i.end_us).min().unwrap_or(0);
    end.saturating_sub(start) as f64 / 1000.0
}

/// Injects `step`; returns what it aimed at.
async fn inject(
    cluster: &mut LocalCluster,
    probe: &PropertyStore,
    eps: &[std::net::SocketAddr],
    step: Step,
    pauses: &mut Pauses,
) -> Result<String, CliError> {
    let participant = || {
        let names: Vec<&String> = cluster.participants.keys().collect();
        names[step.pick % names.len()].clone()
    };
    Ok(match step.fault {
        Fault::KillParticipant => {
            let p = participant();
            cluster.end_participant(&p, false);
            p
        }
        Fault::PauseParticipant => {
            let p = participant();
            cluster.participants[&p].signal(Signal::SIGSTOP);
            pauses
                .spans
                .entry(p.clone())
                .or_default()
                .push((now_us(), u64::MAX));
            p
        }
        Fault::IsolateParticipant => {
            let p = participant();
            cluster.set_net_faults(&p, "out all\nin all\n")?;
            p
        }
        Fault::MuteParticipant => {
            let p = participant();
            cluster.set_net_faults(&p, "out all\n")?;
            p
        }
        Fault::KillController | Fault::PauseController => {
            let (leader, _, _) = cluster
                .leading_controller()
                .ok_or_else(|| CliError::failed("no controller leads"))?;
            if step.fault == Fault::KillController {
                if let Some(mut p) = cluster.controllers.remove(&leader) {
                    p.kill();
                }
            } else {
                cluster.controllers[&leader].signal(Signal::SIGSTOP);
            }
            leader
        }
        Fault::KillStoreLeader | Fault::PauseStoreLeader | Fault::PartitionStoreLeader => {
            let leader = super::store::steady(probe, eps).await?;
            let id = leader as u64 + 1;
            let name = format!("store-{id}");
            match step.fault {
                Fault::KillStoreLeader => {
                    if let Some(p) = cluster.stores.get_mut(&id) {
                        p.kill();
                    }
                }
                Fault::PauseStoreLeader => {
                    if let Some(p) = cluster.stores.get(&id) {
                        p.signal(Signal::SIGSTOP);
                    }
                }
                _ => {
                    let others: Vec<_> = eps.iter().enumerate().filter(|(i, _)| *i != leader).collect();
                    let cut: String = others.iter().map(|(_, a)| format!("out {a}\n")).collect();
                    cluster.set_net_faults(&name, &cut)?;
                    for (i, _) in others {
                        cluster
                            .set_net_faults(&format!("store-{}", i + 1), &format!("out {}\n", eps[leader]))?;
                    }
                }
            }
            name
        }
        Fault::Loss => {
            for name in process_names(cluster) {
                cluster.set_net_faults(&name, "loss 0.2\n")?;
            }
            "everyone".to_string()
        }
    })
}

/// Heals what [`inject`] did to `target`.
fn heal(cluster: &mut LocalCluster, fault: Fault, target: &str, pauses: &mut Pauses) -> Result<(), CliError> {
    match fault {
        Fault::KillParticipant => cluster.start_participant(target, &[])?,
        Fault::PauseParticipant => {
            if let Some(p) = cluster.participants.get(target) {
                p.signal(Signal::SIGCONT);
            }
            if let Some(span) = pauses.spans.get_mut(target).and_then(|v| v.last_mut()) {
                span.1 = now_us();
            }
        }
        Fault::KillController => cluster.start_controller(target)?,
        Fault::PauseController => {
            if let Some(p) = cluster.controllers.get(target) {
                p.signal(Signal::SIGCONT);
            }
        }
        Fault::KillStoreLeader => {
            let id: u64 = target.trim_start_matches("store-").parse().unwrap_or(0);
            cluster.spawn_store(id)?;
        }
        Fault::PauseStoreLeader => {
            if let Some(p) = cluster
                .stores
                .get(&target.trim_start_matches("store-").parse().unwrap_or(0))
            {
                p.signal(Signal::SIGCONT);
            }
        }
        Fault::IsolateParticipant | Fault::MuteParticipant | Fault::PartitionStoreLeader | Fault::Loss => {
            for name in process_names(cluster) {
                cluster.set_net_faults(&name, "")?;
            }
        }
    }
    Ok(())
}

/// Every process's name (its fault file's name).
fn process_names(cluster: &LocalCluster) -> Vec<String> {
    (1..=cluster.store_addrs.len())
        .map(|i| format!("store-{i}"))
        .chain(cluster.controllers.keys().cloned())
        .chain(cluster.participants.keys().cloned())
        .collect()
}

fn now_us() -> u64 {
    crate::participant::now_us()
}

/// How many times a participant process began a transition of an older controller epoch
/// than one it had begun before (each process's lines in order; a restarted process starts
/// afresh: a new session).
fn epoch_regressions(log: &str) -> usize {
    #[derive(serde::Deserialize)]
    struct L {
        instance: String,
        session: String,
        phase: String,
        epoch: u64,
    }
    let mut highest: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut out = 0;
    for l in log.lines().filter_map(|l| serde_json::from_str::<L>(l).ok()) {
        // Epoch 0: a participant's own step-down, which no controller sent.
        if l.phase != "begin" || l.epoch == 0 {
            continue;
        }
        let h = highest.entry((l.instance, l.session)).or_insert(0);
        if l.epoch < *h {
            out += 1;
        }
        *h = (*h).max(l.epoch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_epoch_after_a_newer_one_in_one_session_is_a_regression() {
        let line = |i: &str, s: &str, phase: &str, epoch: u64| {
            json!({"ts_us": 1, "instance": i, "session": s, "resource": "db", "partition": "db_0",
                   "from": "SLAVE", "to": "MASTER", "phase": phase, "msg_id": "m", "epoch": epoch})
            .to_string()
        };
        let ok = [
            line("a", "s1", "begin", 3),
            line("a", "s1", "ok", 3),
            line("a", "s1", "begin", 5),
            line("b", "s1", "begin", 4),
            line("a", "s2", "begin", 4),
            line("a", "s1", "begin", 0),
        ]
        .join("\n");
        assert_eq!(
            epoch_regressions(&ok),
            0,
            "another instance, a new session or a local step-down (epoch 0) is no regression"
        );
        let bad = format!("{ok}\n{}\nnot json", line("a", "s1", "begin", 4));
        assert_eq!(epoch_regressions(&bad), 1);
    }
}
