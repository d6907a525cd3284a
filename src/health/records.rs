//! The controller's health records, Helix-shaped (ZNRecords with map fields):
//!
//! ```text
//!   CONTROLLER/ALERTS           { "<rule>": { "ADDED": ms } }                     (admin)
//!   CONTROLLER/STATS            { "<stat spec>": { "ADDED": ms } }                (admin)
//!   CONTROLLER/PERSISTENTSTATS  { "<spec>[<group>]": { STAT, SCOPE, VALUE, COUNT,
//!                                   TIMESTAMP, WINDOW }, "REPORTS_FOLDED": { i: ms } } (leader)
//!   CONTROLLER/ALERT_STATUS     { "<rule> @ <group>": { RULE, SCOPE, VALUE, SINCE } } (leader)
//!   CONTROLLER/ALERT_HISTORY    { "<seq, 10 digits>": { RULE, SCOPE, EVENT, VALUE,
//!                                   TIMESTAMP } }, the last HISTORY_LIMIT    (leader)
//! ```
//!
//! Readers skip entries they cannot read (a record written by hand, a newer version);
//! nothing here panics on a bad record.

use std::collections::{BTreeMap, BTreeSet};

use super::aggregate::{Aggregate, Aggregates, StatSpec};
use super::alert::{AlertStatus, AlertTransition, Firing};
use super::rule::Rule;
use super::scope::Group;
use super::HealthError;
use crate::model::Record;

/// How many alert transitions `ALERT_HISTORY` keeps.
pub const HISTORY_LIMIT: usize = 100;

/// The map field of `PERSISTENTSTATS` with how far each instance's reports were folded.
pub const REPORTS_FOLDED: &str = "REPORTS_FOLDED";

const ADDED: &str = "ADDED";
const STAT: &str = "STAT";
const SCOPE: &str = "SCOPE";
const VALUE: &str = "VALUE";
const COUNT: &str = "COUNT";
const TIMESTAMP: &str = "TIMESTAMP";
const WINDOW: &str = "WINDOW";
const RULE: &str = "RULE";
const SINCE: &str = "SINCE";
const EVENT: &str = "EVENT";
const NEXT: &str = "NEXT";
const FIRST_NEW: &str = "FIRST_NEW";

fn fields(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn finite(v: Option<&String>) -> Option<f64> {
    v.and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite())
}

/// The rules in an `ALERTS` record: each key parsed, or its text with why it does not.
pub fn rules(record: Option<&Record>) -> Vec<Result<Rule, (String, HealthError)>> {
    let Some(r) = record else { return Vec::new() };
    r.map_fields
        .keys()
        .map(|k| Rule::parse(k).map_err(|e| (k.clone(), e)))
        .collect()
}

/// The stat specs in a `STATS` record (unreadable keys skipped).
pub fn stats(record: Option<&Record>) -> Vec<StatSpec> {
    let Some(r) = record else { return Vec::new() };
    r.map_fields
        .keys()
        .filter_map(|k| StatSpec::parse(k).ok())
        .collect()
}

/// Adds `key` (a rule's or a stat's canonical text) to an `ALERTS`/`STATS` record; false
/// when it was there already.
pub fn add_key(record: &mut Record, key: &str, now_ms: u64) -> bool {
    if record.map_fields.contains_key(key) {
        return false;
    }
    record
        .map_fields
        .insert(key.to_string(), fields(&[(ADDED, now_ms.to_string())]));
    true
}

/// The key of an aggregate in `PERSISTENTSTATS`: `AVG(lat)[RESOURCE=db]`.
pub fn aggregate_key(spec: &StatSpec, group: &Group) -> String {
    format!("{spec}[{group}]")
}

/// `PERSISTENTSTATS` from the aggregates.
pub fn encode_aggregates(a: &Aggregates) -> Record {
    let mut r = Record::new("PERSISTENTSTATS");
    for ((spec, group), agg) in &a.entries {
        let mut f = fields(&[
            (STAT, spec.to_string()),
            (SCOPE, group.to_string()),
            (VALUE, agg.value.to_string()),
            (COUNT, agg.count.to_string()),
            (TIMESTAMP, agg.updated_ms.to_string()),
        ]);
        if !agg.window.is_empty() {
            let w: Vec<String> = agg.window.iter().map(f64::to_string).collect();
            f.insert(WINDOW.to_string(), w.join(","));
        }
        r.map_fields.insert(aggregate_key(spec, group), f);
    }
    if !a.folded.is_empty() {
        let folded = a.folded.iter().map(|(i, t)| (i.clone(), t.to_string())).collect();
        r.map_fields.insert(REPORTS_FOLDED.to_string(), folded);
    }
    r
}

