//! `strand bench linearizability`: the store's history under faults, checked (issue 19 §2).
//!
//! For each leader read mode (`strand store run --read-mode lease|read-index`): starts the
//! replicas as `strand store run` processes on loopback, runs `--clients` client tasks
//! (each its own QUIC endpoint) doing random gets, puts, compare-and-sets and two-key
//! transactions over `--keys` keys ([`record`]) and `--watchers` watchers of the keys'
//! prefix, and meanwhile injects `--faults` faults on the leader, evenly spaced over
//! `--seconds`: alternately a SIGKILL (the replica restarts once another leads) and a
//! SIGSTOP until another replica leads, then SIGCONT (a paused leader that wakes up still
//! believing it leads — the case a lease read must survive). The QUIC transport offers no
//! network partition of real processes; a pause isolates the leader the same way for the
//! others, and a partition is exercised on the in-memory network (`tests/store/partition.rs`).
//!
//! The history goes through [`crate::check::linearizability`] and each watcher's events
//! through [`crate::check::watch`]; the report gives operations, faults, the verdict and
//! every watch violation, which must all be none. `--gets cache` serves gets from the
//! client's cache while recording them as linearizable: a planted fault the checker catches.
//! `--history-out FILE` writes each mode's history as JSON lines, for the checker's tests.

pub mod record;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use self::record::{Gets, Workload};
use super::store::{bench_dir, client, start_replicas, steady, Replicas};
use crate::check::linearizability::{self, Call, Ret, Verdict};
use crate::check::watch;
use crate::cli::store::runtime;
use crate::cli::CliError;

/// The checker's step budget per partition: a history it cannot decide within it is reported
/// `Undecided` (a violation of this bench's promise too), and memory stays bounded.
pub(super) const CHECK_BUDGET: u64 = 2_000_000;

/// Arguments of `strand bench linearizability`.
#[derive(Debug, clap::Args)]
pub struct LinzBenchArgs {
    /// Seconds of workload per read mode (longer if the faults need it: each waits for the
    /// replicas to settle after the one before).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Faults on the leader per read mode, alternately SIGKILL and SIGSTOP (first a kill).
    #[arg(long, default_value_t = 6)]
    pub faults: u32,
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 6)]
    pub clients: u32,
    /// Keys the clients work on.
    #[arg(long, default_value_t = 3)]
    pub keys: u64,
    /// Watchers of the keys' prefix.
    #[arg(long, default_value_t = 2)]
    pub watchers: u32,
    /// The leader read modes to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "lease,read-index")]
    pub read_modes: Vec<crate::cli::store::LeaderReads>,
    /// Where gets are served (`cache`: a planted fault).
    #[arg(long, value_enum, default_value_t)]
    pub gets: Gets,
    /// The workload's seed.
    #[arg(long, default_value_t = 0x5eed_0019)]
    pub seed: u64,
    /// Write each mode's history here, one JSON operation per line, modes one after another.
    #[arg(long, value_name = "FILE")]
    pub history_out: Option<PathBuf>,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// Runs `strand bench linearizability`; fails (exit 1) after printing the report if any
/// mode's history is not linearizable or a watch stream is wrong.
pub fn run(args: LinzBenchArgs) -> Result<(), CliError> {
    if args.seconds == 0 || args.clients == 0 || args.keys == 0 || args.read_modes.is_empty() {
        return Err(CliError::usage(
            "--seconds, --clients, --keys and --read-modes must be positive or non-empty",
        ));
    }
    let rt = runtime()?;
    let mut modes = Vec::new();
    let mut violations = 0u64;
    let mut history_file = match &args.history_out {
        Some(p) => Some(
            std::fs::File::create(p)
                .map_err(|e| CliError::failed(format!("cannot create {}: {e}", p.display())))?,
        ),
        None => None,
    };
    for &mode in &args.read_modes {
        let (report, history) = rt.block_on(one_mode(&args, mode))?;
        violations += report["violations"].as_u64().unwrap_or(0);
        if let Some(f) = &mut history_file {
            use std::io::Write;
            for op in &history {
                let line = serde_json::to_string(op).map_err(CliError::failed)?;
                writeln!(f, "{line}").map_err(CliError::failed)?;
            }
        }
        modes.push(report);
    }
    let out = serde_json::json!({
        "seed": args.seed,
        "seconds": args.seconds,
        "clients": args.clients,
        "keys": args.keys,
        "watchers": args.watchers,
        "gets": args.gets,
        "modes": modes,
        "violations": violations,
    });
    let text = if args.json {
        serde_json::to_string(&out)
    } else {
        serde_json::to_string_pretty(&out)
    };
    println!("{}", text.map_err(CliError::failed)?);
    if violations > 0 {
        return Err(CliError::failed(format!(
            "{violations} violations: the history is not linearizable or a watch stream is wrong"
        )));
    }
    Ok(())
}

