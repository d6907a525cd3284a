//! When a replica calls an election: strand's timer in place of openraft's.
//!
//! ```text
//!   AppendEntries accepted (server) ─┐
//!   vote changed (Raft metrics) ─────┼─► heard ─► Elector::decide ─► Idle | Elect | WaitUntil
//!   role, vote committed? ───────────┘                               (the shell calls
//!                                                                     raft.trigger().elect())
//! ```
//!
//! openraft 0.9 draws a replica's election timeout once, when the replica starts, and checks
//! it on a tick of 1.5 heartbeats. Two followers whose timeouts and tick phases fall close
//! together start their elections at the same instant when the leader dies, split the vote,
//! and, having voted for themselves at the same instant with the same timeouts, split it
//! again round after round: four split rounds and 2.3 s without a leader in one trial of
//! `strand bench store --failover-trials`. A restarted replica also elects at its first tick,
//! before it has heard the leader, and its higher term deposes the leader.
//!
//! The elector keeps openraft's rule for how long to wait (a follower of an established
//! leader: `election_timeout_max`, openraft's leader lease, plus a timeout in
//! `[election_timeout_min, election_timeout_max)` since it last heard the leader; a candidate
//! or a replica whose vote is not committed: the timeout alone), but draws a new timeout for
//! every wait, and counts a replica's start as having heard a leader. Like openraft, a
//! replica that learns another holds a greater log waits `2 × election_timeout_max` longer
//! before its next election, so that the replica that can win calls it; without that, a
//! candidate with the shorter log kept taking each new term first and kept losing it (two
//! trials of twenty took 4.3 and 7.1 s with 500–1000 ms timeouts). Safety does not depend
//! on it: voters still refuse votes within their leader lease (openraft's own check, which
//! the read lease relies on, see [`super::lease`]); the elector only decides when to ask.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Raft's timing, as the replica is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The shortest election timeout.
    pub min: Duration,
    /// The longest election timeout; also openraft's leader lease.
    pub max: Duration,
}

/// What the replica is, for the elector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It leads: no election.
    Leader,
    /// It is not a voter: no election.
    NonVoter,
    /// It is the only voter and does not lead.
    SoleVoter,
    /// A voter among others that does not lead (follower or candidate).
    Voter {
        /// Its vote is for an established leader (openraft's leader lease applies).
        committed: bool,
    },
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing until the role changes.
    Idle,
    /// Call an election now.
    Elect,
    /// Decide again at this instant (or when something is heard).
    WaitUntil(Instant),
}

/// The election timer: pure, fed the time, the role and when the replica last heard a leader.
#[derive(Debug)]
pub struct Elector {
    timing: Timing,
    rng: StdRng,
    /// The instant the current deadline counts from, and the deadline.
    deadline: Option<(Instant, Instant)>,
    /// When a vote exchange last showed another replica holding a greater log: an election
    /// that would follow it waits longer (until a leader is heard again).
    back_off: Option<Instant>,
}

impl Elector {
    /// An elector drawing its timeouts from `seed`.
    pub fn new(timing: Timing, seed: u64) -> Elector {
        Elector {
            timing,
            rng: StdRng::seed_from_u64(seed),
            deadline: None,
            back_off: None,
        }
    }

    /// At `now`, a vote exchange showed another replica holding a greater log than this one:
    /// its next election, unless a leader is heard first, waits `2 × max` longer, as openraft's
    /// own timer does.
    pub fn saw_greater_log(&mut self, now: Instant) {
        self.back_off = Some(now);
    }

    /// Decides at `now`, for a replica in `role` that last heard a leader (an accepted
    /// AppendEntries, or a change of its vote) at `heard`.
    pub fn decide(&mut self, now: Instant, role: Role, heard: Instant) -> Next {
        let committed = match role {
            Role::Leader | Role::NonVoter => {
                self.deadline = None;
                return Next::Idle;
            }
            Role::SoleVoter => {
                // Nobody to hear from: elect, then give the election a timeout to finish.
                return match self.deadline {
                    Some((_, at)) if now < at => Next::WaitUntil(at),
                    _ => {
                        self.deadline = Some((now, now + self.timing.min));
                        Next::Elect
                    }
                };
            }
            Role::Voter { committed } => committed,
        };
        let deadline = match self.deadline {
            Some((from, at)) if from == heard => at,
            _ => {
                let lease = if committed {
                    self.timing.max
                } else {
                    Duration::ZERO
                };
                let at = heard + lease + self.draw();
                self.deadline = Some((heard, at));
                at
            }
        };
        // Only news from this silence counts: a leader heard since makes it stale.
        let deadline = if self.back_off.is_some_and(|at| at >= heard) {
            deadline + self.timing.max * 2
        } else {
            deadline
        };
        if now < deadline {
            return Next::WaitUntil(deadline);
        }
        // The candidacy changes the vote, so `heard` moves on; until it does, another wait.
        self.back_off = None;
        let again = now + self.draw();
        self.deadline = Some((heard, again));
        Next::Elect
    }

