//! RocksDB storage behind openraft 0.9's storage-v2 traits: the Raft log and vote
//! ([`LogStore`]) and the state machine ([`StateMachine`]) in one database, so that one
//! write-ahead log orders everything and a crash recovers a consistent prefix.
//!
//! ```text
//!   column families:  log     index (u64 BE)            → Entry
//!                     raft    "vote" "committed" "purged"
//!                     kv      path                      → Record
//!                     events  revision (u64 BE) seq (u32 BE) → Event
//!                     meta    "meta" "applied" "membership" "snapshot"
//!
//!   append ─► WriteBatch (visible at once) ─► queue ─► syncer thread: drain queue,
//!                                                      one WAL fsync, complete every callback
//! ```
//!
//! Group commit: `append` writes its entries without waiting for the disk and hands the
//! completion callback to a syncer thread; the syncer takes every callback queued while the
//! previous fsync ran and completes them all after one `SyncWAL`. The leader's own entries
//! are acknowledged at once and only synced by the syncer (see [`super::durable`] for why that
//! is safe). A follower's entries are synced inline, on the appending task, while the syncer
//! has nothing queued or in flight: openraft waits for that flush anyway, so the thread
//! would batch nothing. Every fsync advances [`Durability`]. The vote is written with
//! `sync = true` before `save_vote` returns.
//!
//! The state machine is written once, not three times: its batches (kv, events, meta) skip
//! the write-ahead log, which then carries only the Raft log, and reach the disk when RocksDB
//! flushes its memtables. Atomic flush writes every column family up to one sequence number,
//! so what a crash leaves of the state machine is the state after some applied batch, with
//! the `applied` log id that names it; openraft re-applies the committed entries after it
//! from the log at start-up. Two rules keep that possible:
//!
//! 1. **No log entry is purged that the state machine on disk has not applied**: a snapshot
//!    flushes the state machine before it is reported, and openraft purges only up to a
//!    snapshot.
//! 2. **A replica that comes up behind its purged log starts from its stored snapshot**
//!    (an installed snapshot is written through the WAL and synced): [`open`] restores it.
//!
//! A clean close flushes the memtables; only a crash re-applies.

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::core::{
    self, Applier, Changes, Event, KvRead, Meta, Offered, PageLimits, Pager, Position, Record, StoreError,
};
use super::durable::Durability;
use super::{ReplicaId, TypeConfig};
use crate::codec;

const CF_LOG: &str = "log";
const CF_RAFT: &str = "raft";
const CF_KV: &str = "kv";
const CF_EVENTS: &str = "events";
const CF_META: &str = "meta";
const ALL_CFS: [&str; 5] = [CF_LOG, CF_RAFT, CF_KV, CF_EVENTS, CF_META];

type SError = StorageError<ReplicaId>;
type Node = openraft::BasicNode;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// RocksDB refused to open the directory.
    #[error("cannot open the store database in {path}: {reason}")]
    Open {
        /// The data directory.
        path: String,
        /// RocksDB's reason.
        reason: String,
    },
    /// Stored state could not be read back.
    #[error("the store database in {path} is unreadable: {reason}")]
    Corrupt {
        /// The data directory.
        path: String,
        /// What could not be decoded.
        reason: String,
    },
}

/// The opened database shared by the log, the state machine and the server's reads.
#[derive(Clone)]
pub struct Db {
    db: Arc<DB>,
}

impl Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.db.path()).finish()
    }
}

fn sio<E: std::error::Error + 'static>(
    make: fn(openraft::AnyError) -> StorageIOError<ReplicaId>,
    e: &E,
) -> SError {
    make(openraft::AnyError::new(e)).into()
}

fn rerr(e: rocksdb::Error) -> StoreError {
    StoreError::Storage {
        reason: e.to_string(),
    }
}

fn cerr(e: codec::CodecError) -> StoreError {
    StoreError::Storage {
        reason: e.to_string(),
    }
}

