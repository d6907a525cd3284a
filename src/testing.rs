//! Test-only switches that break a safety mechanism on purpose, so that the deterministic
//! simulation ([`crate::sim`]) can show it catches the bug. They exist only with the
//! `testing` feature and are off by default; without the feature every check below is a
//! constant `false`.

#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicBool, Ordering};

/// Selection no longer counts the source state of a pending transition: while
/// `A: MASTER→SLAVE` is in flight, `B: SLAVE→MASTER` may be sent, so two MASTERs can exist.
#[cfg(feature = "testing")]
pub static BREAK_SELECTION: AtomicBool = AtomicBool::new(false);

/// The fencing of deposed controllers is gone: a controller's round writes its messages
/// without the condition that it still holds the leader record, and a participant accepts
/// a transition message from a controller epoch older than the highest it has seen, and the
/// store no longer requires a controller's writes to carry that condition (`authz`).
#[cfg(feature = "testing")]
pub static BREAK_FENCING: AtomicBool = AtomicBool::new(false);

/// Whether [`BREAK_SELECTION`] is on.
pub(crate) fn selection_broken() -> bool {
    #[cfg(feature = "testing")]
    {
        BREAK_SELECTION.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "testing"))]
    {
        false
    }
}

/// Whether [`BREAK_FENCING`] is on.
pub(crate) fn fencing_broken() -> bool {
    #[cfg(feature = "testing")]
    {
        BREAK_FENCING.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "testing"))]
    {
        false
    }
}

/// The leader no longer lets ended sessions linger: a MASTER cut off with a store minority
/// still serves for up to its session lease while the leader promotes a successor at once.
#[cfg(feature = "testing")]
pub static BREAK_LINGER: AtomicBool = AtomicBool::new(false);

/// Whether [`BREAK_LINGER`] is on.
pub(crate) fn linger_broken() -> bool {
    #[cfg(feature = "testing")]
    {
        BREAK_LINGER.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "testing"))]
    {
        false
    }
}

/// Not a product bug but the simulation's own: once its cluster first converged, a task of
/// the run keeps yielding without ever waiting, so virtual time stops (as a watch did that
/// gave up every poll at once, `strand sim --seed 2181`); the run's watchdog must report it.
#[cfg(feature = "testing")]
pub static STOP_VIRTUAL_TIME: AtomicBool = AtomicBool::new(false);

/// Whether [`STOP_VIRTUAL_TIME`] is on.
pub(crate) fn virtual_time_stopped() -> bool {
    #[cfg(feature = "testing")]
    {
        STOP_VIRTUAL_TIME.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "testing"))]
    {
        false
    }
}
