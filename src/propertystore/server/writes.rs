//! The write path: a write is checked (leader, free space) and queued for the write
//! batcher, which proposes everything queued as one [`Batch`] log entry (group commit at the
//! Raft level) and answers each write with its own outcome.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::dispatch::{is_leader, not_leader};
use super::Shared;
use crate::propertystore::core::{Batch, Command};
use crate::propertystore::protocol::StoreResponse;
use crate::propertystore::StoreRaft;
use crate::telemetry::marks::{self, Stage};

pub(super) async fn write(shared: &Shared, cmd: Command) -> StoreResponse {
    if let Command::Txn(txn) = &cmd {
        if let Err(e) = txn.validate() {
            return StoreResponse::Error(e);
        }
    }
    if !is_leader(shared) {
        return not_leader(shared);
    }
    if let Err(e) = shared.space.admit(&cmd) {
        return StoreResponse::Error(e);
    }
    let _timed = shared.metrics.time_write();
    let (tx, rx) = oneshot::channel();
    if shared.writes.send((cmd, tx)).await.is_err() {
        return StoreResponse::Unavailable {
            reason: "shutting down".into(),
        };
    }
    rx.await.unwrap_or_else(|_| StoreResponse::OutcomeUnknown {
        reason: "the replica stopped while the write was in flight".into(),
    })
}

/// A write waiting to be proposed, and where its answer goes.
pub(super) type WriteJob = (Command, oneshot::Sender<StoreResponse>);

/// The most bytes of commands proposed in one log entry (a single larger transaction goes
/// alone).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// The most commands proposed in one log entry.
const MAX_BATCH_COMMANDS: usize = 4096;
/// Batches proposed and not yet answered at once.
const MAX_BATCHES_IN_FLIGHT: usize = 2;

/// Group commit at the Raft level: concurrent writes are proposed together, as one [`Batch`]
/// entry, so that openraft's per-entry work (log id, replication bookkeeping, apply) is paid
/// once per batch. A batch is formed when a slot frees up, from everything queued by then.
pub(super) async fn write_batcher(raft: StoreRaft, mut rx: mpsc::Receiver<WriteJob>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_BATCHES_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.0.approx_size();
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.0.approx_size();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (cmds, txs): (Vec<Command>, Vec<oneshot::Sender<StoreResponse>>) = jobs.into_iter().unzip();
            marks::mark(Stage::Proposed, cmds.len() as u64);
            match raft.client_write(Batch(cmds)).await {
                Ok(resp) => {
                    let mut outcomes = resp.data.into_iter();
                    for tx in txs {
                        let answer = match outcomes.next() {
                            Some(Ok(w)) => StoreResponse::Written(w),
                            Some(Err(e)) => StoreResponse::Error(e),
                            None => StoreResponse::OutcomeUnknown {
                                reason: "the state machine gave no outcome".into(),
                            },
                        };
                        let _ = tx.send(answer);
                    }
                }
                // openraft also answers ForwardToLeader for an entry this replica appended and
                // then truncated when a new leader overwrote it; another replica may still
                // hold that entry and commit it later. So once proposed, any failure is
                // "outcome unknown".
                Err(e) => {
                    let reason = e.to_string();
                    for tx in txs {
                        let _ = tx.send(StoreResponse::OutcomeUnknown {
                            reason: reason.clone(),
                        });
                    }
                }
            }
        });
    }
}
