//! Storage tests: openraft's storage suite, crashes of a child process with the database
//! open, recovery from behind the purged log, range reads and pages of the history.

use std::collections::BTreeMap;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{Entry, EntryPayload, LogId, RaftSnapshotBuilder, StorageIOError};
use rocksdb::WriteBatch;

use super::db::range_entry_size;
use super::*;
use crate::propertystore::core::{self, PageLimits, Position, StoreError};
use crate::propertystore::TypeConfig;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), SError> {
        let dir = tempfile::tempdir().map_err(|e| sio(StorageIOError::write_logs, &e))?;
        // The suite applies entries it never appended, so its state machine does not
        // wait for the log's durability.
        let io = |e: OpenError| sio(StorageIOError::write_logs, &e);
        let db = Db::open(dir.path()).map_err(io)?;
        let log = LogStore::new(db.clone(), 0).map_err(io)?;
        let sm = StateMachine::new(db, 1000).map_err(io)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}

/// Limits that never cut an answer.
const UNLIMITED: PageLimits = PageLimits {
    max_events: usize::MAX,
    max_bytes: usize::MAX,
    split: true,
};

/// Set in the child process of the crash tests: the data directory to write and abort in.
const CRASH_DIR: &str = "STRAND_STORAGE_TEST_CRASH_DIR";
/// Set in the child: after how many entries it snapshots and purges ("0": never).
const CRASH_SNAPSHOT_AT: &str = "STRAND_STORAGE_TEST_CRASH_SNAPSHOT_AT";
/// Entries the child appends and applies, one write each.
const ENTRIES: u64 = 300;

fn path(i: u64) -> String {
    format!("/crash/k{i}")
}

