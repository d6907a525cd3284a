//! strand's envelope (`codec`), the store protocol (`STORE` and `RAFT` requests and
//! answers) and the values a replica reads back from its own disk (records, events, log
//! entries, batches).

use openraft::{CommittedLeaderId, LogId};
use proptest::prelude::*;
use strand::codec::{self, CodecError};
use strand::propertystore::confirm::{Confirmation, Verdict, Voters};
use strand::propertystore::core::MemKv;
use strand::propertystore::protocol::{RaftRequest, RaftResponse, ReadMode, StoreRequest, StoreResponse};
use strand::propertystore::{
    Batch, Cmp, Command, Condition, Event, EventKind, Op, Position, Record, Stat, StoreError, Txn,
    TypeConfig, Written,
};

use super::alloc::{peak_bytes, DECODE_BUDGET};
use super::mutate::{mutated, mutations, varint};

/// Decodes `bytes` as every type a replica reads from the wire or its disk; each must be a
/// value or a [`CodecError`], within [`DECODE_BUDGET`] bytes held.
fn decode_all(bytes: &[u8]) -> Result<(), TestCaseError> {
    fn one<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
        let (r, held) = peak_bytes(|| codec::decode::<T>(bytes).map(drop));
        prop_assert!(
            held <= DECODE_BUDGET.max(bytes.len() * 64),
            "decoding {} bytes as {} held {held} bytes",
            bytes.len(),
            std::any::type_name::<T>()
        );
        if let Err(e) = r {
            prop_assert!(!e.to_string().is_empty());
        }
        Ok(())
    }
    one::<StoreRequest>(bytes)?;
    one::<StoreResponse>(bytes)?;
    one::<RaftRequest>(bytes)?;
    one::<RaftResponse>(bytes)?;
    one::<Record>(bytes)?;
    one::<Event>(bytes)?;
    one::<Batch>(bytes)?;
    one::<openraft::Entry<TypeConfig>>(bytes)?;
    Ok(())
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof!["/[a-z]{1,6}(/[a-zA-Z0-9_]{1,6}){0,3}", ".{0,12}"]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..48)
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop_oneof![Just(Cmp::Eq), Just(Cmp::Ne), Just(Cmp::Lt), Just(Cmp::Gt)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (path(), value()).prop_map(|(path, value)| Op::Create { path, value }),
        (path(), value(), any::<Option<u64>>()).prop_map(|(path, value, expected_version)| Op::Set {
            path,
            value,
            expected_version
        }),
        (path(), any::<Option<u64>>(), any::<bool>()).prop_map(|(path, expected_version, recursive)| {
            Op::Delete {
                path,
                expected_version,
                recursive,
            }
        }),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        (path(), cmp(), any::<u64>()).prop_map(|(path, cmp, version)| Condition::Version {
            path,
            cmp,
            version
        }),
        path().prop_map(|path| Condition::Exists { path }),
        path().prop_map(|path| Condition::Missing { path }),
        (path(), cmp(), value()).prop_map(|(path, cmp, value)| Condition::Value { path, cmp, value }),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => (
            proptest::collection::vec(condition(), 0..3),
            proptest::collection::vec(op(), 0..4),
            proptest::collection::vec(op(), 0..2),
        )
            .prop_map(|(conditions, success, failure)| Command::Txn(Txn { conditions, success, failure })),
        1 => any::<u64>().prop_map(|below| Command::Compact { below }),
    ]
}

fn mode() -> impl Strategy<Value = ReadMode> {
    prop_oneof![Just(ReadMode::Linearizable), Just(ReadMode::Serializable)]
}

fn position() -> impl Strategy<Value = Position> {
    (any::<u64>(), any::<u32>()).prop_map(|(revision, seq)| Position { revision, seq })
}

fn request() -> impl Strategy<Value = StoreRequest> {
    prop_oneof![
        command().prop_map(StoreRequest::Write),
        (path(), mode()).prop_map(|(path, mode)| StoreRequest::Get { path, mode }),
        (path(), mode()).prop_map(|(path, mode)| StoreRequest::Children { path, mode }),
        (path(), any::<u64>(), any::<u32>(), any::<u32>()).prop_map(|(prefix, from, max, wait_ms)| {
            StoreRequest::Watch {
                prefix,
                from,
                max,
                wait_ms,
            }
        }),
        Just(StoreRequest::Status),
        (any::<u64>(), ".{0,20}").prop_map(|(id, addr)| StoreRequest::AddReplica { id, addr }),
        any::<u64>().prop_map(|id| StoreRequest::RemoveReplica { id }),
        proptest::collection::vec(command(), 0..4).prop_map(StoreRequest::Writes),
        (path(), mode()).prop_map(|(prefix, mode)| StoreRequest::Range { prefix, mode }),
        (path(), position(), any::<u32>(), any::<u32>()).prop_map(|(prefix, from, max, wait_ms)| {
            StoreRequest::WatchPage {
                prefix,
                from,
                max,
                wait_ms,
            }
        }),
        (".{0,12}", any::<u32>()).prop_map(|(cluster, max)| StoreRequest::Audit { cluster, max }),
        (path(), value()).prop_map(|(path, value)| StoreRequest::ConfirmHeld { path, value }),
    ]
}

