//! The seeded fault schedule: a pure function from a seed and the cluster's shape to the
//! steps of a run. Each step injects one fault, holds it for a virtual while, heals it and
//! lets the cluster settle.
//!
//! ```text
//!   seed ──► StdRng ──► [Step { fault, hold, settle }; steps]
//! ```

use std::fmt;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A member of the simulated cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Member {
    /// Store replica `id` (1-based).
    Replica(u64),
    /// Controller number `n` (0-based).
    Controller(usize),
    /// Participant number `n` (0-based).
    Participant(usize),
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::Replica(id) => write!(f, "store-{id}"),
            Member::Controller(n) => write!(f, "ctl-{n}"),
            Member::Participant(n) => write!(f, "node-{n}"),
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The member is killed, and restarted when the fault heals: a store replica over its
    /// data directory as a power loss leaves it (what its disk had not fsynced is lost), a
    /// controller or participant (as SIGKILL) with a new session.
    Crash(Member),
    /// Store replica `replica`'s log fsyncs stall until the fault heals, as a stalled disk's
    /// would: a leader steps down once a write has waited past the stall bound.
    StallDisk {
        /// The replica's id (1-based).
        replica: u64,
    },
    /// The members of `side` and everyone else cannot reach each other.
    Partition {
        /// One side; the other is every other member.
        side: Vec<Member>,
    },
    /// Nothing goes from `from` to `to`; the other direction works.
    OneWay {
        /// The sender cut off.
        from: Member,
        /// The receiver.
        to: Member,
    },
    /// The member reaches nobody and nobody reaches it.
    Isolate(Member),
    /// Each datagram is lost with this probability, in percent.
    Loss {
        /// Percent.
        percent: u32,
    },
    /// Every frame is delayed by a time drawn from `min_ms..=max_ms`, reordering them.
    Delay {
        /// The least delay, ms.
        min_ms: u64,
        /// The most, ms.
        max_ms: u64,
    },
    /// The wall clock every member reads ([`crate::clock::unix_ms`]) steps by `ms` (back if
    /// negative), as a clock set by hand or by NTP would, and steps back when the fault heals;
    /// the monotonic clock (leases, timeouts) runs on untouched.
    ClockJump {
        /// The step, ms.
        ms: i64,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash(m) => write!(f, "crash {m}"),
            Fault::StallDisk { replica } => {
                write!(f, "stall the disk of {}", Member::Replica(*replica))
            }
            Fault::Partition { side } => {
                let names: Vec<String> = side.iter().map(|m| m.to_string()).collect();
                write!(f, "partition [{}] from the rest", names.join(", "))
            }
            Fault::OneWay { from, to } => write!(f, "block {from} -> {to}"),
            Fault::Isolate(m) => write!(f, "isolate {m}"),
            Fault::Loss { percent } => write!(f, "datagram loss {percent}%"),
            Fault::Delay { min_ms, max_ms } => write!(f, "delay {min_ms}..{max_ms} ms"),
            Fault::ClockJump { ms } => write!(f, "the wall clock jumps {ms:+} ms"),
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The fault.
    pub fault: Fault,
    /// How long it is held (virtual ms).
    pub hold_ms: u64,
    /// How long the cluster runs healed after it (virtual ms).
    pub settle_ms: u64,
}

/// The members a schedule may pick from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Store replicas.
    pub replicas: u64,
    /// Controllers.
    pub controllers: usize,
    /// Participants.
    pub participants: usize,
}

impl Shape {
    /// Every member.
    pub fn members(&self) -> Vec<Member> {
        let mut out: Vec<Member> = (1..=self.replicas).map(Member::Replica).collect();
        out.extend((0..self.controllers).map(Member::Controller));
        out.extend((0..self.participants).map(Member::Participant));
        out
    }
}

