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
//!
//!   the calling thread: watchdog ─► virtual time stood still for --stall-after (wall)
//!                                   ─► stop the run; a "progress" violation and its trace
//! ```
//!
//! Everything runs the real code over the in-memory transport on tokio's paused clock: a
//! virtual minute passes in seconds, and a seed replays identically — the network draws its
//! loss and delays from the seed, the store syncs its log, builds snapshots and flushes its
//! audit on the asking task and its replicas have fixed, distinct election timeouts,
//! time-based decisions read tokio's clock and wall stamps a simulated wall clock
//! ([`crate::clock::simulate`]), ids and generator seeds come from the seed
//! ([`crate::entropy::seeded`]), every `select!` is biased and watch channels wake their
//! waiters first come first served ([`crate::watch`]). The digest of the trace (faults,
//! transition events and client operations with virtual times) is the same in every run of
//! a seed, in this process or another; [`replay`] (`--replay-check`) runs a seed twice and
//! names the first line where the two traces part.

pub mod cluster;
pub mod faults;
pub mod invariants;
pub mod trace;
pub mod watchdog;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::cluster::{Recorder, SimCluster, CLUSTER, RESOURCES, SHAPE};
use self::faults::{schedule, Fault, Mix};
use self::invariants::Violation;
use self::trace::Kind;
use self::watchdog::{Stuck, Watchdog, DEFAULT_STALL_LIMIT};
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
/// The wall clock members see when a run starts (2026-01-01T00:00:00Z), ms since the epoch:
/// fixed, so records' stamps are the same in every replay ([`crate::clock::simulate`]).
pub const ORIGIN_UNIX_MS: u64 = 1_767_225_600_000;
/// Mixed into the seed of the run's randomness ([`crate::entropy::seeded`]), so it is not
/// the same stream as the network's or the faults'.
const ENTROPY_SALT: u64 = 0x0005_eed0_f1d5;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed of everything random.
    pub seed: u64,
    /// Fault steps.
    pub steps: usize,
    /// Which faults.
    pub mix: Mix,
    /// How long (wall time) virtual time may stand still while the cluster runs before the
    /// run is stopped and reported as failing (see [`watchdog`]).
    pub stall_after: Duration,
    /// Run the seed twice and fail it (a `replay` violation) if the two traces differ.
    pub replay_check: bool,
}

