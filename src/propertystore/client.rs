//! The store client: finds the leader by itself, retries only what is safe, and keeps a moka
//! write-through cache coherent with a watch.
//!
//! ```text
//!   write ─► leader guess ─┬─ Written / StoreError            ─► done
//!                          ├─ NotLeader{leader}, unreachable  ─► nothing happened: try the
//!                          │                                     leader named, or the next one
//!                          └─ timed out, connection lost      ─► OutcomeUnknown (never retried)
//!   read  ─► same, and also retried after timeouts (a read changes nothing)
//!
//!   cache: moka map path → (record | absent, as_of revision)
//!          filled by reads and by the client's own acknowledged writes, updated by a watch
//!          of `/` from the revision the cache started at; an entry is served only when it,
//!          or the watch's progress, is at least the client's last acknowledged revision.
//! ```
//!
//! A request that has waited [`PROBE_AFTER`] on the replica it believes leads starts (or
//! joins) one probe of that replica's leadership: the other replicas are asked for their
//! status every [`PROBE_EVERY`], and once the most recent term among them names another
//! leader the request stops waiting: a write ends as `OutcomeUnknown`, a read goes to the
//! new leader. A SIGKILLed leader's connection stays open until QUIC's idle timeout; without
//! the probe every request in flight on it would wait out its whole timeout. The deposed
//! replica is then avoided for [`DEPOSED_FOR`], and leader hints naming it (from replicas
//! that have not heard of the new leader yet) are not followed.
//!
//! A watcher long-polls for [`WATCH_WAIT`] and gives a silent replica [`WATCH_GRACE`] more
//! before it moves to another; it also moves as soon as the client learns of a new leader.
//!
//! A cache hit allocates nothing and takes no lock: one moka lookup, two atomic loads and a
//! reference count (records are shared as `Arc<Record>`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::ops::compute::Op as CacheOp;
use tokio::time::Instant;

use super::core::{
    Command, Event, EventKind, Op, OpOutcome, Position, Record, Stat, StoreError, Txn, Written,
};
use super::lanes::Lanes;
use super::protocol::{ReadMode, ReplicaStatus, StoreRequest, StoreResponse, BAD_REQUEST};
use super::ReplicaId;
use crate::transport::{Transport, TransportError};

/// Why a client operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The store refused the operation; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A write was sent but no answer came (a timeout, a lost connection, a leader that
    /// stepped down while it was in flight): it may or may not have been applied.
    #[error("outcome unknown: {reason}")]
    OutcomeUnknown {
        /// What happened.
        reason: String,
    },
    /// No replica could serve the request before the deadline; a write was not applied.
    #[error("the store is unavailable: {reason}")]
    Unavailable {
        /// The last problem seen.
        reason: String,
    },
    /// A replica sent an answer that does not fit the request.
    #[error("unexpected answer from the store: {what}")]
    Protocol {
        /// What came.
        what: String,
    },
}

/// How the client talks to the store.
#[derive(Debug, Clone)]
pub struct StoreClientConfig {
    /// The replicas' addresses (any subset; the leader is found from them).
    pub endpoints: Vec<SocketAddr>,
    /// How long one request may take before a write's outcome is unknown.
    pub request_timeout: Duration,
    /// How long an operation keeps looking for a leader that can serve it.
    pub deadline: Duration,
    /// Entries of the client cache (0: no cache).
    pub cache_capacity: u64,
}

impl StoreClientConfig {
    /// Defaults: 3 s per request, 10 s to find a leader, a cache of 100 000 entries.
    pub fn new(endpoints: Vec<SocketAddr>) -> Self {
        StoreClientConfig {
            endpoints,
            request_timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(10),
            cache_capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone)]
struct CacheEntry {
    record: Option<Arc<Record>>,
    as_of: u64,
}

struct Cache {
    map: moka::sync::Cache<String, Arc<CacheEntry>>,
    /// Every event up to this revision has been applied to `map`.
    progress: AtomicU64,
    /// Bumped when the cache is cleared; a fill started in an older generation is dropped.
    generation: AtomicU64,
    /// The watch has every event after this revision (`u64::MAX`: not started); only reads
    /// at or after it may fill the cache.
    start: AtomicU64,
}

impl Cache {
    /// Fills from a read or an own write at `as_of`, if the watch covers what follows it.
    fn fill(&self, generation: u64, path: &str, record: Option<Record>, as_of: u64) {
        if self.generation.load(Ordering::Acquire) == generation
            && as_of >= self.start.load(Ordering::Acquire)
        {
            self.offer(path, record.map(Arc::new), as_of);
        }
    }

