//! A controller's metrics for one cluster (label `cluster`), registered once when the
//! cluster's task starts and updated by the leader after each round from
//! [`super::stats`]. (Whether it leads and its epoch are gauges set at scrape time by
//! `http::metrics::controller_collector`.)
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `strand_controller_rounds_total` | counter | rounds run to their end while leading |
//! | `strand_controller_round_duration_seconds` | histogram | one round: snapshot, engine, plan, fenced writes |
//! | `strand_controller_transitions_sent_total` | counter | transition messages recorded in the store and sent |
//! | `strand_controller_transitions_completed_total` | counter | sent transitions whose replica reached the target state |
//! | `strand_controller_transitions_failed_total` | counter | sent transitions whose replica went to ERROR |
//! | `strand_controller_transitions_throttled_total` | counter | transitions held back by a throttle or message constraint, once per round held |
//! | `strand_controller_partitions_missing_top_state` | gauge | partitions with no replica in the top state (MASTER, LEADER, ONLINE) |
//! | `strand_controller_partitions_below_min_active` | gauge | partitions with fewer active replicas than their minimum |
//! | `strand_controller_leadership_changes_total` | counter (`to`: leader, standby) | this controller took or lost the cluster's leadership |

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use super::stats::{Ended, Health};

/// The handles of one cluster.
pub(super) struct ClusterMetrics {
    rounds: Counter,
    round_duration: Histogram,
    sent: Counter,
    completed: Counter,
    failed: Counter,
    throttled: Counter,
    missing_top_state: Gauge,
    below_min_active: Gauge,
    became_leader: Counter,
    became_standby: Counter,
}

impl ClusterMetrics {
    pub(super) fn register(cluster: &str) -> Self {
        crate::telemetry::recorder();
        let c = cluster.to_string();
        ClusterMetrics {
            rounds: metrics::counter!("strand_controller_rounds_total", "cluster" => c.clone()),
            round_duration: metrics::histogram!("strand_controller_round_duration_seconds", "cluster" => c.clone()),
            sent: metrics::counter!("strand_controller_transitions_sent_total", "cluster" => c.clone()),
            completed: metrics::counter!("strand_controller_transitions_completed_total", "cluster" => c.clone()),
            failed: metrics::counter!("strand_controller_transitions_failed_total", "cluster" => c.clone()),
            throttled: metrics::counter!("strand_controller_transitions_throttled_total", "cluster" => c.clone()),
            missing_top_state: metrics::gauge!("strand_controller_partitions_missing_top_state", "cluster" => c.clone()),
            below_min_active: metrics::gauge!("strand_controller_partitions_below_min_active", "cluster" => c.clone()),
            became_leader: metrics::counter!("strand_controller_leadership_changes_total",
                "cluster" => c.clone(), "to" => "leader"),
            became_standby: metrics::counter!("strand_controller_leadership_changes_total",
                "cluster" => c, "to" => "standby"),
        }
    }

    /// What a round's decision showed: the cluster's health, and how the transitions that
    /// stopped being pending ended (recorded before the round's writes, which may fail).
    pub(super) fn decided(&self, health: Health, ended: Ended) {
        self.throttled.increment(health.throttled as u64);
        self.completed.increment(ended.completed as u64);
        self.failed.increment(ended.failed as u64);
        self.missing_top_state.set(health.missing_top_state as f64);
        self.below_min_active.set(health.below_min_active as f64);
    }

    /// A round ran to its end in `took`.
    pub(super) fn round(&self, took: Duration) {
        self.rounds.increment(1);
        self.round_duration.record(took);
    }

    /// `n` transition messages were recorded and are being sent.
    pub(super) fn sent(&self, n: usize) {
        self.sent.increment(n as u64);
    }

    /// This controller took the leadership (`true`) or stood by again (its partition gauges
    /// go to 0: the leader's are the cluster's).
    pub(super) fn leadership(&self, leads: bool) {
        if leads {
            self.became_leader.increment(1);
        } else {
            self.became_standby.increment(1);
            self.missing_top_state.set(0.0);
            self.below_min_active.set(0.0);
        }
    }
}
