//! The incremental round: what the controller keeps from one round to the next.
//!
//! ```text
//!   ClusterSnapshot ──► cluster inputs (instances, cluster config, state models,
//!     │                 STATE_CONSTRAINT, maintenance switch) against the last round's:
//!     │                   same · only some instances' liveness/enabling/offline time ·
//!     │                   other: forget every resource
//!     │ per resource:   same snapshot, same liveness, clock inside its delay windows: reuse
//!     │                 same ideal state (liveness, current states or pending changed):
//!     │                   patch (placement again; only the touched partitions decided)
//!     │                 else: decide it (plan)
//!     │ across the cluster: throttle every resource's candidates (every round)
//!     ▼
//!   &Decision  ==  compute(&snapshot)
//! ```
//!
//! [`Engine::round`] returns exactly what [`super::compute`] returns for the same snapshot
//! (the property tests in `tests/engine/incremental.rs` check it after every step of random
//! change sequences). A cached resource is reused only when its whole input equals the
//! input it was decided from: no hashes, no change notes that could be missed. Snapshots
//! share their resources ([`super::Shared`]), so an unchanged resource is usually the very
//! value the engine holds and compares equal at once. A patch decides again every partition
//! whose inputs may differ ([`super::plan`] says what those are) and keeps the others.

use std::collections::BTreeMap;

use super::error::RebalanceError;
use super::holdings::Holdings;
use super::pipeline::{
    order_output, sorted_resources, Cluster, ClusterInputs, ClusterSnapshot, Decision, HeldTransition,
    ResourceSnapshot,
};
use super::plan::{Placer, Planned};
use super::shared::Shared;
use super::throttle::Movement;

/// One resource as the last round decided it.
#[derive(Debug)]
struct Entry {
    /// The resource's snapshot it was decided from (shared with that round's snapshot).
    input: Shared<ResourceSnapshot>,
    /// The snapshot's clock then.
    now_ms: u64,
    /// What it was decided into; its decision (lists, best possible) lives in
    /// [`Engine::decision`], so this one is left empty.
    planned: Planned,
}

impl Entry {
    /// Whether its placement still holds at `now_ms` (it read the clock only to ask which
    /// delay windows are open).
    fn clock_ok(&self, now_ms: u64) -> bool {
        let p = &self.planned;
        !p.clock_sensitive || (now_ms >= self.now_ms && p.next_recompute_ms.is_none_or(|t| now_ms < t))
    }

    /// Whether the entry is this round's decision for `res` at `now_ms`, the cluster-wide
    /// inputs being the same.
    fn holds_for(&self, res: &Shared<ResourceSnapshot>, now_ms: u64) -> bool {
        self.clock_ok(now_ms) && self.input == *res
    }
}

/// What reuse a round made, for benches and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Resources decided again from scratch.
    pub decided: usize,
    /// Resources decided again only in the partitions whose inputs changed.
    pub patched: usize,
    /// Resources reused from the last round.
    pub reused: usize,
}

/// The engine the leading controller keeps across rounds. A new leader starts with a new
/// one (as does a leader whose mirror was rebuilt); it is only ever a cache, so a fresh one
/// decides exactly as a warm one.
#[derive(Debug, Default)]
pub struct Engine {
    /// The cluster-wide inputs the entries were decided with.
    cluster: Option<ClusterInputs>,
    /// Whether they were decided in maintenance mode.
    maintenance: bool,
    entries: BTreeMap<String, Entry>,
    /// The last round's decision; resources with an entry are in it.
    decision: Decision,
    last: RoundStats,
}

impl Engine {
    /// An engine with nothing cached.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides a round: the same decision as [`super::compute`]`(snapshot)`, reusing every
    /// resource whose inputs did not change since the last round, and every partition whose
    /// inputs did not change in the others.
    pub fn round(&mut self, snapshot: &ClusterSnapshot) -> Result<&Decision, RebalanceError> {
        match self.decide(snapshot) {
            Ok(()) => Ok(&self.decision),
            Err(e) => {
                // Entries and the decision may be half updated: start afresh next round.
                *self = Engine::default();
                Err(e)
            }
        }
    }

    /// What the last round reused.
    pub fn last_round(&self) -> RoundStats {
        self.last
    }

