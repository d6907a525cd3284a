//! A store replica: the Raft node, its RPC service, and the client service.
//!
//! ```text
//!   Inbox(RAFT)  ──► raft.append_entries / vote / install_snapshot    (node certificates only)
//!   Inbox(STORE) ──► one task per request:
//!                      Write      leader? ─► write batcher ─► raft.client_write(Batch) ─►
//!                                            Written | StoreError, one per command
//!                                 else   ─► NotLeader { leader }
//!                      Get/Children (Linearizable) ─► read-index batcher ─► RocksDB read
//!                      Watch      RocksDB history from a revision, long-poll on the
//!                                 applied-revision channel
//!                      Status / AddReplica / RemoveReplica
//! ```
//!
//! Linearizable reads use read-index: every read queued while one `ensure_linearizable`
//! round runs shares the next round, so a burst of N concurrent reads costs one quorum
//! heartbeat instead of N. A read only joins a round that starts after it arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::core::{Batch, Command, StoreError};
use super::network::Network;
use super::protocol::{RaftRequest, RaftResponse, ReadMode, ReplicaStatus, StoreRequest, StoreResponse};
use super::storage::{self, Db, OpenError};
use super::{ReplicaId, StoreRaft};
use crate::codec;
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::tls::TlsMaterial;
use crate::transport::{Incoming, PeerRole, Responder, Service, Transport, TransportError};

/// Revisions of watch history kept by default.
pub const DEFAULT_RETAIN: u64 = 20_000;

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
}

impl ReplicaConfig {
    /// A configuration with defaults: 20 000 revisions of history, a snapshot every 20 000
    /// entries, 100 ms heartbeats, 500–1000 ms election timeouts.
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
            heartbeat: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(500), Duration::from_millis(1000)),
        }
    }
}

/// A running replica. Dropping it does not stop it; call [`StoreServer::shutdown`].
pub struct StoreServer {
    id: ReplicaId,
    raft: StoreRaft,
    db: Db,
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
        let (db, log, sm) = storage::open(&config.data_dir, config.retain)?;
        let revisions = sm.revisions();
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
            Network::new(transport.clone()),
            log,
            sm,
        )
        .await
        .map_err(|e| ServerError::Raft {
            reason: e.to_string(),
        })?;

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
        });
        let tasks = vec![
            tokio::spawn(read_index_batcher(raft.clone(), reads_rx)),
            tokio::spawn(write_batcher(raft.clone(), writes_rx)),
            tokio::spawn(serve_raft(raft.clone(), raft_inbox)),
            tokio::spawn(serve_store(shared, store_inbox)),
        ];
        tracing::info!(id = config.id, addr = %transport.local_addr(), "store replica started");
        Ok(StoreServer {
            id: config.id,
            raft,
            db,
            transport,
            tasks,
        })
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

    /// The database (direct reads for tests and status).
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

async fn serve_raft(raft: StoreRaft, mut inbox: crate::transport::Inbox) {
    while let Some(incoming) = inbox.recv().await {
        let Incoming::Request { from, body, reply } = incoming else {
            continue;
        };
        if from.role != PeerRole::Node || !from.name.starts_with("store-") {
            reply.refuse(format!("{} is not a store replica", from.name));
            continue;
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let req: RaftRequest = match codec::decode(&body) {
                Ok(r) => r,
                Err(e) => return reply.refuse(format!("bad raft request: {e}")),
            };
            let resp = match req {
                RaftRequest::Append(r) => RaftResponse::Append(raft.append_entries(r).await),
                RaftRequest::Vote(r) => RaftResponse::Vote(raft.vote(r).await),
                RaftRequest::Snapshot(r) => RaftResponse::Snapshot(raft.install_snapshot(r).await),
            };
            reply.ok_typed(&resp);
        });
    }
}

