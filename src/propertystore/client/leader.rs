//! Finding the leader: a new client asks every replica for its status ([`DISCOVER_WAIT`]); a
//! request waiting on its leader for [`PROBE_AFTER`] joins a probe of the other replicas
//! (every [`PROBE_EVERY`]) that ends it once they name another leader; deposed replicas are
//! avoided for [`DEPOSED_FOR`] and hints naming them ignored; `leader_request` follows
//! redirects and retries what is safe (see the `client` module docs).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{ClientError, Inner, PropertyStore};
use crate::propertystore::protocol::{ReplicaStatus, StoreRequest, StoreResponse};
use crate::transport::TransportError;

/// How long a request to the believed leader waits before its leadership is probed (a
/// write takes about a millisecond; a probe costs a status request to each other replica
/// per [`PROBE_EVERY`] while requests wait).
pub const PROBE_AFTER: Duration = Duration::from_millis(100);
/// How often a probe asks the other replicas who leads.
pub const PROBE_EVERY: Duration = Duration::from_millis(50);
/// How long a replica that others no longer name leader is avoided: leader hints that name it
/// are stale (from replicas at an older term) and are not followed.
pub const DEPOSED_FOR: Duration = Duration::from_secs(1);
/// How long a client that believes no replica leads waits for the replicas' statuses before
/// its request (see [`discovered`]).
pub const DISCOVER_WAIT: Duration = Duration::from_millis(150);

/// A running probe of one replica's leadership: yields the new leader's address once the
/// other replicas name one; closed when the probe gave up.
pub(super) type Deposed = crate::watch::Receiver<Option<SocketAddr>>;

enum Attempt {
    Done(Box<StoreResponse>),
    Retry(String),
}

/// How a request to the believed leader ended.
#[allow(clippy::large_enum_variant)] // returned and matched at once, never stored
enum Answer {
    /// The replica answered, or the transport gave up.
    Reply(Result<StoreResponse, TransportError>),
    /// The other replicas name this leader while the request was still in flight.
    Deposed(SocketAddr),
}

/// Which leader the statuses of the replicas other than `probed` name: the leader named at
/// the most recent term among them, when that is another replica (with a known address).
fn named_leader(probed: SocketAddr, statuses: &[ReplicaStatus]) -> Option<SocketAddr> {
    let term = statuses.iter().map(|s| s.term).max()?;
    let leader = statuses
        .iter()
        .filter(|s| s.term == term)
        .find_map(|s| s.leader)?;
    let addr = statuses
        .iter()
        .flat_map(|s| s.voters.iter().chain(&s.learners))
        .find(|(id, _)| *id == leader)
        .and_then(|(_, a)| a.parse::<SocketAddr>().ok())?;
    (addr != probed).then_some(addr)
}

/// What the statuses of the replicas asked say about who leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discovery {
    /// The replica named at the newest term answered as that term's leader.
    Leader(SocketAddr),
    /// The replica named at the newest term was asked and did not answer: it may be dead,
    /// and the others have not elected another yet.
    Silent(SocketAddr),
    /// A leader is named that was not asked or answered otherwise (a view in transition).
    Named(SocketAddr),
    /// Nobody is named.
    Unknown,
}

/// Who leads, from the statuses of the replicas `asked` that answered (by the address they
/// were asked at): the leader named at the newest term among them, and whether it answered as
/// such.
fn discovered(asked: &[SocketAddr], answers: &[(SocketAddr, ReplicaStatus)]) -> Discovery {
    let Some(term) = answers.iter().map(|(_, s)| s.term).max() else {
        return Discovery::Unknown;
    };
    let Some(leader) = answers
        .iter()
        .filter(|(_, s)| s.term == term)
        .find_map(|(_, s)| s.leader)
    else {
        return Discovery::Unknown;
    };
    if let Some((addr, _)) = answers
        .iter()
        .find(|(_, s)| s.id == leader && s.term == term && s.role == "leader")
    {
        return Discovery::Leader(*addr);
    }
    let Some(addr) = answers
        .iter()
        .flat_map(|(_, s)| s.voters.iter().chain(&s.learners))
        .find(|(id, _)| *id == leader)
        .and_then(|(_, a)| a.parse::<SocketAddr>().ok())
    else {
        return Discovery::Unknown;
    };
    let answered = answers.iter().any(|(a, _)| *a == addr);
    if asked.contains(&addr) && !answered {
        Discovery::Silent(addr)
    } else {
        Discovery::Named(addr)
    }
}

