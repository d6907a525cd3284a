//! Membership: who is alive, with sub-second failure detection (SWIM, foca 2).
//!
//! foca is the sans-IO SWIM core; one tokio task ([`shell`]) owns it, carries its packets
//! as datagrams on [`Service::MEMBERSHIP`] of the node's [`Transport`] (QUIC with mutual
//! TLS, or the in-memory network in simulations), keeps its timers, and turns its state into
//! events and a member view. Around foca, strand adds:
//!
//! ```text
//!   Membership (handle) ──commands──► shell task ──► foca (SWIM: probe, suspect, gossip)
//!        ▲   subscribe()                 │  ▲
//!        │   members()                   │  └── health guard (Lifeguard-style self-distrust)
//!        └── events, view ◄── member table (suspicions, leaves, last heard, RTT, isolation)
//! ```
//!
//! - Identities ([`NodeId`]) carry name, address, generation and metadata; the generation
//!   is the wall-clock millisecond at start and is bumped when the node learns that it was
//!   declared down, before it rejoins.
//! - A graceful leave is sent directly to every member (a few times), not only gossiped, so
//!   everyone sees `MemberLeft` at once.
//! - A suspect is told directly that it is suspected (when the suspicion starts and again
//!   while it lasts), so refutation does not wait for gossip; any news is pushed to a few
//!   members at once rather than at the next periodic gossip.
//! - foca tells a member "you are down" when a suspicion timer fires even if the member has
//!   refuted meanwhile; the shell does not send that message to members it holds alive.
//! - The local-health guard ([`health`]) stretches probe and suspicion timeouts and holds
//!   accusations back while the node itself lags, so a starved node accuses no one.
//! - The minority hold ([`quorum`]): a member that cannot show it reaches a majority of the
//!   members it knows does not spread its suspect→down verdicts, so a healed cut makes no
//!   member of the majority rejoin.
//! - `Isolated` / `Reconnected` tell a node that no peer has reached it for a while,
//!   so it can step down before the others declare it dead.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::watch;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::transport::{self, PeerAddr, Service, Transport, TransportError};

pub mod config;
pub mod events;
pub mod health;
pub mod identity;
mod metrics;
pub mod quorum;
mod shell;
pub mod timers;
pub mod view;
pub mod wire;

pub use config::MembershipConfig;
pub use events::{LocalChange, MemberChange, MemberStatus, MembershipEvent, RecvError, Status, Subscription};
pub use health::{HealthConfig, LocalHealth};
pub use identity::{generation_at_start, NodeId, Roles};
pub use wire::{MembershipReply, MembershipRequest};

use shell::{lock, Command, Shared, SharedState, Shell, ShellParts};

/// Why a membership operation did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// A role name is not one of store, controller, participant, spectator. Nothing changed.
    #[error("unknown role {name:?} (roles: store, controller, participant, spectator)")]
    UnknownRole {
        /// The name given.
        name: String,
    },
    /// The configuration is inconsistent. Nothing was started.
    #[error("bad membership configuration: {reason}")]
    BadConfig {
        /// What is wrong.
        reason: String,
    },
    /// The transport refused to register the membership service, or a query failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The membership task has stopped (left, shut down, or its transport closed).
    #[error("membership has stopped")]
    Stopped,
    /// foca refused an identity change; the identity is unchanged.
    #[error("cannot change identity: {reason}")]
    Identity {
        /// foca's reason.
        reason: String,
    },
    /// [`MembershipBuilder::start`] was called outside a tokio runtime. Nothing was started.
    #[error("membership needs a tokio runtime")]
    NoRuntime,
    /// A node answered a membership query with something else than what was asked.
    #[error("unexpected answer from {node}")]
    UnexpectedReply {
        /// The node asked.
        node: String,
    },
}

/// Builds and starts a [`Membership`].
pub struct MembershipBuilder {
    transport: Arc<dyn Transport>,
    roles: Roles,
    clusters: Vec<String>,
    generation: Option<u64>,
    seeds: Vec<SocketAddr>,
    config: MembershipConfig,
    rng_seed: Option<u64>,
}

fn wall_clock_ms() -> u64 {
    crate::clock::unix_ms()
}

impl MembershipBuilder {
    /// The roles this node plays.
    pub fn roles(mut self, roles: Roles) -> Self {
        self.roles = roles;
        self
    }

    /// The clusters this node belongs to.
    pub fn clusters(mut self, clusters: Vec<String>) -> Self {
        self.clusters = clusters;
        self
    }

    /// The generation to start with (default: wall-clock milliseconds now).
    pub fn generation(mut self, generation: u64) -> Self {
        self.generation = Some(generation);
        self
    }

    /// Addresses of nodes to join through (this node's own address is skipped).
    pub fn seeds(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seeds = seeds.into_iter().collect();
        self
    }

    /// Timing and capacities (default: [`MembershipConfig::lan`]).
    pub fn config(mut self, config: MembershipConfig) -> Self {
        self.config = config;
        self
    }

