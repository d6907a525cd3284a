//! The read behind a confirmation ([`crate::propertystore::confirm`]): the applied log id,
//! the key's record and the log entries after the applied index, all from one RocksDB
//! snapshot, so they are one moment of this replica. The state machine writes a batch's
//! records with its applied id in one write batch, and appends are visible at once (before
//! their fsync); purges only remove entries at or below a snapshot, which is applied.

use openraft::{Entry, LogId};
use rocksdb::{Direction, IteratorMode};

use super::{cerr, rerr, Db, CF_KV, CF_LOG, CF_META};
use crate::codec;
use crate::propertystore::confirm::{LogScan, Verdict};
use crate::propertystore::core::{Record, StoreError};
use crate::propertystore::{ReplicaId, TypeConfig};

/// What one replica holds for a confirmation.
#[derive(Debug)]
pub struct HeldView {
    /// The last applied log id.
    pub applied: Option<LogId<ReplicaId>>,
    /// The applied state's record at the key.
    pub record: Option<Record>,
    /// The scan of the unapplied entries: `None` when none may change the key.
    pub scan: Option<Verdict>,
}

impl Db {
    /// The applied id, the record at `path` and the scan of up to `max` entries after the
    /// applied index, read at one RocksDB snapshot.
    pub fn held_view(&self, path: &str, max: usize) -> Result<HeldView, StoreError> {
        let snap = self.db.snapshot();
        let applied: Option<LogId<ReplicaId>> =
            match snap.get_cf(self.cf(CF_META), b"applied").map_err(rerr)? {
                Some(bytes) => codec::decode(&bytes).map_err(cerr)?,
                None => None,
            };
        let record: Option<Record> = match snap.get_cf(self.cf(CF_KV), path.as_bytes()).map_err(rerr)? {
            Some(bytes) => Some(codec::decode(&bytes).map_err(cerr)?),
            None => None,
        };
        let mut scan = LogScan::new(path, applied, max);
        let from = applied.map_or(0, |a| a.index + 1);
        let it = snap.iterator_cf(
            self.cf(CF_LOG),
            IteratorMode::From(&from.to_be_bytes(), Direction::Forward),
        );
        for item in it {
            let more = match item {
                Err(e) => scan.refuse(format!("the log is unreadable: {e}")),
                Ok((k, v)) => match <[u8; 8]>::try_from(k.as_ref()) {
                    Err(_) => scan.refuse(format!("a log key of {} bytes", k.len())),
                    Ok(k) => {
                        let index = u64::from_be_bytes(k);
                        let entry: Result<Entry<TypeConfig>, String> =
                            codec::decode(&v).map_err(|e| e.to_string());
                        scan.offer(index, entry.as_ref().map(|e| &e.payload).map_err(Clone::clone))
                    }
                },
            };
            if !more {
                break;
            }
        }
        Ok(HeldView {
            applied,
            record,
            scan: scan.finish(),
        })
    }
}
