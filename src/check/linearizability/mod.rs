//! A linearizability checker for histories of the property store's client operations
//! (issue 19 §2): Wing & Gong's search with Lowe's memoisation and P-compositionality, as
//! Porcupine does it ([`search`]), over a model of the store's keys ([`model`]), one
//! partition of keys at a time ([`partition`]).
//!
//! ```text
//!   history ──► partitions (keys no operation crosses) ──► per partition: search(model) ──► Verdict
//! ```
//!
//! No maintained Rust crate fits (see ARCHITECTURE.md, decisions): this one is small, pure and
//! tested on known linearizable and non-linearizable histories (`tests`).

pub mod model;
mod partition;
mod search;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::model::{Call, Ret, Value, Versioned};
use self::model::{LocalCall, State};
use self::search::{search, Entry, Found};

/// A time in any monotonic unit (a recorder uses nanoseconds since its start).
pub type Time = u64;

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The client (for reports only: the search does not use it).
    pub client: u32,
    /// What was asked.
    pub call: Call,
    /// What was answered.
    pub ret: Ret,
    /// When it was sent.
    pub invoke: Time,
    /// When the answer arrived (ignored when `ret` is [`Ret::Unknown`]).
    pub complete: Time,
}

/// The most search steps spent on one partition before it is reported undecided.
pub const DEFAULT_MAX_STEPS: u64 = 50_000_000;

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The keys of the partition that has no linearization.
    pub keys: Vec<String>,
    /// The indices (into the history) of that partition's operations.
    pub ops: Vec<usize>,
    /// The operations with an answer left out of the largest partial linearization found:
    /// at least one of them cannot be placed.
    pub unplaced: Vec<usize>,
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Some order of the operations, each at an instant between its invocation and its
    /// answer, explains every answer.
    Linearizable,
    /// No order does.
    NotLinearizable(Violation),
    /// The search of the partition over `keys` spent its budget without deciding.
    Undecided {
        /// The partition's keys.
        keys: Vec<String>,
        /// The steps spent.
        steps: u64,
    },
    /// Operation `index` answered before it was invoked.
    Malformed {
        /// Its index in the history.
        index: usize,
    },
}

impl Verdict {
    /// Whether the history was found linearizable.
    pub fn is_linearizable(&self) -> bool {
        *self == Verdict::Linearizable
    }
}

/// Checks `history` with the default step budget.
pub fn check(history: &[Operation]) -> Verdict {
    check_with_budget(history, DEFAULT_MAX_STEPS)
}

/// Checks `history` (a violation in any partition is reported before an undecided one),
/// spending at most `max_steps` search steps on each partition.
pub fn check_with_budget(history: &[Operation], max_steps: u64) -> Verdict {
    if let Some(index) = history
        .iter()
        .position(|o| o.ret != Ret::Unknown && o.complete < o.invoke)
    {
        return Verdict::Malformed { index };
    }
    let mut undecided = None;
    for part in partition::partitions(history) {
        let local: BTreeMap<&str, usize> = part
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let entries: Vec<Entry<(LocalCall, &Ret)>> = part
            .ops
            .iter()
            .map(|&i| {
                let o = &history[i];
                Entry {
                    op: (LocalCall::new(&o.call, |k| local[k]), &o.ret),
                    invoke: o.invoke,
                    complete: (o.ret != Ret::Unknown).then_some(o.complete),
                }
            })
            .collect();
        let init: State = vec![None; part.keys.len()];
        match search(
            &entries,
            init,
            |s, (call, ret)| model::step(s, call, ret),
            max_steps,
        ) {
            Found::Linearizable => {}
            Found::None { best } => {
                let unplaced = part
                    .ops
                    .iter()
                    .enumerate()
                    .filter(|(j, &i)| !best.contains(j) && history[i].ret != Ret::Unknown)
                    .map(|(_, &i)| i)
                    .collect();
                return Verdict::NotLinearizable(Violation {
                    keys: part.keys,
                    ops: part.ops,
                    unplaced,
                });
            }
            Found::Undecided { steps } => {
                // Another partition may still show a violation, which says more.
                undecided.get_or_insert(Verdict::Undecided {
                    keys: part.keys,
                    steps,
                });
            }
        }
    }
    undecided.unwrap_or(Verdict::Linearizable)
}
