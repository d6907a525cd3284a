//! `strand bench rebalance`: FULL_AUTO placement speed, balance and movement, and the
//! time of a whole controller pipeline round.
//!
//! A placement scenario places `partitions × replicas` on `instances` from an empty
//! previous placement (`full`), then recomputes after the instance in the middle of the
//! name order leaves (`leave`) and after a new instance joins (`join`), each from the full
//! placement. It reports times (p50 and max over the trials), the balance of the full
//! placement, and the replicas moved against the minimum.
//!
//! A pipeline scenario ([`RoundScenario`]) times [`crate::rebalance::compute`] on a steady
//! FULL_AUTO MasterSlave cluster (every replica at its best possible state, the preference
//! lists persisted in the ideal states as the controller writes them, throttle configs and
//! a message constraint set, nothing in flight), on the round after one instance fails (it
//! is not live; its current states are still in the snapshot and must be ignored), and on
//! the round after that, with the failure's transitions in flight. It times the same rounds
//! through [`Engine::round`], the incremental round the controller runs (each from an
//! engine warmed on the round before: steady after steady, the failure after steady, in
//! flight after the failure), and a round after a handful of current-state updates (five
//! of the in-flight transitions completed, in five resources, after the in-flight round).
//! The criterion benchmark `benches/rebalance.rs` runs the same [`Scenario`] and
//! [`RoundScenario`].

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cli::CliError;
use crate::model::{ClusterConfig, ClusterConstraints, IdealState, RebalanceMode, Record};
use crate::rebalance::pipeline::{compute, ClusterSnapshot, Decision, ResourceSnapshot};
use crate::rebalance::placement::{place, Placement, PlacementInput, ReplicaCount};
use crate::rebalance::Engine;
use crate::rebalance::InstanceInfo;

/// The default placement sizes: 1k×3 on 10, 10k×3 on 100, 100k×3 on 1000.
pub const DEFAULT_SIZES: [(usize, usize, usize); 3] = [(1_000, 3, 10), (10_000, 3, 100), (100_000, 3, 1_000)];

/// The default pipeline sizes (partitions, replicas, instances): 30k replicas on 100
/// instances, and 100k replicas (33,334 × 3) on 1,000 instances.
pub const PIPELINE_SIZES: [(usize, usize, usize); 2] = [(10_000, 3, 100), (33_334, 3, 1_000)];

/// Which scenarios `strand bench rebalance` runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchKind {
    /// Placement and pipeline scenarios.
    #[default]
    All,
    /// FULL_AUTO placement only.
    Placement,
    /// Whole pipeline rounds only.
    Pipeline,
}

/// Arguments of `strand bench rebalance`.
#[derive(Debug, clap::Args)]
pub struct RebalanceBenchArgs {
    /// Partitions (with any of the sizes given, one scenario runs; missing sizes are
    /// 10000 partitions, 3 replicas, 100 instances).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// Replicas per partition.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Instances.
    #[arg(long)]
    pub instances: Option<usize>,
    /// Timed runs of each placement computation.
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
    /// Timed pipeline rounds of each kind (steady, after a failure, with transitions in
    /// flight, after updates); a p99 is reported from 100 rounds.
    #[arg(long, default_value_t = 101)]
    pub rounds: usize,
    /// Resources the pipeline scenarios split the partitions over.
    #[arg(long, default_value_t = 10)]
    pub resources: usize,
    /// Which scenarios to run.
    #[arg(long, value_enum, default_value_t)]
    pub only: BenchKind,
    /// Print one JSON object per scenario (the default prints a table).
    #[arg(long)]
    pub json: bool,
}

/// One benchmark scenario: its inputs, ready to place.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Partition names.
    pub partitions: Vec<String>,
    /// Replicas per partition.
    pub replicas: usize,
    /// The instances, all live and enabled, without zones.
    pub instances: Vec<InstanceInfo>,
}

impl Scenario {
    /// `partitions × replicas` on `instances` instances.
    pub fn new(partitions: usize, replicas: usize, instances: usize) -> Self {
        Scenario {
            partitions: (0..partitions).map(|p| format!("bench_{p}")).collect(),
            replicas,
            instances: (0..instances)
                .map(|i| InstanceInfo::new(format!("node_{i:05}")))
                .collect(),
        }
    }