    /// The seed of SWIM's random choices (default: from the clock); simulations fix it.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// Registers the membership service on the transport and starts the membership task
    /// (in the current tokio runtime). The node joins through its seeds in the background.
    pub fn start(self) -> Result<Membership, MembershipError> {
        self.start_subscribed().map(|(m, _)| m)
    }

    /// Like [`MembershipBuilder::start`], with a subscription taken before the task starts,
    /// so it sees every event from the very first.
    pub fn start_subscribed(self) -> Result<(Membership, Subscription), MembershipError> {
        self.config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MembershipError::NoRuntime)?;
        let inbox = self
            .transport
            .register(Service::MEMBERSHIP, self.config.inbox_capacity)?;
        let start_unix_ms = wall_clock_ms();
        let generation = self
            .generation
            .unwrap_or_else(|| generation_at_start(start_unix_ms));
        let local = NodeId::new(
            self.transport.local_name(),
            self.transport.local_addr(),
            generation,
        )
        .with_metadata(self.roles, self.clusters);
        let rng_seed = self
            .rng_seed
            .unwrap_or_else(|| crate::entropy::random_u64() ^ generation);
        let shared: Shared = Arc::new(Mutex::new(SharedState {
            table: view::MemberTable::new(),
            local: local.clone(),
            health_score: 0,
            stalls: 0,
            running: true,
        }));
        let (events, first_rx) = broadcast::channel(self.config.event_capacity);
        let (changes_tx, changes_rx) = watch::channel(0u64);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let shell = Shell::new(ShellParts {
            transport: self.transport.clone(),
            local,
            config: self.config,
            seeds: self.seeds,
            rng: StdRng::seed_from_u64(rng_seed),
            shared: shared.clone(),
            events: events.clone(),
            changes: changes_tx,
            start_unix_ms,
        });
        let weak = events.downgrade();
        drop(events);
        let task = runtime.spawn(shell.run(shutdown_rx, cmd_rx, inbox));
        let membership = Membership {
            shared,
            events: weak,
            changes: changes_rx,
            commands: cmd_tx,
            shutdown: shutdown_tx,
            task: Mutex::new(Some(task)),
        };
        Ok((membership, Subscription { rx: first_rx }))
    }
}

/// A running membership: the handle to the task that owns the SWIM state.
///
/// Dropping it stops the task without leaving (as a crash would look to the others); call
/// [`Membership::leave`] for a graceful exit.
pub struct Membership {
    shared: Shared,
    events: broadcast::WeakSender<MembershipEvent>,
    changes: watch::Receiver<u64>,
    commands: mpsc::Sender<Command>,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A read-only handle on a running [`Membership`] (see [`Membership::view`]).
#[derive(Clone)]
pub struct MembershipView {
    shared: Shared,
    events: broadcast::WeakSender<MembershipEvent>,
}

impl std::fmt::Debug for MembershipView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipView").finish_non_exhaustive()
    }
}

impl MembershipView {
    /// The view now: this node first, then every member it knows of.
    pub fn members(&self) -> Vec<MemberStatus> {
        let s = lock(&self.shared);
        s.table.snapshot(&s.local, tokio::time::Instant::now().into_std())
    }

    /// Whether this node believes it is isolated.
    pub fn is_isolated(&self) -> bool {
        lock(&self.shared).table.is_isolated()
    }

    /// Whether the membership task is still running.
    pub fn is_running(&self) -> bool {
        lock(&self.shared).running
    }

    /// The local-health score now (0: healthy).
    pub fn health_score(&self) -> u32 {
        lock(&self.shared).health_score
    }

    /// Events from now on (an ended stream once the membership stopped).
    pub fn subscribe(&self) -> Subscription {
        let rx = match self.events.upgrade() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        };
        Subscription { rx }
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("local", &self.local())
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// A builder for a membership over `transport` (whose name and address the node takes).
    pub fn builder(transport: Arc<dyn Transport>) -> MembershipBuilder {
        MembershipBuilder {
            transport,
            roles: Roles::NONE,
            clusters: Vec::new(),
            generation: None,
            seeds: Vec::new(),
            config: MembershipConfig::lan(),
            rng_seed: None,
        }
    }

    /// This node's current identity (its generation changes when it rejoins).
    pub fn local(&self) -> NodeId {
        lock(&self.shared).local.clone()
    }

    /// Whether the membership task is still running.
    pub fn is_running(&self) -> bool {
        lock(&self.shared).running
    }

    /// The view now: this node first, then every member it knows of.
    pub fn members(&self) -> Vec<MemberStatus> {
        let s = lock(&self.shared);
        s.table.snapshot(&s.local, tokio::time::Instant::now().into_std())
    }

    /// The status of the member named `name`, if known.
    pub fn status_of(&self, name: &str) -> Option<Status> {
        lock(&self.shared).table.status(name)
    }

    /// Whether this node believes it is isolated.
    pub fn is_isolated(&self) -> bool {
        lock(&self.shared).table.is_isolated()
    }