    fn draw(&mut self) -> Duration {
        let (min, max) = (
            self.timing.min.as_micros() as u64,
            self.timing.max.as_micros() as u64,
        );
        Duration::from_micros(if max > min {
            self.rng.random_range(min..max)
        } else {
            min
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        min: Duration::from_millis(100),
        max: Duration::from_millis(200),
    };

    fn follower() -> Role {
        Role::Voter { committed: true }
    }

    #[test]
    fn a_leader_or_a_learner_never_elects() {
        let mut e = Elector::new(TIMING, 1);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        assert_eq!(e.decide(later, Role::Leader, t0), Next::Idle);
        assert_eq!(e.decide(later, Role::NonVoter, t0), Next::Idle);
    }

    #[test]
    fn a_follower_that_keeps_hearing_its_leader_never_elects() {
        let mut e = Elector::new(TIMING, 2);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let heard = t0 + Duration::from_millis(30) * i;
            let now = heard + Duration::from_millis(29);
            assert!(matches!(e.decide(now, follower(), heard), Next::WaitUntil(_)));
        }
    }

    #[test]
    fn a_follower_waits_the_lease_and_a_timeout_a_candidate_the_timeout_alone() {
        for seed in 0..50 {
            let mut e = Elector::new(TIMING, seed);
            let heard = Instant::now();
            let Next::WaitUntil(at) = e.decide(heard, follower(), heard) else {
                panic!("seed {seed}: a follower that just heard waits");
            };
            let waited = at - heard;
            assert!(
                waited >= TIMING.max + TIMING.min && waited < TIMING.max * 2,
                "seed {seed}: {waited:?}"
            );
            assert_eq!(
                e.decide(at - Duration::from_micros(1), follower(), heard),
                Next::WaitUntil(at)
            );
            assert_eq!(e.decide(at, follower(), heard), Next::Elect, "seed {seed}");
            // Its own candidacy changed its vote: heard again, not committed.
            let voted = at;
            let Next::WaitUntil(retry) = e.decide(voted, Role::Voter { committed: false }, voted) else {
                panic!("seed {seed}: a candidate waits before it tries again");
            };
            assert!(
                retry - voted >= TIMING.min && retry - voted < TIMING.max,
                "seed {seed}"
            );
        }
    }

    /// The reason for the elector: two candidates that collided once must not collide again
    /// because their timeouts are fixed. Each wait is drawn afresh.
    #[test]
    fn every_wait_draws_a_new_timeout() {
        let mut e = Elector::new(TIMING, 7);
        let mut heard = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..20 {
            let Next::WaitUntil(at) = e.decide(heard, Role::Voter { committed: false }, heard) else {
                panic!("waits first");
            };
            waits.push(at - heard);
            assert_eq!(e.decide(at, Role::Voter { committed: false }, heard), Next::Elect);
            heard = at;
        }
        waits.sort();
        waits.dedup();
        assert!(waits.len() > 15, "{waits:?}");
    }

    #[test]
    fn a_replica_that_saw_a_greater_log_waits_longer_once() {
        let mut e = Elector::new(TIMING, 11);
        let heard = Instant::now();
        let candidate = Role::Voter { committed: false };
        let Next::WaitUntil(at) = e.decide(heard, candidate, heard) else {
            panic!("waits first");
        };
        e.saw_greater_log(heard);
        assert_eq!(
            e.decide(heard, candidate, heard),
            Next::WaitUntil(at + TIMING.max * 2)
        );
        assert_eq!(e.decide(at + TIMING.max * 2, candidate, heard), Next::Elect);
        // Back to the plain timeout after that election.
        let voted = at + TIMING.max * 2;
        let Next::WaitUntil(next) = e.decide(voted, candidate, voted) else {
            panic!("waits again");
        };
        assert!(next - voted < TIMING.max);
        // News from before a leader was heard again is stale.
        e.saw_greater_log(voted);
        let heard_again = voted + Duration::from_millis(5);
        let Next::WaitUntil(after) = e.decide(heard_again, follower(), heard_again) else {
            panic!("waits");
        };
        assert!(
            after - heard_again < TIMING.max * 2,
            "no back-off: {:?}",
            after - heard_again
        );
    }

    #[test]
    fn a_sole_voter_elects_at_once_and_retries_after_the_shortest_timeout() {
        let mut e = Elector::new(TIMING, 3);
        let t0 = Instant::now();
        assert_eq!(e.decide(t0, Role::SoleVoter, t0), Next::Elect);
        assert_eq!(
            e.decide(t0 + Duration::from_millis(10), Role::SoleVoter, t0),
            Next::WaitUntil(t0 + TIMING.min)
        );
        assert_eq!(e.decide(t0 + TIMING.min, Role::SoleVoter, t0), Next::Elect);
    }
}
