//! The invariants a run is checked against, as pure functions over what it recorded:
//!
//! | invariant | checked by |
//! |---|---|
//! | (a) never two MASTERs of a partition, as participants report | [`two_masters`] → [`crate::participant::audit`] |
//! | (b) no acknowledged store write lost, history linearizable, watch stream right | [`store_history`] → [`crate::check::linearizability`], [`crate::check::watch`] |
//! | (c) no transition begun from a fenced (older) controller epoch in a session | [`stale_epochs`] |
//! | (d) after the last heal the external view reaches the best possible | [`converged`] (the run loop polls it within a virtual bound) |

use std::collections::BTreeMap;

use crate::check::linearizability::{self, Operation, Verdict};
use crate::check::watch::{self, WatchEvent};
use crate::cli::bench::linz::record::{self, Recorded};
use crate::participant::audit::{self, LogLine};
use crate::participant::{Phase, TransitionEvent};

/// A transition event stamped with virtual time.
#[derive(Debug, Clone)]
pub struct Stamped {
    /// Virtual µs since the run started.
    pub at_us: u64,
    /// The event.
    pub event: TransitionEvent,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Which invariant: `two-masters`, `linearizability`, `watch`, `stale-epoch`,
    /// `convergence`, `setup`, `progress`, `replay` (a second run of the seed differed).
    pub invariant: String,
    /// What was seen.
    pub detail: String,
    /// Virtual µs it concerns (for the minimal trace).
    pub at_us: Vec<u64>,
    /// What trace lines about it contain (`db db_2`, an instance), if it is about one thing:
    /// the minimal trace keeps only those besides the faults.
    pub subject: Option<String>,
}

/// The search budget of the linearizability checker per key partition.
pub const CHECK_BUDGET: u64 = 2_000_000;

/// (a) Replicas in MASTER at once, per partition, beyond the bound of 1; `ends` are the
/// virtual times each instance's process was killed.
pub fn two_masters(events: &[Stamped], ends: &BTreeMap<String, Vec<u64>>) -> Vec<Violation> {
    let lines: Vec<LogLine> = events
        .iter()
        .map(|s| LogLine {
            ts_us: s.at_us,
            instance: s.event.instance.clone(),
            resource: s.event.resource.clone(),
            partition: s.event.partition.clone(),
            from: s.event.from.clone(),
            to: s.event.to.clone(),
            phase: phase_name(s.event.phase).to_string(),
        })
        .collect();
    audit::violations(&lines, "MASTER", 1, ends)
        .into_iter()
        .map(|v| {
            let held: Vec<String> = v
                .intervals
                .iter()
                .map(|i| format!("{} from {}us to {}", i.instance, i.start_us, end(i.end_us)))
                .collect();
            Violation {
                invariant: "two-masters".into(),
                detail: format!("{} {}: {}", v.resource, v.partition, held.join("; ")),
                at_us: v
                    .intervals
                    .iter()
                    .flat_map(|i| [i.start_us, i.end_us])
                    .filter(|t| *t != u64::MAX)
                    .collect(),
                subject: Some(format!(" {} {} ", v.resource, v.partition)),
            }
        })
        .collect()
}

/// The phase as the participants' JSON log spells it.
pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Begin => "begin",
        Phase::Ok => "ok",
        Phase::Error => "error",
        Phase::Cancelled => "cancelled",
        Phase::Discarded => "discarded",
    }
}

fn end(us: u64) -> String {
    if us == u64::MAX {
        "the end".into()
    } else {
        format!("{us}us")
    }
}

/// (c) Transitions a participant session began for a controller epoch older than one it
/// had already begun a transition of (a fenced controller's message applied). Epoch 0 (a
/// participant's own step-down, an operator's reset) is never a regression.
pub fn stale_epochs(events: &[Stamped]) -> Vec<Violation> {
    let mut highest: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut out = Vec::new();
    for s in events {
        let e = &s.event;
        if e.phase != Phase::Begin || e.epoch == 0 {
            continue;
        }
        let h = highest
            .entry((e.instance.as_str(), e.session.as_str()))
            .or_insert(0);
        if e.epoch < *h {
            out.push(Violation {
                invariant: "stale-epoch".into(),
                detail: format!(
                    "{} (session {}) began {} {} {}->{} of controller epoch {} after epoch {}",
                    e.instance, e.session, e.resource, e.partition, e.from, e.to, e.epoch, h
                ),
                at_us: vec![s.at_us],
                subject: Some(format!("{} ", e.instance)),
            });
        }
        *h = (*h).max(e.epoch);
    }
    out
}

