//! The real [`Transport`]: QUIC (quinn 0.11) with mutual TLS (rustls 0.23, ring).
//!
//! One UDP socket per process carries everything: requests and one-way messages on
//! bidirectional streams (one stream each, framed by [`super::frame`]), gossip as QUIC
//! datagrams, all over connections authenticated both ways by the cluster CA.
//!
//! ```text
//!   request(to) ──► links[to.addr] ──(reuse, or one shared dial)──► Connection ──open_bi──►
//!                                                                       │
//!   peer: accept ──► serve_connection ──accept_bi──► serve_stream ──► Inbox(service)
//!                          │                                      └──► Handler(service)
//!                          └──read_datagram──► Inbox(service) (try_send: full = dropped)
//! ```
//!
//! `serve_stream` runs on its connection's task until it first waits, and in a task of its
//! own only from then on; a service registered with [`Transport::serve`] has its
//! [`Handler`] called right there, so a request the handler answers at once is read,
//! handled and answered on one task, with no wake of another (on an idle machine each such
//! wake can cost a parked thread's, and an idle CPU's, wake-up).
//!
//! Connections: one outgoing connection per peer address, shared by all callers; callers that
//! arrive while it is being dialled wait for the same dial; a closed connection is forgotten
//! and redialled on next use. The stateless-reset key is derived from the node's private key,
//! so a node restarted at the same address resets its peers' old connections at their next
//! packet (a keep-alive at the latest) instead of letting them idle out.
//!
//! Error mapping (the three classes of [`TransportError`] stay apart):
//!
//! | what happened | error |
//! |---|---|
//! | dial failed, no handshake within `handshake_timeout`, no connection before the deadline, connection gone before the stream was opened | `Unreachable` |
//! | a TLS alert either way (unknown CA, no certificate, client certificate serving), or the certificate names another node | `Authentication` |
//! | the peer answered "refused" (handler refusal, no such service, frame too large at the peer, malformed frame), or its answer is too large here | `Refused` |
//! | the deadline passed after the stream was opened | `TimedOut` (outcome unknown) |
//! | the connection broke after the request was written | `Lost` (outcome unknown) |
//! | body larger than `max_frame` (datagram larger than [`QUIC_MAX_DATAGRAM`]) | `FrameTooLarge`, nothing sent |
//! | after [`Transport::shutdown`] | `Closed` |

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{
    ConnectError, ConnectionError, EndpointConfig, IdleTimeout, ReadError, ReadExactError, RecvStream,
    SendStream, TransportConfig, TransportErrorCode, VarInt, WriteError,
};
use rustls::pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::frame::{self, AnswerHeader, FrameError, Header, Kind, Status, ANSWER_HEADER_LEN, HEADER_LEN};
use super::limits::PeerLimits;
use super::tls::{self, Identity, TlsMaterial};
use super::{
    Handler, Inbox, Incoming, Peer, PeerAddr, PeerRole, Reply, Responder, Service, Serving, Transport,
    TransportError, DEFAULT_MAX_FRAME,
};

/// The largest datagram body [`QuicTransport`] sends. QUIC's smallest allowed path MTU
/// (1200 bytes) minus packet, frame and strand overheads, so every datagram fits any path.
pub const QUIC_MAX_DATAGRAM: usize = 1100;

/// The name put in the TLS ClientHello; never checked (nodes are named by URI SANs).
const SERVER_NAME: &str = "strand";
/// Application close code: the endpoint shut down.
const CLOSE_SHUTDOWN: VarInt = VarInt::from_u32(0);
/// Application close code: the peer's certificate carries no usable strand identity.
const CLOSE_AUTH: VarInt = VarInt::from_u32(1);
/// Application close code: the peer holds the most connections one identity may.
const CLOSE_LIMIT: VarInt = VarInt::from_u32(2);
/// Close code: a request was abandoned on this connection and the peer had said nothing on
/// it meanwhile (see [`SilenceWatch`]).
const CLOSE_SILENT: VarInt = VarInt::from_u32(3);

/// A request abandoned after at least this long with nothing heard from the peer on its
/// connection meanwhile condemns the connection. A live peer acknowledges a request's
/// bytes within its ack delay (25 ms) plus a round trip, answer or not.
const SILENCE_CONDEMNS: Duration = Duration::from_millis(100);
/// Stream stop code: the frame was refused (its reason is in the answer).
const STOP_REFUSED: VarInt = VarInt::from_u32(1);
/// How long [`Transport::shutdown`] waits for close frames to reach the peers.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

/// Connection IDs of 8 random bytes. Unlike quinn's default they carry no per-process
/// checksum, so a restarted node answers its predecessor's connections with a stateless
/// reset (see the module documentation).
struct RandomCids;