    /// Places on `instances` with `previous` as the previous placement.
    pub fn place_on(
        &self,
        instances: &[InstanceInfo],
        previous: &BTreeMap<String, Vec<String>>,
    ) -> Placement {
        place(&PlacementInput {
            resource: "bench",
            partitions: &self.partitions,
            replicas: ReplicaCount::Count(self.replicas),
            instances,
            previous,
            instance_group_tag: None,
            max_partitions_per_instance: None,
            delay: None,
            now_ms: 0,
        })
    }

    /// The full placement from an empty previous one.
    pub fn full(&self) -> Placement {
        self.place_on(&self.instances, &BTreeMap::new())
    }

    /// The instances without the one that leaves (the middle one), and its name.
    pub fn after_leave(&self) -> (Vec<InstanceInfo>, String) {
        let mid = self.instances.len() / 2;
        let mut rest = self.instances.clone();
        let gone = rest.remove(mid);
        (rest, gone.name)
    }

    /// The instances plus a new one.
    pub fn after_join(&self) -> Vec<InstanceInfo> {
        let mut more = self.instances.clone();
        more.push(InstanceInfo::new("node_joined"));
        more
    }
}

/// Replicas and top states (first positions) per instance.
pub fn counts(pl: &Placement) -> BTreeMap<&str, (usize, usize)> {
    let mut c: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for list in pl.preference_lists.values() {
        for (k, n) in list.iter().enumerate() {
            let e = c.entry(n.as_str()).or_default();
            e.0 += 1;
            if k == 0 {
                e.1 += 1;
            }
        }
    }
    c
}

/// Replicas of `new` that `old` did not have at the same partition.
pub fn moved(old: &Placement, new: &Placement) -> usize {
    new.preference_lists
        .iter()
        .map(|(p, l)| {
            let o = old.preference_lists.get(p);
            l.iter().filter(|n| !o.is_some_and(|o| o.contains(n))).count()
        })
        .sum()
}

/// The fewest moves that balance `total` replicas within ±1 when one empty instance joins
/// instances holding `counts`: the fullest keep the ceilings, the rest of each excess moves.
pub fn min_moves_on_join(counts: &[usize], total: usize) -> usize {
    let n = counts.len() + 1;
    let (q, rem) = (total / n, total % n);
    let mut sorted = counts.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted
        .iter()
        .enumerate()
        .map(|(i, c)| c.saturating_sub(if i < rem { q + 1 } else { q }))
        .sum()
}

/// The measured figures of one placement scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// `"placement"`.
    pub scenario: &'static str,
    /// Partitions.
    pub partitions: usize,
    /// Replicas per partition.
    pub replicas: usize,
    /// Instances.
    pub instances: usize,
    /// Full placement from empty.
    pub full_ms: Timing,
    /// Recomputation after one instance leaves.
    pub leave_ms: Timing,
    /// Recomputation after one instance joins.
    pub join_ms: Timing,
    /// Balance of the full placement.
    pub balance: Balance,
    /// Replicas moved by the join.
    pub moved_on_join: usize,
    /// The fewest moves a ±1-balanced placement after the join needs.
    pub min_moves_on_join: usize,
    /// Replicas moved by the leave.
    pub moved_on_leave: usize,
    /// Replicas the leaving instance held (the fewest moves a leave needs).
    pub leaver_replicas: usize,
    /// Partitions whose first instance (top state) changed on the join.
    pub tops_changed_on_join: usize,
    /// The fewest first-position changes a ±1 top balance after the join needs.
    pub min_tops_changed_on_join: usize,
}

/// Partitions whose first instance differs between `old` and `new`.
pub fn tops_changed(old: &Placement, new: &Placement) -> usize {
    new.preference_lists
        .iter()
        .filter(|(p, l)| old.preference_lists.get(*p).and_then(|o| o.first()) != l.first())
        .count()
}

/// p50, p99 and max of the trials (ms).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timing {
    /// Median.
    pub p50: f64,
    /// 99th percentile, from at least 100 trials (`None` with fewer).
    pub p99: Option<f64>,
    /// Slowest.
    pub max: f64,
    /// Median CPU time of the computing thread (ms), where the OS reports it
    /// (`/proc/thread-self/schedstat`): on a busy machine it excludes time spent waiting
    /// for a core. It advances at scheduler ticks, so runs shorter than a few
    /// milliseconds may read 0.
    pub cpu_p50: Option<f64>,
}

