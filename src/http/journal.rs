//! The recent events of each cluster this server shows, kept server-side so that a page
//! opened after a failover still reads it off its time line, with the times the server saw
//! each event (the store keeps no timestamps).
//!
//! ```text
//!   store watch(/<C>) ─► events::describe ─┐
//!   gossip events     ─► events::member   ─┼─► Journal: ring of the last CAPACITY events
//!                                          │      (each numbered) + broadcast to streams
//!   GET …/events (Last-Event-ID: B-N) ◄────┘  backlog after N, then live
//! ```
//!
//! One recorder per cluster, started when the server starts (for the clusters that exist
//! then) or on the first request about a cluster; it runs until the server's state is
//! dropped. Each event gets an SSE id `<boot>-<seq>`: a browser that reconnects sends the
//! last id it saw and gets only what it missed; an id from another server run (another
//! `boot`) gets the whole backlog.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::events::{self, LiveEvent};
use crate::admin::Admin;
use crate::membership::MembershipView;
use crate::model::Layout;

/// How many recent events a cluster's journal keeps.
pub const CAPACITY: usize = 1000;

/// An event with its place in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numbered {
    /// 1, 2, 3, … in the order the journal took the events.
    pub seq: u64,
    /// The event.
    pub event: LiveEvent,
}

/// The ring and the live feed of one cluster.
#[derive(Debug)]
pub struct Journal {
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Numbered>>,
}

#[derive(Debug, Default)]
struct Ring {
    next: u64,
    events: VecDeque<Arc<Numbered>>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            ring: Mutex::new(Ring {
                next: 1,
                events: VecDeque::with_capacity(CAPACITY),
            }),
            live: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Journal {
    /// Numbers `event`, keeps it (dropping the oldest past [`CAPACITY`]) and sends it to the
    /// live streams.
    pub fn push(&self, event: LiveEvent) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let numbered = Arc::new(Numbered {
            seq: ring.next,
            event,
        });
        ring.next += 1;
        if ring.events.len() == CAPACITY {
            ring.events.pop_front();
        }
        ring.events.push_back(numbered.clone());
        // Sent under the lock, so a subscriber sees each event once: in its backlog or live.
        let _ = self.live.send(numbered);
    }

    /// The kept events numbered after `after` (all with None), and a receiver of every
    /// event pushed from now on: together, each event once and in order.
    pub fn subscribe(&self, after: Option<u64>) -> (Vec<Arc<Numbered>>, broadcast::Receiver<Arc<Numbered>>) {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let after = after.unwrap_or(0);
        let backlog = ring.events.iter().filter(|e| e.seq > after).cloned().collect();
        (backlog, self.live.subscribe())
    }
}

/// The SSE id of an event: `<boot>-<seq>`.
pub fn event_id(boot: u64, seq: u64) -> String {
    format!("{boot}-{seq}")
}

/// What a `Last-Event-ID` asks for from a server that started at `boot`: the events after
/// its sequence number if it names this server run, otherwise everything kept.
pub fn resume_after(boot: u64, last_event_id: Option<&str>) -> Option<u64> {
    let (b, seq) = last_event_id?.trim().split_once('-')?;
    (b.parse::<u64>().ok()? == boot).then_some(())?;
    seq.parse().ok()
}

/// Every cluster's journal, with the tasks that record them. Dropping it stops the tasks.
pub struct Journals {
    admin: Admin,
    membership: Option<MembershipView>,
    /// When this server started (ms since the Unix epoch): the first half of event ids.
    boot: u64,
    recorders: Mutex<HashMap<String, Recorder>>,
}