    fn decide(&mut self, snapshot: &ClusterSnapshot) -> Result<(), RebalanceError> {
        let cluster = Cluster::new(snapshot)?;
        // Instances whose liveness changed: the resources are patched. Anything else
        // cluster-wide: every resource is decided again.
        let changed = self
            .cluster
            .as_ref()
            .and_then(|c| c.changed_instances(snapshot))
            .filter(|_| self.maintenance == cluster.maintenance().is_some());
        let changed = match changed {
            Some(c) => c,
            None => {
                self.entries.clear();
                self.decision.resources.clear();
                self.cluster = Some(ClusterInputs::of(snapshot));
                self.maintenance = cluster.maintenance().is_some();
                Vec::new()
            }
        };
        if !changed.is_empty() {
            self.cluster = Some(ClusterInputs::of(snapshot));
        }
        let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
        let resources = sorted_resources(snapshot)?;
        // Resources gone from the snapshot.
        let mut gone = Vec::new();
        {
            let mut now = resources.iter().map(|r| r.name.as_str()).peekable();
            for name in self.entries.keys() {
                while now.next_if(|n| *n < name.as_str()).is_some() {}
                if now.peek() != Some(&name.as_str()) {
                    gone.push(name.clone());
                }
            }
        }
        for name in gone {
            self.entries.remove(&name);
            self.decision.resources.remove(&name);
        }
        let mut stats = RoundStats::default();
        let now_ms = snapshot.now_ms;
        for res in &resources {
            if let Some(e) = self.entries.get_mut(&res.name) {
                if changed.is_empty() && e.holds_for(res, now_ms) {
                    stats.reused += 1;
                    continue;
                }
                let same = Shared::ptr_eq(&e.input, res);
                let clock_ok = e.clock_ok(now_ms);
                if let Some(d) = self.decision.resources.get_mut(&res.name) {
                    if cluster.patch(res, &e.input, same, &changed, clock_ok, &mut e.planned, d) {
                        e.input = (*res).clone();
                        e.now_ms = now_ms;
                        stats.patched += 1;
                        continue;
                    }
                }
            }
            stats.decided += 1;
            let mut planned = cluster.plan(res, Placer::Builtin)?;
            planned.holdings = Some(Holdings::of(&cluster, &res.current_state));
            let decision = std::mem::take(&mut planned.decision);
            let entry = Entry {
                input: (*res).clone(),
                now_ms,
                planned,
            };
            self.entries.insert(res.name.clone(), entry);
            self.decision.resources.insert(res.name.clone(), decision);
        }
        self.last = stats;

        // Across the cluster, every round: throttles see every resource's movements.
        let pending: Vec<Movement> = self
            .entries
            .values()
            .flat_map(|e| e.planned.pending_moves().cloned())
            .collect();
        let candidates: Vec<Movement> = self
            .entries
            .values()
            .flat_map(|e| e.planned.candidate_moves().cloned())
            .collect();
        let (accepted, held) = cluster.throttle(&pending, candidates);
        let mut decision = cluster.empty_decision();
        decision.stats = cluster.stats(
            self.entries
                .values()
                .map(|e| (e.planned.stats.as_slice(), &e.planned.other_stats)),
        );
        decision.resources = std::mem::take(&mut self.decision.resources);
        for (name, d) in decision.resources.iter_mut() {
            let e = &self.entries[name];
            d.transitions.clear();
            d.held = e.planned.bound_held();
            if let Some(t) = e.planned.next_recompute_ms {
                decision.next_recompute_ms = Some(decision.next_recompute_ms.map_or(t, |n| n.min(t)));
            }
            decision.moved += d.moved;
        }
        for m in accepted {
            if let Some(d) = decision.resources.get_mut(&m.resource) {
                d.transitions.push(m.transition);
            }
        }
        for (m, reason) in held {
            if let Some(d) = decision.resources.get_mut(&m.resource) {
                d.held.push(HeldTransition {
                    transition: m.transition,
                    reason,
                });
            }
        }
        for d in decision.resources.values_mut() {
            if !d.transitions.is_empty() || !d.held.is_empty() {
                order_output(d);
            }
        }
        self.decision = decision;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IdealState, RebalanceMode};
    use crate::rebalance::{compute, InstanceInfo};

    fn cluster() -> ClusterSnapshot {
        let mut snap = ClusterSnapshot {
            instances: (0..4).map(|i| InstanceInfo::new(format!("n{i}"))).collect(),
            ..Default::default()
        };
        for r in 0..3 {
            let mut is = IdealState::create(&format!("db{r}"), 6, "MasterSlave", RebalanceMode::FullAuto);
            is.record.set_simple("REPLICAS", 2);
            snap.resources.push(ResourceSnapshot::new(is).into());
        }
        snap
    }

