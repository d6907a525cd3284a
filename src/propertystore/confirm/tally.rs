//! The client's count of confirmations (pure): which replicas to ask (the configured ones,
//! then every voter the answers name), and when the answers decide.
//!
//! The voters counted are those of the newest membership (highest log id) among the
//! answers; a decision needs a majority of each of its configurations (two during a joint
//! change). Only a replica of those voters that answered [`Verdict::Confirmed`] counts for
//! "yes"; "no" comes as soon as some configuration can no longer reach a majority: its
//! voters that refused (for any reason, [`Verdict::Differs`] included) or could not be
//! reached are too many.
//!
//! A lone [`Verdict::Differs`] does not decide "no": a replica that is behind (restarted
//! from an older snapshot, or not yet sent the entry that created the key) holds no value
//! or an older one while the key is live, and one such replica must not make every session
//! check of the cluster fail. A key that was really replaced is refused by a majority at
//! once (the replacement is in a majority's logs), so "no" still comes without waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::{Confirmation, Verdict, Voters};
use crate::propertystore::ReplicaId;

/// What the answers so far decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A majority of the voters confirmed.
    Confirmed,
    /// No majority can confirm.
    Refuted,
    /// Not yet.
    Undecided,
}

/// Where one address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// Asked, no answer yet.
    Waiting,
    /// Could not be asked, or did not answer.
    Failed,
    /// Answered.
    Answered,
}

/// The confirmations of one check, as they come.
#[derive(Debug, Default)]
pub struct Tally {
    addrs: BTreeMap<SocketAddr, Asked>,
    /// Addresses known and not asked yet.
    unasked: BTreeSet<SocketAddr>,
    /// Who is at which address, from the answers.
    ids: BTreeMap<SocketAddr, ReplicaId>,
    /// Each replica's first answer: whether it confirmed.
    answers: BTreeMap<ReplicaId, bool>,
    /// The newest membership answered.
    voters: Option<Voters>,
}

impl Tally {
    /// A tally that will first ask `endpoints`.
    pub fn new(endpoints: &[SocketAddr]) -> Tally {
        Tally {
            unasked: endpoints.iter().copied().collect(),
            ..Tally::default()
        }
    }

    /// The addresses to ask now (each once); they are then awaited.
    pub fn to_ask(&mut self) -> Vec<SocketAddr> {
        let out: Vec<SocketAddr> = std::mem::take(&mut self.unasked).into_iter().collect();
        for a in &out {
            self.addrs.insert(*a, Asked::Waiting);
        }
        out
    }

    /// Whether an answer is still awaited from some address.
    pub fn waiting(&self) -> bool {
        self.addrs.values().any(|a| *a == Asked::Waiting)
    }

    /// Whether any replica answered.
    pub fn any_answer(&self) -> bool {
        !self.answers.is_empty()
    }

    /// `from` could not be asked or did not answer.
    pub fn failed(&mut self, from: SocketAddr) {
        self.addrs.insert(from, Asked::Failed);
    }

    /// `from` answered `c`.
    pub fn answered(&mut self, from: SocketAddr, c: Confirmation) {
        self.addrs.insert(from, Asked::Answered);
        self.ids.insert(from, c.replica);
        self.answers
            .entry(c.replica)
            .or_insert(c.verdict == Verdict::Confirmed);
        for (id, addr) in &c.voters.addrs {
            if let Ok(a) = addr.parse::<SocketAddr>() {
                self.ids.entry(a).or_insert(*id);
                if !self.addrs.contains_key(&a) {
                    self.unasked.insert(a);
                }
            }
        }
        if self.voters.as_ref().is_none_or(|v| c.voters.log_id > v.log_id) {
            self.voters = Some(c.voters);
        }
    }

    /// Whether `id` may still confirm: it has not answered and some address of it is
    /// awaited, not asked yet, or unknown.
    fn open(&self, id: ReplicaId) -> bool {
        if self.answers.contains_key(&id) {
            return false;
        }
        let mut known = self.ids.iter().filter(|(_, i)| **i == id).peekable();
        if known.peek().is_none() {
            return true;
        }
        known.any(|(a, _)| self.unasked.contains(a) || self.addrs.get(a) != Some(&Asked::Failed))
    }

    /// What the answers so far decide.
    pub fn decision(&self) -> Decision {
        let Some(voters) = &self.voters else {
            return Decision::Undecided;
        };
        if voters.configs.is_empty() || voters.configs.iter().any(|c| c.is_empty()) {
            return Decision::Refuted;
        }
        let mut all_confirmed = true;
        for config in &voters.configs {
            let majority = config.len() / 2 + 1;
            let confirmed = config
                .iter()
                .filter(|id| self.answers.get(id) == Some(&true))
                .count();
            let open = config.iter().filter(|id| self.open(**id)).count();
            if confirmed + open < majority {
                return Decision::Refuted;
            }
            all_confirmed &= confirmed >= majority;
        }
        if all_confirmed {
            Decision::Confirmed
        } else {
            Decision::Undecided
        }
    }
}