/// What the fault task did.
#[derive(Debug, Default, serde::Serialize)]
struct Faults {
    kills: u32,
    pauses: u32,
    /// Each fault: (kind, replica id, ms from the start).
    log: Vec<(String, usize, u64)>,
}

async fn one_mode(
    args: &LinzBenchArgs,
    mode: crate::cli::store::LeaderReads,
) -> Result<(serde_json::Value, Vec<linearizability::Operation>), CliError> {
    let mode_name = mode.name();
    let dir = bench_dir("linz")?;
    let extra = vec!["--read-mode".to_string(), mode_name.to_string()];
    let (mut replicas, eps) = start_replicas(3, &dir, extra)?;
    let tls = dir.join("tls");
    let probe = client(&tls, &eps, 0)?;
    // The revision watches start from: after the store is ready, before any workload write.
    let ready = Instant::now() + Duration::from_secs(60);
    let start = loop {
        match probe.set("/ready", b"1", None).await {
            Ok(stat) => break stat.mod_revision + 1,
            Err(e) if Instant::now() > ready => {
                return Err(CliError::failed(format!("the store did not become ready: {e}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let workload = Workload::new(args.keys, args.gets);
    let cache = if args.gets == Gets::Cache { 10_000 } else { 0 };
    let mut clients = Vec::new();
    for id in 0..args.clients {
        let c = client(&tls, &eps, cache)?;
        clients.push(tokio::spawn(workload.clone().client(c, id, args.seed)));
    }
    let until = Arc::new(AtomicU64::new(u64::MAX));
    let watch_deadline = Instant::now() + Duration::from_secs(args.seconds + 120);
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let c = client(&tls, &eps, 0)?;
        watchers.push(tokio::spawn(record::watch(
            c,
            start,
            until.clone(),
            watch_deadline,
        )));
    }
    let faults = inject(args, &mut replicas, &probe, &eps, workload.base).await;
    workload.stop.store(true, Ordering::Release);
    for c in clients {
        let _ = c.await;
    }
    // Every replica runs again; the watchers must reach the last revision the store has.
    for i in 0..eps.len() {
        replicas.signal(i, Signal::SIGCONT);
    }
    let last = record::final_write(&probe, "/ready", watch_deadline).await?;
    until.store(last, Ordering::Release);
    let mut streams = Vec::new();
    for w in watchers {
        match w.await {
            Ok(Ok(events)) => streams.push(events),
            Ok(Err(e)) => return Err(CliError::failed(format!("watch: {e}"))),
            Err(e) => return Err(CliError::failed(format!("watch task: {e}"))),
        }
    }
    drop(replicas);
    let (checked, history) = check_history(&workload, &streams, start, last, mode_name);
    let mut report = serde_json::json!({ "read_mode": mode_name, "faults": faults });
    if let (Some(r), serde_json::Value::Object(c)) = (report.as_object_mut(), checked) {
        r.extend(c);
    }
    Ok((report, history))
}

/// Checks what `workload` recorded and what the watchers saw (from revision `start` to
/// `last`): unknown outcomes settled by a complete watch stream, then the history's
/// linearizability and each stream against it. Returns the report (`ops`, `verdict`,
/// `check_ms`, `watches`, `violations`) and the history.
pub(super) fn check_history(
    workload: &Workload,
    streams: &[Vec<watch::WatchEvent>],
    start: u64,
    last: u64,
    label: &str,
) -> (serde_json::Value, Vec<linearizability::Operation>) {
    let mut recorded = std::mem::take(&mut *workload.recorded.lock().unwrap_or_else(|e| e.into_inner()));
    let unknown = recorded.history.iter().filter(|o| o.ret == Ret::Unknown).count();
    let seen = recorded.seen();
    let sent = record::sent_values(&recorded.history);
    let mut watch_violations = 0;
    let watch_reports: Vec<serde_json::Value> = streams
        .iter()
        .map(|events| {
            let v = watch::check(start, last, events, &seen, &sent, |k| {
                k.starts_with(record::PREFIX)
            });
            watch_violations += v.len();
            serde_json::json!({ "events": events.len(), "violations": v })
        })
        .collect();
    // A complete, checked watch stream says which writes of unknown outcome took effect.
    let settled = match streams.first() {
        Some(events) if watch_violations == 0 => record::settle(&mut recorded, events),
        _ => 0,
    };
    eprintln!(
        "{label}: {} operations ({unknown} of unknown outcome, {settled} settled by the watch); checking",
        recorded.history.len()
    );
    let checked = Instant::now();
    let verdict = linearizability::check_with_budget(&recorded.history, CHECK_BUDGET);
    let check_ms = checked.elapsed().as_millis() as u64;
    let h = &recorded.history;
    let count = |f: &dyn Fn(&linearizability::Operation) -> bool| h.iter().filter(|o| f(o)).count();
    let violations = u64::from(!verdict.is_linearizable()) + watch_violations as u64;
    eprintln!("{label}: checked in {check_ms} ms: {violations} violations");
    let report = serde_json::json!({
        "ops": {
            "total": h.len(),
            "get": count(&|o| matches!(o.call, Call::Get { .. })),
            "put": count(&|o| matches!(o.call, Call::Put { .. })),
            "cas": count(&|o| matches!(o.call, Call::Cas { .. })),
            "txn": count(&|o| matches!(o.call, Call::Txn { .. })),
            "unknown_outcome": unknown,
            "settled_by_watch": settled,
            "unknown_after_settling": count(&|o| o.ret == Ret::Unknown),
        },
        "verdict": verdict_json(&verdict, h),
        "check_ms": check_ms,
        "watches": watch_reports,
        "violations": violations,
    });
    (report, recorded.history)
}

fn verdict_json(v: &Verdict, history: &[linearizability::Operation]) -> serde_json::Value {
    match v {
        Verdict::NotLinearizable(violation) => serde_json::json!({
            "not_linearizable": {
                "keys": violation.keys,
                "ops": violation.ops.len(),
                "unplaced": violation.unplaced.iter().take(5).map(|&i| &history[i]).collect::<Vec<_>>(),
            }
        }),
        other => serde_json::to_value(other).unwrap_or(serde_json::Value::Null),
    }
}

/// Injects the faults, evenly spaced over the run (each once the replicas have settled after
/// the one before); returns what it did once every fault is done and the run's time is up.
async fn inject(
    args: &LinzBenchArgs,
    replicas: &mut Replicas,
    probe: &crate::propertystore::PropertyStore,
    eps: &[SocketAddr],
    base: Instant,
) -> Faults {
    let end = base + Duration::from_secs(args.seconds);
    let gap = Duration::from_secs(args.seconds) / (args.faults + 1);
    let mut faults = Faults::default();
    for n in 0..args.faults {
        let at = base + gap * (n + 1);
        tokio::time::sleep_until(at.into()).await;
        let Ok(leader) = steady(probe, eps).await else {
            break;
        };
        let ms = base.elapsed().as_millis() as u64;
        eprintln!(
            "fault {} of {} at {ms} ms: {} the leader, replica {}",
            n + 1,
            args.faults,
            if n % 2 == 0 { "SIGKILL" } else { "SIGSTOP" },
            leader + 1
        );
        if n % 2 == 0 {
            replicas.kill(leader);
            faults.kills += 1;
            faults.log.push(("kill".into(), leader + 1, ms));
            wait_other_leader(probe, leader).await;
            let _ = replicas.spawn(leader);
        } else {
            replicas.signal(leader, Signal::SIGSTOP);
            faults.pauses += 1;
            faults.log.push(("pause".into(), leader + 1, ms));
            wait_other_leader(probe, leader).await;
            replicas.signal(leader, Signal::SIGCONT);
        }
    }
    tokio::time::sleep_until(end.into()).await;
    faults
}

/// Waits (up to 15 s) until a replica other than index `old` says it leads.
async fn wait_other_leader(probe: &crate::propertystore::PropertyStore, old: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let led = probe
            .status_all()
            .await
            .into_iter()
            .enumerate()
            .any(|(i, (_, s))| i != old && s.is_ok_and(|s| s.role == "leader"));
        if led {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
