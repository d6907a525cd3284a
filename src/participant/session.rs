//! The participant's session task: the one owner of the [`Ledger`], the handler tasks it
//! starts, and the session's registration in the store (see the module diagram in
//! [`super`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::watch;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::handler::{CancelHandle, Cancellation, StateModelHandler, Transition};
use super::lease::{self, Lease, CHECK_TIMEOUT};
use super::ledger::{Discard, Ledger, Outcome, TransitionMessage, Verdict};
use super::register::{self, Registered};
use super::wire::{ParticipantReply, ParticipantRequest};
use super::writer::{self, SessionFence, WriteJob};
use super::{now_us, ParticipantError, Phase, SessionStatus, TransitionEvent};
use crate::codec;
use crate::membership::{Membership, MembershipConfig, MembershipEvent, RecvError, Roles, Subscription};
use crate::messaging::{service::is_application_message, Messaging};
use crate::model::fields::SESSION_ID;
use crate::model::{CurrentState, Layout, Record};
use crate::propertystore::{EventKind, PropertyStore};
use crate::statemodel::{self, StateModelDefinition, DROPPED};
use crate::transport::{Inbox, Incoming, Service, Transport};
use futures::FutureExt;

/// What [`start`] needs.
#[derive(Clone)]
pub(super) struct Settings {
    pub cluster: String,
    pub instance: String,
    pub store: PropertyStore,
    pub transport: Arc<dyn Transport>,
    pub handler: Arc<dyn StateModelHandler>,
    pub membership: MembershipConfig,
    pub max_per_resource: usize,
    pub zone: Option<String>,
    pub tags: BTreeSet<String>,
    pub join_timeout: Duration,
}

/// The handle a [`Participant`] holds.
pub(super) struct Handle {
    pub instance: String,
    pub events: broadcast::Sender<TransitionEvent>,
    /// A receiver taken before the session task started, so the first subscriber misses
    /// nothing.
    pub first_events: std::sync::Mutex<Option<broadcast::Receiver<TransitionEvent>>>,
    pub status: watch::Receiver<SessionStatus>,
    pub membership: Arc<Membership>,
    pub messaging: Messaging,
    stop: watch::Sender<Option<bool>>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    pub(super) async fn shutdown(&self, graceful: bool) {
        let _ = self.stop.send(Some(graceful));
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop.send(Some(false));
    }
}

fn now_ms() -> u64 {
    now_us() / 1000
}

