//! Transport: how strand processes talk to each other.
//!
//! Every strand process owns one endpoint. Everything it says and hears (gossip, Raft RPCs,
//! store requests, messages between controllers and participants) goes through that
//! endpoint, tagged with the [`Service`] it belongs to:
//!
//! ```text
//!   membership ─┐                                   ┌─► Inbox(MEMBERSHIP)  datagrams
//!   raft ───────┤  request / send / send_datagram    ├─► Inbox(RAFT)        requests
//!   store ──────┼──────────► dyn Transport ─────────►├─► Inbox(STORE)       requests
//!   messaging ──┘   (QUIC + mutual TLS, or in-memory)└─► Inbox(MESSAGING)   one-way, requests
//! ```
//!
//! [`Transport`] is the interface; [`mem`] is an in-memory implementation for simulations
//! and tests (it can drop, delay and partition), [`quic`] is the real one (mutual TLS with
//! the certificates of [`tls`]). One conformance suite (`tests/transport/conformance.rs`)
//! runs against both, so code that works over one works over the other. Both enforce the
//! frame limit at both ends: a body above the sender's limit is `FrameTooLarge` before
//! anything is sent, one above the receiver's limit is `Refused`. [`faults`] cuts and loses
//! a real process's QUIC datagrams by rules in a file (`strand --net-faults FILE`, off
//! unless given), for fault runs of real processes.
//!
//! Errors keep three outcomes apart, because callers must treat them differently:
//! [`TransportError::Unreachable`] (nothing was delivered: safe to retry elsewhere),
//! [`TransportError::Refused`] (the remote received it and said no, or failed), and
//! [`TransportError::TimedOut`] (no answer in time: the outcome is unknown).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::codec::{self, CodecError};

pub mod faults;
pub mod frame;
pub mod limits;
pub mod mem;
pub mod quic;
pub mod reload;
pub mod tls;

/// The largest request, response or one-way message body, unless configured otherwise.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The subsystem a frame belongs to; each has its own [`Inbox`] on the receiving side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Service(pub u16);

impl Service {
    /// SWIM gossip (datagrams) and membership queries.
    pub const MEMBERSHIP: Service = Service(1);
    /// Raft RPCs between property store replicas.
    pub const RAFT: Service = Service(2);
    /// Property store client requests.
    pub const STORE: Service = Service(3);
    /// Cluster messages: state transitions, replies, user messages.
    pub const MESSAGING: Service = Service(4);
    /// Administrative queries of a process (status, members).
    pub const ADMIN: Service = Service(5);
    /// Application messages addressed by criteria (`crate::messaging`), apart from the
    /// controller → participant transition protocol on [`Service::MESSAGING`].
    pub const APP_MESSAGES: Service = Service(6);
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Service::MEMBERSHIP => f.write_str("membership"),
            Service::RAFT => f.write_str("raft"),
            Service::STORE => f.write_str("store"),
            Service::MESSAGING => f.write_str("messaging"),
            Service::ADMIN => f.write_str("admin"),
            Service::APP_MESSAGES => f.write_str("app-messages"),
            Service(n) => write!(f, "service-{n}"),
        }
    }
}

/// Where to reach a peer and, when known, which node it must be.
///
/// With a name, the peer's certificate must name that node or the connection is refused.
/// Without one (a command-line client dialling `--node ADDR`), any node certificate signed by
/// the cluster's CA is accepted, and the name it carries is reported in [`Peer::name`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerAddr {
    /// The peer's socket address.
    pub addr: SocketAddr,
    /// The node name its certificate must carry, if the caller knows it.
    pub name: Option<String>,
}

impl PeerAddr {
    /// A peer that must be the node `name` at `addr`.
    pub fn named(name: impl Into<String>, addr: SocketAddr) -> Self {
        PeerAddr {
            addr,
            name: Some(name.into()),
        }
    }