/// Entry 0 is blank (where openraft's log starts); entry `i` sets [`path`]`(i)`.
fn entry(index: u64) -> Entry<TypeConfig> {
    let log_id = LogId::new(openraft::CommittedLeaderId::new(1, 0), index);
    if index == 0 {
        return Entry {
            log_id,
            payload: EntryPayload::Blank,
        };
    }
    let op = core::Op::Set {
        path: path(index),
        value: format!("v{index}").into_bytes(),
        expected_version: None,
    };
    Entry {
        log_id,
        payload: EntryPayload::Normal(core::Batch(vec![core::Command::Txn(core::Txn::single(op))])),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes [`entry`]`(index)` to the log through the WAL (as `append` does) and syncs it,
/// marks it committed and applies it.
async fn commit_and_apply(db: &Db, log: &mut LogStore, sm: &mut StateMachine, index: u64) {
    let mut batch = WriteBatch::default();
    batch.put_cf(
        db.cf(CF_LOG),
        index.to_be_bytes(),
        codec::encode(&entry(index)).unwrap(),
    );
    log.write(batch, true).unwrap();
    log.save_committed(Some(entry(index).log_id)).await.unwrap();
    sm.apply([entry(index)]).await.unwrap();
}

/// The child: appends and applies [`ENTRIES`] entries (snapshotting and purging after
/// `snapshot_at` of them when not 0), then dies without closing the database.
fn crash_child(dir: &Path, snapshot_at: u64) -> ! {
    runtime().block_on(async {
        let db = Db::open(dir).unwrap();
        let mut log = LogStore::new(db.clone(), 0).unwrap();
        let mut sm = StateMachine::new(db.clone(), 1000).unwrap();
        for index in 0..=ENTRIES {
            commit_and_apply(&db, &mut log, &mut sm, index).await;
            if snapshot_at > 0 && index == snapshot_at {
                let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
                log.purge(snapshot.meta.last_log_id.unwrap()).await.unwrap();
            }
        }
        log.write(WriteBatch::default(), true).unwrap();
        // Die with the database open: dropping it would flush the memtables.
        std::process::abort()
    })
}

/// Runs this test again as a child process that writes into `dir` and aborts.
fn crash_in_child(test: &str, dir: &Path, snapshot_at: u64) {
    let name = format!("{}::{test}", module_path!().split_once("::").unwrap().1);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(CRASH_DIR, dir)
        .env(CRASH_SNAPSHOT_AT, snapshot_at.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child process was to abort: {status}");
}

fn child_args() -> Option<(std::path::PathBuf, u64)> {
    let dir = std::env::var_os(CRASH_DIR)?;
    let at = std::env::var(CRASH_SNAPSHOT_AT).ok()?.parse().ok()?;
    Some((dir.into(), at))
}

/// After a crash the state machine on disk is the state after some applied batch (none
/// at all here, or the snapshot's); start-up re-applies the rest from the log, and every
/// write and its event is back, in order.
fn crash_and_recover(test: &str, snapshot_at: u64) {
    if let Some((dir, at)) = child_args() {
        crash_child(&dir, at);
    }
    let dir = tempfile::tempdir().unwrap();
    crash_in_child(test, dir.path(), snapshot_at);
    runtime().block_on(async {
        let (db, mut log, mut sm) = open(dir.path(), 1000, 0).unwrap();
        // The state machine lost what was applied after the last flush: the snapshot's
        // flush when there was one (rule 1), else everything.
        let on_disk = sm.applied.map(|l| l.index);
        let expected = (snapshot_at > 0).then_some(snapshot_at);
        assert_eq!(on_disk, expected, "the state machine on disk after the crash");
        openraft::StorageHelper::new(&mut log, &mut sm)
            .get_initial_state()
            .await
            .unwrap();
        assert_eq!(sm.applied.map(|l| l.index), Some(ENTRIES));
        for i in 1..=ENTRIES {
            let record = db
                .get(&path(i))
                .unwrap()
                .unwrap_or_else(|| panic!("{} lost", path(i)));
            assert_eq!(record.value, format!("v{i}").into_bytes());
            assert_eq!(record.stat.mod_revision, i);
        }
        let (events, next) = db.events("/crash/", Position::at(1), UNLIMITED).unwrap();
        assert_eq!(next, Position::at(ENTRIES + 1));
        let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
        assert_eq!(revisions, (1..=ENTRIES).collect::<Vec<_>>());
    });
}

#[test]
fn a_crash_without_a_snapshot_reapplies_the_whole_log() {
    crash_and_recover("a_crash_without_a_snapshot_reapplies_the_whole_log", 0);
}

#[test]
fn a_crash_after_a_snapshot_and_purge_reapplies_from_the_snapshot_on() {
    crash_and_recover(
        "a_crash_after_a_snapshot_and_purge_reapplies_from_the_snapshot_on",
        200,
    );
}

/// Entry `index` of the range test: sets and deletes under `/a`, and writes next to it
/// (`/ab`, `/a-b`, `/a.x`) that a range of `/a` must leave out.
fn range_entry(index: u64) -> Entry<TypeConfig> {
    let set = |path: String| {
        core::Command::Txn(core::Txn::single(core::Op::Set {
            path,
            value: format!("v{index}").into_bytes(),
            expected_version: None,
        }))
    };
    let mut cmds = vec![
        set(format!("/a/k{}", index % 17)),
        set(format!("/a/k{}/sub", index % 5)),
        set(format!("/ab/k{}", index % 3)),
        set("/a-b".into()),
        set("/a.x".into()),
    ];
    if index.is_multiple_of(4) {
        cmds.push(set("/a".into()));
    }
    if index.is_multiple_of(3) {
        // Fails (nothing changes) when the key has children or is already gone.
        cmds.push(core::Command::Txn(core::Txn::single(core::Op::Delete {
            path: format!("/a/k{}", (index * 7) % 17),
            expected_version: None,
            recursive: index.is_multiple_of(2),
        })));
    }
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(core::Batch(cmds)),
    }
}

/// A range read while batches apply (another thread) is the state at exactly the revision
/// it returns, as the watch history replays it: the key itself and its subtree, in key
/// order, and none of the keys beside it.
#[test]
fn a_range_read_during_applies_is_the_state_at_its_revision() {
    const ENTRIES: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let mut sm = StateMachine::new(db.clone(), 1_000_000).unwrap();
    let writer = std::thread::spawn(move || {
        runtime().block_on(async move {
            for index in 1..=ENTRIES {
                sm.apply([range_entry(index)]).await.unwrap();
            }
        })
    });
    let mut reads = vec![db.range("/a", usize::MAX).unwrap()];
    while !writer.is_finished() {
        reads.push(db.range("/a", usize::MAX).unwrap());
    }
    writer.join().unwrap();
    reads.push(db.range("/a", usize::MAX).unwrap());

    let (history, _) = db.events("/", Position::at(1), UNLIMITED).unwrap();
    let in_range = |k: &str| k == "/a" || k.starts_with("/a/");
    let mut distinct: Vec<u64> = reads.iter().map(|(_, r)| *r).collect();
    distinct.dedup();
    eprintln!(
        "{} range reads at {} distinct revisions",
        reads.len(),
        distinct.len()
    );
    for (entries, revision) in &reads {
        let mut state: BTreeMap<String, core::Record> = BTreeMap::new();
        for e in history.iter().take_while(|e| e.revision <= *revision) {
            match &e.kind {
                core::EventKind::Put { value, stat } => {
                    state.insert(
                        e.path.clone(),
                        core::Record {
                            value: value.clone(),
                            stat: *stat,
                        },
                    );
                }
                core::EventKind::Delete => {
                    state.remove(&e.path);
                }
            }
        }
        let expected: Vec<(String, core::Record)> = state.into_iter().filter(|(k, _)| in_range(k)).collect();
        assert_eq!(entries, &expected, "the range read at revision {revision}");
    }
    let (last, revision) = reads.last().unwrap();
    assert_eq!(*revision, db.meta().unwrap().revision);
    assert!(last.iter().any(|(k, _)| k == "/a") && last.iter().any(|(k, _)| k.contains("/sub")));
    let (all, _) = db.range("/", usize::MAX).unwrap();
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted: {keys:?}");
    for outside in ["/ab/k0", "/a-b", "/a.x"] {
        assert!(keys.contains(&outside), "/ holds {outside}");
    }
}

/// A range whose entries pass the byte limit is refused with the sizes, not truncated.
#[test]
fn a_range_larger_than_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let mut sm = StateMachine::new(db.clone(), 1000).unwrap();
    runtime().block_on(async {
        for index in 1..=20 {
            sm.apply([range_entry(index)]).await.unwrap();
        }
    });
    let (entries, _) = db.range("/a", usize::MAX).unwrap();
    let exact: usize = entries
        .iter()
        .map(|(k, r)| range_entry_size(k.as_bytes(), &codec::encode(r).unwrap()))
        .sum();
    assert_eq!(db.range("/a", exact).unwrap().0, entries);
    // The estimate bounds the reply: the entries plus the answer's own few bytes.
    let reply = super::super::protocol::StoreResponse::Range {
        entries: entries.clone(),
        revision: u64::MAX,
    };
    assert!(codec::encode(&reply).unwrap().len() <= exact + 32);
    match db.range("/a", exact - 1) {
        Err(StoreError::RangeTooLarge { path, bytes, max }) => {
            assert_eq!((path.as_str(), bytes, max), ("/a", exact, exact - 1));
        }
        other => panic!("expected RangeTooLarge, got {other:?}"),
    }
}

/// A revision larger than an answer (a recursive delete) is cut, and the answers resume
/// inside it where the last one stopped: together they are the history once.
#[test]
fn a_revision_larger_than_an_answer_is_read_in_pieces_from_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let mut sm = StateMachine::new(db.clone(), 1000).unwrap();
    let set = |i: u64| {
        core::Command::Txn(core::Txn::single(core::Op::Set {
            path: format!("/d/k{i:03}"),
            value: vec![b'v'; 50],
            expected_version: None,
        }))
    };
    let delete = core::Command::Txn(core::Txn::single(core::Op::Delete {
        path: "/d".into(),
        expected_version: None,
        recursive: true,
    }));
    let entry = |index: u64, cmds: Vec<core::Command>| Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(core::Batch(cmds)),
    };
    runtime().block_on(async {
        sm.apply([entry(1, (0..100).map(set).collect())]).await.unwrap();
        sm.apply([entry(2, vec![delete])]).await.unwrap();
    });
    let (all, end) = db.events("/d/", Position::at(1), UNLIMITED).unwrap();
    assert_eq!((all.len(), end), (200, Position::at(102)));
    let limits = PageLimits {
        max_events: 1000,
        max_bytes: 300,
        split: true,
    };
    let mut from = Position::at(101);
    let mut pieces = Vec::new();
    while from < end {
        let (events, next) = db.events("/d/", from, limits).unwrap();
        assert!(!events.is_empty() && next > from);
        assert!(events.iter().all(|e| e.revision == 101));
        pieces.push(events.len());
        from = next;
    }
    assert!(pieces.len() > 3, "cut into {pieces:?}");
    let deletes: Vec<_> = all.iter().filter(|e| e.revision == 101).cloned().collect();
    let mut again = Vec::new();
    let mut from = Position::at(101);
    while from < end {
        let (events, next) = db.events("/d/", from, limits).unwrap();
        again.extend(events);
        from = next;
    }
    assert_eq!(again, deletes);
    // Whole revisions only (older clients): the revision goes whole.
    let whole = PageLimits {
        split: false,
        ..limits
    };
    assert_eq!(
        db.events("/d/", Position::at(101), whole).unwrap(),
        (deletes, end)
    );
}

