//! The membership task: the one owner of the `Foca` instance.
//!
//! ```text
//!   shutdown ─┐
//!   commands ─┤ select! (biased, in this order)   ┌─► transport.send_datagram (SWIM, leave)
//!   inbox ────┼──────────► foca + health guard ───┼─► timer queue (stretched by health)
//!   joins ────┤            + member table         ├─► events (broadcast) and the shared view
//!   timers ───┘                                   └─► answers to Hello / Members requests
//! ```
//!
//! Incoming datagrams are handled before due timers, so acks that queued up while the loop
//! was stalled count before the probe they answer is judged. The health guard sees every
//! timer's lateness; while it holds accusations back, `ProbeRandomMember` (which turns a
//! failed probe into a suspicion) and `ChangeSuspectToDown` are postponed. While this node
//! is cut off (nothing addressed to it for `isolation_after`) and for a grace after it hears
//! from its peers again, `ChangeSuspectToDown` alone is postponed (`Shell::cut_off_hold`),
//! and so it is while its probes of two or more members failed and none was answered since,
//! though peers still reach it: its own sends are lost (`Shell::mute_hold`). A verdict is
//! given (and spread) only while this node reaches a majority of the members it knows
//! (`membership::quorum`; hellos to the members not heard from lately when a suspicion
//! begins, and again while a verdict waits); in the minority it is held back, and after
//! `minority_hold_max` given here only (provisional, never spread) and dropped when that
//! member is heard from again (`Shell::judge_in_minority`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::watch;
use bytes::Bytes;
use foca::{
    AccumulatingRuntime, Codec, Foca, Member, Message, NoCustomBroadcast, OwnedNotification, PostcardCodec,
    Timer,
};
use rand::rngs::StdRng;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::config::MembershipConfig;
use super::events::{LocalChange, MembershipEvent};
use super::health::LocalHealth;
use super::identity::{NodeId, Roles};
use super::metrics::MembershipMetrics;
use super::quorum::{Judgement, MinorityHold, Reach};
use super::timers::TimerQueue;
use super::view::MemberTable;
use super::wire::{Datagram, MembershipReply, MembershipRequest};
use super::MembershipError;
use crate::codec;
use crate::transport::{self, Inbox, Incoming, PeerAddr, PeerRole, Service, Transport};

/// How long a join's "who are you?" request to a seed may take (it may include the QUIC
/// handshake, slow on a starved machine; retries do not wait for it).
const HELLO_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a leaving node waits for each member to acknowledge its leave notice.
const LEAVE_ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// What the membership task shares with its handle.
#[derive(Debug)]
pub(crate) struct SharedState {
    pub(crate) table: MemberTable,
    pub(crate) local: NodeId,
    pub(crate) health_score: u32,
    pub(crate) stalls: u64,
    pub(crate) running: bool,
}

pub(crate) type Shared = Arc<Mutex<SharedState>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, SharedState> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Requests from the handle.
pub(crate) enum Command {
    /// Leave gracefully, then stop.
    Leave(oneshot::Sender<()>),
    /// Stop processing anything for this long (fault injection: an event-loop stall).
    #[cfg(any(test, feature = "testing"))]
    Stall(Duration, oneshot::Sender<()>),
    /// Change roles and clusters.
    UpdateMetadata(
        Roles,
        Vec<String>,
        oneshot::Sender<Result<NodeId, MembershipError>>,
    ),
    /// More addresses to join through (used while the node has no live peer).
    AddSeeds(Vec<SocketAddr>),
    /// Say hello to these addresses now and announce this node to whoever answers, peers
    /// or not (bridges two gossip groups that formed apart).
    Greet(Vec<SocketAddr>),
}

enum Wake {
    /// A foca timer; for a verdict the minority hold kept back, when it was first judged.
    Foca(Timer<NodeId>, Option<Instant>),
    IsolationCheck,
    JoinRetry,
}

struct ProbeTrack {
    target: String,
    number: foca::ProbeNumber,
    sent: Instant,
    acked: bool,
}

type Swim = Foca<NodeId, PostcardCodec, StdRng, NoCustomBroadcast>;

