//! Status (never waits long on the Raft core, so a replica with a stalled disk still answers)
//! and membership changes (add a replica as learner then voter; remove one).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};

use super::dispatch::{is_leader, not_leader};
use super::Shared;
use crate::propertystore::core::StoreError;
use crate::propertystore::protocol::{ReplicaStatus, StoreResponse};
use crate::propertystore::ReplicaId;

/// How long a status request waits for the Raft core (for the commit index).
const STATUS_CORE_WAIT: Duration = Duration::from_millis(100);

pub(super) async fn status(shared: &Shared) -> StoreResponse {
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

pub(super) async fn add_replica(shared: &Shared, id: ReplicaId, addr: String) -> StoreResponse {
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

pub(super) async fn remove_replica(shared: &Shared, id: ReplicaId) -> StoreResponse {
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
