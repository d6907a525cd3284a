//! Opening a replica's storage, and rule 2 of the `storage` docs: a state machine that a
//! crash left behind the purged log starts from the stored snapshot.

use std::path::Path;

use openraft::LogId;

use super::log::last_purged;
use super::{Db, LogStore, OpenError, StateMachine};
use crate::propertystore::ReplicaId;

/// Opens replica `id`'s log store and state machine in `dir`, the state machine applying
/// only what the log holds on disk.
pub fn open(dir: &Path, retain: u64, id: ReplicaId) -> Result<(Db, LogStore, StateMachine), OpenError> {
    open_db(Db::open(dir)?, retain, id)
}

/// [`open`], for a replica whose crashes are to lose what was not fsynced (the
/// simulation): see [`super::CrashImage`].
pub fn open_losing_unsynced(
    dir: &Path,
    retain: u64,
    id: ReplicaId,
) -> Result<(Db, LogStore, StateMachine), OpenError> {
    open_db(Db::open_losing_unsynced(dir)?, retain, id)
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
