//! An in-memory [`Transport`] for simulations and tests: many endpoints in one process,
//! with seeded datagram loss, delay, one-way and two-way partitions, and crashes.
//!
//! It keeps the real transport's semantics: requests and messages are reliable (a
//! partition delays them until it heals or their deadline passes, as QUIC's retransmits
//! would), datagrams are not; a peer's name is checked as its certificate would be; a crash
//! while a request is in flight is "outcome unknown", a dropped responder is a refusal.
//! Delays use tokio's clock, so tests with paused time run fast and in a fixed order.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

use crate::authz::{Role, RoleSet};

use super::{
    Inbox, Incoming, Peer, PeerAddr, PeerRole, Responder, Service, Transport, TransportError,
    DEFAULT_MAX_FRAME,
};

/// The largest datagram the in-memory transport carries (as QUIC on loopback would).
pub const MEM_MAX_DATAGRAM: usize = 1200;

/// How often a frame held by a partition checks whether it has healed.
const PARTITION_POLL: Duration = Duration::from_millis(5);

type Services = Arc<Mutex<BTreeMap<Service, mpsc::Sender<Incoming>>>>;

struct EndpointEntry {
    name: String,
    role: PeerRole,
    roles: RoleSet,
    services: Services,
    alive: Arc<AtomicBool>,
    /// The largest frame this endpoint accepts (as the QUIC transport checks on receive).
    max_frame: usize,
}

struct NetState {
    endpoints: BTreeMap<SocketAddr, EndpointEntry>,
    rng: StdRng,
    datagram_loss: f64,
    delay: (Duration, Duration),
    /// Directed links that carry nothing: (from, to).
    blocked: BTreeSet<(SocketAddr, SocketAddr)>,
    next_port: u16,
}

/// A simulated network. Cloning gives another handle to the same network.
#[derive(Clone)]
pub struct MemNetwork {
    state: Arc<Mutex<NetState>>,
}

impl std::fmt::Debug for MemNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemNetwork").finish_non_exhaustive()
    }
}

