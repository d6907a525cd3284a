//! State bounds: how many replicas of a partition may be in each state, per resource.
//!
//! ```text
//!   state model        MASTER: 1, SLAVE: R, OFFLINE: -1
//!        │  STATE_CONSTRAINT items that match (RESOURCE, STATE_MODEL, STATE):
//!        │  the most specific one of each state wins over the state model's bound
//!        ▼
//!   StateBounds of one resource ──► assignment (state counts down the preference list)
//!                               └─► selection  (never more in a state than its bound)
//! ```
//!
//! A `STATE_CONSTRAINT` item (`{"STATE":"MASTER","RESOURCE":"myDB","CONSTRAINT_VALUE":"2"}`)
//! overrides the bound of the states its `STATE` matches, for the resources its `RESOURCE`
//! matches (absent or `.*`: every resource) and, when it names one, the state models its
//! `STATE_MODEL` matches. Values are regular expressions matched against the whole name, as
//! in message constraints. `CONSTRAINT_VALUE` is a number, `N` (live candidates), `R` (the
//! replica count) or `ANY` (no bound).
//!
//! When several items match one state of one resource, the most specific wins: first by
//! `RESOURCE` (an item naming resources beats one for every resource), then by
//! `STATE_MODEL`, then by `STATE` (a pattern other than `.*` is specific). Between equally
//! specific items the tighter value wins (a number, the smaller first; then `R`, `N`,
//! `ANY`), then the smaller constraint id. Any matching item beats the state model's bound.
//! Items without `STATE`, or naming attributes a state bound has no use for (`PARTITION`,
//! `INSTANCE`, `TRANSITION`, `MESSAGE_TYPE`), bound nothing. DROPPED and ERROR are never
//! bounded.

use regex::Regex;

use super::error::RebalanceError;
use crate::model::{ClusterConstraints, ConstraintAttribute, ConstraintValue};
use crate::statemodel::{count_states, StateModelDefinition, UpperBound, DROPPED, ERROR};

/// The bound of every state of one resource's state model, overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateBounds {
    /// Every state of the model with its bound, in the model's priority order.
    bounds: Vec<(String, UpperBound)>,
    /// The model's initial state.
    initial: String,
}

impl StateBounds {
    /// The state model's own bounds.
    pub fn of_model(model: &StateModelDefinition) -> Self {
        StateBounds {
            bounds: model
                .states()
                .iter()
                .map(|s| (s.clone(), model.upper_bound(s)))
                .collect(),
            initial: model.initial_state().to_string(),
        }
    }

    /// The bound of `state` (unbounded for a state the model does not have).
    pub fn get(&self, state: &str) -> UpperBound {
        self.bounds
            .iter()
            .find(|(s, _)| s == state)
            .map_or(UpperBound::Unbounded, |(_, b)| *b)
    }

    /// Every state of the model with its bound, highest priority first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, UpperBound)> + '_ {
        self.bounds.iter().map(|(s, b)| (s.as_str(), *b))
    }

    /// Overrides the bound of one state of the model (DROPPED and ERROR stay unbounded;
    /// a state the model does not have is ignored).
    pub fn set(&mut self, state: &str, bound: UpperBound) {
        if state == DROPPED || state == ERROR {
            return;
        }
        if let Some((_, b)) = self.bounds.iter_mut().find(|(s, _)| s == state) {
            *b = bound;
        }
    }

    /// How many replicas of a partition should be in each state, highest priority first,
    /// given the live candidates and the replica count: Helix's `getStateCountMap`
    /// ([`StateModelDefinition::state_counts`]) with these bounds. Fixed bounds first, in
    /// priority order, capped by the candidates left; an `N` state takes all remaining
    /// candidates; the first `R` state takes what is left of the replicas. The initial
    /// state, DROPPED and ERROR are never targets.
    pub fn state_counts(&self, live_candidates: usize, replicas: usize) -> Vec<(&str, usize)> {
        let targets = self
            .bounds
            .iter()
            .filter(|(s, _)| *s != self.initial && s != DROPPED && s != ERROR)
            .map(|(s, b)| (s.as_str(), *b));
        count_states(targets, live_candidates, replicas)
    }
}

/// A `STATE_CONSTRAINT` item ready to match.
#[derive(Debug, Clone)]
struct StateItem {
    id: String,
    resource: Option<Regex>,
    state_model: Option<Regex>,
    state: Regex,
    /// (RESOURCE, STATE_MODEL, STATE) name something narrower than "every".
    specificity: (bool, bool, bool),
    bound: UpperBound,
}

/// The `STATE_CONSTRAINT` record, compiled once per round.
#[derive(Debug, Clone, Default)]
pub struct StateConstraints {
    items: Vec<StateItem>,
}

/// Whether a pattern names more than "everything" (absent and `.*` do not).
fn is_specific(pattern: Option<&str>) -> bool {
    pattern.is_some_and(|p| p.trim() != ".*")
}