/// An upper bound of the bytes one `(key, record)` entry of a range read takes in a reply,
/// from the key and the stored record: the stored record is the record's postcard encoding
/// (as the reply carries it) behind a 3-byte envelope header, and the key gains a length
/// prefix of at most 5 bytes.
fn range_entry_size(key: &[u8], stored_record: &[u8]) -> usize {
    key.len() + stored_record.len() + 8
}

fn event_key(revision: u64, seq: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&revision.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The position an events key names.
fn position_of(key: &[u8]) -> Result<Position, StoreError> {
    match <[u8; 12]>::try_from(key) {
        Ok(k) => {
            let (revision, seq) = k.split_at(8);
            Ok(Position {
                revision: u64::from_be_bytes(revision.try_into().unwrap_or_default()),
                seq: u32::from_be_bytes(seq.try_into().unwrap_or_default()),
            })
        }
        Err(_) => Err(StoreError::Storage {
            reason: format!("an events key of {} bytes, not 12", key.len()),
        }),
    }
}

/// Per column family options. Every put and create reads the key's current record first,
/// and most of those reads miss (new keys): whole-key bloom filters, in the memtable and in
/// every table file, answer a miss without searching them. The other families are read by
/// position (log, events) or hold a handful of keys.
fn cf_options(name: &str) -> Options {
    let mut opts = Options::default();
    if name == CF_KV {
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_whole_key_filtering(true);
        opts.set_block_based_table_factory(&table);
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.1);
    }
    opts
}

impl Db {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Db, OpenError> {
        Db::open_with(dir, |_| {})
    }

