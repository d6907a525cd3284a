//! The leader's health tick (Helix's `HealthStatsAggregator`), beside the rebalance
//! rounds and out of their way: every [`TICK`] the leader gathers the live instances'
//! reports, the rules and the stats from its mirror ([`inputs`], pure), lets
//! [`crate::health::decide`] fold and evaluate, and writes what changed in one fenced
//! transaction on a task of its own (one at a time; a tick while one is in flight is
//! skipped, a failed one makes the next tick start again from the mirror).
//!
//! ```text
//!   mirror ─► inputs ─► decide ─► Txn [fence; PERSISTENTSTATS, ALERT_STATUS, ALERT_HISTORY]
//!                                  └► metrics: strand_alerts_firing{cluster,rule},
//!                                              strand_alert_transitions_total{cluster,rule,to}
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::mirror::Mirror;
use crate::health::decide::{self, Inputs, State};
use crate::health::report::Report;
use crate::health::{records, AlertTransition, TransitionKind};
use crate::model::Record;
use crate::propertystore::{Condition, Op, PropertyStore, Txn};

/// How often the leader aggregates and evaluates.
pub const TICK: Duration = Duration::from_millis(500);

/// What one tick found in the mirror.
pub fn inputs(mirror: &Mirror, now_ms: u64) -> Inputs {
    let layout = mirror.layout();
    let live_prefix = format!("{}/", layout.live_instances());
    let live: BTreeSet<&str> = mirror
        .under(&live_prefix)
        .map(|(p, _)| &p[live_prefix.len()..])
        .collect();
    let mut reports = Vec::new();
    for instance in live {
        let prefix = format!("{}/HEALTHREPORT/", layout.instance(instance));
        for (_, entry) in mirror.under(&prefix) {
            if let Some(record) = entry.record.as_ref() {
                reports.push(Report::from_record(instance, record));
            }
        }
    }
    let rules = records::rules(mirror.record(&layout.alerts()).map(|r| &**r))
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    let stats = records::stats(mirror.record(&layout.stats()).map(|r| &**r));
    Inputs {
        reports,
        rules,
        stats,
        now_ms,
    }
}

const IDLE: u8 = 0;
const WRITING: u8 = 1;
const FAILED: u8 = 2;

/// The leader's health state for one leadership.
pub(super) struct Keeper {
    state: Option<State>,
    write: Arc<AtomicU8>,
    /// The rules whose `strand_alerts_firing` gauge was set (a removed one is set to 0).
    gauged: BTreeSet<String>,
}

impl Keeper {
    pub fn new() -> Self {
        Keeper {
            state: None,
            write: Arc::new(AtomicU8::new(IDLE)),
            gauged: BTreeSet::new(),
        }
    }

    /// One tick: decides from the mirror and writes what changed, fenced by `fence`.
    pub fn tick(&mut self, mirror: &Mirror, now_ms: u64, store: &PropertyStore, fence: Condition) {
        match self.write.load(Ordering::Acquire) {
            WRITING => return,
            FAILED => {
                self.state = None;
                self.write.store(IDLE, Ordering::Release);
            }
            _ => {}
        }
        let layout = mirror.layout().clone();
        let prev = self.state.take().unwrap_or_else(|| {
            let rec = |p: String| mirror.record(&p).map(|r| (**r).clone());
            State::from_records(
                rec(layout.persistent_stats()).as_ref(),
                rec(layout.alert_status()).as_ref(),
                rec(layout.alert_history()).as_ref(),
            )
        });
        let inputs = inputs(mirror, now_ms);
        let d = decide::decide(&inputs, &prev);
        self.state = Some(d.state);
        let cluster = layout.cluster().to_string();
        let firing = self
            .state
            .as_ref()
            .map(|s| s.status.per_rule())
            .unwrap_or_default();
        let rules: BTreeSet<String> = inputs.rules.iter().map(|r| r.text()).collect();
        crate::telemetry::recorder();
        for text in rules.union(&self.gauged) {
            let n = firing.get(text.as_str()).copied().unwrap_or(0);
            metrics::gauge!("strand_alerts_firing", "cluster" => cluster.clone(), "rule" => text.clone())
                .set(n as f64);
        }
        self.gauged = rules;
        if d.writes.is_empty() {
            return;
        }
        let mut ops = Vec::new();
        let mut put = |path: String, r: Option<Record>| {
            if let Some(r) = r {
                ops.push(Op::Set {
                    path,
                    value: r.to_helix_json().into_bytes(),
                    expected_version: None,
                });
            }
        };
        put(layout.persistent_stats(), d.writes.aggregates);
        put(layout.alert_status(), d.writes.status);
        put(layout.alert_history(), d.writes.history);
        let txn = Txn {
            conditions: vec![fence],
            success: ops,
            failure: Vec::new(),
        };
        self.write.store(WRITING, Ordering::Release);
        let write = self.write.clone();
        let store = store.clone();
        let transitions = d.transitions;
        tokio::spawn(async move {
            let ok = match store.txn(txn).await {
                Ok(w) if w.succeeded => true,
                Ok(_) => false, // fenced: the leader's own watch will tell it
                Err(e) => {
                    tracing::warn!(cluster = %cluster, error = %e, "writing health aggregates");
                    false
                }
            };
            if ok {
                record_transitions(&cluster, &transitions);
            }
            write.store(if ok { IDLE } else { FAILED }, Ordering::Release);
        });
    }
}

fn record_transitions(cluster: &str, transitions: &[AlertTransition]) {
    crate::telemetry::recorder();
    for t in transitions {
        let to = match t.kind {
            TransitionKind::Fired => "firing",
            TransitionKind::Cleared => "cleared",
        };
        tracing::info!(cluster, rule = %t.rule, scope = %t.group, value = ?t.value, "alert {to}");
        metrics::counter!("strand_alert_transitions_total",
            "cluster" => cluster.to_string(), "rule" => t.rule.clone(), "to" => to)
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::report::Pending;
    use crate::health::Scope;
    use crate::model::Layout;
    use crate::propertystore::Stat;

    fn stored(value: Vec<u8>) -> crate::propertystore::Record {
        crate::propertystore::Record {
            value,
            stat: Stat {
                version: 1,
                create_revision: 1,
                mod_revision: 1,
            },
        }
    }

    #[test]
    fn inputs_take_live_instances_reports_and_the_rules() {
        let l = Layout::new("C");
        let mut p = Pending::new();
        p.report("lat", 5.0, Scope::resource("db")).unwrap();
        let report = p.take(1).unwrap().to_bytes();
        let mut alerts = Record::new("ALERTS");
        records::add_key(&mut alerts, "AVG(lat)[RESOURCE=*] > 1", 0);
        records::add_key(&mut alerts, "garbage", 0);
        let entries = vec![
            (l.live_instance("i1"), stored(Record::new("i1").to_bytes())),
            (l.health_report("i1", "ParticipantStats"), stored(report.clone())),
            (l.health_report("i2", "ParticipantStats"), stored(report)),
            (l.alerts(), stored(alerts.to_bytes())),
        ];
        let m = Mirror::load(l.clone(), entries, 1);
        let i = inputs(&m, 7);
        assert_eq!(i.reports.len(), 1, "only the live instance's report counts");
        assert_eq!(i.reports[0].instance, "i1");
        assert_eq!(i.rules.len(), 1, "the unreadable rule is skipped");
        assert_eq!(i.now_ms, 7);
    }
}
