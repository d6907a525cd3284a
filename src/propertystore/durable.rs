//! How much of this replica's Raft log is on disk, and the two rules that make the leader's
//! early acknowledgement safe.
//!
//! openraft 0.9 runs a log append inside its core task and waits for the append's flush
//! before it replicates the entries, so a leader would pay its own fsync and then a
//! follower's, one after the other. Raft allows the leader to write its log in parallel with
//! replication (Ongaro's thesis, §10.2.1) as long as an entry counts as committed only once a
//! majority *including the leader's disk* holds it. strand gets that by acknowledging the
//! leader's own appends at once ([`super::storage::LogStore`]) and fencing everything that
//! would make a commit visible on this tracker:
//!
//! 1. **A replica applies only entries it has fsynced**: the state machine waits on
//!    [`Durability::wait_for`] before applying, so a leader answers no client and serves no
//!    read from an entry its own disk does not hold.
//! 2. **A leader advertises a commit index only up to what it has fsynced**: the Raft network
//!    clamps `leader_commit` in every AppendEntries to [`Durability::durable`], so no follower
//!    applies an entry that would be lost if the leader crashed now.
//!
//! openraft's commit index (a majority of acknowledgements, the leader's own counted early)
//! plus rule 1 and 2 means: an entry is visible only when a majority's disks hold it.
//!
//! A crash (a power loss) can take back what the leader sent but had not synced, so a third
//! rule keeps log ids unique: **a replica that led does not come back leading the same
//! term** (`LogStore::new` turns its committed vote into a candidate's); openraft would
//! restore it and let it write other entries at the (term, index) its followers hold.
//! An fsync that fails after an early acknowledgement cannot be taken back; the process
//! aborts, as etcd and PostgreSQL do.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

use crate::watch;
use openraft::LogId;

use super::ReplicaId;

/// The last log entry written and the last one known to be on disk.
#[derive(Debug)]
pub struct Durability {
    state: Mutex<State>,
    durable: watch::Sender<Option<LogId<ReplicaId>>>,
    /// Fault injection: while set, the syncer does not start an fsync (a stalled disk).
    stalled: Mutex<bool>,
    unstalled: Condvar,
    /// The same flag for async waiters (the inline syncs of the simulation).
    stalled_tx: watch::Sender<bool>,
}

#[derive(Debug)]
struct State {
    /// The last entry written to the database (synced or not).
    written: Option<LogId<ReplicaId>>,
    /// Bumped by every truncation, so that an fsync started before one cannot claim entries
    /// that the truncation removed.
    generation: u64,
    /// When the oldest write not yet known to be on disk was made (at the latest); `None`
    /// while everything written is durable. A stalled disk shows as this growing old.
    unsynced_since: Option<Instant>,
}

/// What an fsync is about to make durable; see [`Durability::before_sync`].
#[derive(Debug, Clone, Copy)]
pub struct SyncMark {
    generation: u64,
    written: Option<LogId<ReplicaId>>,
    /// When the mark was taken: writes it does not cover were made after it.
    at: Instant,
}

impl Durability {
    /// A tracker whose log, as opened, is durable up to `last` (the caller synced it).
    pub fn new(last: Option<LogId<ReplicaId>>) -> Self {
        let (durable, _) = watch::channel(last);
        Durability {
            state: Mutex::new(State {
                written: last,
                generation: 0,
                unsynced_since: None,
            }),
            durable,
            stalled: Mutex::new(false),
            unstalled: Condvar::new(),
            stalled_tx: watch::channel(false).0,
        }
    }

