//! The property store: openraft with a RocksDB log and state machine, store-wide revisions,
//! watches, transactions and a moka write-through cache (issue 4).
//!
//! ```text
//!   client (PropertyStore) ──Service::STORE──► server ──► Raft (openraft 0.9) ──► storage
//!     moka cache ◄── watch                       │  lease / read-index      log + vote (fsync,
//!                                                 │                           group commit)
//!                                                 └──Service::RAFT──► peers   state machine CFs
//! ```
//!
//! Paths mirror Helix's znodes (`/MYCLUSTER/IDEALSTATES/myDB`). [`core`] is the pure data
//! model and state machine; [`storage`] puts it and the Raft log in RocksDB behind openraft's
//! storage traits; [`durable`] tracks what of the log is on disk and holds the two rules that
//! let the leader replicate before its own fsync; [`disk`] tells when a write has waited too
//! long for its fsync (a leader then steps down); [`lease`] is the leader's lease for reads;
//! [`elector`] decides when a follower calls an election; [`space`] refuses writes while the
//! disk is nearly full;
//! [`confirm`] answers "does this key still hold this value?" from a majority of voters,
//! with no leader (a participant's session lease);
//! [`network`] carries Raft RPCs over strand's transport; [`server`] runs a replica and
//! answers clients; [`client`] finds the leader, retries what is safe and keeps the cache,
//! sending a client's concurrent writes to one replica in shared frames (`lanes`).

pub mod audit;
pub mod client;
pub mod confirm;
pub mod core;
pub mod disk;
pub mod durable;
pub mod elector;
mod lanes;
pub mod lease;
pub mod metrics;
pub mod network;
mod pins;
pub mod protocol;
pub mod server;
pub mod space;
pub mod storage;

pub use self::client::{ClientError, PropertyStore, StoreClientConfig};
pub use self::core::{
    Batch, Cmp, Command, Condition, Event, EventKind, Op, OpOutcome, Outcome, Position, Record, Stat,
    StoreError, Txn, Written,
};
pub use self::server::{ReplicaConfig, StoreServer};

use std::io::Cursor;

/// A store replica's id in the Raft group.
pub type ReplicaId = u64;

openraft::declare_raft_types!(
    /// openraft's type configuration for the property store.
    pub TypeConfig:
        D = Batch,
        R = Vec<Outcome>,
        NodeId = ReplicaId,
        Node = openraft::BasicNode,
);

/// The Raft instance of the property store.
pub type StoreRaft = openraft::Raft<TypeConfig>;

/// The node name a replica's certificate carries: `store-<id>`.
pub fn replica_name(id: ReplicaId) -> String {
    format!("store-{id}")
}
