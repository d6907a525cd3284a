//! The sender's metrics of criteria messaging, registered once per [`super::service::Messaging`]
//! handle and updated by its send loop.
//!
//! | metric | kind | meaning |
//! |---|---|---|
//! | `strand_messaging_send_duration_seconds` | histogram (`wait`: true, false) | one `send` / `send_and_wait`, from the call to its result |
//! | `strand_messaging_reply_seconds` | histogram | from the send to each recipient's reply (or acceptance, for `send`) |
//! | `strand_messaging_messages_total` | counter | copies sent (one per resolved recipient) |
//! | `strand_messaging_timeouts_total` | counter | recipients that gave no answer in time |
//! | `strand_messaging_failures_total` | counter | recipients that refused or whose handler failed |

use std::time::Duration;

use metrics::{Counter, Histogram};

use super::outcome::SendResult;

/// The handles of one messaging handle.
pub(super) struct MessagingMetrics {
    send_nowait: Histogram,
    send_wait: Histogram,
    reply: Histogram,
    messages: Counter,
    timeouts: Counter,
    failures: Counter,
}

impl MessagingMetrics {
    pub(super) fn register() -> Self {
        crate::telemetry::recorder();
        MessagingMetrics {
            send_nowait: metrics::histogram!("strand_messaging_send_duration_seconds", "wait" => "false"),
            send_wait: metrics::histogram!("strand_messaging_send_duration_seconds", "wait" => "true"),
            reply: metrics::histogram!("strand_messaging_reply_seconds"),
            messages: metrics::counter!("strand_messaging_messages_total"),
            timeouts: metrics::counter!("strand_messaging_timeouts_total"),
            failures: metrics::counter!("strand_messaging_failures_total"),
        }
    }

    /// A reply arrived `after` the send began.
    pub(super) fn replied(&self, after: Duration) {
        self.reply.record(after);
    }

    /// A send (waiting for replies or not) ended with `result` after `took`.
    pub(super) fn sent(&self, wait: bool, took: Duration, result: &SendResult) {
        if wait { &self.send_wait } else { &self.send_nowait }.record(took);
        self.messages.increment(result.recipients as u64);
        self.timeouts.increment(result.timed_out.len() as u64);
        self.failures.increment(result.failed.len() as u64);
    }
}
