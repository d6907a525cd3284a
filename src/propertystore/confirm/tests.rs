use std::collections::BTreeSet;
use std::net::SocketAddr;

use openraft::{BasicNode, CommittedLeaderId, EntryPayload, LogId, Membership};

use super::*;
use crate::propertystore::core::{Batch, Cmp, Condition, Stat, Txn};

const KEY: &str = "/C/LIVEINSTANCES/i1";

fn set(path: &str) -> Op {
    Op::Set {
        path: path.into(),
        value: b"v".to_vec(),
        expected_version: None,
    }
}

fn create(path: &str) -> Op {
    Op::Create {
        path: path.into(),
        value: b"v".to_vec(),
    }
}

fn delete(path: &str, recursive: bool) -> Op {
    Op::Delete {
        path: path.into(),
        expected_version: None,
        recursive,
    }
}

fn txn(success: Vec<Op>, failure: Vec<Op>) -> Command {
    Command::Txn(Txn {
        conditions: vec![Condition::Exists { path: KEY.into() }],
        success,
        failure,
    })
}

fn normal(cmds: Vec<Command>) -> EntryPayload<TypeConfig> {
    EntryPayload::Normal(Batch(cmds))
}

fn log_id(term: u64, index: u64) -> LogId<ReplicaId> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn record(value: &[u8]) -> Record {
    Record {
        value: value.to_vec(),
        stat: Stat {
            version: 1,
            create_revision: 1,
            mod_revision: 1,
        },
    }
}

#[test]
fn an_op_changes_the_key_it_names_and_a_delete_of_an_ancestor_covers_it() {
    assert!(op_may_change(&set(KEY), KEY));
    assert!(op_may_change(&create(KEY), KEY));
    assert!(op_may_change(&delete(KEY, false), KEY));
    assert!(op_may_change(&delete(KEY, true), KEY));
    // Ancestors: a recursive delete removes the key; the root covers everything.
    assert!(op_may_change(&delete("/C/LIVEINSTANCES", true), KEY));
    assert!(op_may_change(&delete("/C", true), KEY));
    assert!(op_may_change(&delete("/", true), KEY));
    // A plain delete of an ancestor fails while the key exists; still counted ("may").
    assert!(op_may_change(&delete("/C/LIVEINSTANCES", false), KEY));
    // Siblings sharing a prefix of the name, descendants and other keys do not.
    assert!(!op_may_change(&set("/C/LIVEINSTANCES/i10"), KEY));
    assert!(!op_may_change(&delete("/C/LIVEINSTANCES/i10", true), KEY));
    assert!(!op_may_change(&delete("/C/LIVE", true), KEY));
    assert!(!op_may_change(&delete(&format!("{KEY}/child"), true), KEY));
    assert!(!op_may_change(&set(&format!("{KEY}/child")), KEY));
    assert!(!op_may_change(&create("/C/LIVEINSTANCES/i2"), KEY));
}

#[test]
fn a_transaction_changes_the_key_from_either_branch_and_never_from_its_conditions() {
    assert!(command_may_change(&txn(vec![delete(KEY, false)], vec![]), KEY));
    // The failure branch runs when a condition fails: not known before it applies.
    assert!(command_may_change(&txn(vec![set("/other")], vec![set(KEY)]), KEY));
    let reads_only = Command::Txn(Txn {
        conditions: vec![
            Condition::Exists { path: KEY.into() },
            Condition::Value {
                path: KEY.into(),
                cmp: Cmp::Eq,
                value: b"v".to_vec(),
            },
        ],
        success: vec![set("/other")],
        failure: vec![delete("/other", false)],
    });
    assert!(!command_may_change(&reads_only, KEY));
    assert!(!command_may_change(&Command::Compact { below: 10 }, KEY));
}

#[test]
fn an_entry_changes_the_key_when_any_command_of_its_batch_does() {
    let membership = Membership::<ReplicaId, BasicNode>::new(vec![BTreeSet::from([1, 2, 3])], ());
    assert!(!payload_may_change(&EntryPayload::Blank, KEY));
    assert!(!payload_may_change(&EntryPayload::Membership(membership), KEY));
    assert!(!payload_may_change(&normal(vec![]), KEY));
    let unrelated = Command::Txn(Txn::single(set("/other")));
    assert!(!payload_may_change(&normal(vec![unrelated.clone()]), KEY));
    let touching = Command::Txn(Txn::single(delete(KEY, false)));
    assert!(payload_may_change(&normal(vec![unrelated, touching]), KEY));
}

/// Runs a scan after `applied` over `(index, payload)` and returns its outcome.
fn scan(
    applied: Option<LogId<ReplicaId>>,
    max: usize,
    entries: &[(u64, Result<EntryPayload<TypeConfig>, String>)],
) -> Option<Verdict> {
    let mut s = LogScan::new(KEY, applied, max);
    for (index, payload) in entries {
        if !s.offer(*index, payload.as_ref().map_err(Clone::clone)) {
            break;
        }
    }
    s.finish()
}