/// Joins the cluster and starts the session task.
pub(super) async fn start(s: Settings) -> Result<Handle, ParticipantError> {
    let layout = Layout::new(&s.cluster);
    register::admit(&s.store, &layout, &s.instance, s.zone.as_deref(), &s.tags).await?;
    let inbox = s.transport.register(Service::MESSAGING, 4096)?;
    let seeds = register::seeds(&s.store, &layout, &s.instance).await?;
    let (generation, _) = register::next_generation(&s.store, &layout, &s.instance, now_ms()).await?;
    let (membership, gossip) = Membership::builder(s.transport.clone())
        .roles(Roles::PARTICIPANT)
        .clusters(vec![s.cluster.clone()])
        .seeds(seeds.clone())
        .generation(generation)
        .config(s.membership.clone())
        .start_subscribed()
        .map_err(|e| ParticipantError::Membership {
            reason: e.to_string(),
        })?;
    if !seeds.is_empty() {
        let joined = membership
            .wait_until(s.join_timeout, |m| {
                m.iter().any(|x| !x.is_local && x.status.is_active())
            })
            .await;
        if !joined {
            tracing::warn!(instance = %s.instance, "no gossip peer answered yet; registering anyway");
        }
    }
    let membership = Arc::new(membership);
    let registering = tokio::time::Instant::now();
    let registered = register::register(
        &s.store,
        &layout,
        &s.instance,
        s.transport.local_addr(),
        membership.local().generation,
        now_ms,
    )
    .await?;
    register::clear_old_sessions(&s.store, &layout, &s.instance, &registered.session).await;
    let lease = first_lease(&s.store, &layout, &s.instance, &registered, registering).await;
    tracing::info!(instance = %s.instance, session = %registered.session, "session registered");

    let (events, first_events) = broadcast::channel(8192);
    let (status_tx, status) = watch::channel(SessionStatus::Live(registered.session.clone()));
    let current = status.clone();
    let messaging = Messaging::builder(&s.instance, &s.cluster, s.transport.clone(), s.store.clone())
        .sender_type("PARTICIPANT")
        .session(move || match &*current.borrow() {
            SessionStatus::Live(s) => Some(s.clone()),
            _ => None,
        })
        .receive()
        .stored_messages()
        .build()
        .map_err(ParticipantError::Messaging)?;
    let (stop, stop_rx) = watch::channel(None);
    let (writes, writes_rx) = mpsc::channel(4096);
    let writer = tokio::spawn(writer::run(s.store.clone(), writes_rx));
    let (completions_tx, completions) = mpsc::channel(4096);
    let (store_tx, store_rx) = mpsc::channel(1024);
    let mut task = SessionTask {
        fence: fence_of(&layout, &s.instance, &registered),
        ledger: Ledger::new(&s.instance, &registered.session),
        layout,
        settings: s.clone(),
        membership: membership.clone(),

        registered,
        lease,
        events: events.clone(),
        status: status_tx,
        writes,
        writer,
        completions_tx,
        running: BTreeMap::new(),
        models: BTreeMap::new(),
        semaphores: BTreeMap::new(),
        current: BTreeMap::new(),
        store_tx,
        watchers: Vec::new(),
        stop: stop_rx.clone(),
        messaging: messaging.clone(),
    };
    task.start_watches();
    let gossip_events = membership.subscribe();
    drop(gossip);
    let handle = tokio::spawn(task.run(stop_rx, inbox, completions, store_rx, gossip_events));
    Ok(Handle {
        instance: s.instance,
        events,
        first_events: std::sync::Mutex::new(Some(first_events)),
        status,
        membership,
        messaging,
        stop,
        task: std::sync::Mutex::new(Some(handle)),
    })
}

/// A change the store watches report.
enum StoreNews {
    /// A message record appeared.
    Message(Record),
    /// Our live-instance record changed or went: `Some(session)` it names, `None` deleted.
    Live(Option<String>),
    /// The store confirmed, by a read sent at this instant, that our live-instance record
    /// names our session (see [`super::lease`]).
    Confirmed(tokio::time::Instant),
}

struct Running {
    message: TransitionMessage,
    cancel: CancelHandle,
}

struct SessionTask {
    ledger: Ledger,
    layout: Layout,
    settings: Settings,
    membership: Arc<Membership>,
    registered: Registered,
    /// What the writer checks before writing this session's current states.
    fence: Arc<SessionFence>,
    /// Until when this session may act on its replicas without a new confirmation.
    lease: Lease,
    events: broadcast::Sender<TransitionEvent>,
    status: watch::Sender<SessionStatus>,
    writes: mpsc::Sender<WriteJob>,
    writer: JoinHandle<()>,
    completions_tx: mpsc::Sender<(String, Outcome)>,
    running: BTreeMap<String, Running>,
    models: BTreeMap<String, Option<StateModelDefinition>>,
    semaphores: BTreeMap<String, Arc<Semaphore>>,
    /// resource → the current-state record of this session.
    current: BTreeMap<String, CurrentState>,
    store_tx: mpsc::Sender<StoreNews>,
    watchers: Vec<JoinHandle<()>>,
    /// The stop signal, for loops outside the main select (re-registration).
    stop: watch::Receiver<Option<bool>>,
    /// Application messages found in MESSAGES go here, not to the ledger.
    messaging: Messaging,
}

