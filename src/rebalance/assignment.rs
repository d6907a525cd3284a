//! State assignment: the best possible state of every replica, down each preference list.
//!
//! ```text
//!   preference list [A, B, C]   state counts MASTER:1, SLAVE:2   (StateBounds, N, R)
//!        │  walk the states in priority order, the list in order,
//!        │  skipping dead and disabled instances; the top state goes to a replica that
//!        │  already holds the top state or a secondary one when the list's choice holds
//!        │  neither (so an existing SLAVE becomes MASTER, not an OFFLINE one)
//!        ▼
//!   best possible {A: MASTER, B: SLAVE, C: SLAVE}
//! ```
//!
//! Rules kept from Helix: a disabled instance, a disabled partition or a disabled resource
//! gets the initial state; ERROR stays ERROR (until an operator resets it); an instance that
//! holds a replica but is not in the list gets DROPPED. Dead instances are never candidates
//! (their current states no longer count), so SEMI_AUTO, whose lists the application owns,
//! never re-places a dead instance's replicas. CUSTOMIZED takes the given map on live
//! instances only. The state counts come from the resource's [`StateBounds`]: the state
//! model's bounds unless a `STATE_CONSTRAINT` overrides them. Every function here is pure
//! and deterministic.

use std::collections::{BTreeMap, BTreeSet};

use super::bounds::StateBounds;
use super::NameSet;
use crate::statemodel::{StateModelDefinition, DROPPED, ERROR};

/// Which instances may serve one partition.
#[derive(Debug, Clone, Copy)]
pub struct Eligibility<'a> {
    /// Instances with a live session.
    pub live: &'a NameSet,
    /// Instances that must not serve this partition: the instance is disabled, the partition
    /// is disabled on it, or the whole resource is disabled.
    pub disabled: &'a BTreeSet<String>,
}

impl Eligibility<'_> {
    /// Live and not disabled.
    pub fn can_serve(&self, instance: &str) -> bool {
        self.live.contains(instance) && !self.disabled.contains(instance)
    }
}

/// The states from which the top state is one hop away (Helix's secondary states: SLAVE for
/// MasterSlave, STANDBY for LeaderStandby, BOOTSTRAP for OnlineOfflineWithBootstrap).
pub fn secondary_states(model: &StateModelDefinition) -> BTreeSet<&str> {
    model
        .states()
        .iter()
        .map(String::as_str)
        .filter(|s| is_secondary(model, s))
        .collect()
}

/// Whether `state` is one of [`secondary_states`].
fn is_secondary(model: &StateModelDefinition, state: &str) -> bool {
    let top = model.top_state();
    state != top && state != ERROR && model.is_transition(state, top)
}

