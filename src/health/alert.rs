//! Alert evaluation: which (rule, group) pairs fire, and what fired or cleared since the
//! previous evaluation.
//!
//! A pair fires while its group's aggregate holds the rule's comparison. It clears when
//! the comparison stops holding, when the group has no aggregate any more (its reporters
//! went away) or when the rule is removed.

use std::collections::BTreeMap;

use super::aggregate::Aggregates;
use super::rule::Rule;
use super::scope::Group;

/// One (rule, group) that fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The rule's canonical text.
    pub rule: String,
    /// The group.
    pub group: Group,
    /// The aggregate's latest value.
    pub value: f64,
    /// When it started firing (ms since the Unix epoch).
    pub since_ms: u64,
}

/// Every (rule, group) that fires.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertStatus {
    /// (rule text, group) → what fires.
    pub firing: BTreeMap<(String, Group), Firing>,
}

impl AlertStatus {
    /// How many groups fire per rule (rules with none are absent).
    pub fn per_rule(&self) -> BTreeMap<&str, usize> {
        let mut out = BTreeMap::new();
        for (rule, _) in self.firing.keys() {
            *out.entry(rule.as_str()).or_insert(0) += 1;
        }
        out
    }
}

/// Fired or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// It started firing.
    Fired,
    /// It stopped firing.
    Cleared,
}

impl TransitionKind {
    /// `FIRED` or `CLEARED`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Fired => "FIRED",
            TransitionKind::Cleared => "CLEARED",
        }
    }
}

/// An alert fired or cleared.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    /// The rule's canonical text.
    pub rule: String,
    /// The group.
    pub group: Group,
    /// Fired or cleared.
    pub kind: TransitionKind,
    /// The aggregate's value then (none when the group or the rule went away).
    pub value: Option<f64>,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// Evaluates `rules` over `aggregates`, given what fired before.
pub fn evaluate(
    rules: &[Rule],
    aggregates: &Aggregates,
    prev: &AlertStatus,
    now_ms: u64,
) -> (AlertStatus, Vec<AlertTransition>) {
    let mut next = AlertStatus::default();
    let mut transitions = Vec::new();
    for rule in rules {
        let text = rule.text();
        for ((spec, group), agg) in &aggregates.entries {
            if *spec != rule.spec || !rule.selector.matches(group) || !rule.fires(agg.value) {
                continue;
            }
            let key = (text.clone(), group.clone());
            if next.firing.contains_key(&key) {
                continue; // the same rule given twice
            }
            let since_ms = match prev.firing.get(&key) {
                Some(f) => f.since_ms,
                None => {
                    transitions.push(AlertTransition {
                        rule: text.clone(),
                        group: group.clone(),
                        kind: TransitionKind::Fired,
                        value: Some(agg.value),
                        at_ms: now_ms,
                    });
                    now_ms
                }
            };
            next.firing.insert(
                key,
                Firing {
                    rule: text.clone(),
                    group: group.clone(),
                    value: agg.value,
                    since_ms,
                },
            );
        }
    }
    for (key, _) in prev.firing.iter().filter(|(k, _)| !next.firing.contains_key(*k)) {
        let value = rules
            .iter()
            .find(|r| r.text() == key.0)
            .and_then(|r| aggregates.get(&r.spec, &key.1))
            .map(|a| a.value);
        transitions.push(AlertTransition {
            rule: key.0.clone(),
            group: key.1.clone(),
            kind: TransitionKind::Cleared,
            value,
            at_ms: now_ms,
        });
    }
    transitions.sort_by(|a, b| (&a.rule, &a.group).cmp(&(&b.rule, &b.group)));
    (next, transitions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::aggregate::{Aggregate, StatSpec};

    fn aggs(values: &[(&str, Group, f64)]) -> Aggregates {
        let mut a = Aggregates::default();
        for (spec, g, v) in values {
            a.entries.insert(
                (StatSpec::parse(spec).unwrap(), g.clone()),
                Aggregate {
                    value: *v,
                    count: 1,
                    window: Vec::new(),
                    updated_ms: 0,
                },
            );
        }
        a
    }

    fn res(r: &str) -> Group {
        Group::Resource(r.into())
    }

    #[test]
    fn a_rule_fires_per_group_once_and_clears_when_the_value_drops_back() {
        let rules = [Rule::parse("AVG(lat)[RESOURCE=*] > 50").unwrap()];
        let (s1, t1) = evaluate(
            &rules,
            &aggs(&[("AVG(lat)", res("a"), 80.0), ("AVG(lat)", res("b"), 10.0)]),
            &AlertStatus::default(),
            100,
        );
        assert_eq!(t1.len(), 1);
        assert_eq!(
            (t1[0].kind, &t1[0].group, t1[0].value),
            (TransitionKind::Fired, &res("a"), Some(80.0))
        );
        assert_eq!(s1.per_rule()["AVG(lat)[RESOURCE=*] > 50"], 1);
        // Still above: no transition, the start time is kept, the value follows.
        let (s2, t2) = evaluate(&rules, &aggs(&[("AVG(lat)", res("a"), 90.0)]), &s1, 200);
        assert!(t2.is_empty());
        let f = s2.firing.values().next().unwrap();
        assert_eq!((f.since_ms, f.value), (100, 90.0));
        let (s3, t3) = evaluate(&rules, &aggs(&[("AVG(lat)", res("a"), 50.0)]), &s2, 300);
        assert_eq!(
            (t3[0].kind, t3[0].value, t3[0].at_ms),
            (TransitionKind::Cleared, Some(50.0), 300)
        );
        assert!(s3.firing.is_empty());
    }

    #[test]
    fn other_aggregations_kinds_and_names_are_not_looked_at() {
        let rules = [Rule::parse("SUM(lat)[RESOURCE=db*] > 1").unwrap()];
        let (s, t) = evaluate(
            &rules,
            &aggs(&[
                ("AVG(lat)", res("db"), 99.0),
                ("SUM(lat)", Group::Instance("db".into()), 99.0),
                ("SUM(lat)", res("other"), 99.0),
                ("SUM(lat)", res("db2"), 99.0),
            ]),
            &AlertStatus::default(),
            1,
        );
        assert_eq!(t.len(), 1);
        assert_eq!(s.firing.keys().next().unwrap().1, res("db2"));
    }

    #[test]
    fn a_removed_rule_or_a_vanished_group_clears_without_a_value() {
        let rule = Rule::parse("AVG(lat)[RESOURCE=*] > 50").unwrap();
        let (s1, _) = evaluate(
            std::slice::from_ref(&rule),
            &aggs(&[("AVG(lat)", res("a"), 80.0)]),
            &AlertStatus::default(),
            1,
        );
        let (_, gone) = evaluate(&[rule], &Aggregates::default(), &s1, 2);
        assert_eq!((gone[0].kind, gone[0].value), (TransitionKind::Cleared, None));
        let (s, removed) = evaluate(&[], &aggs(&[("AVG(lat)", res("a"), 80.0)]), &s1, 2);
        assert_eq!(
            (removed[0].kind, removed[0].value),
            (TransitionKind::Cleared, None)
        );
        assert!(s.firing.is_empty());
    }
}