impl quinn::ConnectionIdGenerator for RandomCids {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        use ring::rand::SecureRandom;
        let mut bytes = [0u8; 8];
        if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
            // The OS has no randomness to give; a CID only needs to be unlikely to collide.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            bytes = nanos.to_le_bytes();
        }
        quinn::ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// How a [`QuicTransport`] is set up. [`QuicConfig::new`] gives LAN/loopback defaults.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// The UDP address to bind (port 0 picks one; [`Transport::local_addr`] reports it). For a
    /// client endpoint, the local address its connections come from.
    pub listen: SocketAddr,
    /// The CA, this endpoint's certificate and key; the certificate's name is the endpoint's.
    pub tls: TlsMaterial,
    /// The largest request, answer or one-way message body (at most `u32::MAX`).
    pub max_frame: usize,
    /// How often an idle connection is pinged (zero: never).
    pub keep_alive: Duration,
    /// A connection that hears nothing for this long is closed.
    pub idle_timeout: Duration,
    /// How long a dial may take before the peer counts as unreachable.
    pub handshake_timeout: Duration,
    /// The round-trip time assumed before one is measured.
    pub initial_rtt: Duration,
    /// Datagrams held per peer while its connection is being dialled (oldest dropped first).
    pub datagram_queue: usize,
    /// How many requests and messages a peer may have open on one connection at once.
    pub max_concurrent_streams: u32,
    /// How many connections one identity may hold to this endpoint at once; another is
    /// closed at once with the reason.
    pub max_connections_per_peer: usize,
    /// How many requests and messages one identity may have in flight at this endpoint over
    /// all its connections; another is refused with the reason.
    pub max_streams_per_peer: usize,
    /// Network faults this endpoint's datagrams pass through (fault runs only; `None`: the
    /// process's `--net-faults`, if it was given; see [`super::faults`]).
    pub net_faults: Option<Arc<super::faults::NetFaults>>,
}

impl QuicConfig {
    /// Defaults suited to loopback and LANs: 16 MiB frames, keep-alive 1 s, idle timeout
    /// 10 s, handshake timeout 3 s, initial RTT 10 ms, 16 queued datagrams, 1,024 streams
    /// per connection, 64 connections and 4,096 streams in flight per peer identity.
    pub fn new(listen: SocketAddr, tls: TlsMaterial) -> Self {
        QuicConfig {
            listen,
            tls,
            max_frame: DEFAULT_MAX_FRAME,
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(3),
            initial_rtt: Duration::from_millis(10),
            datagram_queue: 16,
            max_concurrent_streams: 1024,
            max_connections_per_peer: 64,
            max_streams_per_peer: 4096,
            net_faults: None,
        }
    }

    fn transport_config(&self) -> Result<TransportConfig, TransportError> {
        let mut t = TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(self.max_concurrent_streams.max(1)))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .keep_alive_interval((!self.keep_alive.is_zero()).then_some(self.keep_alive))
            .max_idle_timeout(Some(IdleTimeout::try_from(self.idle_timeout).map_err(|e| {
                TransportError::Setup {
                    reason: format!("idle timeout {:?}: {e}", self.idle_timeout),
                }
            })?))
            .initial_rtt(self.initial_rtt)
            .stream_receive_window(VarInt::from_u32(8 << 20))
            .receive_window(VarInt::from_u32(64 << 20))
            .send_window(64 << 20)
            .datagram_receive_buffer_size(Some(1 << 20))
            .datagram_send_buffer_size(1 << 20);
        Ok(t)
    }
}

