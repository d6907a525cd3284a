//! Whether a run still makes progress (pure). On a paused clock tokio moves virtual time
//! only when every task waits; a task that never waits (a loop that retries without
//! sleeping), or one that waits on a thread that never finishes, stops virtual time, and the
//! run would hang. The thread that started the run looks at its virtual time now and then;
//! virtual time that stays put for [`Watchdog::limit`] of wall time while the cluster runs
//! is a stall, reported as the seed's failure.
//!
//! ```text
//!   look(wall, virtual_ms, running) ─► virtual time moved, or not running ─► None (restart)
//!                                    └► the same virtual time for ≥ limit ─► Some(Stuck)
//! ```
//!
//! Only the phase in which the cluster runs is watched: the invariant checks at the end of
//! a run take wall time and no virtual time at all.

use std::time::Duration;

/// How long virtual time may stand still, in wall time, before a run is reported stalled,
/// unless configured otherwise (`strand sim --stall-after`). A healthy run moves virtual time
/// every few milliseconds of wall time, and by at least 100 ms of it per second of wall time
/// even in a debug build on a busy machine.
pub const DEFAULT_STALL_LIMIT: Duration = Duration::from_secs(60);

/// A stall: virtual time stood still while the cluster ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stuck {
    /// The virtual time it stands at, ms.
    pub virtual_ms: u64,
    /// For how long (wall time) it has stood there.
    pub for_wall: Duration,
}

/// Watches one run's virtual time.
#[derive(Debug, Clone)]
pub struct Watchdog {
    limit: Duration,
    /// The virtual time last seen, and the wall time it was first seen at.
    last: Option<(u64, Duration)>,
}

impl Watchdog {
    /// A watchdog that reports virtual time standing still for `limit` of wall time.
    pub fn new(limit: Duration) -> Watchdog {
        Watchdog { limit, last: None }
    }

    /// The wall time virtual time may stand still.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// One look at the run, `wall` after it started: its virtual time, and whether its
    /// cluster is `running` (virtual time must move; not while it starts or is checked).
    /// A stall once virtual time has stood still for the limit while running.
    pub fn look(&mut self, wall: Duration, virtual_ms: u64, running: bool) -> Option<Stuck> {
        if !running {
            self.last = None;
            return None;
        }
        match self.last {
            Some((v, since)) if v == virtual_ms => {
                let for_wall = wall.saturating_sub(since);
                (for_wall >= self.limit).then_some(Stuck { virtual_ms, for_wall })
            }
            _ => {
                self.last = Some((virtual_ms, wall));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn virtual_time_standing_still_for_the_limit_is_a_stall_and_any_move_restarts_the_count() {
        let mut w = Watchdog::new(60 * S);
        assert_eq!(w.look(Duration::ZERO, 0, true), None);
        assert_eq!(w.look(30 * S, 5_300, true), None, "it moved");
        assert_eq!(w.look(60 * S, 5_300, true), None, "30 s still");
        assert_eq!(w.look(89 * S, 5_300, true), None, "59 s still");
        assert_eq!(
            w.look(90 * S, 5_300, true),
            Some(Stuck {
                virtual_ms: 5_300,
                for_wall: 60 * S
            })
        );
        // Moving again (a slow stretch, not a stall) starts the count anew.
        let mut w = Watchdog::new(60 * S);
        w.look(Duration::ZERO, 100, true);
        assert_eq!(w.look(59 * S, 100, true), None);
        assert_eq!(w.look(60 * S, 200, true), None);
        assert_eq!(w.look(119 * S, 200, true), None);
        assert!(w.look(120 * S, 200, true).is_some());
    }

    #[test]
    fn a_run_not_running_its_cluster_is_never_stalled_and_resumes_with_a_fresh_count() {
        let mut w = Watchdog::new(60 * S);
        // The checks at the end: no virtual time passes, for as long as they take.
        w.look(Duration::ZERO, 9_000, true);
        assert_eq!(w.look(30 * S, 9_000, false), None);
        assert_eq!(w.look(600 * S, 9_000, false), None);
        // Running again (a harness that would restart it): counted from here.
        assert_eq!(w.look(601 * S, 9_000, true), None);
        assert_eq!(w.look(660 * S, 9_000, true), None);
        assert!(w.look(661 * S, 9_000, true).is_some());
    }
}
