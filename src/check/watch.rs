//! Checks one watcher's event stream against what the clients saw: events in revision order,
//! each (revision, key) once, each key's versions without a gap, none before the watch's
//! start, every acknowledged write under the prefix within the stream's span present at its
//! revision with its value, and every event's (key, version) carrying the value any client
//! saw for it (an acknowledged write or a read) and a value some write of the history sent.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::check::linearizability::{Call, Operation, Ret, Value};

/// One event a watcher received (puts only: the checked histories never delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The revision of the write.
    pub revision: u64,
    /// The key.
    pub key: String,
    /// The value written.
    pub value: Value,
    /// The key's version after the write.
    pub version: u64,
}

/// A (key, version) → value a client saw: an acknowledged write (with its revision) or a
/// read (without).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The key.
    pub key: String,
    /// The version.
    pub version: u64,
    /// The value at that version.
    pub value: Value,
    /// The revision, known for an acknowledged write.
    pub revision: Option<u64>,
}

/// What is wrong with an event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum WatchViolation {
    /// Event `index` comes before the revision the watch started from.
    BeforeStart {
        /// The event's index.
        index: usize,
    },
    /// Event `index` has a lower revision than the one before it, or repeats its (revision, key).
    OutOfOrder {
        /// The event's index.
        index: usize,
    },
    /// Event `index` skips versions of its key after the key's previous event.
    VersionGap {
        /// The event's index.
        index: usize,
        /// The key's version at its previous event.
        after: u64,
    },
    /// An acknowledged write within the stream's revisions that no event shows.
    Missing {
        /// The key.
        key: String,
        /// The write's revision.
        revision: u64,
    },
    /// Event `index` disagrees with what a client saw of that key and version.
    Mismatch {
        /// The event's index.
        index: usize,
    },
    /// Event `index` carries a value no write of the history sent.
    Phantom {
        /// The event's index.
        index: usize,
    },
}

/// Checks `events`, received by a watch of the keys `in_scope` accepts from revision `from`
/// and known to have covered every revision through `through`, against what clients `seen`
/// and the values any write `sent`.
pub fn check(
    from: u64,
    through: u64,
    events: &[WatchEvent],
    seen: &[Seen],
    sent: &BTreeSet<Value>,
    in_scope: impl Fn(&str) -> bool,
) -> Vec<WatchViolation> {
    let mut out = Vec::new();
    let mut last_version: BTreeMap<&str, u64> = BTreeMap::new();
    let mut shown: BTreeSet<(u64, &str)> = BTreeSet::new();
    let mut by_version: BTreeMap<(&str, u64), &Seen> = BTreeMap::new();
    let mut by_revision: BTreeMap<(&str, u64), &Seen> = BTreeMap::new();
    for s in seen {
        by_version.entry((s.key.as_str(), s.version)).or_insert(s);
        if let Some(r) = s.revision {
            by_revision.entry((s.key.as_str(), r)).or_insert(s);
        }
    }
    for (index, e) in events.iter().enumerate() {
        if e.revision < from {
            out.push(WatchViolation::BeforeStart { index });
        }
        let ordered = index == 0 || {
            let p = &events[index - 1];
            p.revision < e.revision || (p.revision == e.revision && p.key != e.key)
        };
        if !ordered || !shown.insert((e.revision, e.key.as_str())) {
            out.push(WatchViolation::OutOfOrder { index });
        }
        if let Some(after) = last_version.insert(e.key.as_str(), e.version) {
            if e.version != after + 1 {
                out.push(WatchViolation::VersionGap { index, after });
            }
        }
        let differs = |s: &&Seen| {
            s.value != e.value || s.version != e.version || s.revision.is_some_and(|r| r != e.revision)
        };
        if by_version.get(&(e.key.as_str(), e.version)).is_some_and(differs)
            || by_revision
                .get(&(e.key.as_str(), e.revision))
                .is_some_and(differs)
        {
            out.push(WatchViolation::Mismatch { index });
        }
        if !sent.contains(&e.value) {
            out.push(WatchViolation::Phantom { index });
        }
    }
    for s in seen {
        if let Some(r) = s.revision {
            if (from..=through).contains(&r) && in_scope(&s.key) && !shown.contains(&(r, s.key.as_str())) {
                out.push(WatchViolation::Missing {
                    key: s.key.clone(),
                    revision: r,
                });
            }
        }
    }
    out
}

