//! What a round tells about the cluster's health, for the controller's metrics; pure.
//!
//! ```text
//!   snapshot (current states, pending) + decision (best possible, held)
//!     ▼ health                     partitions missing their top state, partitions below
//!                                  their minimum of active replicas, transitions throttled
//!   pending of the last round (+ what it sent) + this snapshot
//!     ▼ ended                      transitions no longer pending: completed (the replica is
//!                                  in the target state) or failed (it is in ERROR)
//! ```
//!
//! A replica is *active* in any state but its model's initial state (OFFLINE), ERROR and
//! DROPPED. A partition's minimum is the ideal state's `MIN_ACTIVE_REPLICAS` when set, else
//! every replica the best possible map places in an active state, and never more than that.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::fields::{FROM_STATE, PARTITION_NAME, RESOURCE_NAME, TGT_NAME, TO_STATE};
use crate::model::Record;
use crate::rebalance::pipeline::HoldReason;
use crate::rebalance::transitions::ReplicaTransition;
use crate::rebalance::{ClusterSnapshot, Decision};
use crate::statemodel::{builtin, StateModelDefinition, DROPPED, ERROR};

/// The cluster's health as one round sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Partitions of enabled resources with no replica in the model's top state.
    pub missing_top_state: usize,
    /// Partitions with fewer active replicas than their minimum.
    pub below_min_active: usize,
    /// Transitions a throttle or message constraint held back this round.
    pub throttled: usize,
}

/// Transitions that stopped being pending between two rounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ended {
    /// The replica reached the target state (or, for DROPPED, is gone).
    pub completed: usize,
    /// The replica went to ERROR.
    pub failed: usize,
}

/// A pending transition, by resource.
pub type PendingKey = (String, ReplicaTransition);

fn model<'a>(
    snapshot: &'a ClusterSnapshot,
    name: &str,
    builtins: &'a mut Option<StateModelDefinition>,
) -> Option<&'a StateModelDefinition> {
    if let Some(m) = snapshot.state_models.get(name) {
        return Some(m);
    }
    *builtins = builtin(name);
    builtins.as_ref()
}

fn active(model: &StateModelDefinition, state: &str) -> bool {
    state != model.initial_state() && state != ERROR && state != DROPPED
}

/// Partitions missing their top state, below their minimum of active replicas, and the
/// transitions throttled, from a round's snapshot and decision.
pub fn health(snapshot: &ClusterSnapshot, decision: &Decision) -> Health {
    let mut out = Health {
        throttled: decision
            .resources
            .values()
            .flat_map(|d| &d.held)
            .filter(|h| matches!(h.reason, HoldReason::Throttled(_)))
            .count(),
        ..Health::default()
    };
    let empty = BTreeMap::new();
    for res in &snapshot.resources {
        let Some(ideal) = &res.ideal_state else { continue };
        if !ideal.enabled().unwrap_or(true) {
            continue;
        }
        let Some(d) = decision.resources.get(&res.name) else {
            continue;
        };
        let mut builtin_model = None;
        let Some(m) = model(snapshot, &d.state_model, &mut builtin_model) else {
            continue;
        };
        let top = m.top_state();
        let min_set = ideal.min_active_replicas().ok().flatten();
        // Both maps are ordered by partition: walk them together instead of looking up.
        let mut currents = res.current_state.iter().peekable();
        for (partition, best) in &d.best_possible {
            while currents.next_if(|(p, _)| *p < partition).is_some() {}
            let current = currents
                .next_if(|(p, _)| *p == partition)
                .map_or(&empty, |(_, m)| m);
            if !current.values().any(|s| s == top) {
                out.missing_top_state += 1;
            }
            let wanted = best.values().filter(|s| active(m, s)).count();
            let min = min_set.map_or(wanted, |n| n.min(wanted));
            if current.values().filter(|s| active(m, s)).count() < min {
                out.below_min_active += 1;
            }
        }
    }
    out
}

