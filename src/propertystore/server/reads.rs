//! The read paths: linearizable reads under the leader's lease ([`crate::propertystore::lease`])
//! when it holds, else by a read-index round shared by every read queued meanwhile
//! (`read_index_batcher`); and watch answers from a position, long-polling on the
//! applied-revision channel.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openraft::error::RaftError;
use openraft::{LogId, ServerState};
use tokio::sync::{mpsc, oneshot};

use super::dispatch::{is_leader, not_leader};
use super::Shared;
use crate::propertystore::core::{Event, PageLimits, Position, StoreError};
use crate::propertystore::protocol::{ReadMode, StoreResponse};
use crate::propertystore::{ReplicaId, StoreRaft};
use crate::telemetry::marks::{self, Stage};

pub(super) async fn read_index_batcher(
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

/// Runs `get` against the state machine as `mode` asks: as it is (serializable), or
/// Runs `get` against the state machine as `mode` asks: as it is (serializable), or
/// linearizable — under the lease when it holds, else after a read-index round.
pub(super) async fn read<T>(
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
/// after it (see [`crate::propertystore::lease`]).
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
        let now = crate::clock::now();
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
        if crate::clock::now() >= self.expires || shared.fences.lease.votes_seen() != self.votes_seen {
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

/// Room in a watch answer for everything but its events (variant, lengths, cursor).
const ANSWER_ROOM: usize = 64;

/// One watch answer from `from` (revision 0: from the next revision), waiting up to
/// `wait_ms` for a first event. `split`: the answer may cut a revision (the client resumes
/// inside it); otherwise revisions go whole.
pub(super) async fn watch_events(
    shared: &Shared,
    prefix: String,
    from: Position,
    max: u32,
    wait_ms: u32,
    split: bool,
) -> Result<(Vec<Event>, Position), StoreError> {
    crate::propertystore::core::validate_path(&prefix).or_else(|e| {
        // A prefix may end with '/' to mean "children only".
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            Ok(())
        } else {
            crate::propertystore::core::validate_path(trimmed).map_err(|_| e)
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
        if let Some(first) = events.first().filter(|_| prefix != "/") {
            marks::mark(Stage::WatchAnswer, first.revision);
        }
        if !events.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok((events, next));
        }
        match tokio::time::timeout_at(deadline, revisions.changed()).await {
            Err(_) => continue, // one last scan, then the deadline answers
            Ok(Ok(())) => {}
            // The state machine is gone (the replica is stopping): no revision will come,
            // and waiting on a closed channel would spin until the deadline. (Found by the
            // deterministic simulation, `strand sim --seed 1`.)
            Ok(Err(_)) => return Ok((events, next)),
        }
    }
}
