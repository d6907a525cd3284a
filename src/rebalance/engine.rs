//! The incremental round: what the controller keeps from one round to the next.
//!
//! ```text
//!   ClusterSnapshot ──► cluster inputs equal to the last round's? (instances, cluster
//!     │                 config, state models, STATE_CONSTRAINT, maintenance switch)
//!     │                   no: forget every resource
//!     │ per resource:   its snapshot equal to the one it was decided from (and the clock
//!     │                 inside its delay windows)?  yes: reuse · no: decide it (pipeline)
//!     │ across the cluster: throttle every resource's candidates (every round)
//!     ▼
//!   &Decision  ==  compute(&snapshot)
//! ```
//!
//! [`Engine::round`] returns exactly what [`super::compute`] returns for the same snapshot
//! (the property test `tests/engine/incremental.rs` checks it after every step of random
//! change sequences). A cached resource is reused only when its whole input compares equal
//! to the input it was decided from: no hashes, no change notes that could be missed. The
//! comparison costs a walk over the resource's maps, far less than deciding it again.

use std::collections::BTreeMap;

use super::error::RebalanceError;
use super::pipeline::{
    order_output, sorted_resources, Cluster, ClusterInputs, ClusterSnapshot, Decision, HeldTransition,
    Planned, ResourceSnapshot,
};
use super::placement::{self, Placement, PlacementInput};
use super::throttle::Movement;

/// One resource as the last round decided it.
#[derive(Debug)]
struct Entry {
    /// The resource's snapshot it was decided from.
    input: ResourceSnapshot,
    /// The snapshot's clock then.
    now_ms: u64,
    /// Its bound rejections (the decision's `held` before throttling).
    bound_held: Vec<HeldTransition>,
    /// What it was decided into; its decision (lists, best possible) lives in
    /// [`Engine::decision`], so this one is left empty.
    planned: Planned,
}

impl Entry {
    /// Whether the entry is this round's decision for `res` at `now_ms`.
    fn holds_for(&self, res: &ResourceSnapshot, now_ms: u64) -> bool {
        let p = &self.planned;
        let clock_ok =
            !p.clock_sensitive || (now_ms >= self.now_ms && p.next_recompute_ms.is_none_or(|t| now_ms < t));
        clock_ok && self.input == *res
    }
}

/// What reuse a round made, for benches and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Resources decided again.
    pub decided: usize,
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
    /// resource whose inputs did not change since the last round.
    pub fn round(&mut self, snapshot: &ClusterSnapshot) -> Result<&Decision, RebalanceError> {
        self.round_with(snapshot, placement::place)
    }

    /// What the last round reused.
    pub fn last_round(&self) -> RoundStats {
        self.last
    }

    /// [`Engine::round`] with the FULL_AUTO placement given by the caller.
    pub fn round_with(
        &mut self,
        snapshot: &ClusterSnapshot,
        place: impl Fn(&PlacementInput<'_>) -> Placement,
    ) -> Result<&Decision, RebalanceError> {
        match self.decide(snapshot, &place) {
            Ok(()) => Ok(&self.decision),
            Err(e) => {
                // Entries and the decision may be half updated: start afresh next round.
                *self = Engine::default();
                Err(e)
            }
        }
    }

    fn decide(
        &mut self,
        snapshot: &ClusterSnapshot,
        place: &impl Fn(&PlacementInput<'_>) -> Placement,
    ) -> Result<(), RebalanceError> {
        let cluster = Cluster::new(snapshot)?;
        if !self.cluster.as_ref().is_some_and(|c| c.matches(snapshot)) {
            self.entries.clear();
            self.decision.resources.clear();
            self.cluster = Some(ClusterInputs::of(snapshot));
        }
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
        for res in &resources {
            let hit = self
                .entries
                .get(&res.name)
                .is_some_and(|e| e.holds_for(res, snapshot.now_ms));
            if hit {
                stats.reused += 1;
                continue;
            }
            stats.decided += 1;
            let mut planned = cluster.plan(res, place)?;
            let mut decision = std::mem::take(&mut planned.decision);
            let entry = Entry {
                input: (*res).clone(),
                now_ms: snapshot.now_ms,
                bound_held: std::mem::take(&mut decision.held),
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
            .flat_map(|e| e.planned.pending_moves.iter().cloned())
            .collect();
        let candidates: Vec<Movement> = self
            .entries
            .values()
            .flat_map(|e| e.planned.candidate_moves.iter().cloned())
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
            d.held.clone_from(&e.bound_held);
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
            snap.resources.push(ResourceSnapshot::new(is));
        }
        snap
    }

    /// Runs a round, checks it against the full one, and returns (decided, reused).
    fn checked(engine: &mut Engine, snap: &ClusterSnapshot) -> (usize, usize) {
        assert_eq!(*engine.round(snap).unwrap(), compute(snap).unwrap());
        let s = engine.last_round();
        (s.decided, s.reused)
    }

    #[test]
    fn an_unchanged_round_reuses_every_resource_and_equals_the_full_round() {
        let snap = cluster();
        let mut engine = Engine::new();
        assert_eq!(checked(&mut engine, &snap), (3, 0));
        assert_eq!(checked(&mut engine, &snap), (0, 3));
    }

    #[test]
    fn a_current_state_update_decides_only_its_resource_again() {
        let mut snap = cluster();
        let mut engine = Engine::new();
        let first = engine.round(&snap).unwrap().clone();
        // db1's first transition completes.
        let t = first.resources["db1"].transitions[0].clone();
        snap.resources[1]
            .current_state
            .entry(t.partition.clone())
            .or_default()
            .insert(t.instance.clone(), t.to.clone());
        assert_eq!(checked(&mut engine, &snap), (1, 2));
    }

    #[test]
    fn an_instance_failure_decides_every_resource_again() {
        let mut snap = cluster();
        let mut engine = Engine::new();
        engine.round(&snap).unwrap();
        snap.instances[1].live = false;
        assert_eq!(checked(&mut engine, &snap), (3, 0));
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
