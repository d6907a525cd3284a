//! The participant's transition bookkeeping, without I/O: which messages it accepts, what
//! each replica holds, what is in flight.
//!
//! ```text
//!   message (QUIC or the store's MESSAGES watch, possibly both, in any order)
//!     │ handle_message
//!     ├─ not a transition / malformed / another instance  → Discard
//!     ├─ another session                                  → Discard(WrongSession)
//!     ├─ epoch below the highest seen (not a reset)       → Discard(StaleEpoch)
//!     ├─ id seen before in this session                   → Duplicate (nothing to do)
//!     ├─ the replica has a transition in flight           → Discard(Busy)
//!     ├─ FROM_STATE is not the replica's state            → Discard(StateMismatch)
//!     └─ otherwise                                        → Run (the replica is busy)
//!   handle_finished(msg id, outcome) → the replica's new state (Completed: TO_STATE,
//!                                      Failed: ERROR, Cancelled: unchanged)
//! ```
//!
//! Every message id is remembered for the session, so a transition is applied at most once
//! however many times its message arrives. A failed check changes nothing but the seen set
//! (a discarded id stays discarded). A new session forgets everything: a participant that
//! rejoins holds nothing.

use std::collections::{BTreeMap, HashSet, VecDeque};

/// How many message ids a session remembers (the oldest are forgotten first). A message is
/// deleted once handled, so an id comes back only as a late duplicate of a recent delivery;
/// one that comes back after this many others is still refused unless its FROM state
/// matches, and then it is indistinguishable from a new order.
pub const SEEN_CAPACITY: usize = 100_000;

use crate::model::fields::{
    FROM_STATE, MSG_TYPE, PARTITION_NAME, RESOURCE_NAME, SRC_NAME, STATE_MODEL_DEF, TGT_NAME, TGT_SESSION_ID,
    TIMEOUT, TO_STATE,
};
use crate::model::Record;
use crate::statemodel::{DROPPED, ERROR};

/// The simple field of a message that carries the sending controller's epoch.
pub const EPOCH_FIELD: &str = "STRAND_EPOCH";

/// A state-transition message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionMessage {
    /// `MSG_ID`.
    pub id: String,
    /// `TGT_NAME`.
    pub instance: String,
    /// `TGT_SESSION_ID`.
    pub session: String,
    /// `RESOURCE_NAME`.
    pub resource: String,
    /// `PARTITION_NAME`.
    pub partition: String,
    /// `STATE_MODEL_DEF`.
    pub state_model: String,
    /// `FROM_STATE`.
    pub from: String,
    /// `TO_STATE`.
    pub to: String,
    /// The sender's epoch (0 when absent: an operator's message).
    pub epoch: u64,
    /// `TIMEOUT` in ms, if any.
    pub timeout_ms: Option<u64>,
    /// `SRC_NAME`.
    pub source: String,
}

impl TransitionMessage {
    /// Parses a Helix-shaped `STATE_TRANSITION` message record.
    pub fn parse(record: &Record) -> Result<TransitionMessage, String> {
        let field = |k: &str| -> Result<String, String> {
            record
                .simple(k)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("message {} has no {k}", record.id))
        };
        let kind = field(MSG_TYPE)?;
        if kind != "STATE_TRANSITION" {
            return Err(format!(
                "message {} is a {kind}, not a STATE_TRANSITION",
                record.id
            ));
        }
        let epoch = match record.simple(EPOCH_FIELD) {
            None => 0,
            Some(v) => v
                .parse()
                .map_err(|_| format!("message {}: {EPOCH_FIELD} {v:?} is not a number", record.id))?,
        };
        let timeout_ms = match record.simple(TIMEOUT) {
            None => None,
            Some(v) => match v.parse::<i64>() {
                Ok(ms) if ms > 0 => Some(ms as u64),
                Ok(_) => None,
                Err(_) => return Err(format!("message {}: TIMEOUT {v:?} is not a number", record.id)),
            },
        };
        Ok(TransitionMessage {
            id: record.id.clone(),
            instance: field(TGT_NAME)?,
            session: field(TGT_SESSION_ID)?,
            resource: field(RESOURCE_NAME)?,
            partition: field(PARTITION_NAME)?,
            state_model: field(STATE_MODEL_DEF)?,
            from: field(FROM_STATE)?,
            to: field(TO_STATE)?,
            epoch,
            timeout_ms,
            source: record.simple(SRC_NAME).unwrap_or_default().to_string(),
        })
    }

    /// Whether this is an operator's reset of an ERROR replica (accepted whatever the epoch:
    /// leaving ERROR for the initial state can never put a replica over a bound).
    pub fn is_reset(&self, initial_state: &str) -> bool {
        self.from == ERROR && self.to == initial_state
    }
}