impl MemNetwork {
    /// A network with no loss, no delay and no partitions; `seed` drives every random
    /// choice (loss, delay jitter).
    pub fn new(seed: u64) -> Self {
        MemNetwork {
            state: Arc::new(Mutex::new(NetState {
                endpoints: BTreeMap::new(),
                rng: StdRng::seed_from_u64(seed),
                datagram_loss: 0.0,
                delay: (Duration::ZERO, Duration::ZERO),
                blocked: BTreeSet::new(),
                next_port: 10_000,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        // A panic while holding the lock (a failed test) must not hide later results.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new node endpoint named `name` at a fresh address, with every node role
    /// ([`MemNetwork::NODE_ROLES`]).
    pub fn endpoint(&self, name: &str) -> Arc<MemTransport> {
        self.endpoint_with_roles(name, Self::NODE_ROLES)
    }

    /// A new node endpoint named `name` at a fresh address whose certificate would grant
    /// `roles`.
    pub fn endpoint_with_roles(&self, name: &str, roles: RoleSet) -> Arc<MemTransport> {
        let addr = self.fresh_addr();
        self.endpoint_at_with_roles(name, addr, PeerRole::Node, roles)
            .expect("a fresh address is free")
    }

    fn fresh_addr(&self) -> SocketAddr {
        let mut s = self.lock();
        let port = s.next_port;
        s.next_port = s.next_port.wrapping_add(1);
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    /// The roles of [`MemNetwork::endpoint`]'s endpoints: every role that runs a node.
    pub const NODE_ROLES: RoleSet = RoleSet::of(Role::Controller)
        .with(Role::Participant)
        .with(Role::Spectator)
        .with(Role::Store);
    /// The roles of [`MemNetwork::client`]'s endpoints: admin.
    pub const CLIENT_ROLES: RoleSet = RoleSet::of(Role::Admin);

    /// A new endpoint at `addr` (for a restart at the same address) with the default roles
    /// of its kind; fails while another endpoint still holds the address.
    pub fn endpoint_at(
        &self,
        name: &str,
        addr: SocketAddr,
        role: PeerRole,
    ) -> Result<Arc<MemTransport>, TransportError> {
        let roles = match role {
            PeerRole::Node => Self::NODE_ROLES,
            PeerRole::Client => Self::CLIENT_ROLES,
        };
        self.endpoint_at_with_roles(name, addr, role, roles)
    }

    /// A new endpoint at `addr` whose certificate would grant `roles`; fails while another
    /// endpoint still holds the address.
    pub fn endpoint_at_with_roles(
        &self,
        name: &str,
        addr: SocketAddr,
        role: PeerRole,
        roles: RoleSet,
    ) -> Result<Arc<MemTransport>, TransportError> {
        let mut s = self.lock();
        if s.endpoints.contains_key(&addr) {
            return Err(TransportError::Unreachable {
                peer: addr.to_string(),
                reason: "address in use".into(),
            });
        }
        let services: Services = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        s.endpoints.insert(
            addr,
            EndpointEntry {
                name: name.to_string(),
                role,
                roles,
                services: services.clone(),
                alive: alive.clone(),
                max_frame: DEFAULT_MAX_FRAME,
            },
        );
        Ok(Arc::new(MemTransport {
            net: self.clone(),
            name: name.to_string(),
            addr,
            services,
            alive,
            max_frame: DEFAULT_MAX_FRAME,
        }))
    }

    /// A client endpoint (a client certificate) with the admin role: it can call nodes;
    /// nodes see [`PeerRole::Client`].
    pub fn client(&self, name: &str) -> Arc<MemTransport> {
        self.client_with_roles(name, Self::CLIENT_ROLES)
    }

    /// A client endpoint whose certificate would grant `roles`.
    pub fn client_with_roles(&self, name: &str, roles: RoleSet) -> Arc<MemTransport> {
        let addr = self.fresh_addr();
        self.endpoint_at_with_roles(name, addr, PeerRole::Client, roles)
            .expect("a fresh address is free")
    }

    /// Drops each datagram with probability `p` (0.0 to 1.0).
    pub fn set_datagram_loss(&self, p: f64) {
        self.lock().datagram_loss = p.clamp(0.0, 1.0);
    }

    /// Delays every frame by a uniformly drawn time in `min..=max`.
    pub fn set_delay(&self, min: Duration, max: Duration) {
        self.lock().delay = (min, max.max(min));
    }

    /// Blocks traffic from `from` to `to` (one direction only).
    pub fn block(&self, from: SocketAddr, to: SocketAddr) {
        self.lock().blocked.insert((from, to));
    }

    /// Cuts every link between the two groups, both ways.
    pub fn partition(&self, a: &[SocketAddr], b: &[SocketAddr]) {
        let mut s = self.lock();
        for &x in a {
            for &y in b {
                s.blocked.insert((x, y));
                s.blocked.insert((y, x));
            }
        }
    }

    /// Cuts `addr` off from every other endpoint, both ways.
    pub fn isolate(&self, addr: SocketAddr) {
        let others: Vec<SocketAddr> = self
            .lock()
            .endpoints
            .keys()
            .copied()
            .filter(|a| *a != addr)
            .collect();
        self.partition(&[addr], &others);
    }

    /// Removes every partition and block.
    pub fn heal(&self) {
        self.lock().blocked.clear();
    }

    /// Kills the endpoint at `addr` as SIGKILL would: it vanishes, its inboxes close, its
    /// pending requests get no answer. Returns whether there was one.
    pub fn crash(&self, addr: SocketAddr) -> bool {
        let entry = self.lock().endpoints.remove(&addr);
        match entry {
            Some(e) => {
                e.alive.store(false, Ordering::SeqCst);
                lock_services(&e.services).clear();
                true
            }
            None => false,
        }
    }

    fn is_blocked(&self, from: SocketAddr, to: SocketAddr) -> bool {
        self.lock().blocked.contains(&(from, to))
    }

    fn draw_delay(&self) -> Duration {
        let mut s = self.lock();
        let (min, max) = s.delay;
        if max.is_zero() {
            return Duration::ZERO;
        }
        let span = (max - min).as_nanos() as u64;
        let extra = if span == 0 {
            0
        } else {
            s.rng.random_range(0..=span)
        };
        min + Duration::from_nanos(extra)
    }

    fn draw_loss(&self) -> bool {
        let mut s = self.lock();
        let p = s.datagram_loss;
        p > 0.0 && s.rng.random_bool(p)
    }

    /// Resolves `to` as a TLS handshake would: the endpoint, and the authenticated peer
    /// identity it will see for `from`.
    fn resolve(&self, from: &MemTransport, to: &PeerAddr) -> Result<Target, TransportError> {
        let s = self.lock();
        let me = s.endpoints.get(&from.addr).ok_or(TransportError::Closed)?;
        let entry = s
            .endpoints
            .get(&to.addr)
            .ok_or_else(|| TransportError::Unreachable {
                peer: to.to_string(),
                reason: "no endpoint at this address".into(),
            })?;
        if entry.role != PeerRole::Node {
            return Err(TransportError::Unreachable {
                peer: to.to_string(),
                reason: "a client endpoint accepts no connections".into(),
            });
        }
        if let Some(expected) = &to.name {
            if *expected != entry.name {
                return Err(TransportError::Authentication {
                    peer: to.to_string(),
                    reason: format!("certificate names {:?}, expected {expected:?}", entry.name),
                });
            }
        }
        Ok(Target {
            services: entry.services.clone(),
            alive: entry.alive.clone(),
            max_frame: entry.max_frame,
            peer_name: entry.name.clone(),
            me: Peer {
                name: me.name.clone(),
                role: me.role,
                roles: me.roles,
                addr: from.addr,
            },
        })
    }
}

struct Target {
    services: Services,
    alive: Arc<AtomicBool>,
    max_frame: usize,
    peer_name: String,
    me: Peer,
}

impl Target {
    fn too_large(&self, size: usize) -> TransportError {
        TransportError::Refused {
            peer: self.peer_name.clone(),
            reason: format!("frame of {size} bytes exceeds the maximum of {}", self.max_frame),
        }
    }
}

fn lock_services(s: &Services) -> MutexGuard<'_, BTreeMap<Service, mpsc::Sender<Incoming>>> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// One endpoint of a [`MemNetwork`].
pub struct MemTransport {
    net: MemNetwork,
    name: String,
    addr: SocketAddr,
    services: Services,
    alive: Arc<AtomicBool>,
    max_frame: usize,
}

impl std::fmt::Debug for MemTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemTransport")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MemTransport {
    /// The network this endpoint belongs to.
    pub fn network(&self) -> &MemNetwork {
        &self.net
    }

    /// Whether the endpoint is still up (not crashed or shut down).
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn check_alive(&self) -> Result<(), TransportError> {
        if self.is_alive() {
            Ok(())
        } else {
            Err(TransportError::Closed)
        }
    }

    /// Waits until the link `self → to` carries traffic, then the drawn delay; `false` if
    /// `deadline` passed first.
    async fn wait_for_link(&self, to: SocketAddr, deadline: tokio::time::Instant) -> bool {
        while self.net.is_blocked(self.addr, to) {
            if tokio::time::Instant::now() + PARTITION_POLL > deadline {
                return false;
            }
            tokio::time::sleep(PARTITION_POLL).await;
        }
        let delay = self.net.draw_delay();
        if tokio::time::Instant::now() + delay > deadline {
            return false;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        true
    }
}

async fn deliver(
    services: &Services,
    service: Service,
    incoming: Incoming,
    peer: &str,
) -> Result<(), TransportError> {
    let sender = lock_services(services).get(&service).cloned();
    let Some(sender) = sender else {
        return Err(TransportError::Refused {
            peer: peer.to_string(),
            reason: format!("no such service: {service}"),
        });
    };
    sender.send(incoming).await.map_err(|_| TransportError::Refused {
        peer: peer.to_string(),
        reason: format!("no such service: {service}"),
    })
}

impl Transport for MemTransport {
    fn local_name(&self) -> &str {
        &self.name
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn max_frame_size(&self) -> usize {
        self.max_frame
    }

    fn max_datagram_size(&self) -> usize {
        MEM_MAX_DATAGRAM
    }

    fn register(&self, service: Service, capacity: usize) -> Result<Inbox, TransportError> {
        self.check_alive()?;
        let mut services = lock_services(&self.services);
        if services.get(&service).is_some_and(|s| !s.is_closed()) {
            return Err(TransportError::AlreadyRegistered { service });
        }
        let (tx, inbox) = Inbox::channel(service, capacity);
        services.insert(service, tx);
        Ok(inbox)
    }

    fn request(
        &self,
        to: &PeerAddr,
        service: Service,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>> {
        let prepared = self.check_alive().and_then(|_| {
            if body.len() > self.max_frame {
                return Err(TransportError::FrameTooLarge {
                    size: body.len(),
                    max: self.max_frame,
                });
            }
            self.net.resolve(self, to)
        });
        let this = self.clone_handle();
        let to = to.clone();
        async move {
            let target = prepared?;
            let deadline = tokio::time::Instant::now() + timeout;
            let timed_out = || TransportError::TimedOut {
                peer: to.to_string(),
                after: timeout,
            };
            if !this.wait_for_link(to.addr, deadline).await {
                return Err(timed_out());
            }
            if !target.alive.load(Ordering::SeqCst) {
                return Err(TransportError::Unreachable {
                    peer: to.to_string(),
                    reason: "the peer is gone".into(),
                });
            }
            if body.len() > target.max_frame {
                return Err(target.too_large(body.len()));
            }
            let (reply, rx) = Responder::channel();
            let incoming = Incoming::Request {
                from: target.me.clone(),
                body,
                reply,
            };
            match tokio::time::timeout_at(
                deadline,
                deliver(&target.services, service, incoming, &target.peer_name),
            )
            .await
            {
                Err(_) => return Err(timed_out()),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
            }
            let answer = match tokio::time::timeout_at(deadline, rx).await {
                Err(_) => return Err(timed_out()),
                Ok(Err(_)) | Ok(Ok(Err(_))) if !target.alive.load(Ordering::SeqCst) => {
                    return Err(TransportError::Lost {
                        peer: to.to_string(),
                        reason: "the peer went away before answering".into(),
                    })
                }
                Ok(Err(_)) => Err("handler dropped the request".to_string()),
                // The responder's and the requester's limits, as over QUIC.
                Ok(Ok(Ok(answer))) if answer.len() > target.max_frame => Err(format!(
                    "the answer of {} bytes exceeds the maximum frame of {}",
                    answer.len(),
                    target.max_frame
                )),
                Ok(Ok(Ok(answer))) if answer.len() > this.max_frame => Err(format!(
                    "the answer of {} bytes exceeds this endpoint's maximum of {}",
                    answer.len(),
                    this.max_frame
                )),
                Ok(Ok(answer)) => answer,
            };
            // The answer travels back over the reverse link.
            if !this.wait_for_link_back(to.addr, deadline).await {
                return Err(timed_out());
            }
            // A peer that crashed meanwhile answers nothing: its handlers may still run
            // while it stops (a crash in this process is not instant), but what they say
            // would come from a dead process.
            if !target.alive.load(Ordering::SeqCst) {
                return Err(TransportError::Lost {
                    peer: to.to_string(),
                    reason: "the peer went away before answering".into(),
                });
            }
            answer.map_err(|reason| TransportError::Refused {
                peer: to.to_string(),
                reason,
            })
        }
        .boxed()
    }

    fn send(
        &self,
        to: &PeerAddr,
        service: Service,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        let prepared = self.check_alive().and_then(|_| {
            if body.len() > self.max_frame {
                return Err(TransportError::FrameTooLarge {
                    size: body.len(),
                    max: self.max_frame,
                });
            }
            self.net.resolve(self, to)
        });
        let this = self.clone_handle();
        let to = to.clone();
        async move {
            let target = prepared?;
            let deadline = tokio::time::Instant::now() + timeout;
            if !this.wait_for_link(to.addr, deadline).await {
                return Err(TransportError::TimedOut {
                    peer: to.to_string(),
                    after: timeout,
                });
            }
            if body.len() > target.max_frame {
                return Err(target.too_large(body.len()));
            }
            let incoming = Incoming::Message {
                from: target.me.clone(),
                body,
            };
            match tokio::time::timeout_at(
                deadline,
                deliver(&target.services, service, incoming, &target.peer_name),
            )
            .await
            {
                Err(_) => Err(TransportError::TimedOut {
                    peer: to.to_string(),
                    after: timeout,
                }),
                Ok(result) => result,
            }
        }
        .boxed()
    }

    fn send_datagram(&self, to: &PeerAddr, service: Service, body: Bytes) -> Result<(), TransportError> {
        self.check_alive()?;
        if body.len() > MEM_MAX_DATAGRAM {
            return Err(TransportError::FrameTooLarge {
                size: body.len(),
                max: MEM_MAX_DATAGRAM,
            });
        }
        // Like a datagram on an unestablished or broken connection: silently lost.
        let Ok(target) = self.net.resolve(self, to) else {
            return Ok(());
        };
        // Gossip is for nodes: a client's datagrams are never read (as over QUIC).
        if target.me.role != PeerRole::Node || self.net.is_blocked(self.addr, to.addr) || self.net.draw_loss()
        {
            return Ok(());
        }
        let delay = self.net.draw_delay();
        let incoming = Incoming::Datagram {
            from: target.me.clone(),
            body,
        };
        let push = move || {
            if let Some(sender) = lock_services(&target.services).get(&service) {
                let _ = sender.try_send(incoming);
            }
        };
        if delay.is_zero() {
            push();
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                push();
            });
        }
        Ok(())
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        self.net.crash(self.addr);
        async {}.boxed()
    }
}

impl MemTransport {
    fn clone_handle(&self) -> MemTransport {
        MemTransport {
            net: self.net.clone(),
            name: self.name.clone(),
            addr: self.addr,
            services: self.services.clone(),
            alive: self.alive.clone(),
            max_frame: self.max_frame,
        }
    }

    async fn wait_for_link_back(&self, peer: SocketAddr, deadline: tokio::time::Instant) -> bool {
        while self.net.is_blocked(peer, self.addr) {
            if tokio::time::Instant::now() + PARTITION_POLL > deadline {
                return false;
            }
            tokio::time::sleep(PARTITION_POLL).await;
        }
        true
    }

    /// A copy of this endpoint limited to `max` bytes per frame (for tests of the limit): it
    /// sends no larger frame, and the endpoint refuses larger frames sent to it.
    pub fn with_max_frame(&self, max: usize) -> MemTransport {
        if let Some(entry) = self.net.lock().endpoints.get_mut(&self.addr) {
            entry.max_frame = max;
        }
        MemTransport {
            max_frame: max,
            ..self.clone_handle()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo(mut inbox: Inbox) {
        while let Some(incoming) = inbox.recv().await {
            if let Incoming::Request { body, reply, .. } = incoming {
                if body.as_ref() == b"refuse" {
                    reply.refuse("no thanks");
                } else if body.as_ref() == b"drop" {
                    drop(reply);
                } else if body.as_ref() == b"hang" {
                    std::mem::forget(reply);
                } else {
                    reply.ok(body);
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn request_answers_refusals_and_names() {
        let net = MemNetwork::new(1);
        let a = net.endpoint("a");
        let b = net.endpoint("b");
        tokio::spawn(echo(b.register(Service::STORE, 8).unwrap()));
        let t = Duration::from_secs(1);
        let to_b = PeerAddr::named("b", b.local_addr());
        let got = a
            .request(&to_b, Service::STORE, Bytes::from_static(b"hi"), t)
            .await;
        assert_eq!(got.unwrap(), Bytes::from_static(b"hi"));
        let refused = a
            .request(&to_b, Service::STORE, Bytes::from_static(b"refuse"), t)
            .await;
        assert!(matches!(refused, Err(TransportError::Refused { reason, .. }) if reason == "no thanks"));
        let dropped = a
            .request(&to_b, Service::STORE, Bytes::from_static(b"drop"), t)
            .await;
        assert!(matches!(dropped, Err(TransportError::Refused { .. })));
        let wrong = PeerAddr::named("c", b.local_addr());
        let auth = a
            .request(&wrong, Service::STORE, Bytes::from_static(b"hi"), t)
            .await;
        assert!(matches!(auth, Err(TransportError::Authentication { .. })));
        let no_service = a
            .request(&to_b, Service::RAFT, Bytes::from_static(b"hi"), t)
            .await;
        assert!(matches!(no_service, Err(TransportError::Refused { .. })));
        let hang = a
            .request(&to_b, Service::STORE, Bytes::from_static(b"hang"), t)
            .await;
        assert!(matches!(hang, Err(TransportError::TimedOut { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn partitions_delay_reliable_frames_and_drop_datagrams() {
        let net = MemNetwork::new(2);
        let a = net.endpoint("a");
        let b = net.endpoint("b");
        tokio::spawn(echo(b.register(Service::STORE, 8).unwrap()));
        let mut gossip = b.register(Service::MEMBERSHIP, 8).unwrap();
        let to_b = PeerAddr::named("b", b.local_addr());
        net.partition(&[a.local_addr()], &[b.local_addr()]);
        a.send_datagram(&to_b, Service::MEMBERSHIP, Bytes::from_static(b"ping"))
            .unwrap();
        let cut = a
            .request(
                &to_b,
                Service::STORE,
                Bytes::from_static(b"x"),
                Duration::from_millis(100),
            )
            .await;
        assert!(matches!(cut, Err(TransportError::TimedOut { .. })));
        assert!(gossip.try_recv().is_none());
        // A request sent during the partition gets through once it heals.
        let pending = a.request(
            &to_b,
            Service::STORE,
            Bytes::from_static(b"y"),
            Duration::from_secs(5),
        );
        let healer = {
            let net = net.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                net.heal();
            }
        };
        let (got, ()) = tokio::join!(pending, healer);
        assert_eq!(got.unwrap(), Bytes::from_static(b"y"));
        a.send_datagram(&to_b, Service::MEMBERSHIP, Bytes::from_static(b"ping"))
            .unwrap();
        match gossip.recv().await {
            Some(Incoming::Datagram { from, body }) => {
                assert_eq!(from.name, "a");
                assert_eq!(body, Bytes::from_static(b"ping"));
            }
            other => panic!("expected a datagram, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn crash_mid_request_is_outcome_unknown_and_restart_reconnects() {
        let net = MemNetwork::new(3);
        let a = net.endpoint("a");
        let b = net.endpoint("b");
        let mut inbox = b.register(Service::STORE, 8).unwrap();
        let to_b = PeerAddr::named("b", b.local_addr());
        let pending = a.request(
            &to_b,
            Service::STORE,
            Bytes::from_static(b"x"),
            Duration::from_secs(1),
        );
        let crasher = {
            let net = net.clone();
            let addr = b.local_addr();
            async move {
                let held = inbox.recv().await;
                net.crash(addr);
                drop(held);
            }
        };
        let (got, ()) = tokio::join!(pending, crasher);
        assert!(matches!(got, Err(TransportError::Lost { .. })), "{got:?}");
        let gone = a
            .request(
                &to_b,
                Service::STORE,
                Bytes::from_static(b"x"),
                Duration::from_secs(1),
            )
            .await;
        assert!(matches!(gone, Err(TransportError::Unreachable { .. })));
        let b2 = net.endpoint_at("b", b.local_addr(), PeerRole::Node).unwrap();
        tokio::spawn(echo(b2.register(Service::STORE, 8).unwrap()));
        let back = a
            .request(
                &to_b,
                Service::STORE,
                Bytes::from_static(b"z"),
                Duration::from_secs(1),
            )
            .await;
        assert_eq!(back.unwrap(), Bytes::from_static(b"z"));
    }

    #[tokio::test(start_paused = true)]
    async fn limits_are_refused_locally() {
        let net = MemNetwork::new(4);
        let a = net.endpoint("a").with_max_frame(4);
        let b = net.endpoint("b");
        let to_b = PeerAddr::any(b.local_addr());
        let big = a
            .request(
                &to_b,
                Service::STORE,
                Bytes::from_static(b"12345"),
                Duration::from_secs(1),
            )
            .await;
        assert!(matches!(
            big,
            Err(TransportError::FrameTooLarge { size: 5, max: 4 })
        ));
        let huge = Bytes::from(vec![0u8; MEM_MAX_DATAGRAM + 1]);
        assert!(matches!(
            a.send_datagram(&to_b, Service::MEMBERSHIP, huge),
            Err(TransportError::FrameTooLarge { .. })
        ));
        assert!(matches!(
            b.register(Service::STORE, 1)
                .and_then(|_keep| b.register(Service::STORE, 1)),
            Err(TransportError::AlreadyRegistered { .. })
        ));
    }
}
