//! Selection: accept transitions only while every state's bound holds, counting pending ones.
//!
//! ```text
//!   counts  = current states of replicas with nothing in flight
//!           + both ends of every pending transition (MASTER→SLAVE counts a MASTER and a SLAVE)
//!           + the lingering states of ended sessions (a MASTER cut off from the cluster,
//!             until its session lease has surely run out)
//!   for each candidate, highest transition priority first:
//!       accept when counts[to] + 1 ≤ bound(to), then counts[to] += 1
//! ```
//!
//! This is what makes a MASTER hand-over safe: while `A: MASTER→SLAVE` is in flight, A still
//! counts as a MASTER, so `B: SLAVE→MASTER` is accepted only in a round after A's
//! transition completed. Fixed bounds (`1`) and `N` bounds are never exceeded. An `R`
//! bound (a replica count) has one exception: a demotion of a replica that is on its way
//! further down (its best possible state is below the transition's target, as for a MASTER
//! leaving the partition: `MASTER→SLAVE→OFFLINE→DROPPED`) is not held back by it. A MASTER
//! can leave only through SLAVE; when R SLAVEs already exist (a new replica came up while the
//! old MASTER was still serving), holding that demotion back would stall the partition for
//! ever, with the promotion of its successor waiting on it. Every other transition, and
//! every promotion, respects `R` too.
//!
//! The bounds are the resource's [`StateBounds`]: the state model's, unless a
//! `STATE_CONSTRAINT` item overrides them (see [`super::bounds`]).

use std::collections::BTreeMap;

use super::bounds::StateBounds;
use super::transitions::ReplicaTransition;
use crate::statemodel::{StateModelDefinition, UpperBound, DROPPED};

/// A state's bound, resolved to a number for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedBound {
    /// At most this many replicas in the state.
    pub max: usize,
    /// The bound came from `R` (so demotions may pass it; see the module docs).
    pub replica_bound: bool,
}

/// Every bounded state of a resource, resolved with the number of live candidate instances
/// (`N`) and the replica count (`R`). Unbounded states are absent.
pub fn resolve_bounds(
    bounds: &StateBounds,
    live_candidates: usize,
    replicas: usize,
) -> BTreeMap<String, ResolvedBound> {
    bounds
        .iter()
        .filter(|(_, bound)| *bound != UpperBound::Unbounded)
        .map(|(s, bound)| {
            (
                s.to_string(),
                ResolvedBound {
                    max: bound.resolve(live_candidates, replicas),
                    replica_bound: bound == UpperBound::Replicas,
                },
            )
        })
        .collect()
}

/// How many replicas of one partition are in (or entering, or leaving) each state: the
/// current state of every replica with nothing in flight, and both ends of every pending
/// transition. DROPPED is not counted.
pub fn counts_in_flight(
    current: &BTreeMap<String, String>,
    pending: &[ReplicaTransition],
    lingering: &[String],
) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut bump = |s: &str| {
        if s != DROPPED {
            *counts.entry(s.to_string()).or_default() += 1;
        }
    };
    for (instance, state) in current {
        if !pending.iter().any(|p| &p.instance == instance) {
            bump(state);
        }
    }
    for p in pending {
        if !crate::testing::selection_broken() {
            bump(&p.from);
        }
        if p.to != p.from {
            bump(&p.to);
        }
    }
    if !crate::testing::selection_broken() {
        for state in lingering {
            bump(state);
        }
    }
    counts
}

/// Why a candidate transition was not selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundRejection {
    /// The transition held back.
    pub transition: ReplicaTransition,
    /// The state whose bound it would exceed.
    pub state: String,
    /// That bound.
    pub bound: usize,
}

/// The result of [`select`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The transitions that may be sent, in the order they were accepted.
    pub accepted: Vec<ReplicaTransition>,
    /// The transitions held back by a state bound.
    pub rejected: Vec<BoundRejection>,
}

/// Sorts transitions by the model's transition priority (highest first), then by instance.
pub fn sort_by_priority(model: &StateModelDefinition, transitions: &mut [ReplicaTransition]) {
    transitions.sort_by(|a, b| {
        let pa = model.transition_priority(&a.from, &a.to).unwrap_or(usize::MAX);
        let pb = model.transition_priority(&b.from, &b.to).unwrap_or(usize::MAX);
        (pa, &a.instance, &a.partition).cmp(&(pb, &b.instance, &b.partition))
    });
}