/// A QUIC endpoint: a node (serves and dials) or a client (dials only).
pub struct QuicTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("name", &self.inner.name)
            .field("addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

type DialFuture = Shared<BoxFuture<'static, Result<Link, TransportError>>>;

/// An established outgoing connection and who the peer's certificate says it is.
#[derive(Debug, Clone)]
struct Link {
    conn: quinn::Connection,
    peer: Identity,
}

impl Link {
    fn is_open(&self) -> bool {
        self.conn.close_reason().is_none()
    }
}

enum Slot {
    Ready(Link),
    Dialing {
        id: u64,
        done: DialFuture,
        /// When the dial began: one older than `Inner::dial_patience` is superseded.
        started: Instant,
        /// Framed datagrams waiting for the connection, with the name they were addressed to.
        queued: VecDeque<(Option<String>, Bytes)>,
    },
}

struct Inner {
    name: String,
    role: PeerRole,
    local_addr: SocketAddr,
    max_frame: usize,
    handshake_timeout: Duration,
    /// A dial still unfinished after this long is replaced by a fresh one for the next
    /// caller: its handshake packets were lost and their retransmission has backed off, so
    /// it may finish long after the path works again (25 initial RTTs: 250 ms by default).
    dial_patience: Duration,
    datagram_queue: usize,
    endpoint: quinn::Endpoint,
    client_config: Mutex<quinn::ClientConfig>,
    transport_config: Arc<TransportConfig>,
    /// Whether the endpoint accepts connections (a node) or only dials (a client).
    serve: bool,
    runtime: tokio::runtime::Handle,
    services: Mutex<BTreeMap<Service, Route>>,
    links: Mutex<BTreeMap<SocketAddr, Slot>>,
    /// Connections peers opened to this endpoint and still being served, by stable id (so a
    /// reload can close those whose certificate it revokes).
    accepted: Mutex<BTreeMap<usize, quinn::Connection>>,
    next_dial: AtomicU64,
    closed: AtomicBool,
    shutdown: watch::Sender<bool>,
    limits: PeerLimits,
}

/// Where a service's frames go: an inbox, or a handler called on the connection's task.
#[derive(Clone)]
enum Route {
    Inbox(mpsc::Sender<Incoming>),
    /// Weak: the caller's [`Serving`] holds the handler and sets `closed` when dropped;
    /// from then on the service is gone.
    Handler(Weak<dyn Handler>, Arc<AtomicBool>),
}

impl Route {
    fn is_closed(&self) -> bool {
        match self {
            Route::Inbox(tx) => tx.is_closed(),
            Route::Handler(h, closed) => closed.load(Ordering::SeqCst) || h.strong_count() == 0,
        }
    }

    /// The handler, unless the service was dropped.
    fn handler(h: &Weak<dyn Handler>, closed: &AtomicBool) -> Option<Arc<dyn Handler>> {
        if closed.load(Ordering::SeqCst) {
            return None;
        }
        h.upgrade()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock must not take the transport down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn setup_err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> TransportError + '_ {
    move |e| TransportError::Setup {
        reason: format!("{what}: {e}"),
    }
}

impl QuicTransport {
    /// Binds a node endpoint at `config.listen`: it serves the services registered on it and
    /// dials other nodes. The certificate must be a node certificate. Needs a tokio runtime.
    pub fn bind(config: QuicConfig) -> Result<Arc<QuicTransport>, TransportError> {
        Self::start(config, true)
    }

    /// A client endpoint (the CLI, an admin client): it dials nodes and accepts nothing. A
    /// client or node certificate may be used; nodes see its role in [`Peer::role`].
    pub fn client(config: QuicConfig) -> Result<Arc<QuicTransport>, TransportError> {
        Self::start(config, false)
    }

    fn start(config: QuicConfig, serve: bool) -> Result<Arc<QuicTransport>, TransportError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| setup_err("a QUIC endpoint needs a tokio runtime")(&e))?;
        if config.max_frame > u32::MAX as usize {
            return Err(TransportError::Setup {
                reason: format!("max_frame {} exceeds {}", config.max_frame, u32::MAX),
            });
        }
        let transport_config = Arc::new(config.transport_config()?);
        let tls = &config.tls;
        let (server_config, client_config) = quic_configs(tls, serve, &transport_config)?;
        let endpoint_config = if serve {
            // Stable across restarts: see the module documentation.
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &tls.reset_seed());
            let mut endpoint_config = EndpointConfig::new(Arc::new(key));
            // quinn's default CIDs carry a per-process checksum, and it sends no reset for a CID
            // that fails it: a restarted node would stay silent about its predecessor's.
            endpoint_config.cid_generator(|| Box::new(RandomCids));
            endpoint_config
        } else {
            EndpointConfig::default()
        };
        let socket = std::net::UdpSocket::bind(config.listen)
            .map_err(|e| setup_err(&format!("cannot bind {}", config.listen))(&e))?;
        let local_addr = socket.local_addr().map_err(|e| setup_err("local address")(&e))?;
        let endpoint = match config.net_faults.clone().or_else(super::faults::installed) {
            None => quinn::Endpoint::new(
                endpoint_config,
                server_config,
                socket,
                Arc::new(quinn::TokioRuntime),
            ),
            // A fault run: every datagram passes the fault rules.
            Some(faults) => {
                use quinn::Runtime as _;
                quinn::TokioRuntime.wrap_udp_socket(socket).and_then(|udp| {
                    let faulty = Arc::new(super::faults::FaultySocket::new(udp, faults));
                    quinn::Endpoint::new_with_abstract_socket(
                        endpoint_config,
                        server_config,
                        faulty,
                        Arc::new(quinn::TokioRuntime),
                    )
                })
            }
        }
        .map_err(|e| setup_err("QUIC endpoint")(&e))?;
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            name: tls.name().to_string(),
            role: if serve { PeerRole::Node } else { tls.role() },
            local_addr,
            max_frame: config.max_frame,
            handshake_timeout: config.handshake_timeout,
            dial_patience: config.initial_rtt * 25,
            datagram_queue: config.datagram_queue.max(1),
            endpoint,
            client_config: Mutex::new(client_config),
            transport_config,
            serve,
            runtime,
            services: Mutex::new(BTreeMap::new()),
            links: Mutex::new(BTreeMap::new()),
            accepted: Mutex::new(BTreeMap::new()),
            next_dial: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            shutdown,
            limits: PeerLimits::new(config.max_connections_per_peer, config.max_streams_per_peer),
        });
        if serve {
            inner.runtime.spawn(accept_loop(inner.clone()));
        }
        tracing::debug!(name = %inner.name, addr = %local_addr, serve, "QUIC endpoint up");
        Ok(Arc::new(QuicTransport { inner }))
    }

    /// Whether this endpoint is a node or a client.
    pub fn role(&self) -> PeerRole {
        self.inner.role
    }

    /// Replaces the endpoint's TLS material without a restart (a rotated certificate and
    /// key, a new CA bundle, a new revocation list): connections made from now on, both ways,
    /// use it; open outgoing connections are forgotten (requests in flight on them finish)
    /// so the next request dials with the new material; open incoming ones keep theirs until
    /// they close. The name must stay the same.
    pub fn reload(&self, tls: &TlsMaterial) -> Result<(), TransportError> {
        if tls.name() != self.inner.name {
            return Err(TransportError::Setup {
                reason: format!(
                    "new material names {:?}, this endpoint is {:?}",
                    tls.name(),
                    self.inner.name
                ),
            });
        }
        let (server, client) = quic_configs(tls, self.inner.serve, &self.inner.transport_config)?;
        if let Some(server) = server {
            self.inner.endpoint.set_server_config(Some(server));
        }
        *lock(&self.inner.client_config) = client;
        // Open connections keep the material they were made with: those to or from a peer
        // whose certificate is now revoked are closed, the others are only no longer reused
        // for new requests (outgoing) or left to end (incoming).
        let revoked = |conn: &quinn::Connection| -> Option<String> {
            let any = conn.peer_identity()?;
            let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
            let cert = certs.first()?;
            let identity = tls::identity_of(cert).ok()?;
            tls.revocations().check(&identity.name, cert).err()
        };
        let mut closing = Vec::new();
        lock(&self.inner.links).retain(|_, slot| match slot {
            Slot::Ready(link) => {
                closing.push(link.conn.clone());
                false
            }
            Slot::Dialing { .. } => true,
        });
        closing.retain(|c| revoked(c).is_some());
        closing.extend(
            lock(&self.inner.accepted)
                .values()
                .filter(|c| revoked(c).is_some())
                .cloned(),
        );
        for conn in closing {
            tracing::warn!(addr = %conn.remote_address(), "closing a connection: the peer's certificate is revoked");
            conn.close(CLOSE_AUTH, b"certificate revoked");
        }
        tracing::info!(name = %self.inner.name, roles = %tls.roles(), "reloaded TLS material");
        Ok(())
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.inner.close_now();
    }
}