/// CPU time of the calling thread so far (ns), from Linux's schedstat.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Replicas and top states per instance, most and fewest.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Balance {
    /// Most replicas on one instance.
    pub max_replicas: usize,
    /// Fewest replicas on one instance.
    pub min_replicas: usize,
    /// Most top states on one instance.
    pub max_top: usize,
    /// Fewest top states on one instance.
    pub min_top: usize,
}

/// Runs `f` `trials` times (at least once); the times exclude dropping the results.
fn timed<T>(trials: usize, mut f: impl FnMut() -> T) -> (Timing, T) {
    timed_after(trials, &mut (), |_| (), |_| f())
}

/// Runs `prepare` (untimed) then `f` (timed) on `state`, `trials` times (at least once).
fn timed_after<S, T>(
    trials: usize,
    state: &mut S,
    mut prepare: impl FnMut(&mut S),
    mut f: impl FnMut(&mut S) -> T,
) -> (Timing, T) {
    let mut times = Vec::with_capacity(trials);
    let mut cpu = Vec::with_capacity(trials);
    let mut last = None;
    for _ in 0..trials.max(1) {
        prepare(state);
        let c = thread_cpu_ns();
        let t = Instant::now();
        let out = f(state);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if let (Some(a), Some(b)) = (c, thread_cpu_ns()) {
            cpu.push(b.saturating_sub(a) as f64 / 1e6);
        }
        last = Some(out);
    }
    let last = last.expect("at least one trial ran");
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let timing = Timing {
        p50: times[times.len() / 2],
        p99: (times.len() >= 100).then(|| times[(times.len() * 99).div_ceil(100) - 1]),
        max: times[times.len() - 1],
        cpu_p50: (cpu.len() == times.len()).then(|| cpu[cpu.len() / 2]),
    };
    (timing, last)
}

/// Runs one scenario `trials` times per computation.
pub fn run_scenario(partitions: usize, replicas: usize, instances: usize, trials: usize) -> Report {
    let sc = Scenario::new(partitions, replicas, instances);
    let (full_ms, full) = timed(trials, || sc.full());
    let (rest, gone) = sc.after_leave();
    let (leave_ms, left) = timed(trials, || sc.place_on(&rest, &full.preference_lists));
    let more = sc.after_join();
    let (join_ms, joined) = timed(trials, || sc.place_on(&more, &full.preference_lists));
    let c = counts(&full);
    let per_instance: Vec<(usize, usize)> = sc
        .instances
        .iter()
        .map(|x| c.get(x.name.as_str()).copied().unwrap_or((0, 0)))
        .collect();
    let balance = Balance {
        max_replicas: per_instance.iter().map(|v| v.0).max().unwrap_or(0),
        min_replicas: per_instance.iter().map(|v| v.0).min().unwrap_or(0),
        max_top: per_instance.iter().map(|v| v.1).max().unwrap_or(0),
        min_top: per_instance.iter().map(|v| v.1).min().unwrap_or(0),
    };
    let replica_counts: Vec<usize> = per_instance.iter().map(|v| v.0).collect();
    let total: usize = replica_counts.iter().sum();
    let top_counts: Vec<usize> = per_instance.iter().map(|v| v.1).collect();
    let tops: usize = top_counts.iter().sum();
    Report {
        scenario: "placement",
        partitions,
        replicas,
        instances,
        full_ms,
        leave_ms,
        join_ms,
        balance,
        moved_on_join: moved(&full, &joined),
        min_moves_on_join: min_moves_on_join(&replica_counts, total),
        moved_on_leave: moved(&full, &left),
        leaver_replicas: c.get(gone.as_str()).map_or(0, |v| v.0),
        tops_changed_on_join: tops_changed(&full, &joined),
        min_tops_changed_on_join: min_moves_on_join(&top_counts, tops),
    }
}