    /// Any node of the cluster at `addr`.
    pub fn any(addr: SocketAddr) -> Self {
        PeerAddr { addr, name: None }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// What a peer's certificate says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeerRole {
    /// A strand node (store replica, controller, participant, spectator): may serve and gossip.
    Node,
    /// A client (the CLI, an application's admin client): may only make requests.
    Client,
}

/// An authenticated remote party, as its certificate names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The name in the peer's verified certificate.
    pub name: String,
    /// Node or client certificate.
    pub role: PeerRole,
    /// The roles its certificate grants (what it may do, [`crate::authz`]).
    pub roles: crate::authz::RoleSet,
    /// The address the frame came from.
    pub addr: SocketAddr,
}

/// Something a peer sent to one of this endpoint's services.
#[derive(Debug)]
pub enum Incoming {
    /// A request that expects exactly one answer through `reply`.
    Request {
        /// Who sent it.
        from: Peer,
        /// The request body.
        body: Bytes,
        /// Answers the request; dropping it unanswered refuses the request.
        reply: Responder,
    },
    /// A reliable one-way message.
    Message {
        /// Who sent it.
        from: Peer,
        /// The message body.
        body: Bytes,
    },
    /// An unreliable datagram (gossip).
    Datagram {
        /// Who sent it.
        from: Peer,
        /// The datagram.
        body: Bytes,
    },
}

/// The answer a service gives to a request.
pub type Reply = Result<Bytes, String>;

/// The way back to a requester. Answer once with [`Responder::ok`] or [`Responder::refuse`];
/// a responder dropped without an answer refuses the request with "handler dropped".
#[derive(Debug)]
pub struct Responder {
    tx: Option<oneshot::Sender<Reply>>,
}

impl Responder {
    /// A responder and the receiver its answer arrives on (for transport implementations).
    pub fn channel() -> (Responder, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        (Responder { tx: Some(tx) }, rx)
    }

    /// Answers with a body.
    pub fn ok(mut self, body: Bytes) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(body));
        }
    }

    /// Refuses (or reports a failure) with a reason the requester sees as
    /// [`TransportError::Refused`].
    pub fn refuse(mut self, reason: impl Into<String>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(reason.into()));
        }
    }

    /// Answers with a typed value in strand's envelope.
    pub fn ok_typed<T: Serialize>(self, value: &T) {
        match codec::encode(value) {
            Ok(bytes) => self.ok(Bytes::from(bytes)),
            Err(e) => self.refuse(format!("cannot encode reply: {e}")),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err("handler dropped the request".to_string()));
        }
    }
}

/// The queue of one service's incoming frames. Dropping it unregisters the service: later
/// frames for it are refused ("no such service").
#[derive(Debug)]
pub struct Inbox {
    /// The service this inbox receives.
    pub service: Service,
    rx: mpsc::Receiver<Incoming>,
}

impl Inbox {
    /// An inbox and the sender a transport implementation delivers into.
    pub fn channel(service: Service, capacity: usize) -> (mpsc::Sender<Incoming>, Inbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (tx, Inbox { service, rx })
    }

    /// The next incoming frame; `None` once the transport has shut down.
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }

    /// The next incoming frame if one is queued.
    pub fn try_recv(&mut self) -> Option<Incoming> {
        self.rx.try_recv().ok()
    }
}

/// Serves one service without an inbox: called for each incoming request, message and
/// datagram as it arrives (see [`Transport::serve`]).
///
/// It runs on the transport's own task (over QUIC, the task of the connection the frame
/// came on), so it must not block or wait: it answers through the request's [`Responder`]
/// at once, or moves the work (and the responder) to a task of its own. A request answered
/// before `handle` returns costs no task and no hop to another thread.
pub trait Handler: Send + Sync + 'static {
    /// Handles one incoming frame. A panic fails this frame only (its responder, dropped,
    /// refuses the request).
    fn handle(&self, incoming: Incoming);
}

