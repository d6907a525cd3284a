//! The database: one RocksDB instance with the log's and the state machine's column
//! families, and the reads the server and the state machine make (keys, children, ranges at
//! one revision, pages of the watch history).

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, DB};

use super::crash::SyncedWal;
use super::{cerr, event_key, position_of, rerr, OpenError, ALL_CFS, CF_EVENTS, CF_KV, CF_META};
use crate::codec;
use crate::propertystore::core::{
    self, Event, KvRead, Meta, Offered, PageLimits, Pager, Position, Record, StoreError,
};

/// The opened database shared by the log, the state machine and the server's reads.
#[derive(Clone)]
pub struct Db {
    pub(super) db: Arc<DB>,
    /// The WAL's length at the last fsync, kept when crashes are to lose what was not
    /// synced (see `crash.rs`).
    pub(super) synced: Option<Arc<SyncedWal>>,
}

impl Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.db.path()).finish()
    }
}

/// An upper bound of the bytes one `(key, record)` entry of a range read takes in a reply,
/// from the key and the stored record: the stored record is the record's postcard encoding
/// (as the reply carries it) behind a 3-byte envelope header, and the key gains a length
/// prefix of at most 5 bytes.
pub(super) fn range_entry_size(key: &[u8], stored_record: &[u8]) -> usize {
    key.len() + stored_record.len() + 8
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
    /// Opens (creating if needed) the database in `dir`, refusing one written in another
    /// format version (see `version.rs`).
    pub fn open(dir: &Path) -> Result<Db, OpenError> {
        Db::open_with(dir, |_| {})
    }

    /// [`Db::open`], with `configure` given the options last (tests simulate crashes with it).
    pub(super) fn open_with(dir: &Path, configure: impl FnOnce(&mut Options)) -> Result<Db, OpenError> {
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
        super::version::check(&db)?;
        Ok(Db {
            db: Arc::new(db),
            synced: None,
        })
    }

    /// Flushes every column family's memtables to table files at one sequence number, and
    /// waits for it: everything written so far, WAL or not, is then on disk.
    pub(super) fn flush_all(&self) -> Result<(), rocksdb::Error> {
        let cfs: Vec<&rocksdb::ColumnFamily> = ALL_CFS.iter().map(|name| self.cf(name)).collect();
        let mut opts = rocksdb::FlushOptions::default();
        opts.set_wait(true);
        self.db.flush_cfs_opt(&cfs, &opts)
    }

    pub(super) fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // The column families are created at open; a missing one is a programming error.
        self.db.cf_handle(name).expect("column family created at open")
    }

    pub(super) fn get_raw(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        self.db.get_cf(self.cf(cf), key)
    }

    pub(super) fn get_typed<T: serde::de::DeserializeOwned>(
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