/// A whole pipeline round at scale: a steady FULL_AUTO MasterSlave cluster and the same
/// cluster after one instance failed (see the module docs).
#[derive(Debug, Clone)]
pub struct RoundScenario {
    /// Every replica at its best possible state, the preference lists persisted in the ideal
    /// states' listFields, nothing in flight.
    pub steady: ClusterSnapshot,
    /// The steady cluster after the instance in the middle of the name order failed: it is
    /// not live (went offline at `now_ms`); its current states are still listed.
    pub after_failure: ClusterSnapshot,
    /// `after_failure` with the transitions its round sends in flight.
    pub in_flight: ClusterSnapshot,
    /// `in_flight` after a handful of current-state updates: the first in-flight transition
    /// of each of (up to) five resources completed.
    pub updated: ClusterSnapshot,
    /// The failed instance.
    pub failed: String,
}

/// Throttles the pipeline scenarios run with: Helix-style per-instance recovery and
/// cluster-wide load-balance throttles, and a message constraint per instance.
fn throttled_config() -> (ClusterConfig, ClusterConstraints) {
    let mut config = Record::new("BENCH");
    config.list_fields.insert(
        "STATE_TRANSITION_THROTTLE_CONFIGS".into(),
        vec![
            r#"{"THROTTLE_SCOPE":"INSTANCE","MAX_PARTITION_IN_TRANSITION":"50","REBALANCE_TYPE":"RECOVERY_BALANCE"}"#
                .into(),
            r#"{"THROTTLE_SCOPE":"CLUSTER","MAX_PARTITION_IN_TRANSITION":"1000","REBALANCE_TYPE":"LOAD_BALANCE"}"#
                .into(),
        ],
    );
    let mut constraints = Record::new("MESSAGE_CONSTRAINT");
    constraints.map_fields.insert(
        "perInstance".into(),
        BTreeMap::from([
            ("MESSAGE_TYPE".to_string(), "STATE_TRANSITION".to_string()),
            ("INSTANCE".to_string(), ".*".to_string()),
            ("CONSTRAINT_VALUE".to_string(), "100".to_string()),
        ]),
    );
    (ClusterConfig::new(config), ClusterConstraints::new(constraints))
}

/// Every replica's transitions applied: the current states become the best possible ones.
fn apply(snapshot: &mut ClusterSnapshot, d: &Decision) {
    for res in &mut snapshot.resources {
        if let Some(rd) = d.resources.get(&res.name) {
            res.current_state = rd.best_possible.clone();
            if let Some(is) = res.ideal_state.as_mut() {
                is.record.list_fields = rd.preference_lists.clone();
            }
        }
    }
}

impl RoundScenario {
    /// `partitions × replicas` split over `resources` FULL_AUTO MasterSlave resources
    /// (`bench0`, `bench1`, …) on `instances` instances, brought to a steady state.
    pub fn new(partitions: usize, replicas: usize, instances: usize, resources: usize) -> Self {
        let resources = resources.clamp(1, partitions.max(1));
        let (config, constraints) = throttled_config();
        let mut steady = ClusterSnapshot {
            instances: (0..instances)
                .map(|i| InstanceInfo::new(format!("node_{i:05}")))
                .collect(),
            cluster_config: config,
            message_constraints: Some(constraints),
            now_ms: 1_000_000,
            ..Default::default()
        };
        for r in 0..resources {
            let n = partitions / resources + usize::from(r < partitions % resources);
            let mut is = IdealState::create(&format!("bench{r}"), n, "MasterSlave", RebalanceMode::FullAuto);
            is.record.set_simple("REPLICAS", replicas);
            steady.resources.push(ResourceSnapshot::new(is).into());
        }
        // Place, then let every replica reach its best possible state (placement is its own
        // fixed point, so one application is normally enough).
        for _ in 0..5 {
            let d = compute(&steady).expect("the bench cluster is valid");
            if d.moved == 0 && d.resources.values().all(|r| r.transitions.is_empty()) {
                break;
            }
            apply(&mut steady, &d);
        }
        let mut after_failure = steady.clone();
        let failed = after_failure.instances[instances / 2].name.clone();
        let now = after_failure.now_ms;
        for i in &mut after_failure.instances {
            if i.name == failed {
                i.live = false;
                i.offline_since_ms = Some(now);
            }
        }
        let d = compute(&after_failure).expect("the bench cluster is valid");
        let mut in_flight = after_failure.clone();
        for res in &mut in_flight.resources {
            if let Some(rd) = d.resources.get(&res.name) {
                res.pending = rd.transitions.clone();
            }
        }
        let mut updated = in_flight.clone();
        for res in updated
            .resources
            .iter_mut()
            .filter(|r| !r.pending.is_empty())
            .take(5)
        {
            let t = res.pending.remove(0);
            res.current_state
                .entry(t.partition.clone())
                .or_default()
                .insert(t.instance.clone(), t.to.clone());
        }
        RoundScenario {
            steady,
            after_failure,
            in_flight,
            updated,
            failed,
        }
    }

