//! The gossip's own metrics, registered once per membership and updated by the shell as
//! things happen (members by status, RTT per member, isolation and the health score are
//! gauges set at scrape time by `http::metrics::membership_collector`).
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `strand_membership_probe_rtt_seconds` | histogram | round trip of each acked direct probe |
//! | `strand_membership_suspicions_total` | counter | members this node saw become suspect |
//! | `strand_membership_false_suspicions_total` | counter | suspects that refuted (alive again, same generation): false positives |
//! | `strand_membership_refutations_total` | counter | times this node refuted a suspicion of itself |

use std::time::Duration;

use metrics::{Counter, Histogram};

use super::events::MembershipEvent;

/// The handles, registered on the process's recorder.
pub(crate) struct MembershipMetrics {
    probe_rtt: Histogram,
    suspicions: Counter,
    false_suspicions: Counter,
    refutations: Counter,
}

impl MembershipMetrics {
    pub(crate) fn register() -> Self {
        crate::telemetry::recorder();
        MembershipMetrics {
            probe_rtt: metrics::histogram!("strand_membership_probe_rtt_seconds"),
            suspicions: metrics::counter!("strand_membership_suspicions_total"),
            false_suspicions: metrics::counter!("strand_membership_false_suspicions_total"),
            refutations: metrics::counter!("strand_membership_refutations_total"),
        }
    }

    /// A direct probe was acked after `rtt`.
    pub(crate) fn probe_acked(&self, rtt: Duration) {
        self.probe_rtt.record(rtt);
    }

    /// Events about to be published.
    pub(crate) fn events(&self, events: &[MembershipEvent]) {
        let n = events
            .iter()
            .filter(|e| matches!(e, MembershipEvent::MemberSuspected(_)))
            .count();
        if n > 0 {
            self.suspicions.increment(n as u64);
        }
    }

    /// `n` suspects turned out alive.
    pub(crate) fn false_suspicions(&self, n: u64) {
        if n > 0 {
            self.false_suspicions.increment(n);
        }
    }

    /// This node refuted a suspicion of itself.
    pub(crate) fn refuted(&self) {
        self.refutations.increment(1);
    }
}