/// The best possible states of one partition in FULL_AUTO or SEMI_AUTO.
///
/// `current` holds the current states of live instances only. `bounds` are the resource's
/// state bounds (the model's, or a `STATE_CONSTRAINT`'s). `replicas` is the replica count
/// (the `R` bound). The live candidates (the `N` bound) are the eligible instances of the
/// list.
pub fn assign_auto(
    model: &StateModelDefinition,
    bounds: &StateBounds,
    preference_list: &[String],
    current: &BTreeMap<String, String>,
    who: Eligibility<'_>,
    replicas: usize,
) -> BTreeMap<String, String> {
    let initial = model.initial_state();
    let mut best: BTreeMap<String, String> = BTreeMap::new();
    let in_list = |i: &str| preference_list.iter().any(|p| p == i);

    // Holders outside the list are dropped; disabled holders go to the initial state.
    for (instance, state) in current {
        if state == DROPPED {
            continue;
        }
        if who.disabled.contains(instance) {
            let target = if state == ERROR { ERROR } else { initial };
            best.insert(instance.clone(), target.to_string());
        } else if !in_list(instance) {
            best.insert(instance.clone(), DROPPED.to_string());
        }
    }

    // The candidates: eligible instances of the list, in list order, each once.
    let mut candidates: Vec<&String> = Vec::with_capacity(preference_list.len());
    for i in preference_list {
        if who.can_serve(i) && !candidates.contains(&i) {
            candidates.push(i);
        }
    }
    let total = candidates.len();
    // The same candidates (indices) by current state priority, highest first, ties in list
    // order; sorted only when the top state looks for a one-hop holder.
    let mut by_current: Option<Vec<usize>> = None;
    let mut next_by_current = 0;

    let top = model.top_state();
    // Candidates are taken in list order from `front`; `assigned` marks those that got a state.
    let mut assigned = vec![false; total];
    let mut assigned_count = 0;
    let mut front = 0;
    for (state, count) in bounds.state_counts(total, replicas) {
        let mut count = count;
        while front < total && count > 0 {
            if assigned[front] {
                front += 1;
                continue;
            }
            let peek = front;
            let held = current
                .get(candidates[peek].as_str())
                .map_or(initial, String::as_str);
            let mut proposed = peek;
            // Keep the top state where it can be had in one hop, unless every remaining
            // candidate needs a state anyway.
            if count < total - assigned_count && state == top && held != top && !is_secondary(model, held) {
                let order = by_current.get_or_insert_with(|| {
                    let priority_of = |k: &usize| {
                        current
                            .get(candidates[*k].as_str())
                            .and_then(|s| model.state_priority(s))
                            .unwrap_or(usize::MAX)
                    };
                    let mut order: Vec<usize> = (0..total).collect();
                    order.sort_by_key(priority_of);
                    order
                });
                while let Some(&other) = order.get(next_by_current) {
                    next_by_current += 1;
                    if !assigned[other] {
                        proposed = other;
                        break;
                    }
                }
            }
            if proposed == peek {
                front += 1;
            }
            let name = candidates[proposed];
            if current.get(name.as_str()).is_some_and(|s| s == ERROR) {
                best.insert(name.clone(), ERROR.to_string());
            } else {
                best.insert(name.clone(), state.to_string());
                count -= 1;
            }
            assigned[proposed] = true;
            assigned_count += 1;
        }
    }
    // Candidates that got no state: ERROR stays, a held replica goes to the initial state.
    for (c, _) in candidates.iter().zip(&assigned).filter(|(_, a)| !**a) {
        if let Some(state) = current.get(c.as_str()) {
            let target = if state == ERROR { ERROR } else { initial };
            best.insert((*c).clone(), target.to_string());
        }
    }
    best
}

/// The best possible states of one partition in CUSTOMIZED mode: `ideal` (instance → state)
/// on live instances; disabled ones get the initial state, ERROR stays ERROR, and holders the
/// map does not name get DROPPED.
pub fn assign_customized(
    model: &StateModelDefinition,
    ideal: &BTreeMap<String, String>,
    current: &BTreeMap<String, String>,
    who: Eligibility<'_>,
) -> BTreeMap<String, String> {
    let mut best = BTreeMap::new();
    for (instance, state) in current {
        if state != DROPPED && !ideal.contains_key(instance) {
            best.insert(instance.clone(), DROPPED.to_string());
        }
    }
    for (instance, state) in ideal {
        if !who.live.contains(instance) {
            continue;
        }
        let target = if current.get(instance).is_some_and(|s| s == ERROR) {
            ERROR
        } else if who.disabled.contains(instance) {
            model.initial_state()
        } else {
            state
        };
        best.insert(instance.clone(), target.to_string());
    }
    best
}

/// The best possible states of a partition of a dropped resource: every held replica walks
/// to DROPPED (ERROR included: `ERROR → DROPPED` is always a transition).
pub fn assign_dropped(current: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    current
        .iter()
        .filter(|(_, s)| *s != DROPPED)
        .map(|(i, _)| (i.clone(), DROPPED.to_string()))
        .collect()
}

