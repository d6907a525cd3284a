//! The faults of `strand bench chaos` and their seeded schedule (pure).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One fault, held for a while and then healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL a participant; restart it when healed.
    KillParticipant,
    /// SIGSTOP a participant; SIGCONT when healed.
    PauseParticipant,
    /// Drop every datagram to and from a participant.
    IsolateParticipant,
    /// Drop every datagram a participant sends (it still hears the others): one way.
    MuteParticipant,
    /// SIGKILL the leading controller; restart it (as a standby) when healed.
    KillController,
    /// SIGSTOP the leading controller; SIGCONT when healed (after a standby took over).
    PauseController,
    /// SIGKILL the store's Raft leader; restart it when healed.
    KillStoreLeader,
    /// SIGSTOP the store's Raft leader; SIGCONT when healed.
    PauseStoreLeader,
    /// Cut the store leader from the other replicas (both ways; clients still reach it).
    PartitionStoreLeader,
    /// Every process loses 20% of the datagrams it sends.
    Loss,
}

impl Fault {
    /// Every fault, in the order of their names in reports.
    pub const ALL: [Fault; 10] = [
        Fault::KillParticipant,
        Fault::PauseParticipant,
        Fault::IsolateParticipant,
        Fault::MuteParticipant,
        Fault::KillController,
        Fault::PauseController,
        Fault::KillStoreLeader,
        Fault::PauseStoreLeader,
        Fault::PartitionStoreLeader,
        Fault::Loss,
    ];

    /// Whether it is injected through the processes' network fault rules.
    pub fn is_network(self) -> bool {
        matches!(
            self,
            Fault::IsolateParticipant | Fault::MuteParticipant | Fault::PartitionStoreLeader | Fault::Loss
        )
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillParticipant => "kill_participant",
            Fault::PauseParticipant => "pause_participant",
            Fault::IsolateParticipant => "isolate_participant",
            Fault::MuteParticipant => "mute_participant",
            Fault::KillController => "kill_controller",
            Fault::PauseController => "pause_controller",
            Fault::KillStoreLeader => "kill_store_leader",
            Fault::PauseStoreLeader => "pause_store_leader",
            Fault::PartitionStoreLeader => "partition_store_leader",
            Fault::Loss => "loss",
        }
    }
}

/// The seeded sequence of faults: every chosen kind once per round, in a shuffled order
/// (so a short run still sees each kind), with how long each is held (ms) and which
/// participant it aims at (an index into the running participants, when it aims at one).
pub struct Schedule {
    rng: StdRng,
    kinds: Vec<Fault>,
    round: Vec<Fault>,
}

/// One scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// What.
    pub fault: Fault,
    /// How long it is held before it is healed, ms.
    pub hold_ms: u64,
    /// Which participant (modulo the running ones), for the participant faults.
    pub pick: usize,
}

impl Schedule {
    /// The schedule of `seed` over `kinds` (all of them when empty).
    pub fn new(seed: u64, kinds: &[Fault]) -> Schedule {
        let mut kinds = if kinds.is_empty() {
            Fault::ALL.to_vec()
        } else {
            kinds.to_vec()
        };
        kinds.sort();
        kinds.dedup();
        Schedule {
            rng: StdRng::seed_from_u64(seed),
            kinds,
            round: Vec::new(),
        }
    }
}

impl Iterator for Schedule {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        if self.round.is_empty() {
            self.round = self.kinds.clone();
            // Fisher–Yates; popped from the back.
            for i in (1..self.round.len()).rev() {
                let j = self.rng.random_range(0..=i);
                self.round.swap(i, j);
            }
        }
        let fault = self.round.pop()?;
        Some(Step {
            fault,
            hold_ms: self.rng.random_range(1_500..=3_000),
            pick: self.rng.random_range(0..1_000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_comes_once_per_round_of_ten_and_a_seed_replays() {
        let steps: Vec<Step> = Schedule::new(7, &[]).take(30).collect();
        for round in steps.chunks(10) {
            let mut kinds: Vec<Fault> = round.iter().map(|s| s.fault).collect();
            kinds.sort();
            assert_eq!(kinds, Fault::ALL.to_vec());
        }
        assert!(steps.iter().all(|s| (1_500..=3_000).contains(&s.hold_ms)));
        assert_eq!(steps, Schedule::new(7, &[]).take(30).collect::<Vec<_>>());
        assert_ne!(steps, Schedule::new(8, &[]).take(30).collect::<Vec<_>>());
    }

    #[test]
    fn a_chosen_set_of_kinds_is_all_that_comes() {
        let chosen = [Fault::Loss, Fault::MuteParticipant, Fault::Loss];
        let kinds: Vec<Fault> = Schedule::new(3, &chosen).take(6).map(|s| s.fault).collect();
        assert_eq!(kinds.iter().filter(|k| **k == Fault::Loss).count(), 3);
        assert_eq!(kinds.iter().filter(|k| **k == Fault::MuteParticipant).count(), 3);
    }
}
