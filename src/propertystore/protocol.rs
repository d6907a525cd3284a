//! The messages of `Service::STORE` (clients ↔ replicas) and `Service::RAFT` (replica ↔
//! replica), each in strand's versioned postcard envelope.
//!
//! Every store request gets exactly one [`StoreResponse`]. A replica that is not the leader
//! answers a write or a linearizable read with [`StoreResponse::NotLeader`], naming the
//! leader when it knows one: nothing was done, so the client may send it there.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::core::{Command, Event, Position, Record, StoreError, Written};
use super::{ReplicaId, TypeConfig};

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadMode {
    /// Linearizable by read-index at the leader (the default).
    Linearizable,
    /// Whatever the replica asked has applied (may be stale).
    Serializable,
}

/// A request to a store replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoreRequest {
    /// Replicate a command (leader only).
    Write(Command),
    /// Read one key.
    Get {
        /// The key.
        path: String,
        /// How.
        mode: ReadMode,
    },
    /// List the direct children of a path.
    Children {
        /// The path.
        path: String,
        /// How.
        mode: ReadMode,
    },
    /// Events under `prefix` from `from` on; waits up to `wait_ms` for the first one.
    Watch {
        /// Key prefix (`/` for all).
        prefix: String,
        /// The first revision wanted.
        from: u64,
        /// The most events in one answer.
        max: u32,
        /// How long to wait when there is nothing yet.
        wait_ms: u32,
    },
    /// The replica's Raft state.
    Status,
    /// Add a replica: as a learner, then a voter (leader only).
    AddReplica {
        /// Its id.
        id: ReplicaId,
        /// Its address.
        addr: String,
    },
    /// Remove a replica from the voters (leader only).
    RemoveReplica {
        /// Its id.
        id: ReplicaId,
    },
    /// Several writes in one frame (a client's concurrent writes to one replica, see
    /// [`super::client`]), at most [`MAX_WRITES_PER_REQUEST`]. Answered by
    /// [`StoreResponse::Many`]: one answer per write, in order, each as a lone
    /// [`StoreRequest::Write`] would have been answered.
    Writes(Vec<Command>),
    /// Every key equal to `prefix` or under `prefix/` (every key for `/`), sorted by key, all
    /// as of one revision. Answered by [`StoreResponse::Range`], or by
    /// [`StoreError::RangeTooLarge`] when the entries would take more than half the
    /// transport's frame limit.
    Range {
        /// The path whose key and subtree are read.
        prefix: String,
        /// How.
        mode: ReadMode,
    },
    /// [`StoreRequest::Watch`] from a position that may lie inside a revision, answered by
    /// [`StoreResponse::EventPage`]. An answer carries at most `max` events and half the
    /// transport's frame limit of them: whole revisions while they fit; a revision larger
    /// than that alone is cut, and the answer names where the next one continues (see
    /// [`super::core::Pager`]). A plain `Watch` is answered in whole revisions only, so a
    /// revision larger than a frame cannot reach an older client.
    WatchPage {
        /// Key prefix (`/` for all).
        prefix: String,
        /// Where to start (revision 0: from now).
        from: Position,
        /// The most events in one answer.
        max: u32,
        /// How long to wait when there is nothing yet.
        wait_ms: u32,
    },
    /// The last `max` (at most [`MAX_AUDIT_ENTRIES`]) entries of this replica's audit log
    /// concerning `cluster` ([`super::audit`]); answered by [`StoreResponse::Audit`].
    Audit {
        /// The cluster.
        cluster: String,
        /// The most entries wanted.
        max: u32,
    },
    /// Does `path` still hold exactly `value`? Answered by this replica alone, leader or not
    /// (never redirected), with [`StoreResponse::Confirmation`]; a majority of voters
    /// confirming means no change of the key committed before the request was sent (see
    /// [`super::confirm`]). (New variants go last: postcard numbers them in order.)
    ConfirmHeld {
        /// The key.
        path: String,
        /// The value it should hold.
        #[serde(with = "crate::codec::bytes")]
        value: Vec<u8>,
    },
}

/// The most writes one [`StoreRequest::Writes`] frame may carry.
pub const MAX_WRITES_PER_REQUEST: usize = 1024;

/// How a replica's refusal of a request it cannot decode or accept begins; nothing of such a
/// request was done.
pub const BAD_REQUEST: &str = "bad store request";