    fn offer(&self, path: &str, record: Option<Arc<Record>>, as_of: u64) {
        self.map
            .entry(path.to_string())
            .and_compute_with(|current| match current {
                Some(e) if e.value().as_of >= as_of => CacheOp::Nop,
                _ => CacheOp::Put(Arc::new(CacheEntry { record, as_of })),
            });
    }
}

/// How long a request to the believed leader waits before its leadership is probed (a
/// write takes about a millisecond; a probe costs a status request to each other replica
/// per [`PROBE_EVERY`] while requests wait).
pub const PROBE_AFTER: Duration = Duration::from_millis(100);
/// How often a probe asks the other replicas who leads.
pub const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How long a replica that others no longer name leader is avoided: leader hints that name it
/// are stale (from replicas at an older term) and are not followed.
pub const DEPOSED_FOR: Duration = Duration::from_secs(1);
/// How long a client that believes no replica leads waits for the replicas' statuses before
/// its request (see [`discovered`]).
pub const DISCOVER_WAIT: Duration = Duration::from_millis(150);
/// How long a replica holds a watch's long-poll when it has nothing to send.
pub const WATCH_WAIT: Duration = Duration::from_millis(200);
/// How long past [`WATCH_WAIT`] a watch waits for its replica's answer before it takes the
/// replica for dead and moves to another (doubled after each such move in a row, up to the
/// request timeout, so that an overloaded store is still waited for).
pub const WATCH_GRACE: Duration = Duration::from_millis(100);

/// A running probe of one replica's leadership: yields the new leader's address once the
/// other replicas name one; closed when the probe gave up.
type Deposed = tokio::sync::watch::Receiver<Option<SocketAddr>>;

struct Inner {
    lanes: Lanes,
    config: StoreClientConfig,
    /// The replica believed to lead; watchers follow its changes.
    leader: tokio::sync::watch::Sender<Option<SocketAddr>>,
    /// Replicas that lost the leadership while this client waited on them, until when they
    /// are avoided.
    deposed: Mutex<std::collections::HashMap<SocketAddr, Instant>>,
    /// Probes in progress, by the replica probed.
    probes: Mutex<std::collections::HashMap<SocketAddr, Deposed>>,
    next: AtomicUsize,
    last_ack: AtomicU64,
    cache: Option<Cache>,
}

/// A client of the property store. Cheap to clone; clones share the leader guess and cache.
#[derive(Clone)]
pub struct PropertyStore {
    inner: Arc<Inner>,
    _watcher: Option<Arc<AbortOnDrop>>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Attempt {
    Done(Box<StoreResponse>),
    Retry(String),
}

/// How a request to the believed leader ended.
#[allow(clippy::large_enum_variant)] // returned and matched at once, never stored
enum Answer {
    /// The replica answered, or the transport gave up.
    Reply(Result<StoreResponse, TransportError>),
    /// The other replicas name this leader while the request was still in flight.
    Deposed(SocketAddr),
}

/// Which leader the statuses of the replicas other than `probed` name: the leader named at
/// the most recent term among them, when that is another replica (with a known address).
fn named_leader(probed: SocketAddr, statuses: &[ReplicaStatus]) -> Option<SocketAddr> {
    let term = statuses.iter().map(|s| s.term).max()?;
    let leader = statuses
        .iter()
        .filter(|s| s.term == term)
        .find_map(|s| s.leader)?;
    let addr = statuses
        .iter()
        .flat_map(|s| s.voters.iter().chain(&s.learners))
        .find(|(id, _)| *id == leader)
        .and_then(|(_, a)| a.parse::<SocketAddr>().ok())?;
    (addr != probed).then_some(addr)
}

/// What the statuses of the replicas asked say about who leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discovery {
    /// The replica named at the newest term answered as that term's leader.
    Leader(SocketAddr),
    /// The replica named at the newest term was asked and did not answer: it may be dead,
    /// and the others have not elected another yet.
    Silent(SocketAddr),
    /// A leader is named that was not asked or answered otherwise (a view in transition).
    Named(SocketAddr),
    /// Nobody is named.
    Unknown,
}

/// Who leads, from the statuses of the replicas `asked` that answered (by the address they
/// were asked at): the leader named at the newest term among them, and whether it answered as
/// such.
fn discovered(asked: &[SocketAddr], answers: &[(SocketAddr, ReplicaStatus)]) -> Discovery {
    let Some(term) = answers.iter().map(|(_, s)| s.term).max() else {
        return Discovery::Unknown;
    };
    let Some(leader) = answers
        .iter()
        .filter(|(_, s)| s.term == term)
        .find_map(|(_, s)| s.leader)
    else {
        return Discovery::Unknown;
    };
    if let Some((addr, _)) = answers
        .iter()
        .find(|(_, s)| s.id == leader && s.term == term && s.role == "leader")
    {
        return Discovery::Leader(*addr);
    }
    let Some(addr) = answers
        .iter()
        .flat_map(|(_, s)| s.voters.iter().chain(&s.learners))
        .find(|(id, _)| *id == leader)
        .and_then(|(_, a)| a.parse::<SocketAddr>().ok())
    else {
        return Discovery::Unknown;
    };
    let answered = answers.iter().any(|(a, _)| *a == addr);
    if asked.contains(&addr) && !answered {
        Discovery::Silent(addr)
    } else {
        Discovery::Named(addr)
    }
}

/// Probes `probed`'s leadership until the other replicas name another leader (sent on `tx`)
/// or `until`; ends early when the client is gone or nobody waits for the answer.
async fn probe(
    inner: std::sync::Weak<Inner>,
    probed: SocketAddr,
    tx: tokio::sync::watch::Sender<Option<SocketAddr>>,
    until: Instant,
) {
    // The probes map holds one receiver; the others are requests still waiting.
    while Instant::now() < until && tx.receiver_count() > 1 {
        let Some(client) = inner.upgrade() else { return };
        let others: Vec<SocketAddr> = client
            .config
            .endpoints
            .iter()
            .copied()
            .filter(|a| *a != probed)
            .collect();
        if others.is_empty() {
            break;
        }
        let asks = others
            .iter()
            .map(|a| client.lanes.send(*a, &StoreRequest::Status, PROBE_EVERY * 3));
        let statuses: Vec<ReplicaStatus> = futures::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Ok(StoreResponse::Status(s)) => Some(s),
                _ => None,
            })
            .collect();
        drop(client);
        if let Some(leader) = named_leader(probed, &statuses) {
            tx.send_replace(Some(leader));
            break;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    if let Some(client) = inner.upgrade() {
        client
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&probed);
    }
}

