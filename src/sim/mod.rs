//! Deterministic simulation of a whole cluster (`strand sim`, issue 19 §1).
//!
//! ```text
//!   seed ─► faults::schedule ─► run loop (one current-thread runtime, paused clock)
//!                                 │  cluster: 3 store replicas, 2 controllers, 5 participants,
//!                                 │           3 store clients and a watcher, on MemNetwork(seed)
//!                                 │  each step: inject a fault, hold it, heal, settle
//!                                 ▼
//!                 recorded: transition events, client history, watch stream, trace
//!                                 ▼
//!                 invariants ─► violations + minimal trace; trace digest
//! ```
//!
//! Everything runs the real code over the in-memory transport on tokio's paused clock: a
//! virtual minute passes in seconds, and the run is repeatable — the network draws its loss
//! and delays from the seed, the store syncs its log on the appending task and its replicas
//! have fixed, distinct election timeouts, and time-based decisions read tokio's clock
//! ([`crate::clock`]). The digest of the trace (faults and transition events with virtual
//! times) shows whether a seed replays identically.

pub mod cluster;
pub mod faults;
pub mod invariants;
pub mod trace;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use self::cluster::{SimCluster, CLUSTER, RESOURCES, SHAPE};
use self::faults::{schedule, Fault, Mix};
use self::invariants::Violation;
use self::trace::Kind;
use crate::check::linearizability::Ret;
use crate::cli::bench::linz::record::{self, Gets, Workload};

/// Clients doing gets, puts, compare-and-sets and transactions during a run.
const CLIENTS: u32 = 3;
/// Keys they work on.
const KEYS: u64 = 3;
/// The pause after each client operation (virtual).
const PACE: Duration = Duration::from_millis(50);
/// How long the cluster may take to reach the best possible external view, at the start
/// and after the last heal (virtual).
pub const CONVERGENCE_BOUND: Duration = Duration::from_secs(60);
/// Events within this of a violation go into its minimal trace (µs).
const WINDOW_US: u64 = 2_000_000;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed of everything random.
    pub seed: u64,
    /// Fault steps.
    pub steps: usize,
    /// Which faults.
    pub mix: Mix,
}

/// What a run found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Broken invariants (none is a pass).
    pub violations: Vec<Violation>,
    /// The digest of the trace: the same seed gives the same digest.
    pub digest: u64,
    /// Virtual time the run covered, ms.
    pub virtual_ms: u64,
    /// Client operations recorded.
    pub ops: usize,
    /// Transition events recorded.
    pub events: usize,
    /// Fault steps run.
    pub faults: usize,
    /// Which faults they were drawn from.
    pub mix: Mix,
    /// Virtual µs of the first fault (after the cluster first converged).
    pub first_fault_us: u64,
    /// The fault steps and the events around the violations (empty on a pass).
    pub minimal_trace: String,
    /// What each stalled disk did.
    pub stalls: Vec<StallSeen>,
    /// WAL bytes the replicas' crashes dropped (written after their last fsync).
    pub unsynced_lost: u64,
}

/// What one [`Fault::StallDisk`] step did, seen when the stall ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StallSeen {
    /// The replica whose disk stalled.
    pub replica: u64,
    /// It led the store when its disk stalled.
    pub led: bool,
    /// Its disk guard had stepped it down when the stall ended.
    pub stepped_down: bool,
    /// The store leader when the stall ended.
    pub leader_at_heal: Option<u64>,
    /// How long the stall was held, ms.
    pub hold_ms: u64,
    /// Client operations answered (with a known outcome) while it was held.
    pub answered: usize,
}

/// Why a run could not be carried out (not a violation: the harness failed).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The runtime could not be built.
    #[error("cannot build the runtime: {0}")]
    Runtime(String),
    /// The run took longer than [`WALL_LIMIT`]: virtual time stopped moving (a livelock).
    #[error("seed {seed}: stalled at {virtual_ms} ms of virtual time (wall-clock limit passed)")]
    Stalled {
        /// The seed.
        seed: u64,
        /// Virtual time when it was last seen moving.
        virtual_ms: u64,
    },
    /// Starting or restarting a member failed.
    #[error("seed {seed}: {reason}")]
    Cluster {
        /// The seed.
        seed: u64,
        /// What failed.
        reason: String,
    },
}

