//! The replica's side of Raft: the RAFT service (`serve_raft`: node certificates only, one
//! task per RPC; feeds the lease, the elector's "heard a leader" clock and its
//! greater-log count), the elector's task (`run_elector`: calls elections when
//! [`crate::propertystore::elector::Elector`] says so) and `advertise_commits` (a heartbeat as soon as
//! a held-back commit is durable).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::watch;
use openraft::{EntryPayload, ServerState};

use crate::authz;
use crate::codec;
use crate::propertystore::core::StoreError;
use crate::propertystore::elector::{Elector, Next, Role, Timing};
use crate::propertystore::lease::Lease;
use crate::propertystore::network::{claimed_by_sender, Fences};
use crate::propertystore::protocol::{RaftRequest, RaftResponse};
use crate::propertystore::space::Space;
use crate::propertystore::{ReplicaId, StoreRaft};
use crate::telemetry::marks::{self, Stage};
use crate::transport::Incoming;

/// When the network held back a commit index because the leader's fsync lagged, sends a
/// heartbeat as soon as the fsync lands, so followers apply without waiting for the next
/// write or the heartbeat interval.
pub(super) async fn advertise_commits(raft: StoreRaft, fences: Fences) {
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

/// How often a replica that would call an election but has a full disk looks again.
const FULL_DISK_RECHECK: Duration = Duration::from_millis(100);

/// How long after its disk was last seen full a replica counts as having heard the leader:
/// longer than openraft's back-off (500 ms) from a replica that refused its appends, so the
/// leader's next try arrives before this replica calls an election.
const FULL_DISK_GRACE: Duration = Duration::from_millis(700);

/// What the elector knows of the replica's disk: whether fsyncs stall, and its free space.
pub(super) struct DiskState {
    pub stalled: watch::Receiver<bool>,
    pub space: Arc<Space>,
}

/// Calls elections when [`Elector`] says so. `heard` is when this replica last accepted a
/// leader's AppendEntries or snapshot; a change of its vote counts as hearing too.
/// `greater_logs` counts vote exchanges that showed a greater log elsewhere.
pub(super) async fn run_elector(
    raft: StoreRaft,
    id: ReplicaId,
    mut heard: watch::Receiver<Instant>,
    greater_logs: Arc<AtomicU64>,
    mut disk: DiskState,
    timing: Timing,
    seed: u64,
) {
    let mut elector = Elector::new(timing, seed);
    let mut greater_seen = greater_logs.load(Ordering::Relaxed);
    let mut metrics = raft.metrics();
    let mut last_vote = metrics.borrow().vote;
    let mut vote_changed = crate::clock::now();
    let mut full_seen: Option<Instant> = None;
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
            vote_changed = crate::clock::now();
        }
        let greater = greater_logs.load(Ordering::Relaxed);
        if greater != greater_seen {
            greater_seen = greater;
            elector.saw_greater_log(crate::clock::now());
        }
        let full = disk.space.follower_room().is_err();
        if full {
            full_seen = Some(crate::clock::now());
        }
        // While the disk is full, and for a while after, the leader backs off from this
        // replica (its appends were refused), so its silence says nothing.
        let heard_at = (*heard.borrow_and_update())
            .max(vote_changed)
            .max(full_seen.map_or(vote_changed, |t| t + FULL_DISK_GRACE));
        let stalled = *disk.stalled.borrow_and_update();
        let until = match elector.decide(crate::clock::now(), role, heard_at) {
            // A replica whose disk is stalled could not hold the leadership it won.
            Next::Elect if stalled => None,
            // Nor one whose disk is full: asked again soon.
            Next::Elect if full => Some(tokio::time::Instant::now() + FULL_DISK_RECHECK),
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
        // Biased, so a replay polls in the same order; the timer last (a change recomputes).
        tokio::select! {
            biased;
            r = disk.stalled.changed() => if r.is_err() { return },
            r = heard.changed() => if r.is_err() { return },
            r = metrics.changed() => if r.is_err() { return },
            () = sleep => {}
        }
    }
}

pub(super) async fn serve_raft(
    raft: StoreRaft,
    lease: Arc<Lease>,
    space: Arc<Space>,
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
        let space = space.clone();
        tokio::spawn(async move {
            let req: RaftRequest = match codec::decode(&body) {
                Ok(r) => r,
                Err(e) => return reply.refuse(format!("bad raft request: {e}")),
            };
            if let Err(reason) = claimed_by_sender(&from.name, &req) {
                return reply.refuse(reason);
            }
            // A nearly full disk takes nothing that would write (see `space`).
            let room = match &req {
                RaftRequest::Append(r) => {
                    space.follower_admit(r.entries.iter().flat_map(|e| match &e.payload {
                        EntryPayload::Normal(batch) => batch.0.as_slice(),
                        EntryPayload::Blank | EntryPayload::Membership(_) => &[],
                    }))
                }
                RaftRequest::Snapshot(_) => space.follower_room(),
                RaftRequest::Vote(_) => Ok(()),
            };
            if let Err(StoreError::DiskFull {
                free_bytes,
                reserve_bytes,
            }) = room
            {
                // A leader of the current term (or a later one) is alive: this replica must
                // not call an election for the silence its own refusals cause. A deposed
                // leader's append says nothing of the current one.
                let term = match &req {
                    RaftRequest::Append(r) => Some(r.vote.leader_id().term),
                    RaftRequest::Snapshot(r) => Some(r.vote.leader_id().term),
                    RaftRequest::Vote(_) => None,
                };
                if term.is_some_and(|t| t >= raft.metrics().borrow().current_term) {
                    heard.send_replace(crate::clock::now());
                }
                return reply.ok_typed(&RaftResponse::DiskFull {
                    free_bytes,
                    needed_bytes: reserve_bytes,
                });
            }
            let candidate_log = match &req {
                RaftRequest::Vote(v) => Some(v.last_log_id),
                _ => None,
            };
            if candidate_log.is_some() {
                // Counted before openraft may grant it: a lease read in progress sees it.
                lease.vote_request_seen();
            }
            let appending = match &req {
                RaftRequest::Append(r) => r.entries.last().map(|e| e.log_id.index),
                _ => None,
            };
            if let Some(last) = appending {
                marks::mark(Stage::AppendRecv, last);
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
                RaftResponse::Vote(_) | RaftResponse::DiskFull { .. } => false,
            };
            if accepted {
                heard.send_replace(crate::clock::now());
            }
            if let Some(last) = appending {
                marks::mark(Stage::AppendAnswered, last);
            }
            reply.ok_typed(&resp);
        });
    }
}