impl Inner {
    fn check_open(&self) -> Result<(), TransportError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(TransportError::Closed)
        } else {
            Ok(())
        }
    }

    /// Stops everything that can be stopped without waiting. Returns whether it was open.
    fn close_now(&self) -> bool {
        if self.closed.swap(true, Ordering::SeqCst) {
            return false;
        }
        let _ = self.shutdown.send(true);
        lock(&self.services).clear();
        lock(&self.links).clear();
        self.endpoint.close(CLOSE_SHUTDOWN, b"shutdown");
        true
    }

    fn route(&self, service: Service) -> Option<Route> {
        lock(&self.services)
            .get(&service)
            .filter(|s| !s.is_closed())
            .cloned()
    }

    /// The connection to `addr`: the open one, the one being dialled, or a new dial.
    async fn link(self: &Arc<Self>, addr: SocketAddr) -> Result<Link, TransportError> {
        let dial = {
            let mut links = lock(&self.links);
            self.check_open()?;
            match links.get(&addr) {
                Some(Slot::Ready(link)) if link.is_open() => return Ok(link.clone()),
                Some(Slot::Dialing { done, started, .. }) if started.elapsed() < self.dial_patience => {
                    done.clone()
                }
                _ => self.start_dial(&mut links, addr),
            }
        };
        dial.await
    }

    /// Starts dialling `addr` in a task of its own (so it finishes, and flushes queued
    /// datagrams, even if every caller gives up) and records it in `links`.
    fn start_dial(self: &Arc<Self>, links: &mut BTreeMap<SocketAddr, Slot>, addr: SocketAddr) -> DialFuture {
        let id = self.next_dial.fetch_add(1, Ordering::Relaxed);
        let inner = self.clone();
        let task = self.runtime.spawn(async move {
            let result = inner.dial(addr).await;
            inner.finish_dial(addr, id, &result);
            result
        });
        let done = async move {
            task.await.unwrap_or_else(|e| {
                Err(TransportError::Unreachable {
                    peer: addr.to_string(),
                    reason: format!("the dial failed: {e}"),
                })
            })
        }
        .boxed()
        .shared();
        // A superseded dial's queued datagrams go with the new one.
        let queued = match links.remove(&addr) {
            Some(Slot::Dialing { queued, .. }) => queued,
            _ => VecDeque::new(),
        };
        links.insert(
            addr,
            Slot::Dialing {
                id,
                done: done.clone(),
                started: Instant::now(),
                queued,
            },
        );
        done
    }

    async fn dial(&self, addr: SocketAddr) -> Result<Link, TransportError> {
        let peer = addr.to_string();
        let connecting = self
            .endpoint
            .connect_with(lock(&self.client_config).clone(), addr, SERVER_NAME)
            .map_err(|e| match e {
                ConnectError::EndpointStopping => TransportError::Closed,
                other => TransportError::Unreachable {
                    peer: peer.clone(),
                    reason: other.to_string(),
                },
            })?;
        let conn = match tokio::time::timeout(self.handshake_timeout, connecting).await {
            Err(_) => {
                return Err(TransportError::Unreachable {
                    peer,
                    reason: format!("no handshake within {:?}", self.handshake_timeout),
                })
            }
            Ok(Err(e)) => return Err(map_connection_error(&peer, &e, false)),
            Ok(Ok(conn)) => conn,
        };
        let Some(identity) = peer_identity(&conn) else {
            conn.close(CLOSE_AUTH, b"no strand identity");
            return Err(TransportError::Authentication {
                peer,
                reason: "the peer's certificate carries no strand identity".into(),
            });
        };
        tracing::debug!(%addr, peer = %identity.name, "connected");
        Ok(Link { conn, peer: identity })
    }

    fn finish_dial(self: &Arc<Self>, addr: SocketAddr, id: u64, result: &Result<Link, TransportError>) {
        let mut links = lock(&self.links);
        // Our own dial, or one that superseded ours and has not finished: the first dial to
        // succeed serves everyone (under load a handshake can outlast `dial_patience`, and
        // dials that superseded each other must not all be thrown away). A superseded dial
        // that failed changes nothing; once the slot is ready or gone, the slot moved on.
        let current = match links.get(&addr) {
            Some(Slot::Dialing { id: current, .. }) => *current,
            _ => return,
        };
        if current != id && result.is_err() {
            return;
        }
        let Some(Slot::Dialing { queued, .. }) = links.remove(&addr) else {
            return;
        };
        let Ok(link) = result else {
            return;
        };
        for (expected, datagram) in queued {
            if expected.as_deref().is_none_or(|n| n == link.peer.name) {
                let _ = link.conn.send_datagram(datagram);
            }
        }
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        links.insert(addr, Slot::Ready(link.clone()));
        let inner = self.clone();
        let conn = link.conn.clone();
        self.runtime.spawn(async move {
            let why = conn.closed().await;
            tracing::debug!(%addr, "connection closed: {why}");
            inner.forget(addr, conn.stable_id());
        });
    }

    /// Forgets the connection to `addr` if it is still the one with `stable_id`.
    fn forget(&self, addr: SocketAddr, stable_id: usize) {
        let mut links = lock(&self.links);
        if matches!(links.get(&addr), Some(Slot::Ready(l)) if l.conn.stable_id() == stable_id) {
            links.remove(&addr);
        }
    }

    fn datagram(self: &Arc<Self>, to: &PeerAddr, datagram: Bytes) {
        let mut links = lock(&self.links);
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        match links.get_mut(&to.addr) {
            Some(Slot::Ready(link)) if link.is_open() => {
                if to.name.as_deref().is_none_or(|n| n == link.peer.name) {
                    let _ = link.conn.send_datagram(datagram);
                }
                return;
            }
            Some(Slot::Dialing { .. }) => {}
            _ => {
                let _dial = self.start_dial(&mut links, to.addr);
            }
        }
        if let Some(Slot::Dialing { queued, .. }) = links.get_mut(&to.addr) {
            if queued.len() >= self.datagram_queue {
                queued.pop_front();
            }
            queued.push_back((to.name.clone(), datagram));
        }
    }

    /// Sends one request or message and reads its answer. The caller bounds it by the
    /// deadline; this bounds the connection phase by it, so that phase ends as `Unreachable`.
    async fn exchange(
        self: Arc<Self>,
        to: &PeerAddr,
        kind: Kind,
        service: Service,
        body: Bytes,
        deadline: Instant,
    ) -> Result<Bytes, TransportError> {
        // Named only when an error needs it: formatting the address on every request costs.
        let peer = || to.to_string();
        let mut retried = false;
        let (mut send, mut recv, link_conn) = loop {
            let link = match tokio::time::timeout_at(deadline, self.link(to.addr)).await {
                Err(_) => {
                    return Err(TransportError::Unreachable {
                        peer: peer(),
                        reason: "not connected before the deadline".into(),
                    })
                }
                Ok(result) => result?,
            };
            if let Some(expected) = &to.name {
                if *expected != link.peer.name {
                    return Err(TransportError::Authentication {
                        peer: peer(),
                        reason: format!(
                            "the certificate at {} names {:?}, expected {expected:?}",
                            to.addr, link.peer.name
                        ),
                    });
                }
            }
            match link.conn.open_bi().await {
                Ok((send, recv)) => break (send, recv, link.conn),
                Err(e) => {
                    // Nothing was written: safe to try once more on a fresh connection.
                    self.forget(to.addr, link.conn.stable_id());
                    let err = map_connection_error(&peer(), &e, false);
                    if !retried && matches!(err, TransportError::Unreachable { .. }) {
                        retried = true;
                        continue;
                    }
                    return Err(err);
                }
            }
        };
        let mut watch = SilenceWatch::new(self.clone(), to.addr, &link_conn);
        let result = self.talk(to, kind, service, body, &mut send, &mut recv).await;
        watch.disarm();
        result
    }

    /// Writes one request or message on an open stream and reads its answer.
    async fn talk(
        &self,
        to: &PeerAddr,
        kind: Kind,
        service: Service,
        body: Bytes,
        send: &mut SendStream,
        recv: &mut RecvStream,
    ) -> Result<Bytes, TransportError> {
        let peer = || to.to_string();
        let len = u32::try_from(body.len()).map_err(|_| TransportError::FrameTooLarge {
            size: body.len(),
            max: self.max_frame,
        })?;
        let header = Header { kind, service, len }.encode();
        match send
            .write_all_chunks(&mut [Bytes::copy_from_slice(&header), body])
            .await
        {
            Ok(()) => {
                let _ = send.finish();
            }
            // The peer refused before reading it all; its reason follows on the other half.
            Err(WriteError::Stopped(_)) => {}
            Err(WriteError::ConnectionLost(e)) => return Err(map_connection_error(&peer(), &e, true)),
            Err(e) => {
                return Err(TransportError::Lost {
                    peer: peer(),
                    reason: e.to_string(),
                })
            }
        }
        let mut head = [0u8; ANSWER_HEADER_LEN];
        recv.read_exact(&mut head)
            .await
            .map_err(|e| read_error(&peer(), e))?;
        let answer = match AnswerHeader::decode(&head, self.max_frame) {
            Ok(answer) => answer,
            Err(e) => {
                let _ = recv.stop(STOP_REFUSED);
                let reason = match e {
                    FrameError::TooLarge { size, max } => {
                        format!("the answer of {size} bytes exceeds this endpoint's maximum of {max}")
                    }
                    other => other.to_string(),
                };
                return Err(TransportError::Refused { peer: peer(), reason });
            }
        };
        let buf = read_body(recv, answer.len as usize)
            .await
            .map_err(|e| read_error(&peer(), e))?;
        take_end_if_arrived(recv);
        match answer.status {
            Status::Ok => Ok(buf),
            Status::Refused => Err(TransportError::Refused {
                peer: peer(),
                reason: String::from_utf8_lossy(&buf).into_owned(),
            }),
        }
    }

    fn prepare(&self, body: &Bytes) -> Result<(), TransportError> {
        self.check_open()?;
        if body.len() > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                size: body.len(),
                max: self.max_frame,
            });
        }
        Ok(())
    }
}