/// How long one seed may take in wall-clock time before it is reported stalled: virtual
/// time that stops moving (a task that never yields to the timer) would hang the run.
pub const WALL_LIMIT: Duration = Duration::from_secs(300);

/// Runs one seed on its own current-thread runtime with a paused clock, in a thread of its
/// own; a seed whose run takes longer than [`WALL_LIMIT`] is reported [`SimError::Stalled`]
/// (its thread is left behind: nothing can stop a task that never yields).
pub fn run(config: SimConfig) -> Result<Outcome, SimError> {
    let virtual_ms = Arc::new(AtomicU64::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let clock = virtual_ms.clone();
    std::thread::Builder::new()
        .name(format!("sim-{}", config.seed))
        .spawn(move || {
            let _ = tx.send(run_here(config, clock));
        })
        .map_err(|e| SimError::Runtime(e.to_string()))?;
    match rx.recv_timeout(WALL_LIMIT) {
        Ok(r) => r,
        Err(_) => Err(SimError::Stalled {
            seed: config.seed,
            virtual_ms: virtual_ms.load(Ordering::Relaxed),
        }),
    }
}

fn run_here(config: SimConfig, clock: Arc<AtomicU64>) -> Result<Outcome, SimError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::Runtime(e.to_string()))?;
    rt.block_on(async move {
        let t0 = tokio::time::Instant::now();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                clock.store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        });
        let r = run_async(config).await;
        ticker.abort();
        r
    })
}

async fn run_async(config: SimConfig) -> Result<Outcome, SimError> {
    let seed = config.seed;
    let fail = |e: &dyn std::fmt::Display| SimError::Cluster {
        seed,
        reason: e.to_string(),
    };
    let mut c = SimCluster::start(seed).await.map_err(|e| fail(&e))?;
    let mut violations = Vec::new();
    let probe = c.client();
    if let Err(v) = converge(&c, &probe, "start").await {
        violations.push(v);
    }

    // The workload and the watcher.
    let mut workload = Workload::new(KEYS, Gets::Leader);
    workload.pace = PACE;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| tokio::spawn(workload.clone().client(c.client(), id, seed)))
        .collect();
    let until = Arc::new(AtomicU64::new(u64::MAX));
    let give_up = crate::clock::now() + Duration::from_secs(3_600);
    let watcher = tokio::spawn(record::watch(c.client(), 1, until.clone(), give_up));

    let steps = schedule(seed, config.steps, &SHAPE, config.mix);
    let first_fault_us = c.now_us();
    let since_base = || {
        crate::clock::now()
            .saturating_duration_since(workload.base)
            .as_nanos() as u64
    };
    let mut stalls = Vec::new();
    for (k, step) in steps.iter().enumerate() {
        let stall = match step.fault {
            Fault::StallDisk { replica } => Some((replica, c.leader() == Some(replica), since_base())),
            _ => None,
        };
        c.note(
            Kind::Fault,
            format!("step {k}: {} for {} ms", step.fault, step.hold_ms),
        );
        match &step.fault {
            Fault::Crash(m) => c.crash(*m).await.map_err(|e| fail(&e))?,
            other => c.cut(other),
        }
        tokio::time::sleep(Duration::from_millis(step.hold_ms)).await;
        if let Some((replica, led, from_ns)) = stall {
            let seen = StallSeen {
                replica,
                led,
                stepped_down: c.disk_stalled(replica),
                leader_at_heal: c.leader(),
                hold_ms: step.hold_ms,
                answered: 0,
            };
            c.note(
                Kind::Fault,
                format!(
                    "store-{replica}'s disk stalled: it led {}, stepped down {}, leader now {:?}",
                    seen.led, seen.stepped_down, seen.leader_at_heal
                ),
            );
            stalls.push((seen, from_ns, since_base()));
        }
        match &step.fault {
            Fault::Crash(m) => c.restart(*m).await.map_err(|e| fail(&e))?,
            _ => c.heal(),
        }
        c.note(
            Kind::Fault,
            format!("step {k}: healed; settle {} ms", step.settle_ms),
        );
        tokio::time::sleep(Duration::from_millis(step.settle_ms)).await;
    }
    c.heal();
    for m in c.down() {
        c.restart(m).await.map_err(|e| fail(&e))?;
    }
    c.note(Kind::Fault, "all healed");

    // (d) The external view reaches the best possible.
    if let Err(v) = converge(&c, &probe, "after the last heal").await {
        violations.push(v);
    }

    // Stop the clients; one last write marks the revision the watcher must reach.
    workload.stop.store(true, Ordering::Relaxed);
    for t in clients {
        let _ = t.await;
    }
    let deadline = crate::clock::now() + CONVERGENCE_BOUND;
    let last = record::final_write(&probe, "/sim-ready", deadline)
        .await
        .map_err(|e| fail(&e))?;
    until.store(last, Ordering::Release);
    let stream = match watcher.await {
        Ok(Ok(events)) => events,
        Ok(Err(e)) => {
            violations.push(Violation {
                invariant: "watch".into(),
                detail: e,
                at_us: vec![],
                subject: None,
            });
            vec![]
        }
        Err(e) => return Err(fail(&e)),
    };
    let virtual_ms = c.now_us() / 1_000;
    let rec = c.take_record();
    c.shutdown_members().await;

    let recorded = std::mem::take(&mut *workload.recorded.lock().unwrap_or_else(|e| e.into_inner()));
    let stalls = stalls
        .into_iter()
        .map(|(mut seen, from, to)| {
            seen.answered = recorded
                .history
                .iter()
                .filter(|o| o.ret != Ret::Unknown && o.complete >= from && o.complete <= to)
                .count();
            seen
        })
        .collect();
    let (store_violations, history) = invariants::store_history(recorded, &stream, last);
    violations.extend(store_violations);
    violations.extend(invariants::two_masters(&rec.events, &rec.ends));
    violations.extend(invariants::stale_epochs(&rec.events));
    if rec.lagged > 0 {
        violations.push(Violation {
            invariant: "setup".into(),
            detail: format!("the recorder missed {} transition events", rec.lagged),
            at_us: vec![],
            subject: None,
        });
    }

    let mut trace = rec.trace;
    trace.push(
        virtual_ms * 1_000,
        Kind::Note,
        format!("{} client operations", history.len()),
    );
    for o in &history {
        trace.push(
            o.complete / 1_000,
            Kind::Note,
            format!("client {} {:?} -> {:?}", o.client, o.call, o.ret),
        );
    }
    let minimal_trace = if violations.is_empty() {
        String::new()
    } else {
        let lines: Vec<_> = violations
            .iter()
            .flat_map(|v| trace.minimal(&v.at_us, WINDOW_US, v.subject.as_deref()))
            .filter(|(_, l)| l.kind != Kind::Note || !l.text.starts_with("client "))
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_values()
            .collect();
        trace::Trace::render(&lines)
    };
    Ok(Outcome {
        seed,
        digest: trace.digest(),
        virtual_ms,
        ops: history.len(),
        events: rec.events.len(),
        faults: steps.len(),
        mix: config.mix,
        first_fault_us,
        violations,
        minimal_trace,
        stalls,
        unsynced_lost: rec.unsynced_lost,
    })
}