/// (b) The clients' history and the watcher's stream: the stream is checked against what
/// clients saw (ordered, unique, gap-free, no value never written), settles writes of
/// unknown outcome, and the history must be linearizable.
pub fn store_history(
    mut recorded: Recorded,
    stream: &[WatchEvent],
    through: u64,
) -> (Vec<Violation>, Vec<Operation>) {
    let seen = recorded.seen();
    let sent = record::sent_values(&recorded.history);
    let mut out: Vec<Violation> = watch::check(1, through, stream, &seen, &sent, |k| {
        k.starts_with(record::PREFIX)
    })
    .into_iter()
    .map(|v| Violation {
        invariant: "watch".into(),
        detail: format!("{v:?}"),
        at_us: vec![],
        subject: None,
    })
    .collect();
    if out.is_empty() {
        record::settle(&mut recorded, stream);
    }
    match linearizability::check_with_budget(&recorded.history, CHECK_BUDGET) {
        Verdict::Linearizable => {}
        other => {
            let at_us = match &other {
                Verdict::NotLinearizable(v) => v
                    .unplaced
                    .iter()
                    .map(|&i| recorded.history[i].invoke / 1_000)
                    .collect(),
                _ => vec![],
            };
            out.push(Violation {
                invariant: "linearizability".into(),
                detail: format!("{other:?}"),
                at_us,
                subject: None,
            })
        }
    }
    (out, recorded.history)
}

/// (d) Whether an external view (partition → instance → state) is the best possible with
/// every instance live: `partitions` partitions, each with one MASTER and `replicas - 1`
/// SLAVEs.
pub fn converged(
    view: &BTreeMap<String, BTreeMap<String, String>>,
    partitions: usize,
    replicas: usize,
) -> bool {
    view.len() == partitions
        && view.values().all(|m| {
            m.len() == replicas
                && m.values().filter(|s| *s == "MASTER").count() == 1
                && m.values().filter(|s| *s == "SLAVE").count() == replicas - 1
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        at_us: u64,
        instance: &str,
        session: &str,
        from: &str,
        to: &str,
        phase: Phase,
        epoch: u64,
    ) -> Stamped {
        Stamped {
            at_us,
            event: TransitionEvent {
                ts_us: 0,
                instance: instance.into(),
                session: session.into(),
                resource: "db".into(),
                partition: "db_0".into(),
                from: from.into(),
                to: to.into(),
                phase,
                msg_id: "m".into(),
                epoch,
                reason: None,
            },
        }
    }

    #[test]
    fn overlapping_masters_are_caught_and_a_hand_over_is_not() {
        let ok = vec![
            ev(10, "a", "s", "SLAVE", "MASTER", Phase::Begin, 3),
            ev(20, "a", "s", "SLAVE", "MASTER", Phase::Ok, 3),
            ev(30, "a", "s", "MASTER", "SLAVE", Phase::Begin, 3),
            ev(40, "a", "s", "MASTER", "SLAVE", Phase::Ok, 3),
            ev(50, "b", "s", "SLAVE", "MASTER", Phase::Begin, 3),
        ];
        assert!(two_masters(&ok, &BTreeMap::new()).is_empty());
        let mut bad = ok.clone();
        bad[4].at_us = 35;
        bad.sort_by_key(|s| s.at_us);
        assert_eq!(two_masters(&bad, &BTreeMap::new()).len(), 1);
        // A killed MASTER holds nothing after its kill.
        let killed = vec![
            ev(10, "a", "s", "SLAVE", "MASTER", Phase::Begin, 3),
            ev(50, "b", "s", "SLAVE", "MASTER", Phase::Begin, 4),
        ];
        let ends = BTreeMap::from([("a".to_string(), vec![40])]);
        assert!(two_masters(&killed, &ends).is_empty());
        assert_eq!(two_masters(&killed, &BTreeMap::new()).len(), 1);
    }

    #[test]
    fn an_older_epoch_after_a_newer_one_in_a_session_is_caught() {
        let ok = vec![
            ev(1, "a", "s1", "OFFLINE", "SLAVE", Phase::Begin, 5),
            ev(2, "a", "s1", "SLAVE", "MASTER", Phase::Begin, 7),
            ev(3, "a", "s1", "MASTER", "SLAVE", Phase::Begin, 0),
            ev(4, "a", "s2", "OFFLINE", "SLAVE", Phase::Begin, 5),
            ev(5, "b", "s1", "OFFLINE", "SLAVE", Phase::Begin, 4),
            ev(6, "a", "s1", "SLAVE", "OFFLINE", Phase::Ok, 6),
        ];
        assert!(stale_epochs(&ok).is_empty());
        let mut bad = ok;
        bad.push(ev(7, "a", "s1", "SLAVE", "OFFLINE", Phase::Begin, 6));
        let v = stale_epochs(&bad);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].at_us, vec![7]);
    }

    #[test]
    fn only_one_master_and_full_slaves_everywhere_is_converged() {
        let part = |states: &[(&str, &str)]| -> BTreeMap<String, String> {
            states
                .iter()
                .map(|(i, s)| (i.to_string(), s.to_string()))
                .collect()
        };
        let mut view = BTreeMap::new();
        view.insert("db_0".to_string(), part(&[("a", "MASTER"), ("b", "SLAVE")]));
        view.insert("db_1".to_string(), part(&[("b", "MASTER"), ("a", "SLAVE")]));
        assert!(converged(&view, 2, 2));
        assert!(!converged(&view, 3, 2), "a partition missing");
        view.insert("db_1".to_string(), part(&[("b", "MASTER"), ("a", "OFFLINE")]));
        assert!(!converged(&view, 2, 2));
        view.insert("db_1".to_string(), part(&[("b", "MASTER"), ("a", "MASTER")]));
        assert!(!converged(&view, 2, 2));
    }
}
