//! The sequential specification the history is checked against: a map of keys to versioned
//! values, as the property store keeps them (a key's version is 1 when created and +1 per
//! write; 0 means absent), with the store's get, set, compare-and-set on the version and
//! transactions conditioned on versions.
//!
//! [`Call`] and [`Ret`] are what a client asked and what it was told; [`step`] says whether a
//! call with that answer can take effect on a state, and the state after it. The search
//! works on [`LocalCall`]s, whose keys are indices into one partition's keys.

use serde::{Deserialize, Serialize};

/// A value as the checker sees it. Histories give every write a value of its own, so a read
/// names the write it saw.
pub type Value = u64;

/// What a key holds: its value and version (the store's `Stat::version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Versioned {
    /// The value.
    pub value: Value,
    /// 1 when created, +1 per write.
    pub version: u64,
}

/// What a client asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    /// Read one key.
    Get {
        /// The key.
        key: String,
    },
    /// Write a value unconditionally (the store's `set` without an expected version).
    Put {
        /// The key.
        key: String,
        /// The value written.
        value: Value,
    },
    /// Write a value if the key is at version `expected` (0: only if absent).
    Cas {
        /// The key.
        key: String,
        /// The version the key must be at.
        expected: u64,
        /// The value written.
        value: Value,
    },
    /// If every key of `conditions` is at its version, write every put of `puts` at one
    /// revision; else change nothing.
    Txn {
        /// (key, version it must be at; 0: absent).
        conditions: Vec<(String, u64)>,
        /// (key, value) written, in order.
        puts: Vec<(String, Value)>,
    },
}

impl Call {
    /// Every key the call touches (conditions included), possibly repeated.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Call::Get { key } | Call::Put { key, .. } | Call::Cas { key, .. } => vec![key.as_str()],
            Call::Txn { conditions, puts } => conditions
                .iter()
                .map(|(k, _)| k.as_str())
                .chain(puts.iter().map(|(k, _)| k.as_str()))
                .collect(),
        }
    }

    /// The values this call may write.
    pub fn written_values(&self) -> Vec<Value> {
        match self {
            Call::Get { .. } => Vec::new(),
            Call::Put { value, .. } | Call::Cas { value, .. } => vec![*value],
            Call::Txn { puts, .. } => puts.iter().map(|(_, v)| *v).collect(),
        }
    }
}

/// What the client was told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    /// A get's answer (`None`: absent).
    Get(Option<Versioned>),
    /// A put or compare-and-set took effect; the key's new version.
    Written {
        /// The key's version after the write.
        version: u64,
    },
    /// A compare-and-set found the key at another version and changed nothing.
    CasFailed {
        /// The version the store reported.
        actual: u64,
    },
    /// A transaction's answer.
    Txn {
        /// Whether its conditions held (and its puts took effect).
        succeeded: bool,
        /// The new version of each put's key, in order (empty when it did not succeed).
        versions: Vec<u64>,
    },
    /// No answer (a timeout, a lost connection): it may have taken effect at any time after
    /// its invocation, or never.
    Unknown,
}

/// A call whose keys are indices into its partition's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LocalCall {
    Get(usize),
    Put(usize, Value),
    Cas(usize, u64, Value),
    Txn(Vec<(usize, u64)>, Vec<(usize, Value)>),
}

impl LocalCall {
    /// `call` with its keys looked up by `index`.
    pub(super) fn new(call: &Call, index: impl Fn(&str) -> usize) -> LocalCall {
        match call {
            Call::Get { key } => LocalCall::Get(index(key)),
            Call::Put { key, value } => LocalCall::Put(index(key), *value),
            Call::Cas { key, expected, value } => LocalCall::Cas(index(key), *expected, *value),
            Call::Txn { conditions, puts } => LocalCall::Txn(
                conditions.iter().map(|(k, v)| (index(k), *v)).collect(),
                puts.iter().map(|(k, v)| (index(k), *v)).collect(),
            ),
        }
    }
}

/// The state of one partition's keys, by local index.
pub(super) type State = Vec<Option<Versioned>>;

fn version(state: &State, key: usize) -> u64 {
    state[key].map_or(0, |v| v.version)
}

fn write(state: &mut State, key: usize, value: Value) -> u64 {
    let version = version(state, key) + 1;
    state[key] = Some(Versioned { value, version });
    version
}

