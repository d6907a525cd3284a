//! How to run one replica ([`ReplicaConfig`], its defaults) and why one could not start
//! ([`ServerError`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::propertystore::space::DEFAULT_MIN_FREE_BYTES;
use crate::propertystore::storage::OpenError;
use crate::propertystore::ReplicaId;
use crate::transport::tls::TlsMaterial;
use crate::transport::TransportError;

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
    /// down until the disk catches up (see [`crate::propertystore::disk`]).
    pub disk_stall: Duration,
    /// Free bytes the data directory's filesystem must keep: below them the leader refuses
    /// writes other than deletes and compaction (see [`crate::propertystore::space`]).
    pub min_free_bytes: u64,
    /// Sync the Raft log on the appending task instead of the group-commit syncer thread
    /// (every append waits for its own fsync), and build snapshots and flush the audit log on
    /// the asking task instead of a blocking thread. Slower; used by the deterministic
    /// simulation ([`crate::sim`]), where a thread outside the runtime would make runs
    /// unrepeatable.
    pub inline_log_sync: bool,
    /// Open the database so that a crash of the replica in this process
    /// ([`crate::embedded::EmbeddedCluster::kill_replica`]) loses what was not fsynced, as
    /// a power loss would (see `propertystore::storage::CrashImage`). For the simulation.
    pub lose_unsynced_on_crash: bool,
    /// Seed of the elector's random election timeouts (None: from the system clock). The
    /// simulation derives it from the run's seed.
    pub elector_seed: Option<u64>,
    /// Most client (STORE) requests the replica handles at once, watch long-polls included;
    /// past it a request waits for a slot, in arrival order.
    pub max_requests: usize,
}

/// Client requests a replica handles at once by default ([`ReplicaConfig::max_requests`]).
pub const DEFAULT_MAX_REQUESTS: usize = 8192;

impl ReplicaConfig {
    /// A configuration with defaults: 20 000 revisions of history, a snapshot every 20 000
    /// entries, 50 ms heartbeats (also openraft's AppendEntries timeout), 150–300 ms election
    /// timeouts, so a follower that hears no heartbeat calls an election 450–600 ms after the
    /// last one (see [`crate::propertystore::elector`]), and a read lease of 75 ms (see [`crate::propertystore::lease`]).
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
            inline_log_sync: false,
            lose_unsynced_on_crash: false,
            elector_seed: None,
            max_requests: DEFAULT_MAX_REQUESTS,
        }
    }
}
