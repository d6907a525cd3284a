//! The Raft log and vote ([`LogStore`]) and the syncer thread of group commit: appends are
//! written at once and synced by one WAL fsync for everything queued meanwhile; a follower's
//! append is synced inline while the syncer is idle (see the module docs of `storage`).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use super::inline::InlineSyncs;
use super::{sio, Db, OpenError, SError, CF_LOG, CF_RAFT};
use crate::codec;
use crate::propertystore::core::StoreError;
use crate::propertystore::durable::Durability;
use crate::propertystore::metrics::StoreMetrics;
use crate::propertystore::{ReplicaId, TypeConfig};
use crate::telemetry::marks::{self, Stage};

/// The Raft log and vote. Cloning shares the database and the syncer.
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    /// This replica's id: appends of its own entries while it leads are acknowledged early.
    id: ReplicaId,
    /// The vote as last saved.
    vote: Arc<Mutex<Option<Vote<ReplicaId>>>>,
    durability: Arc<Durability>,
    syncer: Arc<Syncer>,
    /// fsyncs of the log (the syncer's group commits and followers' inline ones).
    syncs: Arc<AtomicU64>,
    /// Entries appended.
    appends: Arc<AtomicU64>,
    metrics: StoreMetrics,
    /// Every append is synced on the appending task (or, while the disk stalls, by a task
    /// on the runtime); the syncer thread is never used ([`LogStore::sync_inline`]).
    inline: Option<Arc<InlineSyncs>>,
}

/// What one fsync of the log needs; shared by the log store, its syncer thread and the
/// inline syncs.
#[derive(Clone)]
pub(super) struct Fsync {
    db: Db,
    durability: Arc<Durability>,
    /// fsyncs done.
    count: Arc<AtomicU64>,
    metrics: StoreMetrics,
}

impl Fsync {
    /// One fsync of the WAL; on success everything written before it is durable.
    pub(super) fn run(&self) -> Result<(), rocksdb::Error> {
        let mark = self.durability.before_sync();
        let result = {
            let _fsync = self.metrics.time_fsync();
            self.db.db.flush_wal(true)
        };
        self.count.fetch_add(1, Ordering::Relaxed);
        if result.is_ok() {
            self.db.synced_wal();
            self.durability.synced(mark);
            marks::mark(Stage::Synced, mark.index());
        }
        result
    }

    /// What of the log is on disk.
    pub(super) fn durability(&self) -> &Durability {
        &self.durability
    }
}

/// The syncer thread and its queue. Dropped with the last clone of the log store: the
/// queue closes and the thread is joined, so the thread's share of the database is released
/// before the drop returns (a detached thread closing RocksDB while the process exits
/// aborts it).
struct Syncer {
    tx: Option<mpsc::Sender<SyncItem>>,
    thread: Option<std::thread::JoinHandle<()>>,
    durability: Arc<Durability>,
    /// Items sent and not yet completed by the thread (queued or in its current fsync).
    pending: Arc<AtomicUsize>,
}

impl Syncer {
    fn send(&self, item: SyncItem) -> Result<(), mpsc::SendError<SyncItem>> {
        let Some(tx) = &self.tx else {
            return Err(mpsc::SendError(item));
        };
        self.pending.fetch_add(1, Ordering::AcqRel);
        tx.send(item).inspect_err(|_| {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        })
    }

    /// Whether an fsync may run on the caller's thread instead: nothing is queued or in
    /// flight on the syncer (so completions stay in log order) and the disk is not stalled.
    fn idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0 && !self.durability.is_stalled()
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.tx = None;
        // A stalled disk (fault injection) must not hold the drop forever.
        self.durability.set_syncs_stalled(false);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the syncer thread is handed after an append.
pub(super) enum SyncItem {
    /// A follower's (or candidate's) append: openraft learns of it only after the fsync.
    Flush(LogFlushed<TypeConfig>),
    /// A leader's append, already acknowledged: the fsync only advances [`Durability`].
    Durable,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("db", &self.db).finish()
    }
}

