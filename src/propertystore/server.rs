//! A store replica: the Raft node, its RPC service, and the client service.
//!
//! ```text
//!   Inbox(RAFT)  ──► raft.append_entries / vote / install_snapshot    (node certificates only)
//!   Inbox(STORE) ──► one task per request:
//!                      Write      leader? ─► write batcher ─► raft.client_write(Batch) ─►
//!                                            Written | StoreError, one per command
//!                                 else   ─► NotLeader { leader }
//!                      Get/Children/Range (Linearizable) ─► lease, else read-index batcher ─►
//!                                 RocksDB read (a range: one RocksDB snapshot)
//!                      Watch      RocksDB history from a revision (WatchPage: from a position
//!                                 inside one), long-poll on the applied-revision channel;
//!                                 an answer is bounded by bytes (`core::Pager`)
//!                      Status / AddReplica / RemoveReplica
//! ```
//!
//! Linearizable reads are served under the leader's lease ([`super::lease`]) when it holds,
//! with no message at all; otherwise by read-index: every read queued while one
//! `ensure_linearizable` round runs shares the next round, so a burst of N concurrent reads
//! costs one quorum heartbeat instead of N. A read only joins a round that starts after it
//! arrived.
//!
//! Disks: a leader whose log fsyncs stall past `disk_stall` steps down until they catch up
//! ([`super::disk`], `watch_disk`), and a leader whose disk has less than `min_free_bytes`
//! free refuses writes other than deletes and compaction ([`super::space`]). Status never
//! waits long on the Raft core, so a replica with a stalled disk still answers it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, LogId, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::audit::{self, AuditLog, AUDIT_MAX_BYTES};
use super::core::{Batch, Command, Event, PageLimits, Position, StoreError};
use super::disk::{DiskCheck, DiskEvent};
use super::elector::{Elector, Next, Role, Timing};
use super::lease::Lease;
use super::metrics::StoreMetrics;
use super::network::{claimed_by_sender, Fences, Network};
use super::protocol::{
    RaftRequest, RaftResponse, ReadMode, ReplicaStatus, StoreRequest, StoreResponse, BAD_REQUEST,
    MAX_AUDIT_ENTRIES, MAX_WRITES_PER_REQUEST,
};
use super::space::{Space, DEFAULT_MIN_FREE_BYTES};
use super::storage::{self, Db, OpenError};
use super::{ReplicaId, StoreRaft};
use crate::authz;
use crate::codec;
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::tls::TlsMaterial;
use crate::transport::{Incoming, Peer, Responder, Service, Transport, TransportError};

/// Revisions of watch history kept by default.
pub const DEFAULT_RETAIN: u64 = 20_000;