    /// Replicas in the steady cluster.
    pub fn replicas(&self) -> usize {
        self.steady
            .resources
            .iter()
            .flat_map(|r| r.current_state.values())
            .map(|h| h.len())
            .sum()
    }

    /// Replicas the failed instance held.
    pub fn failed_replicas(&self) -> usize {
        self.steady
            .resources
            .iter()
            .flat_map(|r| r.current_state.values())
            .filter(|h| h.contains_key(&self.failed))
            .count()
    }
}

/// The measured figures of one pipeline scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoundReport {
    /// `"pipeline"`.
    pub scenario: &'static str,
    /// Resources.
    pub resources: usize,
    /// Partitions over all resources.
    pub partitions: usize,
    /// Replicas per partition.
    pub replicas: usize,
    /// Instances.
    pub instances: usize,
    /// Replicas in the steady cluster.
    pub total_replicas: usize,
    /// Timed rounds of each kind.
    pub rounds: usize,
    /// A round on the steady cluster.
    pub pipeline_round_ms: Timing,
    /// The round after one instance failed.
    pub pipeline_round_after_failure_ms: Timing,
    /// The round after that, with the failure's transitions in flight.
    pub pipeline_round_in_flight_ms: Timing,
    /// The controller's incremental round ([`Engine::round`]) on the steady cluster, after
    /// a steady round: nothing changed.
    pub engine_round_ms: Timing,
    /// The incremental round after the failure, from an engine warm on the steady cluster.
    pub engine_round_after_failure_ms: Timing,
    /// The incremental round with the failure's transitions in flight, from an engine warm
    /// on the round after the failure.
    pub engine_round_in_flight_ms: Timing,
    /// The incremental round after five current-state updates in five resources, from an
    /// engine warm on the in-flight round.
    pub engine_round_after_updates_ms: Timing,
    /// Resources the round after the updates decided again from scratch.
    pub engine_decided_after_updates: usize,
    /// Resources the round after the updates patched (decided again only in the partitions
    /// that changed); the rest were reused.
    pub engine_patched_after_updates: usize,
    /// Resources the round after the failure patched (of all of them: every resource has
    /// replicas on the failed instance).
    pub engine_patched_after_failure: usize,
    /// Transitions the steady round sends (0: it is steady).
    pub sent_steady: usize,
    /// Replicas the failed instance held.
    pub failed_instance_replicas: usize,
    /// Transitions the round after the failure sends.
    pub sent_after_failure: usize,
    /// Candidates that round holds back (bounds, throttles).
    pub held_after_failure: usize,
    /// Transitions the round with the failure's transitions in flight sends.
    pub sent_in_flight: usize,
}

fn sent(d: &Decision) -> usize {
    d.resources.values().map(|r| r.transitions.len()).sum()
}

