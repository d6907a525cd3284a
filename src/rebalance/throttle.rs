//! Throttling: state-transition throttle configs and message constraints.
//!
//! ```text
//!   selected transitions (every state bound holds)
//!        │  order: partitions missing their top state, then recovery before load balance,
//!        │         then fewer active replicas, then names; transition priority inside
//!        │  charge every pending transition first (it is in flight whatever we decide)
//!        ├─ STATE_TRANSITION_THROTTLE_CONFIGS  (scope CLUSTER/RESOURCE/INSTANCE/PARTITION,
//!        │                                      type LOAD_BALANCE/RECOVERY_BALANCE/ANY)
//!        └─ MESSAGE_CONSTRAINT items           (attribute = regex …, CONSTRAINT_VALUE)
//!        ▼
//!   the transitions to send this round, and the ones held back with the reason
//! ```
//!
//! A throttle counts, in each key of its scope, the *partitions* in transition
//! (`MAX_PARTITION_IN_TRANSITION`): one per partition for CLUSTER and RESOURCE scope (however
//! many of its replicas move), one per replica for INSTANCE scope (an instance runs at most
//! one transition of a partition) and for PARTITION scope (the replicas of that partition in
//! transition). A transition passes when every throttle of its type still has room.
//!
//! Message constraints follow Helix's `MessageThrottleStage`: the items whose every
//! attribute (a regular expression, matched against the whole value) matches the message
//! apply; among the items that constrain the same set of attributes, the most specific one
//! wins (`INSTANCE=localhost_12913` over `INSTANCE=.*`), and when neither is more specific,
//! the smaller value. Each winning item then allows at most its value in flight per
//! distinct combination of the message's values for its attributes, so `INSTANCE=.*` with
//! value 10 means ten per instance.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use super::error::RebalanceError;
use super::transitions::ReplicaTransition;
use crate::model::{
    ClusterConstraints, ConstraintAttribute, ConstraintValue, RebalanceType, StateTransitionThrottleConfig,
    ThrottleScope,
};

/// How urgent a partition's transitions are; smaller sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Urgency {
    /// `false` (sorted first) when no replica holds the top state and one should.
    pub has_top_state: bool,
    /// Recovery (missing replicas or states) before load balance.
    pub load_balance: bool,
    /// Replicas in a non-initial state now: fewer first.
    pub active_replicas: usize,
}

/// A transition as throttles see it: in flight (pending) or proposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// The resource.
    pub resource: String,
    /// The resource's state model.
    pub state_model: String,
    /// The transition.
    pub transition: ReplicaTransition,
    /// `LoadBalance` or `RecoveryBalance` (never `Any`): the partition's rebalance type.
    pub kind: RebalanceType,
    /// How urgent the partition is.
    pub urgency: Urgency,
    /// The model's priority of this transition (0 is the highest).
    pub transition_priority: usize,
    /// Live candidate instances of the resource (`N` in a constraint value).
    pub live_candidates: usize,
    /// The resource's replica count (`R` in a constraint value).
    pub replicas: usize,
}

impl Movement {
    fn order_key(&self) -> (Urgency, &str, &str, usize, &str) {
        (
            self.urgency,
            &self.resource,
            &self.transition.partition,
            self.transition_priority,
            &self.transition.instance,
        )
    }
}

/// Why a transition was held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottleReason {
    /// A state-transition throttle config has no room.
    Config(StateTransitionThrottleConfig),
    /// A message constraint has no room.
    Constraint {
        /// The constraint's id.
        id: String,
        /// Its resolved value.
        value: usize,
    },
}

impl std::fmt::Display for ThrottleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThrottleReason::Config(c) => write!(
                f,
                "throttle {} {} max {}",
                c.scope.as_str(),
                c.rebalance_type.as_str(),
                c.max_partition_in_transition
            ),
            ThrottleReason::Constraint { id, value } => write!(f, "message constraint {id} max {value}"),
        }
    }
}

/// The result of [`Throttles::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttled {
    /// The transitions to send, most urgent first.
    pub accepted: Vec<Movement>,
    /// The transitions held back, with the first reason found.
    pub held: Vec<(Movement, ThrottleReason)>,
}

