//! The participant's store writer: current states and message deletions, in order.
//!
//! One task, so writes of one resource's current state never overtake each other. Jobs that
//! queue while a write is in flight are merged: the latest record of each current state
//! wins, and every finished message is deleted in the same transaction as the current
//! state that reflects it, so the controller never sees a message gone without its result.
//! A failed write is retried (every operation here is idempotent) before the next one.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::Record;
use crate::propertystore::{Condition, Op, PropertyStore, Txn};

/// One thing to write.
#[derive(Debug)]
pub enum WriteJob {
    /// Set (`Some`) or delete (`None`) a current-state record, and delete a message.
    CurrentState {
        /// The record's path.
        path: String,
        /// Its new content; `None` when the session holds nothing of the resource any more.
        record: Option<Record>,
        /// The message whose result this is.
        message: Option<String>,
    },
    /// Delete a message (it was discarded).
    DeleteMessage(String),
}

/// At most this many jobs are merged into one write.
const MAX_MERGE: usize = 64;

/// Runs the writer until `rx` closes.
pub async fn run(store: PropertyStore, mut rx: mpsc::Receiver<WriteJob>) {
    while let Some(first) = rx.recv().await {
        let mut records: BTreeMap<String, Option<Record>> = BTreeMap::new();
        let mut messages: Vec<String> = Vec::new();
        let mut add = |job: WriteJob| match job {
            WriteJob::CurrentState {
                path,
                record,
                message,
            } => {
                records.insert(path, record);
                messages.extend(message);
            }
            WriteJob::DeleteMessage(path) => messages.push(path),
        };
        add(first);
        for _ in 1..MAX_MERGE {
            match rx.try_recv() {
                Ok(job) => add(job),
                Err(_) => break,
            }
        }
        messages.sort();
        messages.dedup();
        let mut delay = Duration::from_millis(20);
        loop {
            match write(&store, &records, &messages).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "writing current states failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

async fn write(
    store: &PropertyStore,
    records: &BTreeMap<String, Option<Record>>,
    messages: &[String],
) -> Result<(), crate::propertystore::ClientError> {
    let mut sets = Vec::new();
    let mut removals = Vec::new();
    for (path, record) in records {
        match record {
            Some(r) => sets.push(Op::Set {
                path: path.clone(),
                value: r.to_bytes(),
                expected_version: None,
            }),
            None => removals.push(path.clone()),
        }
    }
    // Fast path: every message and removed record is still there.
    let conditions: Vec<Condition> = messages
        .iter()
        .chain(&removals)
        .map(|p| Condition::Exists { path: p.clone() })
        .collect();
    let mut success = sets.clone();
    success.extend(messages.iter().chain(&removals).map(|p| delete(p)));
    let written = store
        .txn(Txn {
            conditions,
            success,
            failure: sets,
        })
        .await?;
    if written.succeeded {
        return Ok(());
    }
    // Some were gone already (deleted by the controller after a session ended, or twice
    // delivered); delete the rest one by one.
    for p in messages.iter().chain(&removals) {
        store
            .txn(Txn {
                conditions: vec![Condition::Exists { path: p.clone() }],
                success: vec![delete(p)],
                failure: Vec::new(),
            })
            .await?;
    }
    Ok(())
}

fn delete(path: &str) -> Op {
    Op::Delete {
        path: path.to_string(),
        expected_version: None,
        recursive: false,
    }
}
