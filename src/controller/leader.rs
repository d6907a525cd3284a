//! The controller's shell for one cluster: stand by, take leadership, lead until fenced.
//! Every decision it carries out is made by [`super::election`], [`super::snapshot`],
//! [`super::round`] and the engine; this file only reads, writes, waits and sends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::watch;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::election::{self, Vacancy};
use super::metrics::ClusterMetrics;
use super::mirror::Mirror;
use super::round::{self, Leader};
use super::sighting::{self, Seen, Verdict};
use super::snapshot::{self, Liveness};
use super::stats::{self, PendingKey};
use super::Role;
use crate::membership::{Membership, MembershipEvent, RecvError};
use crate::model::fields::SESSION_ID;
use crate::model::layout::Key;
use crate::model::{Layout, Record};
use crate::participant::lease;
use crate::participant::register::{ADDR_FIELD, GOSSIP_GENERATION_FIELD};
use crate::participant::wire::{ParticipantReply, ParticipantRequest};
use crate::propertystore::{ClientError, Event, Op, OpOutcome, PropertyStore};
use crate::rebalance::Engine;
use crate::transport::{self, PeerAddr, Service, Transport};

/// What one cluster's task needs.
pub(super) struct Ctx {
    pub layout: Layout,
    pub name: String,
    pub session: String,
    pub store: PropertyStore,
    pub transport: Arc<dyn Transport>,
    pub membership: Arc<Membership>,
    pub grace: Duration,
    pub role: watch::Sender<Role>,
    pub stop: watch::Receiver<Option<bool>>,
}

enum Ended {
    /// Asked to stop; gracefully or not.
    Stopped(bool),
    /// Another controller took over.
    Fenced,
}

/// The runtime's monotonic clock in ms since `base` (what lingering is measured by; each
/// leadership has its own base, so nothing depends on when the process first asked).
fn mono_ms(base: Instant) -> u64 {
    Instant::now().duration_since(base).as_millis() as u64
}

fn now_ms() -> u64 {
    crate::clock::unix_ms()
}

fn stopped(ctx: &Ctx) -> Option<bool> {
    *ctx.stop.borrow()
}

/// Runs the cluster's task until the controller stops.
pub(super) async fn run(mut ctx: Ctx) {
    let metrics = ClusterMetrics::register(ctx.layout.cluster());
    loop {
        let Some((epoch, mine)) = standby(&mut ctx).await else {
            return;
        };
        tracing::info!(cluster = %ctx.layout.cluster(), controller = %ctx.name, epoch, "leading");
        let _ = ctx.role.send(Role::Leader { epoch });
        metrics.leadership(true);
        let ended = lead(&ctx, epoch, &mine, &metrics).await;
        metrics.leadership(false);
        match ended {
            Ended::Stopped(graceful) => {
                if graceful {
                    resign(&ctx, &mine).await;
                }
                let _ = ctx.role.send(Role::Standby);
                return;
            }
            Ended::Fenced => {
                tracing::warn!(cluster = %ctx.layout.cluster(), controller = %ctx.name, epoch, "another controller took over; standing by");
                let _ = ctx.role.send(Role::Standby);
            }
        }
    }
}