fn confirmation() -> impl Strategy<Value = Confirmation> {
    let verdict = prop_oneof![
        Just(Verdict::Confirmed),
        Just(Verdict::Differs),
        any::<u64>().prop_map(|index| Verdict::Pending { index }),
        Just(Verdict::NotVoter),
        ".{0,20}".prop_map(|reason| Verdict::Unsure { reason }),
    ];
    let log_id = (any::<u64>(), any::<u64>(), any::<u64>())
        .prop_map(|(term, node, index)| LogId::new(CommittedLeaderId::new(term, node), index));
    let voters = (
        proptest::option::of(log_id),
        proptest::collection::vec(proptest::collection::vec(any::<u64>(), 0..4), 0..3),
        proptest::collection::vec((any::<u64>(), ".{0,12}"), 0..4),
    )
        .prop_map(|(log_id, configs, addrs)| Voters {
            log_id,
            configs,
            addrs,
        });
    (any::<u64>(), verdict, voters).prop_map(|(replica, verdict, voters)| Confirmation {
        replica,
        verdict,
        voters,
    })
}

fn stat() -> impl Strategy<Value = Stat> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(version, create_revision, mod_revision)| Stat {
        version,
        create_revision,
        mod_revision,
    })
}

fn record() -> impl Strategy<Value = Record> {
    (value(), stat()).prop_map(|(value, stat)| Record { value, stat })
}

fn event() -> impl Strategy<Value = Event> {
    (
        any::<u64>(),
        path(),
        prop_oneof![
            (value(), stat()).prop_map(|(value, stat)| EventKind::Put { value, stat }),
            Just(EventKind::Delete)
        ],
    )
        .prop_map(|(revision, path, kind)| Event { revision, path, kind })
}

fn response() -> impl Strategy<Value = StoreResponse> {
    let leaf = prop_oneof![
        (any::<u64>(), any::<bool>()).prop_map(|(revision, succeeded)| StoreResponse::Written(Written {
            revision,
            succeeded,
            ops: vec![]
        })),
        path().prop_map(|path| StoreResponse::Error(StoreError::NotFound { path })),
        (proptest::option::of(record()), any::<u64>())
            .prop_map(|(record, revision)| StoreResponse::Value { record, revision }),
        (proptest::collection::vec(".{0,8}", 0..4), any::<u64>())
            .prop_map(|(names, revision)| StoreResponse::Children { names, revision }),
        (proptest::collection::vec(event(), 0..4), any::<u64>())
            .prop_map(|(events, next)| StoreResponse::Events { events, next }),
        proptest::option::of((any::<u64>(), ".{0,12}"))
            .prop_map(|leader| StoreResponse::NotLeader { leader }),
        ".{0,20}".prop_map(|reason| StoreResponse::OutcomeUnknown { reason }),
        ".{0,20}".prop_map(|reason| StoreResponse::Unavailable { reason }),
        proptest::collection::vec(any::<u64>(), 0..5)
            .prop_map(|voters| StoreResponse::MembershipChanged { voters }),
        (proptest::collection::vec((path(), record()), 0..4), any::<u64>())
            .prop_map(|(entries, revision)| StoreResponse::Range { entries, revision }),
        (proptest::collection::vec(event(), 0..4), position())
            .prop_map(|(events, next)| StoreResponse::EventPage { events, next }),
        confirmation().prop_map(StoreResponse::Confirmation),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        proptest::collection::vec(inner, 0..4).prop_map(StoreResponse::Many)
    })
}

