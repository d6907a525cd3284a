//! The session lease: a participant acts on its replicas only while the store confirmed,
//! within the last [`SESSION_LEASE`], that its live-instance record still names its session.
//!
//! ```text
//!   participant (session task)                     controller (leader)
//!   every RENEW_EVERY: sent = now                  SWIM verdict → fenced delete of
//!     a majority of store replicas: does             LIVEINSTANCES/<i>
//!     LIVEINSTANCES/<i> hold my record?            the session lingers (its replicas count
//!     yes → valid until sent + SESSION_LEASE         against the state bounds) until it saw
//!   STEP_DOWN_TIME before it runs out →              the delete + linger()
//!     step every replica down, register anew
//! ```
//!
//! The confirmation needs no store leader ([`crate::propertystore::confirm`]): a majority
//! of replicas, each answering from its own applied state and log, so a store leader change
//! does not make every participant step down.
//!
//! Why it holds: a confirmation asked after the delete committed fails (a majority of
//! replicas hold the delete in their logs), so the last one that succeeded was *sent*
//! before the delete committed, and the participant has stepped down by that send time +
//! [`SESSION_LEASE`] — before the controller, which saw the delete after it committed,
//! stops counting the session after [`linger`]. [`linger`] adds a margin for the clocks of
//! the two hosts running at slightly different rates. This is what
//! keeps a MASTER cut off together with a store minority and a controller from serving
//! beside its successor: the gossip on its side of the cut still answers, but the store
//! does not. (The gossip's isolation verdict is the faster path when nothing answers.)

use std::time::Duration;

use tokio::time::Instant;

/// How long one confirmation lets a participant act on its replicas.
pub const SESSION_LEASE: Duration = Duration::from_millis(450);

/// How long before its lease runs out a participant starts stepping its replicas down, so
/// that the transitions out of MASTER have ended when it does: a handler's MASTER→SLAVE
/// that takes longer may overlap its successor's promotion.
pub const STEP_DOWN_TIME: Duration = Duration::from_millis(200);

/// How often the participant asks for a confirmation (four tries before it steps down).
pub const RENEW_EVERY: Duration = Duration::from_millis(60);

/// How long one confirmation may take before the next is asked instead.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(150);

/// How long the controller counts an ended session's replicas after it saw the session's
/// live-instance record go: the lease, plus 2 % and 15 ms for clock-rate differences
/// (monotonic clocks drift by parts per million; this is hundreds of times that).
pub fn linger() -> Duration {
    SESSION_LEASE + SESSION_LEASE / 50 + Duration::from_millis(15)
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

    /// When the participant starts stepping down unless a confirmation comes first.
    pub fn step_down_at(&self) -> Instant {
        self.until - STEP_DOWN_TIME
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
        assert!(RENEW_EVERY * 4 <= SESSION_LEASE - STEP_DOWN_TIME);
        let l = Lease::new(Instant::now());
        assert_eq!(l.expires() - l.step_down_at(), STEP_DOWN_TIME);
    }
}