/// The state after `call` answered by `ret` takes effect on `state`, or `None` if it cannot
/// have been answered so in that state.
pub(super) fn step(state: &State, call: &LocalCall, ret: &Ret) -> Option<State> {
    match (call, ret) {
        (LocalCall::Get(k), Ret::Get(seen)) => (state[*k] == *seen).then(|| state.clone()),
        (LocalCall::Put(k, v), Ret::Written { version: new }) => {
            let mut next = state.clone();
            (write(&mut next, *k, *v) == *new).then_some(next)
        }
        (LocalCall::Put(k, v), Ret::Unknown) => {
            let mut next = state.clone();
            write(&mut next, *k, *v);
            Some(next)
        }
        (LocalCall::Cas(k, expected, v), Ret::Written { version: new }) => {
            if version(state, *k) != *expected {
                return None;
            }
            let mut next = state.clone();
            (write(&mut next, *k, *v) == *new).then_some(next)
        }
        (LocalCall::Cas(k, expected, _), Ret::CasFailed { actual }) => {
            (version(state, *k) == *actual && actual != expected).then(|| state.clone())
        }
        (LocalCall::Cas(k, expected, v), Ret::Unknown) => {
            let mut next = state.clone();
            if version(state, *k) == *expected {
                write(&mut next, *k, *v);
            }
            Some(next)
        }
        (LocalCall::Txn(conditions, puts), Ret::Txn { succeeded, versions }) => {
            let holds = conditions.iter().all(|(k, v)| version(state, *k) == *v);
            if holds != *succeeded {
                return None;
            }
            if !holds {
                return versions.is_empty().then(|| state.clone());
            }
            let mut next = state.clone();
            let got: Vec<u64> = puts.iter().map(|(k, v)| write(&mut next, *k, *v)).collect();
            (got == *versions).then_some(next)
        }
        (LocalCall::Txn(conditions, puts), Ret::Unknown) => {
            let mut next = state.clone();
            if conditions.iter().all(|(k, v)| version(state, *k) == *v) {
                for (k, v) in puts {
                    write(&mut next, *k, *v);
                }
            }
            Some(next)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: Value, version: u64) -> Option<Versioned> {
        Some(Versioned { value, version })
    }

    #[test]
    fn a_get_sees_exactly_the_state() {
        let s: State = vec![at(7, 2)];
        assert!(step(&s, &LocalCall::Get(0), &Ret::Get(at(7, 2))).is_some());
        assert!(step(&s, &LocalCall::Get(0), &Ret::Get(at(7, 1))).is_none());
        assert!(step(&s, &LocalCall::Get(0), &Ret::Get(None)).is_none());
    }

    #[test]
    fn cas_succeeds_only_at_its_version_and_fails_only_elsewhere() {
        let s: State = vec![at(7, 2)];
        let cas = LocalCall::Cas(0, 2, 9);
        assert_eq!(step(&s, &cas, &Ret::Written { version: 3 }), Some(vec![at(9, 3)]));
        assert!(step(&s, &cas, &Ret::CasFailed { actual: 2 }).is_none());
        let stale = LocalCall::Cas(0, 1, 9);
        assert!(step(&s, &stale, &Ret::Written { version: 2 }).is_none());
        assert_eq!(step(&s, &stale, &Ret::CasFailed { actual: 2 }), Some(s.clone()));
        // Unknown: applied when it can be, else nothing.
        assert_eq!(step(&s, &stale, &Ret::Unknown), Some(s.clone()));
        assert_eq!(step(&s, &cas, &Ret::Unknown), Some(vec![at(9, 3)]));
    }

    #[test]
    fn a_txn_writes_all_its_keys_or_none() {
        let s: State = vec![None, at(1, 1)];
        let txn = LocalCall::Txn(vec![(1, 1)], vec![(0, 5), (1, 6)]);
        let ok = Ret::Txn {
            succeeded: true,
            versions: vec![1, 2],
        };
        assert_eq!(step(&s, &txn, &ok), Some(vec![at(5, 1), at(6, 2)]));
        let failed = Ret::Txn {
            succeeded: false,
            versions: vec![],
        };
        assert!(step(&s, &txn, &failed).is_none());
        let moved: State = vec![None, at(2, 2)];
        assert_eq!(step(&moved, &txn, &failed), Some(moved.clone()));
    }

    #[test]
    fn an_answer_of_another_kind_never_fits() {
        let s: State = vec![None];
        assert!(step(&s, &LocalCall::Get(0), &Ret::Written { version: 1 }).is_none());
        assert!(step(&s, &LocalCall::Put(0, 1), &Ret::CasFailed { actual: 0 }).is_none());
    }
}
