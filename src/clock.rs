//! The runtime's clock as a `std::time::Instant`.
//!
//! Runtime code that decides by time (leases, elections, stalled disks) reads the time here
//! rather than from `std::time::Instant::now()`: it is tokio's clock, which is the system's
//! monotonic clock in a normal runtime and the virtual clock in a paused one (the
//! deterministic simulation, [`crate::sim`]), where a virtual minute passes in milliseconds.

/// Now, by tokio's clock (identical to `std::time::Instant::now()` outside a paused runtime).
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