pub(crate) struct Shell {
    transport: Arc<dyn Transport>,
    foca: Swim,
    runtime: AccumulatingRuntime<NodeId>,
    config: MembershipConfig,
    timers: TimerQueue<Wake>,
    health: LocalHealth,
    shared: Shared,
    seeds: Vec<SocketAddr>,
    local: NodeId,
    incarnation: foca::Incarnation,
    probe: Option<ProbeTrack>,
    events: broadcast::Sender<MembershipEvent>,
    changes: watch::Sender<u64>,
    hello_tx: mpsc::Sender<(SocketAddr, Option<NodeId>)>,
    hello_rx: mpsc::Receiver<(SocketAddr, Option<NodeId>)>,
    hello_inflight: BTreeSet<SocketAddr>,
    start: Instant,
    start_unix_ms: u64,
    gossip_soon: bool,
    last_backlog: usize,
    /// Suspects told directly that they are suspected, and when last.
    nudged: BTreeMap<String, Instant>,
    leaving: bool,
    /// After a silence of `isolation_after` (this node was cut off), accusations wait until
    /// then: the suspicions it started while cut off must meet their refutations first.
    cut_off_grace_until: Option<Instant>,
    /// After a stall that others may have taken for a failure: until when this node keeps
    /// saying hello (`Shell::ask_after_stall`) while its own probes are held, and when it
    /// last did.
    hello_after_stall: Option<(Instant, Instant)>,
    /// When this node's loop last woke from a stall.
    woke_at: Option<Instant>,
    /// How long this node's loop has stalled in all (each stall's lateness), and that sum
    /// when the last packet addressed to it arrived: the silence that makes an isolation
    /// counts only the time the loop ran.
    stalled: Duration,
    stalled_at_ack: Duration,
    /// The members whose probes failed (no ack, direct or indirect) since the last probe
    /// that was answered: two or more while peers still reach this node mean this node's
    /// own sends are lost (`Shell::mute_hold`).
    unanswered: BTreeSet<String>,
    /// Whether this node's verdicts may spread (`membership::quorum`).
    minority: MinorityHold,
    /// Verdicts given in the minority, here only: name → the identity held down. A packet
    /// from that member drops the verdict before foca reads the packet.
    provisional: BTreeMap<String, NodeId>,
    /// When each member was last seen going down (the minority hold counts them as known
    /// for `2 * minority_hold_max`).
    downed_at: BTreeMap<String, Instant>,
    metrics: MembershipMetrics,
}

pub(crate) struct ShellParts {
    pub transport: Arc<dyn Transport>,
    pub local: NodeId,
    pub config: MembershipConfig,
    pub seeds: Vec<SocketAddr>,
    pub rng: StdRng,
    pub shared: Shared,
    pub events: broadcast::Sender<MembershipEvent>,
    pub changes: watch::Sender<u64>,
    pub start_unix_ms: u64,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn decode_header(packet: &[u8]) -> Result<foca::Header<NodeId>, postcard::Error> {
    <PostcardCodec as Codec<NodeId>>::decode_header(&mut PostcardCodec, packet)
}

impl Shell {
    pub(crate) fn new(parts: ShellParts) -> Self {
        let max_packet = parts
            .transport
            .max_datagram_size()
            .saturating_sub(super::wire::DATAGRAM_OVERHEAD)
            .max(256);
        let foca = Foca::new(
            parts.local.clone(),
            parts.config.foca_config(max_packet),
            parts.rng,
            PostcardCodec,
        );
        let (hello_tx, hello_rx) = mpsc::channel(64);
        let minority = MinorityHold::new(parts.config.minority_hold_max);
        Shell {
            transport: parts.transport,
            foca,
            runtime: AccumulatingRuntime::new(),
            health: LocalHealth::new(parts.config.health.clone()),
            config: parts.config,
            timers: TimerQueue::new(),
            shared: parts.shared,
            seeds: parts.seeds,
            local: parts.local,
            incarnation: 0,
            probe: None,
            cut_off_grace_until: None,
            hello_after_stall: None,
            woke_at: None,
            stalled: Duration::ZERO,
            stalled_at_ack: Duration::ZERO,
            unanswered: BTreeSet::new(),
            minority,
            provisional: BTreeMap::new(),
            downed_at: BTreeMap::new(),
            events: parts.events,
            changes: parts.changes,
            hello_tx,
            hello_rx,
            hello_inflight: BTreeSet::new(),
            start: now(),
            start_unix_ms: parts.start_unix_ms,
            gossip_soon: false,
            last_backlog: 0,
            nudged: BTreeMap::new(),
            metrics: MembershipMetrics::register(),
            leaving: false,
        }
    }

    fn unix_ms(&self, at: Instant) -> u64 {
        self.start_unix_ms + at.saturating_duration_since(self.start).as_millis() as u64
    }