/// How long a write may wait for its fsync before the disk counts as stalled, by default.
/// An fsync takes about a millisecond here; etcd warns of a slow one at one second.
pub const DEFAULT_DISK_STALL: Duration = Duration::from_secs(2);

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The endpoint could not be set up.
    #[error("cannot start the store endpoint: {0}")]
    Transport(#[from] TransportError),
    /// openraft refused the configuration or failed to start.
    #[error("raft: {reason}")]
    Raft {
        /// What openraft said.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("bad replica configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

/// How to run one replica.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This replica's id.
    pub id: ReplicaId,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The initial voters and their addresses (including this one). Empty: a single-replica
    /// store of this replica alone.
    pub peers: Vec<(ReplicaId, SocketAddr)>,
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// TLS material for `store-<id>`.
    pub tls: TlsMaterial,
    /// Join an existing store (added with `add-replica`) instead of forming one.
    pub join: bool,
    /// Revisions of watch history to keep.
    pub retain: u64,
    /// Take a snapshot (and purge the log) after this many applied entries.
    pub snapshot_every: u64,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Raft election timeout range.
    pub election_timeout: (Duration, Duration),
    /// Serve linearizable reads under the leader's lease (half the shortest election
    /// timeout) when it holds; off, every linearizable read takes a read-index round.
    pub lease_reads: bool,
    /// A write that waited this long for its fsync means the disk is stalled: a leader steps
    /// down until the disk catches up (see [`super::disk`]).
    pub disk_stall: Duration,
    /// Free bytes the data directory's filesystem must keep: below them the leader refuses
    /// writes other than deletes and compaction (see [`super::space`]).
    pub min_free_bytes: u64,
}

impl ReplicaConfig {
    /// A configuration with defaults: 20 000 revisions of history, a snapshot every 20 000
    /// entries, 50 ms heartbeats (also openraft's AppendEntries timeout), 150–300 ms election
    /// timeouts, so a follower that hears no heartbeat calls an election 450–600 ms after the
    /// last one (see [`super::elector`]), and a read lease of 75 ms (see [`super::lease`]).
    pub fn new(id: ReplicaId, listen: SocketAddr, data_dir: PathBuf, tls: TlsMaterial) -> Self {
        ReplicaConfig {
            id,
            listen,
            peers: Vec::new(),
            data_dir,
            tls,
            join: false,
            retain: DEFAULT_RETAIN,
            snapshot_every: 20_000,
            heartbeat: Duration::from_millis(50),
            election_timeout: (Duration::from_millis(150), Duration::from_millis(300)),
            lease_reads: true,
            disk_stall: DEFAULT_DISK_STALL,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// A running replica. Dropping it does not stop it; call [`StoreServer::shutdown`].
pub struct StoreServer {
    id: ReplicaId,
    raft: StoreRaft,
    #[cfg(any(test, feature = "testing"))]
    db: Db,
    #[cfg(any(test, feature = "testing"))]
    durability: Arc<super::durable::Durability>,
    #[cfg(any(test, feature = "testing"))]
    space: Arc<Space>,
    transport: Arc<dyn Transport>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    id: ReplicaId,
    raft: StoreRaft,
    db: Db,
    reads: mpsc::Sender<oneshot::Sender<Result<(), StoreResponse>>>,
    revisions: watch::Receiver<u64>,
    appends: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
    writes: mpsc::Sender<WriteJob>,
    fences: Fences,
    /// How long a quorum's acknowledgement lets the leader read alone; `None`: never.
    read_lease: Option<Duration>,
    /// The state machine's last applied entry.
    applied: watch::Receiver<Option<LogId<ReplicaId>>>,
    /// Linearizable reads served under the lease, and by read-index.
    lease_reads: AtomicU64,
    index_reads: AtomicU64,
    /// The most bytes of entries one answer may carry: half the transport's frame limit.
    max_reply: usize,
    metrics: StoreMetrics,
    /// Administrative writes this replica handled.
    audit: Arc<AuditLog>,
    /// This replica's disk is stalled (see [`super::disk`]): it neither leads nor campaigns.
    disk_stalled: watch::Receiver<bool>,
    /// Free space on the data directory's disk.
    space: Arc<Space>,
}

impl StoreServer {
    /// Binds a QUIC endpoint at `config.listen` and starts the replica on it.
    pub async fn start(config: ReplicaConfig) -> Result<StoreServer, ServerError> {
        let transport = QuicTransport::bind(QuicConfig::new(config.listen, config.tls.clone()))?;
        Self::start_on(config, transport).await
    }

    /// Starts the replica on an existing endpoint.
    pub async fn start_on(
        config: ReplicaConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<StoreServer, ServerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| ServerError::Config {
            reason: format!("cannot create {}: {e}", config.data_dir.display()),
        })?;
        let (db, log, sm) = storage::open(&config.data_dir, config.retain, config.id)?;
        let revisions = sm.revisions();
        let applied = sm.applied();
        let fences = Fences {
            durability: log.durability(),
            lease: Arc::new(Lease::new()),
            held_back: Arc::new(AtomicBool::new(false)),
            advertised: Arc::new(AtomicU64::new(0)),
            greater_logs: Arc::new(AtomicU64::new(0)),
        };
        let (appends, syncs) = log.counters();
        let raft_config = Config {
            cluster_name: "strand-store".into(),
            heartbeat_interval: config.heartbeat.as_millis() as u64,
            election_timeout_min: config.election_timeout.0.as_millis() as u64,
            election_timeout_max: config.election_timeout.1.as_millis() as u64,
            max_payload_entries: 1024,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
            max_in_snapshot_log_to_keep: (config.snapshot_every / 4).max(1),
            purge_batch_size: 256,
            install_snapshot_timeout: 2000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ServerError::Raft {
            reason: e.to_string(),
        })?;
        let raft_inbox = transport.register(Service::RAFT, 1024)?;
        let store_inbox = transport.register(Service::STORE, 4096)?;
        let raft = openraft::Raft::new(
            config.id,
            Arc::new(raft_config),
            Network::new(transport.clone(), fences.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| ServerError::Raft {
            reason: e.to_string(),
        })?;
        // Elections are called by strand's elector (fresh timeouts for every wait), not by
        // openraft's timer; `initialize` below still elects at once.
        raft.runtime_config().elect(false);
        let (heard_tx, heard_rx) = watch::channel(Instant::now());
        let (stalled_tx, stalled_rx) = watch::channel(false);
        let space = Arc::new(Space::new(&config.data_dir, config.min_free_bytes));
        let metrics = StoreMetrics::register(config.id);

        if !config.join {
            let initialized = raft.is_initialized().await.map_err(|e| ServerError::Raft {
                reason: e.to_string(),
            })?;
            if !initialized {
                let mut members: BTreeMap<ReplicaId, BasicNode> = BTreeMap::new();
                if config.peers.is_empty() {
                    members.insert(config.id, BasicNode::new(transport.local_addr().to_string()));
                } else {
                    for (id, addr) in &config.peers {
                        members.insert(*id, BasicNode::new(addr.to_string()));
                    }
                }
                if !members.contains_key(&config.id) {
                    return Err(ServerError::Config {
                        reason: format!("--peers does not list this replica's id {}", config.id),
                    });
                }
                // Every initial replica initializes with the same membership; that is allowed
                // and lets the store form as soon as a majority is up.
                if let Err(e) = raft.initialize(members).await {
                    tracing::debug!(error = %e, "initialize (another replica may have been first)");
                }
            }
        }

        let (reads_tx, reads_rx) = mpsc::channel(8192);
        let (writes_tx, writes_rx) = mpsc::channel(16384);
        let shared = Arc::new(Shared {
            id: config.id,
            raft: raft.clone(),
            db: db.clone(),
            reads: reads_tx,
            revisions,
            appends,
            syncs,
            writes: writes_tx,
            fences: fences.clone(),
            read_lease: config.lease_reads.then(|| config.election_timeout.0 / 2),
            applied,
            lease_reads: AtomicU64::new(0),
            index_reads: AtomicU64::new(0),
            max_reply: transport.max_frame_size() / 2,
            metrics: metrics.clone(),
            audit: Arc::new(AuditLog::new(&config.data_dir, AUDIT_MAX_BYTES)),
            disk_stalled: stalled_rx.clone(),
            space: space.clone(),
        });
        let timing = Timing {
            min: config.election_timeout.0,
            max: config.election_timeout.1,
        };
        let seed = config.id
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        tracing::debug!(seed, "election timer seeded");
        let tasks = vec![
            tokio::spawn(run_elector(
                raft.clone(),
                config.id,
                heard_rx,
                fences.greater_logs.clone(),
                stalled_rx,
                timing,
                seed,
            )),
            tokio::spawn(watch_disk(
                raft.clone(),
                fences.durability.clone(),
                DiskCheck::new(config.disk_stall),
                stalled_tx,
                metrics.clone(),
            )),
            tokio::spawn(measure_space(space.clone(), metrics.clone())),
            tokio::spawn(read_index_batcher(raft.clone(), reads_rx)),
            tokio::spawn(write_batcher(raft.clone(), writes_rx)),
            tokio::spawn(advertise_commits(raft.clone(), fences.clone())),
            tokio::spawn(serve_raft(
                raft.clone(),
                fences.lease.clone(),
                heard_tx,
                fences.greater_logs.clone(),
                raft_inbox,
            )),
            tokio::spawn(serve_store(shared, store_inbox)),
        ];
        tracing::info!(id = config.id, addr = %transport.local_addr(), "store replica started");
        Ok(StoreServer {
            id: config.id,
            raft,
            #[cfg(any(test, feature = "testing"))]
            db,
            #[cfg(any(test, feature = "testing"))]
            durability: fences.durability.clone(),
            #[cfg(any(test, feature = "testing"))]
            space,
            transport,
            tasks,
        })
    }

    /// What of this replica's log is on disk; `Durability::stall_syncs` simulates a
    /// stalled disk. Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn durability(&self) -> &super::durable::Durability {
        &self.durability
    }

    /// The free space on this replica's disk; `Space::simulate_free_bytes` simulates a full
    /// disk. Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The address the replica listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// The Raft instance (metrics, membership changes).
    pub fn raft(&self) -> &StoreRaft {
        &self.raft
    }

    /// The database (direct reads for tests). Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stops Raft, the services and the endpoint.
    pub async fn shutdown(self) {
        let _ = self.raft.shutdown().await;
        for t in &self.tasks {
            t.abort();
        }
        self.transport.shutdown().await;
    }
}

async fn read_index_batcher(
    raft: StoreRaft,
    mut rx: mpsc::Receiver<oneshot::Sender<Result<(), StoreResponse>>>,
) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let result = match raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(e)) => match e {
                openraft::error::CheckIsLeaderError::ForwardToLeader(f) => Err(StoreResponse::NotLeader {
                    leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                }),
                openraft::error::CheckIsLeaderError::QuorumNotEnough(q) => Err(StoreResponse::Unavailable {
                    reason: q.to_string(),
                }),
            },
            Err(RaftError::Fatal(f)) => Err(StoreResponse::Unavailable {
                reason: f.to_string(),
            }),
        };
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

/// When the network held back a commit index because the leader's fsync lagged, sends a
/// heartbeat as soon as the fsync lands, so followers apply without waiting for the next
/// write or the heartbeat interval.
async fn advertise_commits(raft: StoreRaft, fences: Fences) {
    let mut durable = fences.durability.subscribe();
    while durable.changed().await.is_ok() {
        if !fences.held_back.load(Ordering::Relaxed) {
            continue;
        }
        // Under load the next AppendEntries, already on its way, carries the commit.
        tokio::time::sleep(Duration::from_millis(1)).await;
        if fences.held_back.swap(false, Ordering::Relaxed) && raft.trigger().heartbeat().await.is_err() {
            return;
        }
    }
}

/// Calls elections when [`Elector`] says so. `heard` is when this replica last accepted a
/// leader's AppendEntries or snapshot; a change of its vote counts as hearing too.
/// `greater_logs` counts vote exchanges that showed a greater log elsewhere.
async fn run_elector(
    raft: StoreRaft,
    id: ReplicaId,
    mut heard: watch::Receiver<Instant>,
    greater_logs: Arc<AtomicU64>,
    mut disk_stalled: watch::Receiver<bool>,
    timing: Timing,
    seed: u64,
) {
    let mut elector = Elector::new(timing, seed);
    let mut greater_seen = greater_logs.load(Ordering::Relaxed);
    let mut metrics = raft.metrics();
    let mut last_vote = metrics.borrow().vote;
    let mut vote_changed = Instant::now();
    loop {
        let (role, vote) = {
            let m = metrics.borrow_and_update();
            let membership = m.membership_config.membership();
            let voters = membership.voter_ids().count();
            let role = if m.state == ServerState::Leader {
                Role::Leader
            } else if !membership.voter_ids().any(|v| v == id) {
                Role::NonVoter
            } else if voters == 1 {
                Role::SoleVoter
            } else {
                Role::Voter {
                    committed: m.vote.is_committed(),
                }
            };
            (role, m.vote)
        };
        if vote != last_vote {
            last_vote = vote;
            vote_changed = Instant::now();
        }
        let greater = greater_logs.load(Ordering::Relaxed);
        if greater != greater_seen {
            greater_seen = greater;
            elector.saw_greater_log(Instant::now());
        }
        let heard_at = (*heard.borrow_and_update()).max(vote_changed);
        let stalled = *disk_stalled.borrow_and_update();
        let until = match elector.decide(Instant::now(), role, heard_at) {
            // A replica whose disk is stalled could not hold the leadership it won.
            Next::Elect if stalled => None,
            Next::Elect => {
                tracing::info!(
                    term = vote.leader_id().term + 1,
                    "no leader heard: calling an election"
                );
                if raft.trigger().elect().await.is_err() {
                    return;
                }
                continue;
            }
            Next::Idle => None,
            Next::WaitUntil(at) => Some(tokio::time::Instant::from_std(at)),
        };
        let sleep = async {
            match until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            r = metrics.changed() => if r.is_err() { return },
            r = heard.changed() => if r.is_err() { return },
            r = disk_stalled.changed() => if r.is_err() { return },
        }
    }
}

/// Steps this replica down while its disk is stalled ([`super::disk`]): no heartbeats (so
/// the followers elect another leader), and `disk_stalled` set, which refuses writes and
/// linearizable reads and keeps the elector from campaigning. Undone when the disk recovers.
async fn watch_disk(
    raft: StoreRaft,
    durability: Arc<super::durable::Durability>,
    mut check: DiskCheck,
    stalled: watch::Sender<bool>,
    metrics: StoreMetrics,
) {
    metrics.disk_stalled(false);
    let mut tick = tokio::time::interval(check.tick_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match check.handle_tick(Instant::now(), durability.unsynced_since()) {
            Some(DiskEvent::Stalled { waited }) => {
                tracing::warn!(
                    waited_ms = waited.as_millis() as u64,
                    "a log write has waited for its fsync longer than the bound: the disk is \
                     stalled; not leading or campaigning until it catches up"
                );
                raft.runtime_config().heartbeat(false);
                stalled.send_replace(true);
                metrics.disk_stalled(true);
            }
            Some(DiskEvent::Recovered) => {
                tracing::info!("the disk caught up: leading and campaigning again");
                stalled.send_replace(false);
                metrics.disk_stalled(false);
                raft.runtime_config().heartbeat(true);
            }
            None => {}
        }
    }
}

/// How often the data directory's free space is measured.
const SPACE_EVERY: Duration = Duration::from_millis(100);

/// Keeps [`Space`]'s measurement fresh.
async fn measure_space(space: Arc<Space>, metrics: StoreMetrics) {
    let mut tick = tokio::time::interval(SPACE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        space.refresh();
        metrics.disk_free(space.free());
    }
}

async fn serve_raft(
    raft: StoreRaft,
    lease: Arc<Lease>,
    heard: watch::Sender<Instant>,
    greater_logs: Arc<AtomicU64>,
    mut inbox: crate::transport::Inbox,
) {
    let heard = Arc::new(heard);
    while let Some(incoming) = inbox.recv().await {
        let Incoming::Request { from, body, reply } = incoming else {
            continue;
        };
        if !from.roles.contains(authz::Role::Store) {
            reply.refuse(format!(
                "permission denied: {:?} ({}) is not a store replica",
                from.name, from.roles
            ));
            continue;
        }
        let raft = raft.clone();
        let lease = lease.clone();
        let heard = heard.clone();
        let greater_logs = greater_logs.clone();
        tokio::spawn(async move {
            let req: RaftRequest = match codec::decode(&body) {
                Ok(r) => r,
                Err(e) => return reply.refuse(format!("bad raft request: {e}")),
            };
            if let Err(reason) = claimed_by_sender(&from.name, &req) {
                return reply.refuse(reason);
            }
            let candidate_log = match &req {
                RaftRequest::Vote(v) => Some(v.last_log_id),
                _ => None,
            };
            if candidate_log.is_some() {
                // Counted before openraft may grant it: a lease read in progress sees it.
                lease.vote_request_seen();
            }
            let resp = match req {
                RaftRequest::Append(r) => RaftResponse::Append(raft.append_entries(r).await),
                RaftRequest::Vote(r) => RaftResponse::Vote(raft.vote(r).await),
                RaftRequest::Snapshot(r) => RaftResponse::Snapshot(raft.install_snapshot(r).await),
            };
            // The leader was heard: this replica accepted its term.
            // A candidate with a greater log than this replica's: let it win.
            if let (Some(candidate), RaftResponse::Vote(Ok(r))) = (&candidate_log, &resp) {
                if !r.vote_granted && *candidate > r.last_log_id {
                    greater_logs.fetch_add(1, Ordering::Relaxed);
                }
            }
            let accepted = match &resp {
                RaftResponse::Append(r) => r
                    .as_ref()
                    .is_ok_and(|a| !matches!(a, openraft::raft::AppendEntriesResponse::HigherVote(_))),
                RaftResponse::Snapshot(r) => r.is_ok(),
                RaftResponse::Vote(_) => false,
            };
            if accepted {
                heard.send_replace(Instant::now());
            }
            reply.ok_typed(&resp);
        });
    }
}

/// Most STORE requests a replica handles at once (watch long-polls included). Past it the
/// service stops taking requests from its inbox, the inbox fills, and the transport holds
/// new streams back: requests wait instead of growing the task count without bound.
const MAX_STORE_REQUESTS: usize = 8192;

async fn serve_store(shared: Arc<Shared>, mut inbox: crate::transport::Inbox) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_STORE_REQUESTS));
    while let Some(incoming) = inbox.recv().await {
        let Incoming::Request { from, body, reply } = incoming else {
            continue;
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            handle(shared, from, body, reply).await;
            drop(slot);
        });
    }
}