/// Every transition pending in `snapshot`, by resource.
pub fn pending(snapshot: &ClusterSnapshot) -> BTreeSet<PendingKey> {
    snapshot
        .resources
        .iter()
        .flat_map(|r| r.pending.iter().map(|t| (r.name.clone(), t.clone())))
        .collect()
}

/// The transitions of the message records a round sent, as pending keys: they count as
/// pending from then on, even when they end before a later round's snapshot could show them
/// pending. Records without the fields are skipped.
pub fn sent<'a, I>(records: I) -> impl Iterator<Item = PendingKey> + 'a
where
    I: IntoIterator<Item = &'a Record>,
    I::IntoIter: 'a,
{
    records.into_iter().filter_map(|r| {
        let field = |k| r.simple(k).map(str::to_string);
        let t = ReplicaTransition::new(
            field(PARTITION_NAME)?,
            field(TGT_NAME)?,
            field(FROM_STATE)?,
            field(TO_STATE)?,
        );
        Some((field(RESOURCE_NAME)?, t))
    })
}

/// How the transitions pending `before` and no longer pending `now` ended, by the current
/// states of `snapshot` (whose pending transitions `now` is). Those whose replica is neither
/// in the target state nor in ERROR (its session ended, the message was discarded) count as
/// neither.
pub fn ended(before: &BTreeSet<PendingKey>, now: &BTreeSet<PendingKey>, snapshot: &ClusterSnapshot) -> Ended {
    let mut out = Ended::default();
    if before.is_empty() {
        return out;
    }
    let by_name: BTreeMap<&str, _> = snapshot.resources.iter().map(|r| (r.name.as_str(), r)).collect();
    for (resource, t) in before.difference(now) {
        let state = by_name
            .get(resource.as_str())
            .and_then(|r| r.current_state.get(&t.partition))
            .and_then(|m| m.get(&t.instance));
        match state.map(String::as_str) {
            Some(s) if s == t.to => out.completed += 1,
            Some(ERROR) => out.failed += 1,
            None if t.to == DROPPED => out.completed += 1,
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IdealState, RebalanceMode};
    use crate::rebalance::pipeline::{HeldTransition, ResourceDecision};
    use crate::rebalance::throttle::ThrottleReason;
    use crate::rebalance::ResourceSnapshot;

    fn states(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(i, s)| (i.to_string(), s.to_string()))
            .collect()
    }

    /// One MasterSlave resource `db` of two partitions, three replicas wanted on a, b, c.
    fn cluster(current: [&[(&str, &str)]; 2]) -> (ClusterSnapshot, Decision) {
        let ideal = IdealState::create("db", 2, "MasterSlave", RebalanceMode::FullAuto);
        let mut res = ResourceSnapshot::new(ideal);
        let best = states(&[("a", "MASTER"), ("b", "SLAVE"), ("c", "SLAVE")]);
        let mut d = ResourceDecision {
            state_model: "MasterSlave".into(),
            ..Default::default()
        };
        for (k, cur) in current.iter().enumerate() {
            let p = format!("db_{k}");
            res.current_state.insert(p.clone(), states(cur));
            d.best_possible.insert(p, best.clone());
        }
        let snapshot = ClusterSnapshot {
            resources: vec![res.into()],
            ..Default::default()
        };
        let mut decision = Decision::default();
        decision.resources.insert("db".into(), d);
        (snapshot, decision)
    }

    #[test]
    fn a_partition_without_a_master_misses_its_top_state_and_is_below_its_minimum() {
        let (s, d) = cluster([
            &[("a", "MASTER"), ("b", "SLAVE"), ("c", "SLAVE")],
            &[("b", "SLAVE"), ("c", "OFFLINE")],
        ]);
        let h = health(&s, &d);
        assert_eq!(h.missing_top_state, 1);
        assert_eq!(
            h.below_min_active, 1,
            "db_1 has one active replica of three wanted"
        );
        assert_eq!(h.throttled, 0);
    }

    #[test]
    fn min_active_replicas_lowers_the_minimum_and_a_disabled_resource_counts_nothing() {
        let (mut s, d) = cluster([
            &[("a", "MASTER"), ("b", "SLAVE")],
            &[("a", "MASTER"), ("b", "ERROR"), ("c", "OFFLINE")],
        ]);
        let ideal = s.resources[0].ideal_state.as_mut().unwrap();
        ideal.record.set_simple("MIN_ACTIVE_REPLICAS", 2);
        assert_eq!(
            health(&s, &d).below_min_active,
            1,
            "ERROR and OFFLINE are not active"
        );
        let ideal = s.resources[0].ideal_state.as_mut().unwrap();
        ideal.record.set_simple("HELIX_ENABLED", "false");
        assert_eq!(health(&s, &d), Health::default());
    }

    #[test]
    fn throttled_holds_are_counted_and_other_holds_are_not() {
        let (s, mut d) = cluster([&[("a", "MASTER")], &[("a", "MASTER")]]);
        let t = ReplicaTransition::new("db_0", "b", "OFFLINE", "SLAVE");
        let held = &mut d.resources.get_mut("db").unwrap().held;
        held.push(HeldTransition {
            transition: t.clone(),
            reason: HoldReason::Throttled(ThrottleReason::Constraint {
                id: "c".into(),
                value: 1,
            }),
        });
        held.push(HeldTransition {
            transition: t,
            reason: HoldReason::Paused,
        });
        assert_eq!(health(&s, &d).throttled, 1);
    }

    #[test]
    fn transitions_gone_from_pending_end_completed_failed_or_neither() {
        let before: BTreeSet<PendingKey> = [
            ReplicaTransition::new("db_0", "a", "SLAVE", "MASTER"),
            ReplicaTransition::new("db_0", "b", "OFFLINE", "SLAVE"),
            ReplicaTransition::new("db_1", "c", "OFFLINE", "SLAVE"),
            ReplicaTransition::new("db_1", "b", "OFFLINE", "DROPPED"),
            ReplicaTransition::new("db_1", "a", "SLAVE", "MASTER"),
        ]
        .into_iter()
        .map(|t| ("db".to_string(), t))
        .collect();
        let (mut s, _) = cluster([
            &[("a", "MASTER"), ("b", "ERROR")],
            // c's session ended (no current state); a's transition is still pending.
            &[("a", "SLAVE")],
        ]);
        s.resources[0]
            .pending
            .push(ReplicaTransition::new("db_1", "a", "SLAVE", "MASTER"));
        let e = ended(&before, &pending(&s), &s);
        assert_eq!(
            e,
            Ended {
                completed: 2,
                failed: 1
            },
            "a's MASTER and b's drop; b's ERROR"
        );
        assert_eq!(ended(&BTreeSet::new(), &pending(&s), &s), Ended::default());
    }

    #[test]
    fn a_sent_message_is_pending_even_if_it_ends_before_the_next_snapshot() {
        let mut m = Record::new("msg-1");
        for (k, v) in [
            (RESOURCE_NAME, "db"),
            (PARTITION_NAME, "db_0"),
            (TGT_NAME, "b"),
            (FROM_STATE, "OFFLINE"),
            (TO_STATE, "SLAVE"),
        ] {
            m.set_simple(k, v);
        }
        let incomplete = Record::new("msg-2");
        let before: BTreeSet<PendingKey> = sent([&m, &incomplete]).collect();
        assert_eq!(before.len(), 1, "a record without the fields is skipped");
        // The next snapshot already shows b as SLAVE and nothing pending.
        let (s, _) = cluster([&[("a", "MASTER"), ("b", "SLAVE")], &[]]);
        assert_eq!(ended(&before, &pending(&s), &s).completed, 1);
    }
}
