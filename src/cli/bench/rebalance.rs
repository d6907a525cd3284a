//! `strand bench rebalance`: FULL_AUTO placement speed, balance and movement.
//!
//! Each scenario places `partitions × replicas` on `instances` from an empty previous
//! placement (`full`), then recomputes after the instance in the middle of the name order
//! leaves (`leave`) and after a new instance joins (`join`), each from the full placement.
//! It reports times (p50 and max over the trials), the balance of the full placement, and
//! the replicas moved against the minimum. The criterion benchmark `benches/rebalance.rs`
//! runs the same [`Scenario`].

use std::collections::BTreeMap;
use std::time::Instant;

use crate::cli::CliError;
use crate::rebalance::placement::{place, Placement, PlacementInput, ReplicaCount};
use crate::rebalance::InstanceInfo;

/// The default sizes: 1k×3 on 10, 10k×3 on 100, 100k×3 on 1000.
pub const DEFAULT_SIZES: [(usize, usize, usize); 3] = [(1_000, 3, 10), (10_000, 3, 100), (100_000, 3, 1_000)];

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
    /// Timed runs of each computation.
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
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

/// The measured figures of one scenario.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
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

/// p50 and max of the trials (ms).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Timing {
    /// Median.
    pub p50: f64,
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

fn timed(trials: usize, mut f: impl FnMut() -> Placement) -> (Timing, Placement) {
    let mut times = Vec::with_capacity(trials);
    let mut cpu = Vec::with_capacity(trials);
    let mut last = Placement::default();
    for _ in 0..trials.max(1) {
        let c = thread_cpu_ns();
        let t = Instant::now();
        last = f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if let (Some(a), Some(b)) = (c, thread_cpu_ns()) {
            cpu.push(b.saturating_sub(a) as f64 / 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let timing = Timing {
        p50: times[times.len() / 2],
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

/// Runs `strand bench rebalance`.
pub fn run(args: RebalanceBenchArgs) -> Result<(), CliError> {
    let sizes: Vec<(usize, usize, usize)> =
        if args.partitions.is_none() && args.replicas.is_none() && args.instances.is_none() {
            DEFAULT_SIZES.to_vec()
        } else {
            vec![(
                args.partitions.unwrap_or(10_000),
                args.replicas.unwrap_or(3),
                args.instances.unwrap_or(100),
            )]
        };
    for &(p, r, i) in &sizes {
        if p == 0 || r == 0 || i < 2 {
            return Err(CliError::usage(format!(
                "need at least 1 partition, 1 replica and 2 instances (got {p}, {r}, {i})"
            )));
        }
    }
    if args.trials == 0 {
        return Err(CliError::usage("--trials must be at least 1"));
    }
    if !args.json {
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
    fn min_moves_on_join_counts_the_excess_over_balanced_targets() {
        assert_eq!(min_moves_on_join(&[3, 3, 2, 2], 10), 2);
        assert_eq!(min_moves_on_join(&[3, 3], 6), 2);
    }
}
