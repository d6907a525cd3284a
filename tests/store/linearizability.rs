//! A small Wing–Gong linearizability checker for a versioned register per key (get, set,
//! compare-and-set on the version), with P-compositionality: each key is checked alone.
//!
//! Operations whose outcome is unknown (a write that timed out) may take effect at any
//! point after their invocation, or never.

use std::collections::{BTreeMap, HashSet};

/// What a client asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Read the key.
    Get,
    /// Write a (unique) value.
    Set(u64),
    /// Write a (unique) value if the key is at `expected` version.
    Cas { expected: u64, value: u64 },
}

/// What it got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// The value and version read (`None`: absent, version 0).
    Get(Option<(u64, u64)>),
    /// The write took effect; the key's new version.
    Written { version: u64 },
    /// The CAS found the key at `actual`.
    CasFailed { actual: u64 },
    /// No answer: it may or may not have taken effect.
    Unknown,
}

/// One operation of the history; times in any monotonic unit.
#[derive(Debug, Clone)]
pub struct Operation {
    pub key: u32,
    pub call: Call,
    pub ret: Ret,
    pub invoke: u64,
    pub complete: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct State {
    value: Option<u64>,
    version: u64,
}

fn step(s: State, call: Call, ret: Ret) -> Option<State> {
    match (call, ret) {
        (Call::Get, Ret::Get(r)) => {
            (r == s.value.map(|v| (v, s.version)) && (r.is_some() || s.version == 0)).then_some(s)
        }
        (Call::Set(v), Ret::Written { version }) => (version == s.version + 1).then_some(State {
            value: Some(v),
            version,
        }),
        (Call::Set(v), Ret::Unknown) => Some(State {
            value: Some(v),
            version: s.version + 1,
        }),
        (Call::Cas { expected, value }, Ret::Written { version }) => {
            (s.version == expected && version == expected + 1).then_some(State {
                value: Some(value),
                version,
            })
        }
        (Call::Cas { expected, .. }, Ret::CasFailed { actual }) => {
            (s.version == actual && actual != expected).then_some(s)
        }
        (Call::Cas { expected, value }, Ret::Unknown) => Some(if s.version == expected {
            State {
                value: Some(value),
                version: s.version + 1,
            }
        } else {
            s
        }),
        _ => None,
    }
}

fn search(
    ops: &[Operation],
    done: &mut Vec<bool>,
    state: State,
    memo: &mut HashSet<(Vec<bool>, State)>,
) -> bool {
    if ops
        .iter()
        .zip(done.iter())
        .all(|(o, d)| *d || o.ret == Ret::Unknown)
    {
        return true;
    }
    if !memo.insert((done.clone(), state)) {
        return false;
    }
    let min_complete = ops
        .iter()
        .zip(done.iter())
        .filter(|(_, d)| !**d)
        .map(|(o, _)| o.complete)
        .min()
        .unwrap_or(u64::MAX);
    for i in 0..ops.len() {
        if done[i] || ops[i].invoke > min_complete {
            continue;
        }
        if let Some(next) = step(state, ops[i].call, ops[i].ret) {
            done[i] = true;
            if search(ops, done, next, memo) {
                return true;
            }
            done[i] = false;
        }
    }
    false
}

/// Checks the history; on failure returns the first key whose operations are not
/// linearizable.
pub fn check(history: &[Operation]) -> Result<(), u32> {
    let mut by_key: BTreeMap<u32, Vec<Operation>> = BTreeMap::new();
    for op in history {
        let mut op = op.clone();
        if op.ret == Ret::Unknown {
            op.complete = u64::MAX;
        }
        by_key.entry(op.key).or_default().push(op);
    }
    for (key, mut ops) in by_key {
        ops.sort_by_key(|o| o.invoke);
        let mut done = vec![false; ops.len()];
        let mut memo = HashSet::new();
        if !search(
            &ops,
            &mut done,
            State {
                value: None,
                version: 0,
            },
            &mut memo,
        ) {
            return Err(key);
        }
    }
    Ok(())
}

#[test]
fn checker_accepts_and_rejects() {
    let op = |call, ret, invoke, complete| Operation {
        key: 0,
        call,
        ret,
        invoke,
        complete,
    };
    // Concurrent set and get: the get may see either.
    let ok = [
        op(Call::Set(1), Ret::Written { version: 1 }, 0, 10),
        op(Call::Get, Ret::Get(None), 1, 2),
        op(Call::Get, Ret::Get(Some((1, 1))), 3, 4),
        op(
            Call::Cas {
                expected: 1,
                value: 2,
            },
            Ret::Written { version: 2 },
            11,
            12,
        ),
        op(
            Call::Cas {
                expected: 1,
                value: 3,
            },
            Ret::CasFailed { actual: 2 },
            13,
            14,
        ),
    ];
    assert_eq!(check(&ok), Ok(()));
    // A stale read after a completed write is not linearizable.
    let stale = [
        op(Call::Set(1), Ret::Written { version: 1 }, 0, 1),
        op(Call::Get, Ret::Get(None), 2, 3),
    ];
    assert_eq!(check(&stale), Err(0));
    // An unknown write may show up later, or never.
    let unknown = [
        op(Call::Set(1), Ret::Unknown, 0, 1),
        op(Call::Get, Ret::Get(None), 2, 3),
        op(Call::Get, Ret::Get(Some((1, 1))), 4, 5),
    ];
    assert_eq!(check(&unknown), Ok(()));
    // ...but not disappear once seen.
    let flicker = [
        op(Call::Set(1), Ret::Unknown, 0, 1),
        op(Call::Get, Ret::Get(Some((1, 1))), 2, 3),
        op(Call::Get, Ret::Get(None), 4, 5),
    ];
    assert_eq!(check(&flicker), Err(0));
}