/// Rule 2: a state machine on disk behind the purged log starts from the stored snapshot.
#[test]
fn a_state_machine_behind_the_purged_log_restores_the_stored_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let db = Db::open(dir.path()).unwrap();
        let mut log = LogStore::new(db.clone(), 0).unwrap();
        let mut sm = StateMachine::new(db.clone(), 1000).unwrap();
        for index in 1..=10u64 {
            commit_and_apply(&db, &mut log, &mut sm, index).await;
        }
        let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
        log.purge(snapshot.meta.last_log_id.unwrap()).await.unwrap();
        // What a lost flush would leave: the state machine as after entry 4.
        let mut batch = WriteBatch::default();
        batch.put_cf(db.cf(CF_META), b"applied", enc(&Some(entry(4).log_id)).unwrap());
        batch.put_cf(
            db.cf(CF_META),
            b"meta",
            enc(&core::Meta {
                revision: 4,
                oldest: 1,
            })
            .unwrap(),
        );
        batch.delete_cf(db.cf(CF_KV), path(9).as_bytes());
        log.write(batch, true).unwrap();
    });
    let (db, _log, sm) = open(dir.path(), 1000, 0).unwrap();
    assert_eq!(sm.applied.map(|l| l.index), Some(10));
    assert_eq!(db.meta().unwrap().revision, 10);
    assert!(db.get(&path(9)).unwrap().is_some());
}