/// Selects, among one partition's candidates, those that keep every state within its bound,
/// counting `current`, `pending` and `lingering` first (see the module docs). `best` is the
/// partition's best possible map (instance → state), which the `R` exception looks at.
pub fn select(
    model: &StateModelDefinition,
    bounds: &BTreeMap<String, ResolvedBound>,
    current: &BTreeMap<String, String>,
    pending: &[ReplicaTransition],
    lingering: &[String],
    best: &BTreeMap<String, String>,
    mut candidates: Vec<ReplicaTransition>,
) -> Selection {
    let mut counts = counts_in_flight(current, pending, lingering);
    sort_by_priority(model, &mut candidates);
    let mut out = Selection::default();
    for t in candidates {
        let count = counts.get(&t.to).copied().unwrap_or(0);
        let verdict = match bounds.get(&t.to) {
            None => Ok(()),
            Some(b) if count < b.max => Ok(()),
            Some(b) if b.replica_bound && passes_through(model, &t, best.get(&t.instance)) => Ok(()),
            Some(b) => Err(b.max),
        };
        match verdict {
            Ok(()) => {
                *counts.entry(t.to.clone()).or_default() += 1;
                out.accepted.push(t);
            }
            Err(bound) => out.rejected.push(BoundRejection {
                state: t.to.clone(),
                transition: t,
                bound,
            }),
        }
    }
    out
}

/// Whether `t` is a demotion of a replica whose best possible state is lower still (it only
/// passes through `t.to` on its way down).
fn passes_through(model: &StateModelDefinition, t: &ReplicaTransition, target: Option<&String>) -> bool {
    let below = match (
        target.and_then(|s| model.state_priority(s)),
        model.state_priority(&t.to),
    ) {
        (Some(target), Some(to)) => target > to,
        _ => false,
    };
    below && is_demotion(model, t)
}