impl SessionTask {
    async fn run(
        mut self,
        mut stop: watch::Receiver<Option<bool>>,
        mut inbox: Inbox,
        mut completions: mpsc::Receiver<(String, Outcome)>,
        mut store_rx: mpsc::Receiver<StoreNews>,
        mut gossip: Subscription,
    ) {
        let graceful = loop {
            tokio::select! {
                biased;
                r = stop.changed() => {
                    let v = if r.is_ok() { *stop.borrow() } else { Some(false) };
                    if let Some(g) = v { break g; }
                }
                // Before any message: one that arrives after the lease ran low is not run.
                _ = tokio::time::sleep_until(self.lease.step_down_at()) => {
                    self.lose_session("the store has not confirmed this session within its lease", false).await;
                }
                Some((id, outcome)) = completions.recv() => self.on_finished(&id, outcome),
                Some(incoming) = inbox.recv() => self.on_request(incoming).await,
                Some(news) = store_rx.recv() => match news {
                    StoreNews::Message(record) => { self.on_message(record).await; }
                    StoreNews::Live(session) => {
                        if session.as_deref() != Some(self.registered.session.as_str()) {
                            self.lose_session("the session was ended in the store", true).await;
                        }
                    }
                    StoreNews::Confirmed(sent) => self.lease.confirmed(sent),
                },
                e = gossip.recv() => match e {
                    Ok(MembershipEvent::Isolated(_)) => {
                        self.lose_session("no gossip peer reached this node (isolated)", false).await;
                    }
                    Ok(MembershipEvent::Rejoined(_)) => {
                        self.lose_session("the gossip declared this node down", false).await;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break false,
                },
            }
        };
        for w in self.watchers.drain(..) {
            w.abort();
        }
        for (_, r) in std::mem::take(&mut self.running) {
            r.cancel.cancel();
        }
        let store = self.settings.store.clone();
        if graceful {
            // Stop serving before the session ends, so no other replica is promoted while
            // this one may still act on its state (and so it is reported).
            self.step_down_all().await;
            register::unregister(
                &store,
                &self.layout,
                &self.settings.instance,
                &self.registered.live_value,
            )
            .await;
            // Stepped down: the current states go too, so the leader does not count them
            // for the lease of a session that is over (see `lease`).
            register::clear_sessions(&store, &self.layout, &self.settings.instance, None).await;
            let _ = self.membership.leave().await;
        } else {
            self.membership.shutdown().await;
        }
        let _ = self.status.send(SessionStatus::Stopped);
        drop(self.writes);
        if graceful {
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.writer).await;
        }
        self.writer.abort();
        self.settings.transport.shutdown().await;
    }