/// The aggregates in a `PERSISTENTSTATS` record.
pub fn decode_aggregates(record: Option<&Record>) -> Aggregates {
    let mut a = Aggregates::default();
    let Some(r) = record else { return a };
    for (k, f) in &r.map_fields {
        if k == REPORTS_FOLDED {
            a.folded = f
                .iter()
                .filter_map(|(i, t)| t.parse().ok().map(|t| (i.clone(), t)))
                .collect();
            continue;
        }
        let spec = f.get(STAT).and_then(|s| StatSpec::parse(s).ok());
        let group = f.get(SCOPE).and_then(|s| Group::parse(s));
        let (Some(spec), Some(group), Some(value)) = (spec, group, finite(f.get(VALUE))) else {
            continue;
        };
        let window = f
            .get(WINDOW)
            .map(|w| {
                w.split(',')
                    .filter_map(|x| x.parse::<f64>().ok())
                    .filter(|x| x.is_finite())
                    .collect()
            })
            .unwrap_or_default();
        a.entries.insert(
            (spec, group),
            Aggregate {
                value,
                count: f.get(COUNT).and_then(|c| c.parse().ok()).unwrap_or(0),
                window,
                updated_ms: f.get(TIMESTAMP).and_then(|c| c.parse().ok()).unwrap_or(0),
            },
        );
    }
    a
}

/// `ALERT_STATUS` from what fires.
pub fn encode_status(s: &AlertStatus) -> Record {
    let mut r = Record::new("ALERT_STATUS");
    for f in s.firing.values() {
        r.map_fields.insert(
            format!("{} @ {}", f.rule, f.group),
            fields(&[
                (RULE, f.rule.clone()),
                (SCOPE, f.group.to_string()),
                (VALUE, f.value.to_string()),
                (SINCE, f.since_ms.to_string()),
            ]),
        );
    }
    r
}

/// What fires, from an `ALERT_STATUS` record.
pub fn decode_status(record: Option<&Record>) -> AlertStatus {
    let mut s = AlertStatus::default();
    let Some(r) = record else { return s };
    for f in r.map_fields.values() {
        let (Some(rule), Some(group)) = (f.get(RULE), f.get(SCOPE).and_then(|g| Group::parse(g))) else {
            continue;
        };
        s.firing.insert(
            (rule.clone(), group.clone()),
            Firing {
                rule: rule.clone(),
                group,
                value: finite(f.get(VALUE)).unwrap_or(0.0),
                since_ms: f.get(SINCE).and_then(|t| t.parse().ok()).unwrap_or(0),
            },
        );
    }
    s
}

/// `prev` history with `transitions` appended, the oldest dropped beyond [`HISTORY_LIMIT`].
pub fn append_history(prev: Option<&Record>, transitions: &[AlertTransition]) -> Record {
    let mut r = prev.cloned().unwrap_or_else(|| Record::new("ALERT_HISTORY"));
    let mut next: u64 = r.simple(NEXT).and_then(|n| n.parse().ok()).unwrap_or(0);
    r.set_simple(FIRST_NEW, next);
    for t in transitions {
        let mut f = fields(&[
            (RULE, t.rule.clone()),
            (SCOPE, t.group.to_string()),
            (EVENT, t.kind.as_str().to_string()),
            (TIMESTAMP, t.at_ms.to_string()),
        ]);
        if let Some(v) = t.value {
            f.insert(VALUE.to_string(), v.to_string());
        }
        r.map_fields.insert(format!("{next:010}"), f);
        next += 1;
    }
    r.set_simple(NEXT, next);
    while r.map_fields.len() > HISTORY_LIMIT {
        let Some(first) = r.map_fields.keys().next().cloned() else {
            break;
        };
        r.map_fields.remove(&first);
    }
    r
}

/// One entry of `ALERT_HISTORY`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    /// The rule's text.
    pub rule: String,
    /// The group.
    pub scope: String,
    /// `FIRED` or `CLEARED`.
    pub event: String,
    /// The value then, if there was one.
    pub value: Option<f64>,
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
}

/// The entries of an `ALERT_HISTORY` record, oldest first.
pub fn history(record: Option<&Record>) -> Vec<HistoryEntry> {
    entries(record, 0)
}

/// The entries the last write of an `ALERT_HISTORY` record added.
pub fn latest_transitions(record: Option<&Record>) -> Vec<HistoryEntry> {
    let first = record
        .and_then(|r| r.simple(FIRST_NEW))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    entries(record, first)
}