/// The best possible states of one partition in maintenance mode: nothing is re-placed.
/// Every held replica keeps its state (disabled ones go to the initial state), and when no
/// replica holds the top state, the best existing one (highest current state, then `order`)
/// is promoted to it.
pub fn assign_maintenance(
    model: &StateModelDefinition,
    bounds: &StateBounds,
    order: &[String],
    current: &BTreeMap<String, String>,
    who: Eligibility<'_>,
    replicas: usize,
) -> BTreeMap<String, String> {
    let initial = model.initial_state();
    let mut best: BTreeMap<String, String> = BTreeMap::new();
    for (instance, state) in current {
        if state == DROPPED {
            continue;
        }
        let target = if state != ERROR && who.disabled.contains(instance) {
            initial
        } else {
            state
        };
        best.insert(instance.clone(), target.to_string());
    }
    let top = model.top_state();
    let wants_top = bounds
        .state_counts(best.len(), replicas)
        .first()
        .is_some_and(|(s, n)| *s == top && *n > 0);
    if wants_top && !best.values().any(|s| s == top) {
        let rank = |i: &String| order.iter().position(|o| o == i).unwrap_or(usize::MAX);
        let chosen = best
            .iter()
            .filter(|(i, s)| *s != ERROR && who.can_serve(i))
            .min_by_key(|(i, s)| (model.state_priority(s).unwrap_or(usize::MAX), rank(i), *i))
            .map(|(i, _)| i.clone());
        if let Some(i) = chosen {
            best.insert(i, top.to_string());
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`assign_auto`] with the state model's own bounds.
    fn auto(
        ms: &StateModelDefinition,
        preference_list: &[String],
        current: &BTreeMap<String, String>,
        who: Eligibility<'_>,
        replicas: usize,
    ) -> BTreeMap<String, String> {
        assign_auto(
            ms,
            &StateBounds::of_model(ms),
            preference_list,
            current,
            who,
            replicas,
        )
    }
    use crate::model::test_util::map;
    use crate::statemodel::builtin;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }
    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    struct Case {
        live: NameSet,
        disabled: BTreeSet<String>,
    }
    impl Case {
        fn new(live: &[&str], disabled: &[&str]) -> Self {
            Case {
                live: live.iter().map(|s| s.to_string()).collect(),
                disabled: set(disabled),
            }
        }
        fn who(&self) -> Eligibility<'_> {
            Eligibility {
                live: &self.live,
                disabled: &self.disabled,
            }
        }
    }

    #[test]
    fn fresh_partition_goes_down_the_list() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["a", "b", "c"], &[]);
        let best = auto(&ms, &list(&["b", "c", "a"]), &BTreeMap::new(), c.who(), 3);
        assert_eq!(best, map(&[("b", "MASTER"), ("c", "SLAVE"), ("a", "SLAVE")]));
    }

    #[test]
    fn existing_slave_is_promoted_not_an_offline_replica() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["a", "b", "c"], &[]);
        // a is first in the list but OFFLINE; c is already SLAVE.
        let current = map(&[("a", "OFFLINE"), ("c", "SLAVE")]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert_eq!(best, map(&[("a", "SLAVE"), ("b", "SLAVE"), ("c", "MASTER")]));
        // Once a is a SLAVE, the top state moves to the list's first.
        let current = map(&[("a", "SLAVE"), ("b", "SLAVE"), ("c", "MASTER")]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert_eq!(best, map(&[("a", "MASTER"), ("b", "SLAVE"), ("c", "SLAVE")]));
    }

    #[test]
    fn current_master_keeps_the_top_state_over_an_offline_first_choice() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["a", "b", "c"], &[]);
        let current = map(&[("b", "MASTER"), ("c", "SLAVE")]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert_eq!(best["b"], "MASTER");
        assert_eq!(best["a"], "SLAVE");
    }

    #[test]
    fn dead_first_choice_promotes_the_next_live_slave() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["b", "c"], &[]);
        let current = map(&[("b", "SLAVE"), ("c", "SLAVE")]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert_eq!(best, map(&[("b", "MASTER"), ("c", "SLAVE")]));
    }

    #[test]
    fn a_state_constraint_of_two_masters_gives_two_masters() {
        let ms = builtin("MasterSlave").unwrap();
        let mut bounds = StateBounds::of_model(&ms);
        bounds.set("MASTER", crate::statemodel::UpperBound::Count(2));
        let c = Case::new(&["a", "b", "c"], &[]);
        let best = assign_auto(
            &ms,
            &bounds,
            &list(&["b", "c", "a"]),
            &BTreeMap::new(),
            c.who(),
            3,
        );
        assert_eq!(best, map(&[("b", "MASTER"), ("c", "MASTER"), ("a", "SLAVE")]));
    }

    #[test]
    fn disabled_instance_and_disabled_partition_get_the_initial_state() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["a", "b", "c"], &["a"]);
        let current = map(&[("a", "MASTER"), ("b", "SLAVE"), ("c", "SLAVE")]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert_eq!(best, map(&[("a", "OFFLINE"), ("b", "MASTER"), ("c", "SLAVE")]));
        // A disabled resource: everybody disabled.
        let c = Case::new(&["a", "b", "c"], &["a", "b", "c"]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert!(best.values().all(|s| s == "OFFLINE"), "{best:?}");
    }

    #[test]
    fn error_stays_error_and_takes_no_count() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["a", "b", "c"], &[]);
        let current = map(&[("a", "ERROR"), ("b", "SLAVE"), ("c", "SLAVE")]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert_eq!(best["a"], "ERROR");
        assert_eq!(best.values().filter(|s| *s == "MASTER").count(), 1);
        // Disabled and in ERROR: still ERROR.
        let c = Case::new(&["a", "b", "c"], &["a"]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert_eq!(best["a"], "ERROR");
    }

    #[test]
    fn holders_outside_the_list_are_dropped() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["a", "b", "c", "d"], &[]);
        let current = map(&[("d", "MASTER"), ("a", "SLAVE"), ("x", "DROPPED")]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &current, c.who(), 3);
        assert_eq!(best["d"], "DROPPED");
        assert!(!best.contains_key("x"));
        assert_eq!(best["a"], "MASTER");
    }

    #[test]
    fn fewer_live_candidates_than_replicas_fill_the_top_state_first() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["c"], &[]);
        let best = auto(&ms, &list(&["a", "b", "c"]), &BTreeMap::new(), c.who(), 3);
        assert_eq!(best, map(&[("c", "MASTER")]));
    }

    #[test]
    fn storage_schemata_makes_every_candidate_master() {
        let ss = builtin("StorageSchemata").unwrap();
        let c = Case::new(&["a", "b", "c"], &[]);
        let best = assign_auto(
            &ss,
            &StateBounds::of_model(&ss),
            &list(&["a", "b", "c"]),
            &BTreeMap::new(),
            c.who(),
            3,
        );
        assert!(best.values().all(|s| s == "MASTER") && best.len() == 3);
    }

    #[test]
    fn secondary_states_are_one_hop_below_the_top() {
        let names = |m: &str| {
            let m = builtin(m).unwrap();
            secondary_states(&m)
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("MasterSlave"), ["SLAVE"]);
        assert_eq!(names("LeaderStandby"), ["STANDBY"]);
        assert_eq!(names("OnlineOfflineWithBootstrap"), ["BOOTSTRAP"]);
        assert_eq!(names("OnlineOffline"), ["OFFLINE"]);
        // A BOOTSTRAP replica is preferred for ONLINE over an OFFLINE one when only one is needed.
        let m = builtin("OnlineOfflineWithBootstrap").unwrap();
        let c = Case::new(&["a", "b"], &[]);
        let current = map(&[("a", "OFFLINE"), ("b", "BOOTSTRAP")]);
        let best = assign_auto(
            &m,
            &StateBounds::of_model(&m),
            &list(&["a", "b"]),
            &current,
            c.who(),
            1,
        );
        assert_eq!(best["b"], "ONLINE");
        assert_eq!(best["a"], "OFFLINE");
    }

    #[test]
    fn customized_uses_the_map_on_live_instances_only() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["a", "b", "d"], &["b"]);
        let ideal = map(&[("a", "MASTER"), ("b", "SLAVE"), ("c", "SLAVE")]);
        let current = map(&[("d", "SLAVE"), ("b", "SLAVE")]);
        let best = assign_customized(&ms, &ideal, &current, c.who());
        assert_eq!(best, map(&[("a", "MASTER"), ("b", "OFFLINE"), ("d", "DROPPED")]));
        let current = map(&[("a", "ERROR")]);
        assert_eq!(assign_customized(&ms, &ideal, &current, c.who())["a"], "ERROR");
    }

    #[test]
    fn dropped_resource_drops_every_replica() {
        let current = map(&[("a", "MASTER"), ("b", "ERROR"), ("c", "DROPPED")]);
        assert_eq!(
            assign_dropped(&current),
            map(&[("a", "DROPPED"), ("b", "DROPPED")])
        );
    }

    #[test]
    fn maintenance_recovers_only_a_missing_top_state() {
        let ms = builtin("MasterSlave").unwrap();
        let c = Case::new(&["b", "c"], &[]);
        let current = map(&[("b", "OFFLINE"), ("c", "SLAVE")]);
        let best = assign_maintenance(
            &ms,
            &StateBounds::of_model(&ms),
            &list(&["a", "b", "c"]),
            &current,
            c.who(),
            3,
        );
        assert_eq!(best, map(&[("b", "OFFLINE"), ("c", "MASTER")]));
        // With a MASTER present nothing changes, even off-balance.
        let current = map(&[("b", "MASTER"), ("c", "OFFLINE")]);
        let best = assign_maintenance(
            &ms,
            &StateBounds::of_model(&ms),
            &list(&["c", "b"]),
            &current,
            c.who(),
            3,
        );
        assert_eq!(best, current);
    }
}