/// Why a message was not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discard {
    /// The record is not a valid state-transition message.
    Malformed(String),
    /// It is addressed to another instance.
    WrongInstance {
        /// The instance it names.
        target: String,
    },
    /// It is meant for another session of this instance.
    WrongSession {
        /// The session it names.
        target: String,
    },
    /// A controller with a higher epoch has been heard from.
    StaleEpoch {
        /// The message's epoch.
        epoch: u64,
        /// The highest seen.
        highest: u64,
    },
    /// The replica has a transition in flight.
    Busy,
    /// `FROM_STATE` is not what the replica holds.
    StateMismatch {
        /// What it holds.
        current: String,
    },
}

impl std::fmt::Display for Discard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Discard::Malformed(r) => write!(f, "malformed: {r}"),
            Discard::WrongInstance { target } => write!(f, "addressed to {target}"),
            Discard::WrongSession { target } => write!(f, "for session {target}, not this one"),
            Discard::StaleEpoch { epoch, highest } => {
                write!(f, "stale controller epoch {epoch} (seen {highest})")
            }
            Discard::Busy => f.write_str("the replica has a transition in flight"),
            Discard::StateMismatch { current } => write!(f, "the replica is {current}"),
        }
    }
}

/// What to do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Run the transition; the replica is busy until [`Ledger::handle_finished`].
    Run(Box<TransitionMessage>),
    /// Already handled in this session.
    Duplicate,
    /// Not run, for this reason (the message can be deleted).
    Discard(Discard),
}

/// How a transition ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded: the replica is in the target state.
    Completed,
    /// The handler failed or timed out: the replica is in ERROR.
    Failed(String),
    /// The transition was cancelled (the session ended): the replica is unchanged.
    Cancelled,
}

/// The state change of a replica after a transition ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The message.
    pub message: TransitionMessage,
    /// The replica's state now (`DROPPED`: no longer held).
    pub state: String,
}

#[derive(Debug, Clone, Default)]
struct ResourceEntry {
    state_model: String,
    /// partition → state (absent: the initial state, not held).
    states: BTreeMap<String, String>,
}

/// The bookkeeping of one participant session.
#[derive(Debug, Clone)]
pub struct Ledger {
    instance: String,
    session: String,
    highest_epoch: u64,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    resources: BTreeMap<String, ResourceEntry>,
    /// msg id → message, for transitions in flight.
    in_flight: BTreeMap<String, TransitionMessage>,
    /// (resource, partition) in flight.
    busy: HashSet<(String, String)>,
}

impl Ledger {
    /// A fresh session: nothing held, nothing seen.
    pub fn new(instance: impl Into<String>, session: impl Into<String>) -> Self {
        Ledger {
            instance: instance.into(),
            session: session.into(),
            highest_epoch: 0,
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            resources: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            busy: HashSet::new(),
        }
    }