/// Watches one exchange: if it is abandoned (its deadline passed and the future was dropped)
/// after [`SILENCE_CONDEMNS`] or more, and its connection received no datagram at all
/// meanwhile, the connection is closed and forgotten, so the next request dials afresh.
///
/// Why: after a spell of heavy loss QUIC's probe timeout has backed off exponentially (to
/// seconds after a few seconds of total loss) and the congestion window is full of data
/// that was lost: a new request on that connection waits for the next probe, long after
/// the loss ended. A fresh connection starts with a fresh RTT estimate and window. A live
/// peer acknowledges a request's bytes within milliseconds, answered or not, so silence
/// that long means the connection is stuck or the peer is gone (then a redial is what the
/// next request needs anyway).
struct SilenceWatch {
    inner: Arc<Inner>,
    addr: SocketAddr,
    conn: quinn::Connection,
    heard: u64,
    since: Instant,
    armed: bool,
}

impl SilenceWatch {
    fn new(inner: Arc<Inner>, addr: SocketAddr, conn: &quinn::Connection) -> Self {
        SilenceWatch {
            inner,
            addr,
            heard: conn.stats().udp_rx.datagrams,
            conn: conn.clone(),
            since: Instant::now(),
            armed: true,
        }
    }

    /// The exchange ended by itself (answered or failed): nothing to judge.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for SilenceWatch {
    fn drop(&mut self) {
        if !self.armed || self.since.elapsed() < SILENCE_CONDEMNS {
            return;
        }
        if self.conn.stats().udp_rx.datagrams != self.heard {
            return;
        }
        tracing::info!(
            addr = %self.addr,
            silent_ms = self.since.elapsed().as_millis() as u64,
            "a request was abandoned on a connection that heard nothing meanwhile: redialling"
        );
        self.inner.forget(self.addr, self.conn.stable_id());
        self.conn.close(CLOSE_SILENT, b"silent");
    }
}

