//! Crashes that lose what was not fsynced, for the simulation (issue 19 §1).
//!
//! ```text
//!   every fsync of the WAL ─► SyncedWal: the length of each WAL file then
//!   crash ─► CrashImage (those lengths) ─► replica stops, database closes (no flush)
//!         ─► CrashImage::cut: each WAL file back to its synced length ─► restart replays it
//! ```
//!
//! A process killed by SIGKILL loses nothing RocksDB wrote (the page cache keeps it); a
//! machine that loses power loses every write no fsync covered. An in-process crash of a
//! database opened with [`Db::open_losing_unsynced`] is the second kind:
//!
//! - closing the database does not flush its memtables (`avoid_flush_during_shutdown`), so
//!   the state machine's batches, which skip the WAL, are lost unless a flush (a snapshot,
//!   a full memtable) wrote them to table files, which RocksDB syncs;
//! - after every fsync of the WAL strand makes (the log's syncs; the `sync = true` writes:
//!   the vote, a truncation, a built or installed snapshot) the length of every WAL file is
//!   recorded, and the crash cuts every WAL file back to it (a file created since is
//!   emptied). What it drops is what was appended to the WAL after the last fsync: log
//!   entries a stalled disk had not synced, the commit index and purge marks (written
//!   without sync).
//!
//! The lengths are exact when nothing writes between an fsync and the listing after it:
//! true in the simulation, where everything runs on one thread; with the syncer thread a
//! concurrent write could be counted as synced, so this is not for production.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use rocksdb::DB;

use super::{Db, OpenError};

/// The length of each WAL file at the last fsync.
#[derive(Debug, Default)]
pub(super) struct SyncedWal {
    lengths: Mutex<BTreeMap<PathBuf, u64>>,
}

/// The WAL files of the database in `dir`, with their lengths now.
fn wal_files(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, u64>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            out.insert(path, entry.metadata()?.len());
        }
    }
    Ok(out)
}

impl Db {
    /// [`Db::open`] for a replica whose crashes lose what was not fsynced (module docs).
    pub fn open_losing_unsynced(dir: &Path) -> Result<Db, OpenError> {
        let mut bad = None;
        let mut db = Db::open_with(dir, |opts| {
            match opts.get_options_from_string("avoid_flush_during_shutdown=true") {
                Ok(o) => *opts = o,
                Err(e) => bad = Some(e.to_string()),
            }
        })?;
        if let Some(reason) = bad {
            return Err(OpenError::Open {
                path: dir.display().to_string(),
                reason,
            });
        }
        db.synced = Some(Arc::default());
        db.synced_wal();
        Ok(db)
    }

    /// Records the WAL's length after an fsync (when crashes are to lose what was not
    /// synced; nothing otherwise).
    pub(super) fn synced_wal(&self) {
        let Some(synced) = &self.synced else { return };
        match wal_files(self.db.path()) {
            Ok(lengths) => *synced.lengths.lock().unwrap_or_else(|p| p.into_inner()) = lengths,
            // Keeping the older lengths makes a crash lose more than it should, never less.
            Err(e) => tracing::warn!(error = %e, "cannot list the WAL files after an fsync"),
        }
    }

    /// What a crash now keeps of the WAL; `None` unless opened with
    /// [`Db::open_losing_unsynced`].
    pub fn crash_image(&self) -> Option<CrashImage> {
        let synced = self.synced.as_ref()?;
        Some(CrashImage {
            dir: self.db.path().to_path_buf(),
            lengths: synced.lengths.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            db: Arc::downgrade(&self.db),
        })
    }
}

/// The WAL as the last fsync before a crash left it; applied with [`CrashImage::cut`] once
/// the crashed replica's database is closed.
#[derive(Debug)]
pub struct CrashImage {
    dir: PathBuf,
    lengths: BTreeMap<PathBuf, u64>,
    db: Weak<DB>,
}

/// What [`CrashImage::cut`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cut {
    /// WAL bytes written after the last fsync, now gone.
    pub bytes: u64,
    /// WAL files shortened or emptied.
    pub files: usize,
}