async fn serve_store(shared: Arc<Shared>, mut inbox: crate::transport::Inbox) {
    while let Some(incoming) = inbox.recv().await {
        let Incoming::Request { body, reply, .. } = incoming else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move { handle(shared, body, reply).await });
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

fn is_leader(shared: &Shared) -> bool {
    let m = shared.raft.metrics();
    let m = m.borrow();
    m.current_leader == Some(shared.id) && m.state == ServerState::Leader
}

async fn handle(shared: Arc<Shared>, body: bytes::Bytes, reply: Responder) {
    let req: StoreRequest = match codec::decode(&body) {
        Ok(r) => r,
        Err(e) => return reply.refuse(format!("bad store request: {e}")),
    };
    let resp = match req {
        StoreRequest::Write(cmd) => write(&shared, cmd).await,
        StoreRequest::Get { path, mode } => match read_barrier(&shared, mode).await {
            Err(r) => r,
            Ok(()) => match super::core::validate_path(&path).and_then(|()| {
                let revision = shared.db.meta()?.revision;
                Ok((shared.db.get(&path)?, revision))
            }) {
                Ok((record, revision)) => StoreResponse::Value { record, revision },
                Err(e) => StoreResponse::Error(e),
            },
        },
        StoreRequest::Children { path, mode } => match read_barrier(&shared, mode).await {
            Err(r) => r,
            Ok(()) => match super::core::validate_path(&path).and_then(|()| {
                let revision = shared.db.meta()?.revision;
                Ok((shared.db.children(&path)?, revision))
            }) {
                Ok((names, revision)) => StoreResponse::Children { names, revision },
                Err(e) => StoreResponse::Error(e),
            },
        },
        StoreRequest::Watch {
            prefix,
            from,
            max,
            wait_ms,
        } => watch_events(&shared, prefix, from, max, wait_ms).await,
        StoreRequest::Status => status(&shared).await,
        StoreRequest::AddReplica { id, addr } => add_replica(&shared, id, addr).await,
        StoreRequest::RemoveReplica { id } => remove_replica(&shared, id).await,
    };
    reply.ok_typed(&resp);
}

async fn read_barrier(shared: &Shared, mode: ReadMode) -> Result<(), StoreResponse> {
    match mode {
        ReadMode::Serializable => Ok(()),
        ReadMode::Linearizable => {
            if !is_leader(shared) {
                return Err(StoreResponse::NotLeader {
                    leader: leader_of(&shared.raft),
                });
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
    }
}

async fn write(shared: &Shared, cmd: Command) -> StoreResponse {
    if let Command::Txn(txn) = &cmd {
        if let Err(e) = txn.validate() {
            return StoreResponse::Error(e);
        }
    }
    if !is_leader(shared) {
        return StoreResponse::NotLeader {
            leader: leader_of(&shared.raft),
        };
    }
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

/// Group commit at the Raft level: openraft 0.9 waits for each append's fsync before the
/// next, so concurrent writes are proposed together, as one [`Batch`] entry. A batch is
/// formed when a slot frees up, from everything queued by then.
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

async fn watch_events(shared: &Shared, prefix: String, from: u64, max: u32, wait_ms: u32) -> StoreResponse {
    if let Err(e) = super::core::validate_path(&prefix).or_else(|e| {
        // A prefix may end with '/' to mean "children only".
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            Ok(())
        } else {
            super::core::validate_path(trimmed).map_err(|_| e)
        }
    }) {
        return StoreResponse::Error(e);
    }
    let max = max.clamp(1, 10_000) as usize;
    let mut revisions = shared.revisions.clone();
    let from = if from == 0 {
        match shared.db.meta() {
            Ok(m) => m.revision + 1,
            Err(e) => return StoreResponse::Error(e),
        }
    } else {
        from
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(wait_ms.min(60_000)));
    loop {
        revisions.borrow_and_update();
        match shared.db.events(&prefix, from, max) {
            Err(e) => return StoreResponse::Error(e),
            Ok((events, covered)) => {
                if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                    return StoreResponse::Events {
                        events,
                        next: covered.max(from.saturating_sub(1)) + 1,
                    };
                }
            }
        }
        if tokio::time::timeout_at(deadline, revisions.changed())
            .await
            .is_err()
        {
            continue; // one last scan, then the deadline answers
        }
    }
}

async fn status(shared: &Shared) -> StoreResponse {
    let m = shared.raft.metrics().borrow().clone();
    let committed = shared
        .raft
        .with_raft_state(|s| s.committed.map(|l| l.index))
        .await
        .ok()
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
        return StoreResponse::NotLeader {
            leader: leader_of(&shared.raft),
        };
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
        return StoreResponse::NotLeader {
            leader: leader_of(&shared.raft),
        };
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