/// Which faults a schedule draws.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mix {
    /// Every kind: crashes, stalled disks, partitions (symmetric, one-way, isolation), loss
    /// and delay.
    #[default]
    All,
    /// No partitions: crashes and restarts, stalled disks, datagram loss, delay and
    /// reordering.
    NoPartitions,
    /// As `all`, with wall-clock jumps (up to a minute, forward or back) in place of loss
    /// and delay.
    Clocks,
}

impl Mix {
    /// The name `--faults` takes.
    pub fn name(self) -> &'static str {
        match self {
            Mix::All => "all",
            Mix::NoPartitions => "no-partitions",
            Mix::Clocks => "clocks",
        }
    }
}

/// The `steps` steps of the run of `seed` over a cluster of `shape` (which must have at
/// least one member), drawing the faults of `mix`.
///
/// The kinds, out of 100: crash 25, stalled disk 10, partition 20, one-way cut 15,
/// isolation 15, loss 8, delay 7; without partitions, their 50 go to crashes; with clocks,
/// loss and delay's 15 go to wall-clock jumps (the other steps of a seed are the ones of
/// `all` up to the first jump). A stalled disk
/// draws as many numbers as a crash (one for its replica), so the other steps of a seed are
/// the ones they were before stalled disks were added.
pub fn schedule(seed: u64, steps: usize, shape: &Shape, mix: Mix) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let members = shape.members();
    (0..steps)
        .map(|_| {
            let pick = |rng: &mut StdRng| members[rng.random_range(0..members.len())];
            let mut kind = rng.random_range(0..100u32);
            if mix == Mix::NoPartitions && (35..85).contains(&kind) {
                // A partition becomes a crash; the proportions of the rest stay.
                kind = 0;
            }
            let fault = match kind {
                0..=24 => Fault::Crash(pick(&mut rng)),
                25..=34 if shape.replicas > 0 => Fault::StallDisk {
                    replica: rng.random_range(1..=shape.replicas),
                },
                25..=34 => Fault::Crash(pick(&mut rng)),
                35..=54 => {
                    let n = rng.random_range(1..=members.len() / 2);
                    let mut side = Vec::new();
                    while side.len() < n {
                        let m = pick(&mut rng);
                        if !side.contains(&m) {
                            side.push(m);
                        }
                    }
                    side.sort();
                    Fault::Partition { side }
                }
                55..=69 => {
                    let from = pick(&mut rng);
                    let mut to = pick(&mut rng);
                    while to == from {
                        to = pick(&mut rng);
                    }
                    Fault::OneWay { from, to }
                }
                70..=84 => Fault::Isolate(pick(&mut rng)),
                85..=99 if mix == Mix::Clocks => {
                    let ms = rng.random_range(1_000..=60_000i64);
                    Fault::ClockJump {
                        ms: if rng.random_range(0..2u32) == 0 { ms } else { -ms },
                    }
                }
                85..=92 => Fault::Loss {
                    percent: rng.random_range(5..=40),
                },
                _ => {
                    let min_ms = rng.random_range(0..=20);
                    Fault::Delay {
                        min_ms,
                        max_ms: min_ms + rng.random_range(1..=100),
                    }
                }
            };
            Step {
                fault,
                hold_ms: rng.random_range(200..=4_000),
                settle_ms: rng.random_range(200..=3_000),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        replicas: 3,
        controllers: 2,
        participants: 5,
    };

    #[test]
    fn a_seed_gives_one_schedule_and_another_seed_another() {
        assert_eq!(
            schedule(7, 20, &SHAPE, Mix::All),
            schedule(7, 20, &SHAPE, Mix::All)
        );
        assert_ne!(
            schedule(7, 20, &SHAPE, Mix::All),
            schedule(8, 20, &SHAPE, Mix::All)
        );
    }

    #[test]
    fn schedules_name_only_members_of_the_shape_and_cover_every_kind() {
        let all = SHAPE.members();
        let mut kinds = std::collections::HashSet::new();
        for seed in 0..50 {
            for s in schedule(seed, 10, &SHAPE, Mix::All) {
                let named: Vec<Member> = match &s.fault {
                    Fault::Crash(m) | Fault::Isolate(m) => vec![*m],
                    Fault::StallDisk { replica } => vec![Member::Replica(*replica)],
                    Fault::Partition { side } => side.clone(),
                    Fault::OneWay { from, to } => {
                        assert_ne!(from, to);
                        vec![*from, *to]
                    }
                    Fault::Loss { percent } => {
                        assert!((5..=40).contains(percent));
                        vec![]
                    }
                    Fault::Delay { min_ms, max_ms } => {
                        assert!(min_ms < max_ms);
                        vec![]
                    }
                    Fault::ClockJump { .. } => panic!("a clock jump in the `all` mix"),
                };
                assert!(named.iter().all(|m| all.contains(m)), "{}", s.fault);
                kinds.insert(std::mem::discriminant(&s.fault));
            }
        }
        assert_eq!(kinds.len(), 7, "every kind of fault is drawn");
    }

    #[test]
    fn without_partitions_only_crashes_stalls_loss_and_delay_are_drawn() {
        for seed in 0..50 {
            for s in schedule(seed, 10, &SHAPE, Mix::NoPartitions) {
                assert!(
                    matches!(
                        s.fault,
                        Fault::Crash(_) | Fault::StallDisk { .. } | Fault::Loss { .. } | Fault::Delay { .. }
                    ),
                    "{}",
                    s.fault
                );
            }
        }
    }

    #[test]
    fn the_clocks_mix_jumps_both_ways_instead_of_loss_and_delay() {
        let steps: Vec<Step> = (0..50)
            .flat_map(|seed| schedule(seed, 10, &SHAPE, Mix::Clocks))
            .collect();
        let jumps: Vec<i64> = steps
            .iter()
            .filter_map(|s| match s.fault {
                Fault::ClockJump { ms } => Some(ms),
                _ => None,
            })
            .collect();
        assert!(
            jumps.iter().all(|ms| (1_000..=60_000).contains(&ms.abs())),
            "{jumps:?}"
        );
        assert!(
            jumps.iter().any(|ms| *ms > 0) && jumps.iter().any(|ms| *ms < 0),
            "{jumps:?}"
        );
        assert!(
            (40..=110).contains(&jumps.len()),
            "about 15% of 500 steps: {}",
            jumps.len()
        );
        assert!(!steps
            .iter()
            .any(|s| matches!(s.fault, Fault::Loss { .. } | Fault::Delay { .. })));
        // Up to its first jump, a seed's schedule is the one of `all`.
        for seed in 0..50 {
            let all = schedule(seed, 10, &SHAPE, Mix::All);
            let clocks = schedule(seed, 10, &SHAPE, Mix::Clocks);
            let same = clocks
                .iter()
                .take_while(|s| !matches!(s.fault, Fault::ClockJump { .. }))
                .count();
            assert_eq!(all[..same], clocks[..same], "seed {seed}");
        }
    }

    #[test]
    fn a_fixed_batch_of_twelve_seeds_stalls_a_few_disks_of_both_mixes() {
        for mix in [Mix::All, Mix::NoPartitions] {
            let stalls: Vec<u64> = (0..12)
                .flat_map(|seed| schedule(seed, 3, &SHAPE, mix))
                .filter_map(|s| match s.fault {
                    Fault::StallDisk { replica } => Some(replica),
                    _ => None,
                })
                .collect();
            assert!(stalls.len() >= 2, "{mix:?}: {stalls:?}");
            assert!(stalls.iter().all(|r| (1..=SHAPE.replicas).contains(r)));
        }
        let all: Vec<Step> = (0..200)
            .flat_map(|seed| schedule(seed, 10, &SHAPE, Mix::All))
            .collect();
        let stalls = all
            .iter()
            .filter(|s| matches!(s.fault, Fault::StallDisk { .. }))
            .count();
        assert!(
            (120..=280).contains(&stalls),
            "about a tenth of 2000 steps: {stalls}"
        );
    }
}