fn leader_of(raft: &StoreRaft) -> Option<(ReplicaId, String)> {
    let m = raft.metrics();
    let m = m.borrow();
    let id = m.current_leader?;
    let addr = m
        .membership_config
        .membership()
        .get_node(&id)
        .map(|n| n.addr.clone())?;
    Some((id, addr))
}

/// Whether this replica leads and may act as the leader: not while its disk is stalled.
fn is_leader(shared: &Shared) -> bool {
    if *shared.disk_stalled.borrow() {
        return false;
    }
    let m = shared.raft.metrics();
    let m = m.borrow();
    m.current_leader == Some(shared.id) && m.state == ServerState::Leader
}

/// The answer of a replica that does not lead (or may not: a leader with a stalled disk
/// names no leader, so that clients look for the next one).
fn not_leader(shared: &Shared) -> StoreResponse {
    StoreResponse::NotLeader {
        leader: leader_of(&shared.raft).filter(|(id, _)| *id != shared.id),
    }
}

async fn handle(shared: Arc<Shared>, from: Peer, body: bytes::Bytes, reply: Responder) {
    let req: StoreRequest = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return reply.refuse(format!("{BAD_REQUEST}: {e}")),
    };
    // Every request is checked against the caller's verified certificate before anything
    // is done; a `Writes` frame write by write below.
    if let Err(denied) = authz::check_request(from.roles, &from.name, &req) {
        tracing::warn!(peer = %from.name, roles = %from.roles, "{denied}");
        return reply.ok_typed(&StoreResponse::PermissionDenied(denied));
    }
    // Administrative writes are recorded once answered (see `super::audit`).
    let audited = (authz::administers(from.roles)
        && matches!(
            req,
            StoreRequest::Write(_)
                | StoreRequest::Writes(_)
                | StoreRequest::AddReplica { .. }
                | StoreRequest::RemoveReplica { .. }
        ))
    .then(|| req.clone());
    let resp = match req {
        StoreRequest::Write(cmd) => write(&shared, cmd).await,
        StoreRequest::Get { path, mode } => {
            let get = || {
                super::core::validate_path(&path)?;
                let revision = shared.db.meta()?.revision;
                Ok((shared.db.get(&path)?, revision))
            };
            match read(&shared, mode, get).await {
                Ok((record, revision)) => StoreResponse::Value { record, revision },
                Err(r) => r,
            }
        }
        StoreRequest::Children { path, mode } => {
            let children = || {
                super::core::validate_path(&path)?;
                let revision = shared.db.meta()?.revision;
                Ok((shared.db.children(&path)?, revision))
            };
            match read(&shared, mode, children).await {
                Ok((names, revision)) => StoreResponse::Children { names, revision },
                Err(r) => r,
            }
        }
        StoreRequest::Range { prefix, mode } => {
            let range = || {
                super::core::validate_path(&prefix)?;
                shared.db.range(&prefix, shared.max_reply)
            };
            match read(&shared, mode, range).await {
                Ok((entries, revision)) => StoreResponse::Range { entries, revision },
                Err(r) => r,
            }
        }
        StoreRequest::Watch {
            prefix,
            from,
            max,
            wait_ms,
        } => match watch_events(&shared, prefix, Position::at(from), max, wait_ms, false).await {
            Ok((events, next)) => StoreResponse::Events {
                events,
                next: next.revision,
            },
            Err(e) => StoreResponse::Error(e),
        },
        StoreRequest::WatchPage {
            prefix,
            from,
            max,
            wait_ms,
        } => match watch_events(&shared, prefix, from, max, wait_ms, true).await {
            Ok((events, next)) => StoreResponse::EventPage { events, next },
            Err(e) => StoreResponse::Error(e),
        },
        StoreRequest::Status => status(&shared).await,
        StoreRequest::Audit { cluster, max } => {
            StoreResponse::Audit(shared.audit.read(&cluster, max.min(MAX_AUDIT_ENTRIES) as usize))
        }
        StoreRequest::AddReplica { id, addr } => add_replica(&shared, id, addr).await,
        StoreRequest::RemoveReplica { id } => remove_replica(&shared, id).await,
        StoreRequest::Writes(cmds) => {
            if cmds.len() > MAX_WRITES_PER_REQUEST {
                return reply.refuse(format!(
                    "{BAD_REQUEST}: {} writes in one frame, at most {MAX_WRITES_PER_REQUEST}",
                    cmds.len()
                ));
            }
            if !is_leader(&shared) {
                let answer = not_leader(&shared);
                return reply.ok_typed(&StoreResponse::Many(
                    cmds.iter().map(|_| answer.clone()).collect(),
                ));
            }
            // Queued for the write batcher in order; they usually share one log entry. (The
            // frame is answered when its last write is: writes that fail at once wait too.)
            let answers = futures::future::join_all(cmds.into_iter().map(|cmd| {
                let checked = authz::check_command(from.roles, &from.name, &cmd);
                let shared = &shared;
                async move {
                    match checked {
                        Ok(()) => write(shared, cmd).await,
                        Err(denied) => StoreResponse::PermissionDenied(denied),
                    }
                }
            }));
            StoreResponse::Many(answers.await)
        }
    };
    if let Some(req) = audited {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let entries = audit::entries(&from.name, from.roles, &req, &resp, now);
        if !entries.is_empty() {
            // File I/O off the runtime's threads; the answer does not wait for it.
            // One flush at a time is scheduled; under load it writes many entries at once.
            if shared.audit.record(entries) {
                let log = shared.audit.clone();
                tokio::task::spawn_blocking(move || log.flush());
            }
        }
    }
    reply.ok_typed(&resp);
}