/// What a complete watch stream says of an operation whose answer never came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Its values are in the stream: it took effect, as `ret` says, at `revision`.
    Applied {
        /// The answer it would have had.
        ret: Ret,
        /// The revision it took effect at.
        revision: u64,
    },
    /// None of its values is in the stream: it never took effect.
    Never,
}

/// Settles the writes of unknown outcome in `history` from `events`, a stream [`check`]
/// found complete and right over a span holding every write of the history (values are
/// unique to a write). A write whose values all show is applied; one none of whose values
/// show never was; anything else stays unknown. Settling only narrows what the checker may
/// assume, so it can turn a pass into a violation, never the reverse. Returns (index, what).
pub fn settle_unknown(history: &[Operation], events: &[WatchEvent]) -> Vec<(usize, Settled)> {
    let by_value: BTreeMap<Value, &WatchEvent> = events.iter().map(|e| (e.value, e)).collect();
    let mut out = Vec::new();
    for (i, op) in history.iter().enumerate() {
        if op.ret != Ret::Unknown {
            continue;
        }
        let puts: Vec<(&str, Value)> = match &op.call {
            Call::Get { .. } => continue,
            Call::Put { key, value } | Call::Cas { key, value, .. } => vec![(key.as_str(), *value)],
            Call::Txn { puts, .. } => puts.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        };
        let shown: Vec<Option<&&WatchEvent>> = puts.iter().map(|(_, v)| by_value.get(v)).collect();
        if shown.iter().all(Option::is_none) {
            out.push((i, Settled::Never));
        } else if let Some(shown) = shown.into_iter().collect::<Option<Vec<_>>>() {
            let revision = shown[0].revision;
            let fits = shown
                .iter()
                .zip(&puts)
                .all(|(e, (k, _))| e.revision == revision && e.key == *k);
            if !fits {
                continue;
            }
            let ret = match &op.call {
                Call::Txn { .. } => Ret::Txn {
                    succeeded: true,
                    versions: shown.iter().map(|e| e.version).collect(),
                },
                _ => Ret::Written {
                    version: shown[0].version,
                },
            };
            out.push((i, Settled::Applied { ret, revision }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(revision: u64, key: &str, value: Value, version: u64) -> WatchEvent {
        WatchEvent {
            revision,
            key: key.into(),
            value,
            version,
        }
    }

    fn acked(key: &str, version: u64, value: Value, revision: u64) -> Seen {
        Seen {
            key: key.into(),
            version,
            value,
            revision: Some(revision),
        }
    }

    fn run(from: u64, events: &[WatchEvent], seen: &[Seen]) -> Vec<WatchViolation> {
        let sent = (1..=10).collect();
        let through = events.last().map_or(from, |e| e.revision);
        check(from, through, events, seen, &sent, |k| k.starts_with("/w/"))
    }

    #[test]
    fn a_complete_stream_settles_writes_of_unknown_outcome() {
        let op = |call: Call| Operation {
            client: 0,
            call,
            ret: Ret::Unknown,
            invoke: 0,
            complete: 0,
        };
        let history = [
            op(Call::Put {
                key: "/w/a".into(),
                value: 1,
            }),
            op(Call::Cas {
                key: "/w/a".into(),
                expected: 1,
                value: 2,
            }),
            op(Call::Txn {
                conditions: vec![],
                puts: vec![("/w/a".into(), 3), ("/w/b".into(), 4)],
            }),
            op(Call::Get { key: "/w/a".into() }),
            op(Call::Put {
                key: "/w/b".into(),
                value: 5,
            }),
        ];
        let events = [
            ev(5, "/w/a", 1, 1),
            ev(6, "/w/a", 3, 2),
            ev(6, "/w/b", 4, 1),
            ev(7, "/w/a", 5, 3),
        ];
        assert_eq!(
            settle_unknown(&history, &events),
            vec![
                (
                    0,
                    Settled::Applied {
                        ret: Ret::Written { version: 1 },
                        revision: 5
                    }
                ),
                (1, Settled::Never),
                (
                    2,
                    Settled::Applied {
                        ret: Ret::Txn {
                            succeeded: true,
                            versions: vec![2, 1]
                        },
                        revision: 6
                    }
                ),
                // Its value shows under another key: left unknown for the checker to judge.
            ]
        );
    }

    #[test]
    fn a_complete_ordered_stream_passes() {
        let seen = [
            acked("/w/a", 1, 1, 5),
            acked("/w/b", 1, 2, 6),
            acked("/w/a", 2, 3, 8),
        ];
        // A transaction wrote /w/a and /w/b at revision 9 (outcome unknown to its client).
        let events = [
            ev(5, "/w/a", 1, 1),
            ev(6, "/w/b", 2, 1),
            ev(8, "/w/a", 3, 2),
            ev(9, "/w/a", 4, 3),
            ev(9, "/w/b", 5, 2),
        ];
        assert_eq!(run(5, &events, &seen), vec![]);
    }

    #[test]
    fn a_write_after_the_last_event_but_within_the_span_is_missing() {
        let seen = [acked("/w/a", 1, 1, 5), acked("/w/a", 2, 3, 7)];
        let sent = (1..=10).collect();
        let v = check(5, 9, &[ev(5, "/w/a", 1, 1)], &seen, &sent, |_| true);
        assert_eq!(
            v,
            vec![WatchViolation::Missing {
                key: "/w/a".into(),
                revision: 7
            }]
        );
    }

    #[test]
    fn each_fault_of_a_stream_is_named() {
        let seen = [
            acked("/w/a", 1, 1, 5),
            acked("/w/a", 2, 3, 7),
            acked("/x/c", 1, 4, 6),
        ];
        assert_eq!(
            run(5, &[ev(7, "/w/a", 3, 2)], &seen),
            vec![WatchViolation::Missing {
                key: "/w/a".into(),
                revision: 5
            }],
            "a write outside the prefix is not missing"
        );
        assert_eq!(
            run(
                5,
                &[ev(5, "/w/a", 1, 1), ev(5, "/w/a", 1, 1), ev(7, "/w/a", 3, 2)],
                &seen
            ),
            vec![
                WatchViolation::OutOfOrder { index: 1 },
                WatchViolation::VersionGap { index: 1, after: 1 }
            ]
        );
        assert_eq!(
            run(6, &[ev(7, "/w/a", 3, 2), ev(5, "/w/a", 1, 1)], &seen),
            vec![
                WatchViolation::BeforeStart { index: 1 },
                WatchViolation::OutOfOrder { index: 1 },
                WatchViolation::VersionGap { index: 1, after: 2 }
            ]
        );
        assert_eq!(
            run(
                5,
                &[ev(5, "/w/a", 1, 1), ev(6, "/w/a", 3, 2), ev(7, "/w/a", 9, 3)],
                &seen
            ),
            vec![
                WatchViolation::Mismatch { index: 1 },
                WatchViolation::Mismatch { index: 2 }
            ],
            "version 2 of /w/a was acknowledged at revision 7, not 6, and with value 3"
        );
        assert_eq!(
            run(
                5,
                &[ev(5, "/w/a", 1, 1), ev(7, "/w/a", 3, 2), ev(8, "/w/a", 11, 3)],
                &seen
            ),
            vec![WatchViolation::Phantom { index: 2 }]
        );
    }
}
