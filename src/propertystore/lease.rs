//! The leader's lease: linearizable reads without a heartbeat round per read.
//!
//! openraft followers refuse to vote for a new leader for `election_timeout_max` after they
//! last accepted an AppendEntries from the current one (openraft's `leader_lease`). So if a
//! majority of voters accepted an AppendEntries that the leader *sent* at instant `t`, no
//! other replica can become leader before `t + election_timeout_max` on those replicas'
//! clocks, and the leader's state machine (once it applied its own first entry, so that every
//! earlier leader's writes are in it) is up to date until then. strand's read lease is half
//! of `election_timeout_min`: a wide margin for clock-rate drift between replicas.
//!
//! The leader itself is the one voter that does not refuse: openraft lets it grant a vote once
//! its own vote is older than the lease. The Raft service counts every vote request it passes
//! to openraft ([`Lease::vote_request_seen`]); a lease read takes that count before it reads
//! and checks that it did not change afterwards, together with the lease's expiry and the
//! leader's term. Any doubt falls back to openraft's read-index (`ensure_linearizable`).
//!
//! The acknowledgements come from the Raft network ([`super::network`]), which knows when it
//! sent each AppendEntries and whether the follower accepted the leader's term.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::ReplicaId;

/// Acknowledgements of the leader's term by the other replicas, and vote requests seen.
#[derive(Debug, Default)]
pub struct Lease {
    /// Per replica: the latest term it accepted, and when the leader sent that request.
    acks: Mutex<HashMap<ReplicaId, (u64, Instant)>>,
    votes_seen: AtomicU64,
}

impl Lease {
    /// No acknowledgements yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `replica` accepted an AppendEntries of `term` that was sent at `sent`.
    pub fn acked(&self, replica: ReplicaId, term: u64, sent: Instant) {
        let mut acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        let entry = acks.entry(replica).or_insert((term, sent));
        if (term, sent) > *entry {
            *entry = (term, sent);
        }
    }

    /// A vote request arrived and goes to openraft now.
    pub fn vote_request_seen(&self) {
        self.votes_seen.fetch_add(1, Ordering::SeqCst);
    }

    /// How many vote requests arrived so far.
    pub fn votes_seen(&self) -> u64 {
        self.votes_seen.load(Ordering::SeqCst)
    }

    /// The latest instant at which a majority of `voters` had acknowledged `term`, counting
    /// `me` (the leader) as acknowledging at `now`. `None` without such a majority.
    pub fn quorum_acked<I>(&self, me: ReplicaId, voters: I, term: u64, now: Instant) -> Option<Instant>
    where
        I: IntoIterator,
        I::Item: Borrow<ReplicaId>,
    {
        let acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        let mut count = 0;
        let mut times: Vec<Instant> = voters
            .into_iter()
            .filter_map(|id| {
                count += 1;
                let id = *id.borrow();
                if id == me {
                    Some(now)
                } else {
                    acks.get(&id).filter(|(t, _)| *t == term).map(|(_, at)| *at)
                }
            })
            .collect();
        let majority = count / 2 + 1;
        if count == 0 || times.len() < majority {
            return None;
        }
        times.sort_unstable_by(|a, b| b.cmp(a));
        Some(times[majority - 1])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::collections::BTreeSet;

    use super::*;

    fn voters(ids: &[ReplicaId]) -> BTreeSet<ReplicaId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn a_majority_is_the_leader_and_the_freshest_followers() {
        let lease = Lease::new();
        let now = Instant::now();
        let t = |ms| now - Duration::from_millis(ms);
        assert_eq!(
            lease.quorum_acked(1, voters(&[1, 2, 3]), 5, now),
            None,
            "no acks yet"
        );
        lease.acked(2, 5, t(40));
        assert_eq!(lease.quorum_acked(1, voters(&[1, 2, 3]), 5, now), Some(t(40)));
        lease.acked(3, 5, t(10));
        assert_eq!(
            lease.quorum_acked(1, voters(&[1, 2, 3]), 5, now),
            Some(t(10)),
            "the fresher of the two followers is enough"
        );
        lease.acked(4, 5, t(20));
        lease.acked(5, 5, t(30));
        assert_eq!(
            lease.quorum_acked(1, voters(&[1, 2, 3, 4, 5]), 5, now),
            Some(t(20)),
            "five voters: the leader and the two freshest"
        );
    }

    #[test]
    fn acks_of_another_term_do_not_count() {
        let lease = Lease::new();
        let now = Instant::now();
        lease.acked(2, 4, now);
        lease.acked(3, 4, now);
        assert_eq!(lease.quorum_acked(1, voters(&[1, 2, 3]), 5, now), None);
        lease.acked(2, 5, now);
        assert_eq!(lease.quorum_acked(1, voters(&[1, 2, 3]), 5, now), Some(now));
    }

    #[test]
    fn an_older_ack_never_replaces_a_newer_one() {
        let lease = Lease::new();
        let now = Instant::now();
        lease.acked(2, 5, now);
        lease.acked(2, 5, now - Duration::from_millis(50));
        assert_eq!(lease.quorum_acked(1, voters(&[1, 2, 3]), 5, now), Some(now));
    }

    #[test]
    fn a_leader_outside_the_voters_needs_a_majority_of_them() {
        let lease = Lease::new();
        let now = Instant::now();
        lease.acked(2, 5, now);
        assert_eq!(lease.quorum_acked(1, voters(&[2, 3, 4]), 5, now), None);
        lease.acked(3, 5, now);
        assert_eq!(lease.quorum_acked(1, voters(&[2, 3, 4]), 5, now), Some(now));
    }

    #[test]
    fn vote_requests_are_counted() {
        let lease = Lease::new();
        assert_eq!(lease.votes_seen(), 0);
        lease.vote_request_seen();
        assert_eq!(lease.votes_seen(), 1);
    }
}