impl LogStore {
    /// The log store of replica `id` over `db`; starts its syncer thread, which ends with the
    /// last clone. Syncs the write-ahead log first, so that what the database holds now is
    /// durable (a process killed before its fsync leaves its writes in the page cache only).
    pub fn new(db: Db, id: ReplicaId) -> Result<LogStore, OpenError> {
        let corrupt = |reason: String| OpenError::Corrupt {
            path: db.db.path().display().to_string(),
            reason,
        };
        db.db.flush_wal(true).map_err(|e| corrupt(e.to_string()))?;
        db.synced_wal();
        let vote = db
            .get_typed::<Vote<ReplicaId>>(CF_RAFT, b"vote")
            .map_err(|e| corrupt(e.to_string()))?;
        let vote = match vote {
            Some(v) if v.is_committed() && v.leader_id.node_id == id => {
                // This replica led when it stopped. openraft would restore it as the leader of
                // that term at once, over its log as the disk kept it; but a leader sends its
                // entries before its own fsync (`durable`), so a crash can have lost entries
                // the followers hold, and the restored leader would write different entries
                // at the same (term, index), which the followers take for the ones they have.
                // It comes back as a candidate of that term instead (it votes for no one else
                // in it), and leads again only by winning a later term.
                let demoted = Vote::new(v.leader_id.term, id);
                let bytes = codec::encode(&demoted).map_err(|e| corrupt(e.to_string()))?;
                let mut opts = WriteOptions::default();
                opts.set_sync(true);
                db.db
                    .put_cf_opt(db.cf(CF_RAFT), b"vote", bytes, &opts)
                    .map_err(|e| corrupt(e.to_string()))?;
                Some(demoted)
            }
            other => other,
        };
        let purged = last_purged(&db).map_err(|e| corrupt(e.to_string()))?;
        let last = last_log_id(&db, None, purged).map_err(corrupt)?;
        let durability = Arc::new(Durability::new(last));
        let (tx, rx) = mpsc::channel::<SyncItem>();
        let syncs = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        let in_flight = pending.clone();
        let metrics = StoreMetrics::register(id);
        let fsync = Fsync {
            db: db.clone(),
            durability: durability.clone(),
            count: syncs.clone(),
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("store-log-sync".into())
            .spawn(move || sync_loop(&fsync, &in_flight, &rx))
            .map_err(|e| corrupt(format!("cannot start the log syncer: {e}")))?;
        let syncer = Arc::new(Syncer {
            tx: Some(tx),
            thread: Some(thread),
            durability: durability.clone(),
            pending,
        });
        Ok(LogStore {
            db,
            id,
            vote: Arc::new(Mutex::new(vote)),
            durability,
            syncer,
            syncs,
            appends: Arc::new(AtomicU64::new(0)),
            metrics,
            inline: None,
        })
    }

    /// From now on every append is synced on the appending task, leader's or follower's,
    /// before openraft hears of it: no thread outside the async runtime takes part, so a
    /// simulation on a paused clock replays identically (the deterministic simulation).
    /// While fsyncs are stalled, appends wait for a task on the runtime instead (see
    /// `inline.rs`).
    pub fn sync_inline(&mut self) {
        self.inline = Some(Arc::new(InlineSyncs::default()));
    }

    fn fsync(&self) -> Fsync {
        Fsync {
            db: self.db.clone(),
            durability: self.durability.clone(),
            count: self.syncs.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// What of this log is on disk; shared with the state machine and the Raft network.
    pub fn durability(&self) -> Arc<Durability> {
        self.durability.clone()
    }

    /// Whether `entries` are this replica's own proposals as the leader of the saved vote.
    fn leads(&self, entries: &[Entry<TypeConfig>]) -> bool {
        let vote = self.vote.lock().unwrap_or_else(|p| p.into_inner());
        match *vote {
            Some(v) if v.is_committed() && v.leader_id.node_id == self.id => {
                entries.iter().all(|e| e.log_id.leader_id == v.leader_id)
            }
            _ => false,
        }
    }

    /// How many WAL fsyncs the group commit has done.
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The counters of appends and of fsyncs, to read after the store moved into Raft.
    pub fn counters(&self) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
        (self.appends.clone(), self.syncs.clone())
    }

    pub(super) fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), rocksdb::Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let _fsync = sync.then(|| self.metrics.time_fsync());
        self.db.db.write_opt(batch, &opts)?;
        if sync {
            self.db.synced_wal();
        }
        Ok(())
    }

    #[allow(clippy::result_large_err)] // openraft's error type
    fn last_purged(&self) -> Result<Option<LogId<ReplicaId>>, SError> {
        last_purged(&self.db).map_err(|e| sio(StorageIOError::read_logs, &e))
    }

