//! One health tick of the leading controller, as a pure function: the live instances'
//! reports, the rules and stats, and the previous state in; the new state, the alert
//! transitions and the records that changed out.
//!
//! ```text
//!   Inputs { reports, rules, stats, now_ms } + State { aggregates, status, history }
//!     ─► aggregate::fold (every configured stat and every rule's) ─► alert::evaluate
//!     ─► Decision { state, transitions, writes: only the records whose text changed }
//! ```

use super::aggregate::{fold, Aggregates, StatSpec};
use super::alert::{evaluate, AlertStatus, AlertTransition};
use super::records;
use super::report::Report;
use super::rule::Rule;
use crate::model::Record;

/// What a tick looks at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The reports of the instances that are live.
    pub reports: Vec<Report>,
    /// The alert rules.
    pub rules: Vec<Rule>,
    /// Stats to aggregate besides the rules'.
    pub stats: Vec<StatSpec>,
    /// Now, ms since the Unix epoch.
    pub now_ms: u64,
}

/// What a tick carries to the next one (and what a new leader reads back from the store).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The aggregates.
    pub aggregates: Aggregates,
    /// What fires.
    pub status: AlertStatus,
    /// The alert history record, if there is one.
    pub history: Option<Record>,
}

impl State {
    /// The state as the leader's records hold it.
    pub fn from_records(
        persistent_stats: Option<&Record>,
        alert_status: Option<&Record>,
        alert_history: Option<&Record>,
    ) -> State {
        State {
            aggregates: records::decode_aggregates(persistent_stats),
            status: records::decode_status(alert_status),
            history: alert_history.cloned(),
        }
    }
}

/// The records a tick writes (each `None` when unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Writes {
    /// `PERSISTENTSTATS`.
    pub aggregates: Option<Record>,
    /// `ALERT_STATUS`.
    pub status: Option<Record>,
    /// `ALERT_HISTORY`.
    pub history: Option<Record>,
}

impl Writes {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.aggregates.is_none() && self.status.is_none() && self.history.is_none()
    }
}

/// A tick's outcome.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The state after the tick.
    pub state: State,
    /// What fired or cleared.
    pub transitions: Vec<AlertTransition>,
    /// What to write.
    pub writes: Writes,
}

/// Runs one tick.
pub fn decide(inputs: &Inputs, prev: &State) -> Decision {
    let specs = records::wanted_specs(&inputs.rules, &inputs.stats);
    let aggregates = if specs.is_empty() {
        Aggregates::default()
    } else {
        fold(&specs, &inputs.reports, &prev.aggregates, inputs.now_ms)
    };
    let (status, transitions) = evaluate(&inputs.rules, &aggregates, &prev.status, inputs.now_ms);
    let mut writes = Writes::default();
    if aggregates != prev.aggregates {
        writes.aggregates = Some(records::encode_aggregates(&aggregates));
    }
    if status != prev.status {
        writes.status = Some(records::encode_status(&status));
    }
    let history = if transitions.is_empty() {
        prev.history.clone()
    } else {
        let h = records::append_history(prev.history.as_ref(), &transitions);
        writes.history = Some(h.clone());
        Some(h)
    };
    Decision {
        state: State {
            aggregates,
            status,
            history,
        },
        transitions,
        writes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::alert::TransitionKind;
    use crate::health::report::Sample;
    use crate::health::scope::{Group, Scope};

    fn reports(v: f64, at: u64) -> Vec<Report> {
        ["i1", "i2"]
            .iter()
            .map(|i| Report {
                instance: i.to_string(),
                samples: vec![Sample {
                    stat: "lat".into(),
                    scope: Scope::partition("db", "db_0"),
                    value: v,
                    count: 1,
                    updated_ms: at,
                }],
            })
            .collect()
    }

    #[test]
    fn a_rule_fires_when_the_aggregate_crosses_and_clears_when_it_drops_back() {
        let rules = vec![Rule::parse("AVG(lat)[RESOURCE=*] > 50").unwrap()];
        let tick = |state: &State, v: f64, at: u64| {
            decide(
                &Inputs {
                    reports: reports(v, at),
                    rules: rules.clone(),
                    stats: vec![],
                    now_ms: at,
                },
                state,
            )
        };
        let d1 = tick(&State::default(), 10.0, 1);
        assert!(d1.transitions.is_empty());
        assert!(d1.writes.aggregates.is_some() && d1.writes.status.is_none() && d1.writes.history.is_none());
        let d2 = tick(&d1.state, 80.0, 2);
        assert_eq!(d2.transitions.len(), 1);
        assert_eq!(d2.transitions[0].kind, TransitionKind::Fired);
        assert_eq!(d2.transitions[0].group, Group::Resource("db".into()));
        assert!(d2.writes.status.is_some() && d2.writes.history.is_some());
        // Nothing new: nothing to write.
        let d3 = tick(&d2.state, 80.0, 2);
        assert!(
            d3.transitions.is_empty() && d3.writes.is_empty(),
            "{:?}",
            d3.writes
        );
        let d4 = tick(&d3.state, 20.0, 4);
        assert_eq!(d4.transitions[0].kind, TransitionKind::Cleared);
        assert_eq!(records::history(d4.state.history.as_ref()).len(), 2);
        // A new leader reading the records back continues where this one stopped.
        let w = tick(&d1.state, 80.0, 2).writes;
        let back = State::from_records(w.aggregates.as_ref(), w.status.as_ref(), w.history.as_ref());
        assert_eq!(back, d2.state);
    }

    #[test]
    fn nothing_configured_writes_nothing() {
        let d = decide(
            &Inputs {
                reports: reports(1.0, 1),
                now_ms: 1,
                ..Default::default()
            },
            &State::default(),
        );
        assert!(d.writes.is_empty() && d.transitions.is_empty());
    }
}
