//! The simulation's log syncs ([`super::LogStore::sync_inline`]): no thread outside the
//! async runtime takes part, so a run on a paused clock replays identically.
//!
//! ```text
//!   append ─► disk not stalled, nothing queued ─► fsync on the appending task, complete
//!          └► otherwise ─► queue (log order) ─► drain task: wait until unstalled,
//!                                               one fsync for the queue, complete
//! ```
//!
//! While the disk is stalled (`Durability::stall_syncs`), appends are queued in log order
//! and one task on the runtime syncs them when the stall ends, as the syncer thread would
//! (it blocks in the same place): a leader's own entries are acknowledged at once (see
//! `durable` for why that is safe), a follower's only once synced. Blocking the appending
//! task instead would stop the whole single-threaded runtime.

use std::sync::{Arc, Mutex};

use openraft::storage::LogFlushed;

use super::log::{complete, Fsync, SyncItem};
use crate::propertystore::TypeConfig;

/// The queue of appends waiting for a stalled disk, and whether a task drains it.
#[derive(Default)]
pub(super) struct InlineSyncs {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    items: Vec<SyncItem>,
    /// A drain task is running; every append queues behind it (completions stay in order).
    draining: bool,
}

impl InlineSyncs {
    /// Handles one append just written: syncs it now if the disk is not stalled and nothing
    /// waits before it, else queues it (acknowledging a leader's own entries at once).
    pub(super) fn append(self: &Arc<Self>, fsync: Fsync, leads: bool, callback: LogFlushed<TypeConfig>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if !q.draining && !fsync.durability().is_stalled() {
            drop(q);
            complete(vec![SyncItem::Flush(callback)], &fsync.run());
            return;
        }
        if leads {
            callback.log_io_completed(Ok(()));
            q.items.push(SyncItem::Durable);
        } else {
            q.items.push(SyncItem::Flush(callback));
        }
        if !q.draining {
            q.draining = true;
            tokio::spawn(self.clone().drain(fsync));
        }
    }

    /// Syncs the queue once the disk is unstalled, until it is empty. The stall ends at the
    /// latest when the log store is dropped (`Syncer`'s drop), so the task never outlives
    /// the replica for long.
    async fn drain(self: Arc<Self>, fsync: Fsync) {
        loop {
            fsync.durability().unstalled().await;
            let batch = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if q.items.is_empty() {
                    q.draining = false;
                    return;
                }
                std::mem::take(&mut q.items)
            };
            complete(batch, &fsync.run());
        }
    }
}