/// Runs `get` against the state machine as `mode` asks: as it is (serializable), or
/// linearizable — under the lease when it holds, else after a read-index round.
async fn read<T>(
    shared: &Shared,
    mode: ReadMode,
    get: impl Fn() -> Result<T, StoreError>,
) -> Result<T, StoreResponse> {
    let _timed = shared.metrics.time_read(mode);
    if mode == ReadMode::Linearizable {
        if let Some(lease) = LeaseRead::begin(shared).await {
            let value = get();
            if lease.held(shared) {
                shared.lease_reads.fetch_add(1, Ordering::Relaxed);
                return value.map_err(StoreResponse::Error);
            }
        }
        read_index(shared).await?;
        shared.index_reads.fetch_add(1, Ordering::Relaxed);
    }
    get().map_err(StoreResponse::Error)
}

/// A read under the leader's lease: the conditions taken before the read, checked again
/// after it (see [`super::lease`]).
struct LeaseRead {
    votes_seen: u64,
    term: u64,
    expires: Instant,
}

/// The longest a lease read waits for the leader's state machine to catch up with the
/// commit index it advertised, before it takes the read-index path instead.
const LEASE_APPLY_WAIT: Duration = Duration::from_millis(100);

impl LeaseRead {
    async fn begin(shared: &Shared) -> Option<LeaseRead> {
        let lease_for = shared.read_lease?;
        if *shared.disk_stalled.borrow() {
            return None;
        }
        // Both taken first: a vote request or a commit that follows is the read's own
        // business; one that came before must be reflected.
        let votes_seen = shared.fences.lease.votes_seen();
        let advertised = shared.fences.advertised.load(Ordering::SeqCst);
        let term = {
            let m = shared.raft.metrics();
            let m = m.borrow();
            if m.state != ServerState::Leader || m.current_leader != Some(shared.id) {
                return None;
            }
            m.current_term
        };
        // The leader's first entry applied (so every earlier leader's writes are in the state
        // machine), and everything a follower may have applied and shown already.
        let up_to_date = |a: &Option<LogId<ReplicaId>>| {
            a.is_some_and(|a| a.leader_id.term == term && a.index >= advertised)
        };
        let mut applied = shared.applied.clone();
        tokio::time::timeout(LEASE_APPLY_WAIT, applied.wait_for(up_to_date))
            .await
            .ok()?
            .ok()?;
        let now = Instant::now();
        let acked = {
            let m = shared.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            if m.current_term != term || membership.get_joint_config().len() != 1 {
                return None;
            }
            shared
                .fences
                .lease
                .quorum_acked(shared.id, membership.voter_ids(), term, now)?
        };
        let expires = acked + lease_for;
        (now < expires).then_some(LeaseRead {
            votes_seen,
            term,
            expires,
        })
    }

