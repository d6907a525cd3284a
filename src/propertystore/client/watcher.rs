//! [`Watcher`]: a watch of a prefix, resumed on any replica from the last revision seen,
//! whole revisions only, leaving a silent replica after [`WATCH_WAIT`] + [`WATCH_GRACE`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::leader::DEPOSED_FOR;
use super::{ClientError, PropertyStore};
use crate::propertystore::core::{Event, Position};
use crate::propertystore::protocol::{StoreRequest, StoreResponse, BAD_REQUEST};
use crate::telemetry::marks::{self, Stage};
use crate::transport::TransportError;

/// How long a replica holds a watch's long-poll when it has nothing to send.
pub const WATCH_WAIT: Duration = Duration::from_millis(200);
/// How long past [`WATCH_WAIT`] a watch waits for its replica's answer before it takes the
/// replica for dead and moves to another (doubled after each such move in a row, up to the
/// request timeout, so that an overloaded store is still waited for).
pub const WATCH_GRACE: Duration = Duration::from_millis(100);

/// A watch of a prefix: events in revision order, none skipped or repeated, resumed across
/// reconnects and leader changes from the last revision seen. Dropping it ends it.
///
/// A replica's answer is bounded by bytes, so it may carry part of a revision larger than a
/// frame; the watcher asks for the rest at once, and [`Watcher::next_batch`] always returns
/// whole revisions.
///
/// The watcher polls the client's believed leader when it can, else the replica that last
/// answered it. A poll that is not answered within [`WATCH_WAIT`] + [`WATCH_GRACE`] is given
/// up and the replica avoided for [`DEPOSED_FOR`] (a SIGKILLed replica's connection stays
/// open, so the transport alone would wait out the whole request timeout); a poll is also
/// given up as soon as the client learns of another leader.
pub struct Watcher {
    pub(super) client: PropertyStore,
    prefix: String,
    pub(super) next: u64,
    pub(super) wait: Duration,
    /// A replica refused `WatchPage` (an older version): plain `Watch` requests only.
    whole_revisions_only: bool,
    /// The replica that answered last.
    at: Option<SocketAddr>,
    /// Replicas that left a poll unanswered, until when they are avoided.
    silent: std::collections::HashMap<SocketAddr, Instant>,
    /// How long past its wait a poll is given its answer.
    grace: Duration,
}

/// How a watch poll ended.
#[allow(clippy::large_enum_variant)] // returned and matched at once, never stored
enum Poll {
    /// The replica answered, or the transport gave up.
    Answered(Result<StoreResponse, TransportError>),
    /// No answer within the wait and the grace.
    Silent,
    /// The client learned that another replica leads.
    LeaderMoved,
}

impl Watcher {
    /// The revision the next batch starts at (0 before the first poll of a watch from now).
    pub fn next_revision(&self) -> u64 {
        self.next
    }

    /// The next events, whole revisions only (possibly none when `wait` passed without any).
    /// Transport failures and leader changes are retried; a compacted start is an error.
    pub async fn next_batch(&mut self) -> Result<Vec<Event>, ClientError> {
        let mut out = Vec::new();
        let mut from = Position::at(self.next);
        loop {
            // The rest of a cut revision is there already: no waiting for it.
            let wait = if from.seq == 0 { self.wait } else { Duration::ZERO };
            let (events, next) = self.page(from, wait).await?;
            out.extend(events);
            from = next;
            if from.seq == 0 {
                self.next = from.revision;
                return Ok(out);
            }
        }
    }