impl SimConfig {
    /// `steps` steps of `mix` for `seed`, stalls reported after [`DEFAULT_STALL_LIMIT`].
    pub fn new(seed: u64, steps: usize, mix: Mix) -> SimConfig {
        SimConfig {
            seed,
            steps,
            mix,
            stall_after: DEFAULT_STALL_LIMIT,
            replay_check: false,
        }
    }
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
    /// The whole trace (what [`Outcome::digest`] digests).
    #[serde(skip)]
    pub trace: Vec<trace::Line>,
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
    /// The run's thread ended without an outcome: something in the run panicked.
    #[error("seed {seed}: the run panicked (its message is above)")]
    Panicked {
        /// The seed.
        seed: u64,
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

/// What a run's thread shares with the thread that watches it.
#[derive(Default)]
struct Watched {
    /// Virtual ms since the run started, as last seen by a task of the run (every 100 ms
    /// of virtual time, while its tasks get to run).
    virtual_ms: AtomicU64,
    /// The cluster runs: virtual time must move (not while the invariants are checked).
    running: AtomicBool,
    /// What the run recorded so far (the trace of a stalled run comes from here).
    rec: Arc<Mutex<Recorder>>,
}

/// How long a stopped run's thread is given to return: a run stalled by a task that still
/// yields to the scheduler now and then ends at once; one stalled by a task that never yields
/// (or a thread that never returns) cannot be stopped.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs one seed on its own current-thread runtime with a paused clock, in a thread of its
/// own, while this thread watches its virtual time ([`watchdog`]). A run whose virtual time
/// stands still for [`SimConfig::stall_after`] while its cluster runs is stopped and reported
/// as failing with a `progress` violation ("no progress: virtual time stuck at …") and the
/// trace up to then. A stall caused by a task that never yields at all cannot be stopped: its
/// thread is left behind (the violation says so).
pub fn run(config: SimConfig) -> Result<Outcome, SimError> {
    let watched = Arc::new(Watched::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let shared = watched.clone();
    let thread = std::thread::Builder::new()
        .name(format!("sim-{}", config.seed))
        .spawn(move || {
            let _ = tx.send(run_here(config, shared, stopped));
        })
        .map_err(|e| SimError::Runtime(e.to_string()))?;
    let started = std::time::Instant::now();
    let mut dog = Watchdog::new(config.stall_after);
    let look_every = (config.stall_after / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        match rx.recv_timeout(look_every) {
            Ok(Some(r)) => {
                let _ = thread.join();
                return r;
            }
            Ok(None) => {
                let _ = thread.join();
                return Err(SimError::Runtime("the run stopped unasked".into()));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                return Err(SimError::Panicked { seed: config.seed });
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let virtual_ms = watched.virtual_ms.load(Ordering::Relaxed);
        let running = watched.running.load(Ordering::Relaxed);
        let Some(stuck) = dog.look(started.elapsed(), virtual_ms, running) else {
            continue;
        };
        // The run's main future wakes on this even while a task keeps the runtime busy,
        // as long as that task yields now and then.
        let _ = stop.send(());
        let ended = !matches!(rx.recv_timeout(STOP_GRACE), Err(RecvTimeoutError::Timeout));
        if ended {
            let _ = thread.join();
        }
        return Ok(stalled(config, &watched.rec, stuck, ended));
    }
}

/// The outcome of a run stopped by the watchdog: one `progress` violation, the trace up to
/// the stall.
fn stalled(config: SimConfig, rec: &Mutex<Recorder>, stuck: Stuck, ended: bool) -> Outcome {
    // The stalled run may hold the recorder's lock (it only ever does briefly): wait a
    // little for it, never for ever.
    let mut taken = None;
    for _ in 0..100 {
        match rec.try_lock() {
            Ok(mut r) => {
                taken = Some(std::mem::take(&mut *r));
                break;
            }
            Err(std::sync::TryLockError::Poisoned(p)) => {
                taken = Some(std::mem::take(&mut *p.into_inner()));
                break;
            }
            Err(std::sync::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let mut rec = taken.unwrap_or_default();
    // The watchdog sees virtual time every 100 ms of it; the trace may know a later instant.
    let at_us = rec
        .trace
        .lines()
        .iter()
        .map(|l| l.at_us)
        .fold(stuck.virtual_ms * 1_000, u64::max);
    let mut detail = format!(
        "no progress: virtual time stuck at {:.3} s for {} s of wall time (a task that never \
         waits, or one waiting on a thread that never finishes)",
        at_us as f64 / 1e6,
        stuck.for_wall.as_secs()
    );
    if !ended {
        detail.push_str("; the run could not be stopped, its thread is left behind");
    }
    rec.trace.push(at_us, Kind::Note, detail.clone());
    let violation = Violation {
        invariant: "progress".into(),
        detail,
        at_us: vec![at_us],
        subject: None,
    };
    let lines: Vec<_> = rec
        .trace
        .minimal(&violation.at_us, WINDOW_US, None)
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    Outcome {
        seed: config.seed,
        violations: vec![violation],
        digest: rec.trace.digest(),
        virtual_ms: at_us / 1_000,
        ops: 0,
        events: rec.events.len(),
        faults: config.steps,
        mix: config.mix,
        first_fault_us: 0,
        minimal_trace: trace::Trace::render(&lines),
        stalls: vec![],
        unsynced_lost: rec.unsynced_lost,
        trace: rec.trace.lines().to_vec(),
    }
}

/// The run on this thread; `None` if it was stopped.
fn run_here(
    config: SimConfig,
    watched: Arc<Watched>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Option<Result<Outcome, SimError>> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Some(Err(SimError::Runtime(e.to_string()))),
    };
    let r = rt.block_on(async move {
        // Every task of the run polls on this thread: its wall clock and its randomness
        // (ids, generators' seeds) are the run's, so a replay sees the same ones.
        let _clock = crate::clock::simulate(ORIGIN_UNIX_MS);
        let _entropy = crate::entropy::seeded(config.seed ^ ENTROPY_SALT);
        let t0 = tokio::time::Instant::now();
        let clock = watched.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                clock
                    .virtual_ms
                    .store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        });
        let r = tokio::select! {
            biased;
            Ok(()) = stop => None,
            r = run_async(config, &watched) => Some(r),
        };
        ticker.abort();
        r
    });
    if r.is_none() {
        // Stopped: the stalled task is dropped with the runtime; a blocking call that never
        // returns is not waited for.
        rt.shutdown_timeout(STOP_GRACE);
    }
    r
}

async fn run_async(config: SimConfig, watched: &Watched) -> Result<Outcome, SimError> {
    let seed = config.seed;
    let fail = |e: &dyn std::fmt::Display| SimError::Cluster {
        seed,
        reason: e.to_string(),
    };
    watched.running.store(true, Ordering::Relaxed);
    let mut c = SimCluster::start(seed, watched.rec.clone())
        .await
        .map_err(|e| fail(&e))?;
    let mut violations = Vec::new();
    let probe = c.client();
    if let Err(v) = converge(&c, &probe, "start").await {
        violations.push(v);
    }
    if crate::testing::virtual_time_stopped() {
        // Planted (tests of the watchdog): a task that never waits.
        tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
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
    // The checks below take wall time and no virtual time.
    watched.running.store(false, Ordering::Relaxed);

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
        trace: trace.lines().to_vec(),
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

/// Two runs of one seed.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The first run.
    pub first: Outcome,
    /// The second.
    pub second: Outcome,
}

impl Replay {
    /// Where the two traces first differ, as text; `None` if they are identical.
    pub fn divergence(&self) -> Option<String> {
        let (k, a, b) = trace::Trace::first_difference(&self.first.trace, &self.second.trace)?;
        let show = |l: Option<&trace::Line>| match l {
            Some(l) => trace::Trace::render(&[l]).trim_end().to_string(),
            None => "(the trace ended)".into(),
        };
        Some(format!(
            "the replay differs at trace line {k} of {}/{} (digests {:016x}/{:016x}): first run {} ; replay {}",
            self.first.trace.len(),
            self.second.trace.len(),
            self.first.digest,
            self.second.digest,
            show(a),
            show(b)
        ))
    }

    /// The first run's outcome, with a `replay` violation if the replay differed (its time
    /// is where the traces part).
    pub fn into_outcome(self) -> Outcome {
        let Some(detail) = self.divergence() else {
            return self.first;
        };
        let at_us = trace::Trace::first_difference(&self.first.trace, &self.second.trace)
            .and_then(|(_, a, b)| a.or(b).map(|l| l.at_us));
        let mut o = self.first;
        o.violations.push(Violation {
            invariant: "replay".into(),
            detail,
            at_us: at_us.into_iter().collect(),
            subject: None,
        });
        o
    }
}

/// Runs `config`'s seed twice, one run after the other, each on a runtime of its own.
pub fn replay(config: SimConfig) -> Result<Replay, SimError> {
    let first = run(config)?;
    let second = run(config)?;
    Ok(Replay { first, second })
}

/// Runs seeds `first..first + count` of `like` (its seed aside), each on its own runtime
/// (twice if [`SimConfig::replay_check`]), calling `each` after each.
pub fn run_batch(
    first: u64,
    count: u64,
    like: SimConfig,
    mut each: impl FnMut(&Result<Outcome, SimError>),
) -> Vec<Result<Outcome, SimError>> {
    (first..first.saturating_add(count))
        .map(|seed| {
            let config = SimConfig { seed, ..like };
            let r = if like.replay_check {
                replay(config).map(Replay::into_outcome)
            } else {
                run(config)
            };
            each(&r);
            r
        })
        .collect()
}