    /// [`last_log_id`] with errors as openraft's.
    #[allow(clippy::result_large_err)] // openraft's error type
    fn last_log_id(
        &self,
        below: Option<u64>,
        purged: Option<LogId<ReplicaId>>,
    ) -> Result<Option<LogId<ReplicaId>>, SError> {
        last_log_id(&self.db, below, purged)
            .map_err(|e| sio(StorageIOError::read_logs, &std::io::Error::other(e)))
    }
}

/// The id of the last purged log entry.
pub(super) fn last_purged(db: &Db) -> Result<Option<LogId<ReplicaId>>, StoreError> {
    Ok(db
        .get_typed::<Option<LogId<ReplicaId>>>(CF_RAFT, b"purged")?
        .flatten())
}

/// The id of the last log entry with an index below `below` (of all entries with `None`),
/// else `purged` (the last purged one).
fn last_log_id(
    db: &Db,
    below: Option<u64>,
    purged: Option<LogId<ReplicaId>>,
) -> Result<Option<LogId<ReplicaId>>, String> {
    let read = |e: &dyn std::fmt::Display| format!("cannot read the log: {e}");
    let cf = db.cf(CF_LOG);
    let from = match below {
        Some(0) => return Ok(purged),
        Some(b) => Some((b - 1).to_be_bytes()),
        None => None,
    };
    let mut it = match &from {
        Some(key) => db.db.iterator_cf(cf, IteratorMode::From(key, Direction::Reverse)),
        None => db.db.iterator_cf(cf, IteratorMode::End),
    };
    match it.next() {
        Some(item) => {
            let (_, v) = item.map_err(|e| read(&e))?;
            let entry: Entry<TypeConfig> = codec::decode(&v).map_err(|e| read(&e))?;
            Ok(Some(entry.log_id))
        }
        None => Ok(purged),
    }
}

