//! A watch channel (one value, many readers told of each change) whose waiting receivers are
//! woken in the order they began to wait.
//!
//! `tokio::sync::watch` spreads its waiters over eight queues chosen by the runtime's random
//! generator, and wakes the queues one after the other: receivers waiting on one channel are
//! woken in a random order. That generator can be seeded only under `tokio_unstable`, so in
//! the deterministic simulation ([`crate::sim`]) two runs of a seed woke, say, two
//! controllers' watch polls of the same store replica in different orders, and everything
//! after differed. This channel keeps one queue ([`tokio::sync::Notify`], first in first
//! out) and otherwise offers the part of `tokio::sync::watch`'s interface strand uses, with
//! its meaning: a receiver sees the latest value, `changed` waits for a value it has not
//! seen, the channel closes when the sender is dropped (a receiver still sees a last unseen
//! change first), and `send` fails once every receiver is gone.
//!
//! ```text
//!   Sender ── send ──► value + version ──► Notify (FIFO) ──► Receiver::changed / wait_for
//! ```

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::Notify;

/// The errors of a watch channel.
pub mod error {
    /// The sender is gone and no unseen value is left.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    #[error("the watch channel is closed")]
    pub struct RecvError;

    /// Every receiver is gone: the value (given back) was not sent.
    #[derive(PartialEq, Eq, thiserror::Error)]
    #[error("the watch channel has no receivers")]
    pub struct SendError<T>(pub T);

    impl<T> std::fmt::Debug for SendError<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SendError(..)")
        }
    }
}

use self::error::{RecvError, SendError};

struct Shared<T> {
    value: RwLock<T>,
    /// Bumped (under the value's write lock) by every change.
    version: AtomicU64,
    /// The sender is gone.
    closed: AtomicBool,
    receivers: AtomicUsize,
    changed: Notify,
}

impl<T> Shared<T> {
    fn read(&self) -> RwLockReadGuard<'_, T> {
        self.value.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.value.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A new channel holding `init`.
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: RwLock::new(init),
        version: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        receivers: AtomicUsize::new(1),
        changed: Notify::new(),
    });
    let rx = Receiver {
        shared: shared.clone(),
        seen: 0,
    };
    (Sender { shared }, rx)
}

/// A borrowed value; holds the channel's read lock (do not keep it across an `.await`).
pub struct Ref<'a, T> {
    guard: RwLockReadGuard<'a, T>,
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// The sending half; dropping it closes the channel.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("watch::Sender")
            .field("version", &self.shared.version.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl<T> Sender<T> {
    /// Replaces the value and tells the receivers; fails (giving `value` back, the channel
    /// unchanged) if there are none.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.receiver_count() == 0 {
            return Err(SendError(value));
        }
        self.send_replace(value);
        Ok(())
    }

    /// Replaces the value whether or not anyone receives; returns the old one.
    pub fn send_replace(&self, value: T) -> T {
        let mut old = value;
        self.send_modify(|v| std::mem::swap(v, &mut old));
        old
    }

    /// Changes the value in place and tells the receivers.
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|v| {
            modify(v);
            true
        });
    }

    /// Changes the value in place; the receivers are told only if `modify` returns true.
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        let modified = {
            let mut v = self.shared.write();
            let modified = modify(&mut v);
            if modified {
                self.shared.version.fetch_add(1, Ordering::AcqRel);
            }
            modified
        };
        if modified {
            self.shared.changed.notify_waiters();
        }
        modified
    }

    /// The current value.
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.read(),
        }
    }

    /// A new receiver, which has seen the current value.
    pub fn subscribe(&self) -> Receiver<T> {
        self.shared.receivers.fetch_add(1, Ordering::AcqRel);
        Receiver {
            shared: self.shared.clone(),
            seen: self.shared.version.load(Ordering::Acquire),
        }
    }

    /// Receivers alive.
    pub fn receiver_count(&self) -> usize {
        self.shared.receivers.load(Ordering::Acquire)
    }

    /// Whether every receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.receiver_count() == 0
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.changed.notify_waiters();
    }
}

