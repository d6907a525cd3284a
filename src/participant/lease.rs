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

/// How long one confirmation is waited for: one that comes back later than this after it
/// was sent extends the lease only to where the step-down has already begun
/// (`SESSION_LEASE - STEP_DOWN_TIME`). Checks overlap (a new one every [`RENEW_EVERY`]), so a
/// store that answers slowly but within this keeps the lease: on a loaded machine confirmations
/// taking more than [`RENEW_EVERY`] made healthy participants step down when each check had to
/// end before the next began.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(250);

/// At most this many confirmations in flight at once (as many as [`RENEW_EVERY`] starts
/// within [`CHECK_TIMEOUT`]).
const MAX_CHECKS: usize = 5;

/// Renews a lease: starts `confirm()` every [`RENEW_EVERY`] (while fewer than
/// [`MAX_CHECKS`] are in flight), waits for each at most [`CHECK_TIMEOUT`], and reports the
/// send time of each that confirmed through `confirmed`. Returns when `confirmed` does
/// (its receiver is gone).
pub async fn renew<F, Fut, R, RFut>(mut confirm: F, mut confirmed: R)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
    R: FnMut(Instant) -> RFut,
    RFut: std::future::Future<Output = bool>,
{
    use futures::stream::{FuturesUnordered, StreamExt};
    let mut checks = FuturesUnordered::new();
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            Some((sent, ok)) = checks.next(), if !checks.is_empty() => {
                if ok && !confirmed(sent).await {
                    return;
                }
            }
            _ = tokio::time::sleep_until(next), if checks.len() < MAX_CHECKS => {
                let sent = Instant::now();
                let check = tokio::time::timeout(CHECK_TIMEOUT, confirm());
                checks.push(async move { (sent, matches!(check.await, Ok(true))) });
                next = sent + RENEW_EVERY;
            }
        }
    }
}

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
        assert_eq!(CHECK_TIMEOUT, SESSION_LEASE - STEP_DOWN_TIME);
        assert!(RENEW_EVERY * MAX_CHECKS as u32 >= CHECK_TIMEOUT);
        let l = Lease::new(Instant::now());
        assert_eq!(l.expires() - l.step_down_at(), STEP_DOWN_TIME);
    }

    /// Runs [`renew`] for `run` of (paused) virtual time against a store whose every check
    /// takes `answer` and confirms; returns the lease as the session would hold it.
    async fn renewed_lease(answer: Duration, run: Duration) -> (Lease, usize) {
        let start = Instant::now();
        let lease = std::sync::Arc::new(std::sync::Mutex::new((Lease::new(start), 0usize)));
        let l = lease.clone();
        let renewal = renew(
            || async move {
                tokio::time::sleep(answer).await;
                true
            },
            move |sent| {
                let l = l.clone();
                async move {
                    let mut l = l.lock().unwrap();
                    l.0.confirmed(sent);
                    l.1 += 1;
                    true
                }
            },
        );
        let _ = tokio::time::timeout(run, renewal).await;
        let l = *lease.lock().unwrap();
        l
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_slower_than_the_renewal_period_still_keeps_the_lease() {
        // Every check takes 200 ms, more than RENEW_EVERY and less than CHECK_TIMEOUT: the
        // checks overlap, so one comes back every RENEW_EVERY and the step-down never comes.
        let start = Instant::now();
        let (lease, confirmations) = renewed_lease(Duration::from_millis(200), Duration::from_secs(2)).await;
        assert!(confirmations >= 25, "{confirmations} confirmations in 2 s");
        assert!(
            lease.step_down_at() > start + Duration::from_secs(2),
            "the lease ran low: step-down at {:?} after start",
            lease.step_down_at() - start
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_slower_than_its_timeout_confirms_nothing() {
        let start = Instant::now();
        let (lease, confirmations) =
            renewed_lease(CHECK_TIMEOUT + Duration::from_millis(1), Duration::from_secs(2)).await;
        assert_eq!(confirmations, 0);
        assert_eq!(lease.expires(), start + SESSION_LEASE);
    }
}