    /// Remembers `id`; false if it was already remembered.
    fn remember(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_string()) {
            return false;
        }
        self.seen_order.push_back(id.to_string());
        while self.seen_order.len() > SEEN_CAPACITY {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// The session.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The highest controller epoch seen.
    pub fn highest_epoch(&self) -> u64 {
        self.highest_epoch
    }

    /// Decides what to do with a message; `initial_state` is the initial state of the
    /// message's state model (a replica not held is in it).
    pub fn handle_message(&mut self, record: &Record, initial_state: impl FnOnce(&str) -> String) -> Verdict {
        let msg = match TransitionMessage::parse(record) {
            Ok(m) => m,
            Err(reason) => {
                if !self.remember(&record.id) {
                    return Verdict::Duplicate;
                }
                return Verdict::Discard(Discard::Malformed(reason));
            }
        };
        if msg.instance != self.instance {
            return Verdict::Discard(Discard::WrongInstance { target: msg.instance });
        }
        if msg.session != self.session {
            return Verdict::Discard(Discard::WrongSession { target: msg.session });
        }
        if !self.remember(&msg.id) {
            return Verdict::Duplicate;
        }
        let initial = initial_state(&msg.state_model);
        if msg.epoch < self.highest_epoch && !msg.is_reset(&initial) && !crate::testing::fencing_broken() {
            return Verdict::Discard(Discard::StaleEpoch {
                epoch: msg.epoch,
                highest: self.highest_epoch,
            });
        }
        // A newer controller exists even if this message of its is not run.
        self.highest_epoch = self.highest_epoch.max(msg.epoch);
        let key = (msg.resource.clone(), msg.partition.clone());
        if self.busy.contains(&key) {
            return Verdict::Discard(Discard::Busy);
        }
        let current = self
            .state(&msg.resource, &msg.partition)
            .unwrap_or(&initial)
            .to_string();
        if msg.from != current {
            return Verdict::Discard(Discard::StateMismatch { current });
        }
        self.busy.insert(key);
        self.resources
            .entry(msg.resource.clone())
            .or_insert_with(|| ResourceEntry {
                state_model: msg.state_model.clone(),
                states: BTreeMap::new(),
            });
        self.in_flight.insert(msg.id.clone(), msg.clone());
        Verdict::Run(Box::new(msg))
    }

    /// Records how a transition ended; `None` if the id is not in flight (ended already,
    /// or a session ago).
    pub fn handle_finished(&mut self, msg_id: &str, outcome: &Outcome) -> Option<Finished> {
        let msg = self.in_flight.remove(msg_id)?;
        self.busy.remove(&(msg.resource.clone(), msg.partition.clone()));
        let entry = self.resources.entry(msg.resource.clone()).or_default();
        let state = match outcome {
            Outcome::Completed => msg.to.clone(),
            Outcome::Failed(_) => ERROR.to_string(),
            Outcome::Cancelled => return None,
        };
        if state == DROPPED {
            entry.states.remove(&msg.partition);
        } else {
            entry.states.insert(msg.partition.clone(), state.clone());
        }
        Some(Finished { message: msg, state })
    }

    /// The state of a replica, if held.
    pub fn state(&self, resource: &str, partition: &str) -> Option<&str> {
        self.resources
            .get(resource)
            .and_then(|r| r.states.get(partition))
            .map(String::as_str)
    }

    /// partition → state of a resource, and its state model, if the session ever held it.
    pub fn resource_states(&self, resource: &str) -> Option<(&str, &BTreeMap<String, String>)> {
        self.resources
            .get(resource)
            .map(|r| (r.state_model.as_str(), &r.states))
    }

    /// Every replica held: (resource, state model, partition, state).
    pub fn held(&self) -> Vec<(String, String, String, String)> {
        let mut out = Vec::new();
        for (r, e) in &self.resources {
            for (p, s) in &e.states {
                out.push((r.clone(), e.state_model.clone(), p.clone(), s.clone()));
            }
        }
        out
    }

    /// The transitions in flight.
    pub fn in_flight(&self) -> impl Iterator<Item = &TransitionMessage> {
        self.in_flight.values()
    }

    /// Sets a replica's state directly (a local step-down, run outside messages).
    pub fn set_local_state(
        &mut self,
        resource: &str,
        state_model: &str,
        partition: &str,
        state: &str,
        initial: &str,
    ) {
        let entry = self
            .resources
            .entry(resource.to_string())
            .or_insert_with(|| ResourceEntry {
                state_model: state_model.to_string(),
                states: BTreeMap::new(),
            });
        if state == initial || state == DROPPED {
            entry.states.remove(partition);
        } else {
            entry.states.insert(partition.to_string(), state.to_string());
        }
    }

    /// Starts a new session: forgets every replica, message and transition in flight, but
    /// keeps the highest epoch seen (a controller's epoch only grows).
    pub fn renew(&mut self, session: impl Into<String>) {
        let highest = self.highest_epoch;
        *self = Ledger::new(self.instance.clone(), session);
        self.highest_epoch = highest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Message;

    fn msg(id: &str, session: &str, from: &str, to: &str, epoch: u64) -> Record {
        let mut m = Message::state_transition(id)
            .source("ctrl", "c1")
            .target("i1", session)
            .replica("db", "db_0")
            .state_model("MasterSlave")
            .transition(from, to)
            .build(1)
            .unwrap();
        m.record.set_simple(EPOCH_FIELD, epoch);
        m.record
    }

    fn offline(_: &str) -> String {
        "OFFLINE".into()
    }

    #[test]
    fn a_message_runs_once_however_often_it_arrives() {
        let mut l = Ledger::new("i1", "s1");
        let m = msg("m1", "s1", "OFFLINE", "SLAVE", 5);
        assert!(matches!(l.handle_message(&m, offline), Verdict::Run(_)));
        assert_eq!(l.handle_message(&m, offline), Verdict::Duplicate);
        let f = l.handle_finished("m1", &Outcome::Completed).unwrap();
        assert_eq!(f.state, "SLAVE");
        assert_eq!(l.handle_message(&m, offline), Verdict::Duplicate);
        assert_eq!(l.handle_finished("m1", &Outcome::Completed), None);
        assert_eq!(l.state("db", "db_0"), Some("SLAVE"));
    }

    #[test]
    fn stale_epochs_other_sessions_and_wrong_states_are_discarded_and_change_nothing() {
        let mut l = Ledger::new("i1", "s1");
        assert!(matches!(
            l.handle_message(&msg("m1", "s1", "OFFLINE", "SLAVE", 7), offline),
            Verdict::Run(_)
        ));
        l.handle_finished("m1", &Outcome::Completed);
        assert_eq!(
            l.handle_message(&msg("m2", "s1", "SLAVE", "MASTER", 6), offline),
            Verdict::Discard(Discard::StaleEpoch { epoch: 6, highest: 7 })
        );
        assert_eq!(
            l.handle_message(&msg("m3", "s0", "SLAVE", "MASTER", 9), offline),
            Verdict::Discard(Discard::WrongSession { target: "s0".into() })
        );
        assert_eq!(l.highest_epoch(), 7);
        assert_eq!(
            l.handle_message(&msg("m4", "s1", "OFFLINE", "SLAVE", 9), offline),
            Verdict::Discard(Discard::StateMismatch {
                current: "SLAVE".into()
            })
        );
        // None of those moved the replica; only the last (a newer controller's) raised the
        // epoch.
        assert_eq!(l.highest_epoch(), 9);
        assert_eq!(l.state("db", "db_0"), Some("SLAVE"));
    }

    #[test]
    fn a_busy_replica_takes_no_second_transition() {
        let mut l = Ledger::new("i1", "s1");
        assert!(matches!(
            l.handle_message(&msg("m1", "s1", "OFFLINE", "SLAVE", 1), offline),
            Verdict::Run(_)
        ));
        assert_eq!(
            l.handle_message(&msg("m2", "s1", "OFFLINE", "SLAVE", 1), offline),
            Verdict::Discard(Discard::Busy)
        );
    }

    #[test]
    fn failure_means_error_cancel_means_unchanged_and_dropped_means_not_held() {
        let mut l = Ledger::new("i1", "s1");
        l.handle_message(&msg("m1", "s1", "OFFLINE", "SLAVE", 1), offline);
        assert_eq!(l.handle_finished("m1", &Outcome::Cancelled), None);
        assert_eq!(l.state("db", "db_0"), None);
        l.handle_message(&msg("m2", "s1", "OFFLINE", "SLAVE", 1), offline);
        assert_eq!(
            l.handle_finished("m2", &Outcome::Failed("boom".into()))
                .unwrap()
                .state,
            "ERROR"
        );
        // An operator's reset is accepted whatever the epoch.
        let reset = msg("m3", "s1", "ERROR", "OFFLINE", 0);
        assert!(matches!(l.handle_message(&reset, offline), Verdict::Run(_)));
        l.handle_finished("m3", &Outcome::Completed);
        assert_eq!(l.state("db", "db_0"), Some("OFFLINE"));
        l.handle_message(&msg("m4", "s1", "OFFLINE", "DROPPED", 1), offline);
        l.handle_finished("m4", &Outcome::Completed);
        assert_eq!(l.state("db", "db_0"), None);
        assert!(l.held().is_empty());
    }

    #[test]
    fn a_new_session_forgets_replicas_but_not_the_epoch() {
        let mut l = Ledger::new("i1", "s1");
        l.handle_message(&msg("m1", "s1", "OFFLINE", "SLAVE", 4), offline);
        l.handle_finished("m1", &Outcome::Completed);
        l.renew("s2");
        assert!(l.held().is_empty());
        assert_eq!(l.highest_epoch(), 4);
        // The same id in the new session is new (ids are per session).
        assert!(matches!(
            l.handle_message(&msg("m1", "s2", "OFFLINE", "SLAVE", 4), offline),
            Verdict::Run(_)
        ));
    }

    #[test]
    fn malformed_messages_are_discarded_not_panicked_on() {
        let mut l = Ledger::new("i1", "s1");
        let mut r = Record::new("x");
        r.set_simple(MSG_TYPE, "STATE_TRANSITION");
        assert!(matches!(
            l.handle_message(&r, offline),
            Verdict::Discard(Discard::Malformed(_))
        ));
        let mut bad_epoch = msg("m9", "s1", "OFFLINE", "SLAVE", 1);
        bad_epoch.set_simple(EPOCH_FIELD, "abc");
        assert!(matches!(
            l.handle_message(&bad_epoch, offline),
            Verdict::Discard(Discard::Malformed(_))
        ));
    }
}