    /// Whether the lease still held once the read was done.
    fn held(&self, shared: &Shared) -> bool {
        if Instant::now() >= self.expires || shared.fences.lease.votes_seen() != self.votes_seen {
            return false;
        }
        let m = shared.raft.metrics();
        let m = m.borrow();
        m.state == ServerState::Leader && m.current_term == self.term
    }
}

/// A read-index round (shared with every read queued meanwhile); leader only.
async fn read_index(shared: &Shared) -> Result<(), StoreResponse> {
    if !is_leader(shared) {
        return Err(not_leader(shared));
    }
    let (tx, rx) = oneshot::channel();
    if shared.reads.send(tx).await.is_err() {
        return Err(StoreResponse::Unavailable {
            reason: "shutting down".into(),
        });
    }
    match rx.await {
        Ok(r) => r,
        Err(_) => Err(StoreResponse::Unavailable {
            reason: "shutting down".into(),
        }),
    }
}

async fn write(shared: &Shared, cmd: Command) -> StoreResponse {
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
type WriteJob = (Command, oneshot::Sender<StoreResponse>);

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
async fn write_batcher(raft: StoreRaft, mut rx: mpsc::Receiver<WriteJob>) {
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

/// Room in a watch answer for everything but its events (variant, lengths, cursor).
const ANSWER_ROOM: usize = 64;

/// One watch answer from `from` (revision 0: from the next revision), waiting up to
/// `wait_ms` for a first event. `split`: the answer may cut a revision (the client resumes
/// inside it); otherwise revisions go whole.
async fn watch_events(
    shared: &Shared,
    prefix: String,
    from: Position,
    max: u32,
    wait_ms: u32,
    split: bool,
) -> Result<(Vec<Event>, Position), StoreError> {
    super::core::validate_path(&prefix).or_else(|e| {
        // A prefix may end with '/' to mean "children only".
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            Ok(())
        } else {
            super::core::validate_path(trimmed).map_err(|_| e)
        }
    })?;
    let limits = PageLimits {
        max_events: max.clamp(1, 10_000) as usize,
        max_bytes: shared.max_reply.saturating_sub(ANSWER_ROOM),
        split,
    };
    let mut revisions = shared.revisions.clone();
    let from = if from.revision == 0 {
        Position::at(shared.db.meta()?.revision + 1)
    } else {
        from
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(wait_ms.min(60_000)));
    let _watching = shared.metrics.watching();
    loop {
        revisions.borrow_and_update();
        let (events, next) = shared.db.events(&prefix, from, limits)?;
        if !events.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok((events, next));
        }
        if tokio::time::timeout_at(deadline, revisions.changed())
            .await
            .is_err()
        {
            continue; // one last scan, then the deadline answers
        }
    }
}

