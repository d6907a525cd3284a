//! The runtime's clocks: monotonic ([`now`]) and wall ([`unix_ms`]).
//!
//! Runtime code that decides by time (leases, elections, stalled disks) reads the time here
//! rather than from `std::time::Instant::now()`: it is tokio's clock, which is the system's
//! monotonic clock in a normal runtime and the virtual clock in a paused one (the
//! deterministic simulation, [`crate::sim`]), where a virtual minute passes in milliseconds.
//!
//! Wall-clock stamps (records' `…_MS` fields, offline times, membership generations) come
//! from [`unix_ms`]: the system's clock in a real process; on a thread the simulator has
//! claimed with [`simulate`], a fixed origin plus tokio's virtual time since the run began,
//! plus any jump the simulator injected ([`jump`]), so a stamp is the same in every replay of
//! a seed and the wall clock can be made to jump without touching the monotonic one.

use std::cell::Cell;
use std::time::Duration;

/// Now, by tokio's clock (identical to `std::time::Instant::now()` outside a paused runtime).
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// The simulated wall clock of one thread.
#[derive(Clone, Copy)]
struct Simulated {
    /// Tokio's instant the run began.
    origin: tokio::time::Instant,
    /// The wall clock at `origin`, ms since the Unix epoch.
    unix_ms_at_origin: u64,
    /// Jumps injected so far, ms (may be negative).
    jumped_ms: i64,
}

thread_local! {
    static SIMULATED: Cell<Option<Simulated>> = const { Cell::new(None) };
}

/// The wall clock, ms since the Unix epoch (0 if the system's clock is before it).
pub fn unix_ms() -> u64 {
    since_epoch().as_millis() as u64
}

/// The wall clock, µs since the Unix epoch (0 if the system's clock is before it).
pub fn unix_us() -> u64 {
    since_epoch().as_micros() as u64
}

/// The wall clock as a duration since the Unix epoch (zero if the clock is before it).
pub fn since_epoch() -> Duration {
    match SIMULATED.with(Cell::get) {
        Some(s) => {
            let elapsed = tokio::time::Instant::now().saturating_duration_since(s.origin);
            let at = Duration::from_millis(s.unix_ms_at_origin).saturating_add(elapsed);
            let jump = Duration::from_millis(s.jumped_ms.unsigned_abs());
            if s.jumped_ms >= 0 {
                at.saturating_add(jump)
            } else {
                at.saturating_sub(jump)
            }
        }
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    }
}

/// Claims this thread's wall clock for a simulation: from now until the guard is dropped,
/// [`unix_ms`] on this thread is `unix_ms_at_origin` plus tokio's (virtual) time since this
/// call. Must be called inside a tokio runtime.
pub fn simulate(unix_ms_at_origin: u64) -> Simulation {
    let previous = SIMULATED.with(|s| {
        s.replace(Some(Simulated {
            origin: tokio::time::Instant::now(),
            unix_ms_at_origin,
            jumped_ms: 0,
        }))
    });
    Simulation { previous }
}

/// Makes this thread's simulated wall clock jump by `ms` (backwards if negative); the
/// monotonic clock is untouched. Returns whether the thread's clock is simulated (a real
/// wall clock is never moved).
pub fn jump(ms: i64) -> bool {
    SIMULATED.with(|s| match s.get() {
        Some(mut sim) => {
            sim.jumped_ms = sim.jumped_ms.saturating_add(ms);
            s.set(Some(sim));
            true
        }
        None => false,
    })
}

/// A thread's claim on its wall clock ([`simulate`]); dropping it gives the thread back the
/// system's clock (or the claim before it).
pub struct Simulation {
    previous: Option<Simulated>,
}

impl Drop for Simulation {
    fn drop(&mut self) {
        SIMULATED.with(|s| s.set(self.previous));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_simulated_wall_clock_follows_virtual_time_and_jumps_only_when_told() {
        let real = unix_ms();
        assert!(real > 1_600_000_000_000, "the system's clock: {real}");
        assert!(!jump(5_000), "a real wall clock never jumps");
        {
            let _sim = simulate(1_000_000);
            assert_eq!(unix_ms(), 1_000_000);
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(unix_ms(), 1_003_000, "follows the paused clock");
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(unix_us(), 1_003_001_000);
            assert!(jump(-10_000));
            assert_eq!(unix_ms(), 993_001, "jumped back");
            assert_eq!(since_epoch(), Duration::from_millis(993_001));
            assert!(jump(20_000));
            assert_eq!(unix_ms(), 1_013_001);
        }
        let after = unix_ms();
        assert!(
            after >= real && after < real + 60_000,
            "the system's clock again: {after}"
        );
    }
}