/// Waits (virtual time, at most [`CONVERGENCE_BOUND`]) until every resource's external view
/// is the best possible; a violation if it is not.
async fn converge(
    c: &SimCluster,
    probe: &crate::propertystore::PropertyStore,
    when: &str,
) -> Result<(), Violation> {
    let deadline = tokio::time::Instant::now() + CONVERGENCE_BOUND;
    loop {
        let mut all = true;
        let mut last = Vec::new();
        for (resource, partitions, replicas, _) in RESOURCES {
            let view = SimCluster::external_view(probe, resource).await;
            let ok = view
                .as_ref()
                .is_some_and(|v| invariants::converged(v, partitions, replicas));
            all &= ok;
            last.push(format!("{resource}: {view:?}"));
        }
        if all {
            c.note(Kind::Note, format!("converged ({when})"));
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Violation {
                invariant: "convergence".into(),
                detail: format!(
                    "{CLUSTER}'s external view not the best possible {} s {when}: {}",
                    CONVERGENCE_BOUND.as_secs(),
                    last.join("; ")
                ),
                at_us: vec![c.now_us()],
                subject: None,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs seeds `first..first + count`, each on its own runtime, calling `each` after each.
pub fn run_batch(
    first: u64,
    count: u64,
    steps: usize,
    mix: Mix,
    mut each: impl FnMut(&Result<Outcome, SimError>),
) -> Vec<Result<Outcome, SimError>> {
    (first..first.saturating_add(count))
        .map(|seed| {
            let r = run(SimConfig { seed, steps, mix });
            each(&r);
            r
        })
        .collect()
}