/// Runs one pipeline scenario, `rounds` timed rounds of each kind.
pub fn run_round_scenario(
    partitions: usize,
    replicas: usize,
    instances: usize,
    resources: usize,
    rounds: usize,
) -> RoundReport {
    let sc = RoundScenario::new(partitions, replicas, instances, resources);
    let round = |snap: &ClusterSnapshot| compute(snap).expect("the bench cluster is valid");
    let (steady_ms, steady) = timed(rounds, || round(&sc.steady));
    let (failure_ms, failure) = timed(rounds, || round(&sc.after_failure));
    let (in_flight_ms, in_flight) = timed(rounds, || round(&sc.in_flight));
    // The incremental round, each kind from an engine warmed on the round before it.
    let mut engine = Engine::new();
    let mut warm = |before: &ClusterSnapshot, timed_snap: &ClusterSnapshot| {
        timed_after(
            rounds,
            &mut engine,
            |e| {
                e.round(before).expect("the bench cluster is valid");
            },
            |e| {
                e.round(timed_snap).expect("the bench cluster is valid");
                e.last_round()
            },
        )
    };
    let (engine_steady_ms, _) = warm(&sc.steady, &sc.steady);
    let (engine_failure_ms, after_failure) = warm(&sc.steady, &sc.after_failure);
    let (engine_in_flight_ms, _) = warm(&sc.after_failure, &sc.in_flight);
    let (engine_updates_ms, after_updates) = warm(&sc.in_flight, &sc.updated);
    RoundReport {
        scenario: "pipeline",
        resources: sc.steady.resources.len(),
        partitions,
        replicas,
        instances,
        total_replicas: sc.replicas(),
        rounds: rounds.max(1),
        pipeline_round_ms: steady_ms,
        pipeline_round_after_failure_ms: failure_ms,
        pipeline_round_in_flight_ms: in_flight_ms,
        engine_round_ms: engine_steady_ms,
        engine_round_after_failure_ms: engine_failure_ms,
        engine_round_in_flight_ms: engine_in_flight_ms,
        engine_round_after_updates_ms: engine_updates_ms,
        engine_decided_after_updates: after_updates.decided,
        engine_patched_after_updates: after_updates.patched,
        engine_patched_after_failure: after_failure.patched,
        sent_steady: sent(&steady),
        failed_instance_replicas: sc.failed_replicas(),
        sent_after_failure: sent(&failure),
        held_after_failure: failure.resources.values().map(|r| r.held.len()).sum(),
        sent_in_flight: sent(&in_flight),
    }
}

