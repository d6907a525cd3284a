//! The messaging shell: a [`Messaging`] handle sends by criteria over QUIC (one request
//! per recipient, all in parallel) and serves the handlers registered on this endpoint.
//! Every decision is made by the pure modules ([`super::resolve`], [`super::outcome`],
//! [`super::accept`]); this file only moves bytes, spawns handlers and writes the store.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use super::accept::{self, Decision, Seen};
use super::criteria::Criteria;
use super::metrics::MessagingMetrics;
use super::outcome::{Attempt, Next, Reply, SendResult, Tally};
use super::resolve::{self, Target};
use super::view::ViewHandle;
use super::wire::{self, AppAnswer, AppMessage, AppRequest};
use super::MessagingError;
use crate::codec;
use crate::model::fields::MSG_TYPE;
use crate::model::{Layout, Record};
use crate::propertystore::{Op, PropertyStore, Txn};
use crate::transport::{
    run_inline_first, Handler, Incoming, PeerAddr, Responder, Service, Serving, Transport, TransportError,
};

/// A handler's future: the reply body (any JSON) or an error that goes back as the reply.
pub type HandlerFuture = BoxFuture<'static, Result<serde_json::Value, String>>;

/// Handles messages of one type (and subtype).
///
/// The returned future runs on the transport's task (over QUIC, that of the connection the
/// message came on) until it first waits (a handler that answers at once costs no task of
/// its own), then in a task of its own: long synchronous work belongs behind an await
/// (`tokio::task::spawn_blocking`), or the next messages wait for it.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one message; the result is the reply the sender receives.
    fn handle(&self, message: AppMessage) -> HandlerFuture;
}

/// A closure as a [`MessageHandler`].
pub struct HandlerFn<F>(pub F);

impl<F, Fut> MessageHandler for HandlerFn<F>
where
    F: Fn(AppMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<serde_json::Value, String>> + Send + 'static,
{
    fn handle(&self, message: AppMessage) -> HandlerFuture {
        Box::pin((self.0)(message))
    }
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `MSG_TYPE` (Helix's names, or the application's own).
    pub msg_type: String,
    /// `MSG_SUBTYPE`.
    pub subtype: Option<String>,
    /// The body.
    pub body: serde_json::Value,
    /// Also kept in each recipient's `MESSAGES` until handled (survives its restart).
    pub persistent: bool,
    /// The message must not run after this long from now.
    pub expiry: Option<Duration>,
    /// How many times an undelivered copy is sent again (default 2).
    pub retries: u32,
}

impl Outgoing {
    /// A message of type `msg_type` with a `null` body.
    pub fn new(msg_type: impl Into<String>) -> Self {
        Outgoing {
            msg_type: msg_type.into(),
            subtype: None,
            body: serde_json::Value::Null,
            persistent: false,
            expiry: None,
            retries: 2,
        }
    }

    /// Sets the body.
    pub fn body(mut self, body: serde_json::Value) -> Self {
        self.body = body;
        self
    }

    /// Sets the subtype.
    pub fn subtype(mut self, s: impl Into<String>) -> Self {
        self.subtype = Some(s.into());
        self
    }

    /// Marks the message persistent.
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// Sets the expiry.
    pub fn expiry(mut self, d: Duration) -> Self {
        self.expiry = Some(d);
        self
    }

    /// Sets the retries.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }
}

type SessionFn = Arc<dyn Fn() -> Option<String> + Send + Sync>;
/// Handlers by (type, subtype); subtype `None` serves every subtype without its own.
type Handlers = HashMap<(String, Option<String>), Arc<dyn MessageHandler>>;
type ServesFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Builds a [`Messaging`] handle.
pub struct MessagingBuilder {
    name: String,
    sender_type: &'static str,
    cluster: String,
    transport: Arc<dyn Transport>,
    store: PropertyStore,
    session: Option<SessionFn>,
    serves: Option<ServesFn>,
    serve: bool,
    stored: bool,
}

impl MessagingBuilder {
    /// This member has a `MESSAGES` folder (a participant): persistent messages waiting
    /// there are delivered again whenever a handler is registered, since one may have
    /// arrived before its handler.
    pub fn stored_messages(mut self) -> Self {
        self.stored = true;
        self
    }

    /// `SRC_INSTANCE_TYPE` of what this handle sends (PARTICIPANT, CONTROLLER, SPECTATOR,
    /// ADMIN; default ADMIN).
    pub fn sender_type(mut self, t: &'static str) -> Self {
        self.sender_type = t;
        self
    }

    /// The recipient's current session, for session-specific messages.
    pub fn session(mut self, f: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        self.session = Some(Arc::new(f));
        self
    }

    /// Which clusters' messages this endpoint takes (default: its own cluster).
    pub fn serves(mut self, f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.serves = Some(Arc::new(f));
        self
    }

    /// Registers [`Service::APP_MESSAGES`] on the endpoint and runs handlers (a node
    /// endpoint; a client that only sends leaves this off).
    pub fn receive(mut self) -> Self {
        self.serve = true;
        self
    }

    /// Starts the handle (and, with [`MessagingBuilder::receive`], its server task).
    pub fn build(self) -> Result<Messaging, MessagingError> {
        let cluster = self.cluster.clone();
        let serves = self
            .serves
            .unwrap_or_else(|| Arc::new(move |c: &str| c == cluster));
        let inner = Arc::new(Inner {
            name: self.name,
            sender_type: self.sender_type,
            cluster: self.cluster.clone(),
            transport: self.transport.clone(),
            store: self.store.clone(),
            views: Mutex::new(HashMap::new()),
            handlers: RwLock::new(HashMap::new()),
            seen: Mutex::new(Seen::new(16_384)),
            waiters: Mutex::new(HashMap::new()),
            session: self.session.unwrap_or_else(|| Arc::new(|| None)),
            serves,
            counter: AtomicU64::new(0),
            server: Mutex::new(None),
            stored: self.stored,
            metrics: MessagingMetrics::register(),
        });
        // The view starts with the first send (or `view()`): a member that never sends
        // keeps no watch.
        if self.serve {
            // Served on the transport's own task: a message whose handler answers at once
            // is read, run and answered without a hop to another task.
            let server = Arc::new(Server(Arc::downgrade(&inner)));
            let serving = self
                .transport
                .serve(Service::APP_MESSAGES, 4096, server)
                .map_err(|e| MessagingError::Transport {
                    reason: e.to_string(),
                })?;
            *inner.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(serving);
        }
        Ok(Messaging { inner })
    }
}

struct Inner {
    name: String,
    sender_type: &'static str,
    cluster: String,
    transport: Arc<dyn Transport>,
    store: PropertyStore,
    views: Mutex<HashMap<String, Arc<ViewHandle>>>,
    handlers: RwLock<Handlers>,
    seen: Mutex<Seen>,
    waiters: Mutex<HashMap<String, Vec<Responder>>>,
    session: SessionFn,
    serves: ServesFn,
    counter: AtomicU64,
    /// Keeps `APP_MESSAGES` served while this handle lives.
    server: Mutex<Option<Serving>>,
    stored: bool,
    metrics: MessagingMetrics,
}

/// A messaging handle: send by criteria, register handlers. Clones share it.
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging")
            .field("name", &self.inner.name)
            .field("cluster", &self.inner.cluster)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    crate::participant::now_us() / 1000
}

