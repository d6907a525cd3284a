//! Raft RPCs over strand's transport (`Service::RAFT`): typed calls with the deadline
//! openraft gives each RPC, peers named by their certificates (`store-<id>`).
//!
//! A peer that cannot be reached is reported to openraft as `Unreachable`, so replication to
//! it backs off instead of spinning; every other failure is a `Network` error and retried at
//! the next heartbeat.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::durable::Durability;
use super::lease::Lease;
use super::protocol::{RaftRequest, RaftResponse};
use super::{replica_name, ReplicaId, TypeConfig};
use crate::telemetry::marks::{self, Stage};
use crate::transport::{self, PeerAddr, Service, Transport, TransportError};

type Node = BasicNode;

/// Creates a [`Connection`] per peer.
#[derive(Clone)]
pub struct Network {
    transport: Arc<dyn Transport>,
    fences: Fences,
}

/// What every connection shares: the log's durability (to clamp the advertised commit index)
/// and the leader's lease (fed with accepted AppendEntries).
#[derive(Clone)]
pub struct Fences {
    /// This replica's log on disk.
    pub durability: Arc<Durability>,
    /// Acknowledgements of this leader's term.
    pub lease: Arc<Lease>,
    /// Whether the last AppendEntries went out with its commit index held back; the server
    /// sends a heartbeat once the log's fsync catches up (unless a later AppendEntries carried
    /// the commit meanwhile), so followers learn the commit promptly.
    pub held_back: Arc<AtomicBool>,
    /// The highest commit index sent to any follower: what a follower may have applied and
    /// shown to a client, so what a lease read must reflect.
    pub advertised: Arc<AtomicU64>,
    /// Counts vote exchanges that showed another replica holding a greater log than this
    /// one's; the elector then waits longer, so that replica wins (see
    /// [`super::elector::Elector::saw_greater_log`]).
    pub greater_logs: Arc<AtomicU64>,
}

impl Network {
    /// Raft RPCs through `transport`.
    pub fn new(transport: Arc<dyn Transport>, fences: Fences) -> Self {
        Network { transport, fences }
    }
}

/// The way to one peer.
pub struct Connection {
    transport: Arc<dyn Transport>,
    fences: Fences,
    target: ReplicaId,
    peer: Option<PeerAddr>,
    addr_text: String,
    /// The last call failed because its frame was too large.
    too_large: AtomicBool,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: ReplicaId, node: &Node) -> Connection {
        let peer = node
            .addr
            .parse()
            .ok()
            .map(|addr| PeerAddr::named(replica_name(target), addr));
        Connection {
            transport: self.transport.clone(),
            fences: self.fences.clone(),
            target,
            peer,
            addr_text: node.addr.clone(),
            too_large: AtomicBool::new(false),
        }
    }
}

fn to_rpc_error<E: std::error::Error>(e: TransportError) -> RPCError<ReplicaId, Node, E> {
    if e.is_not_delivered() {
        RPCError::Unreachable(Unreachable::new(&e))
    } else {
        RPCError::Network(NetworkError::new(&e))
    }
}