    /// The local-health score now (0: healthy).
    pub fn health_score(&self) -> u32 {
        lock(&self.shared).health_score
    }

    /// How many stalls of its own event loop this node has noticed.
    pub fn stalls(&self) -> u64 {
        lock(&self.shared).stalls
    }

    /// A read-only handle on the view and the event stream, for observers (the HTTP
    /// server) that must not own the membership: it stops nothing when dropped.
    pub fn view(&self) -> MembershipView {
        MembershipView {
            shared: self.shared.clone(),
            events: self.events.clone(),
        }
    }

    /// Events from now on; dropping the subscription unsubscribes.
    pub fn subscribe(&self) -> Subscription {
        let rx = match self.events.upgrade() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        };
        Subscription { rx }
    }

    /// Waits until `pred` holds for the view, at most `timeout`; returns whether it did.
    pub async fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&[MemberStatus]) -> bool) -> bool {
        let mut changes = self.changes.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.members()) {
                return true;
            }
            // Checked here too: the select below is biased towards changes, which may keep
            // coming.
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            // Also re-check periodically: RTT and last-heard change without an event.
            let tick = tokio::time::sleep(Duration::from_millis(20).min(timeout));
            tokio::select! {
                biased;
                r = changes.changed() => if r.is_err() { return pred(&self.members()) },
                _ = tokio::time::sleep_until(deadline) => return pred(&self.members()),
                _ = tick => {}
            }
        }
    }

    /// Leaves gracefully: every member is told directly, then the task stops. The transport
    /// stays up (the caller shuts it down).
    pub async fn leave(&self) -> Result<(), MembershipError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Leave(tx))
            .await
            .map_err(|_| MembershipError::Stopped)?;
        rx.await.map_err(|_| MembershipError::Stopped)?;
        self.join_task().await;
        Ok(())
    }

    /// Stops the task without telling anyone (the others will detect it as down).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        self.join_task().await;
    }

    async fn join_task(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Fault injection for tests and simulations: the task stops processing anything
    /// (datagrams queue up, timers fire late) for `d`, as an event-loop stall would; then
    /// the overdue timers run before the queued datagrams are read (the worst order).
    /// Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub async fn stall_for(&self, d: Duration) -> Result<(), MembershipError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Stall(d, tx))
            .await
            .map_err(|_| MembershipError::Stopped)?;
        rx.await.map_err(|_| MembershipError::Stopped)
    }

    /// Adds addresses to join through; while the node has no live peer it asks them at once
    /// (and again every join retry), as it does its first seeds.
    pub async fn add_seeds(&self, seeds: Vec<SocketAddr>) -> Result<(), MembershipError> {
        self.commands
            .send(Command::AddSeeds(seeds))
            .await
            .map_err(|_| MembershipError::Stopped)
    }

    /// Says hello to `addrs` now and announces this node to each that answers, whether or
    /// not this node has peers: two gossip groups that formed apart (nodes that started
    /// before any of them was listed in the store) become one.
    pub async fn greet(&self, addrs: Vec<SocketAddr>) -> Result<(), MembershipError> {
        self.commands
            .send(Command::Greet(addrs))
            .await
            .map_err(|_| MembershipError::Stopped)
    }

    /// Changes this node's roles and clusters; members see `MemberUpdated`.
    pub async fn update_metadata(
        &self,
        roles: Roles,
        clusters: Vec<String>,
    ) -> Result<NodeId, MembershipError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::UpdateMetadata(roles, clusters, tx))
            .await
            .map_err(|_| MembershipError::Stopped)?;
        rx.await.map_err(|_| MembershipError::Stopped)?
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Asks the node at `node` for its membership view (what `strand members` shows).
pub async fn query_members(
    transport: &dyn Transport,
    node: SocketAddr,
    timeout: Duration,
) -> Result<Vec<MemberStatus>, MembershipError> {
    let answer: MembershipReply = transport::call(
        transport,
        &PeerAddr::any(node),
        Service::MEMBERSHIP,
        &MembershipRequest::Members,
        timeout,
    )
    .await?;
    match answer {
        MembershipReply::Members(rows) => Ok(rows),
        MembershipReply::Hello(_) | MembershipReply::LeaveNoted => Err(MembershipError::UnexpectedReply {
            node: node.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::mem::MemNetwork;

    #[test]
    fn starting_outside_a_runtime_is_an_error_not_a_panic() {
        let net = MemNetwork::new(1);
        let err = Membership::builder(net.endpoint("a")).start().unwrap_err();
        assert_eq!(err, MembershipError::NoRuntime);
    }

    #[test]
    fn a_bad_configuration_is_refused_before_anything_starts() {
        let net = MemNetwork::new(1);
        let mut config = MembershipConfig::lan();
        config.suspect_to_down_after = Duration::ZERO;
        let err = Membership::builder(net.endpoint("a"))
            .config(config)
            .start()
            .unwrap_err();
        assert!(matches!(err, MembershipError::BadConfig { .. }));
    }
}