/// Tighter values sort first: numbers (smaller first), then `R`, `N`, `ANY`.
fn tightness(bound: UpperBound) -> (u8, usize) {
    match bound {
        UpperBound::Count(n) => (0, n),
        UpperBound::Replicas => (1, 0),
        UpperBound::LiveCandidates => (2, 0),
        UpperBound::Unbounded => (3, 0),
    }
}

impl StateConstraints {
    /// Compiles the record's items (none when there is no record). An item that cannot be
    /// read or whose pattern is not a regular expression is an error.
    pub fn new(record: Option<&ClusterConstraints>) -> Result<Self, RebalanceError> {
        let Some(record) = record else {
            return Ok(Self::default());
        };
        let parsed = record
            .items()
            .map_err(|e| RebalanceError::record("state constraints", e))?;
        let mut items = Vec::new();
        for (id, item) in parsed {
            let compile = |attr: ConstraintAttribute| -> Result<Option<Regex>, RebalanceError> {
                item.attribute(attr)
                    .map(|pattern| {
                        Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                            RebalanceError::InvalidConstraintPattern {
                                record: "state constraint",
                                id: id.clone(),
                                attribute: attr.as_str().to_string(),
                                pattern: pattern.to_string(),
                                reason: e.to_string(),
                            }
                        })
                    })
                    .transpose()
            };
            let (resource, state_model, state) = (
                compile(ConstraintAttribute::Resource)?,
                compile(ConstraintAttribute::StateModel)?,
                compile(ConstraintAttribute::State)?,
            );
            let scoped_elsewhere = item.attributes.keys().any(|a| {
                !matches!(
                    a,
                    ConstraintAttribute::Resource
                        | ConstraintAttribute::StateModel
                        | ConstraintAttribute::State
                )
            });
            let Some(state) = state.filter(|_| !scoped_elsewhere) else {
                continue;
            };
            let bound = match item.value {
                ConstraintValue::Count(n) => UpperBound::Count(n),
                ConstraintValue::N => UpperBound::LiveCandidates,
                ConstraintValue::R => UpperBound::Replicas,
                ConstraintValue::Any => UpperBound::Unbounded,
            };
            items.push(StateItem {
                specificity: (
                    is_specific(item.attribute(ConstraintAttribute::Resource)),
                    is_specific(item.attribute(ConstraintAttribute::StateModel)),
                    is_specific(item.attribute(ConstraintAttribute::State)),
                ),
                id,
                resource,
                state_model,
                state,
                bound,
            });
        }
        Ok(StateConstraints { items })
    }

    /// Whether there is no item that can bound a state.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The bounds of `resource`'s states: the model's, overridden by the most specific
    /// matching item of each state (see the module docs).
    pub fn bounds_for(&self, resource: &str, model: &StateModelDefinition) -> StateBounds {
        let mut bounds = StateBounds::of_model(model);
        if self.items.is_empty() {
            return bounds;
        }
        let applicable: Vec<&StateItem> = self
            .items
            .iter()
            .filter(|i| i.resource.as_ref().is_none_or(|re| re.is_match(resource)))
            .filter(|i| i.state_model.as_ref().is_none_or(|re| re.is_match(model.name())))
            .collect();
        for state in model.states() {
            let winner = applicable
                .iter()
                .filter(|i| i.state.is_match(state))
                .min_by(|a, b| {
                    let key = |i: &StateItem| {
                        let (r, m, s) = i.specificity;
                        ((!r, !m, !s), tightness(i.bound))
                    };
                    key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
                });
            if let Some(item) = winner {
                bounds.set(state, item.bound);
            }
        }
        bounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::map;
    use crate::model::{ConstraintType, Record};
    use crate::statemodel::{builtin, builtins};

    fn constraints(items: &[(&str, &[(&str, &str)])]) -> ClusterConstraints {
        let mut r = Record::new(ConstraintType::StateConstraint.as_str());
        for (id, attrs) in items {
            r.map_fields.insert(id.to_string(), map(attrs));
        }
        ClusterConstraints::new(r)
    }

    fn bounds(items: &[(&str, &[(&str, &str)])], resource: &str, model: &str) -> StateBounds {
        let c = constraints(items);
        StateConstraints::new(Some(&c))
            .unwrap()
            .bounds_for(resource, &builtin(model).unwrap())
    }

    #[test]
    fn without_overrides_the_counts_are_the_models() {
        for m in builtins() {
            let b = StateBounds::of_model(&m);
            for live in 0..6 {
                for replicas in 0..6 {
                    let ours: Vec<(String, usize)> = b
                        .state_counts(live, replicas)
                        .into_iter()
                        .map(|(s, n)| (s.to_string(), n))
                        .collect();
                    assert_eq!(
                        ours,
                        m.state_counts(live, replicas),
                        "{} live {live} replicas {replicas}",
                        m.name()
                    );
                }
            }
        }
        assert_eq!(
            bounds(&[], "myDB", "MasterSlave"),
            StateBounds::of_model(&builtin("MasterSlave").unwrap())
        );
    }

    #[test]
    fn a_master_bound_of_two_gives_two_masters() {
        let b = bounds(
            &[(
                "m",
                &[
                    ("STATE", "MASTER"),
                    ("RESOURCE", "myDB"),
                    ("CONSTRAINT_VALUE", "2"),
                ],
            )],
            "myDB",
            "MasterSlave",
        );
        assert_eq!(b.get("MASTER"), UpperBound::Count(2));
        assert_eq!(b.get("SLAVE"), UpperBound::Replicas);
        assert_eq!(b.state_counts(3, 3), vec![("MASTER", 2), ("SLAVE", 1)]);
    }

    #[test]
    fn a_resource_specific_item_beats_a_wildcard() {
        let items: &[(&str, &[(&str, &str)])] = &[
            (
                "all",
                &[("STATE", "MASTER"), ("RESOURCE", ".*"), ("CONSTRAINT_VALUE", "3")],
            ),
            ("none", &[("STATE", "MASTER"), ("CONSTRAINT_VALUE", "4")]),
            (
                "mine",
                &[
                    ("STATE", "MASTER"),
                    ("RESOURCE", "myDB"),
                    ("CONSTRAINT_VALUE", "2"),
                ],
            ),
        ];
        assert_eq!(
            bounds(items, "myDB", "MasterSlave").get("MASTER"),
            UpperBound::Count(2)
        );
        // Another resource gets the tighter of the two wildcards.
        assert_eq!(
            bounds(items, "other", "MasterSlave").get("MASTER"),
            UpperBound::Count(3)
        );
        // A resource-specific N beats a wildcard number, whatever the values.
        let items: &[(&str, &[(&str, &str)])] = &[
            ("all", &[("STATE", "MASTER"), ("CONSTRAINT_VALUE", "1")]),
            (
                "mine",
                &[
                    ("STATE", "MASTER"),
                    ("RESOURCE", "my.*"),
                    ("CONSTRAINT_VALUE", "N"),
                ],
            ),
        ];
        assert_eq!(
            bounds(items, "myDB", "MasterSlave").get("MASTER"),
            UpperBound::LiveCandidates
        );
    }

    #[test]
    fn an_item_for_another_resource_or_model_changes_nothing() {
        let ms = StateBounds::of_model(&builtin("MasterSlave").unwrap());
        let items: &[(&str, &[(&str, &str)])] = &[
            (
                "other",
                &[
                    ("STATE", "MASTER"),
                    ("RESOURCE", "otherDB"),
                    ("CONSTRAINT_VALUE", "2"),
                ],
            ),
            (
                "model",
                &[
                    ("STATE", "MASTER"),
                    ("STATE_MODEL", "LeaderStandby"),
                    ("CONSTRAINT_VALUE", "2"),
                ],
            ),
            // Not a state bound: scoped to a partition, or naming no state.
            (
                "part",
                &[
                    ("STATE", "MASTER"),
                    ("PARTITION", "myDB_0"),
                    ("CONSTRAINT_VALUE", "2"),
                ],
            ),
            ("nostate", &[("RESOURCE", "myDB"), ("CONSTRAINT_VALUE", "2")]),
            // DROPPED and ERROR are never bounded.
            (
                "dropped",
                &[("STATE", "DROPPED|ERROR"), ("CONSTRAINT_VALUE", "0")],
            ),
        ];
        assert_eq!(bounds(items, "myDB", "MasterSlave"), ms);
        // The STATE_MODEL item matches a LeaderStandby resource but names MASTER, a state
        // that model does not have.
        let ls = StateBounds::of_model(&builtin("LeaderStandby").unwrap());
        assert_eq!(bounds(items, "myDB", "LeaderStandby"), ls);
    }

    #[test]
    fn n_r_and_any_replace_the_bound_kind() {
        let items: &[(&str, &[(&str, &str)])] = &[
            ("a", &[("STATE", "MASTER"), ("CONSTRAINT_VALUE", "N")]),
            ("b", &[("STATE", "SLAVE"), ("CONSTRAINT_VALUE", "ANY")]),
        ];
        let b = bounds(items, "myDB", "MasterSlave");
        assert_eq!(b.get("MASTER"), UpperBound::LiveCandidates);
        assert_eq!(b.get("SLAVE"), UpperBound::Unbounded);
        assert_eq!(b.state_counts(3, 3), vec![("MASTER", 3)]);
    }

    #[test]
    fn a_bad_pattern_or_value_is_an_error_naming_the_item() {
        let c = constraints(&[("c1", &[("STATE", "("), ("CONSTRAINT_VALUE", "1")])]);
        let err = StateConstraints::new(Some(&c)).unwrap_err().to_string();
        assert!(
            err.contains("state constraint c1") && err.contains("STATE"),
            "{err}"
        );
        let c = constraints(&[("c1", &[("STATE", "MASTER"), ("CONSTRAINT_VALUE", "many")])]);
        let err = StateConstraints::new(Some(&c)).unwrap_err().to_string();
        assert!(err.contains("c1.CONSTRAINT_VALUE"), "{err}");
    }
}
