//! What differs from one process to the next: randomness the runtime draws for itself (ids
//! of messages and audit entries, the seeds of its generators: foca's, the controller's, the
//! elector's) and the process's identity in records (`pid@host`).
//!
//! In a real process each draw is from the operating system's generator, so ids are unique
//! across processes. On a thread the simulator has claimed with [`seeded`], every draw comes
//! from one generator seeded by the run's seed: the run's tasks all poll on that thread in an
//! order fixed by the seed, so a replay draws the same values in the same order; and
//! [`pid_at`] names no process or host, so a replay in another process writes records of
//! the same bytes.

use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// A random `u64`.
pub fn random_u64() -> u64 {
    SEEDED.with(|s| match s.borrow_mut().as_mut() {
        Some(rng) => rng.random(),
        None => rand::random(),
    })
}

/// A random `u128`.
pub fn random_u128() -> u128 {
    (u128::from(random_u64()) << 64) | u128::from(random_u64())
}

/// `pid@host`, as Helix names a live instance's or leader's process; `0@sim` on a thread
/// claimed by [`seeded`].
pub fn pid_at(host: impl std::fmt::Display) -> String {
    if SEEDED.with(|s| s.borrow().is_some()) {
        "0@sim".into()
    } else {
        format!("{}@{host}", std::process::id())
    }
}

/// Claims this thread's randomness: until the guard is dropped, every draw on this thread
/// comes from a generator seeded with `seed`.
pub fn seeded(seed: u64) -> Seeded {
    let previous = SEEDED.with(|s| s.replace(Some(StdRng::seed_from_u64(seed))));
    Seeded { previous }
}

/// A thread's claim on its randomness ([`seeded`]); dropping it restores the one before.
pub struct Seeded {
    previous: Option<StdRng>,
}

impl Drop for Seeded {
    fn drop(&mut self) {
        let previous = self.previous.take();
        SEEDED.with(|s| *s.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_values_and_others_draw_fresh_ones() {
        let draw = |seed| {
            let _g = seeded(seed);
            (0..4).map(|_| random_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        {
            let _g = seeded(7);
            assert_eq!(pid_at("h"), "0@sim");
        }
        assert_eq!(pid_at("h"), format!("{}@h", std::process::id()));
        assert_ne!(draw(7), draw(8));
        let a: Vec<u64> = (0..4).map(|_| random_u64()).collect();
        let b: Vec<u64> = (0..4).map(|_| random_u64()).collect();
        assert_ne!(a, b, "unseeded draws are the system's");
        assert_ne!(random_u128(), random_u128());
    }
}