fn attempt_of(r: Result<Bytes, TransportError>) -> Attempt {
    match r {
        Ok(bytes) => match codec::decode::<AppAnswer>(&bytes) {
            Ok(AppAnswer::Reply(b)) => Attempt::Answered(b),
            Ok(AppAnswer::Accepted) => Attempt::Answered("\"accepted\"".into()),
            Ok(AppAnswer::Failed(r)) => Attempt::Failed(r),
            Err(e) => Attempt::Failed(format!("unreadable answer: {e}")),
        },
        Err(TransportError::Refused { reason, .. }) => Attempt::Failed(reason),
        Err(TransportError::TimedOut { .. }) => Attempt::TimedOut,
        Err(e @ TransportError::Lost { .. }) => Attempt::Lost(e.to_string()),
        Err(e) if e.is_not_delivered() => Attempt::NotDelivered(e.to_string()),
        Err(e) => Attempt::Failed(e.to_string()),
    }
}

impl Messaging {
    /// A handle named `name` (the endpoint's name) in `cluster`.
    pub fn builder(
        name: impl Into<String>,
        cluster: impl Into<String>,
        transport: Arc<dyn Transport>,
        store: PropertyStore,
    ) -> MessagingBuilder {
        MessagingBuilder {
            name: name.into(),
            sender_type: "ADMIN",
            cluster: cluster.into(),
            transport,
            store,
            session: None,
            serves: None,
            serve: false,
            stored: false,
        }
    }