fn is_crypto(code: TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// Maps a connection's failure; `sent` says whether a request may already be at the peer.
fn map_connection_error(peer: &str, e: &ConnectionError, sent: bool) -> TransportError {
    let auth = |reason: String| TransportError::Authentication {
        peer: peer.to_string(),
        reason,
    };
    match e {
        ConnectionError::LocallyClosed => TransportError::Closed,
        ConnectionError::TransportError(te) if is_crypto(te.code) => auth(te.to_string()),
        ConnectionError::ConnectionClosed(cc) if is_crypto(cc.error_code) => {
            auth(format!("the peer refused the handshake: {cc}"))
        }
        ConnectionError::ApplicationClosed(ac) if ac.error_code == CLOSE_AUTH => {
            auth(format!("the peer refused our identity: {ac}"))
        }
        ConnectionError::ApplicationClosed(ac) if ac.error_code == CLOSE_LIMIT => TransportError::Refused {
            peer: peer.to_string(),
            reason: format!(
                "the peer refused the connection: {}",
                String::from_utf8_lossy(&ac.reason)
            ),
        },
        _ if sent => TransportError::Lost {
            peer: peer.to_string(),
            reason: e.to_string(),
        },
        _ => TransportError::Unreachable {
            peer: peer.to_string(),
            reason: e.to_string(),
        },
    }
}

fn read_error(peer: &str, e: ReadExactError) -> TransportError {
    match e {
        ReadExactError::FinishedEarly(n) => TransportError::Refused {
            peer: peer.to_string(),
            reason: format!("malformed answer: the stream ended after {n} bytes"),
        },
        ReadExactError::ReadError(ReadError::ConnectionLost(e)) => map_connection_error(peer, &e, true),
        ReadExactError::ReadError(ReadError::Reset(code)) => TransportError::Refused {
            peer: peer.to_string(),
            reason: format!("the peer reset the stream (code {code})"),
        },
        ReadExactError::ReadError(other) => TransportError::Lost {
            peer: peer.to_string(),
            reason: other.to_string(),
        },
    }
}

/// The QUIC server (when `serve`) and client configurations for `tls`.
fn quic_configs(
    tls: &TlsMaterial,
    serve: bool,
    transport_config: &Arc<TransportConfig>,
) -> Result<(Option<quinn::ServerConfig>, quinn::ClientConfig), TransportError> {
    let server_config = if serve {
        let crypto = tls.server_config().map_err(|e| setup_err("TLS")(&e))?;
        let crypto = QuicServerConfig::try_from(crypto).map_err(|e| setup_err("QUIC TLS")(&e))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(transport_config.clone());
        Some(server)
    } else {
        None
    };
    let client_crypto = tls.client_config().map_err(|e| setup_err("TLS")(&e))?;
    let client_crypto = QuicClientConfig::try_from(client_crypto).map_err(|e| setup_err("QUIC TLS")(&e))?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
    client_config.transport_config(transport_config.clone());
    Ok((server_config, client_config))
}

/// The strand identity in a connection's verified peer certificate.
fn peer_identity(conn: &quinn::Connection) -> Option<Identity> {
    let any = conn.peer_identity()?;
    let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    tls::identity_of(certs.first()?).ok()
}

async fn accept_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|closed| *closed) => break,
            incoming = inner.endpoint.accept() => match incoming {
                Some(incoming) => {
                    inner.runtime.spawn(serve_connection(inner.clone(), incoming));
                }
                None => break,
            },
        }
    }
}