    /// [`Db::open`], with `configure` given the options last (tests simulate crashes with it).
    fn open_with(dir: &Path, configure: impl FnOnce(&mut Options)) -> Result<Db, OpenError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        // The state machine's batches skip the WAL: flush every family at one point, so that
        // what is on disk after a crash is the state after one applied batch.
        opts.set_atomic_flush(true);
        configure(&mut opts);
        let cfs = ALL_CFS
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options(name)));
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(|e| OpenError::Open {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Db { db: Arc::new(db) })
    }

    /// Flushes every column family's memtables to table files at one sequence number, and
    /// waits for it: everything written so far, WAL or not, is then on disk.
    fn flush_all(&self) -> Result<(), rocksdb::Error> {
        let cfs: Vec<&rocksdb::ColumnFamily> = ALL_CFS.iter().map(|name| self.cf(name)).collect();
        let mut opts = rocksdb::FlushOptions::default();
        opts.set_wait(true);
        self.db.flush_cfs_opt(&cfs, &opts)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // The column families are created at open; a missing one is a programming error.
        self.db.cf_handle(name).expect("column family created at open")
    }

    fn get_raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        self.db.get_cf(self.cf(cf), key)
    }

    fn get_typed<T: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        match self.get_raw(cf, key).map_err(rerr)? {
            Some(bytes) => Ok(Some(codec::decode(&bytes).map_err(cerr)?)),
            None => Ok(None),
        }
    }

    /// The store's counters.
    pub fn meta(&self) -> Result<Meta, StoreError> {
        Ok(self.get_typed(CF_META, b"meta")?.unwrap_or_default())
    }

    /// The record at `path`.
    pub fn get(&self, path: &str) -> Result<Option<Record>, StoreError> {
        self.get_typed(CF_KV, path.as_bytes())
    }

    /// The first key at or after `from`, if it starts with `prefix`.
    pub fn seek(&self, from: &str, prefix: &str) -> Result<Option<String>, StoreError> {
        let mut it = self.db.iterator_cf(
            self.cf(CF_KV),
            IteratorMode::From(from.as_bytes(), Direction::Forward),
        );
        match it.next() {
            Some(Ok((k, _))) if k.starts_with(prefix.as_bytes()) => {
                Ok(Some(String::from_utf8_lossy(&k).into_owned()))
            }
            Some(Err(e)) => Err(rerr(e)),
            _ => Ok(None),
        }
    }

    /// The names of `path`'s direct children.
    pub fn children(&self, path: &str) -> Result<Vec<String>, StoreError> {
        let prefix = core::child_prefix(path);
        core::list_children(path, |from| self.seek(from, &prefix))
    }

    /// Every key equal to `path` or under `path/` (every key for `/`), in key order, and the
    /// revision they were all read at. One RocksDB snapshot serves the counters and the keys,
    /// and the state machine writes both in one batch, so the entries are exactly the state
    /// at that revision even while batches apply. Fails with [`StoreError::RangeTooLarge`]
    /// as soon as the entries' encoded size passes `max_bytes`.
    pub fn range(&self, path: &str, max_bytes: usize) -> Result<(Vec<(String, Record)>, u64), StoreError> {
        let snap = self.db.snapshot();
        let meta: Meta = match snap.get_cf(self.cf(CF_META), b"meta").map_err(rerr)? {
            Some(bytes) => codec::decode(&bytes).map_err(cerr)?,
            None => Meta::default(),
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut take = |key: &[u8], value: &[u8]| -> Result<(), StoreError> {
            bytes += range_entry_size(key, value);
            if bytes > max_bytes {
                return Err(StoreError::RangeTooLarge {
                    path: path.to_string(),
                    bytes,
                    max: max_bytes,
                });
            }
            let record: Record = codec::decode(value).map_err(cerr)?;
            out.push((String::from_utf8_lossy(key).into_owned(), record));
            Ok(())
        };
        // `path` itself sorts before its descendants, but keys such as `path-x` or `path.x`
        // sort between them: the key and the subtree are read apart.
        if path != "/" {
            if let Some(value) = snap.get_cf(self.cf(CF_KV), path.as_bytes()).map_err(rerr)? {
                take(path.as_bytes(), &value)?;
            }
        }
        let prefix = core::child_prefix(path);
        let it = snap.iterator_cf(
            self.cf(CF_KV),
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        );
        for item in it {
            let (key, value) = item.map_err(rerr)?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            take(&key, &value)?;
        }
        Ok((out, meta.revision))
    }

    /// One watch answer: the events under `prefix` from `from` on, cut by `limits` (see
    /// [`core::Pager`]), and where the next answer starts. Fails with
    /// [`StoreError::Compacted`] below the history.
    pub fn events(
        &self,
        prefix: &str,
        from: Position,
        limits: PageLimits,
    ) -> Result<(Vec<Event>, Position), StoreError> {
        // Read the counters first: events up to `meta.revision` are all written by then.
        let meta = self.meta()?;
        if from.revision < meta.oldest {
            return Err(StoreError::Compacted {
                requested: from.revision,
                oldest: meta.oldest,
            });
        }
        let start = event_key(from.revision, from.seq);
        let it = self
            .db
            .iterator_cf(self.cf(CF_EVENTS), IteratorMode::From(&start, Direction::Forward));
        let mut pager = Pager::new(limits);
        for item in it {
            let (k, v) = item.map_err(rerr)?;
            let at = position_of(&k)?;
            if at.revision > meta.revision {
                break;
            }
            let event: Event = codec::decode(&v).map_err(cerr)?;
            // The stored event is its answer's encoding behind the 3-byte envelope header.
            let wanted = event.path.starts_with(prefix).then_some(event);
            if pager.offer(at, v.len(), wanted) == Offered::Full {
                break;
            }
        }
        let end = Position::at(meta.revision + 1).max(from);
        let page = pager.finish(end);
        // A compaction may have raced with the scan: check again.
        let after = self.meta()?;
        if from.revision < after.oldest {
            return Err(StoreError::Compacted {
                requested: from.revision,
                oldest: after.oldest,
            });
        }
        Ok(page)
    }

    /// The approximate size of the database on disk, in bytes.
    pub fn size_bytes(&self) -> u64 {
        ALL_CFS
            .iter()
            .map(|cf| {
                let live = self
                    .db
                    .property_int_value_cf(self.cf(cf), "rocksdb.live-sst-files-size")
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                let mem = self
                    .db
                    .property_int_value_cf(self.cf(cf), "rocksdb.cur-size-all-mem-tables")
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                live + mem
            })
            .sum()
    }
}

impl KvRead for Db {
    fn get(&self, path: &str) -> Result<Option<Record>, StoreError> {
        Db::get(self, path)
    }