#[test]
fn the_log_scan_refuses_an_unapplied_change_a_gap_an_unreadable_entry_and_too_many() {
    let other = || Ok(normal(vec![Command::Txn(Txn::single(set("/other")))]));
    let change = || Ok(normal(vec![Command::Txn(Txn::single(delete(KEY, false)))]));
    let applied = Some(log_id(2, 10));
    // Nothing after the applied index, or nothing that touches the key.
    assert_eq!(scan(applied, 100, &[]), None);
    assert_eq!(
        scan(applied, 100, &[(11, other()), (12, Ok(EntryPayload::Blank))]),
        None
    );
    // Entries at or below the applied index are in the state machine already.
    assert_eq!(
        scan(applied, 100, &[(9, change()), (10, change()), (11, other())]),
        None
    );
    // An unapplied change of the key, even the last entry.
    assert_eq!(
        scan(applied, 100, &[(11, other()), (12, change())]),
        Some(Verdict::Pending { index: 12 })
    );
    // From an empty state machine, the first entry is index 0.
    assert_eq!(
        scan(None, 100, &[(0, change())]),
        Some(Verdict::Pending { index: 0 })
    );
    // A gap right after the applied index, or further on.
    assert!(matches!(
        scan(applied, 100, &[(12, other())]),
        Some(Verdict::Unsure { .. })
    ));
    assert!(matches!(
        scan(applied, 100, &[(11, other()), (13, other())]),
        Some(Verdict::Unsure { .. })
    ));
    // An entry that cannot be decoded may be anything.
    assert!(matches!(
        scan(applied, 100, &[(11, Err("bad envelope".into()))]),
        Some(Verdict::Unsure { .. })
    ));
    // More unapplied entries than the cap: refused even if none touches the key.
    let many: Vec<_> = (11..14).map(|i| (i, other())).collect();
    assert_eq!(scan(applied, 3, &many), None);
    let more: Vec<_> = (11..15).map(|i| (i, other())).collect();
    assert!(matches!(scan(applied, 3, &more), Some(Verdict::Unsure { .. })));
    // A refusal of the log itself.
    let mut s = LogScan::new(KEY, applied, 10);
    assert!(!s.refuse("the log is unreadable".into()));
    assert!(matches!(s.finish(), Some(Verdict::Unsure { .. })));
}

#[test]
fn a_replica_confirms_only_the_exact_value_with_nothing_pending_as_a_voter() {
    let v = b"session-7";
    assert_eq!(decide(Some(&record(v)), v, None, true), Verdict::Confirmed);
    assert_eq!(decide(None, v, None, true), Verdict::Differs);
    assert_eq!(
        decide(Some(&record(b"session-8")), v, None, true),
        Verdict::Differs
    );
    assert_eq!(
        decide(Some(&record(b"session-")), v, None, true),
        Verdict::Differs
    );
    assert_eq!(
        decide(Some(&record(v)), v, Some(Verdict::Pending { index: 12 }), true),
        Verdict::Pending { index: 12 }
    );
    assert_eq!(decide(Some(&record(v)), v, None, false), Verdict::NotVoter);
    // A definite "no" wins over the other refusals.
    assert_eq!(
        decide(None, v, Some(Verdict::Pending { index: 12 }), false),
        Verdict::Differs
    );
}

fn addr(id: ReplicaId) -> SocketAddr {
    format!("127.0.0.1:70{id:02}").parse().unwrap()
}

fn voters(term: u64, index: u64, configs: &[&[ReplicaId]]) -> Voters {
    let ids: BTreeSet<ReplicaId> = configs.iter().flat_map(|c| c.iter().copied()).collect();
    Voters {
        log_id: Some(log_id(term, index)),
        configs: configs.iter().map(|c| c.to_vec()).collect(),
        addrs: ids.into_iter().map(|id| (id, addr(id).to_string())).collect(),
    }
}

fn answer(replica: ReplicaId, verdict: Verdict, v: &Voters) -> Confirmation {
    Confirmation {
        replica,
        verdict,
        voters: v.clone(),
    }
}