struct Recorder {
    journal: Arc<Journal>,
    tasks: Vec<AbortHandle>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Journals {
    /// No journals yet; [`Journals::journal`] starts one per cluster.
    pub fn new(admin: Admin, membership: Option<MembershipView>) -> Self {
        Journals {
            admin,
            membership,
            boot: events::now_ms(),
            recorders: Mutex::new(HashMap::new()),
        }
    }

    /// When this server started, as event ids carry it.
    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// The journal of `cluster`, recording from the first call on. The caller checks that
    /// the cluster exists.
    pub fn journal(&self, cluster: &str) -> Arc<Journal> {
        let mut recorders = self.recorders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = recorders.get(cluster) {
            return r.journal.clone();
        }
        let journal = Arc::new(Journal::default());
        let mut tasks = vec![tokio::spawn(record_store(
            self.admin.clone(),
            Layout::new(cluster),
            journal.clone(),
        ))
        .abort_handle()];
        if let Some(view) = &self.membership {
            tasks.push(tokio::spawn(record_gossip(view.clone(), journal.clone())).abort_handle());
        }
        recorders.insert(
            cluster.to_string(),
            Recorder {
                journal: journal.clone(),
                tasks,
            },
        );
        journal
    }

    /// Stops recording `cluster` and forgets its events (it was dropped).
    pub fn forget(&self, cluster: &str) {
        self.recorders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cluster);
    }

    /// Starts the journals of every cluster the store holds now.
    pub async fn record_existing(&self) {
        match self.admin.list_clusters().await {
            Ok(clusters) => {
                for c in clusters {
                    self.journal(&c);
                }
            }
            Err(e) => tracing::debug!("http journal: listing clusters: {e}"),
        }
    }
}

async fn record_store(admin: Admin, l: Layout, journal: Arc<Journal>) {
    let mut watcher = admin.store().watch(&l.root(), 0);
    loop {
        match watcher.next_batch().await {
            Ok(batch) => {
                for ev in &batch {
                    let described = events::describe(&l, ev, events::now_ms()).into_iter();
                    for e in described.chain(events::alert_events(&l, ev)) {
                        journal.push(e);
                    }
                }
            }
            Err(e) => {
                tracing::debug!("http journal: store watch: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn record_gossip(view: MembershipView, journal: Arc<Journal>) {
    let mut sub = view.subscribe();
    loop {
        match sub.recv().await {
            Ok(ev) => {
                if let Some(e) = events::member(&ev) {
                    journal.push(e);
                }
            }
            Err(crate::membership::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> LiveEvent {
        LiveEvent {
            kind: "leader".into(),
            action: "put".into(),
            revision: n,
            resource: None,
            instance: Some(format!("ctl-{n}")),
            id: None,
            detail: None,
            at_ms: 1000 + n,
        }
    }

    #[test]
    fn a_subscriber_gets_the_backlog_then_live_events_each_once() {
        let j = Journal::default();
        j.push(ev(1));
        j.push(ev(2));
        let (backlog, mut live) = j.subscribe(None);
        assert_eq!(
            backlog
                .iter()
                .map(|e| (e.seq, e.event.revision))
                .collect::<Vec<_>>(),
            vec![(1, 1), (2, 2)]
        );
        j.push(ev(3));
        let next = live.try_recv().unwrap();
        assert_eq!((next.seq, next.event.revision), (3, 3));
        assert!(live.try_recv().is_err(), "nothing twice");

        let (after_two, _) = j.subscribe(Some(2));
        assert_eq!(after_two.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn the_ring_keeps_only_the_most_recent_events() {
        let j = Journal::default();
        for n in 1..=(CAPACITY as u64 + 5) {
            j.push(ev(n));
        }
        let (backlog, _) = j.subscribe(None);
        assert_eq!(backlog.len(), CAPACITY);
        assert_eq!(backlog.first().unwrap().seq, 6);
        assert_eq!(backlog.last().unwrap().seq, CAPACITY as u64 + 5);
    }

    #[test]
    fn a_last_event_id_resumes_only_within_the_same_server_run() {
        assert_eq!(resume_after(77, Some(&event_id(77, 12))), Some(12));
        assert_eq!(resume_after(77, Some("76-12")), None, "another run: everything");
        for bad in ["", "12", "77-", "-3", "77-x", "x-1"] {
            assert_eq!(resume_after(77, Some(bad)), None, "{bad:?}");
        }
        assert_eq!(resume_after(77, None), None);
    }
}