/// Keeps a [`Handler`] serving its service; dropping it unregisters the service (later
/// frames for it are refused, "no such service", and it may be registered again).
pub struct Serving {
    /// Set on drop: the transport hands the handler nothing more (a call already running
    /// on another thread finishes).
    closed: Arc<AtomicBool>,
    /// The only strong reference to the handler a transport that calls it directly keeps
    /// (it holds a weak one).
    _handler: Option<Arc<dyn Handler>>,
    /// The inbox task of [`Transport::serve`]'s default, ended on drop.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Serving {
    /// Serving as long as this value holds `handler`, for transports that call it directly:
    /// they keep a [`std::sync::Weak`] to it and check `closed` (set when this is dropped)
    /// before each call.
    pub fn holding(handler: Arc<dyn Handler>, closed: Arc<AtomicBool>) -> Serving {
        Serving {
            closed,
            _handler: Some(handler),
            task: None,
        }
    }
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving").finish_non_exhaustive()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Calls `handler` with `incoming`; a panic ends this frame only.
pub(crate) fn handle_caught(handler: &dyn Handler, incoming: Incoming) {
    let call = std::panic::AssertUnwindSafe(|| handler.handle(incoming));
    if std::panic::catch_unwind(call).is_err() {
        tracing::warn!("a service handler panicked");
    }
}

/// Runs `work` on the caller's task until it first waits, and only then spawns the rest
/// (on the current tokio runtime).
///
/// Work that finishes at once (an answer computed without waiting) costs no task and no
/// hop to another worker thread; work that waits goes on in a task of its own. Polling
/// first with a no-op waker is sound: the spawned task polls again with its own waker, and
/// a future wakes the waker of its latest poll. A panic in that first poll is caught and
/// ends this work only.
pub fn run_inline_first(work: impl Future<Output = ()> + Send + 'static) {
    let mut work = Box::pin(work);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.as_mut().poll(&mut cx)));
    match first {
        Ok(std::task::Poll::Ready(())) => {}
        Ok(std::task::Poll::Pending) => {
            tokio::spawn(work);
        }
        Err(_) => tracing::warn!("work run inline panicked"),
    }
}

/// Why a transport operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Nothing was delivered: no connection could be made or the peer is gone. Safe to retry.
    #[error("{peer} is unreachable: {reason}")]
    Unreachable {
        /// The peer dialled.
        peer: String,
        /// What went wrong.
        reason: String,
    },
    /// The peer received the frame and refused it or failed while handling it.
    #[error("{peer} refused: {reason}")]
    Refused {
        /// The peer that answered.
        peer: String,
        /// The reason it gave.
        reason: String,
    },
    /// No answer within the deadline: the request may or may not have been processed.
    #[error("no answer from {peer} within {after:?}: outcome unknown")]
    TimedOut {
        /// The peer asked.
        peer: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The connection broke after the frame was sent and before an answer came: the
    /// request may or may not have been processed.
    #[error("lost {peer} before an answer: {reason}; outcome unknown")]
    Lost {
        /// The peer asked.
        peer: String,
        /// What happened to the connection.
        reason: String,
    },
    /// The peer could not be authenticated, or refused our certificate.
    #[error("authentication with {peer} failed: {reason}")]
    Authentication {
        /// The peer dialled.
        peer: String,
        /// What the check found.
        reason: String,
    },
    /// The body is larger than the endpoint allows; nothing was sent.
    #[error("frame of {size} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The body's size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A typed body could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// The local endpoint has shut down.
    #[error("the transport is closed")]
    Closed,
    /// The service is already registered on this endpoint.
    #[error("service {service} is already registered")]
    AlreadyRegistered {
        /// The service.
        service: Service,
    },
    /// The endpoint could not be set up (the address cannot be bound, the TLS material or
    /// configuration is unusable, no runtime); nothing was sent.
    #[error("cannot set up the endpoint: {reason}")]
    Setup {
        /// What failed.
        reason: String,
    },
}