/// A receiving half; clones start having seen what the original has.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version this receiver last saw.
    seen: u64,
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("watch::Receiver")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.shared.receivers.fetch_add(1, Ordering::AcqRel);
        Receiver {
            shared: self.shared.clone(),
            seen: self.seen,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.receivers.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<T> Receiver<T> {
    /// The current value (not marked seen).
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: self.shared.read(),
        }
    }

    /// The current value, marked seen.
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = self.shared.read();
        self.seen = self.shared.version.load(Ordering::Acquire);
        Ref { guard }
    }

    /// Whether a value not yet seen is there; an error if the sender is gone and none is.
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        let changed = self.shared.version.load(Ordering::Acquire) != self.seen;
        if !changed && self.shared.closed.load(Ordering::Acquire) {
            return Err(RecvError);
        }
        Ok(changed)
    }

    /// Waits for a value not yet seen and marks it seen; an error once the sender is gone
    /// and no unseen value is left.
    pub async fn changed(&mut self) -> Result<(), RecvError> {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a change between the two is not missed.
            notified.as_mut().enable();
            let version = self.shared.version.load(Ordering::Acquire);
            if version != self.seen {
                self.seen = version;
                return Ok(());
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(RecvError);
            }
            notified.await;
        }
    }

    /// Waits until `f` holds for the value (checked at once, then at each change) and
    /// returns it, marked seen; an error if the sender is gone before it holds.
    pub async fn wait_for(&mut self, mut f: impl FnMut(&T) -> bool) -> Result<Ref<'_, T>, RecvError> {
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let guard = self.shared.read();
                self.seen = self.shared.version.load(Ordering::Acquire);
                // The value returned is the one checked (the lock held from check to return).
                if f(&guard) {
                    return Ok(Ref { guard });
                }
            }
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(RecvError);
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn receivers_see_the_latest_value_and_closing() {
        let (tx, mut rx) = channel(1);
        assert_eq!(*rx.borrow(), 1);
        assert_eq!(rx.has_changed(), Ok(false));
        tx.send(2).unwrap();
        tx.send(3).unwrap();
        assert_eq!(rx.has_changed(), Ok(true));
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow(), 3, "the latest, not each");
        let mut late = tx.subscribe();
        assert_eq!(late.has_changed(), Ok(false), "a new receiver has seen the value");
        assert!(tokio::time::timeout(Duration::from_secs(1), late.changed())
            .await
            .is_err());
        assert!(tx.send_if_modified(|v| {
            *v += 1;
            true
        }));
        assert!(!tx.send_if_modified(|_| false));
        assert_eq!(*late.wait_for(|v| *v == 4).await.unwrap(), 4);
        assert_eq!(tx.receiver_count(), 2);
        drop(late);
        assert_eq!(tx.receiver_count(), 1);
        tx.send_replace(5);
        drop(tx);
        rx.changed().await.expect("an unseen value before the close");
        assert_eq!(*rx.borrow(), 5);
        assert_eq!(rx.changed().await, Err(RecvError));
        assert_eq!(rx.has_changed(), Err(RecvError));
        assert!(rx.wait_for(|v| *v == 6).await.is_err());
        let (tx, rx) = channel(0);
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(1).map_err(|e| e.0), Err(1), "no receivers: not sent");
        assert_eq!(*tx.borrow(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_receivers_are_woken_in_the_order_they_began_to_wait() {
        for _ in 0..20 {
            let (tx, rx) = channel(0u32);
            let order = Arc::new(Mutex::new(Vec::new()));
            let tasks: Vec<_> = (0..12)
                .map(|k| {
                    let mut rx = rx.clone();
                    let order = order.clone();
                    tokio::spawn(async move {
                        rx.changed().await.unwrap();
                        order.lock().unwrap().push(k);
                    })
                })
                .collect();
            // Every task is waiting.
            tokio::time::sleep(Duration::from_millis(1)).await;
            tx.send(1).unwrap();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(*order.lock().unwrap(), (0..12).collect::<Vec<_>>());
        }
    }
}
