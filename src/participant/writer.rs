//! The participant's store writer: current states and message deletions, in order.
//!
//! One task, so writes of one resource's current state never overtake each other. Jobs that
//! queue while a write is in flight are merged: the latest record of each current state
//! wins, and every finished message is deleted in the same transaction as the current
//! state that reflects it, so the controller never sees a message gone without its result.
//! A failed write is retried (every operation here is idempotent) before the next one.
//!
//! A current state is written only while the session's live-instance record still holds
//! the session's value ([`SessionFence`]): once a session ended, a write of it still queued
//! or being retried is dropped rather than re-creating records the next session cleared.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::Record;
use crate::propertystore::{Cmp, Condition, Op, PropertyStore, Txn};

/// A session's live-instance record and the value it registered: a current state of the
/// session is written only while the record holds that value.
#[derive(Debug, PartialEq, Eq)]
pub struct SessionFence {
    /// `LIVEINSTANCES/<instance>`.
    pub live: String,
    /// The record's raw value as the session registered it.
    pub value: Vec<u8>,
}

/// One thing to write.
#[derive(Debug)]
pub enum WriteJob {
    /// Set (`Some`) or delete (`None`) a current-state record, and delete a message.
    CurrentState {
        /// The session whose state it is.
        session: Arc<SessionFence>,
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

/// One write: the current states of one session and the messages to delete.
#[derive(Default)]
struct Batch {
    session: Option<Arc<SessionFence>>,
    records: BTreeMap<String, Option<Record>>,
    messages: Vec<String>,
}

impl Batch {
    /// Adds `job`, or gives it back when it is another session's current state (it starts
    /// the next batch).
    fn add(&mut self, job: WriteJob) -> Option<WriteJob> {
        match job {
            WriteJob::CurrentState {
                session,
                path,
                record,
                message,
            } => {
                if self.session.as_ref().is_some_and(|s| *s != session) {
                    return Some(WriteJob::CurrentState {
                        session,
                        path,
                        record,
                        message,
                    });
                }
                self.session = Some(session);
                self.records.insert(path, record);
                self.messages.extend(message);
            }
            WriteJob::DeleteMessage(path) => self.messages.push(path),
        }
        None
    }
}

/// Runs the writer until `rx` closes.
pub async fn run(store: PropertyStore, mut rx: mpsc::Receiver<WriteJob>) {
    let mut carried: Option<WriteJob> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut batch = Batch::default();
        batch.add(first);
        for _ in 1..MAX_MERGE {
            match rx.try_recv() {
                Ok(job) => {
                    carried = batch.add(job);
                    if carried.is_some() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        batch.messages.sort();
        batch.messages.dedup();
        let mut delay = Duration::from_millis(20);
        loop {
            match write(&store, &batch).await {
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

async fn write(store: &PropertyStore, batch: &Batch) -> Result<(), crate::propertystore::ClientError> {
    let (records, messages) = (&batch.records, &batch.messages);
    let fence: Vec<Condition> = batch
        .session
        .iter()
        .map(|s| Condition::Value {
            path: s.live.clone(),
            cmp: Cmp::Eq,
            value: s.value.clone(),
        })
        .collect();
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
    // Fast path: the session holds, and every message and removed record is still there.
    let mut conditions = fence.clone();
    conditions.extend(
        messages
            .iter()
            .chain(&removals)
            .map(|p| Condition::Exists { path: p.clone() }),
    );
    let mut success = sets.clone();
    success.extend(messages.iter().chain(&removals).map(|p| delete(p)));
    let written = store
        .txn(Txn {
            conditions,
            success,
            failure: Vec::new(),
        })
        .await?;
    if written.succeeded {
        return Ok(());
    }
    if !sets.is_empty() {
        let written = store
            .txn(Txn {
                conditions: fence,
                success: sets,
                failure: Vec::new(),
            })
            .await?;
        if !written.succeeded {
            tracing::debug!("a current-state write of an ended session dropped");
        }
    }
    // Some messages or records were gone already (deleted by the controller after a
    // session ended, or twice delivered); delete the rest one by one.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedCluster;

    fn state(state: &str) -> Record {
        let mut r = Record::new("db");
        r.set_simple("STATE", state);
        r
    }

    #[tokio::test]
    async fn an_ended_sessions_current_state_is_dropped_and_its_message_still_deleted() {
        let mut cluster = EmbeddedCluster::start(7).await.unwrap();
        let store = cluster.store();
        let live = "/C/LIVEINSTANCES/i".to_string();
        store.set(&live, b"session-1", None).await.unwrap();
        let s1 = Arc::new(SessionFence {
            live: live.clone(),
            value: b"session-1".to_vec(),
        });
        let (tx, rx) = mpsc::channel(16);
        let writer = tokio::spawn(run(store.clone(), rx));
        let cs = |session: &str| format!("/C/INSTANCES/i/CURRENTSTATES/{session}/db");
        let job =
            |session: &Arc<SessionFence>, path: String, message: Option<String>| WriteJob::CurrentState {
                session: session.clone(),
                path,
                record: Some(state("SLAVE")),
                message,
            };

        // While the session holds, its state is written and its message deleted with it.
        store
            .set("/C/INSTANCES/i/MESSAGES/m1", b"{}", None)
            .await
            .unwrap();
        tx.send(job(
            &s1,
            cs("session-1"),
            Some("/C/INSTANCES/i/MESSAGES/m1".into()),
        ))
        .await
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.get(&cs("session-1")).await.unwrap().is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never written while it held"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The session ends (a new one registered); a late write of the old one follows,
        // then one of the new session, which must not be held up or merged with it.
        store.set(&live, b"session-2", None).await.unwrap();
        store
            .set("/C/INSTANCES/i/MESSAGES/m2", b"{}", None)
            .await
            .unwrap();
        tx.send(job(&s1, cs("late"), Some("/C/INSTANCES/i/MESSAGES/m2".into())))
            .await
            .unwrap();
        let s2 = Arc::new(SessionFence {
            live: live.clone(),
            value: b"session-2".to_vec(),
        });
        tx.send(job(&s2, cs("session-2"), None)).await.unwrap();
        // The new session's first job starts the next batch; the one after it is not lost.
        tx.send(job(&s2, cs("session-2b"), None)).await.unwrap();
        drop(tx);
        writer.await.unwrap();

        assert!(store.get("/C/INSTANCES/i/MESSAGES/m1").await.unwrap().is_none());
        assert!(
            store.get(&cs("late")).await.unwrap().is_none(),
            "an ended session's state was written"
        );
        assert!(
            store.get("/C/INSTANCES/i/MESSAGES/m2").await.unwrap().is_none(),
            "the ended session's message is still deleted"
        );
        assert!(
            store.get(&cs("session-2")).await.unwrap().is_some(),
            "the new session's state"
        );
        assert!(
            store.get(&cs("session-2b")).await.unwrap().is_some(),
            "the job after the carried one was lost"
        );
    }
}