#[derive(Debug, Clone)]
struct CompiledItem {
    id: String,
    patterns: BTreeMap<ConstraintAttribute, (String, Regex)>,
    value: ConstraintValue,
}

impl CompiledItem {
    fn matches(&self, attrs: &BTreeMap<ConstraintAttribute, String>) -> bool {
        self.patterns
            .iter()
            .all(|(a, (_, re))| attrs.get(a).is_some_and(|v| re.is_match(v)))
    }

    /// Whether `other`'s patterns, read as values, all match this item's patterns.
    fn covers(&self, other: &CompiledItem) -> bool {
        self.patterns
            .iter()
            .all(|(a, (_, re))| other.patterns.get(a).is_some_and(|(text, _)| re.is_match(text)))
    }

    fn limit(&self, m: &Movement) -> Option<usize> {
        self.value.resolve(m.live_candidates, m.replicas)
    }
}

/// Throttle configs and message constraints, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct Throttles {
    configs: Vec<StateTransitionThrottleConfig>,
    items: Vec<CompiledItem>,
}

fn attributes_of(m: &Movement) -> BTreeMap<ConstraintAttribute, String> {
    let t = &m.transition;
    BTreeMap::from([
        (ConstraintAttribute::MessageType, "STATE_TRANSITION".to_string()),
        (ConstraintAttribute::Transition, format!("{}-{}", t.from, t.to)),
        (ConstraintAttribute::Resource, m.resource.clone()),
        (ConstraintAttribute::Partition, t.partition.clone()),
        (ConstraintAttribute::Instance, t.instance.clone()),
        (ConstraintAttribute::StateModel, m.state_model.clone()),
    ])
}

type ConfigKey = (usize, String);