/// With neither the log nor a snapshot to recover from, opening fails with a clear error.
#[test]
fn a_state_machine_behind_the_purged_log_without_a_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let db = Db::open(dir.path()).unwrap();
        let mut log = LogStore::new(db.clone(), 0).unwrap();
        log.purge(entry(7).log_id).await.unwrap();
    });
    let err = open(dir.path(), 1000, 0).unwrap_err();
    assert!(
        err.to_string().contains("purged up to Some(7)"),
        "unexpected error: {err}"
    );
}

/// Entry `index` of the confirmation tests: sets `/held` to `v<index>`.
fn held_entry(index: u64) -> Entry<TypeConfig> {
    let op = core::Op::Set {
        path: "/held".into(),
        value: format!("v{index}").into_bytes(),
        expected_version: None,
    };
    Entry {
        log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(core::Batch(vec![core::Command::Txn(core::Txn::single(op))])),
    }
}

fn append_only(db: &Db, log: &LogStore, entry: &Entry<TypeConfig>) {
    let mut batch = WriteBatch::default();
    batch.put_cf(
        db.cf(CF_LOG),
        entry.log_id.index.to_be_bytes(),
        codec::encode(entry).unwrap(),
    );
    log.write(batch, false).unwrap();
}

/// A confirmation's read: the applied record, and a refusal for an unapplied change of the
/// key in the log after it; nothing pending once it is applied; the scan's cap.
#[test]
fn the_held_view_reads_the_applied_record_and_the_unapplied_log_after_it() {
    use crate::propertystore::confirm::Verdict;
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let mut log = LogStore::new(db.clone(), 0).unwrap();
        let mut sm = StateMachine::new(db.clone(), 1000).unwrap();
        for index in 0..=3 {
            commit_and_apply(&db, &mut log, &mut sm, index).await;
        }
        let view = db.held_view(&path(2), 10).unwrap();
        assert_eq!(view.applied.map(|a| a.index), Some(3));
        assert_eq!(view.record.map(|r| r.value), Some(b"v2".to_vec()));
        assert_eq!(view.scan, None);
        // Entry 4 sets another key, entry 5 deletes the one checked; neither applied.
        append_only(&db, &log, &entry(4));
        let delete = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), 5),
            payload: EntryPayload::Normal(core::Batch(vec![core::Command::Txn(core::Txn::single(
                core::Op::Delete {
                    path: path(2),
                    expected_version: None,
                    recursive: false,
                },
            ))])),
        };
        append_only(&db, &log, &delete);
        let view = db.held_view(&path(2), 10).unwrap();
        assert_eq!(view.record.map(|r| r.value), Some(b"v2".to_vec()));
        assert_eq!(view.scan, Some(Verdict::Pending { index: 5 }));
        assert_eq!(db.held_view(&path(1), 10).unwrap().scan, None);
        assert!(matches!(
            db.held_view(&path(1), 1).unwrap().scan,
            Some(Verdict::Unsure { .. })
        ));
        // Applied: the record is gone and nothing is pending.
        sm.apply([entry(4), delete]).await.unwrap();
        let view = db.held_view(&path(2), 10).unwrap();
        assert_eq!(view.applied.map(|a| a.index), Some(5));
        assert_eq!(view.record, None);
        assert_eq!(view.scan, None);
    });
}