/// Forwards a store watch into a channel; the task ends when the receiver is dropped.
fn forward_watch(
    store: &PropertyStore,
    prefix: String,
    from: u64,
) -> mpsc::Receiver<Result<(Vec<Event>, u64), ClientError>> {
    let (tx, rx) = mpsc::channel(256);
    let store = store.clone();
    tokio::spawn(async move {
        let mut w = store.watch(&prefix, from);
        loop {
            let r = tokio::select! {
                biased;
                _ = tx.closed() => return,
                r = w.next_batch() => r,
            };
            let failed = r.is_err();
            let item = r.map(|events| (events, w.next_revision().saturating_sub(1)));
            if tx.send(item).await.is_err() {
                return;
            }
            if failed {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    rx
}

/// Waits until leadership is vacant and takes it; `None` when the controller stops.
async fn standby(ctx: &mut Ctx) -> Option<(u64, Vec<u8>)> {
    let path = ctx.layout.leader();
    let mut gossip = ctx.membership.subscribe();
    let mut leader_changes = forward_watch(&ctx.store, path.clone(), 0);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // The record's value and when this standby first read it: a leader the gossip has not
    // heard of (at the record's generation) is given the grace period from then.
    let mut first_read: Option<(Option<Vec<u8>>, Instant)> = None;
    loop {
        if stopped(ctx).is_some() {
            return None;
        }
        let seen = match ctx.store.get(&path).await {
            Ok(r) => r.map(|r| r.value),
            Err(e) => {
                tracing::debug!(error = %e, "reading the leader record");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if ctx.membership.is_isolated() {
            // An isolated controller takes nothing: it would judge everyone gone.
            tokio::select! {
                biased;
                _ = ctx.stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            continue;
        }
        let since = match &first_read {
            Some((v, t)) if *v == seen => *t,
            _ => {
                let now = Instant::now();
                first_read = Some((seen.clone(), now));
                now
            }
        };
        let members = ctx.membership.members();
        match election::judge(seen.as_deref(), &ctx.name, &members, since.elapsed(), ctx.grace) {
            Vacancy::Vacant { seen } => {
                let local = ctx.membership.local();
                let mine =
                    election::leader_record(&ctx.name, &ctx.session, local.addr, local.generation, now_ms())
                        .to_bytes();
                match ctx.store.txn(election::take(&path, seen.as_deref(), &mine)).await {
                    Ok(w) if w.succeeded => return Some((w.revision, mine)),
                    Ok(_) => continue, // someone else was first: judge again
                    Err(e) => {
                        tracing::debug!(error = %e, "taking leadership");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            Vacancy::Held { by } => {
                // Make sure the gossip knows where the leader is, so its death is seen; a
                // standby in a gossip group apart from the leader's (both started before
                // either was listed in the store) greets it, or it would take over from a
                // healthy leader once the grace ran out.
                if let Some(addr) = seen
                    .as_deref()
                    .and_then(|v| Record::from_stored(v).ok().flatten())
                    .and_then(|r| r.simple(ADDR_FIELD).and_then(|a| a.parse().ok()))
                {
                    if !members.iter().any(|m| m.name == by && m.status.is_active()) {
                        let _ = ctx.membership.add_seeds(vec![addr]).await;
                        let _ = ctx.membership.greet(vec![addr]).await;
                    }
                }
            }
        }
        tokio::select! {
            biased;
            _ = ctx.stop.changed() => {}
            _ = leader_changes.recv() => {}
            e = gossip.recv() => if let Err(RecvError::Closed) = e { return None; },
            _ = tick.tick() => {}
        }
    }
}

async fn resign(ctx: &Ctx, mine: &[u8]) {
    let path = ctx.layout.leader();
    let txn = crate::propertystore::Txn {
        conditions: vec![election::fence(&path, mine)],
        success: vec![Op::Delete {
            path,
            expected_version: None,
            recursive: false,
        }],
        failure: Vec::new(),
    };
    if let Err(e) = ctx.store.txn(txn).await {
        tracing::debug!(error = %e, "giving up leadership");
    }
}

/// Whether the leader record still holds `mine`.
async fn still_leading(ctx: &Ctx, mine: &[u8]) -> bool {
    match ctx.store.get(&ctx.layout.leader()).await {
        Ok(Some(r)) => r.value == mine,
        Ok(None) => false,
        Err(_) => true, // unknown: the next fenced write tells
    }
}

struct Lead<'a> {
    ctx: &'a Ctx,
    mine: &'a [u8],
    leader: Leader,
    mirror: Mirror,
    liveness: Liveness,
    /// instance → (gossip generation of its live-instance record, when this leader first
    /// saw that generation): the grace period of a session the gossip cannot confirm runs
    /// from then, not from the controller's start.
    first_seen: std::collections::HashMap<String, (u64, Instant)>,
    rng: StdRng,
    /// The rebalance engine's cache across this leadership's rounds; a new leadership (a
    /// takeover, or a reload after the watch failed) starts with an empty one.
    engine: Engine,
    /// The start of this leadership, by the monotonic clock: `Liveness`'s `mono_ms` counts
    /// from it.
    base: Instant,
    metrics: &'a ClusterMetrics,
    /// The transitions pending at the last round, to tell which ended since and how.
    pending: std::collections::BTreeSet<PendingKey>,
    /// instance → the session its live-instance record named when last looked at: when a
    /// record goes, its session lingers for [`lease::linger`] (see [`snapshot`]).
    known_sessions: std::collections::HashMap<String, String>,
    /// instance → when this leader last greeted it (see [`GREET_AFTER`]).
    greeted: std::collections::HashMap<String, Instant>,
}

/// A participant whose registered gossip generation the gossip has not shown for this long
/// is greeted (told of this controller's gossip), at most once per [`GREET_EVERY`]: nodes
/// that all started before any of them was listed in the store (participants before the
/// first leader) form separate gossip groups that nothing else would ever join.
const GREET_AFTER: Duration = Duration::from_millis(250);
const GREET_EVERY: Duration = Duration::from_secs(1);

async fn lead(ctx: &Ctx, epoch: u64, mine: &[u8], metrics: &ClusterMetrics) -> Ended {
    let (entries, revision) = loop {
        match ctx.store.range(&ctx.layout.root()).await {
            Ok(r) => break r,
            Err(e) => {
                tracing::warn!(error = %e, "reading the cluster");
                if !still_leading(ctx, mine).await {
                    return Ended::Fenced;
                }
                if let Some(g) = stopped(ctx) {
                    return Ended::Stopped(g);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let mut events = forward_watch(&ctx.store, format!("{}/", ctx.layout.root()), revision + 1);
    let mut gossip = ctx.membership.subscribe();
    let now = now_ms();
    let base = Instant::now();
    let mut lead = Lead {
        ctx,
        mine,
        leader: Leader {
            name: ctx.name.clone(),
            session: ctx.session.clone(),
            epoch,
        },
        mirror: Mirror::load(ctx.layout.clone(), entries, revision),
        liveness: Liveness {
            now_ms: now,
            // Sessions the last leader ended may still act on their replicas.
            takeover_until_ms: lease::linger().as_millis() as u64,
            ..Default::default()
        },
        first_seen: Default::default(),
        rng: StdRng::seed_from_u64(crate::entropy::random_u64() ^ epoch.rotate_left(17)),
        engine: Engine::new(),
        base,
        metrics,
        pending: Default::default(),
        known_sessions: Default::default(),
        greeted: Default::default(),
    };
    lead.track_sessions();
    lead.reconcile_sessions().await;
    let mut stop = ctx.stop.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut health = super::health::Keeper::new();
    let mut health_tick = tokio::time::interval(super::health::TICK);
    let mut next_round: Option<Instant> = None;
    let mut dirty = true;
    loop {
        if dirty {
            dirty = false;
            match lead.round().await {
                Ok(next) => next_round = next,
                Err(RoundError::Fenced) => return Ended::Fenced,
                // Try again shortly (through the wake below, so events and the stop signal
                // are still handled meanwhile).
                Err(RoundError::Retry) => next_round = Some(Instant::now() + Duration::from_millis(50)),
            }
        }
        let wake = next_round;
        tokio::select! {
            biased;
            _ = stop.changed() => {
                if let Some(g) = *stop.borrow() { return Ended::Stopped(g); }
            }
            batch = events.recv() => {
                let mut batch = batch;
                let mut lives_changed = false;
                loop {
                    match batch {
                        Some(Ok((evs, covered))) => {
                            dirty |= lead.mirror.apply(&evs);
                            lives_changed |= evs.iter().any(|e| {
                                matches!(ctx.layout.classify(&e.path), Some(Key::LiveInstance(_)))
                            });
                            lead.note_offline(&evs);
                            lead.mirror.advance(covered);
                            // Another controller took the record (this one was paused, say):
                            // stand by now, not at the next write, which may never come.
                            if lead.mirror.get(&ctx.layout.leader()).is_none_or(|e| e.value.as_slice() != mine) {
                                return Ended::Fenced;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "cluster watch failed; reloading");
                            // Stand by: the record is still ours, so it is taken again at once with a
                            // new epoch, from a fresh read of the cluster.
                            return Ended::Fenced;
                        }
                        None => return Ended::Fenced,
                    }
                    match events.try_recv() {
                        Ok(b) => batch = Some(b),
                        Err(_) => break,
                    }
                }
                // Judged at once, before the round: a participant registering again at a
                // generation ended for want of a sighting is greeted, and counted if gossip
                // shows it now, before the round ends its session (its record may live only
                // until that round, so the tick alone would rarely see it). Only when a
                // live-instance record changed: the watch delivers every write of the cluster.
                if lives_changed {
                    dirty |= lead.reconcile_sessions().await;
                }
            }
            e = gossip.recv() => match e {
                Ok(MembershipEvent::MemberDown(m)) | Ok(MembershipEvent::MemberLeft(m)) => {
                    dirty |= lead.member_gone(&m.name, m.generation);
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ended::Stopped(false),
            },
            _ = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {
                next_round = None;
                dirty = true;
            }
            _ = tick.tick() => dirty |= lead.reconcile_sessions().await,
            _ = health_tick.tick() => {
                let fence = election::fence(&ctx.layout.leader(), mine);
                health.tick(&lead.mirror, now_ms(), &ctx.store, fence);
            }
        }
    }
}

enum RoundError {
    /// A fenced write failed: another controller leads.
    Fenced,
    /// The store did not answer; try again.
    Retry,
}

impl Lead<'_> {
    /// Sessions whose participant the gossip says is gone (or has not heard of at the
    /// session's generation for the grace period since this leader first saw the session)
    /// stop counting; the gossip is told of those it does not show. Returns whether anything
    /// changed.
    async fn reconcile_sessions(&mut self) -> bool {
        let members = self.ctx.membership.members();
        let now = Instant::now();
        let prefix = format!("{}/", self.mirror.layout().live_instances());
        let mut changed = false;
        let lives: Vec<(String, u64, Option<SocketAddr>)> = self
            .mirror
            .under(&prefix)
            .map(|(path, e)| {
                let name = path[prefix.len()..].to_string();
                let field = |f: &str| e.record.as_ref().and_then(|r| r.simple(f).map(str::to_string));
                let generation = field(GOSSIP_GENERATION_FIELD)
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(0);
                (name, generation, field(ADDR_FIELD).and_then(|a| a.parse().ok()))
            })
            .collect();
        let mut greet = Vec::new();
        let mut first_seen = std::collections::HashMap::with_capacity(lives.len());
        for (name, generation, addr) in lives {
            let since = match self.first_seen.get(&name) {
                Some((g, t)) if *g == generation => *t,
                _ => now,
            };
            first_seen.insert(name.clone(), (generation, since));
            let seen = members
                .iter()
                .find(|m| m.name == name && !m.is_local)
                .map(|m| Seen {
                    generation: m.generation,
                    status: m.status,
                });
            let recorded = self.liveness.down.get(&name).copied();
            // Unseen for a while, or registering again at a generation already ended for
            // want of a sighting (its record lasts only until the next round).
            let unseen = seen.is_none_or(|s| s.generation < generation);
            let overdue = since.elapsed() >= GREET_AFTER || recorded.is_some_and(|d| d >= generation);
            if let Some(addr) = addr.filter(|_| unseen && overdue) {
                if self.greeted.get(&name).is_none_or(|t| t.elapsed() >= GREET_EVERY) {
                    self.greeted.insert(name.clone(), now);
                    greet.push(addr);
                }
            }
            match sighting::judge(generation, recorded, seen, since.elapsed() >= self.ctx.grace) {
                Verdict::Counts | Verdict::StaysEnded => {}
                Verdict::Gone => changed |= self.member_gone(&name, generation),
                Verdict::Revived => {
                    tracing::info!(instance = %name, generation, "gossip shows a generation ended without a verdict alive: its sessions count again");
                    self.liveness.down.remove(&name);
                    changed = true;
                }
            }
        }
        self.first_seen = first_seen;
        if !greet.is_empty() {
            tracing::debug!(?greet, "greeting participants the gossip does not show");
            let _ = self.ctx.membership.greet(greet).await;
        }
        changed
    }

    /// A participant's gossip generation `generation` is gone: its session of that
    /// generation or older stops counting. Returns whether it had one.
    fn member_gone(&mut self, name: &str, generation: u64) -> bool {
        let entry = self.liveness.down.entry(name.to_string()).or_insert(0);
        if *entry >= generation {
            return false;
        }
        *entry = generation;
        self.liveness.offline_since.insert(name.to_string(), now_ms());
        self.mirror
            .get(&self.mirror.layout().live_instance(name))
            .is_some()
    }

    /// Live-instance deletions seen in the watch start an instance's offline time.
    fn note_offline(&mut self, events: &[Event]) {
        for e in events {
            if matches!(e.kind, crate::propertystore::EventKind::Delete) {
                if let Some(Key::LiveInstance(i)) = self.mirror.layout().classify(&e.path) {
                    self.liveness.offline_since.insert(i.to_string(), now_ms());
                }
            }
        }
    }

    fn new_id(rng: &mut StdRng) -> String {
        let a: u64 = rng.random();
        let b: u64 = rng.random();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    /// Live-instance records gone (deleted, or naming another session) since the last
    /// look: their sessions linger from now on, for [`lease::linger`]. Their participant
    /// could confirm its session until the record went, and "now" is after that.
    fn track_sessions(&mut self) {
        let now = mono_ms(self.base);
        let prefix = format!("{}/", self.mirror.layout().live_instances());
        let live: std::collections::HashMap<String, String> = self
            .mirror
            .under(&prefix)
            .filter_map(|(path, e)| {
                let session = e.record.as_ref()?.simple(SESSION_ID)?.to_string();
                Some((path[prefix.len()..].to_string(), session))
            })
            .collect();
        let until = now + lease::linger().as_millis() as u64;
        for (instance, session) in self.known_sessions.drain() {
            if live.get(&instance) != Some(&session) {
                self.liveness.gone.insert((instance, session), until);
            }
        }
        self.known_sessions = live;
        self.liveness.gone.retain(|_, t| *t > now);
    }

    /// When the lingering sessions stop lingering next, if any do.
    fn linger_ends(&self) -> Option<Instant> {
        let now = mono_ms(self.base);
        self.liveness
            .gone
            .values()
            .copied()
            .chain(Some(self.liveness.takeover_until_ms))
            .filter(|t| *t > now)
            .min()
            .map(|t| self.base + Duration::from_millis(t))
    }

    /// One round; returns when the next is due without any change (a delayed rebalance's
    /// window, or a lingering session's end).
    async fn round(&mut self) -> Result<Option<Instant>, RoundError> {
        let started = std::time::Instant::now();
        self.track_sessions();
        let now = now_ms();
        self.liveness.now_ms = now;
        self.liveness.mono_ms = mono_ms(self.base);
        let view = snapshot::build(&self.mirror, &self.liveness);
        tracing::debug!(
            lingering = ?view.snapshot.resources.iter().filter(|r| !r.lingering.is_empty()).map(|r| (&r.name, &r.lingering)).collect::<Vec<_>>(),
            sessions = ?view.sessions.keys().collect::<Vec<_>>(),
            ended = ?view.ended.keys().collect::<Vec<_>>(),
            "round view"
        );
        let decision = match self.engine.round(&view.snapshot) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(cluster = %self.ctx.layout.cluster(), error = %e, "cannot rebalance; waiting for a change");
                return Ok(None);
            }
        };
        let pending = stats::pending(&view.snapshot);
        self.metrics.decided(
            stats::health(&view.snapshot, decision),
            stats::ended(&self.pending, &pending, &view.snapshot),
        );
        self.pending = pending;
        let rng = &mut self.rng;
        let mut plan = round::plan(&view, decision, &self.mirror, &self.leader, now, || {
            Self::new_id(rng)
        });
        // The engine's time is the wall clock (offline times are stored wall-clock stamps);
        // the wait until then is taken on the monotonic clock from here.
        let next_recompute = decision
            .next_recompute_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms.saturating_sub(now)));
        tracing::debug!(
            revision = self.mirror.revision(),
            messages = plan.messages,
            txns = plan.txns.len(),
            "round planned"
        );
        let fence = election::fence(&self.ctx.layout.leader(), self.mine);
        for mut txn in std::mem::take(&mut plan.txns) {
            if !crate::testing::fencing_broken() {
                txn.conditions.insert(0, fence.clone());
            }
            let ops = txn.success.clone();
            match self.ctx.store.txn(txn).await {
                Ok(w) if w.succeeded => {
                    // Its messages are recorded: send them now, not after the round's
                    // other writes.
                    for (instance, addr, records) in plan.take_recorded(&self.ctx.layout, &ops) {
                        self.metrics.sent(records.len());
                        self.pending.extend(stats::sent(&records));
                        self.send_transitions(instance, addr, &records);
                    }
                    for (op, outcome) in ops.iter().zip(&w.ops) {
                        match (op, outcome) {
                            (
                                Op::Set { path, value, .. } | Op::Create { path, value },
                                OpOutcome::Put { stat, .. },
                            ) => {
                                self.mirror.apply_own_put(
                                    path,
                                    value.clone(),
                                    stat.version,
                                    stat.mod_revision,
                                );
                            }
                            (Op::Delete { path, .. }, _) => self.mirror.apply_own_delete(path),
                            _ => {}
                        }
                    }
                }
                Ok(_) => {
                    // Nothing of it was recorded: its messages stay in `plan.sends`, unsent.
                    if !still_leading(self.ctx, self.mine).await {
                        return Err(RoundError::Fenced);
                    }
                    // Its own condition failed (a record changed meanwhile): the watch brings
                    // the change and the next round decides again.
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a round's write failed");
                    if !still_leading(self.ctx, self.mine).await {
                        return Err(RoundError::Fenced);
                    }
                    return Err(RoundError::Retry);
                }
            }
        }
        // Every message a successful transaction recorded has been sent; what is left in
        // `plan.sends` was in a transaction that failed, and is never sent.
        self.track_sessions();
        self.metrics.round(started.elapsed());
        Ok([next_recompute, self.linger_ends()].into_iter().flatten().min())
    }

    /// Sends recorded transition messages to `instance` (in the background; if it fails, the
    /// participant still finds the store copy through its watch).
    fn send_transitions(&self, instance: String, addr: SocketAddr, records: &[Record]) {
        let transport = self.ctx.transport.clone();
        let texts = records.iter().map(Record::to_helix_json).collect();
        tokio::spawn(async move {
            let to = PeerAddr::named(instance.clone(), addr);
            let r: Result<ParticipantReply, _> = transport::call(
                &*transport,
                &to,
                Service::MESSAGING,
                &ParticipantRequest::Transitions(texts),
                Duration::from_secs(2),
            )
            .await;
            match r {
                Ok(ParticipantReply::Verdicts(v)) => {
                    for verdict in v.iter().filter(|v| v.starts_with("discarded")) {
                        tracing::debug!(%instance, verdict, "participant discarded a message");
                    }
                }
                Err(e) => tracing::debug!(%instance, error = %e, "sending transitions"),
            }
        });
    }
}