    /// This handle's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Registers `handler` for messages of `msg_type` (and `subtype`; `None`: any subtype
    /// without a handler of its own). A later registration replaces an earlier one.
    pub fn register_handler(&self, msg_type: &str, subtype: Option<&str>, handler: impl MessageHandler) {
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (msg_type.to_string(), subtype.map(str::to_string)),
                Arc::new(handler),
            );
        if self.inner.stored {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let me = self.clone();
                rt.spawn(async move { me.deliver_waiting().await });
            }
        }
    }

    /// The current view of `cluster`'s records (waits for the first read).
    pub async fn view(
        &self,
        cluster: &str,
        timeout: Duration,
    ) -> Result<Arc<resolve::ClusterView>, MessagingError> {
        self.inner.view(cluster).current(timeout).await
    }

    /// Who `criteria` addresses now.
    pub async fn recipients(&self, criteria: &Criteria) -> Result<Vec<Target>, MessagingError> {
        let cluster = criteria.cluster.as_deref().unwrap_or(&self.inner.cluster);
        let view = self.view(cluster, Duration::from_secs(5)).await?;
        resolve::resolve(criteria, &view, &self.inner.name, false)
    }

    /// Sends without waiting for handlers: the result lists who accepted the message (or,
    /// for a persistent message to an instance that is down, who will get it later).
    pub async fn send(&self, criteria: &Criteria, message: Outgoing) -> Result<SendResult, MessagingError> {
        self.inner
            .send(criteria, message, false, Duration::from_secs(5), &mut |_| {})
            .await
    }

    /// Sends and waits up to `timeout` for every recipient's reply.
    pub async fn send_and_wait(
        &self,
        criteria: &Criteria,
        message: Outgoing,
        timeout: Duration,
    ) -> Result<SendResult, MessagingError> {
        self.inner
            .send(criteria, message, true, timeout, &mut |_| {})
            .await
    }

    /// [`Messaging::send_and_wait`], calling `on_reply` as each reply arrives.
    pub async fn send_and_wait_with(
        &self,
        criteria: &Criteria,
        message: Outgoing,
        timeout: Duration,
        on_reply: &mut (dyn FnMut(&Reply) + Send),
    ) -> Result<SendResult, MessagingError> {
        self.inner.send(criteria, message, true, timeout, on_reply).await
    }

    /// Hands over a message record found in this instance's `MESSAGES` folder (the store
    /// copy of a persistent message); a malformed one is deleted.
    pub fn deliver_stored(&self, record: &Record) {
        match AppMessage::from_record(record) {
            Ok(m) => self.inner.clone().deliver(m, None),
            Err(e) => {
                tracing::warn!(error = %e, "deleting a malformed message");
                let path = Layout::new(&self.inner.cluster).message(&self.inner.name, &record.id);
                let store = self.inner.store.clone();
                tokio::spawn(async move {
                    let _ = store.delete(&path, None, false).await;
                });
            }
        }
    }

    /// Delivers every application message already waiting in this instance's `MESSAGES`
    /// folder (written while it was down).
    pub async fn deliver_waiting(&self) {
        let dir = Layout::new(&self.inner.cluster).messages(&self.inner.name);
        let Ok((entries, _)) = self.inner.store.range(&dir).await else {
            return;
        };
        for (path, r) in entries {
            if path == dir {
                continue;
            }
            if let Ok(Some(rec)) = Record::from_stored(&r.value) {
                if is_application_message(&rec) {
                    self.deliver_stored(&rec);
                }
            }
        }
    }
}

/// Whether a record in a `MESSAGES` folder is for the messaging service (anything but a
/// state transition, which the participant's ledger runs).
pub fn is_application_message(r: &Record) -> bool {
    r.simple(MSG_TYPE).is_some_and(|t| {
        !t.eq_ignore_ascii_case("STATE_TRANSITION")
            && !t.eq_ignore_ascii_case("STATE_TRANSITION_CANCELLATION")
    })
}

impl Inner {
    fn view(&self, cluster: &str) -> Arc<ViewHandle> {
        let mut views = self.views.lock().unwrap_or_else(|e| e.into_inner());
        views
            .entry(cluster.to_string())
            .or_insert_with(|| Arc::new(ViewHandle::start(self.store.clone(), cluster)))
            .clone()
    }

