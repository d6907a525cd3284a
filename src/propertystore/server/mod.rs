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
//!                      ConfirmHeld  this replica alone, leader or not (`confirm`)
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
//!
//! Files: [`config`] (how to run a replica, why it could not start), this file (startup:
//! opening the storage, the Raft node, and spawning the tasks below), [`raft_service`] (the
//! RAFT service, the elector's task, commit advertising), [`dispatch`] (the STORE service:
//! one task per request, authorization, audit), [`reads`] (lease reads, the read-index
//! batcher, watches), [`writes`] (the write batcher), [`confirm`] (a confirmation, answered
//! by this replica alone), [`disk_guard`] (stalled disk, free space), [`admin`] (status and
//! membership changes).

mod admin;
mod config;
mod confirm;
mod disk_guard;
mod dispatch;
mod raft_service;
mod reads;
mod writes;

pub use self::config::{
    ReplicaConfig, ServerError, DEFAULT_DISK_STALL, DEFAULT_MAX_REQUESTS, DEFAULT_RETAIN,
};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use crate::watch;
use openraft::{BasicNode, Config, LogId, SnapshotPolicy};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::disk_guard::{measure_space, watch_disk};
use self::dispatch::serve_store;
use self::raft_service::{advertise_commits, run_elector, serve_raft, DiskState};
use self::reads::read_index_batcher;
use self::writes::{write_batcher, WriteJob};
use super::audit::{AuditLog, AUDIT_MAX_BYTES};
use super::disk::DiskCheck;
use super::elector::Timing;
use super::lease::Lease;
use super::metrics::StoreMetrics;
use super::network::{Fences, Network};
use super::protocol::StoreResponse;
use super::space::Space;
use super::storage::{self, Db};
use super::{ReplicaId, StoreRaft};
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::{Service, Transport};

/// A running replica. Dropping it does not stop it; call [`StoreServer::shutdown`].
pub struct StoreServer {
    id: ReplicaId,
    raft: StoreRaft,
    #[cfg(any(test, feature = "testing"))]
    db: Db,
    durability: Arc<super::durable::Durability>,
    /// The database, to take a crash image of (see `storage::CrashImage`).
    crash_db: Db,
    /// Whether the disk guard has stepped this replica down.
    disk_stalled_rx: watch::Receiver<bool>,
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
    /// Flush the audit log on the answering task, not a blocking thread (the simulation,
    /// [`ReplicaConfig::inline_log_sync`]).
    audit_inline: bool,
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
        let open = if config.lose_unsynced_on_crash {
            storage::open_losing_unsynced
        } else {
            storage::open
        };
        let (db, mut log, mut sm) = open(&config.data_dir, config.retain, config.id)?;
        let crash_db = db.clone();
        if config.inline_log_sync {
            log.sync_inline();
            sm.build_snapshots_inline();
        }
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
        let (heard_tx, heard_rx) = watch::channel(crate::clock::now());
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
            audit_inline: config.inline_log_sync,
            disk_stalled: stalled_rx.clone(),
            space: space.clone(),
        });
        let timing = Timing {
            min: config.election_timeout.0,
            max: config.election_timeout.1,
        };
        let seed = config
            .elector_seed
            .unwrap_or_else(|| config.id ^ crate::entropy::random_u64());
        tracing::debug!(seed, "election timer seeded");
        let disk_stalled_rx = stalled_rx.clone();
        let tasks = vec![
            tokio::spawn(run_elector(
                raft.clone(),
                config.id,
                heard_rx,
                fences.greater_logs.clone(),
                DiskState {
                    stalled: stalled_rx,
                    space: space.clone(),
                },
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
                space.clone(),
                heard_tx,
                fences.greater_logs.clone(),
                raft_inbox,
            )),
            tokio::spawn(serve_store(shared, store_inbox, config.max_requests)),
        ];
        tracing::info!(id = config.id, addr = %transport.local_addr(), "store replica started");
        Ok(StoreServer {
            id: config.id,
            raft,
            #[cfg(any(test, feature = "testing"))]
            db,
            durability: fences.durability.clone(),
            crash_db,
            disk_stalled_rx,
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

    /// Holds this replica's log fsyncs back (`true`, a stalled disk) or lets them go: the
    /// simulation's disk fault.
    pub(crate) fn stall_disk(&self, stalled: bool) {
        self.durability.set_syncs_stalled(stalled);
    }

    /// What a crash now keeps of this replica's WAL, if it was started with
    /// `lose_unsynced_on_crash` (see `storage::CrashImage`).
    pub(crate) fn crash_image(&self) -> Option<storage::CrashImage> {
        self.crash_db.crash_image()
    }

    /// Whether this replica's disk guard has stepped it down (its log fsyncs stall).
    pub fn disk_stalled(&self) -> bool {
        *self.disk_stalled_rx.borrow()
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