fn entries(record: Option<&Record>, from: u64) -> Vec<HistoryEntry> {
    let Some(r) = record else { return Vec::new() };
    r.map_fields
        .iter()
        .filter(|(k, _)| k.parse::<u64>().is_ok_and(|n| n >= from))
        .map(|(_, f)| f)
        .filter_map(|f| {
            Some(HistoryEntry {
                rule: f.get(RULE)?.clone(),
                scope: f.get(SCOPE)?.clone(),
                event: f.get(EVENT)?.clone(),
                value: finite(f.get(VALUE)),
                at_ms: f.get(TIMESTAMP).and_then(|t| t.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

/// The distinct specs the controller aggregates: the configured stats and every rule's.
pub fn wanted_specs(rules: &[Rule], stats: &[StatSpec]) -> BTreeSet<StatSpec> {
    let mut out: BTreeSet<StatSpec> = stats.iter().cloned().collect();
    out.extend(rules.iter().map(|r| r.spec.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::alert::TransitionKind;

    #[test]
    fn aggregates_round_trip_through_their_record() {
        let mut a = Aggregates::default();
        a.entries.insert(
            (
                StatSpec::parse("WINDOW(3)(lat)").unwrap(),
                Group::Resource("db".into()),
            ),
            Aggregate {
                value: 1.0 / 3.0,
                count: 7,
                window: vec![0.0, 1.0, 0.1],
                updated_ms: 42,
            },
        );
        a.folded.insert("i1".into(), 41);
        let r = encode_aggregates(&a);
        assert!(r.map_fields.contains_key("WINDOW(3)(lat)[RESOURCE=db]"));
        let back = decode_aggregates(Some(&Record::from_json(&r.to_helix_json()).unwrap()));
        assert_eq!(back, a);
    }

    #[test]
    fn status_round_trips_and_bad_entries_are_skipped() {
        let mut s = AlertStatus::default();
        let g = Group::Instance("i1".into());
        s.firing.insert(
            ("AVG(x)[INSTANCE=*] > 1".into(), g.clone()),
            Firing {
                rule: "AVG(x)[INSTANCE=*] > 1".into(),
                group: g,
                value: 2.5,
                since_ms: 9,
            },
        );
        let mut r = encode_status(&s);
        r.map_fields.insert("junk".into(), fields(&[(RULE, "x".into())]));
        assert_eq!(decode_status(Some(&r)), s);
        assert_eq!(decode_status(None), AlertStatus::default());
    }

    #[test]
    fn history_is_bounded_and_keeps_the_latest() {
        let t = |i: u64| AlertTransition {
            rule: "AVG(x)[INSTANCE=*] > 1".into(),
            group: Group::Instance(format!("i{i}")),
            kind: if i.is_multiple_of(2) {
                TransitionKind::Fired
            } else {
                TransitionKind::Cleared
            },
            value: (!i.is_multiple_of(3)).then_some(i as f64),
            at_ms: i,
        };
        let mut r = append_history(None, &[t(0), t(1)]);
        for i in 2..(HISTORY_LIMIT as u64 + 10) {
            r = append_history(Some(&r), &[t(i)]);
        }
        let h = history(Some(&r));
        assert_eq!(h.len(), HISTORY_LIMIT);
        assert_eq!(h.first().unwrap().at_ms, 10);
        assert_eq!(h.last().unwrap().at_ms, HISTORY_LIMIT as u64 + 9);
        assert_eq!(h.last().unwrap().event, "CLEARED");
        assert_eq!(h[0].value, Some(10.0));
        assert_eq!(h[2].value, None);
        let r = append_history(Some(&r), &[t(500), t(501)]);
        let latest = latest_transitions(Some(&r));
        assert_eq!(latest.iter().map(|e| e.at_ms).collect::<Vec<_>>(), vec![500, 501]);
        assert!(latest_transitions(None).is_empty());
    }

    #[test]
    fn rule_and_stat_records_list_their_keys() {
        let mut r = Record::new("ALERTS");
        assert!(add_key(&mut r, "AVG(x)[INSTANCE=*] > 1", 5));
        assert!(!add_key(&mut r, "AVG(x)[INSTANCE=*] > 1", 6));
        r.map_fields.insert("not a rule".into(), BTreeMap::new());
        let parsed = rules(Some(&r));
        assert_eq!(parsed.iter().filter(|r| r.is_ok()).count(), 1);
        assert_eq!(parsed.iter().filter(|r| r.is_err()).count(), 1);
        let mut s = Record::new("STATS");
        add_key(&mut s, "WINDOW(5)(lat)", 1);
        assert_eq!(stats(Some(&s)), vec![StatSpec::parse("WINDOW(5)(lat)").unwrap()]);
    }
}
