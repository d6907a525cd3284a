//! RocksDB storage behind openraft 0.9's storage-v2 traits: the Raft log and vote
//! ([`LogStore`]) and the state machine ([`StateMachine`]) in one database, so that one
//! write-ahead log orders everything and a crash recovers a consistent prefix.
//!
//! ```text
//!   column families:  log     index (u64 BE)            → Entry
//!                     raft    "vote" "committed" "purged"
//!                     kv      path                      → Record
//!                     events  revision (u64 BE) seq (u32 BE) → Event
//!                     meta    "meta" "applied" "membership" "snapshot" "format"
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
//!
//! **Versions.** Every stored value is a [`codec`] envelope that names its format version,
//! and the directory as a whole records the version it was written with (`meta/"format"`,
//! one raw byte, written when a directory is first opened). [`Db::open`] refuses a directory
//! of another version, and a value of an unknown version read at open, with
//! [`OpenError::UnsupportedVersion`]; a directory from before the marker (all version 1) is
//! marked on open. `tests/fixtures/store-v1/` is a directory written by version 1 that every
//! later build must read (`tests/store/fixture.rs`).
//!
//! The files: [`Db`] (`db.rs`: the database, its column families and the read API the server
//! and the state machine use), `confirm.rs` ([`Db::held_view`]: the applied id, a record and
//! the unapplied log at one RocksDB snapshot, for a confirmation), [`LogStore`] and its syncer (`log.rs`), [`StateMachine`] and
//! snapshots (`state_machine.rs`), [`open`] and the recovery of rule 2 (`recovery.rs`).

mod confirm;
mod crash;
mod db;
mod inline;
mod log;
mod recovery;
mod state_machine;
#[cfg(test)]
mod tests;
mod version;

pub use self::confirm::HeldView;
pub use self::crash::{CrashImage, Cut, CutError};
pub use self::db::Db;
pub use self::log::LogStore;
pub use self::recovery::{open, open_losing_unsynced};
#[cfg(any(test, feature = "testing"))]
pub use self::state_machine::PAUSE_SNAPSHOT_ENV;
pub use self::state_machine::{SnapshotBuilder, StateMachine};

use openraft::{StorageError, StorageIOError};
use serde::Serialize;

use super::core::{Position, StoreError};
use super::ReplicaId;
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
    /// The directory, or a value read from it at open, was written in a format version this
    /// build does not read (by a newer strand, or damaged). Nothing was changed.
    #[error(
        "the store database in {path} holds {what} of format version {found}; this build reads \
         version {supported} only (written by a newer strand?)"
    )]
    UnsupportedVersion {
        /// The data directory.
        path: String,
        /// What carried the version: the directory's marker, or the value read.
        what: String,
        /// The version found.
        found: u8,
        /// The version this build reads and writes.
        supported: u8,
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

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(v).map_err(cerr)
}
