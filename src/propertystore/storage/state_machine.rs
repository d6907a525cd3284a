//! The state machine ([`StateMachine`]): keys, watch history and counters written without
//! the WAL, one batch per apply; snapshots built from a RocksDB snapshot after a flush (rule
//! 1 of the `storage` docs) and installed through the WAL.

use std::fmt::Debug;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::watch;
use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError, StoredMembership,
};
use rocksdb::{IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use super::{cerr, enc, event_key, rerr, sio, Db, Node, OpenError, SError, CF_EVENTS, CF_KV, CF_META};
use crate::codec;
use crate::propertystore::core::{self, Applier, Changes, Meta, StoreError};
use crate::propertystore::durable::Durability;
use crate::propertystore::{ReplicaId, TypeConfig};
use crate::telemetry::marks::{self, Stage};

/// Raw rows of a column family.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// A snapshot's contents: the state machine's column families as they were.
#[derive(Serialize, Deserialize)]
struct SnapshotData {
    kv: Rows,
    events: Rows,
    meta: Meta,
    pub(super) applied: Option<LogId<ReplicaId>>,
    membership: StoredMembership<ReplicaId, Node>,
}

/// A snapshot as kept on disk: its metadata and bytes.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredSnapshot {
    pub(super) meta: SnapshotMeta<ReplicaId, Node>,
    pub(super) data: Vec<u8>,
}

/// The state machine: keys, history and counters in RocksDB.
pub struct StateMachine {
    db: Db,
    retain: u64,
    pub(super) applied: Option<LogId<ReplicaId>>,
    membership: StoredMembership<ReplicaId, Node>,
    meta: Meta,
    revision_tx: Arc<watch::Sender<u64>>,
    applied_tx: Arc<watch::Sender<Option<LogId<ReplicaId>>>>,
    snapshot_seq: Arc<AtomicU64>,
    snapshot_lock: Arc<Mutex<()>>,
    /// Build snapshots on the calling task rather than a blocking thread (the simulation).
    snapshot_inline: bool,
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
            snapshot_inline: false,
            durability: None,
        })
    }

    /// Builds snapshots on the task that asks for one, blocking the runtime while it does,
    /// instead of on a blocking thread: a thread outside the runtime finishes at a moment of
    /// wall time, which would make the deterministic simulation's runs unrepeatable.
    pub fn build_snapshots_inline(&mut self) {
        self.snapshot_inline = true;
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
        marks::mark(Stage::Applied, self.meta.revision);
        self.revision_tx.send_replace(self.meta.revision);
        self.applied_tx.send_replace(self.applied);
        Ok(())
    }

    pub(super) fn read_current_snapshot(&self) -> Result<Option<StoredSnapshot>, StoreError> {
        self.db.get_typed(CF_META, b"snapshot")
    }

    /// Replaces the state machine by a snapshot's contents (and keeps the snapshot as the
    /// current one when `keep`), in one batch written through the WAL and synced: an
    /// installed snapshot survives a crash even though later applies may not.
    pub(super) fn restore(
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
        db.synced_wal();
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
    inline: bool,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SError> {
        let db = self.db.clone();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let lock = self.lock.clone();
        let build = move || -> Result<StoredSnapshot, StoreError> {
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
            #[cfg(any(test, feature = "testing"))]
            pause_for_tests();
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
            db.synced_wal();
            Ok(stored)
        };
        let built = if self.inline {
            build()
        } else {
            tokio::task::spawn_blocking(build)
                .await
                .map_err(|e| sio(StorageIOError::write_snapshot_none, &e))?
        };
        let stored = built.map_err(|e| sio(StorageIOError::write_snapshot_none, &e))?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

/// Set (in ms) in a replica's environment, a snapshot pauses this long between reading the
/// state machine and storing the snapshot, and says so on stderr: a test SIGKILLs the process
/// in the middle of a snapshot. Test-only (the `testing` feature).
#[cfg(any(test, feature = "testing"))]
pub const PAUSE_SNAPSHOT_ENV: &str = "STRAND_TEST_PAUSE_SNAPSHOT_MS";

#[cfg(any(test, feature = "testing"))]
fn pause_for_tests() {
    let Some(ms) = std::env::var(PAUSE_SNAPSHOT_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    tracing::warn!(ms, "snapshot paused for a test");
    std::thread::sleep(std::time::Duration::from_millis(ms));
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
            inline: self.snapshot_inline,
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