proptest! {
    #![proptest_config(super::config(512))]

    #[test]
    fn any_bytes_decode_to_a_value_or_a_clear_error(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        decode_all(&bytes)?;
        // The same bytes behind a valid envelope header reach the payload decoders.
        let mut framed = b"ST\x01".to_vec();
        framed.extend_from_slice(&bytes);
        decode_all(&framed)?;
    }

    #[test]
    fn store_requests_round_trip(req in request()) {
        let bytes = codec::encode(&req).unwrap();
        let back: StoreRequest = codec::decode(&bytes).unwrap();
        prop_assert_eq!(codec::encode(&back).unwrap(), bytes);
        prop_assert_eq!(format!("{back:?}"), format!("{req:?}"));
    }

    #[test]
    fn store_answers_and_disk_values_round_trip(resp in response(), rec in record(), ev in event(), batch in proptest::collection::vec(command(), 0..3)) {
        let bytes = codec::encode(&resp).unwrap();
        let back: StoreResponse = codec::decode(&bytes).unwrap();
        prop_assert_eq!(format!("{back:?}"), format!("{resp:?}"));
        prop_assert_eq!(codec::decode::<Record>(&codec::encode(&rec).unwrap()).unwrap(), rec);
        prop_assert_eq!(codec::decode::<Event>(&codec::encode(&ev).unwrap()).unwrap(), ev);
        let batch = Batch(batch);
        prop_assert_eq!(codec::decode::<Batch>(&codec::encode(&batch).unwrap()).unwrap(), batch);
    }

    #[test]
    fn mutated_requests_and_answers_never_panic_nor_allocate_what_they_declare(
        req in request(),
        resp in response(),
        ms in mutations(),
        keep_header in any::<bool>(),
    ) {
        let skip = if keep_header { 3 } else { 0 };
        decode_all(&mutated(&codec::encode(&req).unwrap(), &ms, skip))?;
        decode_all(&mutated(&codec::encode(&resp).unwrap(), &ms, skip))?;
    }
}

/// The tag of `StoreRequest::Writes` (its position among the variants).
const WRITES: u64 = 7;

#[test]
fn a_writes_frame_declaring_billions_of_commands_in_ten_bytes_is_refused_without_allocating_them() {
    for count in [u32::MAX as u64, 1 << 40, u64::MAX] {
        let mut bytes = b"ST\x01".to_vec();
        bytes.extend(varint(WRITES));
        bytes.extend(varint(count));
        let (r, held) = peak_bytes(|| codec::decode::<StoreRequest>(&bytes));
        assert!(matches!(r, Err(CodecError::Malformed { .. })), "{count}: {r:?}");
        assert!(
            held <= DECODE_BUDGET,
            "{count} declared commands: {held} bytes held"
        );
    }
    // The tag is right: one real command in the same shape decodes.
    let mut bytes = b"ST\x01".to_vec();
    bytes.extend(varint(WRITES));
    bytes.extend(varint(1));
    bytes.extend(&codec::encode(&Command::Compact { below: 3 }).unwrap()[3..]);
    assert!(matches!(codec::decode::<StoreRequest>(&bytes), Ok(StoreRequest::Writes(c)) if c.len() == 1));
}

#[test]
fn a_value_declaring_four_gib_in_a_few_bytes_is_refused_without_allocating_it() {
    // A stored record: value (bytes), then stat.
    let mut bytes = b"ST\x01".to_vec();
    bytes.extend(varint(u32::MAX as u64));
    bytes.extend_from_slice(b"abc");
    let (r, held) = peak_bytes(|| codec::decode::<Record>(&bytes));
    assert!(matches!(r, Err(CodecError::Malformed { .. })), "{r:?}");
    assert!(held <= DECODE_BUDGET, "{held} bytes held");
}

/// Applies `cmds` to a fresh in-memory store (the state machine every replica runs on what
/// the log commits): each is applied or fails, and a failed one changes nothing.
fn apply_all(cmds: &[Command]) -> Result<(), TestCaseError> {
    let mut kv = MemKv::default();
    for cmd in cmds {
        let before = kv.clone();
        match kv.apply(cmd, 100) {
            Ok(w) => prop_assert!(w.revision >= before.meta.revision),
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                prop_assert_eq!(&kv, &before, "a failed command changed the store: {:?}", e);
            }
        }
        for path in cmd_paths(cmd) {
            let _ = kv.children(&path);
            let _ = kv.watch(&path, 0);
        }
    }
    Ok(())
}

fn cmd_paths(cmd: &Command) -> Vec<String> {
    match cmd {
        Command::Compact { .. } => vec!["/".into()],
        Command::Txn(t) => t
            .success
            .iter()
            .chain(&t.failure)
            .map(|op| op.path().to_string())
            .chain(t.conditions.iter().map(|c| match c {
                Condition::Version { path, .. }
                | Condition::Exists { path }
                | Condition::Missing { path }
                | Condition::Value { path, .. } => path.clone(),
            }))
            .collect(),
    }
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn commands_that_decode_from_garbage_apply_or_fail_without_changing_anything(
        cmds in proptest::collection::vec(command(), 1..6),
        ms in mutations(),
    ) {
        apply_all(&cmds)?;
        // What a peer could get into the log: mutants of a Writes frame that still decode.
        let bytes = mutated(&codec::encode(&StoreRequest::Writes(cmds)).unwrap(), &ms, 3);
        if let Ok(StoreRequest::Writes(decoded)) = codec::decode::<StoreRequest>(&bytes) {
            apply_all(&decoded)?;
        }
    }
}