    fn scan(&self, prefix: &str, f: &mut dyn FnMut(&str, &Record) -> bool) -> Result<(), StoreError> {
        let it = self.db.iterator_cf(
            self.cf(CF_KV),
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(rerr)?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let record: Record = codec::decode(&v).map_err(cerr)?;
            if !f(&String::from_utf8_lossy(&k), &record) {
                break;
            }
        }
        Ok(())
    }
}

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
        self.durability.stall_syncs(false);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the syncer thread is handed after an append.
enum SyncItem {
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
        let vote = db
            .get_typed::<Vote<ReplicaId>>(CF_RAFT, b"vote")
            .map_err(|e| corrupt(e.to_string()))?;
        let purged = last_purged(&db).map_err(|e| corrupt(e.to_string()))?;
        let last = last_log_id(&db, None, purged).map_err(corrupt)?;
        let durability = Arc::new(Durability::new(last));
        let (tx, rx) = mpsc::channel::<SyncItem>();
        let syncs = Arc::new(AtomicU64::new(0));
        let pending = Arc::new(AtomicUsize::new(0));
        let sync_db = db.db.clone();
        let counter = syncs.clone();
        let tracker = durability.clone();
        let in_flight = pending.clone();
        let thread = std::thread::Builder::new()
            .name("store-log-sync".into())
            .spawn(move || sync_loop(&sync_db, &tracker, &counter, &in_flight, &rx))
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
        })
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

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), rocksdb::Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        self.db.db.write_opt(batch, &opts)
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
fn last_purged(db: &Db) -> Result<Option<LogId<ReplicaId>>, StoreError> {
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
fn sync_loop(
    db: &DB,
    durability: &Durability,
    syncs: &AtomicU64,
    pending: &AtomicUsize,
    rx: &mpsc::Receiver<SyncItem>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        durability.wait_unstalled();
        let result = sync_wal(db, durability, syncs);
        if let Err(e) = &result {
            if batch.iter().any(|i| matches!(i, SyncItem::Durable)) {
                // The leader already counted these entries as on its disk; that cannot be
                // taken back, and going on could lose acknowledged writes.
                tracing::error!(error = %e, "fsync of the Raft log failed after the leader acknowledged it; aborting");
                std::process::abort();
            }
        }
        let n = batch.len();
        for item in batch {
            if let SyncItem::Flush(cb) = item {
                cb.log_io_completed(io_result(&result));
            }
        }
        pending.fetch_sub(n, Ordering::AcqRel);
    }
}

/// One fsync of the WAL; on success everything written before it is durable.
fn sync_wal(db: &DB, durability: &Durability, syncs: &AtomicU64) -> Result<(), rocksdb::Error> {
    let mark = durability.before_sync();
    let result = db.flush_wal(true);
    syncs.fetch_add(1, Ordering::Relaxed);
    if result.is_ok() {
        durability.synced(mark);
    }
    result
}

fn io_result(result: &Result<(), rocksdb::Error>) -> Result<(), std::io::Error> {
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
        self.appends.fetch_add(n, Ordering::Relaxed);
        // The leader's own entries: openraft may replicate them now, while the syncer writes
        // them to disk; see `durable` for why that is safe.
        let item = if self.leads(&entries) {
            callback.log_io_completed(Ok(()));
            SyncItem::Durable
        } else if self.syncer.idle() {
            // A follower's append: openraft 0.9's core waits for its flush before it does
            // anything else (and the leader for the answer before it sends more entries), so
            // handing it to the syncer thread batches nothing and costs a thread wake-up
            // each way.
            let result = sync_wal(&self.db.db, &self.durability, &self.syncs);
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

/// Raw rows of a column family.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// A snapshot's contents: the state machine's column families as they were.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    kv: Rows,
    events: Rows,
    meta: Meta,
    applied: Option<LogId<ReplicaId>>,
    membership: StoredMembership<ReplicaId, Node>,
}

/// A snapshot as kept on disk: its metadata and bytes.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<ReplicaId, Node>,
    data: Vec<u8>,
}