    fn is_silent(&self, addr: SocketAddr) -> bool {
        self.silent
            .get(&addr)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Whether the watcher may poll `addr` now: it is neither silent nor deposed.
    fn usable(&self, addr: SocketAddr) -> bool {
        !self.is_silent(addr) && !self.client.is_deposed(addr)
    }

    /// The replica to poll: the believed leader, else the one that answered last, else the
    /// next configured one; never a silent or deposed one while another is left.
    fn choose(&self) -> Option<SocketAddr> {
        target(self.client.leader_guess(), self.at, |a| self.usable(a))
            .or_else(|| self.client.pick_avoiding(|a| self.is_silent(a)))
    }

    /// Sends one poll to `to`, giving it up when `to` stays silent or another replica leads
    /// that [`Watcher::choose`] would poll instead.
    async fn poll(&self, to: SocketAddr, req: &StoreRequest, wait: Duration) -> Poll {
        let mut leader = self.client.inner.leader.subscribe();
        let elsewhere = |l: &Option<SocketAddr>| gives_way(to, *l, |a| self.usable(a));
        let moved = leader.wait_for(elsewhere);
        let timeout = wait + self.client.inner.config.request_timeout;
        // Biased (as every select the simulator runs: a replay polls in the same order):
        // an answer that came counts, then a move, then silence.
        tokio::select! {
            biased;
            r = self.client.send(to, req, timeout) => Poll::Answered(r),
            Ok(_) = moved => Poll::LeaderMoved,
            _ = tokio::time::sleep(wait + self.grace) => Poll::Silent,
        }
    }

    /// One answer from `from`, from whichever replica answers.
    async fn page(&mut self, from: Position, wait: Duration) -> Result<(Vec<Event>, Position), ClientError> {
        let deadline = Instant::now() + self.client.inner.config.deadline;
        loop {
            let req = if self.whole_revisions_only {
                StoreRequest::Watch {
                    prefix: self.prefix.clone(),
                    from: from.revision,
                    max: WATCH_MAX_EVENTS,
                    wait_ms: wait.as_millis() as u32,
                }
            } else {
                StoreRequest::WatchPage {
                    prefix: self.prefix.clone(),
                    from,
                    max: WATCH_MAX_EVENTS,
                    wait_ms: wait.as_millis() as u32,
                }
            };
            let Some(to) = self.choose() else {
                return Err(ClientError::Unavailable {
                    reason: "no store endpoints configured".into(),
                });
            };
            let r = match self.poll(to, &req, wait).await {
                Poll::Answered(r) => r,
                Poll::LeaderMoved => continue,
                Poll::Silent => {
                    self.silent.retain(|_, until| *until > Instant::now());
                    self.silent.insert(to, Instant::now() + DEPOSED_FOR);
                    self.grace = (self.grace * 2).min(self.client.inner.config.request_timeout);
                    if self.client.leader_guess() == Some(to) {
                        self.client.set_leader(None);
                    }
                    if Instant::now() >= deadline {
                        return Err(ClientError::Unavailable {
                            reason: format!("no replica answered a watch within {:?}", wait + self.grace),
                        });
                    }
                    continue;
                }
            };
            if r.is_ok() {
                self.at = Some(to);
                self.grace = WATCH_GRACE;
            }
            match r {
                Ok(StoreResponse::EventPage { events, next }) => {
                    if let Some(first) = events.first().filter(|_| self.prefix != "/") {
                        marks::mark(Stage::WatchRecv, first.revision);
                    }
                    return Ok((events, next));
                }
                Ok(StoreResponse::Events { events, next }) => return Ok((events, Position::at(next))),
                Ok(StoreResponse::Error(e)) => return Err(ClientError::Store(e)),
                Ok(StoreResponse::PermissionDenied(d)) => {
                    return Err(ClientError::PermissionDenied(Box::new(d)))
                }
                Ok(other) => {
                    return Err(ClientError::Protocol {
                        what: format!("{other:?}"),
                    })
                }
                Err(TransportError::Authentication { peer, reason }) => {
                    return Err(ClientError::Authentication { peer, reason })
                }
                Err(TransportError::Refused { reason, .. })
                    if reason.starts_with(BAD_REQUEST) && !self.whole_revisions_only =>
                {
                    // A replica of an older version: it resumes at revision boundaries only.
                    if from.seq > 0 {
                        return Err(ClientError::Protocol {
                            what: format!(
                                "a replica cannot resume inside revision {}: {reason}",
                                from.revision
                            ),
                        });
                    }
                    self.whole_revisions_only = true;
                }
                Err(e) => {
                    self.client.set_leader(None);
                    self.at = None;
                    self.silent.insert(to, Instant::now() + DEPOSED_FOR);
                    if Instant::now() >= deadline {
                        return Err(ClientError::Unavailable {
                            reason: e.to_string(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
    }
}

/// The most events a watcher asks for in one answer.
const WATCH_MAX_EVENTS: u32 = 1000;

/// Which replica a watch polls, when one of these will do: the believed `leader` if it is
/// `usable`, else the one that answered `last` if it is.
fn target(
    leader: Option<SocketAddr>,
    last: Option<SocketAddr>,
    usable: impl Fn(SocketAddr) -> bool,
) -> Option<SocketAddr> {
    leader.filter(|a| usable(*a)).or(last.filter(|a| usable(*a)))
}

/// Whether a poll of `polled` is given up for the believed `leader`: only for a leader that
/// [`target`] would choose instead, judged by the same `usable`. A poll given up for a
/// leader the watcher would not poll (say, one the client holds deposed) would be followed
/// by a poll of the same replica, given up at once again: a loop that never waits, which
/// stops a paused clock and spins a real one until the deposition ends.
fn gives_way(polled: SocketAddr, leader: Option<SocketAddr>, usable: impl Fn(SocketAddr) -> bool) -> bool {
    leader.is_some_and(|l| l != polled && usable(l))
}

impl PropertyStore {
    /// Watches `prefix` from revision `from` (0: from now).
    pub fn watch(&self, prefix: &str, from: u64) -> Watcher {
        Watcher {
            client: self.clone(),
            prefix: prefix.to_string(),
            next: from,
            wait: WATCH_WAIT,
            whole_revisions_only: false,
            at: None,
            silent: std::collections::HashMap::new(),
            grace: WATCH_GRACE,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::propertystore::client::StoreClientConfig;
    use crate::transport::mem::MemNetwork;
    use crate::transport::{Service, Transport};

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000 + n))
    }

    #[test]
    fn a_poll_gives_way_only_to_a_leader_the_watcher_would_poll_instead() {
        let (a, b) = (addr(1), addr(2));
        // The leader is deposed (or silent): a poll of another replica is not given up for it.
        assert!(!gives_way(b, Some(a), |x| x != a));
        assert!(gives_way(b, Some(a), |_| true));
        assert!(!gives_way(a, Some(a), |_| true));
        assert!(!gives_way(b, None, |_| true));
        // Whatever the watcher chooses, by `target` or any fallback, a poll of it is never
        // given up at once: the loop that chooses again always waits for something.
        let all = [addr(1), addr(2), addr(3)];
        let some = [None, Some(addr(1)), Some(addr(2)), Some(addr(3))];
        for leader in some {
            for last in some {
                for mask in 0u8..8 {
                    let usable = |x: SocketAddr| {
                        all.iter()
                            .position(|a| *a == x)
                            .is_some_and(|i| mask & (1 << i) != 0)
                    };
                    for fallback in all {
                        let polled = target(leader, last, usable).unwrap_or(fallback);
                        assert!(
                            !gives_way(polled, leader, usable),
                            "leader {leader:?}, last {last:?}, usable {mask:03b}: {polled} given up at once"
                        );
                    }
                }
            }
        }
    }

    /// Found by the simulator (`strand sim --seed 2181 --steps 3`, about one run in two; its
    /// virtual time stopped at 5.3 s): the client believed a replica led that it also held
    /// deposed. The watch passed over the deposed leader and polled another replica, but gave
    /// that poll up at once because the believed leader was elsewhere, chose again, and so
    /// on — without ever waiting, until the deposition ended (never, on a paused clock).
    #[tokio::test(start_paused = true)]
    async fn a_watch_whose_believed_leader_is_deposed_waits_instead_of_spinning() {
        let net = MemNetwork::new(1);
        // Three replicas that take requests and never answer.
        let replicas: Vec<_> = (0..3).map(|i| net.endpoint(&format!("store-{i}"))).collect();
        let _inboxes: Vec<_> = replicas
            .iter()
            .map(|r| r.register(Service::STORE, 1024).unwrap())
            .collect();
        let endpoints: Vec<SocketAddr> = replicas.iter().map(|r| r.local_addr()).collect();
        let mut config = StoreClientConfig::new(endpoints.clone());
        config.cache_capacity = 0;
        let client = PropertyStore::new(net.client("watcher"), config);
        client.set_leader(Some(endpoints[0]));
        client.deposed(endpoints[0]);
        let mut watcher = client.watch("/", 0);

        let mut batch = Box::pin(watcher.next_batch());
        let mut at = Instant::now();
        let mut polls = 0u32;
        let r = std::future::poll_fn(|cx| {
            // The watch may be woken a few times at one instant, but a watch that keeps
            // waking itself without time passing spins.
            if Instant::now() != at {
                at = Instant::now();
                polls = 0;
            }
            polls += 1;
            assert!(
                polls < 1_000,
                "the watch was polled {polls} times at one instant: it spins"
            );
            batch.as_mut().poll(cx)
        })
        .await;
        assert!(
            matches!(r, Err(ClientError::Unavailable { .. })),
            "no replica answers: {r:?}"
        );
    }
}