#[test]
fn a_majority_of_voters_confirms_and_a_minority_or_a_silent_majority_does_not() {
    let v = voters(1, 1, &[&[1, 2, 3]]);
    let mut t = Tally::new(&[addr(1), addr(2), addr(3)]);
    assert_eq!(t.to_ask(), vec![addr(1), addr(2), addr(3)]);
    assert_eq!(t.decision(), Decision::Undecided);
    t.answered(addr(1), answer(1, Verdict::Confirmed, &v));
    assert_eq!(t.decision(), Decision::Undecided);
    assert!(t.to_ask().is_empty(), "the voters named were all asked already");
    t.answered(addr(2), answer(2, Verdict::Confirmed, &v));
    assert_eq!(t.decision(), Decision::Confirmed);
    assert!(t.waiting(), "replica 3 was not needed");

    // One confirms, one refuses (a change pending there), one cannot be reached.
    let mut t = Tally::new(&[addr(1), addr(2), addr(3)]);
    t.to_ask();
    t.answered(addr(1), answer(1, Verdict::Confirmed, &v));
    t.answered(addr(2), answer(2, Verdict::Pending { index: 5 }, &v));
    assert_eq!(t.decision(), Decision::Undecided);
    t.failed(addr(3));
    assert_eq!(t.decision(), Decision::Refuted);

    // Two unreachable: refuted without waiting for the third.
    let mut t = Tally::new(&[addr(1), addr(2), addr(3)]);
    t.to_ask();
    t.failed(addr(2));
    t.failed(addr(3));
    assert_eq!(t.decision(), Decision::Undecided, "no membership known yet");
    t.answered(addr(1), answer(1, Verdict::Confirmed, &v));
    assert_eq!(t.decision(), Decision::Refuted);

    // A replica whose applied state holds something else is one refusal: a lagging
    // replica does not outvote two that confirm, and two such replicas decide at once.
    let mut t = Tally::new(&[addr(1), addr(2), addr(3)]);
    t.to_ask();
    t.answered(addr(3), answer(3, Verdict::Differs, &v));
    assert_eq!(t.decision(), Decision::Undecided);
    t.answered(addr(1), answer(1, Verdict::Confirmed, &v));
    t.answered(addr(2), answer(2, Verdict::Confirmed, &v));
    assert_eq!(t.decision(), Decision::Confirmed);
    let mut t = Tally::new(&[addr(1), addr(2), addr(3)]);
    t.to_ask();
    t.answered(addr(3), answer(3, Verdict::Differs, &v));
    t.answered(addr(2), answer(2, Verdict::Differs, &v));
    assert_eq!(t.decision(), Decision::Refuted);
}

#[test]
fn only_confirmations_of_the_newest_membership_s_voters_count_once_each() {
    let old = voters(1, 1, &[&[1, 2, 3]]);
    let new = voters(2, 40, &[&[3, 4, 5]]);
    let mut t = Tally::new(&[addr(1), addr(2), addr(3)]);
    t.to_ask();
    t.answered(addr(1), answer(1, Verdict::Confirmed, &old));
    t.answered(addr(2), answer(2, Verdict::Confirmed, &old));
    assert_eq!(
        t.decision(),
        Decision::Confirmed,
        "all the answers know the old membership"
    );
    // A newer membership arrives: 1 and 2 are no longer voters.
    t.answered(addr(3), answer(3, Verdict::Confirmed, &new));
    assert_eq!(t.decision(), Decision::Undecided);
    // The new voters' addresses are asked too.
    assert_eq!(t.to_ask(), vec![addr(4), addr(5)]);
    // The same replica answering at a second address counts once.
    t.answered(addr(5), answer(3, Verdict::Confirmed, &new));
    assert_eq!(t.decision(), Decision::Undecided);
    t.answered(addr(4), answer(4, Verdict::Confirmed, &new));
    assert_eq!(t.decision(), Decision::Confirmed);

    // An older membership answered later does not replace the newer one.
    let mut t = Tally::new(&[addr(3), addr(1), addr(2)]);
    t.to_ask();
    t.answered(addr(3), answer(3, Verdict::NotVoter, &new));
    t.answered(addr(1), answer(1, Verdict::Confirmed, &old));
    t.answered(addr(2), answer(2, Verdict::Confirmed, &old));
    assert_ne!(t.decision(), Decision::Confirmed);
}

#[test]
fn a_joint_membership_needs_a_majority_of_each_configuration() {
    let joint = voters(2, 9, &[&[1, 2, 3], &[3, 4, 5]]);
    let mut t = Tally::new(&[addr(1), addr(2)]);
    t.to_ask();
    t.answered(addr(1), answer(1, Verdict::Confirmed, &joint));
    t.answered(addr(2), answer(2, Verdict::Confirmed, &joint));
    assert_eq!(
        t.decision(),
        Decision::Undecided,
        "the second configuration has none yet"
    );
    assert_eq!(t.to_ask(), vec![addr(3), addr(4), addr(5)]);
    t.answered(addr(3), answer(3, Verdict::Confirmed, &joint));
    assert_eq!(t.decision(), Decision::Undecided);
    t.failed(addr(4));
    t.failed(addr(5));
    assert_eq!(t.decision(), Decision::Refuted);
}