/// The state machine: keys, history and counters in RocksDB.
pub struct StateMachine {
    db: Db,
    retain: u64,
    applied: Option<LogId<ReplicaId>>,
    membership: StoredMembership<ReplicaId, Node>,
    meta: Meta,
    revision_tx: Arc<watch::Sender<u64>>,
    applied_tx: Arc<watch::Sender<Option<LogId<ReplicaId>>>>,
    snapshot_seq: Arc<AtomicU64>,
    snapshot_lock: Arc<Mutex<()>>,
    /// When set, entries are applied only once this replica's log holds them on disk.
    durability: Option<Arc<Durability>>,
}

impl Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("applied", &self.applied)
            .field("meta", &self.meta)
            .finish()
    }
}

impl StateMachine {
    /// The state machine over `db`, keeping `retain` revisions of watch history.
    pub fn new(db: Db, retain: u64) -> Result<StateMachine, OpenError> {
        let corrupt = |e: StoreError| OpenError::Corrupt {
            path: db.db.path().display().to_string(),
            reason: e.to_string(),
        };
        let meta = db.meta().map_err(corrupt)?;
        let applied = db
            .get_typed::<Option<LogId<ReplicaId>>>(CF_META, b"applied")
            .map_err(corrupt)?
            .flatten();
        let membership = db
            .get_typed(CF_META, b"membership")
            .map_err(corrupt)?
            .unwrap_or_default();
        let (tx, _) = watch::channel(meta.revision);
        Ok(StateMachine {
            db,
            retain,
            applied,
            membership,
            meta,
            revision_tx: Arc::new(tx),
            applied_tx: Arc::new(watch::channel(applied).0),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
            snapshot_lock: Arc::new(Mutex::new(())),
            durability: None,
        })
    }

    /// Applies entries only once `durability` says they are on this replica's disk (the
    /// first rule in [`super::durable`]).
    pub fn apply_when_durable(mut self, durability: Arc<Durability>) -> Self {
        self.durability = Some(durability);
        self
    }

    /// A receiver of the applied revision: changes after every applied batch.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    /// A receiver of the last applied log id: changes after every applied batch.
    pub fn applied(&self) -> watch::Receiver<Option<LogId<ReplicaId>>> {
        self.applied_tx.subscribe()
    }

    fn write_changes(&mut self, changes: Changes) -> Result<(), StoreError> {
        let db = &self.db;
        let mut batch = WriteBatch::default();
        let kv = db.cf(CF_KV);
        for (path, record) in &changes.keys {
            match record {
                Some(r) => batch.put_cf(kv, path.as_bytes(), codec::encode(r).map_err(cerr)?),
                None => batch.delete_cf(kv, path.as_bytes()),
            }
        }
        let ev = db.cf(CF_EVENTS);
        let mut seq = 0u32;
        let mut last_rev = 0;
        for e in &changes.events {
            if e.revision != last_rev {
                seq = 0;
                last_rev = e.revision;
            }
            batch.put_cf(ev, event_key(e.revision, seq), codec::encode(e).map_err(cerr)?);
            seq += 1;
        }
        if let Some(below) = changes.compact_below {
            batch.delete_range_cf(ev, event_key(0, 0), event_key(below, 0));
        }
        let meta_cf = db.cf(CF_META);
        batch.put_cf(meta_cf, b"meta", codec::encode(&changes.meta).map_err(cerr)?);
        batch.put_cf(meta_cf, b"applied", codec::encode(&self.applied).map_err(cerr)?);
        batch.put_cf(
            meta_cf,
            b"membership",
            codec::encode(&self.membership).map_err(cerr)?,
        );
        let mut opts = WriteOptions::default();
        opts.disable_wal(true);
        db.db.write_opt(batch, &opts).map_err(rerr)?;
        self.meta = changes.meta;
        self.revision_tx.send_replace(self.meta.revision);
        self.applied_tx.send_replace(self.applied);
        Ok(())
    }