/// The syncer thread: takes every append queued while the previous fsync ran, syncs the WAL
/// once, advances [`Durability`] and completes the queued followers' callbacks.
fn sync_loop(fsync: &Fsync, pending: &AtomicUsize, rx: &mpsc::Receiver<SyncItem>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        fsync.durability.wait_unstalled();
        let result = fsync.run();
        let n = batch.len();
        complete(batch, &result);
        pending.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Completes the appends one fsync covered with its result. An fsync that failed after the
/// leader acknowledged some of them aborts the process: the leader already counted those
/// entries as on its disk, that cannot be taken back, and going on could lose acknowledged
/// writes.
pub(super) fn complete(batch: Vec<SyncItem>, result: &Result<(), rocksdb::Error>) {
    if let Err(e) = result {
        if batch.iter().any(|i| matches!(i, SyncItem::Durable)) {
            tracing::error!(error = %e, "fsync of the Raft log failed after the leader acknowledged it; aborting");
            std::process::abort();
        }
    }
    for item in batch {
        if let SyncItem::Flush(cb) = item {
            cb.log_io_completed(io_result(result));
        }
    }
}

pub(super) fn io_result(result: &Result<(), rocksdb::Error>) -> Result<(), std::io::Error> {
    result
        .as_ref()
        .map(|_| ())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn bound_start(b: Bound<&u64>) -> u64 {
    match b {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SError> {
        let start = bound_start(range.start_bound());
        let it = self.db.db.iterator_cf(
            self.db.cf(CF_LOG),
            IteratorMode::From(&start.to_be_bytes(), Direction::Forward),
        );
        let mut out = Vec::new();
        for item in it {
            let (k, v) = item.map_err(|e| sio(StorageIOError::read_logs, &e))?;
            let index = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0xff; 8]));
            if !range.contains(&index) {
                break;
            }
            let entry: Entry<TypeConfig> =
                codec::decode(&v).map_err(|e| sio(StorageIOError::read_logs, &e))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SError> {
        let last_purged = self.last_purged()?;
        let last = self.last_log_id(None, last_purged)?;
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<ReplicaId>) -> Result<(), SError> {
        let bytes = codec::encode(vote).map_err(|e| sio(StorageIOError::write_vote, &e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_RAFT), b"vote", bytes);
        self.write(batch, true)
            .map_err(|e| sio(StorageIOError::write_vote, &e))?;
        *self.vote.lock().unwrap_or_else(|p| p.into_inner()) = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<ReplicaId>>, SError> {
        self.db
            .get_typed(CF_RAFT, b"vote")
            .map_err(|e| sio(StorageIOError::read_vote, &e))
    }

    async fn save_committed(&mut self, committed: Option<LogId<ReplicaId>>) -> Result<(), SError> {
        let bytes = codec::encode(&committed).map_err(|e| sio(StorageIOError::write_logs, &e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_RAFT), b"committed", bytes);
        if let Some(c) = committed {
            self.metrics.committed(c.index);
        }
        self.write(batch, false)
            .map_err(|e| sio(StorageIOError::write_logs, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<ReplicaId>>, SError> {
        Ok(self
            .db
            .get_typed::<Option<LogId<ReplicaId>>>(CF_RAFT, b"committed")
            .map_err(|e| sio(StorageIOError::read_logs, &e))?
            .flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|e| e.log_id) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let mut batch = WriteBatch::default();
        let cf = self.db.cf(CF_LOG);
        for entry in &entries {
            let bytes = codec::encode(entry).map_err(|e| sio(StorageIOError::write_logs, &e))?;
            batch.put_cf(cf, entry.log_id.index.to_be_bytes(), bytes);
        }
        let n = batch.len() as u64;
        self.write(batch, false)
            .map_err(|e| sio(StorageIOError::write_logs, &e))?;
        self.durability.written(last);
        marks::mark(Stage::Appended, last.index);
        self.appends.fetch_add(n, Ordering::Relaxed);
        // The leader's own entries: openraft may replicate them now, while the syncer writes
        // them to disk; see `durable` for why that is safe.
        if let Some(inline) = &self.inline {
            inline.append(self.fsync(), self.leads(&entries), callback);
            return Ok(());
        }
        let item = if self.leads(&entries) {
            callback.log_io_completed(Ok(()));
            SyncItem::Durable
        } else if self.syncer.idle() {
            // A follower's append: openraft 0.9's core waits for its flush before it does
            // anything else (and the leader for the answer before it sends more entries), so
            // handing it to the syncer thread batches nothing and costs a thread wake-up
            // each way.
            let result = self.fsync().run();
            callback.log_io_completed(io_result(&result));
            return Ok(());
        } else {
            SyncItem::Flush(callback)
        };
        if let Err(mpsc::SendError(item)) = self.syncer.send(item) {
            match item {
                SyncItem::Flush(cb) => {
                    cb.log_io_completed(Err(std::io::Error::other("the log syncer has stopped")))
                }
                SyncItem::Durable => {
                    return Err(sio(
                        StorageIOError::write_logs,
                        &std::io::Error::other("the log syncer has stopped"),
                    ))
                }
            }
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<ReplicaId>) -> Result<(), SError> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.db.cf(CF_LOG),
            log_id.index.to_be_bytes(),
            u64::MAX.to_be_bytes(),
        );
        batch.delete_cf(self.db.cf(CF_LOG), u64::MAX.to_be_bytes());
        self.write(batch, true)
            .map_err(|e| sio(StorageIOError::write_logs, &e))?;
        let last = self.last_log_id(Some(log_id.index), self.last_purged()?)?;
        self.durability.truncated(last);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<ReplicaId>) -> Result<(), SError> {
        let bytes = codec::encode(&Some(log_id)).map_err(|e| sio(StorageIOError::write_logs, &e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.db.cf(CF_RAFT), b"purged", bytes);
        batch.delete_range_cf(
            self.db.cf(CF_LOG),
            0u64.to_be_bytes(),
            (log_id.index + 1).to_be_bytes(),
        );
        self.write(batch, false)
            .map_err(|e| sio(StorageIOError::write_logs, &e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorage;
    use openraft::Vote;

    use super::*;

    fn reopen(dir: &std::path::Path, id: ReplicaId) -> LogStore {
        LogStore::new(Db::open(dir).unwrap(), id).unwrap()
    }

    #[test]
    fn a_replica_that_led_comes_back_a_candidate_of_its_term_and_a_follower_keeps_its_leader() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut log = reopen(dir.path(), 2);
        rt.block_on(log.save_vote(&Vote::new_committed(5, 2))).unwrap();
        drop(log);
        let mut log = reopen(dir.path(), 2);
        let vote = rt.block_on(log.read_vote()).unwrap();
        assert_eq!(
            vote,
            Some(Vote::new(5, 2)),
            "not restored as the leader of term 5"
        );
        assert!(!log.leads(&[]), "its appends are not a leader's");
        rt.block_on(log.save_vote(&Vote::new_committed(6, 1))).unwrap();
        drop(log);
        let mut log = reopen(dir.path(), 2);
        assert_eq!(
            rt.block_on(log.read_vote()).unwrap(),
            Some(Vote::new_committed(6, 1)),
            "another replica's leadership is kept"
        );
    }
}