/// Whether a transition moves a replica to a lower-priority state.
pub fn is_demotion(model: &StateModelDefinition, t: &ReplicaTransition) -> bool {
    match (model.state_priority(&t.from), model.state_priority(&t.to)) {
        (Some(from), Some(to)) => to > from,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::map;
    use crate::statemodel::{builtin, StateModelDefinition};

    fn t(instance: &str, from: &str, to: &str) -> ReplicaTransition {
        ReplicaTransition::new("p", instance, from, to)
    }

    /// [`select`] with every candidate's target being its `to` (no replica passes through).
    fn sel(
        m: &StateModelDefinition,
        b: &BTreeMap<String, ResolvedBound>,
        current: &BTreeMap<String, String>,
        pending: &[ReplicaTransition],
        candidates: Vec<ReplicaTransition>,
    ) -> Selection {
        let best = candidates
            .iter()
            .map(|t| (t.instance.clone(), t.to.clone()))
            .collect();
        select(m, b, current, pending, &[], &best, candidates)
    }

    fn ms() -> (StateModelDefinition, BTreeMap<String, ResolvedBound>) {
        let m = builtin("MasterSlave").unwrap();
        let b = resolve_bounds(&StateBounds::of_model(&m), 3, 3);
        (m, b)
    }

    #[test]
    fn bounds_resolve_n_and_r() {
        let (_, b) = ms();
        assert_eq!(
            b["MASTER"],
            ResolvedBound {
                max: 1,
                replica_bound: false
            }
        );
        assert_eq!(
            b["SLAVE"],
            ResolvedBound {
                max: 3,
                replica_bound: true
            }
        );
        assert!(!b.contains_key("OFFLINE"));
        let ss = builtin("StorageSchemata").unwrap();
        assert_eq!(resolve_bounds(&StateBounds::of_model(&ss), 5, 3)["MASTER"].max, 5);
    }

    #[test]
    fn pending_counts_both_ends() {
        let c = counts_in_flight(
            &map(&[("a", "MASTER"), ("b", "SLAVE"), ("c", "DROPPED")]),
            &[t("a", "MASTER", "SLAVE")],
            &[],
        );
        assert_eq!(c, BTreeMap::from([("MASTER".into(), 1), ("SLAVE".into(), 2)]));
    }

    #[test]
    fn hand_over_demotes_first_and_promotes_after_completion() {
        let (m, b) = ms();
        // Round 1: A is MASTER; both transitions are candidates; only A's demotion passes.
        let current = map(&[("a", "MASTER"), ("b", "SLAVE")]);
        let s = sel(
            &m,
            &b,
            &current,
            &[],
            vec![t("b", "SLAVE", "MASTER"), t("a", "MASTER", "SLAVE")],
        );
        assert_eq!(s.accepted, vec![t("a", "MASTER", "SLAVE")]);
        assert_eq!(s.rejected.len(), 1);
        assert_eq!(s.rejected[0].state, "MASTER");
        // Round 2: A's demotion is still in flight: B must wait.
        let s = sel(
            &m,
            &b,
            &current,
            &[t("a", "MASTER", "SLAVE")],
            vec![t("b", "SLAVE", "MASTER")],
        );
        assert!(s.accepted.is_empty());
        // Round 3: A completed.
        let current = map(&[("a", "SLAVE"), ("b", "SLAVE")]);
        let s = sel(&m, &b, &current, &[], vec![t("b", "SLAVE", "MASTER")]);
        assert_eq!(s.accepted, vec![t("b", "SLAVE", "MASTER")]);
    }

    #[test]
    fn a_lingering_master_of_an_ended_session_blocks_a_promotion_until_it_is_gone() {
        let (m, b) = ms();
        // The MASTER's session ended (its instance is no longer among the holders), but it
        // may still act as MASTER: b's promotion waits; SLAVEs are not held back by it.
        let current = map(&[("b", "SLAVE")]);
        let lingering = vec!["MASTER".to_string()];
        let best = map(&[("b", "MASTER"), ("c", "SLAVE")]);
        let promote = vec![t("b", "SLAVE", "MASTER"), t("c", "OFFLINE", "SLAVE")];
        let s = select(&m, &b, &current, &[], &lingering, &best, promote.clone());
        assert_eq!(s.accepted, vec![t("c", "OFFLINE", "SLAVE")]);
        assert_eq!(s.rejected[0].transition, t("b", "SLAVE", "MASTER"));
        assert_eq!(s.rejected[0].state, "MASTER");
        // Once the lease ran out it lingers no more.
        let s = select(&m, &b, &current, &[], &[], &best, promote);
        assert_eq!(s.accepted.len(), 2);
    }

    #[test]
    fn pending_promotion_blocks_a_second_one() {
        let (m, b) = ms();
        let current = map(&[("a", "SLAVE"), ("b", "SLAVE")]);
        let s = sel(
            &m,
            &b,
            &current,
            &[t("a", "SLAVE", "MASTER")],
            vec![t("b", "SLAVE", "MASTER")],
        );
        assert!(s.accepted.is_empty());
    }

    #[test]
    fn two_promotions_in_one_round_take_only_the_first() {
        let (m, b) = ms();
        let current = map(&[("a", "SLAVE"), ("b", "SLAVE")]);
        let s = sel(
            &m,
            &b,
            &current,
            &[],
            vec![t("b", "SLAVE", "MASTER"), t("a", "SLAVE", "MASTER")],
        );
        assert_eq!(s.accepted, vec![t("a", "SLAVE", "MASTER")]);
    }

    #[test]
    fn replica_bound_lets_only_a_leaving_replica_pass() {
        let (m, b) = ms();
        // Three SLAVEs already (R = 3) and d, the old MASTER, is leaving the partition: its
        // MASTER→SLAVE passes (it only passes through SLAVE); a fourth OFFLINE→SLAVE waits.
        let current = map(&[("a", "SLAVE"), ("b", "SLAVE"), ("c", "SLAVE"), ("d", "MASTER")]);
        let best = map(&[
            ("a", "MASTER"),
            ("b", "SLAVE"),
            ("c", "SLAVE"),
            ("d", "DROPPED"),
            ("e", "SLAVE"),
        ]);
        let s = select(
            &m,
            &b,
            &current,
            &[],
            &[],
            &best,
            vec![t("e", "OFFLINE", "SLAVE"), t("d", "MASTER", "SLAVE")],
        );
        assert_eq!(s.accepted, vec![t("d", "MASTER", "SLAVE")]);
        assert_eq!(s.rejected[0].transition, t("e", "OFFLINE", "SLAVE"));
        assert_eq!(s.rejected[0].bound, 3);
        // A MASTER that stays as a SLAVE waits for room like everybody else.
        let best = map(&[("a", "MASTER"), ("b", "SLAVE"), ("c", "DROPPED"), ("d", "SLAVE")]);
        let s = select(&m, &b, &current, &[], &[], &best, vec![t("d", "MASTER", "SLAVE")]);
        assert!(s.accepted.is_empty());
        assert_eq!(s.rejected[0].state, "SLAVE");
    }

    #[test]
    fn transition_priority_decides_who_gets_a_scarce_slot() {
        // A model where OFFLINE→SLAVE outranks SLAVE→MASTER, and MASTER's bound is 1.
        let m = StateModelDefinition::builder("P")
            .initial_state("OFFLINE")
            .state_with_priority("MASTER", 1)
            .state_with_priority("SLAVE", 2)
            .state_with_priority("OFFLINE", 3)
            .upper_bound("MASTER", UpperBound::Count(1))
            .upper_bound("SLAVE", UpperBound::Count(1))
            .transition_with_priority("OFFLINE", "SLAVE", 1)
            .transition_with_priority("SLAVE", "MASTER", 2)
            .transition_with_priority("MASTER", "SLAVE", 3)
            .transition_with_priority("SLAVE", "OFFLINE", 4)
            .build()
            .unwrap();
        let b = resolve_bounds(&StateBounds::of_model(&m), 3, 2);
        // b is SLAVE and a wants SLAVE too: a's OFFLINE→SLAVE is looked at first but SLAVE is
        // full (b counts until its promotion completes), so only b's promotion is sent.
        let current = map(&[("b", "SLAVE")]);
        let s = sel(
            &m,
            &b,
            &current,
            &[],
            vec![t("b", "SLAVE", "MASTER"), t("a", "OFFLINE", "SLAVE")],
        );
        assert_eq!(s.accepted, vec![t("b", "SLAVE", "MASTER")]);
        assert_eq!(s.rejected[0].transition, t("a", "OFFLINE", "SLAVE"));
        // With SLAVE free, the higher-priority OFFLINE→SLAVE goes first and takes the slot.
        let s = sel(
            &m,
            &b,
            &map(&[("c", "MASTER")]),
            &[],
            vec![t("b", "OFFLINE", "SLAVE"), t("a", "OFFLINE", "SLAVE")],
        );
        assert_eq!(s.accepted, vec![t("a", "OFFLINE", "SLAVE")]);
    }

    #[test]
    fn a_state_constraint_of_two_masters_lets_two_promotions_through() {
        let m = builtin("MasterSlave").unwrap();
        let mut bounds = StateBounds::of_model(&m);
        bounds.set("MASTER", UpperBound::Count(2));
        let b = resolve_bounds(&bounds, 3, 3);
        let current = map(&[("a", "SLAVE"), ("b", "SLAVE"), ("c", "SLAVE")]);
        let s = sel(
            &m,
            &b,
            &current,
            &[],
            vec![
                t("a", "SLAVE", "MASTER"),
                t("b", "SLAVE", "MASTER"),
                t("c", "SLAVE", "MASTER"),
            ],
        );
        assert_eq!(
            s.accepted,
            vec![t("a", "SLAVE", "MASTER"), t("b", "SLAVE", "MASTER")]
        );
        assert_eq!(s.rejected[0].bound, 2);
    }

    #[test]
    fn unbounded_states_always_pass() {
        let (m, b) = ms();
        let current = map(&[("a", "SLAVE"), ("b", "SLAVE")]);
        let s = sel(
            &m,
            &b,
            &current,
            &[],
            vec![t("a", "SLAVE", "OFFLINE"), t("b", "SLAVE", "OFFLINE")],
        );
        assert_eq!(s.accepted.len(), 2);
    }
}