    fn read_current_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        self.db.get_typed(CF_META, b"snapshot")
    }

    /// Replaces the state machine by a snapshot's contents (and keeps the snapshot as the
    /// current one when `keep`), in one batch written through the WAL and synced: an
    /// installed snapshot survives a crash even though later applies may not.
    fn restore(
        &mut self,
        meta: &SnapshotMeta<ReplicaId, Node>,
        bytes: Vec<u8>,
        keep: bool,
    ) -> Result<(), StoreError> {
        let data: SnapshotData = codec::decode(&bytes).map_err(cerr)?;
        let db = &self.db;
        let mut batch = WriteBatch::default();
        for (cf, rows) in [(CF_KV, &data.kv), (CF_EVENTS, &data.events)] {
            let handle = db.cf(cf);
            batch.delete_range_cf(handle, [0u8].as_slice(), [0xffu8; 16].as_slice());
            batch.delete_cf(handle, [] as [u8; 0]);
            for (k, v) in rows {
                batch.put_cf(handle, k, v);
            }
        }
        let meta_cf = db.cf(CF_META);
        batch.put_cf(meta_cf, b"meta", enc(&data.meta)?);
        batch.put_cf(meta_cf, b"applied", enc(&meta.last_log_id)?);
        batch.put_cf(meta_cf, b"membership", enc(&meta.last_membership)?);
        if keep {
            let stored = StoredSnapshot {
                meta: meta.clone(),
                data: bytes,
            };
            batch.put_cf(meta_cf, b"snapshot", enc(&stored)?);
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.db.write_opt(batch, &opts).map_err(rerr)?;
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.meta = data.meta;
        self.revision_tx.send_replace(self.meta.revision);
        self.applied_tx.send_replace(self.applied);
        Ok(())
    }
}

/// Builds snapshots from a consistent RocksDB snapshot.
pub struct SnapshotBuilder {
    db: Db,
    seq: Arc<AtomicU64>,
    lock: Arc<Mutex<()>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SError> {
        let db = self.db.clone();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let lock = self.lock.clone();
        let stored = tokio::task::spawn_blocking(move || -> Result<StoredSnapshot, StoreError> {
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            // Rule 1: the state machine on disk reaches this snapshot before openraft may
            // purge the log up to it.
            db.flush_all().map_err(rerr)?;
            let snap = db.db.snapshot();
            let read = |cf: &str, key: &[u8]| snap.get_cf(db.cf(cf), key).map_err(rerr);
            let dump = |cf: &str| -> Result<Rows, StoreError> {
                snap.iterator_cf(db.cf(cf), IteratorMode::Start)
                    .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(rerr))
                    .collect()
            };
            let meta: Meta = match read(CF_META, b"meta")? {
                Some(b) => codec::decode(&b).map_err(cerr)?,
                None => Meta::default(),
            };
            let applied: Option<LogId<ReplicaId>> = match read(CF_META, b"applied")? {
                Some(b) => codec::decode(&b).map_err(cerr)?,
                None => None,
            };
            let membership: StoredMembership<ReplicaId, Node> = match read(CF_META, b"membership")? {
                Some(b) => codec::decode(&b).map_err(cerr)?,
                None => StoredMembership::default(),
            };
            let data = SnapshotData {
                kv: dump(CF_KV)?,
                events: dump(CF_EVENTS)?,
                meta,
                applied,
                membership: membership.clone(),
            };
            let bytes = codec::encode(&data).map_err(cerr)?;
            let snapshot_id = match applied {
                Some(l) => format!("{}-{}-{seq}", l.leader_id, l.index),
                None => format!("none-{seq}"),
            };
            let stored = StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: applied,
                    last_membership: membership,
                    snapshot_id,
                },
                data: bytes,
            };
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            let mut batch = WriteBatch::default();
            batch.put_cf(db.cf(CF_META), b"snapshot", codec::encode(&stored).map_err(cerr)?);
            db.db.write_opt(batch, &opts).map_err(rerr)?;
            Ok(stored)
        })
        .await
        .map_err(|e| sio(StorageIOError::write_snapshot_none, &e))?
        .map_err(|e| sio(StorageIOError::write_snapshot_none, &e))?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

trait SnapshotErr {
    fn write_snapshot_none(e: openraft::AnyError) -> Self;
    fn read_snapshot_none(e: openraft::AnyError) -> Self;
}

