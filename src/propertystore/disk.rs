//! Whether this replica's disk has stalled, decided from how long the oldest write has
//! waited for its fsync ([`super::durable::Durability::unsynced_since`]). Pure: the caller
//! brings the clock.
//!
//! ```text
//!   tick(now, oldest unsynced write) ─► waited ≥ bound          ─► Stalled  (step down)
//!                                       stalled, waited < bound/2 ─► Recovered
//! ```
//!
//! A leader whose disk stalls can still replicate (it acknowledges its own appends early),
//! but it can apply, answer or serve nothing: every write would wait on it while the
//! followers keep hearing its heartbeats and never elect another. So the server acts on
//! `Stalled` by stepping down in the only way openraft 0.9 offers: it stops sending
//! heartbeats, refuses writes and linearizable reads (`NotLeader`, naming no leader) and does
//! not campaign, so the others elect a leader whose disk works, and this replica follows it
//! once it hears the new term. `Recovered` undoes that. Status keeps answering throughout.

use std::time::{Duration, Instant};

/// What changed about the disk at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskEvent {
    /// A write has waited `waited` for its fsync, longer than the bound.
    Stalled {
        /// How long the oldest write has waited.
        waited: Duration,
    },
    /// The fsyncs caught up after a stall.
    Recovered,
}

/// The stall detector's state: the bound and whether the disk counts as stalled now.
#[derive(Debug, Clone)]
pub struct DiskCheck {
    bound: Duration,
    stalled: bool,
}

impl DiskCheck {
    /// A detector that calls the disk stalled once a write has waited `bound` for its fsync.
    pub fn new(bound: Duration) -> Self {
        DiskCheck {
            bound,
            stalled: false,
        }
    }

    /// Whether the disk counts as stalled.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// How often to tick: a quarter of the bound, between 10 and 250 ms.
    pub fn tick_every(&self) -> Duration {
        (self.bound / 4).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    /// One look at the disk: `unsynced_since` is when the oldest write still waiting for its
    /// fsync was made (`None`: every write is on disk).
    pub fn handle_tick(&mut self, now: Instant, unsynced_since: Option<Instant>) -> Option<DiskEvent> {
        let waited = unsynced_since.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        if !self.stalled && unsynced_since.is_some() && waited >= self.bound {
            self.stalled = true;
            return Some(DiskEvent::Stalled { waited });
        }
        if self.stalled && waited < self.bound / 2 {
            self.stalled = false;
            return Some(DiskEvent::Recovered);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_write_waiting_past_the_bound_is_a_stall_until_the_disk_catches_up() {
        let t0 = Instant::now();
        let mut d = DiskCheck::new(1000 * MS);
        assert_eq!(d.handle_tick(t0, None), None);
        assert_eq!(d.handle_tick(t0 + 999 * MS, Some(t0)), None, "within the bound");
        assert_eq!(
            d.handle_tick(t0 + 1000 * MS, Some(t0)),
            Some(DiskEvent::Stalled { waited: 1000 * MS })
        );
        assert!(d.is_stalled());
        assert_eq!(d.handle_tick(t0 + 5000 * MS, Some(t0)), None, "reported once");
        // Writes made during the stall are still waiting when the first fsync lands.
        assert_eq!(d.handle_tick(t0 + 5100 * MS, Some(t0 + 4000 * MS)), None);
        assert_eq!(
            d.handle_tick(t0 + 5200 * MS, Some(t0 + 4900 * MS)),
            Some(DiskEvent::Recovered)
        );
        assert!(!d.is_stalled());
        assert_eq!(d.handle_tick(t0 + 5300 * MS, None), None);
    }

    #[test]
    fn a_busy_disk_whose_fsyncs_keep_landing_is_not_a_stall() {
        let t0 = Instant::now();
        let mut d = DiskCheck::new(100 * MS);
        for i in 0..1000u32 {
            // Always something waiting, never for more than 5 ms.
            let now = t0 + i * 10 * MS;
            assert_eq!(d.handle_tick(now, Some(now - 5 * MS)), None);
        }
    }

    #[test]
    fn ticks_are_a_quarter_of_the_bound_within_limits() {
        assert_eq!(DiskCheck::new(2000 * MS).tick_every(), 250 * MS);
        assert_eq!(DiskCheck::new(400 * MS).tick_every(), 100 * MS);
        assert_eq!(DiskCheck::new(MS).tick_every(), 10 * MS);
    }
}