impl Connection {
    async fn call<E: std::error::Error>(
        &self,
        req: RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, RPCError<ReplicaId, Node, E>> {
        let Some(peer) = &self.peer else {
            let e = std::io::Error::other(format!(
                "replica {} has a bad address {:?}",
                self.target, self.addr_text
            ));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        transport::call(&*self.transport, peer, Service::RAFT, &req, timeout)
            .await
            .map_err(|e| {
                if matches!(e, TransportError::FrameTooLarge { .. }) {
                    self.too_large.store(true, Ordering::Relaxed);
                }
                to_rpc_error(e)
            })
    }

    /// The follower's disk is full: openraft backs off (`Unreachable`) and retries, the
    /// majority goes on without it.
    fn disk_full<E: std::error::Error>(&self, free: u64, needed: u64) -> RPCError<ReplicaId, Node, E> {
        let e = std::io::Error::other(format!(
            "replica {} refuses to append: its disk has {free} bytes free, {needed} needed",
            self.target
        ));
        RPCError::Unreachable(Unreachable::new(&e))
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<ReplicaId, Node, E> {
        let e = std::io::Error::other("unexpected answer type");
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ReplicaId>, RPCError<ReplicaId, Node, RaftError<ReplicaId>>> {
        // The second rule of `durable`: advertise no commit beyond this replica's disk.
        let durable = self.fences.durability.durable();
        let hold_back = durable.map(|d| d.index) < rpc.leader_commit.map(|c| c.index);
        if hold_back {
            rpc.leader_commit = durable;
        }
        self.fences.held_back.store(hold_back, Ordering::Relaxed);
        if hold_back {
            marks::mark(Stage::CommitHeld, durable.map_or(0, |d| d.index));
        }
        if let Some(c) = rpc.leader_commit {
            if self.fences.advertised.fetch_max(c.index, Ordering::SeqCst) < c.index {
                marks::mark(Stage::CommitSent, c.index);
            }
        }
        let term = rpc.vote.leader_id.term;
        let sent = crate::clock::now();
        let entries = rpc.entries.len() as u64;
        let last = rpc.entries.last().map(|e| e.log_id.index);
        if let Some(last) = last {
            marks::mark(Stage::AppendSent, last);
        }
        let answer = match self.call(RaftRequest::Append(rpc), option.hard_ttl()).await {
            // Too many entries for one frame: openraft retries with fewer.
            Err(RPCError::Unreachable(_)) if entries > 1 && self.too_large.swap(false, Ordering::Relaxed) => {
                return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(
                    entries / 2,
                )));
            }
            r => r?,
        };
        match answer {
            RaftResponse::DiskFull {
                free_bytes,
                needed_bytes,
            } => Err(self.disk_full(free_bytes, needed_bytes)),
            RaftResponse::Append(r) => {
                let r = r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))?;
                // Everything but HigherVote means the follower took this leader's term and
                // renewed its lease.
                if !matches!(r, AppendEntriesResponse::HigherVote(_)) {
                    self.fences.lease.acked(self.target, term, sent);
                }
                if let Some(last) = last {
                    marks::mark(Stage::AppendAcked, last);
                }
                Ok(r)
            }
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<ReplicaId>,
        RPCError<ReplicaId, Node, RaftError<ReplicaId, InstallSnapshotError>>,
    > {
        match self.call(RaftRequest::Snapshot(rpc), option.hard_ttl()).await? {
            RaftResponse::Snapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            RaftResponse::DiskFull {
                free_bytes,
                needed_bytes,
            } => Err(self.disk_full(free_bytes, needed_bytes)),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<ReplicaId>,
        option: RPCOption,
    ) -> Result<VoteResponse<ReplicaId>, RPCError<ReplicaId, Node, RaftError<ReplicaId>>> {
        let mine = rpc.last_log_id;
        match self.call(RaftRequest::Vote(rpc), option.hard_ttl()).await? {
            RaftResponse::Vote(r) => {
                if let Ok(resp) = &r {
                    if !resp.vote_granted && resp.last_log_id > mine {
                        self.fences.greater_logs.fetch_add(1, Ordering::Relaxed);
                    }
                }
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(self.unexpected()),
        }
    }
}

/// Whether the replica whose certificate names `sender` may send `req`: every Raft RPC
/// speaks for the replica in its vote (the leader appending, the candidate asking), and that
/// replica must be the sender — `store-2`'s certificate cannot claim to be replica 3.
pub fn claimed_by_sender(sender: &str, req: &RaftRequest) -> Result<(), String> {
    let vote = match req {
        RaftRequest::Append(r) => &r.vote,
        RaftRequest::Vote(r) => &r.vote,
        RaftRequest::Snapshot(r) => &r.vote,
    };
    match vote.leader_id().voted_for() {
        Some(id) if replica_name(id) == sender => Ok(()),
        Some(id) => Err(format!(
            "permission denied: {sender:?} speaks for replica {id} ({:?})",
            replica_name(id)
        )),
        None => Err(format!(
            "permission denied: {sender:?} sent a vote for no replica"
        )),
    }
}

#[cfg(test)]
mod tests {
    use openraft::{LogId, Vote};

    use super::*;

    fn vote_from(id: ReplicaId) -> RaftRequest {
        RaftRequest::Vote(VoteRequest {
            vote: Vote::new(3, id),
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(2, id), 7)),
        })
    }

    #[test]
    fn a_raft_peer_speaks_only_for_its_own_replica_id() {
        assert!(claimed_by_sender("store-2", &vote_from(2)).is_ok());
        let err = claimed_by_sender("store-2", &vote_from(3)).unwrap_err();
        assert!(err.contains("replica 3") && err.contains("store-2"), "{err}");
        assert!(claimed_by_sender("store-22", &vote_from(2)).is_err());
        let append = RaftRequest::Append(AppendEntriesRequest {
            vote: Vote::new_committed(4, 1),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        });
        assert!(claimed_by_sender("store-1", &append).is_ok());
        assert!(claimed_by_sender("store-3", &append).is_err());
    }
}