    async fn send(
        &self,
        criteria: &Criteria,
        out: Outgoing,
        wait: bool,
        timeout: Duration,
        on_reply: &mut (dyn FnMut(&Reply) + Send),
    ) -> Result<SendResult, MessagingError> {
        wire::check_type(&out.msg_type)?;
        let started = std::time::Instant::now();
        let body = serde_json::to_string(&out.body).map_err(|e| MessagingError::BadMessage {
            reason: format!("the body cannot be written as JSON: {e}"),
        })?;
        // A timeout past what the clock can represent waits as long as the clock allows.
        let now = tokio::time::Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        let cluster = criteria.cluster.clone().unwrap_or_else(|| self.cluster.clone());
        let view = self.view(&cluster).current(timeout).await?;
        let targets = resolve::resolve(criteria, &view, &self.name, out.persistent)?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{:x}-{n}", self.name, crate::participant::now_us());
        let created = now_ms();
        let messages: Vec<AppMessage> = targets
            .iter()
            .enumerate()
            .map(|(k, t)| AppMessage {
                id: format!("{id}-{k}"),
                correlation_id: id.clone(),
                cluster: cluster.clone(),
                msg_type: out.msg_type.clone(),
                subtype: out.subtype.clone(),
                src_name: self.name.clone(),
                src_type: self.sender_type.to_string(),
                tgt_name: t.instance.clone(),
                tgt_session: if criteria.session_specific && !t.session.is_empty() {
                    t.session.clone()
                } else {
                    "*".into()
                },
                resource: t.resource.clone(),
                partition: t.partition.clone(),
                partition_state: t.partition_state.clone(),
                body: body.clone(),
                created_ms: created,
                expiry_ms: out.expiry.map(|d| created + d.as_millis() as u64),
                persistent: out.persistent,
                retry: 0,
            })
            .collect();
        let layout = Layout::new(&cluster);
        if out.persistent && !messages.is_empty() {
            let success = messages
                .iter()
                .map(|m| Op::Set {
                    path: layout.message(&m.tgt_name, &m.id),
                    value: m.to_record().to_bytes(),
                    expected_version: None,
                })
                .collect();
            self.store
                .txn(Txn {
                    conditions: Vec::new(),
                    success,
                    failure: Vec::new(),
                })
                .await
                .map_err(|e| MessagingError::Store {
                    reason: format!("cannot keep the persistent copies: {e}"),
                })?;
        }
        let mut tally = Tally::new(id, targets, out.retries);
        let mut queued = Vec::new();
        let mut inflight = FuturesUnordered::new();
        for (i, m) in messages.into_iter().enumerate() {
            let t = &tally.targets()[i];
            match t.addr {
                Some(addr) => inflight.push(self.request(
                    i,
                    PeerAddr::named(&t.instance, addr),
                    m,
                    wait,
                    deadline,
                    None,
                )),
                None if out.persistent && t.session.is_empty() => queued.push(i),
                None => {
                    let reason = format!("{}'s record has no address", t.instance);
                    tally.handle_attempt(i, Attempt::Failed(reason), true);
                }
            }
        }
        let mut queued_labels = Vec::new();
        for i in queued {
            queued_labels.push(tally.targets()[i].label());
            // Not live: the copy in the store reaches it when it comes back.
            tally.handle_attempt(i, Attempt::Answered("\"queued\"".into()), true);
        }
        // One timer for the whole send, not one per reply.
        let expire = tokio::time::sleep_until(deadline);
        tokio::pin!(expire);
        loop {
            let next = tokio::select! {
                biased;
                next = inflight.next() => next,
                _ = &mut expire => None,
            };
            let Some((i, to, m, result)) = next else { break };
            let expired = m.expiry_ms.is_some_and(|e| now_ms() > e);
            let (reply, step) = tally.handle_attempt(i, attempt_of(result), expired);
            if let Some(r) = reply {
                self.metrics.replied(started.elapsed());
                on_reply(&r);
            }
            if let Next::Retry(k) = step {
                let mut m = m;
                m.retry = k;
                let backoff = Duration::from_millis(20 * u64::from(k));
                inflight.push(self.request(i, to, m, wait, deadline, Some(backoff)));
            }
        }
        let mut result = tally.finish();
        result.replies.retain(|r| !queued_labels.contains(&r.from));
        result.queued = queued_labels;
        self.metrics.sent(wait, started.elapsed(), &result);
        Ok(result)
    }

