//! The leaderless confirmation that a key still holds a value (issue 19 §1/§5): "is my
//! session still live?" answered by a majority of voters, with no leader involved, so that a
//! store leader change does not make every participant's session lease lapse.
//!
//! ```text
//!   client ──ConfirmHeld{path, value}──► every replica at once (no redirect, no cache)
//!                                          one RocksDB snapshot: applied id, path's record,
//!                                          the log after applied (≤ MAX_CONFIRM_SCAN entries)
//!                                          decide(): Confirmed | Differs | Pending | NotVoter | Unsure
//!          ◄── Confirmation{replica, verdict, voters (configs, their log id)} ──┘
//!   Tally: the voters of the newest membership among the replies; true once a majority of
//!          each of its configs confirmed, false once that cannot happen
//! ```
//!
//! **Why a majority of confirmations means the value was not replaced before the check was
//! sent.** A change of the key (a delete, a set, a delete of an ancestor, any transaction
//! branch naming it) that committed before the check was sent is in the log of a majority
//! of voters. Any majority of confirmations shares a replica with that majority; that
//! replica holds the change either applied (its state machine no longer holds the value:
//! it answers [`Verdict::Differs`]) or not yet applied (the entry lies after its applied
//! index: [`Verdict::Pending`]). Neither is a confirmation. A change committed after the
//! check was sent is not excluded, which is why a lease built on this counts from the time
//! the check was *sent*. The replica reads its applied index, the record and the log after
//! it from one RocksDB snapshot (the state machine writes the record and its applied index
//! in one batch; the log is appended visibly before its fsync and purged only below a
//! snapshot, so below the applied index): the three are one moment of that replica.
//!
//! Files: this one (the replica's decision: [`op_may_change`], [`command_may_change`],
//! [`LogScan`], [`decide`]; the answer's types), `tally` (the client's counting,
//! [`Tally`]), `tests`.

mod tally;
#[cfg(test)]
mod tests;

pub use self::tally::{Decision, Tally};

use openraft::{EntryPayload, LogId};
use serde::{Deserialize, Serialize};

use super::core::{child_prefix, Command, Op, Record};
use super::{ReplicaId, TypeConfig};

/// The most log entries after its applied index a replica reads to answer one
/// confirmation; with more it refuses ([`Verdict::Unsure`]). Unapplied entries are normally
/// few (what is in flight between the log and the state machine).
pub const MAX_CONFIRM_SCAN: usize = 10_000;

/// One replica's answer to a confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The applied state holds exactly the value, no entry after it may change the key,
    /// and this replica is a voter.
    Confirmed,
    /// The applied state holds another value at the key, or none: a definite no.
    Differs,
    /// The log entry at `index`, not yet applied here, may change the key.
    Pending {
        /// The entry's index.
        index: u64,
    },
    /// This replica is not a voter of the membership it knows.
    NotVoter,
    /// This replica cannot tell (its log is unreadable, has a gap after the applied index,
    /// or holds more than [`MAX_CONFIRM_SCAN`] unapplied entries; the key is invalid).
    Unsure {
        /// Why.
        reason: String,
    },
}

/// The membership a replica knows: its configurations (two during a joint change) and the
/// log id that introduced it, with every member's address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voters {
    /// The log id of the membership entry (`None`: the initial, empty one).
    pub log_id: Option<LogId<ReplicaId>>,
    /// The voter sets; a decision needs a majority of each.
    pub configs: Vec<Vec<ReplicaId>>,
    /// Every voter's address, as the membership records it.
    pub addrs: Vec<(ReplicaId, String)>,
}

impl Voters {
    /// Whether `id` is a voter in any configuration.
    pub fn contains(&self, id: ReplicaId) -> bool {
        self.configs.iter().any(|c| c.contains(&id))
    }
}

/// The answer to [`super::protocol::StoreRequest::ConfirmHeld`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The replica that answered.
    pub replica: ReplicaId,
    /// What it says.
    pub verdict: Verdict,
    /// The membership it knows.
    pub voters: Voters,
}