/// One replica's view, as `strand store status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Its id.
    pub id: ReplicaId,
    /// Its address.
    pub addr: String,
    /// Leader, Follower, Candidate or Learner.
    pub role: String,
    /// The current term.
    pub term: u64,
    /// The leader it knows.
    pub leader: Option<ReplicaId>,
    /// The last log index it knows committed.
    pub commit_index: Option<u64>,
    /// The last log index its state machine applied.
    pub applied_index: Option<u64>,
    /// The last log index of its current snapshot.
    pub snapshot_index: Option<u64>,
    /// The last log index purged from its log.
    pub purged_index: Option<u64>,
    /// The store revision applied.
    pub revision: u64,
    /// The oldest revision of the watch history.
    pub oldest_revision: u64,
    /// The database's approximate size on disk.
    pub db_size_bytes: u64,
    /// Log entries appended since start (group commit: concurrent appends share one
    /// fsync, so under load [`ReplicaStatus::log_syncs`] stays well below this).
    pub log_entries: u64,
    /// WAL fsyncs of the log since start.
    pub log_syncs: u64,
    /// Linearizable reads served under the leader's lease since start.
    pub lease_reads: u64,
    /// Linearizable reads served after a read-index round since start.
    pub index_reads: u64,
    /// Voters and their addresses, as this replica knows them.
    pub voters: Vec<(ReplicaId, String)>,
    /// Learners and their addresses.
    pub learners: Vec<(ReplicaId, String)>,
}

/// The answer to a [`StoreRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StoreResponse {
    /// The write was applied.
    Written(Written),
    /// The write was applied and failed (nothing changed), or the request is invalid.
    Error(StoreError),
    /// A key, as of `revision`.
    Value {
        /// The record, if the key exists.
        record: Option<Record>,
        /// The revision the read reflects.
        revision: u64,
    },
    /// Children names, as of `revision`.
    Children {
        /// The names.
        names: Vec<String>,
        /// The revision the read reflects.
        revision: u64,
    },
    /// Watch events; `next` is where to continue from.
    Events {
        /// The events, in revision order.
        events: Vec<Event>,
        /// The revision to ask for next.
        next: u64,
    },
    /// This replica is not the leader; nothing was done.
    NotLeader {
        /// The leader, if known.
        leader: Option<(ReplicaId, String)>,
    },
    /// The write may or may not have been applied (the leader lost leadership or stopped
    /// while it was in flight).
    OutcomeUnknown {
        /// What happened.
        reason: String,
    },
    /// The replica could not serve the request now (no quorum, shutting down); nothing was
    /// done.
    Unavailable {
        /// Why.
        reason: String,
    },
    /// The replica's status.
    Status(ReplicaStatus),
    /// A membership change was committed.
    MembershipChanged {
        /// The voters after it.
        voters: Vec<ReplicaId>,
    },
    /// The answers to a [`StoreRequest::Writes`], in its order.
    Many(Vec<StoreResponse>),
    /// The answer to a [`StoreRequest::Range`].
    Range {
        /// The keys and their records, sorted by key.
        entries: Vec<(String, Record)>,
        /// The revision every entry was read at.
        revision: u64,
    },
    /// The answer to a [`StoreRequest::WatchPage`].
    EventPage {
        /// The events, in history order.
        events: Vec<Event>,
        /// Where to continue: inside revision `next.revision` when `next.seq > 0` (the
        /// revision was cut), else at its start.
        next: Position,
    },
    /// The caller's certificate does not allow the request (or this write of a
    /// [`StoreRequest::Writes`]); nothing was done.
    PermissionDenied(crate::authz::Denied),
    /// The answer to a [`StoreRequest::Audit`]: this replica's entries, oldest first.
    Audit(Vec<super::audit::AuditEntry>),
    /// The answer to a [`StoreRequest::ConfirmHeld`]: this replica's verdict and the
    /// membership it knows.
    Confirmation(super::confirm::Confirmation),
}

/// The cap on [`StoreRequest::Audit`]'s `max`.
pub const MAX_AUDIT_ENTRIES: u32 = 10_000;

#[cfg(test)]
impl ReplicaStatus {
    /// A follower at term 1 that knows no leader, with `voters`: for tests.
    pub(crate) fn example(id: ReplicaId, voters: Vec<(ReplicaId, String)>) -> ReplicaStatus {
        ReplicaStatus {
            id,
            addr: String::new(),
            role: "Follower".into(),
            term: 1,
            leader: None,
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
}

/// A Raft RPC between replicas.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// AppendEntries (also heartbeats).
    Append(AppendEntriesRequest<TypeConfig>),
    /// RequestVote.
    Vote(VoteRequest<ReplicaId>),
    /// A chunk of a snapshot.
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The answer to a [`RaftRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    /// AppendEntries' answer.
    Append(Result<AppendEntriesResponse<ReplicaId>, RaftError<ReplicaId>>),
    /// RequestVote's answer.
    Vote(Result<VoteResponse<ReplicaId>, RaftError<ReplicaId>>),
    /// InstallSnapshot's answer.
    Snapshot(Result<InstallSnapshotResponse<ReplicaId>, RaftError<ReplicaId, InstallSnapshotError>>),
    /// The replica took nothing of an AppendEntries with entries or an InstallSnapshot: its
    /// disk has less than `needed_bytes` free (see [`crate::propertystore::space`]).
    DiskFull {
        /// Free bytes at the replica's last measurement.
        free_bytes: u64,
        /// What it needs free to append.
        needed_bytes: u64,
    },
}