impl PropertyStore {
    /// A client over `transport` (usually a client QUIC endpoint). With a cache configured,
    /// starts the watch that keeps it coherent (needs a tokio runtime).
    pub fn new(transport: Arc<dyn Transport>, config: StoreClientConfig) -> PropertyStore {
        let cache = (config.cache_capacity > 0).then(|| Cache {
            map: moka::sync::Cache::new(config.cache_capacity),
            progress: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            start: AtomicU64::new(u64::MAX),
        });
        let has_cache = cache.is_some();
        let inner = Arc::new(Inner {
            lanes: Lanes::new(transport),
            config,
            leader: tokio::sync::watch::channel(None).0,
            deposed: Mutex::new(std::collections::HashMap::new()),
            probes: Mutex::new(std::collections::HashMap::new()),
            next: AtomicUsize::new(0),
            last_ack: AtomicU64::new(0),
            cache,
        });
        let watcher =
            has_cache.then(|| Arc::new(AbortOnDrop(tokio::spawn(cache_watch(Arc::downgrade(&inner))))));
        PropertyStore {
            inner,
            _watcher: watcher,
        }
    }

    /// The revision of this client's last acknowledged write.
    pub fn last_acknowledged(&self) -> u64 {
        self.inner.last_ack.load(Ordering::Acquire)
    }

    /// The replica this client currently believes leads.
    pub fn leader_guess(&self) -> Option<SocketAddr> {
        *self.inner.leader.borrow()
    }

    /// Where a request goes: the believed leader, else the next configured replica, passing
    /// over replicas recently deposed and those `avoid` rejects (unless every one is).
    fn pick_avoiding(&self, avoid: impl Fn(SocketAddr) -> bool) -> Option<SocketAddr> {
        let shunned = |a: SocketAddr| avoid(a) || self.is_deposed(a);
        if let Some(l) = self.leader_guess().filter(|l| !shunned(*l)) {
            return Some(l);
        }
        let eps = &self.inner.config.endpoints;
        let mut first = None;
        for _ in 0..eps.len() {
            let i = self.inner.next.fetch_add(1, Ordering::Relaxed);
            let a = eps[i % eps.len()];
            if !shunned(a) {
                return Some(a);
            }
            first.get_or_insert(a);
        }
        first
    }

    fn pick(&self) -> Option<SocketAddr> {
        self.pick_avoiding(|_| false)
    }

    fn set_leader(&self, addr: Option<SocketAddr>) {
        self.inner.leader.send_if_modified(|l| {
            let changed = *l != addr;
            *l = addr;
            changed
        });
    }

    /// `addr` lost the leadership to another replica: avoided, and hints naming it ignored,
    /// for [`DEPOSED_FOR`].
    fn deposed(&self, addr: SocketAddr) {
        let mut deposed = self.inner.deposed.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        deposed.retain(|_, until| *until > now);
        deposed.insert(addr, now + DEPOSED_FOR);
    }

    fn is_deposed(&self, addr: SocketAddr) -> bool {
        let deposed = self.inner.deposed.lock().unwrap_or_else(|e| e.into_inner());
        deposed.get(&addr).is_some_and(|until| *until > Instant::now())
    }

    async fn send(
        &self,
        to: SocketAddr,
        req: &StoreRequest,
        timeout: Duration,
    ) -> Result<StoreResponse, TransportError> {
        self.inner.lanes.send(to, req, timeout).await
    }

    /// The running probe of `to`'s leadership, started if there is none.
    fn probe(&self, to: SocketAddr, timeout: Duration) -> Deposed {
        let mut probes = self.inner.probes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = probes.get(&to) {
            if rx.has_changed().is_ok() {
                return rx.clone();
            }
        }
        let (tx, rx) = tokio::sync::watch::channel(None);
        probes.insert(to, rx.clone());
        let until = Instant::now() + timeout;
        tokio::spawn(probe(Arc::downgrade(&self.inner), to, tx, until));
        rx
    }

    /// Sends `req` to `to`, the believed leader; after [`PROBE_AFTER`] without an answer,
    /// also watches the probe of `to`'s leadership.
    async fn send_to_leader(&self, to: SocketAddr, req: &StoreRequest, timeout: Duration) -> Answer {
        let send = self.send(to, req, timeout);
        tokio::pin!(send);
        tokio::select! {
            r = &mut send => return Answer::Reply(r),
            _ = tokio::time::sleep(PROBE_AFTER) => {}
        }
        let mut deposed = self.probe(to, timeout);
        let new_leader = async move {
            match deposed.wait_for(Option::is_some).await {
                Ok(leader) => *leader,
                Err(_) => None,
            }
        };
        tokio::select! {
            r = send => Answer::Reply(r),
            Some(leader) = new_leader => Answer::Deposed(leader),
        }
    }

    /// Asks every replica not avoided for its status, for up to [`DISCOVER_WAIT`], and takes
    /// the leader they name if it answered as one. A named leader that did not answer is
    /// treated as deposed: hints naming it are not followed until the others elect another.
    /// Without this a new client (one `strand admin put`) asked a follower, which still named
    /// a leader SIGKILLed a moment ago, and then waited on that leader.
    async fn discover(&self) {
        let asked: Vec<SocketAddr> = self
            .inner
            .config
            .endpoints
            .iter()
            .copied()
            .filter(|a| !self.is_deposed(*a))
            .collect();
        let asks = asked.iter().map(|a| async move {
            match self.send(*a, &StoreRequest::Status, DISCOVER_WAIT).await {
                Ok(StoreResponse::Status(s)) => Some((*a, s)),
                _ => None,
            }
        });
        let answers: Vec<(SocketAddr, ReplicaStatus)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        match discovered(&asked, &answers) {
            Discovery::Leader(a) | Discovery::Named(a) => self.set_leader(Some(a)),
            Discovery::Silent(a) => self.deposed(a),
            Discovery::Unknown => {}
        }
    }

