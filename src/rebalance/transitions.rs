//! Transitions: the next hop from each replica's current state toward its best possible state.
//!
//! ```text
//!   current  {A: MASTER, B: OFFLINE}          best possible  {A: SLAVE, B: MASTER}
//!        │  per replica: next hop on the state model's shortest path
//!        ▼
//!   candidates  A: MASTER→SLAVE   B: OFFLINE→SLAVE   (B reaches MASTER in a later round)
//! ```
//!
//! A replica with a transition already in flight gets no new one: its next hop is decided
//! once that transition has ended. A replica the current state does not list is in the
//! model's initial state; DROPPED in a current state means "not held".

use std::collections::{BTreeMap, BTreeSet};

use crate::statemodel::{StateModelDefinition, DROPPED};

/// A transition of one replica: `instance` moves `partition` from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ReplicaTransition {
    /// The partition (`myDB_0`).
    pub partition: String,
    /// The instance that runs the transition.
    pub instance: String,
    /// The state it leaves.
    pub from: String,
    /// The state it enters.
    pub to: String,
}

impl ReplicaTransition {
    /// A transition of `partition` on `instance` from `from` to `to`.
    pub fn new(
        partition: impl Into<String>,
        instance: impl Into<String>,
        from: impl Into<String>,
        to: impl Into<String>,
    ) -> Self {
        ReplicaTransition {
            partition: partition.into(),
            instance: instance.into(),
            from: from.into(),
            to: to.into(),
        }
    }
}

/// The next state on the way from `current` to `target`, or `None` when the replica is
/// already there or the model has no path (a replica in ERROR only leaves by reset or drop).
pub fn next_hop<'m>(model: &'m StateModelDefinition, current: &str, target: &str) -> Option<&'m str> {
    if current == target {
        return None;
    }
    model.next_hop(current, target)
}

/// The candidate transitions of one partition: for every replica whose current state differs
/// from its best possible state and that has nothing in flight (`busy`), the next hop.
/// Replicas the best possible map does not name keep their state. The result is ordered by
/// instance name.
pub fn partition_candidates(
    model: &StateModelDefinition,
    partition: &str,
    current: &BTreeMap<String, String>,
    best: &BTreeMap<String, String>,
    busy: &BTreeSet<String>,
) -> Vec<ReplicaTransition> {
    let initial = model.initial_state();
    let mut out = Vec::new();
    for (instance, target) in best {
        if busy.contains(instance) {
            continue;
        }
        let from = match current.get(instance).map(String::as_str) {
            None | Some(DROPPED) => initial,
            Some(s) => s,
        };
        // A replica that is not held needs nothing to be dropped.
        if target == DROPPED && current.get(instance).is_none_or(|s| s == DROPPED) {
            continue;
        }
        if let Some(to) = next_hop(model, from, target) {
            out.push(ReplicaTransition::new(partition, instance, from, to));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::map;
    use crate::statemodel::builtin;

    #[test]
    fn offline_to_master_goes_through_slave() {
        let ms = builtin("MasterSlave").unwrap();
        assert_eq!(next_hop(&ms, "OFFLINE", "MASTER"), Some("SLAVE"));
        assert_eq!(next_hop(&ms, "SLAVE", "MASTER"), Some("MASTER"));
        assert_eq!(next_hop(&ms, "MASTER", "DROPPED"), Some("SLAVE"));
        assert_eq!(next_hop(&ms, "MASTER", "MASTER"), None);
        assert_eq!(next_hop(&ms, "ERROR", "DROPPED"), Some("DROPPED"));
        assert_eq!(next_hop(&ms, "ERROR", "MASTER"), None);
    }

    #[test]
    fn candidates_skip_busy_replicas_and_unheld_drops() {
        let ms = builtin("MasterSlave").unwrap();
        let current = map(&[("a", "MASTER"), ("b", "SLAVE"), ("c", "DROPPED")]);
        let best = map(&[
            ("a", "SLAVE"),
            ("b", "MASTER"),
            ("c", "DROPPED"),
            ("d", "MASTER"),
            ("e", "DROPPED"),
        ]);
        let busy = BTreeSet::from(["b".to_string()]);
        let got = partition_candidates(&ms, "p", &current, &best, &busy);
        assert_eq!(
            got,
            vec![
                ReplicaTransition::new("p", "a", "MASTER", "SLAVE"),
                ReplicaTransition::new("p", "d", "OFFLINE", "SLAVE"),
            ]
        );
    }

    #[test]
    fn absent_replica_is_in_the_initial_state() {
        let oo = builtin("OnlineOffline").unwrap();
        let got = partition_candidates(
            &oo,
            "p",
            &BTreeMap::new(),
            &map(&[("a", "ONLINE"), ("b", "OFFLINE")]),
            &BTreeSet::new(),
        );
        assert_eq!(got, vec![ReplicaTransition::new("p", "a", "OFFLINE", "ONLINE")]);
    }
}