/// How long a status request waits for the Raft core (for the commit index).
const STATUS_CORE_WAIT: Duration = Duration::from_millis(100);

async fn status(shared: &Shared) -> StoreResponse {
    let m = shared.raft.metrics().borrow().clone();
    // The Raft core of a follower whose disk stalls waits for the stalled flush; status
    // must answer anyway, without the commit index then.
    let committed = tokio::time::timeout(
        STATUS_CORE_WAIT,
        shared.raft.with_raft_state(|s| s.committed.map(|l| l.index)),
    )
    .await
    .ok()
    .and_then(|r| r.ok())
    .flatten();
    let meta = shared.db.meta().unwrap_or_default();
    let membership = m.membership_config.membership();
    let addr_of = |id: ReplicaId| {
        membership
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default()
    };
    let role = match m.state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    };
    StoreResponse::Status(ReplicaStatus {
        id: shared.id,
        addr: addr_of(shared.id),
        role: role.into(),
        term: m.current_term,
        leader: m.current_leader,
        commit_index: committed,
        applied_index: m.last_applied.map(|l| l.index),
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        revision: meta.revision,
        oldest_revision: meta.oldest,
        db_size_bytes: shared.db.size_bytes(),
        log_entries: shared.appends.load(Ordering::Relaxed),
        log_syncs: shared.syncs.load(Ordering::Relaxed),
        lease_reads: shared.lease_reads.load(Ordering::Relaxed),
        index_reads: shared.index_reads.load(Ordering::Relaxed),
        voters: membership.voter_ids().map(|id| (id, addr_of(id))).collect(),
        learners: membership.learner_ids().map(|id| (id, addr_of(id))).collect(),
    })
}