/// Whether `op` may change or delete `path`: a create or set of it, a delete of it or of an
/// ancestor (a recursive delete removes it; a plain one of an ancestor fails while it exists,
/// but saying "may" costs only a refusal).
pub fn op_may_change(op: &Op, path: &str) -> bool {
    match op {
        Op::Create { path: p, .. } | Op::Set { path: p, .. } => p == path,
        Op::Delete { path: p, .. } => p == path || covers(p, path),
    }
}

/// Whether `ancestor`'s subtree (keys under `ancestor/`, every key for `/`) holds `path`.
fn covers(ancestor: &str, path: &str) -> bool {
    path.starts_with(&child_prefix(ancestor))
}

/// Whether `cmd` may change or delete `path`: a transaction with an operation that may, in
/// either branch (which one runs is not known before it applies). Conditions only read;
/// compaction changes no key.
pub fn command_may_change(cmd: &Command, path: &str) -> bool {
    match cmd {
        Command::Txn(t) => t
            .success
            .iter()
            .chain(&t.failure)
            .any(|op| op_may_change(op, path)),
        Command::Compact { .. } => false,
    }
}

/// Whether a log entry's payload may change `path`.
pub fn payload_may_change(payload: &EntryPayload<TypeConfig>, path: &str) -> bool {
    match payload {
        EntryPayload::Blank | EntryPayload::Membership(_) => false,
        EntryPayload::Normal(batch) => batch.0.iter().any(|c| command_may_change(c, path)),
    }
}

/// The scan of a replica's log after its applied index, entry by entry in index order: the
/// entries must follow the applied index without a gap, be readable, be at most `max`, and
/// none may change the key.
#[derive(Debug)]
pub struct LogScan<'a> {
    path: &'a str,
    /// The index the next entry must have.
    next: u64,
    seen: usize,
    max: usize,
    refusal: Option<Verdict>,
}

impl<'a> LogScan<'a> {
    /// A scan for `path` of the entries after `applied`, reading at most `max`.
    pub fn new(path: &'a str, applied: Option<LogId<ReplicaId>>, max: usize) -> LogScan<'a> {
        LogScan {
            path,
            next: applied.map_or(0, |a| a.index + 1),
            seen: 0,
            max,
            refusal: None,
        }
    }

    /// The entry at `index`: its payload, or why it could not be read. Returns whether the
    /// scan wants more (false once it has refused).
    pub fn offer(&mut self, index: u64, payload: Result<&EntryPayload<TypeConfig>, String>) -> bool {
        if self.refusal.is_some() {
            return false;
        }
        if index < self.next {
            // At or below the applied index (a purge racing the read leaves none; the
            // caller starts after it): already in the state machine.
            return true;
        }
        let refusal = if index != self.next {
            Some(Verdict::Unsure {
                reason: format!("the log has no entry {} after the applied index", self.next),
            })
        } else if self.seen >= self.max {
            Some(Verdict::Unsure {
                reason: format!("more than {} log entries are not applied yet", self.max),
            })
        } else {
            match payload {
                Err(reason) => Some(Verdict::Unsure {
                    reason: format!("log entry {index} is unreadable: {reason}"),
                }),
                Ok(p) if payload_may_change(p, self.path) => Some(Verdict::Pending { index }),
                Ok(_) => None,
            }
        };
        self.seen += 1;
        self.next = index + 1;
        self.refusal = refusal;
        self.refusal.is_none()
    }

    /// The log could not be read past here: refuses. Returns false (the scan wants no more).
    pub fn refuse(&mut self, reason: String) -> bool {
        self.refusal.get_or_insert(Verdict::Unsure { reason });
        false
    }

    /// `None` when every entry after the applied index was seen and none changes the key;
    /// else the refusal.
    pub fn finish(self) -> Option<Verdict> {
        self.refusal
    }
}

/// The replica's verdict: `record` is what its applied state holds at the key, `scan` the
/// finished scan of its unapplied entries, `voter` whether it is a voter. A definite "no"
/// (the applied state holds something else) wins over the other refusals, since the client
/// stops at it.
pub fn decide(record: Option<&Record>, value: &[u8], scan: Option<Verdict>, voter: bool) -> Verdict {
    if record.is_none_or(|r| r.value != value) {
        return Verdict::Differs;
    }
    if let Some(refusal) = scan {
        return refusal;
    }
    if !voter {
        return Verdict::NotVoter;
    }
    Verdict::Confirmed
}