/// While entries are appended and applied on another thread (each sets `/held` to
/// `v<index>`), every confirmation read is one moment: the record is the one the applied
/// index wrote, and the log holds the next entry exactly when it was appended before.
#[test]
fn a_held_view_during_appends_and_applies_is_one_moment() {
    use crate::propertystore::confirm::Verdict;
    const ENTRIES: u64 = 2000;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).unwrap();
    let log = LogStore::new(db.clone(), 0).unwrap();
    let mut sm = StateMachine::new(db.clone(), 1_000_000).unwrap();
    let wdb = db.clone();
    let writer = std::thread::spawn(move || {
        runtime().block_on(async move {
            for index in 1..=ENTRIES {
                append_only(&wdb, &log, &held_entry(index));
                sm.apply([held_entry(index)]).await.unwrap();
            }
        })
    });
    let mut reads = 0;
    let mut pending = 0;
    while !writer.is_finished() {
        let view = db.held_view("/held", 10).unwrap();
        reads += 1;
        let Some(applied) = view.applied else {
            assert_eq!(view.record, None);
            continue;
        };
        assert_eq!(
            view.record.map(|r| r.value),
            Some(format!("v{}", applied.index).into_bytes()),
            "the record read is not the one applied index {} wrote",
            applied.index
        );
        match view.scan {
            None => {}
            Some(Verdict::Pending { index }) => {
                assert_eq!(index, applied.index + 1);
                pending += 1;
            }
            Some(other) => panic!("after applied index {}: {other:?}", applied.index),
        }
    }
    writer.join().unwrap();
    eprintln!("{reads} reads, {pending} with the next entry appended and not applied");
    assert!(reads > 0);
}