/// Runs `strand bench rebalance`.
pub fn run(args: RebalanceBenchArgs) -> Result<(), CliError> {
    let custom = args.partitions.is_some() || args.replicas.is_some() || args.instances.is_some();
    let one = || {
        vec![(
            args.partitions.unwrap_or(10_000),
            args.replicas.unwrap_or(3),
            args.instances.unwrap_or(100),
        )]
    };
    let sizes: Vec<(usize, usize, usize)> = match args.only {
        BenchKind::Pipeline => Vec::new(),
        _ if custom => one(),
        _ => DEFAULT_SIZES.to_vec(),
    };
    let round_sizes: Vec<(usize, usize, usize)> = match args.only {
        BenchKind::Placement => Vec::new(),
        _ if custom => one(),
        _ => PIPELINE_SIZES.to_vec(),
    };
    for &(p, r, i) in sizes.iter().chain(&round_sizes) {
        if p == 0 || r == 0 || i < 2 {
            return Err(CliError::usage(format!(
                "need at least 1 partition, 1 replica and 2 instances (got {p}, {r}, {i})"
            )));
        }
    }
    if args.trials == 0 || args.rounds == 0 || args.resources == 0 {
        return Err(CliError::usage(
            "--trials, --rounds and --resources must be at least 1",
        ));
    }
    if !args.json && !sizes.is_empty() {
        println!(
            "{:>9} {:>3} {:>6} {:>10} {:>10} {:>10} {:>11} {:>9} {:>12} {:>13}",
            "PARTS",
            "R",
            "INSTS",
            "FULL_MS",
            "LEAVE_MS",
            "JOIN_MS",
            "REPLICAS",
            "TOPS",
            "JOIN_MOVED",
            "LEAVE_MOVED"
        );
    }
    for (p, r, i) in sizes {
        let rep = run_scenario(p, r, i, args.trials);
        if args.json {
            let line = serde_json::to_string(&rep).map_err(CliError::failed)?;
            println!("{line}");
        } else {
            let b = rep.balance;
            println!(
                "{:>9} {:>3} {:>6} {:>10.2} {:>10.2} {:>10.2} {:>11} {:>9} {:>12} {:>13}",
                p,
                r,
                i,
                rep.full_ms.p50,
                rep.leave_ms.p50,
                rep.join_ms.p50,
                format!("{}..{}", b.min_replicas, b.max_replicas),
                format!("{}..{}", b.min_top, b.max_top),
                format!("{}/{}", rep.moved_on_join, rep.min_moves_on_join),
                format!("{}/{}", rep.moved_on_leave, rep.leaver_replicas),
            );
        }
    }
    if !args.json && !round_sizes.is_empty() {
        println!(
            "{:>4} {:>9} {:>3} {:>6} {:>9} {:>7} {:>16} {:>16} {:>16} {:>16} {:>13}",
            "RES",
            "PARTS",
            "R",
            "INSTS",
            "REPLICAS",
            "ROUND",
            "STEADY_MS",
            "AFTER_FAIL_MS",
            "IN_FLIGHT_MS",
            "UPDATES_MS",
            "SENT/HELD"
        );
    }
    for (p, r, i) in round_sizes {
        let rep = run_round_scenario(p, r, i, args.resources, args.rounds);
        if args.json {
            let line = serde_json::to_string(&rep).map_err(CliError::failed)?;
            println!("{line}");
        } else {
            let t = |t: Timing| format!("{:.2} (max {:.1})", t.p50, t.max);
            println!(
                "{:>4} {:>9} {:>3} {:>6} {:>9} {:>7} {:>16} {:>16} {:>16} {:>16} {:>13}",
                rep.resources,
                p,
                r,
                i,
                rep.total_replicas,
                "full",
                t(rep.pipeline_round_ms),
                t(rep.pipeline_round_after_failure_ms),
                t(rep.pipeline_round_in_flight_ms),
                "-",
                format!("{}/{}", rep.sent_after_failure, rep.held_after_failure),
            );
            println!(
                "{:>4} {:>9} {:>3} {:>6} {:>9} {:>7} {:>16} {:>16} {:>16} {:>16} {:>13}",
                "",
                "",
                "",
                "",
                "",
                "engine",
                t(rep.engine_round_ms),
                t(rep.engine_round_after_failure_ms),
                t(rep.engine_round_in_flight_ms),
                t(rep.engine_round_after_updates_ms),
                "",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_scenario_reports_balance_and_movement() {
        let rep = run_scenario(60, 3, 6, 1);
        assert_eq!((rep.balance.min_replicas, rep.balance.max_replicas), (30, 30));
        assert_eq!((rep.balance.min_top, rep.balance.max_top), (10, 10));
        assert_eq!(rep.moved_on_leave, rep.leaver_replicas);
        assert_eq!(rep.leaver_replicas, 30);
        // 180 replicas on 7 instances: 26 (five of them) or 25; the old six give up 4–5 each.
        assert_eq!(rep.min_moves_on_join, 25);
        assert!(rep.moved_on_join as f64 <= 1.1 * rep.min_moves_on_join as f64);
    }

    #[test]
    fn a_join_changes_about_the_fewest_first_positions() {
        // Sparse small clusters can need chains of hand-overs; on a sized layout the
        // replicas handed to the new instance carry the tops it needs.
        let rep = run_scenario(1_000, 3, 10, 1);
        assert_eq!(rep.moved_on_join, rep.min_moves_on_join);
        assert!(
            rep.tops_changed_on_join as f64 <= 1.1 * rep.min_tops_changed_on_join as f64,
            "{} first positions changed, minimum {}",
            rep.tops_changed_on_join,
            rep.min_tops_changed_on_join
        );
    }

    #[test]
    fn a_small_pipeline_scenario_is_steady_and_reacts_to_the_failure() {
        let rep = run_round_scenario(60, 3, 6, 2, 1);
        assert_eq!(rep.total_replicas, 180);
        assert_eq!(rep.sent_steady, 0, "the steady cluster sends nothing");
        assert_eq!(rep.failed_instance_replicas, 30);
        // The failed instance's MASTERs are taken over and its replicas placed elsewhere.
        assert!(rep.sent_after_failure >= 30, "{rep:?}");
        // Five current-state updates in two resources: those two are patched, nothing is
        // decided from scratch; the failure patches both resources.
        assert_eq!(
            (rep.engine_decided_after_updates, rep.engine_patched_after_updates),
            (0, 2),
            "{rep:?}"
        );
        assert_eq!(rep.engine_patched_after_failure, 2, "{rep:?}");
    }

    #[test]
    fn min_moves_on_join_counts_the_excess_over_balanced_targets() {
        assert_eq!(min_moves_on_join(&[3, 3, 2, 2], 10), 2);
        assert_eq!(min_moves_on_join(&[3, 3], 6), 2);
    }
}