    /// Fault injection for tests: `true` holds every fsync of this log back (as a stalled
    /// disk would) until called with `false`. Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn stall_syncs(&self, stalled: bool) {
        self.set_syncs_stalled(stalled);
    }

    /// Holds fsyncs back (`true`) or lets them go (`false`).
    pub(crate) fn set_syncs_stalled(&self, stalled: bool) {
        *self.stalled.lock().unwrap_or_else(|p| p.into_inner()) = stalled;
        self.stalled_tx.send_replace(stalled);
        self.unstalled.notify_all();
    }

    /// Whether fsyncs are stalled now.
    pub fn is_stalled(&self) -> bool {
        *self.stalled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks the calling (syncer) thread while fsyncs are stalled.
    pub fn wait_unstalled(&self) {
        let mut stalled = self.stalled.lock().unwrap_or_else(|p| p.into_inner());
        while *stalled {
            stalled = self.unstalled.wait(stalled).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits (async) while fsyncs are stalled.
    pub async fn unstalled(&self) {
        let mut rx = self.stalled_tx.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail while we borrow it.
        let _ = rx.wait_for(|stalled| !stalled).await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock guards two plain values; a panic elsewhere cannot leave them half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries up to `last` were written (not yet synced).
    pub fn written(&self, last: LogId<ReplicaId>) {
        let mut s = self.state();
        s.written = Some(last);
        s.unsynced_since.get_or_insert_with(crate::clock::now);
    }

    /// The log was truncated: `last` is the entry now at its end. Durability falls back to it
    /// if it was beyond.
    pub fn truncated(&self, last: Option<LogId<ReplicaId>>) {
        let mut s = self.state();
        s.written = last;
        s.generation += 1;
        self.durable.send_if_modified(|d| {
            if index(*d) > index(last) {
                *d = last;
                true
            } else {
                false
            }
        });
        if index(*self.durable.borrow()) >= index(last) {
            s.unsynced_since = None;
        }
    }

    /// Taken just before an fsync: what it will cover.
    pub fn before_sync(&self) -> SyncMark {
        let s = self.state();
        SyncMark {
            generation: s.generation,
            written: s.written,
            at: crate::clock::now(),
        }
    }

    /// The fsync begun at `mark` succeeded.
    pub fn synced(&self, mark: SyncMark) {
        let mut s = self.state();
        if s.generation != mark.generation {
            // A truncation ran meanwhile; the next fsync (the append after it) will tell.
            return;
        }
        s.unsynced_since = if index(mark.written) >= index(s.written) {
            None
        } else {
            // What the fsync did not cover was written after the mark was taken.
            Some(mark.at)
        };
        self.durable.send_if_modified(|d| {
            if index(mark.written) > index(*d) {
                *d = mark.written;
                true
            } else {
                false
            }
        });
    }

    /// Since when (at the latest) a write has waited for its fsync; `None` when everything
    /// written is on disk. A disk whose fsyncs stall shows as a time that grows old.
    pub fn unsynced_since(&self) -> Option<Instant> {
        self.state().unsynced_since
    }

    /// The last entry known to be on disk.
    pub fn durable(&self) -> Option<LogId<ReplicaId>> {
        *self.durable.borrow()
    }

    /// Changes of [`Durability::durable`].
    pub fn subscribe(&self) -> watch::Receiver<Option<LogId<ReplicaId>>> {
        self.durable.subscribe()
    }

    /// Waits until the entry at `index` is on disk.
    pub async fn wait_for(&self, index: u64) {
        let mut rx = self.durable.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail while we borrow it.
        let _ = rx.wait_for(|d| d.is_some_and(|d| d.index >= index)).await;
    }
}

impl SyncMark {
    /// The index of the last entry the fsync covers (0: none).
    pub fn index(&self) -> u64 {
        self.written.map_or(0, |w| w.index)
    }
}

/// Entries of one log compare by index (log ids of different terms are only partly ordered).
fn index(id: Option<LogId<ReplicaId>>) -> Option<u64> {
    id.map(|i| i.index)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use openraft::CommittedLeaderId;

    use super::*;

    fn id(term: u64, index: u64) -> LogId<ReplicaId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    #[test]
    fn a_sync_makes_what_was_written_before_it_durable() {
        let d = Durability::new(None);
        d.written(id(1, 3));
        let mark = d.before_sync();
        d.written(id(1, 5));
        assert_eq!(d.durable(), None);
        d.synced(mark);
        assert_eq!(d.durable(), Some(id(1, 3)), "only what the fsync covered");
        let mark = d.before_sync();
        d.synced(mark);
        assert_eq!(d.durable(), Some(id(1, 5)));
    }

    #[test]
    fn a_truncation_lowers_durability_and_voids_a_sync_in_flight() {
        let d = Durability::new(Some(id(1, 10)));
        d.written(id(1, 12));
        let stale = d.before_sync();
        d.truncated(Some(id(1, 7)));
        assert_eq!(d.durable(), Some(id(1, 7)));
        d.written(id(2, 9));
        d.synced(stale);
        assert_eq!(
            d.durable(),
            Some(id(1, 7)),
            "the fsync began before the truncation"
        );
        let mark = d.before_sync();
        d.synced(mark);
        assert_eq!(d.durable(), Some(id(2, 9)));
    }

    #[test]
    fn durability_never_goes_back_on_a_sync() {
        let d = Durability::new(Some(id(1, 10)));
        let mark = SyncMark {
            generation: 0,
            written: Some(id(1, 4)),
            at: Instant::now(),
        };
        d.synced(mark);
        assert_eq!(d.durable(), Some(id(1, 10)));
    }

    #[test]
    fn the_oldest_unsynced_write_is_dated_until_a_sync_covers_everything() {
        let d = Durability::new(Some(id(1, 1)));
        assert_eq!(d.unsynced_since(), None);
        d.written(id(1, 2));
        let first = d.unsynced_since().expect("a write waits for its fsync");
        d.written(id(1, 3));
        assert_eq!(d.unsynced_since(), Some(first), "dated by the oldest write");
        let mark = d.before_sync();
        d.written(id(1, 4));
        d.synced(mark);
        let rest = d.unsynced_since().expect("entry 4 is not covered");
        assert!(rest >= first && rest <= Instant::now());
        let mark = d.before_sync();
        d.synced(mark);
        assert_eq!(d.unsynced_since(), None);
        d.written(id(1, 5));
        d.truncated(Some(id(1, 4)));
        assert_eq!(d.unsynced_since(), None, "the unsynced entry was truncated away");
    }

    #[tokio::test]
    async fn wait_for_returns_once_the_index_is_synced() {
        let d = Arc::new(Durability::new(Some(id(1, 1))));
        d.wait_for(1).await;
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.wait_for(3).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "index 3 is not on disk yet");
        d.written(id(1, 3));
        let mark = d.before_sync();
        d.synced(mark);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("the waiter wakes")
            .expect("the waiter ran");
    }
}