    /// Sends `req` to the leader, following redirects. `safe` requests (reads) are retried
    /// after timeouts too; others end with `OutcomeUnknown` then.
    async fn leader_request(
        &self,
        req: &StoreRequest,
        safe: bool,
        timeout: Duration,
    ) -> Result<StoreResponse, ClientError> {
        let deadline = Instant::now() + self.inner.config.deadline;
        let mut last = String::from("no store endpoints configured");
        let mut redirects = 0;
        if self.leader_guess().is_none() && self.inner.config.endpoints.len() > 1 {
            self.discover().await;
        }
        loop {
            let Some(to) = self.pick() else {
                return Err(ClientError::Unavailable { reason: last });
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let reply = match self
                .send_to_leader(to, req, timeout.min(remaining.max(Duration::from_millis(50))))
                .await
            {
                Answer::Reply(r) => r,
                Answer::Deposed(leader) => {
                    self.deposed(to);
                    self.set_leader(Some(leader));
                    let why = format!("{to} lost the leadership to {leader} while the request was in flight");
                    if !safe {
                        return Err(ClientError::OutcomeUnknown { reason: why });
                    }
                    last = why;
                    continue;
                }
            };
            let attempt = match reply {
                Ok(StoreResponse::NotLeader { leader }) => {
                    // A hint naming a replica the others already replaced comes from a
                    // replica that has not heard of the new leader yet: not followed.
                    let hint = leader
                        .and_then(|(_, a)| a.parse::<SocketAddr>().ok())
                        .filter(|a| !self.is_deposed(*a));
                    if hint.is_some() && hint != Some(to) {
                        self.set_leader(hint);
                        redirects += 1;
                        if redirects <= 2 {
                            continue;
                        }
                        // Replicas that point at each other (a stale view): wait a little.
                        redirects = 0;
                        last = format!("{to} redirects to {hint:?}");
                        if Instant::now() >= deadline {
                            return Err(ClientError::Unavailable { reason: last });
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    self.set_leader(None);
                    Attempt::Retry(format!("{to} is not the leader and knows none yet"))
                }
                Ok(StoreResponse::Unavailable { reason }) => {
                    self.set_leader(None);
                    Attempt::Retry(format!("{to}: {reason}"))
                }
                Ok(resp) => {
                    self.set_leader(Some(to));
                    Attempt::Done(Box::new(resp))
                }
                Err(e) if e.is_outcome_unknown() && !safe => {
                    self.set_leader(None);
                    return Err(ClientError::OutcomeUnknown {
                        reason: e.to_string(),
                    });
                }
                Err(TransportError::Authentication { peer, reason }) => {
                    return Err(ClientError::Unavailable {
                        reason: format!("authentication with {peer} failed: {reason}"),
                    })
                }
                Err(e) if e.is_not_delivered() || e.is_outcome_unknown() => {
                    self.set_leader(None);
                    Attempt::Retry(e.to_string())
                }
                Err(e) => {
                    // Refused: the replica received the request and could not handle it; for a
                    // write that happens before anything is proposed.
                    return Err(ClientError::Unavailable {
                        reason: e.to_string(),
                    });
                }
            };
            match attempt {
                Attempt::Done(resp) => return Ok(*resp),
                Attempt::Retry(why) => {
                    last = why;
                    if Instant::now() >= deadline {
                        return Err(ClientError::Unavailable { reason: last });
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
    }

    /// Applies a command at the leader.
    pub async fn write(&self, cmd: Command) -> Result<Written, ClientError> {
        if let Command::Txn(t) = &cmd {
            t.validate()?;
        }
        let timeout = self.inner.config.request_timeout;
        match self
            .leader_request(&StoreRequest::Write(cmd), false, timeout)
            .await?
        {
            StoreResponse::Written(w) => {
                self.inner.last_ack.fetch_max(w.revision, Ordering::AcqRel);
                Ok(w)
            }
            StoreResponse::Error(e) => Err(ClientError::Store(e)),
            StoreResponse::OutcomeUnknown { reason } => Err(ClientError::OutcomeUnknown { reason }),
            other => Err(ClientError::Protocol {
                what: format!("{other:?}"),
            }),
        }
    }

    /// Runs a transaction. The cache forgets the keys it touched.
    pub async fn txn(&self, txn: Txn) -> Result<Written, ClientError> {
        let paths: Vec<String> = txn
            .success
            .iter()
            .chain(&txn.failure)
            .map(|op| match op {
                Op::Create { path, .. } | Op::Set { path, .. } | Op::Delete { path, .. } => path.clone(),
            })
            .collect();
        let r = self.write(Command::Txn(txn)).await;
        if let Some(cache) = &self.inner.cache {
            for p in paths {
                cache.map.invalidate(&p);
            }
        }
        r
    }

    fn single_put(&self, path: &str, value: &[u8], w: &Written) -> Result<Stat, ClientError> {
        match w.ops.first() {
            Some(OpOutcome::Put { stat, .. }) => {
                if let Some(cache) = &self.inner.cache {
                    cache.fill(
                        cache.generation.load(Ordering::Acquire),
                        path,
                        Some(Record {
                            value: value.to_vec(),
                            stat: *stat,
                        }),
                        w.revision,
                    );
                }
                Ok(*stat)
            }
            other => Err(ClientError::Protocol {
                what: format!("{other:?}"),
            }),
        }
    }

    /// Creates `path`; fails with `AlreadyExists` if it is there.
    pub async fn create(&self, path: &str, value: &[u8]) -> Result<Stat, ClientError> {
        let w = self
            .write(Command::Txn(Txn::single(Op::Create {
                path: path.into(),
                value: value.to_vec(),
            })))
            .await?;
        self.single_put(path, value, &w)
    }

    /// Sets `path`, only at `expected_version` if given (0: only if absent).
    pub async fn set(
        &self,
        path: &str,
        value: &[u8],
        expected_version: Option<u64>,
    ) -> Result<Stat, ClientError> {
        let w = self
            .write(Command::Txn(Txn::single(Op::Set {
                path: path.into(),
                value: value.to_vec(),
                expected_version,
            })))
            .await?;
        self.single_put(path, value, &w)
    }

    /// Deletes `path` (and, if `recursive`, everything under it); returns how many keys went.
    pub async fn delete(
        &self,
        path: &str,
        expected_version: Option<u64>,
        recursive: bool,
    ) -> Result<u64, ClientError> {
        let w = self
            .write(Command::Txn(Txn::single(Op::Delete {
                path: path.into(),
                expected_version,
                recursive,
            })))
            .await?;
        if let Some(cache) = &self.inner.cache {
            cache.fill(cache.generation.load(Ordering::Acquire), path, None, w.revision);
            if recursive {
                // Descendants are fixed by the watch; until then progress < last_ack keeps
                // their entries from being served.
                let prefix = super::core::child_prefix(path);
                let _ = cache
                    .map
                    .invalidate_entries_if(move |k, _| k.starts_with(&prefix));
            }
        }
        match w.ops.first() {
            Some(OpOutcome::Deleted { count, .. }) => Ok(*count),
            other => Err(ClientError::Protocol {
                what: format!("{other:?}"),
            }),
        }
    }

    /// Drops the watch history below `below`.
    pub async fn compact(&self, below: u64) -> Result<Written, ClientError> {
        self.write(Command::Compact { below }).await
    }

    /// Reads `path` linearizably (read-index at the leader).
    pub async fn get(&self, path: &str) -> Result<Option<Record>, ClientError> {
        self.get_with(path, ReadMode::Linearizable).await.map(|(r, _)| r)
    }

    /// Reads `path` in `mode`; also returns the revision the read reflects.
    pub async fn get_with(&self, path: &str, mode: ReadMode) -> Result<(Option<Record>, u64), ClientError> {
        super::core::validate_path(path)?;
        let req = StoreRequest::Get {
            path: path.into(),
            mode,
        };
        let timeout = self.inner.config.request_timeout;
        let resp = if mode == ReadMode::Serializable {
            self.any_request(&req, timeout).await?
        } else {
            self.leader_request(&req, true, timeout).await?
        };
        match resp {
            StoreResponse::Value { record, revision } => Ok((record, revision)),
            StoreResponse::Error(e) => Err(ClientError::Store(e)),
            other => Err(ClientError::Protocol {
                what: format!("{other:?}"),
            }),
        }
    }

    async fn any_request(&self, req: &StoreRequest, timeout: Duration) -> Result<StoreResponse, ClientError> {
        let eps = &self.inner.config.endpoints;
        let mut last = String::from("no store endpoints configured");
        for _ in 0..eps.len().max(1) * 2 {
            let Some(to) = self.pick() else { break };
            match self.send(to, req, timeout).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.set_leader(None);
                    last = e.to_string();
                }
            }
        }
        Err(ClientError::Unavailable { reason: last })
    }

    /// The names of `path`'s children, linearizably.
    pub async fn children(&self, path: &str) -> Result<Vec<String>, ClientError> {
        super::core::validate_path(path)?;
        let req = StoreRequest::Children {
            path: path.into(),
            mode: ReadMode::Linearizable,
        };
        match self
            .leader_request(&req, true, self.inner.config.request_timeout)
            .await?
        {
            StoreResponse::Children { names, .. } => Ok(names),
            StoreResponse::Error(e) => Err(ClientError::Store(e)),
            other => Err(ClientError::Protocol {
                what: format!("{other:?}"),
            }),
        }
    }

    /// Every key equal to `path` or under `path/` (for `/`, every key), sorted by key, read
    /// linearizably and all as of the revision returned: a mirror built from it and then
    /// fed by a watch from that revision + 1 misses nothing. Fails with
    /// [`StoreError::RangeTooLarge`] when the entries would not fit in one reply.
    pub async fn range(&self, path: &str) -> Result<(Vec<(String, Record)>, u64), ClientError> {
        super::core::validate_path(path)?;
        let req = StoreRequest::Range {
            prefix: path.into(),
            mode: ReadMode::Linearizable,
        };
        match self
            .leader_request(&req, true, self.inner.config.request_timeout)
            .await?
        {
            StoreResponse::Range { entries, revision } => Ok((entries, revision)),
            StoreResponse::Error(e) => Err(ClientError::Store(e)),
            other => Err(ClientError::Protocol {
                what: format!("{other:?}"),
            }),
        }
    }

    /// Reads `path` from the cache when it can answer without going back in time: never
    /// older than this client's last acknowledged write. Otherwise reads linearizably and
    /// fills the cache. Without a cache, the same as [`PropertyStore::get`].
    pub async fn cached_get(&self, path: &str) -> Result<Option<Record>, ClientError> {
        Ok(self
            .cached_get_shared(path)
            .await?
            .map(|r| Arc::try_unwrap(r).unwrap_or_else(|r| (*r).clone())))
    }

    /// [`PropertyStore::cached_get`] returning the record shared with the cache: a hit
    /// allocates nothing.
    pub async fn cached_get_shared(&self, path: &str) -> Result<Option<Arc<Record>>, ClientError> {
        let Some(cache) = &self.inner.cache else {
            return Ok(self.get(path).await?.map(Arc::new));
        };
        if let Some(hit) = self.cache_lookup(path) {
            return Ok(hit);
        }
        let generation = cache.generation.load(Ordering::Acquire);
        let (record, revision) = self.get_with(path, ReadMode::Linearizable).await?;
        let record = record.map(Arc::new);
        if cache.generation.load(Ordering::Acquire) == generation
            && revision >= cache.start.load(Ordering::Acquire)
        {
            cache.offer(path, record.clone(), revision);
        }
        Ok(record)
    }

    /// The cache's answer for `path`, if it has one it may give (no I/O, no allocation).
    pub fn cache_lookup(&self, path: &str) -> Option<Option<Arc<Record>>> {
        let cache = self.inner.cache.as_ref()?;
        let need = self.inner.last_ack.load(Ordering::Acquire);
        let entry = cache.map.get(path)?;
        (entry.as_of >= need || cache.progress.load(Ordering::Acquire) >= need).then(|| entry.record.clone())
    }

    /// The revision up to which the cache's watch has applied every event (0: not started).
    pub fn cache_progress(&self) -> u64 {
        self.inner
            .cache
            .as_ref()
            .map_or(0, |c| c.progress.load(Ordering::Acquire))
    }

    /// Watches `prefix` from revision `from` (0: from now).
    pub fn watch(&self, prefix: &str, from: u64) -> Watcher {
        Watcher {
            client: self.clone(),
            prefix: prefix.to_string(),
            next: from,
            wait: WATCH_WAIT,
            whole_revisions_only: false,
            at: None,
            silent: std::collections::HashMap::new(),
            grace: WATCH_GRACE,
        }
    }

    /// The status of every configured replica and of every replica their memberships name
    /// (or why it could not be asked).
    pub async fn status_all(&self) -> Vec<(SocketAddr, Result<ReplicaStatus, ClientError>)> {
        let mut out: Vec<(SocketAddr, Result<ReplicaStatus, ClientError>)> = Vec::new();
        let mut todo: Vec<SocketAddr> = self.inner.config.endpoints.clone();
        while let Some(ep) = todo.first().copied() {
            todo.remove(0);
            if out.iter().any(|(a, _)| *a == ep) {
                continue;
            }
            let r = match self.send(ep, &StoreRequest::Status, Duration::from_secs(2)).await {
                Ok(StoreResponse::Status(s)) => Ok(s),
                Ok(other) => Err(ClientError::Protocol {
                    what: format!("{other:?}"),
                }),
                Err(e) => Err(ClientError::Unavailable {
                    reason: e.to_string(),
                }),
            };
            if let Ok(s) = &r {
                for (_, addr) in s.voters.iter().chain(&s.learners) {
                    if let Ok(a) = addr.parse::<SocketAddr>() {
                        if !out.iter().any(|(x, _)| *x == a) && a != ep && !todo.contains(&a) {
                            todo.push(a);
                        }
                    }
                }
            }
            out.push((ep, r));
        }
        out
    }

    /// Adds a replica (as a learner that catches up, then a voter).
    pub async fn add_replica(&self, id: ReplicaId, addr: SocketAddr) -> Result<Vec<ReplicaId>, ClientError> {
        let req = StoreRequest::AddReplica {
            id,
            addr: addr.to_string(),
        };
        self.membership(req).await
    }

    /// Removes a replica from the voters.
    pub async fn remove_replica(&self, id: ReplicaId) -> Result<Vec<ReplicaId>, ClientError> {
        self.membership(StoreRequest::RemoveReplica { id }).await
    }

    async fn membership(&self, req: StoreRequest) -> Result<Vec<ReplicaId>, ClientError> {
        match self.leader_request(&req, false, Duration::from_secs(60)).await? {
            StoreResponse::MembershipChanged { voters } => Ok(voters),
            StoreResponse::Error(e) => Err(ClientError::Store(e)),
            StoreResponse::OutcomeUnknown { reason } => Err(ClientError::OutcomeUnknown { reason }),
            other => Err(ClientError::Protocol {
                what: format!("{other:?}"),
            }),
        }
    }
}

/// A watch of a prefix: events in revision order, none skipped or repeated, resumed across
/// reconnects and leader changes from the last revision seen. Dropping it ends it.
///
/// A replica's answer is bounded by bytes, so it may carry part of a revision larger than a
/// frame; the watcher asks for the rest at once, and [`Watcher::next_batch`] always returns
/// whole revisions.
///
/// The watcher polls the client's believed leader when it can, else the replica that last
/// answered it. A poll that is not answered within [`WATCH_WAIT`] + [`WATCH_GRACE`] is given
/// up and the replica avoided for [`DEPOSED_FOR`] (a SIGKILLed replica's connection stays
/// open, so the transport alone would wait out the whole request timeout); a poll is also
/// given up as soon as the client learns of another leader.
pub struct Watcher {
    client: PropertyStore,
    prefix: String,
    next: u64,
    wait: Duration,
    /// A replica refused `WatchPage` (an older version): plain `Watch` requests only.
    whole_revisions_only: bool,
    /// The replica that answered last.
    at: Option<SocketAddr>,
    /// Replicas that left a poll unanswered, until when they are avoided.
    silent: std::collections::HashMap<SocketAddr, Instant>,
    /// How long past its wait a poll is given its answer.
    grace: Duration,
}

/// How a watch poll ended.
#[allow(clippy::large_enum_variant)] // returned and matched at once, never stored
enum Poll {
    /// The replica answered, or the transport gave up.
    Answered(Result<StoreResponse, TransportError>),
    /// No answer within the wait and the grace.
    Silent,
    /// The client learned that another replica leads.
    LeaderMoved,
}

impl Watcher {
    /// The revision the next batch starts at (0 before the first poll of a watch from now).
    pub fn next_revision(&self) -> u64 {
        self.next
    }

    /// The next events, whole revisions only (possibly none when `wait` passed without any).
    /// Transport failures and leader changes are retried; a compacted start is an error.
    pub async fn next_batch(&mut self) -> Result<Vec<Event>, ClientError> {
        let mut out = Vec::new();
        let mut from = Position::at(self.next);
        loop {
            // The rest of a cut revision is there already: no waiting for it.
            let wait = if from.seq == 0 { self.wait } else { Duration::ZERO };
            let (events, next) = self.page(from, wait).await?;
            out.extend(events);
            from = next;
            if from.seq == 0 {
                self.next = from.revision;
                return Ok(out);
            }
        }
    }

    fn is_silent(&self, addr: SocketAddr) -> bool {
        self.silent
            .get(&addr)
            .is_some_and(|until| *until > Instant::now())
    }

    /// The replica to poll: the believed leader, else the one that answered last, else the
    /// next configured one; never a silent or deposed one while another is left.
    fn choose(&self) -> Option<SocketAddr> {
        let leader = self.client.leader_guess();
        let usable = |a: &SocketAddr| !self.is_silent(*a) && !self.client.is_deposed(*a);
        leader
            .filter(usable)
            .or(self.at.filter(usable))
            .or_else(|| self.client.pick_avoiding(|a| self.is_silent(a)))
    }

    /// Sends one poll to `to`, giving it up when `to` stays silent or another replica leads.
    async fn poll(&self, to: SocketAddr, req: &StoreRequest, wait: Duration) -> Poll {
        let mut leader = self.client.inner.leader.subscribe();
        let elsewhere = |l: &Option<SocketAddr>| l.is_some_and(|l| l != to && !self.is_silent(l));
        let moved = leader.wait_for(elsewhere);
        let timeout = wait + self.client.inner.config.request_timeout;
        tokio::select! {
            r = self.client.send(to, req, timeout) => Poll::Answered(r),
            _ = tokio::time::sleep(wait + self.grace) => Poll::Silent,
            Ok(_) = moved => Poll::LeaderMoved,
        }
    }

    /// One answer from `from`, from whichever replica answers.
    async fn page(&mut self, from: Position, wait: Duration) -> Result<(Vec<Event>, Position), ClientError> {
        let deadline = Instant::now() + self.client.inner.config.deadline;
        loop {
            let req = if self.whole_revisions_only {
                StoreRequest::Watch {
                    prefix: self.prefix.clone(),
                    from: from.revision,
                    max: WATCH_MAX_EVENTS,
                    wait_ms: wait.as_millis() as u32,
                }
            } else {
                StoreRequest::WatchPage {
                    prefix: self.prefix.clone(),
                    from,
                    max: WATCH_MAX_EVENTS,
                    wait_ms: wait.as_millis() as u32,
                }
            };
            let Some(to) = self.choose() else {
                return Err(ClientError::Unavailable {
                    reason: "no store endpoints configured".into(),
                });
            };
            let r = match self.poll(to, &req, wait).await {
                Poll::Answered(r) => r,
                Poll::LeaderMoved => continue,
                Poll::Silent => {
                    self.silent.retain(|_, until| *until > Instant::now());
                    self.silent.insert(to, Instant::now() + DEPOSED_FOR);
                    self.grace = (self.grace * 2).min(self.client.inner.config.request_timeout);
                    if self.client.leader_guess() == Some(to) {
                        self.client.set_leader(None);
                    }
                    if Instant::now() >= deadline {
                        return Err(ClientError::Unavailable {
                            reason: format!("no replica answered a watch within {:?}", wait + self.grace),
                        });
                    }
                    continue;
                }
            };
            if r.is_ok() {
                self.at = Some(to);
                self.grace = WATCH_GRACE;
            }
            match r {
                Ok(StoreResponse::EventPage { events, next }) => return Ok((events, next)),
                Ok(StoreResponse::Events { events, next }) => return Ok((events, Position::at(next))),
                Ok(StoreResponse::Error(e)) => return Err(ClientError::Store(e)),
                Ok(other) => {
                    return Err(ClientError::Protocol {
                        what: format!("{other:?}"),
                    })
                }
                Err(TransportError::Authentication { peer, reason }) => {
                    return Err(ClientError::Unavailable {
                        reason: format!("authentication with {peer} failed: {reason}"),
                    })
                }
                Err(TransportError::Refused { reason, .. })
                    if reason.starts_with(BAD_REQUEST) && !self.whole_revisions_only =>
                {
                    // A replica of an older version: it resumes at revision boundaries only.
                    if from.seq > 0 {
                        return Err(ClientError::Protocol {
                            what: format!(
                                "a replica cannot resume inside revision {}: {reason}",
                                from.revision
                            ),
                        });
                    }
                    self.whole_revisions_only = true;
                }
                Err(e) => {
                    self.client.set_leader(None);
                    self.at = None;
                    self.silent.insert(to, Instant::now() + DEPOSED_FOR);
                    if Instant::now() >= deadline {
                        return Err(ClientError::Unavailable {
                            reason: e.to_string(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
    }
}

/// The most events a watcher asks for in one answer.
const WATCH_MAX_EVENTS: u32 = 1000;

async fn cache_watch(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let client = PropertyStore {
            inner: strong,
            _watcher: None,
        };
        let mut watcher = client.watch("/", 0);
        drop(client);
        // The first poll (no waiting) fixes where the watch starts: the cache may hold
        // what was read at or after that revision.
        watcher.wait = Duration::ZERO;
        let mut first = true;
        loop {
            let r = watcher.next_batch().await;
            let Some(cache) = watcher.client.inner.cache.as_ref() else {
                return;
            };
            match r {
                Ok(events) => {
                    if first {
                        let start = events
                            .first()
                            .map_or(watcher.next, |e| e.revision)
                            .saturating_sub(1);
                        cache.start.store(start, Ordering::Release);
                        watcher.wait = WATCH_WAIT;
                        first = false;
                    }
                    for e in &events {
                        match &e.kind {
                            EventKind::Put { value, stat } => cache.offer(
                                &e.path,
                                Some(Arc::new(Record {
                                    value: value.clone(),
                                    stat: *stat,
                                })),
                                e.revision,
                            ),
                            EventKind::Delete => cache.offer(&e.path, None, e.revision),
                        }
                    }
                    let upto = watcher.next.saturating_sub(1);
                    // Only this task raises it; a clear below resets it to 0.
                    cache.progress.fetch_max(upto, Ordering::AcqRel);
                }
                Err(e) => {
                    // Fell behind the history (or lost the store for long): start over.
                    tracing::debug!(error = %e, "cache watch restarts; cache cleared");
                    cache.start.store(u64::MAX, Ordering::Release);
                    cache.generation.fetch_add(1, Ordering::AcqRel);
                    cache.progress.store(0, Ordering::Release);
                    cache.map.invalidate_all();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            }
            if Arc::strong_count(&watcher.client.inner) <= 1 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: ReplicaId, term: u64, leader: Option<ReplicaId>) -> ReplicaStatus {
        let voters = (1..=3).map(|i| (i, format!("127.0.0.1:700{i}"))).collect();
        ReplicaStatus {
            id,
            addr: format!("127.0.0.1:700{id}"),
            role: "Follower".into(),
            term,
            leader,
            commit_index: None,
            applied_index: None,
            snapshot_index: None,
            purged_index: None,
            revision: 0,
            oldest_revision: 1,
            db_size_bytes: 0,
            log_entries: 0,
            log_syncs: 0,
            lease_reads: 0,
            index_reads: 0,
            voters,
            learners: Vec::new(),
        }
    }

    fn addr(id: ReplicaId) -> SocketAddr {
        format!("127.0.0.1:700{id}").parse().unwrap()
    }

    #[test]
    fn discovery_takes_a_leader_only_when_it_answers_as_one() {
        let asked = [addr(1), addr(2), addr(3)];
        let leading = |id, term| ReplicaStatus {
            role: "leader".into(),
            ..status(id, term, Some(id))
        };
        // Everyone answers: the leader says so itself.
        let all = [
            (addr(1), leading(1, 4)),
            (addr(2), status(2, 4, Some(1))),
            (addr(3), status(3, 4, Some(1))),
        ];
        assert_eq!(discovered(&asked, &all), Discovery::Leader(addr(1)));
        // The leader was SIGKILLed; the followers still name it: silent, not followed.
        let stale = [(addr(2), status(2, 4, Some(1))), (addr(3), status(3, 4, Some(1)))];
        assert_eq!(discovered(&asked, &stale), Discovery::Silent(addr(1)));
        // A new leader at a newer term wins over an older view.
        let newer = [(addr(2), status(2, 4, Some(1))), (addr(3), leading(3, 5))];
        assert_eq!(discovered(&asked, &newer), Discovery::Leader(addr(3)));
        // A follower names a leader that was not asked (not among the endpoints): named.
        assert_eq!(
            discovered(&asked[1..], &[(addr(2), status(2, 4, Some(1)))]),
            Discovery::Named(addr(1))
        );
        // An election under way, or nobody answered.
        assert_eq!(
            discovered(&asked, &[(addr(2), status(2, 5, None))]),
            Discovery::Unknown
        );
        assert_eq!(discovered(&asked, &[]), Discovery::Unknown);
    }

    #[test]
    fn a_probed_leader_is_deposed_only_by_another_leader_at_the_newest_term() {
        // Followers still following the probed replica: not deposed.
        assert_eq!(
            named_leader(addr(1), &[status(2, 4, Some(1)), status(3, 4, Some(1))]),
            None
        );
        // An election is under way, nobody leads yet: not yet.
        assert_eq!(
            named_leader(addr(1), &[status(2, 5, None), status(3, 4, Some(1))]),
            None
        );
        // A new leader at the newest term, even if another replica has not heard of it.
        assert_eq!(
            named_leader(addr(1), &[status(2, 5, None), status(3, 5, Some(3))]),
            Some(addr(3))
        );
        // A lagging replica naming an older leader does not outvote the newest term.
        assert_eq!(
            named_leader(addr(1), &[status(2, 3, Some(2)), status(3, 4, Some(1))]),
            None
        );
        // A leader id without a known address is no evidence.
        assert_eq!(named_leader(addr(1), &[status(2, 5, Some(9))]), None);
        assert_eq!(named_leader(addr(1), &[]), None);
    }
}