    fn start_watches(&mut self) {
        for w in self.watchers.drain(..) {
            w.abort();
        }
        // Persistent application messages written while no session watched (the instance
        // was down): the watch below starts after the registration, so read them now.
        let messaging = self.messaging.clone();
        self.watchers
            .push(tokio::spawn(async move { messaging.deliver_waiting().await }));
        let from = self.registered.revision + 1;
        let store = self.settings.store.clone();
        let messages = format!("{}/", self.layout.messages(&self.settings.instance));
        let tx = self.store_tx.clone();
        self.watchers.push(tokio::spawn(async move {
            let mut w = store.watch(&messages, from);
            loop {
                match w.next_batch().await {
                    Ok(events) => {
                        for e in events {
                            if let EventKind::Put { value, .. } = e.kind {
                                if let Ok(Some(r)) = Record::from_stored(&value) {
                                    if tx.send(StoreNews::Message(r)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "message watch failed; resuming");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if matches!(e, crate::propertystore::ClientError::Store(_)) {
                            // The history was compacted past the watch: a watch "from now"
                            // would never show the messages written meanwhile. Read what is
                            // there (the ledger ignores ids it has seen), then watch on.
                            let Ok((entries, revision)) = store.range(messages.trim_end_matches('/')).await
                            else {
                                continue;
                            };
                            for (path, r) in entries {
                                if !path.starts_with(&messages) {
                                    continue;
                                }
                                if let Ok(Some(r)) = Record::from_stored(&r.value) {
                                    if tx.send(StoreNews::Message(r)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            w = store.watch(&messages, revision + 1);
                        }
                    }
                }
            }
        }));
        let store = self.settings.store.clone();
        let live = self.layout.live_instance(&self.settings.instance);
        let tx = self.store_tx.clone();
        self.watchers.push(tokio::spawn(async move {
            let mut w = store.watch(&live, from);
            loop {
                match w.next_batch().await {
                    Ok(events) => {
                        for e in events.into_iter().filter(|e| e.path == live) {
                            let session = match e.kind {
                                EventKind::Put { value, .. } => Record::from_stored(&value)
                                    .ok()
                                    .flatten()
                                    .and_then(|r| r.simple(SESSION_ID).map(str::to_string)),
                                EventKind::Delete => None,
                            };
                            if tx.send(StoreNews::Live(session)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live-instance watch failed; resuming");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if matches!(e, crate::propertystore::ClientError::Store(_)) {
                            // Compacted past the watch: the session may have been ended
                            // meanwhile. Read the record as it is now, then watch on.
                            let Ok((entries, revision)) = store.range(&live).await else {
                                continue;
                            };
                            let session = entries
                                .iter()
                                .find(|(p, _)| *p == live)
                                .and_then(|(_, r)| Record::from_stored(&r.value).ok().flatten())
                                .and_then(|r| r.simple(SESSION_ID).map(str::to_string));
                            if tx.send(StoreNews::Live(session)).await.is_err() {
                                return;
                            }
                            w = store.watch(&live, revision + 1);
                        }
                    }
                }
            }
        }));
        self.watchers.push(tokio::spawn(renew_lease(
            self.settings.store.clone(),
            self.layout.live_instance(&self.settings.instance),
            self.registered.live_value.clone(),
            self.store_tx.clone(),
        )));
    }

    fn emit(&self, m: &TransitionMessage, from: &str, to: &str, phase: Phase, reason: Option<String>) {
        let _ = self.events.send(TransitionEvent {
            ts_us: now_us(),
            instance: self.settings.instance.clone(),
            session: self.ledger.session().to_string(),
            resource: m.resource.clone(),
            partition: m.partition.clone(),
            from: from.to_string(),
            to: to.to_string(),
            phase,
            msg_id: m.id.clone(),
            epoch: m.epoch,
            reason,
        });
    }

    /// The state model `name`: cached, else read from the store until `deadline` (the
    /// built-in model of that name stands in if the store does not answer by then).
    async fn model(&mut self, name: &str, deadline: tokio::time::Instant) -> Option<StateModelDefinition> {
        if let Some(m) = self.models.get(name) {
            return m.clone();
        }
        let path = self.layout.state_model(name);
        let Ok(read) = tokio::time::timeout_at(deadline, self.settings.store.get(&path)).await else {
            return statemodel::builtin(name);
        };
        let found = match read {
            Ok(Some(r)) => Record::from_stored(&r.value)
                .ok()
                .flatten()
                .and_then(|rec| StateModelDefinition::from_record(&rec).ok()),
            Ok(None) => None,
            // Unknown (the store did not answer): not cached, asked again next time.
            Err(_) => return statemodel::builtin(name),
        }
        .or_else(|| statemodel::builtin(name));
        // Only what the store answered is kept (a model missing now may be added later).
        if found.is_some() {
            self.models.insert(name.to_string(), found.clone());
        }
        found
    }

    async fn on_request(&mut self, incoming: Incoming) {
        let Incoming::Request { body, reply, .. } = incoming else {
            return;
        };
        let request: ParticipantRequest = match codec::decode(&body) {
            Ok(r) => r,
            Err(e) => return reply.refuse(format!("bad participant request: {e}")),
        };
        let ParticipantRequest::Transitions(texts) = request;
        let mut verdicts = Vec::with_capacity(texts.len());
        for text in texts {
            let v = match Record::from_json(&text) {
                Ok(record) => match self.on_message(record).await {
                    Verdict::Run(_) => "run".to_string(),
                    Verdict::Duplicate => "duplicate".to_string(),
                    Verdict::Discard(d) => format!("discarded: {d}"),
                },
                Err(e) => format!("discarded: malformed: {e}"),
            };
            verdicts.push(v);
        }
        reply.ok_typed(&ParticipantReply::Verdicts(verdicts));
    }

    async fn on_message(&mut self, record: Record) -> Verdict {
        if is_application_message(&record) {
            self.messaging.deliver_stored(&record);
            return Verdict::Duplicate;
        }
        let model_name = record
            .simple(crate::model::fields::STATE_MODEL_DEF)
            .unwrap_or_default()
            .to_string();
        // A slow store never holds the session task past the moment it must step down.
        let model = self.model(&model_name, self.lease.step_down_at()).await;
        if tokio::time::Instant::now() >= self.lease.step_down_at() {
            // The lease ran low meanwhile: the session is about to be lost, and whatever
            // this message asks must not begin. It stays in the store, for the next session
            // to discard.
            return Verdict::Duplicate;
        }
        let verdict = self.ledger.handle_message(&record, |_| {
            model
                .as_ref()
                .map_or_else(|| "OFFLINE".to_string(), |m| m.initial_state().to_string())
        });
        match &verdict {
            Verdict::Run(m) => self.spawn_transition((**m).clone()),
            Verdict::Duplicate => {}
            Verdict::Discard(d) => {
                if let Ok(m) = TransitionMessage::parse(&record) {
                    self.emit(&m, &m.from, &m.to, Phase::Discarded, Some(d.to_string()));
                }
                if !matches!(d, Discard::WrongInstance { .. }) {
                    let path = self.layout.message(&self.settings.instance, &record.id);
                    // Never waits: the session task must stay free to step down when its
                    // lease runs low; a delete dropped here is redone by the next session's.
                    let _ = self.writes.try_send(WriteJob::DeleteMessage(path));
                }
            }
        }
        verdict
    }

    fn spawn_transition(&mut self, m: TransitionMessage) {
        self.emit(&m, &m.from, &m.to, Phase::Begin, None);
        let (cancel_handle, cancel) = Cancellation::new();
        let semaphore = self
            .semaphores
            .entry(m.resource.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.max_per_resource)))
            .clone();
        let handler = self.settings.handler.clone();
        let tx = self.completions_tx.clone();
        let t = Transition {
            msg_id: m.id.clone(),
            resource: m.resource.clone(),
            partition: m.partition.clone(),
            state_model: m.state_model.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            epoch: m.epoch,
        };
        let timeout = m.timeout_ms.map(Duration::from_millis);
        let id = m.id.clone();
        self.running.insert(
            m.id.clone(),
            Running {
                message: m,
                cancel: cancel_handle,
            },
        );
        tokio::spawn(async move {
            let outcome = run_handler(handler, t, cancel, timeout, semaphore).await;
            let _ = tx.send((id, outcome)).await;
        });
    }

    fn on_finished(&mut self, id: &str, outcome: Outcome) {
        let Some(running) = self.running.remove(id) else {
            return; // a transition of an earlier session
        };
        let m = running.message;
        let finished = self.ledger.handle_finished(id, &outcome);
        match (&outcome, finished) {
            (Outcome::Cancelled, _) | (_, None) => {
                self.emit(&m, &m.from, &m.to, Phase::Cancelled, Some("cancelled".into()));
            }
            (_, Some(f)) => {
                let reason = match &outcome {
                    Outcome::Failed(r) => Some(r.clone()),
                    _ => None,
                };
                let phase = if reason.is_some() { Phase::Error } else { Phase::Ok };
                if let Some(r) = &reason {
                    let t = Transition {
                        msg_id: m.id.clone(),
                        resource: m.resource.clone(),
                        partition: m.partition.clone(),
                        state_model: m.state_model.clone(),
                        from: m.from.clone(),
                        to: m.to.clone(),
                        epoch: m.epoch,
                    };
                    self.settings.handler.on_error(&t, r);
                }
                self.emit(&m, &m.from, &m.to, phase, reason.clone());
                self.record_state(&m, &f.state, reason.as_deref(), Some(m.id.clone()));
            }
        }
    }

    /// Updates this session's current-state record of `m.resource` and queues its write
    /// (with the deletion of message `msg_id`).
    fn record_state(
        &mut self,
        m: &TransitionMessage,
        state: &str,
        info: Option<&str>,
        msg_id: Option<String>,
    ) {
        let session = self.ledger.session().to_string();
        let cs = self
            .current
            .entry(m.resource.clone())
            .or_insert_with(|| CurrentState::create(&m.resource, &session, &m.state_model));
        if state == DROPPED {
            cs.remove_partition(&m.partition);
        } else {
            let now = now_ms();
            cs.record_transition(&m.partition, &m.from, state, now, now);
            if let Some(i) = info {
                cs.set_info(&m.partition, i);
            }
        }
        let record = (!cs.record.map_fields.is_empty()).then(|| cs.record.clone());
        if record.is_none() {
            self.current.remove(&m.resource);
        }
        let job = WriteJob::CurrentState {
            session: self.fence.clone(),
            path: self
                .layout
                .current_state(&self.settings.instance, &session, &m.resource),
            record,
            message: msg_id.map(|id| self.layout.message(&self.settings.instance, &id)),
        };
        if let Err(e) = self.writes.try_send(job) {
            tracing::error!(error = %e, "the current-state writer is gone or full");
        }
    }

    /// The session is over: stop what runs, step every replica down to its initial state
    /// through the handler (reporting each step), and register a new session.
    async fn lose_session(&mut self, reason: &str, await_renewal: bool) {
        tracing::warn!(instance = %self.settings.instance, session = %self.registered.session, reason, "session lost; stepping down");
        let _ = self.status.send(SessionStatus::Connecting);
        for w in self.watchers.drain(..) {
            w.abort();
        }
        for (_, r) in std::mem::take(&mut self.running) {
            r.cancel.cancel();
            let m = r.message;
            let _ = self.events.send(TransitionEvent {
                ts_us: now_us(),
                instance: self.settings.instance.clone(),
                session: self.registered.session.clone(),
                resource: m.resource.clone(),
                partition: m.partition.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
                phase: Phase::Cancelled,
                msg_id: m.id.clone(),
                epoch: m.epoch,
                reason: Some(reason.to_string()),
            });
        }
        self.step_down_all().await;
        let store = self.settings.store.clone();
        // A controller ends a session only once SWIM declared its gossip generation down;
        // registering again at that generation would be ended again. Give the gossip a
        // moment to tell us and renew (Rejoined), then register at the new generation.
        let declared = self.membership.local().generation;
        for _ in 0..if await_renewal { 50 } else { 0 } {
            if self.membership.local().generation != declared || self.membership.is_isolated() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        register::unregister(
            &store,
            &self.layout,
            &self.settings.instance,
            &self.registered.live_value,
        )
        .await;
        self.current.clear();
        let mut delay = Duration::from_millis(50);
        let (registered, registering) = loop {
            let registering = tokio::time::Instant::now();
            match register::register(
                &store,
                &self.layout,
                &self.settings.instance,
                self.settings.transport.local_addr(),
                self.membership.local().generation,
                now_ms,
            )
            .await
            {
                Ok(r) => break (r, registering),
                Err(_) if self.stop.borrow().is_some() => return, // stopping: the main loop ends
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register a new session yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        };
        register::clear_old_sessions(&store, &self.layout, &self.settings.instance, &registered.session)
            .await;
        self.lease = first_lease(
            &store,
            &self.layout,
            &self.settings.instance,
            &registered,
            registering,
        )
        .await;
        tracing::info!(instance = %self.settings.instance, session = %registered.session, "new session registered");
        self.ledger.renew(&registered.session);
        self.fence = fence_of(&self.layout, &self.settings.instance, &registered);
        self.registered = registered;
        self.start_watches();
        let _ = self
            .status
            .send(SessionStatus::Live(self.registered.session.clone()));
    }

    /// Walks every held replica to its model's initial state (MASTER → SLAVE → OFFLINE),
    /// one hop at a time through the handler, all replicas in parallel.
    async fn step_down_all(&mut self) {
        let held = self.ledger.held();
        let mut walks = Vec::new();
        for (resource, model_name, partition, state) in held {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            let Some(model) = self.model(&model_name, deadline).await else {
                continue;
            };
            let handler = self.settings.handler.clone();
            let events = self.events.clone();
            let instance = self.settings.instance.clone();
            let session = self.registered.session.clone();
            walks.push(async move {
                let initial = model.initial_state().to_string();
                let mut current = state;
                let mut hops = 0;
                while current != initial && hops < 8 {
                    hops += 1;
                    let Some(next) = model.next_hop(&current, &initial).map(str::to_string) else {
                        break;
                    };
                    let id = format!("local-stepdown-{}-{}-{hops}", now_us(), partition);
                    let t = Transition {
                        msg_id: id.clone(),
                        resource: resource.clone(),
                        partition: partition.clone(),
                        state_model: model_name.clone(),
                        from: current.clone(),
                        to: next.clone(),
                        epoch: 0,
                    };
                    let ev = |phase, reason: Option<String>| TransitionEvent {
                        ts_us: now_us(),
                        instance: instance.clone(),
                        session: session.clone(),
                        resource: resource.clone(),
                        partition: partition.clone(),
                        from: current.clone(),
                        to: next.clone(),
                        phase,
                        msg_id: id.clone(),
                        epoch: 0,
                        reason,
                    };
                    let _ = events.send(ev(Phase::Begin, None));
                    let (_cancel, c) = Cancellation::new();
                    let r = tokio::time::timeout(Duration::from_secs(5), handler.on_transition(t, c)).await;
                    let reason = match r {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.reason),
                        Err(_) => Some("step-down timed out".into()),
                    };
                    // The replica stops counting as `current` either way: a failed step-down
                    // is reported, and the session's state is gone with the session.
                    let phase = if reason.is_some() { Phase::Error } else { Phase::Ok };
                    let _ = events.send(ev(phase, reason));
                    current = next;
                }
            });
        }
        futures::future::join_all(walks).await;
    }
}

/// The writer's fence of a registered session: its live-instance record holds its value.
fn fence_of(layout: &Layout, instance: &str, registered: &Registered) -> Arc<SessionFence> {
    Arc::new(SessionFence {
        live: layout.live_instance(instance),
        value: registered.live_value.clone(),
    })
}

/// A new session's lease: from a confirmation asked now, after the registration's clean-up
/// (which may have taken a while), or else from when the registration was sent (the record
/// did not exist before, so nothing could have ended it earlier).
async fn first_lease(
    store: &PropertyStore,
    layout: &Layout,
    instance: &str,
    registered: &Registered,
    registering: tokio::time::Instant,
) -> Lease {
    let sent = tokio::time::Instant::now();
    let live = layout.live_instance(instance);
    match store
        .confirm_majority(&live, &registered.live_value, CHECK_TIMEOUT)
        .await
    {
        Ok(true) => Lease::new(sent),
        _ => Lease::new(registering),
    }
}

/// Asks a majority of the store's replicas every [`lease::RENEW_EVERY`] whether `live` still holds
/// `value` (the record our session registered), and reports each confirmation with the
/// instant it was asked (see [`super::lease`]). The check needs no store leader; checks
/// overlap, each waited for at most [`CHECK_TIMEOUT`] ([`lease::renew`]).
async fn renew_lease(store: PropertyStore, live: String, value: Vec<u8>, tx: mpsc::Sender<StoreNews>) {
    lease::renew(
        || {
            store
                .confirm_majority(&live, &value, CHECK_TIMEOUT)
                .map(|r| matches!(r, Ok(true)))
        },
        |sent| {
            let tx = tx.clone();
            async move { tx.send(StoreNews::Confirmed(sent)).await.is_ok() }
        },
    )
    .await
}

async fn run_handler(
    handler: Arc<dyn StateModelHandler>,
    t: Transition,
    cancel: Cancellation,
    timeout: Option<Duration>,
    semaphore: Arc<Semaphore>,
) -> Outcome {
    let mut watch_cancel = cancel.clone();
    let work = async {
        let _permit = semaphore.acquire_owned().await;
        handler.on_transition(t, cancel).await
    };
    let timed = async {
        match timeout {
            Some(d) => match tokio::time::timeout(d, work).await {
                Ok(r) => r.map_err(|e| e.reason),
                Err(_) => Err(format!("timed out after {} ms", d.as_millis())),
            },
            None => work.await.map_err(|e| e.reason),
        }
    };
    tokio::select! {
        biased;
        _ = watch_cancel.cancelled() => Outcome::Cancelled,
        r = timed => match r {
            Ok(()) => Outcome::Completed,
            Err(reason) => Outcome::Failed(reason),
        },
    }
}
