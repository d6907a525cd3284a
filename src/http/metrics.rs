//! `/metrics`: Prometheus text exposition by the `metrics` crate's Prometheus exporter (no
//! hand-written format). One recorder per process; each role of the process gives a
//! [`Collector`] that sets its gauges when scraped, and a participant's transitions are
//! counted as they happen.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `strand_members` | gauge | `status` (alive, suspect, down, left) |
//! | `strand_member_rtt_seconds` | gauge | `member` (last probe round trip) |
//! | `strand_membership_isolated` | gauge (0/1) | |
//! | `strand_membership_health_score` | gauge | |
//! | `strand_controller_leader` | gauge (0/1) | `cluster` |
//! | `strand_controller_epoch` | gauge | `cluster` (while leading) |
//! | `strand_participant_session_live` | gauge (0/1) | `instance` |
//! | `strand_participant_transitions_total` | counter | `from`, `to`, `phase` (ok, error, cancelled, discarded) |
//! | `strand_participant_transition_duration_seconds` | histogram | `from`, `to` |
//! | `strand_participant_transitions_in_flight` | gauge | `instance` (begun, not yet ended) |
//! | `strand_store_raft_term`, `strand_store_raft_leader` (0/1) | gauge | `replica` |
//! | `strand_store_last_log_index`, `strand_store_applied_index`, `strand_store_apply_lag_entries` | gauge | `replica` |

use std::collections::HashMap;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::controller::{Controller, Role};
use crate::membership::{MembershipView, Status};
use crate::participant::{Participant, Phase, SessionStatus};
use crate::propertystore::StoreServer;

/// Sets a role's gauges; run on every scrape.
pub type Collector = Arc<dyn Fn() + Send + Sync>;

/// The process's recorder (see [`crate::telemetry`]), installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    crate::telemetry::recorder()
}

/// The exposition text after running `collectors`.
pub fn render(collectors: &[Collector]) -> String {
    let h = handle();
    for c in collectors {
        c();
    }
    h.render()
}

/// The gossip: members by status, probe round trips, isolation, local health.
pub fn membership_collector(view: MembershipView) -> Collector {
    Arc::new(move || {
        let members = view.members();
        let mut by_status: HashMap<Status, usize> = HashMap::new();
        for s in [Status::Alive, Status::Suspect, Status::Down, Status::Left] {
            by_status.insert(s, 0);
        }
        for m in members.iter().filter(|m| !m.is_local) {
            *by_status.entry(m.status).or_default() += 1;
            if let Some(rtt) = m.rtt_ms {
                metrics::gauge!("strand_member_rtt_seconds", "member" => m.name.clone()).set(rtt / 1000.0);
            }
        }
        for (s, n) in by_status {
            metrics::gauge!("strand_members", "status" => s.as_str()).set(n as f64);
        }
        metrics::gauge!("strand_membership_isolated").set(f64::from(u8::from(view.is_isolated())));
        metrics::gauge!("strand_membership_health_score").set(f64::from(view.health_score()));
    })
}

/// A controller: whether it leads each cluster, and its epoch there.
pub fn controller_collector(c: &Controller, clusters: &[String]) -> Collector {
    let roles: Vec<_> = clusters
        .iter()
        .filter_map(|k| c.role(k).map(|r| (k.clone(), r)))
        .collect();
    Arc::new(move || {
        for (k, r) in &roles {
            let role = *r.borrow();
            let (leader, epoch) = match role {
                Role::Leader { epoch } => (1.0, epoch as f64),
                Role::Standby => (0.0, 0.0),
            };
            metrics::gauge!("strand_controller_leader", "cluster" => k.clone()).set(leader);
            metrics::gauge!("strand_controller_epoch", "cluster" => k.clone()).set(epoch);
        }
    })
}

/// A participant: its session; and a task that counts its transitions and their
/// durations (begin → end, by message id) until the participant stops.
pub fn participant_collector(p: &Participant) -> Collector {
    // The recorder must be in place before the first transition is counted.
    handle();
    let instance = p.instance().to_string();
    let status = p.status();
    let mut events = p.events();
    let in_flight =
        metrics::gauge!("strand_participant_transitions_in_flight", "instance" => instance.clone());
    tokio::spawn(async move {
        let mut begun: HashMap<String, u64> = HashMap::new();
        loop {
            match events.recv().await {
                Ok(e) => {
                    let phase = match e.phase {
                        Phase::Begin => {
                            begun.insert(e.msg_id.clone(), e.ts_us);
                            in_flight.set(begun.len() as f64);
                            continue;
                        }
                        Phase::Ok => "ok",
                        Phase::Error => "error",
                        Phase::Cancelled => "cancelled",
                        Phase::Discarded => "discarded",
                    };
                    metrics::counter!("strand_participant_transitions_total",
                        "from" => e.from.clone(), "to" => e.to.clone(), "phase" => phase)
                    .increment(1);
                    if let Some(start) = begun.remove(&e.msg_id) {
                        let secs = e.ts_us.saturating_sub(start) as f64 / 1e6;
                        metrics::histogram!("strand_participant_transition_duration_seconds",
                            "from" => e.from, "to" => e.to)
                        .record(secs);
                    }
                    in_flight.set(begun.len() as f64);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    begun.clear();
                    in_flight.set(0.0);
                }
                Err(_) => return,
            }
        }
    });
    Arc::new(move || {
        let live = matches!(&*status.borrow(), SessionStatus::Live(_));
        metrics::gauge!("strand_participant_session_live", "instance" => instance.clone())
            .set(f64::from(u8::from(live)));
    })
}

/// A store replica: its Raft term and role, its log and applied indexes, the apply lag.
pub fn store_collector(s: &StoreServer) -> Collector {
    let replica = s.id().to_string();
    let metrics_rx = s.raft().metrics();
    Arc::new(move || {
        let m = metrics_rx.borrow();
        let last = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        let leader = m.current_leader == Some(m.id);
        let r = replica.clone();
        metrics::gauge!("strand_store_raft_term", "replica" => r.clone()).set(m.current_term as f64);
        metrics::gauge!("strand_store_raft_leader", "replica" => r.clone()).set(f64::from(u8::from(leader)));
        metrics::gauge!("strand_store_last_log_index", "replica" => r.clone()).set(last as f64);
        metrics::gauge!("strand_store_applied_index", "replica" => r.clone()).set(applied as f64);
        metrics::gauge!("strand_store_apply_lag_entries", "replica" => r)
            .set(last.saturating_sub(applied) as f64);
    })
}