fn membership_error(e: RaftError<ReplicaId, ClientWriteError<ReplicaId, BasicNode>>) -> StoreResponse {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => StoreResponse::NotLeader {
            leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            StoreResponse::Error(StoreError::Storage {
                reason: c.to_string(),
            })
        }
        e => StoreResponse::OutcomeUnknown {
            reason: e.to_string(),
        },
    }
}

async fn add_replica(shared: &Shared, id: ReplicaId, addr: String) -> StoreResponse {
    if addr.parse::<SocketAddr>().is_err() {
        return StoreResponse::Error(StoreError::Storage {
            reason: format!("{addr:?} is not an address (host:port with an IP)"),
        });
    }
    if !is_leader(shared) {
        return not_leader(shared);
    }
    if let Err(e) = shared.raft.add_learner(id, BasicNode::new(addr), true).await {
        return membership_error(e);
    }
    match shared
        .raft
        .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        .await
    {
        Ok(r) => StoreResponse::MembershipChanged {
            voters: r.membership.map(|m| m.voter_ids().collect()).unwrap_or_default(),
        },
        Err(e) => membership_error(e),
    }
}

async fn remove_replica(shared: &Shared, id: ReplicaId) -> StoreResponse {
    if !is_leader(shared) {
        return not_leader(shared);
    }
    match shared
        .raft
        .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
        .await
    {
        Ok(r) => StoreResponse::MembershipChanged {
            voters: r.membership.map(|m| m.voter_ids().collect()).unwrap_or_default(),
        },
        Err(e) => membership_error(e),
    }
}
