//! The session lease: a participant acts on its replicas only while the store confirmed,
//! within the last [`SESSION_LEASE`], that its live-instance record still names its session.
//!
//! ```text
//!   participant (session task)                     controller (leader)
//!   every RENEW_EVERY: sent = now                  SWIM verdict → fenced delete of
//!     store: LIVEINSTANCES/<i> names my session?     LIVEINSTANCES/<i>
//!     yes → valid until sent + SESSION_LEASE       the session lingers (its replicas count
//!   expired → step every replica down,               against the state bounds) until it saw
//!     register a new session                         the delete + linger()
//! ```
//!
//! Why it holds: a confirmation the store serves after the delete committed fails, so the
//! last one that succeeded was *sent* before the delete committed, and the participant has
//! stepped down by that send time + [`SESSION_LEASE`] — before the controller, which saw
//! the delete after it committed, stops counting the session after [`linger`]. [`linger`]
//! adds a margin for the clocks of the two hosts running at different rates. This is what
//! keeps a MASTER cut off together with a store minority and a controller from serving
//! beside its successor: the gossip on its side of the cut still answers, but the store
//! does not. (The gossip's isolation verdict is the faster path when nothing answers.)

use std::time::Duration;

use tokio::time::Instant;

/// How long one confirmation lets a participant act on its replicas.
pub const SESSION_LEASE: Duration = Duration::from_millis(1000);

/// How often the participant asks for a confirmation.
pub const RENEW_EVERY: Duration = Duration::from_millis(100);

/// How long the controller counts an ended session's replicas after it saw the session's
/// live-instance record go: the lease, plus 10 % and 20 ms for clock-rate differences.
pub fn linger() -> Duration {
    SESSION_LEASE + SESSION_LEASE / 10 + Duration::from_millis(20)
}

/// A session's lease, as its participant holds it.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    until: Instant,
}

impl Lease {
    /// A lease from a confirmation (or a registration) sent at `sent`.
    pub fn new(sent: Instant) -> Self {
        Lease {
            until: sent + SESSION_LEASE,
        }
    }

    /// A confirmation sent at `sent` came back: the lease runs from then, if that is later.
    pub fn confirmed(&mut self, sent: Instant) {
        self.until = self.until.max(sent + SESSION_LEASE);
    }

    /// When the lease runs out.
    pub fn expires(&self) -> Instant {
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_the_latest_send_time_never_backwards() {
        let t0 = Instant::now();
        let mut l = Lease::new(t0);
        assert_eq!(l.expires(), t0 + SESSION_LEASE);
        l.confirmed(t0 + Duration::from_millis(300));
        assert_eq!(l.expires(), t0 + Duration::from_millis(300) + SESSION_LEASE);
        // A slow confirmation sent earlier does not shorten it.
        l.confirmed(t0 + Duration::from_millis(100));
        assert_eq!(l.expires(), t0 + Duration::from_millis(300) + SESSION_LEASE);
    }

    #[test]
    fn the_controller_waits_longer_than_any_lease() {
        assert!(linger() > SESSION_LEASE);
        assert!(RENEW_EVERY * 4 <= SESSION_LEASE);
    }
}
