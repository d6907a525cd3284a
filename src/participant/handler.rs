//! What an application implements: an async handler of state transitions.
//!
//! One generic method receives every transition (`OFFLINE→SLAVE`, `SLAVE→MASTER`, …) with a
//! [`Cancellation`] that fires when the transition times out or the session ends; a handler
//! that ignores it is simply not awaited any more. An `Err` puts the replica in `ERROR`.

use crate::watch;
use futures::future::BoxFuture;

/// One transition of one replica, as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The message id (unique; a transition runs at most once per id).
    pub msg_id: String,
    /// The resource.
    pub resource: String,
    /// The partition.
    pub partition: String,
    /// The resource's state model.
    pub state_model: String,
    /// The state the replica leaves.
    pub from: String,
    /// The state it enters.
    pub to: String,
    /// The epoch of the controller that sent it (0: not from a controller — an operator's
    /// reset, or a local step-down).
    pub epoch: u64,
}

/// Why a handler failed a transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HandlerError {
    /// What went wrong, as the application says it.
    pub reason: String,
}

impl HandlerError {
    /// An error with a reason.
    pub fn new(reason: impl Into<String>) -> Self {
        HandlerError {
            reason: reason.into(),
        }
    }
}

/// Tells a running handler that its transition is no longer wanted (timed out, or the
/// session ended). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cancellation {
    rx: watch::Receiver<bool>,
}

/// The side that fires a [`Cancellation`].
#[derive(Debug)]
pub struct CancelHandle {
    tx: watch::Sender<bool>,
}

impl Cancellation {
    /// A new cancellation and the handle that fires it.
    pub fn new() -> (CancelHandle, Cancellation) {
        let (tx, rx) = watch::channel(false);
        (CancelHandle { tx }, Cancellation { rx })
    }

    /// Whether it has fired.
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Completes once it fires (or once its handle is gone).
    pub async fn cancelled(&mut self) {
        let _ = self.rx.wait_for(|c| *c).await;
    }
}

impl CancelHandle {
    /// Fires the cancellation.
    pub fn cancel(&self) {
        let _ = self.tx.send(true);
    }
}

/// The application's side of a participant.
pub trait StateModelHandler: Send + Sync + 'static {
    /// Runs one transition. `Ok` moves the replica to `t.to`; `Err` puts it in `ERROR`.
    fn on_transition(
        &self,
        t: Transition,
        cancel: Cancellation,
    ) -> BoxFuture<'static, Result<(), HandlerError>>;

    /// Told after a transition ended in `ERROR` (failed or timed out).
    fn on_error(&self, _t: &Transition, _reason: &str) {}
}

/// A handler that accepts every transition at once (like Helix's mock participant).
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAll;

impl StateModelHandler for AcceptAll {
    fn on_transition(
        &self,
        _t: Transition,
        _cancel: Cancellation,
    ) -> BoxFuture<'static, Result<(), HandlerError>> {
        Box::pin(async { Ok(()) })
    }
}