    pub(crate) async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        mut commands: mpsc::Receiver<Command>,
        mut inbox: Inbox,
    ) {
        let t = now();
        self.timers.schedule(t, Wake::JoinRetry);
        self.timers
            .schedule(t + self.config.isolation_after / 8, Wake::IsolationCheck);
        loop {
            let next = self.timers.next_due();
            let sleep = async move {
                match next {
                    Some(due) => tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                command = commands.recv() => match command {
                    None => break,
                    Some(c) => {
                        if self.command(c).await {
                            break;
                        }
                    }
                },
                incoming = inbox.recv() => match incoming {
                    None => break,
                    Some(i) => self.incoming(i),
                },
                Some((addr, id)) = self.hello_rx.recv() => {
                    self.hello_inflight.remove(&addr);
                    if let Some(id) = id {
                        if id.name != self.local.name {
                            let _ = self.foca.announce(id, &mut self.runtime);
                        }
                    }
                }
                () = sleep => self.fire_due(),
            }
            self.flush();
        }
        lock(&self.shared).running = false;
        self.changes.send_modify(|v| *v += 1);
    }

    /// Returns whether the task must stop.
    async fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Leave(done) => {
                self.leave().await;
                let _ = done.send(());
                true
            }
            #[cfg(any(test, feature = "testing"))]
            Command::Stall(d, done) => {
                tokio::time::sleep(d).await;
                // The worst order after a stall: the overdue timers run before the datagrams
                // that queued up meanwhile are read (as when a starved process wakes up and
                // its timers win the race against its socket).
                self.fire_due();
                let _ = done.send(());
                false
            }
            Command::AddSeeds(seeds) => {
                for seed in seeds {
                    if !self.seeds.contains(&seed) {
                        self.seeds.push(seed);
                    }
                }
                if !self.leaving && self.foca.num_members() == 0 {
                    self.rejoin();
                }
                false
            }
            Command::Greet(addrs) => {
                if !self.leaving {
                    for addr in addrs {
                        self.hello(addr);
                    }
                }
                false
            }
            Command::UpdateMetadata(roles, clusters, done) => {
                let mut next = self.local.clone().with_metadata(roles, clusters);
                next.revision = next.revision.saturating_add(1);
                let result = self
                    .foca
                    .change_identity(next.clone(), &mut self.runtime)
                    .map(|()| next)
                    .map_err(|e| MembershipError::Identity {
                        reason: e.to_string(),
                    });
                if result.is_ok() {
                    self.incarnation = 0;
                }
                self.flush();
                let _ = done.send(result);
                false
            }
        }
    }

    async fn leave(&mut self) {
        self.leaving = true;
        let notice = match codec::encode(&Datagram::Leave(self.local.clone())) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!("cannot encode the leave notice: {e}");
                return;
            }
        };
        // The notices go first, a few times; SWIM's own leave (a gossiped "down") only after
        // them, so that members hear "left" directly before anyone relays "down".
        let peers: Vec<NodeId> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        for _ in 0..self.config.leave_repeats.max(1) {
            for p in &peers {
                let _ = self.transport.send_datagram(
                    &PeerAddr::named(p.name.clone(), p.addr),
                    Service::MEMBERSHIP,
                    notice.clone(),
                );
            }
            tokio::time::sleep(self.config.leave_spacing).await;
        }
        // Datagrams are lost on a starved machine, or dropped while the connection to a
        // member that just (re)started is still being set up: the same notice then goes
        // over a stream to every member at once, each answer awaited at most
        // LEAVE_ACK_TIMEOUT (a member that does not answer hears "down" by gossip instead).
        let transport = self.transport.clone();
        let local = self.local.clone();
        let calls = peers.iter().map(|p| {
            let transport = transport.clone();
            let request = MembershipRequest::Leave(local.clone());
            let to = PeerAddr::named(p.name.clone(), p.addr);
            async move {
                let answer = transport::call::<_, MembershipReply>(
                    &*transport,
                    &to,
                    Service::MEMBERSHIP,
                    &request,
                    LEAVE_ACK_TIMEOUT,
                )
                .await;
                if let Err(e) = answer {
                    tracing::debug!(peer = %to, "leave notice not acknowledged: {e}");
                }
            }
        });
        futures::future::join_all(calls).await;
        if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::debug!("foca leave: {e}");
        }
        self.flush();
    }

    fn incoming(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Datagram { from, body } => {
                if from.role != PeerRole::Node {
                    return;
                }
                match codec::decode::<Datagram>(&body) {
                    Ok(Datagram::Swim(packet)) => self.swim_packet(&from.name, &packet),
                    Ok(Datagram::Leave(id)) => self.leave_notice(&from.name, id),
                    Ok(Datagram::Suspected { id, incarnation }) => {
                        // Only about our current identity; foca refutes (bumps the
                        // incarnation and gossips it).
                        if id == self.local {
                            let _ = self.foca.apply_many(
                                std::iter::once(Member::new(id, incarnation, foca::State::Suspect)),
                                true,
                                &mut self.runtime,
                            );
                            self.answer_accuser(&from.name);
                        }
                    }
                    Err(e) => tracing::debug!(peer = %from.name, "malformed membership datagram: {e}"),
                }
            }
            Incoming::Request { from, body, reply } => match codec::decode::<MembershipRequest>(&body) {
                Ok(MembershipRequest::Hello) => reply.ok_typed(&MembershipReply::Hello(self.local.clone())),
                Ok(MembershipRequest::Members) => {
                    let rows = lock(&self.shared).table.snapshot(&self.local, now());
                    reply.ok_typed(&MembershipReply::Members(rows));
                }
                Ok(MembershipRequest::Leave(id)) => {
                    self.leave_notice(&from.name, id);
                    reply.ok_typed(&MembershipReply::LeaveNoted);
                }
                Err(e) => {
                    tracing::debug!(peer = %from.name, "malformed membership request: {e}");
                    reply.refuse(format!("malformed membership request: {e}"));
                }
            },
            Incoming::Message { .. } => {}
        }
    }

    /// `from` told us it leaves (by datagram or by request; either may come first).
    fn leave_notice(&mut self, from: &str, id: NodeId) {
        if id.name != from {
            tracing::debug!(peer = %from, "leave notice for another node ignored");
            return;
        }
        tracing::debug!(peer = %from, generation = id.generation, "leave notice");
        lock(&self.shared).table.record_leave(&id.name, id.generation);
        // Not relayed: every member gets the notice from the leaver itself, and a relayed
        // "down" could overtake it.
        let _ = self
            .foca
            .apply_many(std::iter::once(Member::down(id)), false, &mut self.runtime);
    }

    fn swim_packet(&mut self, from: &str, packet: &[u8]) {
        let header = match decode_header(packet) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(peer = %from, "undecodable SWIM packet: {e}");
                return;
            }
        };
        if header.src.name != from {
            tracing::debug!(peer = %from, claimed = %header.src.name, "SWIM packet under another name dropped");
            return;
        }
        self.drop_provisional_verdict(from);
        let t = now();
        let at = self.unix_ms(t);
        let reconnected = {
            let mut s = lock(&self.shared);
            s.table.heard_from(from, t);
            if let Message::ForwardedAck { origin, probe_number } = &header.message {
                if let Some(p) = self.probe.as_mut() {
                    if p.target == origin.name && p.number == *probe_number {
                        p.acked = true;
                        self.unanswered.clear();
                    }
                }
            }
            if let Message::Ack(n) = header.message {
                if let Some(p) = self.probe.as_mut() {
                    if p.target == from && p.number == n && !p.acked {
                        p.acked = true;
                        self.unanswered.clear();
                        let rtt = t.saturating_duration_since(p.sent);
                        s.table.probe_acked(from, rtt);
                        self.metrics.probe_acked(rtt);
                        self.health
                            .ack_received(rtt, self.health.stretch(self.config.probe_rtt));
                    }
                }
            }
            // Isolation is "no peer reached us": any packet addressed to our current
            // identity counts (acks come once per probe period, so a single slow peer
            // would fake an isolation; a one-way cut ends in `Rejoined` instead).
            if header.dst == self.local {
                if s.table
                    .silent_for(t)
                    .is_some_and(|d| d >= self.config.isolation_after)
                {
                    self.cut_off_grace_until = Some(t + self.cut_off_grace());
                }
                self.stalled_at_ack = self.stalled;
                s.table.acked(&self.local, t, at)
            } else {
                None
            }
        };
        if let Some(e) = reconnected {
            self.emit(vec![e]);
        }
        if let Err(e) = self.foca.handle_data(packet, &mut self.runtime) {
            tracing::debug!(peer = %from, "SWIM packet: {e}");
        }
    }

    fn fire_due(&mut self) {
        let t = now();
        while let Some((due, wake)) = self.timers.pop_due(t) {
            let stalls = self.health.stalls();
            self.health.timer_fired(due, t);
            if self.health.stalls() > stalls {
                self.woke_at = Some(t);
                let late = t.saturating_duration_since(due);
                self.stalled += late;
                if late >= self.config.probe_period + self.config.suspect_to_down_after {
                    self.ask_after_stall();
                    self.hello_after_stall = self.health.holding(t).map(|until| (until, t));
                } else if late >= self.config.probe_period {
                    // Long enough for a peer's probe to have failed: it may declare this
                    // node down while the hold keeps its probes from finding out.
                    self.hello_after_stall = self
                        .health
                        .holding(t)
                        .map(|until| (until, t.checked_sub(self.config.probe_period).unwrap_or(t)));
                }
            }
            match wake {
                Wake::Foca(timer, held_since) => {
                    let accuses = matches!(
                        timer,
                        Timer::ProbeRandomMember(_) | Timer::ChangeSuspectToDown { .. }
                    );
                    if accuses {
                        if let Some(until) = self.health.holding(t) {
                            tracing::debug!("holding an accusation back for {:?}: this node lags", until - t);
                            self.timers.schedule(until, Wake::Foca(timer, held_since));
                            continue;
                        }
                        // Before the cut-off holds: a minority (a member cut off from
                        // everyone included) holds its verdicts for `minority_hold_max` at
                        // most, then gives them here only.
                        let held_since = held_since.unwrap_or(t);
                        if let Some(wait) = self.judge_in_minority(t, held_since, &timer) {
                            if let Some(recheck) = wait {
                                self.timers.schedule(recheck, Wake::Foca(timer, Some(held_since)));
                            }
                            continue;
                        }
                        let held_since = Some(held_since);
                        // Only the verdict waits: probes go on, so the cut is noticed
                        // healed (peers that all held their probes would hear nothing).
                        let verdict = matches!(timer, Timer::ChangeSuspectToDown { .. });
                        if let Some(until) = self
                            .cut_off_hold(t)
                            .or_else(|| self.mute_hold(t))
                            .filter(|_| verdict)
                        {
                            tracing::debug!(
                                "holding an accusation back for {:?}: this node is cut off",
                                until - t
                            );
                            self.timers.schedule(until, Wake::Foca(timer, held_since));
                            continue;
                        }
                    }
                    if matches!(timer, Timer::ProbeRandomMember(_)) {
                        // The probe this timer closes got no ack at all.
                        if let Some(p) = self.probe.take_if(|p| !p.acked) {
                            self.health.probe_failed(&p.target, t);
                            self.unanswered.insert(p.target);
                        }
                    }
                    if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                        tracing::debug!("SWIM timer: {e}");
                    }
                }
                Wake::IsolationCheck => {
                    self.nudge_suspects(t, false);
                    self.hello_while_held(t);
                    // Isolation is silence while this node's loop ran: stalls do not count
                    // (a stalled loop neither probes nor reads; on a loaded machine short
                    // stalls made healthy members judge themselves isolated), and just after
                    // one (a quarter of `isolation_after`) nothing is judged, until the
                    // transport has handed over what arrived meanwhile. Not put off until
                    // the hold after a stall ends (up to 2 s: a participant woken, given a
                    // MASTER and cut off kept it 1.5 s beside its successor in a chaos run),
                    // nor by `isolation_after` after each stall (on a loaded machine stalls
                    // come more often than that, and a cut-off participant never learned
                    // it was isolated: another chaos run).
                    let woke_recently = self
                        .woke_at
                        .is_some_and(|w| t.saturating_duration_since(w) < self.config.isolation_after / 4);
                    // At most `isolation_after` of it: timers that keep firing late (a slow
                    // loop, not a stopped one) each count as a stall and would push the
                    // judgement off forever (a CI run of the chaos test: a participant cut
                    // off for 8 s never judged itself isolated).
                    let stalled_since_ack = self
                        .stalled
                        .saturating_sub(self.stalled_at_ack)
                        .min(self.config.isolation_after);
                    let event = if woke_recently {
                        None
                    } else {
                        lock(&self.shared).table.check_isolation(
                            &self.local,
                            t,
                            self.config.isolation_after + stalled_since_ack,
                            self.unix_ms(t),
                        )
                    };
                    if let Some(e) = event {
                        self.emit(vec![e]);
                    }
                    self.timers
                        .schedule(t + self.config.isolation_after / 8, Wake::IsolationCheck);
                }
                Wake::JoinRetry => {
                    if !self.leaving && self.foca.num_members() == 0 {
                        self.rejoin();
                    }
                    self.timers.schedule(t + self.config.join_retry, Wake::JoinRetry);
                }
            }
        }
    }

    /// How long accusations wait once a cut-off node hears from its peers again: long enough
    /// for a suspect to hear of its suspicion and refute it.
    fn cut_off_grace(&self) -> Duration {
        self.config.probe_period + 2 * self.health.stretch(self.config.suspect_to_down_after)
    }

    /// Until when a suspect→down verdict waits because this node, not its peers, is the one cut off:
    /// nothing addressed to it arrived for `isolation_after` while at least two peers are
    /// present (they cannot all have failed at once as far as it can tell; with one peer
    /// the silence may be that peer's death, which is judged as usual), or it heard from
    /// them again less than [`Shell::cut_off_grace`] ago. Without this hold a member cut off
    /// from everyone declares every other member down, and when the cut heals that news
    /// makes each of them rejoin (found by `strand bench chaos`).
    fn cut_off_hold(&self, t: Instant) -> Option<Instant> {
        if !self.config.hold_accusations_when_cut_off {
            return None;
        }
        if let Some(until) = self.cut_off_grace_until.filter(|u| *u > t) {
            return Some(until);
        }
        let s = lock(&self.shared);
        let silent = s.table.silent_for(t)?;
        (silent >= self.config.isolation_after && s.table.active().count() >= 2)
            .then(|| t + self.config.isolation_after / 8)
    }

    /// Until when a suspect→down verdict waits because this node's own sends are lost (a
    /// one-way cut): two or more members failed its probes since the last answered one and
    /// still sent it datagrams within the suspicion window. A member that talks to us is
    /// alive; two of them failing our probes is our fault (a partition's other side is
    /// silent, a dead member too). The hold ends when a probe is answered (the cut healed;
    /// a true suspect is then judged), when they fall silent, or when they declare this node
    /// down (foca drops the old timers then). Without it a node that cannot send declares
    /// the others down, and when the cut heals that news makes them rejoin (found with seed
    /// 2 of `a_healed_one_way_cut_declares_no_one_else_down`).
    fn mute_hold(&self, t: Instant) -> Option<Instant> {
        if !self.config.hold_accusations_when_cut_off || self.unanswered.len() < 2 {
            return None;
        }
        let window = self.health.stretch(self.config.suspect_to_down_after) + self.config.probe_period;
        let s = lock(&self.shared);
        let talking = self
            .unanswered
            .iter()
            .filter(|name| s.table.heard_within(name, t, window))
            .count();
        (talking >= 2).then(|| t + self.config.isolation_after / 8)
    }

    /// Asks `addr` who it is (unless already asking); the answer is announced to.
    fn hello(&mut self, addr: SocketAddr) {
        if addr == self.transport.local_addr() || !self.hello_inflight.insert(addr) {
            return;
        }
        let transport = self.transport.clone();
        let tx = self.hello_tx.clone();
        tokio::spawn(async move {
            let answer = transport::call::<_, MembershipReply>(
                &*transport,
                &PeerAddr::any(addr),
                Service::MEMBERSHIP,
                &MembershipRequest::Hello,
                HELLO_TIMEOUT,
            )
            .await;
            let id = match answer {
                Ok(MembershipReply::Hello(id)) => Some(id),
                _ => None,
            };
            let _ = tx.send((addr, id)).await;
        });
    }

    /// The minority hold (`membership::quorum`) for a due timer first judged at
    /// `held_since`: `None` lets foca have it; `Some(Some(at))` holds it until `at` (after
    /// saying hello to the members not heard from lately, when a new round is due);
    /// `Some(None)`: the verdict was given here only (provisional), or dropped (it waited
    /// through a minority and a majority answers again: the cut healed), or is stale.
    /// Without this hold, a minority's verdicts about the majority, spread when the cut
    /// heals, make every member of the majority rejoin (issue 19 §4;
    /// `tests/membership/sim.rs::a_healed_minority_cut_makes_no_majority_member_rejoin`).
    fn judge_in_minority(
        &mut self,
        t: Instant,
        held_since: Instant,
        timer: &Timer<NodeId>,
    ) -> Option<Option<Instant>> {
        let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = timer
        else {
            return None;
        };
        if !self.config.hold_verdicts_in_minority {
            return None;
        }
        // A refuted (or already judged) suspicion is not handed to foca: it would only send
        // "you are down" (foca does, though the state does not change), and after a
        // provisional verdict was dropped the member is alive again at the same
        // incarnation, which foca would take for the suspicion still standing and spread
        // the verdict after all (found with seed 2 of
        // `a_healed_minority_cut_makes_no_majority_member_rejoin`).
        let still_suspect = self.foca.iter_membership_state().any(|m| {
            m.id() == member_id && m.state() == foca::State::Suspect && m.incarnation() == *incarnation
        });
        if !still_suspect {
            return Some(None);
        }
        let confirm = self.health.stretch(self.config.probe_period);
        let reach = self.reach(t, self.minority.window(t, confirm));
        match self.minority.judge(t, held_since, confirm, reach) {
            Judgement::Release => None,
            Judgement::Drop => {
                tracing::info!(
                    local = %self.local.name,
                    member = %member_id.name,
                    known = reach.known,
                    reachable = reach.reachable,
                    "a verdict held in the minority dropped: a majority answers again"
                );
                Some(None)
            }
            Judgement::Wait { recheck, ask } => {
                if ask {
                    tracing::debug!(
                        local = %self.local.name,
                        member = %member_id.name,
                        known = reach.known,
                        reachable = reach.reachable,
                        "a verdict waits: asking the members not heard from lately"
                    );
                    self.ask_silent(t, confirm);
                }
                Some(Some(recheck))
            }
            Judgement::Provisional => {
                tracing::info!(
                    local = %self.local.name,
                    member = %member_id.name,
                    known = reach.known,
                    reachable = reach.reachable,
                    "in the minority: declared down here only, not spread"
                );
                let down = Member::new(member_id.clone(), *incarnation, foca::State::Down);
                if let Err(e) = self
                    .foca
                    .apply_many(std::iter::once(down), false, &mut self.runtime)
                {
                    tracing::debug!("provisional verdict: {e}");
                }
                self.provisional.insert(member_id.name.clone(), member_id.clone());
                // Counted as known at once: the verdicts judged next in this wake-up must
                // not see a smaller cluster (the table hears of this one at the flush).
                self.downed_at.insert(member_id.name.clone(), t);
                Some(None)
            }
        }
    }

    /// Who this node can count on at `t` (`quorum::Reach`): the active members, heard from
    /// within `confirm` or not, and those that went down lately (unreachable), except
    /// members that left.
    fn reach(&self, t: Instant, confirm: Duration) -> Reach {
        let lately = self.config.minority_hold_max.saturating_mul(2);
        let s = lock(&self.shared);
        let peers: Vec<(&str, bool)> = self
            .foca
            .iter_membership_state()
            .filter_map(|m| {
                let name = m.id().name.as_str();
                match m.state() {
                    foca::State::Alive | foca::State::Suspect => {
                        Some((name, s.table.heard_within(name, t, confirm)))
                    }
                    foca::State::Down => self
                        .downed_at
                        .get(name)
                        .is_some_and(|at| t.saturating_duration_since(*at) <= lately)
                        .then_some((name, false)),
                }
            })
            .collect();
        Reach::of(&self.local.name, peers)
    }

    /// Says hello (foca's `Announce`, answered with a `Feed`) to every active member not
    /// heard from within `confirm`: their answers show whether a majority is reachable.
    fn ask_silent(&mut self, t: Instant, confirm: Duration) {
        let ids: Vec<NodeId> = {
            let s = lock(&self.shared);
            self.foca
                .iter_members()
                .map(|m| m.id())
                .filter(|id| !s.table.heard_within(&id.name, t, confirm))
                .cloned()
                .collect()
        };
        for id in ids {
            if let Err(e) = self.foca.announce(id, &mut self.runtime) {
                tracing::debug!("cannot ask a member before a verdict: {e}");
            }
        }
    }

    /// A packet from `from` arrived: if this node declared it down in the minority, the
    /// verdict was wrong (it talks) and is dropped, so foca reads the packet from a live
    /// member instead of answering "you are down" (which would make a member of the
    /// majority rejoin).
    fn drop_provisional_verdict(&mut self, from: &str) {
        let Some(held) = self.provisional.remove(from) else {
            return;
        };
        let down = self
            .foca
            .iter_membership_state()
            .any(|m| m.id() == &held && m.state() == foca::State::Down);
        if down {
            tracing::info!(member = %from, "heard from a member declared down in the minority: verdict dropped");
            if let Err(e) = self.foca.handle_timer(Timer::RemoveDown(held), &mut self.runtime) {
                tracing::debug!("cannot drop a provisional verdict: {e}");
            }
        }
    }

    /// With no live peer: ask the seeds who they are (then announce to them), and announce
    /// to a few members known to be down (after a partition, they may be back).
    fn rejoin(&mut self) {
        for seed in self.seeds.clone() {
            self.hello(seed);
        }
        let down: Vec<NodeId> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == foca::State::Down)
            .map(|m| m.id().clone())
            .take(3)
            .collect();
        for id in down {
            let _ = self.foca.announce(id, &mut self.runtime);
        }
    }

    /// Just woken from a stall long enough for the others to have declared this node down:
    /// says hello to a few members at once, so that one that holds it down answers so
    /// (foca's `TurnUndead`) and the node rejoins — and a participant steps down — within a
    /// round trip, instead of when its held probes resume or a down-announce reaches it
    /// (up to 2 s: a participant woken from SIGSTOP kept a MASTER 1.5 s beside the new one).
    fn ask_after_stall(&mut self) {
        let ids: Vec<NodeId> = self
            .foca
            .iter_members()
            .map(|m| m.id().clone())
            .filter(|id| id.name != self.local.name)
            .take(3)
            .collect();
        for id in ids {
            if let Err(e) = self.foca.announce(id, &mut self.runtime) {
                tracing::debug!("cannot say hello after a stall: {e}");
            }
        }
    }

    /// While the hold after a stall lasts, says hello again every probe period: a verdict
    /// the others reach after this node woke (it was only suspected then, so its first
    /// hello got no "you are down" back) is learned within a probe period, not when the
    /// held probes resume (found by `strand bench chaos`: a participant woken from SIGSTOP
    /// just before its verdict kept a MASTER 1.5 s beside the new one).
    fn hello_while_held(&mut self, t: Instant) {
        let Some((until, last)) = self.hello_after_stall else {
            return;
        };
        if t >= until {
            self.hello_after_stall = None;
        } else if t.saturating_duration_since(last) >= self.config.probe_period {
            self.ask_after_stall();
            self.hello_after_stall = Some((until, t));
        }
    }

    /// Sends our refutation straight back to a member that told us it suspects us: every
    /// SWIM header carries the sender's incarnation, so a small `Announce` brings the
    /// accuser our refuted incarnation before its suspicion timer runs out, instead of
    /// leaving it to random gossip (a starved suspect that wakes late has no time to spare).
    fn answer_accuser(&mut self, accuser: &str) {
        let Some(id) = self
            .foca
            .iter_members()
            .map(|m| m.id())
            .find(|id| id.name == accuser)
            .cloned()
        else {
            return;
        };
        if let Err(e) = self.foca.announce(id, &mut self.runtime) {
            tracing::debug!(peer = %accuser, "cannot answer a suspicion: {e}");
        }
    }

    /// Tells suspects directly that we suspect them: new ones at once (`fresh`), the others
    /// again every few probe periods while the suspicion lasts.
    fn nudge_suspects(&mut self, now: Instant, fresh: bool) {
        let again = self.config.probe_period * 4;
        let suspects: Vec<(NodeId, foca::Incarnation)> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == foca::State::Suspect)
            .map(|m| (m.id().clone(), m.incarnation()))
            .collect();
        self.nudged
            .retain(|name, _| suspects.iter().any(|(id, _)| id.name == *name));
        for (id, incarnation) in suspects {
            let due = match self.nudged.get(&id.name) {
                None => true,
                Some(last) => !fresh && now.saturating_duration_since(*last) >= again,
            };
            if !due {
                continue;
            }
            self.nudged.insert(id.name.clone(), now);
            let to = PeerAddr::named(id.name.clone(), id.addr);
            match codec::encode(&Datagram::Suspected { id, incarnation }) {
                Ok(b) => {
                    let _ = self
                        .transport
                        .send_datagram(&to, Service::MEMBERSHIP, Bytes::from(b));
                }
                Err(e) => tracing::warn!("cannot encode a suspicion notice: {e}"),
            }
        }
    }

    fn stretched(&self, timer: &Timer<NodeId>, after: Duration) -> Duration {
        match timer {
            Timer::ProbeRandomMember(_)
            | Timer::SendIndirectProbe { .. }
            | Timer::ChangeSuspectToDown { .. } => self.health.stretch(after),
            _ => after,
        }
    }

    fn send(&mut self, to: NodeId, packet: Bytes) {
        let t = now();
        if let Ok(header) = decode_header(&packet[..]) {
            // foca sends TurnUndead when a suspicion timer fires even if the suspect refuted
            // meanwhile (its "still the same incarnation" check only guards the state
            // change). Telling a member we consider alive that it is down would make it
            // rejoin for nothing: only members we hold down (or no longer know) are told.
            // Nor members this node declared down in the minority: that verdict stays here.
            if header.message == Message::TurnUndead
                && (self.provisional.get(&header.dst.name) == Some(&header.dst)
                    || self
                        .foca
                        .iter_membership_state()
                        .any(|m| m.id() == &header.dst && m.state() != foca::State::Down))
            {
                tracing::debug!(member = %header.dst, "TurnUndead to a member that refuted: not sent");
                return;
            }
            if let Message::Ping(number) = header.message {
                self.probe = Some(ProbeTrack {
                    target: to.name.clone(),
                    number,
                    sent: t,
                    acked: false,
                });
            }
            if header.src_incarnation > self.incarnation {
                // We had to refute a suspicion: likely this node is the slow one; and the
                // refutation must travel fast.
                self.incarnation = header.src_incarnation;
                self.health.refuted_suspicion();
                self.metrics.refuted();
                self.gossip_soon = true;
            }
        }
        let body = match codec::encode(&Datagram::Swim(packet.to_vec())) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!("cannot encode a SWIM datagram: {e}");
                return;
            }
        };
        if let Err(e) =
            self.transport
                .send_datagram(&PeerAddr::named(to.name, to.addr), Service::MEMBERSHIP, body)
        {
            tracing::debug!("SWIM datagram not sent: {e}");
        }
    }

    /// Carries out what foca asked for, turns state changes into events and publishes them.
    fn flush(&mut self) {
        for _ in 0..4 {
            let t = now();
            while let Some((to, packet)) = self.runtime.to_send() {
                self.send(to, packet);
            }
            while let Some((after, timer)) = self.runtime.to_schedule() {
                let after = self.stretched(&timer, after);
                self.timers.schedule(t + after, Wake::Foca(timer, None));
            }
            let mut events = Vec::new();
            while let Some(n) = self.runtime.to_notify() {
                match n {
                    OwnedNotification::Rejoin(id) => {
                        tracing::info!(
                            generation = id.generation,
                            "declared down by the cluster; rejoined"
                        );
                        self.local = id.clone();
                        self.incarnation = 0;
                        self.minority.reset();
                        events.push(MembershipEvent::Rejoined(LocalChange {
                            name: id.name.clone(),
                            generation: id.generation,
                            silent_ms: None,
                            at_unix_ms: self.unix_ms(t),
                        }));
                    }
                    OwnedNotification::Defunct if !self.leaving => {
                        tracing::warn!("declared down by the cluster and cannot rejoin");
                    }
                    _ => {}
                }
            }
            if self.foca.identity() != &self.local {
                self.local = self.foca.identity().clone();
            }
            let at = self.unix_ms(t);
            {
                let mut s = lock(&self.shared);
                let changed = s.table.reconcile(self.foca.iter_membership_state(), at);
                self.metrics.false_suspicions(s.table.take_refuted());
                if s.local != self.local {
                    s.local = self.local.clone();
                }
                s.health_score = self.health.score();
                s.stalls = self.health.stalls();
                events.extend(changed);
                if s.table.take_changed() {
                    self.gossip_soon = true;
                }
            }
            // Fresh news (a suspicion, a refutation, a down, a join) is pushed to a few
            // members at once instead of waiting for the next periodic gossip.
            let backlog = self.foca.updates_backlog();
            if backlog > self.last_backlog {
                self.gossip_soon = true;
            }
            self.last_backlog = backlog;
            for e in &events {
                match e {
                    MembershipEvent::MemberDown(m) => {
                        self.downed_at.insert(m.name.clone(), t);
                    }
                    MembershipEvent::MemberUp(m) => {
                        self.downed_at.remove(&m.name);
                    }
                    _ => {}
                }
            }
            if events
                .iter()
                .any(|e| matches!(e, MembershipEvent::MemberSuspected(_)))
            {
                self.nudge_suspects(t, true);
                // The minority hold's hellos go out now, so their answers are in when the
                // verdict is due: a member of the majority then gives it without waiting.
                let confirm = self.health.stretch(self.config.probe_period);
                if self.config.hold_verdicts_in_minority && self.minority.suspicion_began(t, confirm) {
                    self.ask_silent(t, confirm);
                }
            }
            self.emit(events);
            if self.gossip_soon && !self.leaving && self.foca.num_members() > 0 {
                self.gossip_soon = false;
                // Enough random picks to reach about every member of a small cluster.
                let rounds = self
                    .foca
                    .num_members()
                    .div_ceil(self.config.num_indirect_probes.max(1))
                    .clamp(1, 3);
                for _ in 0..rounds {
                    let _ = self.foca.gossip(&mut self.runtime);
                }
                continue;
            }
            self.gossip_soon = false;
            if self.runtime.backlog() == 0 {
                break;
            }
        }
    }

    fn emit(&mut self, events: Vec<MembershipEvent>) {
        if events.is_empty() {
            return;
        }
        self.metrics.events(&events);
        for e in events {
            tracing::debug!(event = e.kind(), "membership");
            let _ = self.events.send(e);
        }
        self.changes.send_modify(|v| *v += 1);
    }
}