    /// Runs a round, checks it against the full one, and returns (decided, reused); a
    /// patched resource counts as decided.
    fn checked(engine: &mut Engine, snap: &ClusterSnapshot) -> (usize, usize) {
        assert_eq!(*engine.round(snap).unwrap(), compute(snap).unwrap());
        let s = engine.last_round();
        (s.decided + s.patched, s.reused)
    }

    #[test]
    fn an_unchanged_round_reuses_every_resource_and_equals_the_full_round() {
        let snap = cluster();
        let mut engine = Engine::new();
        assert_eq!(checked(&mut engine, &snap), (3, 0));
        assert_eq!(checked(&mut engine, &snap), (0, 3));
    }

    #[test]
    fn a_current_state_update_patches_only_its_resource() {
        let mut snap = cluster();
        let mut engine = Engine::new();
        let first = engine.round(&snap).unwrap().clone();
        let t = first.resources["db1"].transitions[0].clone();
        snap.resources[1]
            .current_state
            .entry(t.partition.clone())
            .or_default()
            .insert(t.instance.clone(), t.to.clone());
        assert_eq!(checked(&mut engine, &snap), (1, 2));
        assert_eq!(engine.last_round().patched, 1);
    }

    #[test]
    fn an_instance_failure_return_and_disable_patch_every_resource_and_equal_the_full_round() {
        let mut snap = cluster();
        let mut engine = Engine::new();
        // Steady: every replica at its best possible state.
        for _ in 0..4 {
            let d = engine.round(&snap).unwrap().clone();
            for res in &mut snap.resources {
                res.current_state = d.resources[&res.name].best_possible.clone();
            }
        }
        let steady = snap.clone();
        let mut engine = Engine::new();
        engine.round(&steady).unwrap();
        // Down (its current states still listed), back, disabled, enabled.
        let mut down = steady.clone();
        down.instances[1].live = false;
        let mut disabled = steady.clone();
        disabled.instances[2].enabled = false;
        for snap in [&down, &steady, &disabled, &steady] {
            let d = engine.round(snap).unwrap().clone();
            assert_eq!(d, compute(snap).unwrap());
            let s = engine.last_round();
            assert_eq!((s.decided, s.patched, s.reused), (0, 3, 0));
        }
        // The failure moved something: the patched rounds are not trivially equal.
        assert_ne!(compute(&down).unwrap(), compute(&steady).unwrap());
    }

    #[test]
    fn a_delay_window_closing_decides_the_resource_again_though_nothing_else_changed() {
        let mut snap = cluster();
        snap.cluster_config.record.set_simple("DELAY_REBALANCE_TIME", 500);
        snap.now_ms = 10_000;
        let mut engine = Engine::new();
        let placed = engine.round(&snap).unwrap().clone();
        for res in &mut snap.resources {
            res.current_state = placed.resources[&res.name].best_possible.clone();
        }
        snap.instances[1].live = false;
        snap.instances[1].offline_since_ms = Some(10_000);
        let delayed = engine.round(&snap).unwrap().clone();
        assert_eq!(delayed, compute(&snap).unwrap());
        assert_eq!(delayed.next_recompute_ms, Some(10_500));
        // Inside the window: reused. At its end: decided again, the places given up.
        snap.now_ms = 10_499;
        assert_eq!(checked(&mut engine, &snap), (0, 3));
        snap.now_ms = 10_500;
        assert_eq!(checked(&mut engine, &snap), (3, 0));
        assert_ne!(compute(&snap).unwrap().resources, delayed.resources);
    }

    #[test]
    fn a_dropped_resource_leaves_the_decision_and_an_error_is_the_full_rounds() {
        let mut snap = cluster();
        let mut engine = Engine::new();
        engine.round(&snap).unwrap();
        snap.resources.remove(2);
        let d = engine.round(&snap).unwrap().clone();
        assert!(!d.resources.contains_key("db2"));
        assert_eq!(d, compute(&snap).unwrap());
        snap.resources.push(snap.resources[0].clone());
        assert_eq!(
            engine.round(&snap).unwrap_err().to_string(),
            compute(&snap).unwrap_err().to_string()
        );
        snap.resources.pop();
        assert_eq!(*engine.round(&snap).unwrap(), compute(&snap).unwrap());
    }
}
