//! A participant's health reports: the application's [`HealthReporter::report`] calls and
//! the built-ins computed from the participant's own transition events, accumulated in a
//! [`Pending`] and written as one record per interval (nothing is written in an interval
//! with nothing new).
//!
//! ```text
//!   report(stat, value, scope) ─┐
//!   TransitionEvent stream ─────┴► Pending ─ every interval, or flush() ─►
//!                                  set /<C>/INSTANCES/<i>/HEALTHREPORT/ParticipantStats
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Phase, TransitionEvent};
use crate::health::report::{Pending, REPORT_NAME};
use crate::health::{HealthError, Scope};
use crate::model::{Layout, Record};
use crate::propertystore::{ClientError, PropertyStore};

/// How often a participant writes its report unless told otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

type FlushReply = oneshot::Sender<Result<(), ClientError>>;

/// Reports health statistics of one participant (`participant.health()`).
pub struct HealthReporter {
    pending: Arc<Mutex<Pending>>,
    flush: mpsc::Sender<FlushReply>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for HealthReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthReporter").finish_non_exhaustive()
    }
}

impl HealthReporter {
    pub(super) fn start(
        store: PropertyStore,
        layout: &Layout,
        instance: &str,
        interval: Duration,
        events: broadcast::Receiver<TransitionEvent>,
    ) -> Self {
        let pending = Arc::new(Mutex::new(Pending::new()));
        let (flush, flush_rx) = mpsc::channel(16);
        let writer = Writer {
            store,
            path: layout.health_report(instance, REPORT_NAME),
            pending: pending.clone(),
            unwritten: None,
        };
        let task = tokio::spawn(writer.run(interval.max(Duration::from_millis(10)), events, flush_rx));
        HealthReporter { pending, flush, task }
    }

    /// Reports one value of `stat` about `scope` (the instance as a whole, a resource or a
    /// partition); it is written with the next report, as the interval's mean if reported
    /// several times. Refused: a bad stat or scope name, a value that is not finite.
    pub fn report(&self, stat: &str, value: f64, scope: Scope) -> Result<(), HealthError> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report(stat, value, scope)
    }

    /// Writes what is pending now instead of at the end of the interval.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || ClientError::Unavailable {
            reason: "the participant stopped".into(),
        };
        self.flush.send(tx).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

impl Drop for HealthReporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Writer {
    store: PropertyStore,
    path: String,
    pending: Arc<Mutex<Pending>>,
    /// A record whose write failed, written again at the next chance.
    unwritten: Option<Record>,
}

fn now_us() -> u64 {
    super::now_us()
}

impl Writer {
    async fn run(
        mut self,
        interval: Duration,
        mut events: broadcast::Receiver<TransitionEvent>,
        mut flush: mpsc::Receiver<FlushReply>,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        loop {
            tokio::select! {
                biased;
                e = events.recv(), if events_open => match e {
                    Ok(e) => self.note(&e),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => events_open = false,
                },
                reply = flush.recv() => match reply {
                    Some(reply) => {
                        // Take in the events already sent before writing.
                        while let Ok(e) = events.try_recv() {
                            self.note(&e);
                        }
                        let _ = reply.send(self.write().await);
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    if let Err(e) = self.write().await {
                        tracing::debug!(path = %self.path, error = %e, "writing the health report");
                    }
                }
            }
        }
    }

    fn note(&self, e: &TransitionEvent) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match e.phase {
            Phase::Begin => p.transition_begun(&e.msg_id, &e.resource, e.ts_us),
            Phase::Ok => p.transition_ended(&e.msg_id, Some(true), e.ts_us),
            Phase::Error => p.transition_ended(&e.msg_id, Some(false), e.ts_us),
            Phase::Cancelled => p.transition_ended(&e.msg_id, None, e.ts_us),
            Phase::Discarded => {}
        }
    }

    async fn write(&mut self) -> Result<(), ClientError> {
        let taken = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(now_us() / 1000);
        let Some(record) = taken.or_else(|| self.unwritten.take()) else {
            return Ok(());
        };
        match self
            .store
            .set(&self.path, record.to_helix_json().as_bytes(), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                self.unwritten = Some(record);
                Err(e)
            }
        }
    }
}