impl SnapshotErr for StorageIOError<ReplicaId> {
    fn write_snapshot_none(e: openraft::AnyError) -> Self {
        StorageIOError::write_snapshot(None, e)
    }
    fn read_snapshot_none(e: openraft::AnyError) -> Self {
        StorageIOError::read_snapshot(None, e)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<ReplicaId>>, StoredMembership<ReplicaId, Node>), SError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<core::Outcome>>, SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        if let (Some(durability), Some(last)) = (&self.durability, entries.last()) {
            durability.wait_for(last.log_id.index).await;
        }
        let db = self.db.clone();
        let mut applier = Applier::new(&db, self.meta, self.retain);
        let mut out = Vec::new();
        for entry in entries {
            self.applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Vec::new()),
                EntryPayload::Normal(batch) => {
                    let mut outcomes = Vec::with_capacity(batch.0.len());
                    for cmd in &batch.0 {
                        let outcome = applier.apply(cmd);
                        if let Err(StoreError::Storage { reason }) = &outcome {
                            return Err(sio(
                                StorageIOError::write_state_machine,
                                &std::io::Error::other(reason.clone()),
                            ));
                        }
                        outcomes.push(outcome);
                    }
                    out.push(outcomes);
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Vec::new());
                }
            }
        }
        let changes = applier.finish();
        self.write_changes(changes)
            .map_err(|e| sio(StorageIOError::write_state_machine, &e))?;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            seq: self.snapshot_seq.clone(),
            lock: self.snapshot_lock.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<ReplicaId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SError> {
        self.restore(meta, snapshot.into_inner(), true)
            .map_err(|e| sio(StorageIOError::write_snapshot_none, &e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SError> {
        let stored = self
            .read_current_snapshot()
            .map_err(|e| sio(StorageIOError::read_snapshot_none, &e))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(v).map_err(cerr)
}

/// Opens replica `id`'s log store and state machine in `dir`, the state machine applying
/// only what the log holds on disk.
pub fn open(dir: &Path, retain: u64, id: ReplicaId) -> Result<(Db, LogStore, StateMachine), OpenError> {
    open_db(Db::open(dir)?, retain, id)
}

fn open_db(db: Db, retain: u64, id: ReplicaId) -> Result<(Db, LogStore, StateMachine), OpenError> {
    let log = LogStore::new(db.clone(), id)?;
    let mut sm = StateMachine::new(db.clone(), retain)?.apply_when_durable(log.durability());
    catch_up_to_purged(&db, &mut sm).map_err(|reason| OpenError::Corrupt {
        path: db.db.path().display().to_string(),
        reason,
    })?;
    Ok((db, log, sm))
}

/// Rule 2 of the module docs: a state machine that a crash left behind the purged log cannot
/// re-apply from it, so it starts from the stored snapshot, which covers the purged entries.
fn catch_up_to_purged(db: &Db, sm: &mut StateMachine) -> Result<(), String> {
    let purged = last_purged(db).map_err(|e| e.to_string())?;
    let index = |l: Option<LogId<ReplicaId>>| l.map(|l| l.index);
    if index(purged) <= index(sm.applied) {
        return Ok(());
    }
    let stored = sm.read_current_snapshot().map_err(|e| e.to_string())?;
    match stored {
        Some(s) if index(s.meta.last_log_id) >= index(purged) => {
            tracing::info!(
                applied = ?sm.applied,
                ?purged,
                snapshot = ?s.meta.last_log_id,
                "the state machine is behind the purged log; restoring the stored snapshot"
            );
            let meta = s.meta.clone();
            sm.restore(&meta, s.data, false).map_err(|e| e.to_string())
        }
        other => Err(format!(
            "the log is purged up to {:?} but the state machine has applied only up to {:?} \
             and no stored snapshot covers the gap (snapshot: {:?})",
            index(purged),
            index(sm.applied),
            other.map(|s| index(s.meta.last_log_id)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::testing::{StoreBuilder, Suite};

    use super::*;

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
            let expected: Vec<(String, core::Record)> =
                state.into_iter().filter(|(k, _)| in_range(k)).collect();
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
}
