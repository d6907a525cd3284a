//! The checker on known histories, and property tests with the store's own in-memory core
//! ([`MemKv`]) as the correct register.

use proptest::prelude::*;

use super::store::{command, ret_of_read, ret_of_store_error, ret_of_written};
use super::*;
use crate::propertystore::core::{KvRead, MemKv};

fn op(client: u32, call: Call, ret: Ret, invoke: Time, complete: Time) -> Operation {
    Operation {
        client,
        call,
        ret,
        invoke,
        complete,
    }
}

fn get(k: &str) -> Call {
    Call::Get { key: k.into() }
}

fn put(k: &str, value: Value) -> Call {
    Call::Put { key: k.into(), value }
}

fn cas(k: &str, expected: u64, value: Value) -> Call {
    Call::Cas {
        key: k.into(),
        expected,
        value,
    }
}

fn saw(value: Value, version: u64) -> Ret {
    Ret::Get(Some(Versioned { value, version }))
}

fn written(version: u64) -> Ret {
    Ret::Written { version }
}

fn violation_keys(v: &Verdict) -> Vec<String> {
    match v {
        Verdict::NotLinearizable(v) => v.keys.clone(),
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn concurrent_writes_reads_and_cas_that_one_order_explains_are_linearizable() {
    let h = [
        op(0, put("/a", 1), written(1), 0, 10),
        op(1, get("/a"), Ret::Get(None), 1, 2),
        op(2, get("/a"), saw(1, 1), 3, 4),
        op(0, cas("/a", 1, 2), written(2), 11, 12),
        op(1, cas("/a", 1, 3), Ret::CasFailed { actual: 2 }, 13, 14),
        op(2, get("/b"), Ret::Get(None), 0, 20),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_not_linearizable() {
    let h = [
        op(0, put("/a", 1), written(1), 0, 1),
        op(0, put("/a", 2), written(2), 2, 3),
        op(1, get("/a"), saw(1, 1), 4, 5),
    ];
    let v = check(&h);
    assert_eq!(violation_keys(&v), vec!["/a".to_string()]);
    let Verdict::NotLinearizable(v) = v else {
        unreachable!()
    };
    assert_eq!(v.ops, vec![0, 1, 2]);
    assert_eq!(v.unplaced, vec![2], "the stale read is what cannot be placed");
}

#[test]
fn a_lost_write_is_not_linearizable() {
    // Two acknowledged writes that both claim version 1: one overwrote the other unseen.
    let twice = [
        op(0, put("/a", 1), written(1), 0, 5),
        op(1, put("/a", 2), written(1), 0, 5),
    ];
    assert_eq!(violation_keys(&check(&twice)), vec!["/a".to_string()]);
    // An acknowledged write that a later read does not show.
    let gone = [
        op(0, put("/a", 1), written(1), 0, 1),
        op(1, get("/a"), Ret::Get(None), 2, 3),
    ];
    assert_eq!(violation_keys(&check(&gone)), vec!["/a".to_string()]);
}

#[test]
fn a_read_of_a_value_never_written_is_not_linearizable() {
    let h = [
        op(0, put("/a", 1), written(1), 0, 10),
        op(1, get("/a"), saw(7, 1), 1, 2),
    ];
    assert_eq!(violation_keys(&check(&h)), vec!["/a".to_string()]);
}

#[test]
fn cas_success_on_a_stale_version_is_not_linearizable() {
    let h = [
        op(0, put("/a", 1), written(1), 0, 1),
        op(0, put("/a", 2), written(2), 2, 3),
        op(1, cas("/a", 1, 3), written(2), 4, 5),
    ];
    assert_eq!(violation_keys(&check(&h)), vec!["/a".to_string()]);
    // A failed cas that names a version the key never had at that time.
    let h = [
        op(0, put("/a", 1), written(1), 0, 1),
        op(1, cas("/a", 0, 3), Ret::CasFailed { actual: 0 }, 2, 3),
    ];
    assert_eq!(violation_keys(&check(&h)), vec!["/a".to_string()]);
}

#[test]
fn an_unknown_write_may_take_effect_late_or_never_but_not_vanish_once_seen() {
    let late = [
        op(0, put("/a", 1), Ret::Unknown, 0, 1),
        op(1, get("/a"), Ret::Get(None), 2, 3),
        op(1, get("/a"), saw(1, 1), 4, 5),
    ];
    assert_eq!(check(&late), Verdict::Linearizable);
    let never = [
        op(0, put("/a", 1), Ret::Unknown, 0, 1),
        op(1, put("/a", 2), written(1), 2, 3),
        op(1, get("/a"), saw(2, 1), 4, 5),
    ];
    assert_eq!(check(&never), Verdict::Linearizable);
    let flicker = [
        op(0, put("/a", 1), Ret::Unknown, 0, 1),
        op(1, get("/a"), saw(1, 1), 2, 3),
        op(1, get("/a"), Ret::Get(None), 4, 5),
    ];
    assert_eq!(violation_keys(&check(&flicker)), vec!["/a".to_string()]);
    // An unknown write cannot take effect before it was sent.
    let early = [
        op(1, get("/a"), saw(1, 1), 0, 1),
        op(0, put("/a", 1), Ret::Unknown, 2, 3),
    ];
    assert_eq!(violation_keys(&check(&early)), vec!["/a".to_string()]);
}

#[test]
fn a_transaction_seen_half_applied_is_not_linearizable() {
    let txn = Call::Txn {
        conditions: vec![("/a".into(), 0)],
        puts: vec![("/a".into(), 1), ("/b".into(), 2)],
    };
    let whole = [
        op(
            0,
            txn.clone(),
            Ret::Txn {
                succeeded: true,
                versions: vec![1, 1],
            },
            0,
            10,
        ),
        op(1, get("/b"), saw(2, 1), 1, 2),
        op(1, get("/a"), saw(1, 1), 3, 4),
    ];
    assert_eq!(check(&whole), Verdict::Linearizable);
    let half = [
        op(
            0,
            txn,
            Ret::Txn {
                succeeded: true,
                versions: vec![1, 1],
            },
            0,
            10,
        ),
        op(1, get("/b"), saw(2, 1), 1, 2),
        op(1, get("/a"), Ret::Get(None), 3, 4),
    ];
    assert_eq!(
        violation_keys(&check(&half)),
        vec!["/a".to_string(), "/b".to_string()],
        "the transaction joins its keys into one partition"
    );
}

#[test]
fn each_key_is_checked_alone_and_the_bad_one_is_named() {
    let mut h: Vec<Operation> = (0..40u64)
        .map(|i| {
            op(
                i as u32 % 4,
                put(&format!("/k{}", i % 8), i + 1),
                Ret::Unknown,
                i,
                i + 100,
            )
        })
        .collect();
    h.push(op(9, put("/bad", 1), written(1), 0, 1));
    h.push(op(9, get("/bad"), Ret::Get(None), 2, 3));
    assert_eq!(violation_keys(&check(&h)), vec!["/bad".to_string()]);
}

#[test]
fn an_answer_before_the_call_is_malformed() {
    let h = [op(0, get("/a"), Ret::Get(None), 5, 4)];
    assert_eq!(check(&h), Verdict::Malformed { index: 0 });
}

#[test]
fn a_search_out_of_budget_is_undecided_not_linearizable() {
    let h: Vec<Operation> = (0..30u64)
        .map(|i| op(0, get("/a"), saw(i + 1, 1), 0, 100))
        .collect();
    assert!(matches!(
        check_with_budget(&h, 5),
        Verdict::Undecided { steps: 5, .. }
    ));
}

/// A random call over three keys; values come from `value`.
fn arb_call() -> impl Strategy<Value = (u8, u8, u8, u8)> {
    (0u8..4, 0u8..3, 0u8..3, 0u8..3)
}

fn make_call((kind, k, k2, e): (u8, u8, u8, u8), value: Value) -> Call {
    let key = |k: u8| format!("/k{k}");
    match kind {
        0 => get(&key(k)),
        1 => put(&key(k), value),
        2 => cas(&key(k), u64::from(e), value),
        _ => Call::Txn {
            conditions: vec![(key(k), u64::from(e))],
            puts: vec![(key(k2), value), (key(k), value + 1_000_000)],
        },
    }
}

/// Applies `call` to the store's in-memory core: the answer a correct store gives
/// (`None`: refused without effect).
fn apply(kv: &mut MemKv, call: &Call) -> Option<Ret> {
    match command(call) {
        None => {
            let Call::Get { key } = call else { unreachable!() };
            Some(ret_of_read(kv.get(key).unwrap().as_ref()))
        }
        Some(cmd) => match kv.apply(&cmd, 1_000) {
            Ok(w) => ret_of_written(call, &w),
            Err(e) => ret_of_store_error(call, &e),
        },
    }
}

/// A history from a correct store: each operation takes effect at a point inside its own
/// interval, in the order of those points; `unknown` ones lose their answer (and with
/// `dropped` never took effect at all).
/// One generated operation: its call's shape, start, effect point and tail after it, whether
/// its answer is lost, and whether it then never took effect.
type Planned = ((u8, u8, u8, u8), u16, u16, u16, bool, bool);

fn concurrent_history(ops: &[Planned]) -> Vec<Operation> {
    let mut timed: Vec<(u64, usize)> = ops
        .iter()
        .enumerate()
        .map(|(i, (_, start, point, _, _, _))| (u64::from(*start) + u64::from(*point), i))
        .collect();
    timed.sort_unstable();
    let mut kv = MemKv::default();
    let mut history = Vec::new();
    for (_, i) in timed {
        let (shape, start, point, tail, unknown, dropped) = ops[i];
        let call = make_call(shape, i as Value + 1);
        let ret = if unknown && dropped {
            Some(Ret::Unknown)
        } else {
            apply(&mut kv, &call).map(|r| if unknown { Ret::Unknown } else { r })
        };
        if let Some(ret) = ret {
            let invoke = u64::from(start);
            history.push(op(
                i as u32,
                call,
                ret,
                invoke,
                invoke + u64::from(point) + u64::from(tail),
            ));
        }
    }
    history
}

/// The history of `calls` applied one after another to the store's in-memory core, and the
/// core after them.
fn sequential_history(calls: Vec<(u8, u8, u8, u8)>) -> (MemKv, Vec<Operation>) {
    let mut kv = MemKv::default();
    let mut history = Vec::new();
    for (i, shape) in calls.into_iter().enumerate() {
        let call = make_call(shape, i as Value + 1);
        if let Some(ret) = apply(&mut kv, &call) {
            let t = 10 * i as u64;
            history.push(op(0, call, ret, t, t + 5));
        }
    }
    (kv, history)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_sequential_histories_of_the_store_are_linearizable(calls in prop::collection::vec(arb_call(), 1..60)) {
        let (_, history) = sequential_history(calls);
        prop_assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn random_concurrent_histories_of_a_correct_store_are_linearizable(
        ops in prop::collection::vec((arb_call(), 0u16..400, 0u16..60, 0u16..60, prop::bool::weighted(0.1), any::<bool>()), 1..50)
    ) {
        let history = concurrent_history(&ops);
        prop_assert_eq!(check(&history), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_planted_after_a_sequential_history_is_caught(
        calls in prop::collection::vec(arb_call(), 1..40), pick in any::<prop::sample::Index>()
    ) {
        let (kv, mut history) = sequential_history(calls);
        // (key, version) of every version a key had before its last.
        let mut versions = Vec::new();
        for (key, rec) in &kv.keys {
            for v in 1..rec.stat.version {
                versions.push((key.clone(), v));
            }
        }
        prop_assume!(!versions.is_empty());
        let (key, old) = versions[pick.index(versions.len())].clone();
        // The value that key had at version `old`: found by replaying the acknowledged answers.
        let value = history.iter().find_map(|o| match (&o.call, &o.ret) {
            (Call::Put { key: k, value } | Call::Cas { key: k, value, .. }, Ret::Written { version }) if *k == key && *version == old => Some(*value),
            (Call::Txn { puts, .. }, Ret::Txn { succeeded: true, versions }) => puts.iter().zip(versions).rev().find(|((k, _), v)| *k == key && **v == old).map(|((_, value), _)| *value),
            _ => None,
        });
        let value = value.expect("every version was written by a recorded write");
        let end = history.last().map_or(0, |o| o.complete) + 1;
        history.push(op(1, get(&key), saw(value, old), end, end + 1));
        prop_assert!(matches!(check(&history), Verdict::NotLinearizable(_)));
    }
}