async fn serve_connection(inner: Arc<Inner>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let conn = match tokio::time::timeout(inner.handshake_timeout, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::warn!(%remote, "refused a connection: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "no handshake in time");
            return;
        }
    };
    let Some(identity) = peer_identity(&conn) else {
        conn.close(CLOSE_AUTH, b"no strand identity");
        return;
    };
    let slot = match inner.limits.connect(&identity.name) {
        Ok(slot) => slot,
        Err(e) => {
            tracing::warn!(addr = %conn.remote_address(), "refused a connection: {e}");
            conn.close(CLOSE_LIMIT, frame::clip_reason(&e.to_string()).as_bytes());
            return;
        }
    };
    let peer = Peer {
        name: identity.name,
        role: identity.role,
        roles: identity.roles,
        addr: conn.remote_address(),
    };
    tracing::debug!(peer = %peer.name, addr = %peer.addr, "accepted a connection");
    if peer.role == PeerRole::Node {
        // Gossip is for nodes; a client's datagrams are never read.
        inner
            .runtime
            .spawn(read_datagrams(inner.clone(), conn.clone(), peer.clone()));
    }
    lock(&inner.accepted).insert(conn.stable_id(), conn.clone());
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|closed| *closed) => break,
            streams = conn.accept_bi() => match streams {
                Ok((mut send, mut recv)) => match slot.stream() {
                    Ok(permit) => {
                        // Read, handled and answered here when nothing waits (a handler
                        // that answers at once); a task of its own only from its first wait.
                        let serve = serve_stream(inner.clone(), peer.clone(), send, recv);
                        super::run_inline_first(async move {
                            serve.await;
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        inner.runtime.spawn(async move { refuse(&mut send, &mut recv, &e.to_string()).await });
                    }
                },
                Err(_) => break,
            },
        }
    }
    lock(&inner.accepted).remove(&conn.stable_id());
}

async fn read_datagrams(inner: Arc<Inner>, conn: quinn::Connection, peer: Peer) {
    while let Ok(datagram) = conn.read_datagram().await {
        let Some((service, body)) = frame::decode_datagram(datagram) else {
            continue;
        };
        let datagram = Incoming::Datagram {
            from: peer.clone(),
            body,
        };
        match inner.route(service) {
            // A full inbox drops gossip rather than stalling the connection.
            Some(Route::Inbox(tx)) => {
                let _ = tx.try_send(datagram);
            }
            Some(Route::Handler(h, closed)) => {
                if let Some(h) = Route::handler(&h, &closed) {
                    super::handle_caught(&*h, datagram);
                }
            }
            None => {}
        }
    }
}

/// Refuses a stream: stops reading it and answers with the reason.
async fn refuse(send: &mut SendStream, recv: &mut RecvStream, reason: &str) {
    let _ = recv.stop(STOP_REFUSED);
    answer(send, Err(reason.to_string()), usize::MAX).await;
}

async fn answer(send: &mut SendStream, reply: Reply, max: usize) {
    let (status, body) = match reply {
        Ok(body) if body.len() > max => (
            Status::Refused,
            Bytes::from(format!(
                "the answer of {} bytes exceeds the maximum frame of {max}",
                body.len()
            )),
        ),
        Ok(body) => (Status::Ok, body),
        Err(reason) => (
            Status::Refused,
            Bytes::copy_from_slice(frame::clip_reason(&reason).as_bytes()),
        ),
    };
    let head = AnswerHeader {
        status,
        len: body.len() as u32,
    }
    .encode();
    let _ = send
        .write_all_chunks(&mut [Bytes::copy_from_slice(&head), body])
        .await;
    let _ = send.finish();
}

/// Most a body's buffer is given before its bytes arrive: a declared length is a claim, and
/// a peer that declares the maximum frame on every stream it may open and sends nothing must
/// not make this endpoint allocate it.
const BODY_RESERVE: usize = 64 << 10;