    fn request(
        &self,
        i: usize,
        to: PeerAddr,
        m: AppMessage,
        wait: bool,
        deadline: tokio::time::Instant,
        backoff: Option<Duration>,
    ) -> BoxFuture<'static, (usize, PeerAddr, AppMessage, Result<Bytes, TransportError>)> {
        let transport = self.transport.clone();
        Box::pin(async move {
            if let Some(b) = backoff {
                tokio::time::sleep(b).await;
            }
            let req = AppRequest::Deliver { message: m, wait };
            let result = match codec::encode(&req) {
                Ok(bytes) => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    transport
                        .request(
                            &to,
                            Service::APP_MESSAGES,
                            Bytes::from(bytes),
                            left.max(Duration::from_millis(1)),
                        )
                        .await
                }
                Err(e) => Err(TransportError::Codec(e)),
            };
            let AppRequest::Deliver { message, .. } = req;
            (i, to, message, result)
        })
    }

    /// Runs (or refuses, or answers again) one incoming message; `responder` is the QUIC
    /// request's (with whether the sender waits), `None` for a store copy.
    fn deliver(self: Arc<Self>, m: AppMessage, responder: Option<(Responder, bool)>) {
        if responder.is_none() && !self.has_handler(&m) {
            // A store copy waits for its handler (registered later: delivered again then).
            return;
        }
        let session = (self.session)();
        let decision = {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let me = accept::Recipient {
                name: &self.name,
                session: session.as_deref(),
                serves_cluster: &*self.serves,
                now_ms: now_ms(),
            };
            let d = accept::decide(&m, &me, &seen);
            drop(seen);
            d
        };
        match decision {
            Decision::Duplicate(Some(answer)) => {
                if let Some((r, _)) = responder {
                    r.ok_typed(&answer);
                }
            }
            Decision::Duplicate(None) => match responder {
                Some((r, true)) => self
                    .waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(m.id.clone())
                    .or_default()
                    .push(r),
                Some((r, false)) => r.ok_typed(&AppAnswer::Accepted),
                None => {}
            },
            Decision::Refuse(reason) => {
                tracing::debug!(id = %m.id, %reason, "message refused");
                if let Some((r, _)) = responder {
                    r.ok_typed(&AppAnswer::Failed(reason));
                }
                if m.persistent && m.tgt_name == self.name {
                    self.delete_stored(&m);
                }
            }
            Decision::Run => {
                self.seen.lock().unwrap_or_else(|e| e.into_inner()).start(&m.id);
                let handler = {
                    let h = self.handlers.read().unwrap_or_else(|e| e.into_inner());
                    h.get(&(m.msg_type.clone(), m.subtype.clone()))
                        .or_else(|| h.get(&(m.msg_type.clone(), None)))
                        .cloned()
                };
                let responder = match responder {
                    Some((r, false)) => {
                        if handler.is_some() {
                            r.ok_typed(&AppAnswer::Accepted);
                        } else {
                            // No handler: say so even to a sender that does not wait.
                            r.ok_typed(&AppAnswer::Failed(format!(
                                "{} has no handler for message type {}",
                                self.name, m.msg_type
                            )));
                        }
                        None
                    }
                    Some((r, true)) => Some(r),
                    None => None,
                };
                run_inline_first(async move {
                    let answer = match handler {
                        None => AppAnswer::Failed(format!(
                            "{} has no handler for message type {}",
                            self.name, m.msg_type
                        )),
                        Some(h) => match h.handle(m.clone()).await {
                            Ok(v) => AppAnswer::Reply(v.to_string()),
                            Err(e) => AppAnswer::Failed(format!("handler error on {}: {e}", self.name)),
                        },
                    };
                    self.seen
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .finish(&m.id, answer.clone());
                    let waiting = self
                        .waiters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&m.id)
                        .unwrap_or_default();
                    for r in responder.into_iter().chain(waiting) {
                        r.ok_typed(&answer);
                    }
                    if m.persistent {
                        self.delete_stored(&m);
                    }
                });
            }
        }
    }

    fn has_handler(&self, m: &AppMessage) -> bool {
        let h = self.handlers.read().unwrap_or_else(|e| e.into_inner());
        h.contains_key(&(m.msg_type.clone(), m.subtype.clone()))
            || h.contains_key(&(m.msg_type.clone(), None))
    }

    fn delete_stored(&self, m: &AppMessage) {
        let path = Layout::new(&m.cluster).message(&m.tgt_name, &m.id);
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.delete(&path, None, false).await {
                tracing::debug!(%path, error = %e, "cannot delete a handled message");
            }
        });
    }
}

/// Serves `APP_MESSAGES` on the transport's task: decodes each request and delivers it (the
/// handler runs there until it first waits, see [`run_inline_first`]).
struct Server(Weak<Inner>);

impl Handler for Server {
    fn handle(&self, incoming: Incoming) {
        // Gone: the request's responder, dropped, refuses it.
        let Some(inner) = self.0.upgrade() else { return };
        let Incoming::Request { body, reply, .. } = incoming else {
            return;
        };
        match codec::decode::<AppRequest>(&body) {
            Ok(AppRequest::Deliver { message, wait }) => {
                if let Err(e) = wire::check_body(&message.body) {
                    reply.ok_typed(&AppAnswer::Failed(e.to_string()));
                    return;
                }
                inner.deliver(message, Some((reply, wait)));
            }
            Err(e) => reply.refuse(format!("bad application message: {e}")),
        }
    }
}