/// Probes `probed`'s leadership until the other replicas name another leader (sent on `tx`)
/// or `until`; ends early when the client is gone or nobody waits for the answer.
async fn probe(
    inner: std::sync::Weak<Inner>,
    probed: SocketAddr,
    tx: crate::watch::Sender<Option<SocketAddr>>,
    until: Instant,
) {
    // The probes map holds one receiver; the others are requests still waiting.
    while Instant::now() < until && tx.receiver_count() > 1 {
        let Some(client) = inner.upgrade() else { return };
        let others: Vec<SocketAddr> = client
            .config
            .endpoints
            .iter()
            .copied()
            .filter(|a| *a != probed)
            .collect();
        if others.is_empty() {
            break;
        }
        let asks = others
            .iter()
            .map(|a| client.lanes.send(*a, &StoreRequest::Status, PROBE_EVERY * 3));
        let statuses: Vec<ReplicaStatus> = futures::future::join_all(asks)
            .await
            .into_iter()
            .filter_map(|r| match r {
                Ok(StoreResponse::Status(s)) => Some(s),
                _ => None,
            })
            .collect();
        drop(client);
        if let Some(leader) = named_leader(probed, &statuses) {
            tx.send_replace(Some(leader));
            break;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    if let Some(client) = inner.upgrade() {
        client
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&probed);
    }
}

impl PropertyStore {
    /// The replica this client currently believes leads.
    pub fn leader_guess(&self) -> Option<SocketAddr> {
        *self.inner.leader.borrow()
    }

    /// Where a request goes: the believed leader, else the next configured replica, passing
    /// over replicas recently deposed and those `avoid` rejects (unless every one is).
    pub(super) fn pick_avoiding(&self, avoid: impl Fn(SocketAddr) -> bool) -> Option<SocketAddr> {
        let shunned = |a: SocketAddr| avoid(a) || self.is_deposed(a);
        if let Some(l) = self.leader_guess().filter(|l| !shunned(*l)) {
            return Some(l);
        }
        let eps = &self.inner.config.endpoints;
        let mut first = None;
        for _ in 0..eps.len() {
            let i = self.inner.next.fetch_add(1, Ordering::Relaxed);
            let a = eps[i % eps.len()];
            if !shunned(a) {
                return Some(a);
            }
            first.get_or_insert(a);
        }
        first
    }

    pub(super) fn pick(&self) -> Option<SocketAddr> {
        self.pick_avoiding(|_| false)
    }

    pub(super) fn set_leader(&self, addr: Option<SocketAddr>) {
        self.inner.leader.send_if_modified(|l| {
            let changed = *l != addr;
            *l = addr;
            changed
        });
    }

    /// `addr` lost the leadership to another replica: avoided, and hints naming it ignored,
    /// for [`DEPOSED_FOR`].
    pub(super) fn deposed(&self, addr: SocketAddr) {
        let mut deposed = self.inner.deposed.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        deposed.retain(|_, until| *until > now);
        deposed.insert(addr, now + DEPOSED_FOR);
    }

    pub(super) fn is_deposed(&self, addr: SocketAddr) -> bool {
        let deposed = self.inner.deposed.lock().unwrap_or_else(|e| e.into_inner());
        deposed.get(&addr).is_some_and(|until| *until > Instant::now())
    }

    pub(super) async fn send(
        &self,
        to: SocketAddr,
        req: &StoreRequest,
        timeout: Duration,
    ) -> Result<StoreResponse, TransportError> {
        self.inner.lanes.send(to, req, timeout).await
    }

    /// The running probe of `to`'s leadership, started if there is none.
    fn probe(&self, to: SocketAddr, timeout: Duration) -> Deposed {
        let mut probes = self.inner.probes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = probes.get(&to) {
            if rx.has_changed().is_ok() {
                return rx.clone();
            }
        }
        let (tx, rx) = crate::watch::channel(None);
        probes.insert(to, rx.clone());
        let until = Instant::now() + timeout;
        tokio::spawn(probe(Arc::downgrade(&self.inner), to, tx, until));
        rx
    }

    /// Sends `req` to `to`, the believed leader; after [`PROBE_AFTER`] without an answer,
    /// also watches the probe of `to`'s leadership.
    async fn send_to_leader(&self, to: SocketAddr, req: &StoreRequest, timeout: Duration) -> Answer {
        let send = self.send(to, req, timeout);
        tokio::pin!(send);
        tokio::select! {
            biased;
            r = &mut send => return Answer::Reply(r),
            _ = tokio::time::sleep(PROBE_AFTER) => {}
        }
        let mut deposed = self.probe(to, timeout);
        let new_leader = async move {
            match deposed.wait_for(Option::is_some).await {
                Ok(leader) => *leader,
                Err(_) => None,
            }
        };
        tokio::select! {
            biased;
            r = send => Answer::Reply(r),
            Some(leader) = new_leader => Answer::Deposed(leader),
        }
    }

    /// Asks every replica not avoided for its status, for up to [`DISCOVER_WAIT`], and takes
    /// the leader they name if it answered as one. A named leader that did not answer is
    /// treated as deposed: hints naming it are not followed until the others elect another.
    /// Without this a new client (one `strand admin put`) asked a follower, which still named
    /// a leader SIGKILLed a moment ago, and then waited on that leader.
    async fn discover(&self) {
        let asked: Vec<SocketAddr> = self
            .inner
            .config
            .endpoints
            .iter()
            .copied()
            .filter(|a| !self.is_deposed(*a))
            .collect();
        let asks = asked.iter().map(|a| async move {
            match self.send(*a, &StoreRequest::Status, DISCOVER_WAIT).await {
                Ok(StoreResponse::Status(s)) => Some((*a, s)),
                _ => None,
            }
        });
        let answers: Vec<(SocketAddr, ReplicaStatus)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        match discovered(&asked, &answers) {
            Discovery::Leader(a) | Discovery::Named(a) => self.set_leader(Some(a)),
            Discovery::Silent(a) => self.deposed(a),
            Discovery::Unknown => {}
        }
    }

    /// Sends `req` to the leader, following redirects. `safe` requests (reads) are retried
    /// after timeouts too; others end with `OutcomeUnknown` then.
    pub(super) async fn leader_request(
        &self,
        req: &StoreRequest,
        safe: bool,
        timeout: Duration,
    ) -> Result<StoreResponse, ClientError> {
        let deadline = Instant::now() + self.inner.config.deadline;
        let mut last = String::from("no store endpoints configured");
        let mut redirects = 0;
        if self.leader_guess().is_none() && self.inner.config.endpoints.len() > 1 {
            self.discover().await;
        }
        loop {
            let Some(to) = self.pick() else {
                return Err(ClientError::Unavailable { reason: last });
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !self.inner.lanes.is_pinned(to) {
                // Who is at `to` first (its status pins its name), so the request itself only
                // goes to that replica; unanswered, the request goes unpinned and may teach it.
                let wait = timeout.min(remaining).max(Duration::from_millis(50));
                let _ = self.send(to, &StoreRequest::Status, wait).await;
            }
            let reply = match self
                .send_to_leader(to, req, timeout.min(remaining.max(Duration::from_millis(50))))
                .await
            {
                Answer::Reply(r) => r,
                Answer::Deposed(leader) => {
                    self.deposed(to);
                    self.set_leader(Some(leader));
                    let why = format!("{to} lost the leadership to {leader} while the request was in flight");
                    if !safe {
                        return Err(ClientError::OutcomeUnknown { reason: why });
                    }
                    last = why;
                    continue;
                }
            };
            let attempt = match reply {
                Ok(StoreResponse::NotLeader { leader }) => {
                    // A hint naming a replica the others already replaced comes from a
                    // replica that has not heard of the new leader yet: not followed.
                    let hint = leader
                        .and_then(|(_, a)| a.parse::<SocketAddr>().ok())
                        .filter(|a| !self.is_deposed(*a));
                    if hint.is_some() && hint != Some(to) {
                        self.set_leader(hint);
                        redirects += 1;
                        if redirects <= 2 {
                            continue;
                        }
                        // Replicas that point at each other (a stale view): wait a little.
                        redirects = 0;
                        last = format!("{to} redirects to {hint:?}");
                        if Instant::now() >= deadline {
                            return Err(ClientError::Unavailable { reason: last });
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    self.set_leader(None);
                    Attempt::Retry(format!("{to} is not the leader and knows none yet"))
                }
                Ok(StoreResponse::PermissionDenied(denied)) => {
                    return Err(ClientError::PermissionDenied(Box::new(denied)))
                }
                Ok(StoreResponse::Unavailable { reason }) => {
                    self.set_leader(None);
                    Attempt::Retry(format!("{to}: {reason}"))
                }
                Ok(resp) => {
                    self.set_leader(Some(to));
                    Attempt::Done(Box::new(resp))
                }
                Err(e) if e.is_outcome_unknown() && !safe => {
                    self.set_leader(None);
                    return Err(ClientError::OutcomeUnknown {
                        reason: e.to_string(),
                    });
                }
                Err(TransportError::Authentication { peer, reason }) => {
                    return Err(ClientError::Authentication { peer, reason })
                }
                Err(e) if e.is_not_delivered() || e.is_outcome_unknown() => {
                    self.set_leader(None);
                    Attempt::Retry(e.to_string())
                }
                Err(e) => {
                    // Refused: the replica received the request and could not handle it; for a
                    // write that happens before anything is proposed.
                    return Err(ClientError::Unavailable {
                        reason: e.to_string(),
                    });
                }
            };
            match attempt {
                Attempt::Done(resp) => return Ok(*resp),
                Attempt::Retry(why) => {
                    last = why;
                    if Instant::now() >= deadline {
                        return Err(ClientError::Unavailable { reason: last });
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propertystore::ReplicaId;

    fn status(id: ReplicaId, term: u64, leader: Option<ReplicaId>) -> ReplicaStatus {
        let voters = (1..=3).map(|i| (i, format!("127.0.0.1:700{i}"))).collect();
        ReplicaStatus {
            addr: format!("127.0.0.1:700{id}"),
            term,
            leader,
            ..ReplicaStatus::example(id, voters)
        }
    }

    fn addr(id: ReplicaId) -> SocketAddr {
        format!("127.0.0.1:700{id}").parse().unwrap()
    }

    #[test]
    fn discovery_takes_a_leader_only_when_it_answers_as_one() {
        let asked = [addr(1), addr(2), addr(3)];
        let leading = |id, term| ReplicaStatus {
            role: "leader".into(),
            ..status(id, term, Some(id))
        };
        // Everyone answers: the leader says so itself.
        let all = [
            (addr(1), leading(1, 4)),
            (addr(2), status(2, 4, Some(1))),
            (addr(3), status(3, 4, Some(1))),
        ];
        assert_eq!(discovered(&asked, &all), Discovery::Leader(addr(1)));
        // The leader was SIGKILLed; the followers still name it: silent, not followed.
        let stale = [(addr(2), status(2, 4, Some(1))), (addr(3), status(3, 4, Some(1)))];
        assert_eq!(discovered(&asked, &stale), Discovery::Silent(addr(1)));
        // A new leader at a newer term wins over an older view.
        let newer = [(addr(2), status(2, 4, Some(1))), (addr(3), leading(3, 5))];
        assert_eq!(discovered(&asked, &newer), Discovery::Leader(addr(3)));
        // A follower names a leader that was not asked (not among the endpoints): named.
        assert_eq!(
            discovered(&asked[1..], &[(addr(2), status(2, 4, Some(1)))]),
            Discovery::Named(addr(1))
        );
        // An election under way, or nobody answered.
        assert_eq!(
            discovered(&asked, &[(addr(2), status(2, 5, None))]),
            Discovery::Unknown
        );
        assert_eq!(discovered(&asked, &[]), Discovery::Unknown);
    }

    #[test]
    fn a_probed_leader_is_deposed_only_by_another_leader_at_the_newest_term() {
        // Followers still following the probed replica: not deposed.
        assert_eq!(
            named_leader(addr(1), &[status(2, 4, Some(1)), status(3, 4, Some(1))]),
            None
        );
        // An election is under way, nobody leads yet: not yet.
        assert_eq!(
            named_leader(addr(1), &[status(2, 5, None), status(3, 4, Some(1))]),
            None
        );
        // A new leader at the newest term, even if another replica has not heard of it.
        assert_eq!(
            named_leader(addr(1), &[status(2, 5, None), status(3, 5, Some(3))]),
            Some(addr(3))
        );
        // A lagging replica naming an older leader does not outvote the newest term.
        assert_eq!(
            named_leader(addr(1), &[status(2, 3, Some(2)), status(3, 4, Some(1))]),
            None
        );
        // A leader id without a known address is no evidence.
        assert_eq!(named_leader(addr(1), &[status(2, 5, Some(9))]), None);
        assert_eq!(named_leader(addr(1), &[]), None);
    }
}
