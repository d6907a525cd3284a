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
//!
//! A client that believes no replica leads (a new one) first asks every replica for its
//! status, for at most [`DISCOVER_WAIT`], and follows the leader only if it answers as one.
//!
//! The files: `leader.rs` (finding the leader: discovery, the probe, deposed replicas,
//! requests that follow redirects), `confirm.rs` (`confirm_majority`: a key's value
//! confirmed by a majority of voters, no leader needed), `cache.rs` (the moka cache and the watch that keeps it
//! coherent), `watcher.rs` ([`Watcher`]); the operations are here.

mod cache;
mod confirm;
mod leader;
mod watcher;

pub use self::leader::{DEPOSED_FOR, DISCOVER_WAIT, PROBE_AFTER, PROBE_EVERY};
pub use self::watcher::{Watcher, WATCH_GRACE, WATCH_WAIT};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use self::cache::{cache_watch, Cache};
use self::leader::Deposed;
use super::audit::AuditEntry;
use super::core::{Command, Op, OpOutcome, Record, Stat, StoreError, Txn, Written};
use super::lanes::Lanes;
use super::protocol::{ReadMode, ReplicaStatus, StoreRequest, StoreResponse};
use super::ReplicaId;
use crate::telemetry::marks::{self, Stage};
use crate::transport::Transport;

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
    /// The caller's certificate does not allow the operation; nothing changed.
    #[error(transparent)]
    PermissionDenied(Box<crate::authz::Denied>),
    /// A replica's certificate is not the one expected at its address (the client pins each
    /// replica's identity once it knows it); nothing was sent to it.
    #[error("authentication with {peer} failed: {reason}")]
    Authentication {
        /// The replica dialled.
        peer: String,
        /// What did not match.
        reason: String,
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

struct Inner {
    lanes: Lanes,
    config: StoreClientConfig,
    /// The replica believed to lead; watchers follow its changes.
    leader: crate::watch::Sender<Option<SocketAddr>>,
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
            leader: crate::watch::channel(None).0,
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

    /// Applies a command at the leader.
    pub async fn write(&self, cmd: Command) -> Result<Written, ClientError> {
        if let Command::Txn(t) = &cmd {
            t.validate()?;
        }
        let timeout = self.inner.config.request_timeout;
        marks::mark(Stage::WriteSent, 0);
        match self
            .leader_request(&StoreRequest::Write(cmd), false, timeout)
            .await?
        {
            StoreResponse::Written(w) => {
                marks::mark(Stage::WriteAcked, w.revision);
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

    /// Runs a transaction. The cache takes what the branch that ran wrote (at the
    /// transaction's revision), so the client's next cached read of those keys needs no
    /// round trip; a recursive delete's key is forgotten (its children are not named).
    pub async fn txn(&self, txn: Txn) -> Result<Written, ClientError> {
        let Some(cache) = &self.inner.cache else {
            return self.write(Command::Txn(txn)).await;
        };
        let generation = cache.generation.load(Ordering::Acquire);
        let (success, failure) = (txn.success.clone(), txn.failure.clone());
        let w = self.write(Command::Txn(txn)).await?;
        let ran = if w.succeeded { success } else { failure };
        for (op, outcome) in ran.into_iter().zip(&w.ops) {
            match (op, outcome) {
                (Op::Create { path, value } | Op::Set { path, value, .. }, OpOutcome::Put { stat, .. }) => {
                    cache.fill(generation, &path, Some(Record { value, stat: *stat }), w.revision)
                }
                (
                    Op::Delete {
                        path,
                        recursive: false,
                        ..
                    },
                    OpOutcome::Deleted { .. },
                ) => cache.fill(generation, &path, None, w.revision),
                (op, _) => cache.map.invalidate(op.path()),
            }
        }
        Ok(w)
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

    /// The last `max` entries of `cluster`'s audit log ([`crate::propertystore::audit`]):
    /// every reachable replica's entries merged by time (each write is recorded once, by the
    /// replica that led when it was answered). Fails only when no replica answered.
    pub async fn audit(&self, cluster: &str, max: u32) -> Result<Vec<AuditEntry>, ClientError> {
        let req = StoreRequest::Audit {
            cluster: cluster.to_string(),
            max,
        };
        let mut entries = Vec::new();
        let mut answered = false;
        let mut last = ClientError::Unavailable {
            reason: "no store endpoints configured".into(),
        };
        for (addr, status) in self.status_all().await {
            if let Err(e) = status {
                last = e;
                continue;
            }
            match self.send(addr, &req, Duration::from_secs(2)).await {
                Ok(StoreResponse::Audit(mut e)) => {
                    answered = true;
                    entries.append(&mut e);
                }
                Ok(StoreResponse::PermissionDenied(d)) => {
                    return Err(ClientError::PermissionDenied(Box::new(d)))
                }
                Ok(other) => {
                    last = ClientError::Protocol {
                        what: format!("{other:?}"),
                    }
                }
                Err(e) => {
                    last = ClientError::Unavailable {
                        reason: e.to_string(),
                    }
                }
            }
        }
        if !answered {
            return Err(last);
        }
        entries.sort_by(|a, b| (a.when_ms, &a.who).cmp(&(b.when_ms, &b.who)));
        entries.dedup();
        let skip = entries.len().saturating_sub(max as usize);
        Ok(entries.split_off(skip))
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