impl Throttles {
    /// Throttles from the cluster config's throttle list and the `MESSAGE_CONSTRAINT` record
    /// (both optional). Constraint items are compiled once here; a bad item is an error.
    pub fn new(
        configs: Vec<StateTransitionThrottleConfig>,
        constraints: Option<&ClusterConstraints>,
    ) -> Result<Self, RebalanceError> {
        let mut items = Vec::new();
        if let Some(c) = constraints {
            let parsed = c
                .items()
                .map_err(|e| RebalanceError::record("message constraints", e))?;
            for (id, item) in parsed {
                let mut patterns = BTreeMap::new();
                for (attr, pattern) in &item.attributes {
                    let re = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                        RebalanceError::InvalidConstraintPattern {
                            record: "message constraint",
                            id: id.clone(),
                            attribute: attr.as_str().to_string(),
                            pattern: pattern.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                    patterns.insert(*attr, (pattern.clone(), re));
                }
                items.push(CompiledItem {
                    id,
                    patterns,
                    value: item.value,
                });
            }
        }
        Ok(Throttles { configs, items })
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty() && self.items.is_empty()
    }

    /// The constraint items that govern a message: the most specific of each attribute set.
    fn governing(&self, m: &Movement) -> Vec<&CompiledItem> {
        if self.items.is_empty() {
            return Vec::new();
        }
        let attrs = attributes_of(m);
        let mut chosen: BTreeMap<Vec<ConstraintAttribute>, &CompiledItem> = BTreeMap::new();
        for item in self.items.iter().filter(|i| i.matches(&attrs)) {
            let group: Vec<ConstraintAttribute> = item.patterns.keys().copied().collect();
            match chosen.get(&group) {
                None => {
                    chosen.insert(group, item);
                }
                Some(existing) => {
                    let more_specific = existing.covers(item) && !item.covers(existing);
                    let less_specific = item.covers(existing) && !existing.covers(item);
                    let smaller = match (item.limit(m), existing.limit(m)) {
                        (Some(a), Some(b)) => a < b || (a == b && item.id < existing.id),
                        (Some(_), None) => true,
                        (None, Some(_)) => false,
                        (None, None) => item.id < existing.id,
                    };
                    if more_specific || (!less_specific && smaller) {
                        chosen.insert(group, item);
                    }
                }
            }
        }
        chosen.into_values().collect()
    }

    fn config_keys(&self, m: &Movement) -> Vec<(usize, ConfigKey, String)> {
        let t = &m.transition;
        self.configs
            .iter()
            .enumerate()
            .filter(|(_, c)| c.rebalance_type == RebalanceType::Any || c.rebalance_type == m.kind)
            .map(|(i, c)| {
                let part = format!("{}\u{0}{}", m.resource, t.partition);
                let (key, unit) = match c.scope {
                    ThrottleScope::Cluster => (String::new(), part),
                    ThrottleScope::Resource => (m.resource.clone(), t.partition.clone()),
                    ThrottleScope::Instance => (t.instance.clone(), part),
                    ThrottleScope::Partition => (part, t.instance.clone()),
                };
                (i, (i, key), unit)
            })
            .collect()
    }

    fn constraint_key(item: &CompiledItem, m: &Movement) -> String {
        let attrs = attributes_of(m);
        let mut key = item.id.clone();
        for a in item.patterns.keys() {
            key.push('\u{0}');
            key.push_str(attrs.get(a).map_or("", String::as_str));
        }
        key
    }

    /// Charges `pending` first, then accepts `candidates`, most urgent first, while every
    /// throttle and constraint has room.
    pub fn apply(&self, pending: &[Movement], mut candidates: Vec<Movement>) -> Throttled {
        candidates.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        if self.is_empty() {
            return Throttled {
                accepted: candidates,
                held: Vec::new(),
            };
        }
        let mut in_flight: BTreeMap<ConfigKey, BTreeSet<String>> = BTreeMap::new();
        let mut constraint_counts: BTreeMap<String, usize> = BTreeMap::new();
        let charge = |m: &Movement,
                      in_flight: &mut BTreeMap<ConfigKey, BTreeSet<String>>,
                      counts: &mut BTreeMap<String, usize>| {
            for (_, key, unit) in self.config_keys(m) {
                in_flight.entry(key).or_default().insert(unit);
            }
            for item in self.governing(m) {
                *counts.entry(Self::constraint_key(item, m)).or_default() += 1;
            }
        };
        for p in pending {
            charge(p, &mut in_flight, &mut constraint_counts);
        }
        let mut out = Throttled::default();
        for m in candidates {
            let mut reason = None;
            for (i, key, unit) in self.config_keys(&m) {
                let set = in_flight.get(&key);
                let used = set.map_or(0, BTreeSet::len);
                let already = set.is_some_and(|s| s.contains(&unit));
                if !already && used >= self.configs[i].max_partition_in_transition {
                    reason = Some(ThrottleReason::Config(self.configs[i]));
                    break;
                }
            }
            if reason.is_none() {
                for item in self.governing(&m) {
                    if let Some(limit) = item.limit(&m) {
                        let used = constraint_counts
                            .get(&Self::constraint_key(item, &m))
                            .copied()
                            .unwrap_or(0);
                        if used >= limit {
                            reason = Some(ThrottleReason::Constraint {
                                id: item.id.clone(),
                                value: limit,
                            });
                            break;
                        }
                    }
                }
            }
            match reason {
                None => {
                    charge(&m, &mut in_flight, &mut constraint_counts);
                    out.accepted.push(m);
                }
                Some(r) => out.held.push((m, r)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ConstraintType, Record};

    fn mv(
        resource: &str,
        partition: &str,
        instance: &str,
        from: &str,
        to: &str,
        kind: RebalanceType,
    ) -> Movement {
        Movement {
            resource: resource.into(),
            state_model: "MasterSlave".into(),
            transition: ReplicaTransition::new(partition, instance, from, to),
            kind,
            urgency: Urgency {
                has_top_state: true,
                load_balance: kind == RebalanceType::LoadBalance,
                active_replicas: 3,
            },
            transition_priority: 2,
            live_candidates: 3,
            replicas: 3,
        }
    }
    use RebalanceType::{Any, LoadBalance as Load, RecoveryBalance as Recovery};

    fn cfg(rebalance_type: RebalanceType, scope: ThrottleScope, max: usize) -> StateTransitionThrottleConfig {
        StateTransitionThrottleConfig {
            rebalance_type,
            scope,
            max_partition_in_transition: max,
        }
    }

    fn names(t: &Throttled) -> Vec<String> {
        t.accepted
            .iter()
            .map(|m| {
                format!(
                    "{}/{}@{}",
                    m.resource, m.transition.partition, m.transition.instance
                )
            })
            .collect()
    }

    #[test]
    fn cluster_scope_counts_partitions_not_replicas() {
        let th = Throttles::new(vec![cfg(Any, ThrottleScope::Cluster, 2)], None).unwrap();
        let c = vec![
            mv("db", "db_0", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_0", "b", "OFFLINE", "SLAVE", Load),
            mv("db", "db_1", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_2", "a", "OFFLINE", "SLAVE", Load),
        ];
        let t = th.apply(&[], c);
        assert_eq!(names(&t), ["db/db_0@a", "db/db_0@b", "db/db_1@a"]);
        assert_eq!(t.held.len(), 1);
        assert!(matches!(t.held[0].1, ThrottleReason::Config(_)));
    }

    #[test]
    fn pending_transitions_are_charged_first() {
        let th = Throttles::new(vec![cfg(Any, ThrottleScope::Instance, 1)], None).unwrap();
        let pending = [mv("db", "db_9", "a", "OFFLINE", "SLAVE", Load)];
        let c = vec![
            mv("db", "db_0", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_0", "b", "OFFLINE", "SLAVE", Load),
        ];
        let t = th.apply(&pending, c);
        assert_eq!(names(&t), ["db/db_0@b"]);
    }

    #[test]
    fn type_selects_which_throttles_apply() {
        let th = Throttles::new(vec![cfg(Load, ThrottleScope::Cluster, 0)], None).unwrap();
        let c = vec![
            mv("db", "db_0", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_1", "a", "OFFLINE", "SLAVE", Recovery),
        ];
        let t = th.apply(&[], c);
        assert_eq!(names(&t), ["db/db_1@a"]);
        let th = Throttles::new(vec![cfg(Recovery, ThrottleScope::Resource, 1)], None).unwrap();
        let c = vec![
            mv("db", "db_0", "a", "OFFLINE", "SLAVE", Recovery),
            mv("db", "db_1", "a", "OFFLINE", "SLAVE", Recovery),
            mv("other", "other_0", "a", "OFFLINE", "SLAVE", Recovery),
            mv("db", "db_2", "a", "OFFLINE", "SLAVE", Load),
        ];
        let t = th.apply(&[], c);
        assert_eq!(names(&t), ["db/db_0@a", "other/other_0@a", "db/db_2@a"]);
    }

    #[test]
    fn partition_scope_limits_replicas_of_one_partition() {
        let th = Throttles::new(vec![cfg(Any, ThrottleScope::Partition, 1)], None).unwrap();
        let c = vec![
            mv("db", "db_0", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_0", "b", "OFFLINE", "SLAVE", Load),
            mv("db", "db_1", "b", "OFFLINE", "SLAVE", Load),
        ];
        assert_eq!(names(&th.apply(&[], c)), ["db/db_0@a", "db/db_1@b"]);
    }

    #[test]
    fn partitions_missing_their_top_state_go_first() {
        let th = Throttles::new(vec![cfg(Any, ThrottleScope::Cluster, 1)], None).unwrap();
        let mut urgent = mv("db", "db_5", "c", "SLAVE", "MASTER", Recovery);
        urgent.urgency.has_top_state = false;
        let recovery = mv("db", "db_1", "a", "OFFLINE", "SLAVE", Recovery);
        let load = mv("db", "db_0", "a", "OFFLINE", "SLAVE", Load);
        let t = th.apply(&[], vec![load.clone(), recovery.clone(), urgent]);
        assert_eq!(names(&t), ["db/db_5@c"]);
        let t = th.apply(&[], vec![load, recovery]);
        assert_eq!(names(&t), ["db/db_1@a"]);
    }

    fn constraints(items: &[(&str, &[(&str, &str)])]) -> ClusterConstraints {
        let mut r = Record::new(ConstraintType::MessageConstraint.as_str());
        for (id, pairs) in items {
            r.map_fields.insert(
                id.to_string(),
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            );
        }
        ClusterConstraints::new(r)
    }

    #[test]
    fn message_constraint_counts_per_matching_value() {
        let c = constraints(&[(
            "perInstance",
            &[
                ("MESSAGE_TYPE", "STATE_TRANSITION"),
                ("INSTANCE", ".*"),
                ("CONSTRAINT_VALUE", "1"),
            ],
        )]);
        let th = Throttles::new(vec![], Some(&c)).unwrap();
        let cands = vec![
            mv("db", "db_0", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_1", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_1", "b", "OFFLINE", "SLAVE", Load),
        ];
        let t = th.apply(&[], cands);
        assert_eq!(names(&t), ["db/db_0@a", "db/db_1@b"]);
        assert_eq!(
            t.held[0].1,
            ThrottleReason::Constraint {
                id: "perInstance".into(),
                value: 1
            }
        );
    }

    #[test]
    fn most_specific_item_wins_within_a_group() {
        // INSTANCE=.* allows 1, INSTANCE=a allows 3: a gets 3, b gets 1.
        let c = constraints(&[
            ("all", &[("INSTANCE", ".*"), ("CONSTRAINT_VALUE", "1")]),
            ("onA", &[("INSTANCE", "a"), ("CONSTRAINT_VALUE", "3")]),
        ]);
        let th = Throttles::new(vec![], Some(&c)).unwrap();
        let cands: Vec<Movement> = (0..4)
            .flat_map(|p| ["a", "b"].map(|i| mv("db", &format!("db_{p}"), i, "OFFLINE", "SLAVE", Load)))
            .collect();
        let t = th.apply(&[], cands);
        let on = |i: &str| t.accepted.iter().filter(|m| m.transition.instance == i).count();
        assert_eq!((on("a"), on("b")), (3, 1));
    }

    #[test]
    fn ties_go_to_the_smaller_value_and_groups_all_apply() {
        // Two equally specific items on TRANSITION: the smaller (1) wins over 5.
        // A second group (RESOURCE) also applies: 2 per resource.
        let c = constraints(&[
            ("t5", &[("TRANSITION", "OFFLINE-.*"), ("CONSTRAINT_VALUE", "5")]),
            ("t1", &[("TRANSITION", ".*-SLAVE"), ("CONSTRAINT_VALUE", "1")]),
            ("r", &[("RESOURCE", "db"), ("CONSTRAINT_VALUE", "2")]),
        ]);
        let th = Throttles::new(vec![], Some(&c)).unwrap();
        let cands = vec![
            mv("db", "db_0", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_1", "a", "OFFLINE", "SLAVE", Load),
            mv("db", "db_2", "a", "SLAVE", "MASTER", Load),
            mv("db", "db_3", "a", "SLAVE", "MASTER", Load),
        ];
        let t = th.apply(&[], cands);
        assert_eq!(names(&t), ["db/db_0@a", "db/db_2@a"]);
        // ANY never limits; N and R resolve per resource.
        let c = constraints(&[
            ("any", &[("RESOURCE", ".*"), ("CONSTRAINT_VALUE", "ANY")]),
            ("r", &[("INSTANCE", ".*"), ("CONSTRAINT_VALUE", "R")]),
        ]);
        let th = Throttles::new(vec![], Some(&c)).unwrap();
        let cands: Vec<Movement> = (0..5)
            .map(|p| mv("db", &format!("db_{p}"), "a", "OFFLINE", "SLAVE", Load))
            .collect();
        assert_eq!(th.apply(&[], cands).accepted.len(), 3);
    }

    #[test]
    fn bad_pattern_is_an_error_naming_the_item() {
        let c = constraints(&[("broken", &[("INSTANCE", "(a"), ("CONSTRAINT_VALUE", "1")])]);
        let err = Throttles::new(vec![], Some(&c)).unwrap_err().to_string();
        assert!(err.contains("broken") && err.contains("INSTANCE"), "{err}");
    }
}