impl TransportError {
    /// Whether the request may have been processed although no answer came (a write that
    /// ends this way is "outcome unknown", never "failed").
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(
            self,
            TransportError::TimedOut { .. } | TransportError::Lost { .. }
        )
    }

    /// Whether the operation certainly had no effect at the peer (so a retry cannot
    /// duplicate it).
    pub fn is_not_delivered(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable { .. }
                | TransportError::Authentication { .. }
                | TransportError::FrameTooLarge { .. }
                | TransportError::Closed
                | TransportError::Setup { .. }
        )
    }
}

/// One endpoint: send requests, one-way messages and datagrams; receive per service.
///
/// Implementations reuse one connection per peer, reconnect transparently when a peer
/// restarts, and never block the caller of [`Transport::send_datagram`].
pub trait Transport: Send + Sync + 'static {
    /// This endpoint's node name (the name in its certificate).
    fn local_name(&self) -> &str;

    /// The address this endpoint listens on.
    fn local_addr(&self) -> SocketAddr;

    /// The largest body [`Transport::request`] and [`Transport::send`] accept.
    fn max_frame_size(&self) -> usize;

    /// The largest datagram [`Transport::send_datagram`] accepts.
    fn max_datagram_size(&self) -> usize;

    /// Starts receiving `service`'s frames into a bounded queue of `capacity`. When the
    /// queue is full, datagrams are dropped and requests and messages wait.
    fn register(&self, service: Service, capacity: usize) -> Result<Inbox, TransportError>;

    /// Starts serving `service` with `handler` instead of an inbox, until the returned
    /// [`Serving`] is dropped. Where the transport can, it calls the handler on its own
    /// task as each frame arrives (QUIC does: no inbox task, no hop between tasks); the
    /// default registers an inbox of `capacity` and calls the handler from a task reading
    /// it (the in-memory network keeps this, so its simulations schedule as before).
    fn serve(
        &self,
        service: Service,
        capacity: usize,
        handler: Arc<dyn Handler>,
    ) -> Result<Serving, TransportError> {
        let mut inbox = self.register(service, capacity)?;
        let closed = Arc::new(AtomicBool::new(false));
        let stop = closed.clone();
        let task = tokio::spawn(async move {
            while let Some(incoming) = inbox.recv().await {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                handle_caught(&*handler, incoming);
            }
        });
        Ok(Serving {
            closed,
            _handler: None,
            task: Some(task),
        })
    }

    /// Sends a request and waits for its answer, at most `timeout`.
    fn request(
        &self,
        to: &PeerAddr,
        service: Service,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Bytes, TransportError>>;

    /// Sends a reliable one-way message; resolves once the peer's inbox for `service` has
    /// it (or when delivery failed: `Refused` for no such service), at most `timeout`.
    fn send(
        &self,
        to: &PeerAddr,
        service: Service,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), TransportError>>;

    /// Sends an unreliable datagram without waiting: connects in the background if needed,
    /// and may drop it. Errors only for what is known at once (too large, closed).
    fn send_datagram(&self, to: &PeerAddr, service: Service, body: Bytes) -> Result<(), TransportError>;

    /// Closes every connection and the endpoint; inboxes then return `None`.
    fn shutdown(&self) -> BoxFuture<'static, ()>;
}

/// Sends a typed request in strand's envelope and decodes the typed answer.
pub async fn call<Req, Resp>(
    transport: &dyn Transport,
    to: &PeerAddr,
    service: Service,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, TransportError>
where
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
{
    let body = Bytes::from(codec::encode(request)?);
    let answer = transport.request(to, service, body, timeout).await?;
    Ok(codec::decode(&answer)?)
}

/// Sends a typed one-way message in strand's envelope.
pub async fn send_typed<T: Serialize + ?Sized>(
    transport: &dyn Transport,
    to: &PeerAddr,
    service: Service,
    message: &T,
    timeout: Duration,
) -> Result<(), TransportError> {
    let body = Bytes::from(codec::encode(message)?);
    transport.send(to, service, body, timeout).await
}