/// Reads exactly `len` bytes, allocating only as they arrive (and without a copy when they
/// arrive in one chunk).
async fn read_body(recv: &mut RecvStream, len: usize) -> Result<Bytes, ReadExactError> {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < len {
        match recv.read_chunk(len - buf.len(), true).await {
            Ok(Some(chunk)) if buf.is_empty() && chunk.bytes.len() == len => return Ok(chunk.bytes),
            Ok(Some(chunk)) => {
                if buf.capacity() == 0 {
                    buf.reserve(len.min(BODY_RESERVE.max(chunk.bytes.len())));
                }
                buf.extend_from_slice(&chunk.bytes);
            }
            Ok(None) => return Err(ReadExactError::FinishedEarly(buf.len())),
            Err(e) => return Err(ReadExactError::ReadError(e)),
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads the stream's end if it has already arrived (it normally comes in the frame's last
/// packet), without waiting for it. A stream dropped before its end was read tells the peer
/// to stop sending (quinn sends STOP_SENDING even when the end is already there): one more
/// frame per request each way, often a packet of its own that wakes the peer for nothing.
/// Anything after the frame is ignored, as before.
fn take_end_if_arrived(recv: &mut RecvStream) {
    let _ = recv.read_chunk(1, true).now_or_never();
}

/// Serves one request or message stream. Anything wrong with it refuses this stream only.
async fn serve_stream(inner: Arc<Inner>, peer: Peer, mut send: SendStream, mut recv: RecvStream) {
    let mut head = [0u8; HEADER_LEN];
    match recv.read_exact(&mut head).await {
        Ok(()) => {}
        Err(ReadExactError::FinishedEarly(n)) => {
            let reason = format!("malformed header: the stream ended after {n} of {HEADER_LEN} bytes");
            return refuse(&mut send, &mut recv, &reason).await;
        }
        Err(ReadExactError::ReadError(_)) => return,
    }
    let header = match Header::decode(&head, inner.max_frame) {
        Ok(header) => header,
        Err(e) => return refuse(&mut send, &mut recv, &e.to_string()).await,
    };
    let Some(route) = inner.route(header.service) else {
        let reason = format!("no such service: {}", header.service);
        return refuse(&mut send, &mut recv, &reason).await;
    };
    let body = match read_body(&mut recv, header.len as usize).await {
        Ok(body) => body,
        Err(ReadExactError::FinishedEarly(n)) => {
            let reason = format!(
                "malformed frame: the body ended after {n} of {} bytes",
                header.len
            );
            return refuse(&mut send, &mut recv, &reason).await;
        }
        Err(ReadExactError::ReadError(_)) => return,
    };
    take_end_if_arrived(&mut recv);
    let (incoming, rx) = match header.kind {
        Kind::Request => {
            let (reply, rx) = Responder::channel();
            (
                Incoming::Request {
                    from: peer,
                    body,
                    reply,
                },
                Some(rx),
            )
        }
        Kind::Message => (Incoming::Message { from: peer, body }, None),
    };
    // The requester giving up (deadline) stops the stream; stop waiting then.
    let stopped = send.stopped();
    tokio::pin!(stopped);
    let delivered = match route {
        Route::Inbox(tx) => tokio::select! {
            biased;
            _ = &mut stopped => return,
            sent = tx.send(incoming) => sent.is_ok(),
        },
        // Handled here: a reply given at once is ready below without a wake.
        Route::Handler(h, closed) => match Route::handler(&h, &closed) {
            Some(h) => {
                super::handle_caught(&*h, incoming);
                true
            }
            None => false,
        },
    };
    if !delivered {
        let reason = format!("no such service: {}", header.service);
        return answer(&mut send, Err(reason), usize::MAX).await;
    }
    let reply = match rx {
        None => Ok(Bytes::new()),
        Some(rx) => tokio::select! {
            biased;
            _ = &mut stopped => return,
            reply = rx => reply.unwrap_or_else(|_| Err("handler dropped the request".to_string())),
        },
    };
    answer(&mut send, reply, inner.max_frame).await;
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

impl Transport for QuicTransport {
    fn local_name(&self) -> &str {
        &self.inner.name
    }

    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    fn max_frame_size(&self) -> usize {
        self.inner.max_frame
    }

    fn max_datagram_size(&self) -> usize {
        QUIC_MAX_DATAGRAM
    }

    fn register(&self, service: Service, capacity: usize) -> Result<Inbox, TransportError> {
        let mut services = lock(&self.inner.services);
        self.inner.check_open()?;
        if services.get(&service).is_some_and(|s| !s.is_closed()) {
            return Err(TransportError::AlreadyRegistered { service });
        }
        let (tx, inbox) = Inbox::channel(service, capacity);
        services.insert(service, Route::Inbox(tx));
        Ok(inbox)
    }

    /// Calls `handler` on the task of the connection each frame came on: a request it
    /// answers before returning is read, handled and answered without another task.
    fn serve(
        &self,
        service: Service,
        _capacity: usize,
        handler: Arc<dyn Handler>,
    ) -> Result<Serving, TransportError> {
        let mut services = lock(&self.inner.services);
        self.inner.check_open()?;
        if services.get(&service).is_some_and(|s| !s.is_closed()) {
            return Err(TransportError::AlreadyRegistered { service });
        }
        let closed = Arc::new(AtomicBool::new(false));
        services.insert(service, Route::Handler(Arc::downgrade(&handler), closed.clone()));
        Ok(Serving::holding(handler, closed))
    }

    fn request(
        &self,
        to: &PeerAddr,
        service: Service,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>> {
        let prepared = self.inner.prepare(&body);
        let inner = self.inner.clone();
        let to = to.clone();
        async move {
            prepared?;
            let deadline = Instant::now() + timeout;
            match tokio::time::timeout_at(
                deadline,
                inner.exchange(&to, Kind::Request, service, body, deadline),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(TransportError::TimedOut {
                    peer: to.to_string(),
                    after: timeout,
                }),
            }
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
        let prepared = self.inner.prepare(&body);
        let inner = self.inner.clone();
        let to = to.clone();
        async move {
            prepared?;
            let deadline = Instant::now() + timeout;
            match tokio::time::timeout_at(
                deadline,
                inner.exchange(&to, Kind::Message, service, body, deadline),
            )
            .await
            {
                Ok(result) => result.map(|_| ()),
                Err(_) => Err(TransportError::TimedOut {
                    peer: to.to_string(),
                    after: timeout,
                }),
            }
        }
        .boxed()
    }

    fn send_datagram(&self, to: &PeerAddr, service: Service, body: Bytes) -> Result<(), TransportError> {
        self.inner.check_open()?;
        if body.len() > QUIC_MAX_DATAGRAM {
            return Err(TransportError::FrameTooLarge {
                size: body.len(),
                max: QUIC_MAX_DATAGRAM,
            });
        }
        self.inner.datagram(to, frame::encode_datagram(service, &body));
        Ok(())
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        async move {
            if !inner.close_now() {
                return;
            }
            let _ = tokio::time::timeout(SHUTDOWN_DRAIN, inner.endpoint.wait_idle()).await;
            // Give the port back now, not when the last task lets go of the endpoint, so a
            // successor can bind the same address at once.
            let spare = SocketAddr::new(unspecified_like(inner.local_addr.ip()), 0);
            if let Ok(socket) = std::net::UdpSocket::bind(spare) {
                let _ = inner.endpoint.rebind(socket);
            }
            tracing::debug!(name = %inner.name, "QUIC endpoint shut down");
        }
        .boxed()
    }
}