/// Why a cut could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CutError {
    /// The database is still open (some task still holds it).
    #[error("the database in {dir} is still open")]
    Open {
        /// The data directory.
        dir: String,
    },
    /// A WAL file could not be listed or shortened.
    #[error("cannot cut the WAL in {dir}: {reason}")]
    Io {
        /// The data directory.
        dir: String,
        /// The error.
        reason: String,
    },
}

impl CrashImage {
    /// Whether the crashed database has closed (every handle dropped).
    pub fn closed(&self) -> bool {
        self.db.strong_count() == 0
    }

    /// Cuts every WAL file back to its length at the last fsync (a file created since is
    /// emptied). The database must be closed.
    pub fn cut(self) -> Result<Cut, CutError> {
        let dir = self.dir.display().to_string();
        if !self.closed() {
            return Err(CutError::Open { dir });
        }
        let io = |e: std::io::Error| CutError::Io {
            dir: dir.clone(),
            reason: e.to_string(),
        };
        let mut cut = Cut::default();
        for (path, now) in wal_files(&self.dir).map_err(io)? {
            let synced = self.lengths.get(&path).copied().unwrap_or(0);
            if now > synced {
                let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(io)?;
                f.set_len(synced).map_err(io)?;
                f.sync_all().map_err(io)?;
                cut.bytes += now - synced;
                cut.files += 1;
            }
        }
        Ok(cut)
    }
}

#[cfg(test)]
mod tests {
    use rocksdb::{WriteBatch, WriteOptions};

    use super::super::{LogStore, CF_KV, CF_RAFT};
    use super::*;

    fn put(log: &LogStore, db: &Db, key: &[u8], sync: bool) {
        let mut batch = WriteBatch::default();
        batch.put_cf(db.cf(CF_RAFT), key, b"v");
        log.write(batch, sync).unwrap();
    }

    #[test]
    fn a_crash_keeps_what_was_fsynced_and_loses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_losing_unsynced(dir.path()).unwrap();
        let log = LogStore::new(db.clone(), 1).unwrap();
        put(&log, &db, b"synced", true);
        put(&log, &db, b"unsynced", false);
        // A state machine batch: it skips the WAL and lives in the memtable until a flush.
        let mut no_wal = WriteOptions::default();
        no_wal.disable_wal(true);
        db.db.put_cf_opt(db.cf(CF_KV), b"applied", b"v", &no_wal).unwrap();
        let image = db.crash_image().expect("opened losing unsynced");
        put(&log, &db, b"after", false);
        assert!(!image.closed());
        drop((log, db));
        let cut = image.cut().unwrap();
        assert!(cut.bytes > 0 && cut.files >= 1, "{cut:?}");

        let db = Db::open(dir.path()).unwrap();
        let has = |cf: &str, k: &[u8]| db.get_raw(cf, k).unwrap().is_some();
        assert!(has(CF_RAFT, b"synced"), "what an fsync covered survives");
        assert!(!has(CF_RAFT, b"unsynced"), "a write no fsync covered is lost");
        assert!(!has(CF_RAFT, b"after"), "so is one made after the crash");
        assert!(!has(CF_KV, b"applied"), "and an unflushed state machine batch");
    }

    #[test]
    fn a_database_opened_as_usual_has_no_crash_image_and_keeps_everything_at_close() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let log = LogStore::new(db.clone(), 1).unwrap();
        put(&log, &db, b"unsynced", false);
        let mut no_wal = WriteOptions::default();
        no_wal.disable_wal(true);
        db.db.put_cf_opt(db.cf(CF_KV), b"applied", b"v", &no_wal).unwrap();
        assert!(db.crash_image().is_none());
        drop((log, db));
        let db = Db::open(dir.path()).unwrap();
        assert!(db.get_raw(CF_RAFT, b"unsynced").unwrap().is_some());
        assert!(db.get_raw(CF_KV, b"applied").unwrap().is_some());
    }
}
