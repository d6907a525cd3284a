//! Participants: processes that host partitions and run the application's transitions.
//!
//! ```text
//!   Participant::builder(cluster, instance)…connect()
//!     │ 1. instance config must exist (or cluster config allowParticipantAutoJoin=true)
//!     │ 2. session generation = max(clock ms, last + 1), persisted at INSTANCES/<i>/GENERATION
//!     │ 3. join the gossip (seeds: the leading controller and the live instances in the store)
//!     │ 4. register LIVEINSTANCES/<i> (SESSION_ID, STRAND_ADDR, STRAND_GOSSIP_GENERATION)
//!     ▼
//!   session task (one owner of the ledger)
//!     inputs:  controller requests on Service::MESSAGING (fast path)
//!              (application messages: Service::APP_MESSAGES, served by `crate::messaging`)
//!              store watch of INSTANCES/<i>/MESSAGES (fallback) and of LIVEINSTANCES/<i>
//!              membership events (Isolated, Rejoined)   handler completions
//!     ledger:  at most once per message id, session and epoch checks (`ledger`)
//!     outputs: handler tasks (per-resource concurrency, timeouts → ERROR)
//!              CURRENTSTATES/<session>/<R> written, the message deleted, in one transaction
//!              TransitionEvent stream (what `strand participant run` prints)
//!   health reporter (`health`): the application's reports and built-ins from the events,
//!     one write of INSTANCES/<i>/HEALTHREPORT/ParticipantStats per interval
//!   session lease (`lease`): a majority of store replicas confirms every 60 ms that
//!     LIVEINSTANCES/<i> still holds the session's record; none for 250 ms → the session
//!     is lost
//!   session lost (LIVEINSTANCES/<i> gone or another session, Isolated, Rejoined, lease):
//!     cancel what runs, step every replica down to the initial state through the handler,
//!     register a new session with a new generation
//! ```

pub mod audit;
mod handler;
pub mod health;
pub mod lease;
pub mod ledger;
pub mod register;
mod session;
pub mod wire;
mod writer;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::watch;
use serde::Serialize;
use tokio::sync::broadcast;

pub use handler::{AcceptAll, CancelHandle, Cancellation, HandlerError, StateModelHandler, Transition};

use crate::membership::MembershipConfig;
use crate::propertystore::{ClientError, PropertyStore};
use crate::transport::{Transport, TransportError};

/// Why a participant could not start or stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParticipantError {
    /// The cluster does not exist in the store.
    #[error("cluster {cluster} does not exist (create it with `strand admin cluster add {cluster}`)")]
    NoCluster {
        /// The cluster.
        cluster: String,
    },
    /// The instance is not registered and the cluster does not allow auto-join.
    #[error(
        "instance {instance} is not in cluster {cluster}; add it first (`strand helix-admin --addNode {cluster} HOST:PORT`) or set allowParticipantAutoJoin=true in the cluster config"
    )]
    NotRegistered {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
    },
    /// Something is missing from the builder.
    #[error("participant builder: {what}")]
    Builder {
        /// What is missing or wrong.
        what: String,
    },
    /// The store refused or failed an operation.
    #[error("store: {0}")]
    Store(#[from] ClientError),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// Membership could not start.
    #[error("membership: {reason}")]
    Membership {
        /// Why.
        reason: String,
    },
    /// The messaging service could not start.
    #[error("messaging: {0}")]
    Messaging(#[from] crate::messaging::MessagingError),
    /// A record in the store is malformed.
    #[error("record {path}: {reason}")]
    Record {
        /// Its path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The phase of a transition in a [`TransitionEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The handler was called.
    Begin,
    /// It succeeded.
    Ok,
    /// It failed or timed out: the replica is in ERROR.
    Error,
    /// It was cancelled (the session ended).
    Cancelled,
    /// The message was not run (stale epoch, other session, wrong state…).
    Discarded,
}

/// One step of one transition, as `strand participant run` prints it (one JSON line each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionEvent {
    /// Wall clock, microseconds since the Unix epoch.
    pub ts_us: u64,
    /// The instance.
    pub instance: String,
    /// The session.
    pub session: String,
    /// The resource.
    pub resource: String,
    /// The partition.
    pub partition: String,
    /// The state left.
    pub from: String,
    /// The state entered.
    pub to: String,
    /// Begin, ok, error, cancelled, discarded.
    pub phase: Phase,
    /// The message id (`local-…` for a step-down the participant runs by itself).
    pub msg_id: String,
    /// The controller's epoch (0: not from a controller).
    pub epoch: u64,
    /// Why, for error, cancelled and discarded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a participant's session is doing, for callers that wait on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStatus {
    /// Registering a session.
    Connecting,
    /// Registered; the session id.
    Live(String),
    /// Stopped.
    Stopped,
}

/// Builds a [`Participant`].
pub struct ParticipantBuilder {
    cluster: String,
    instance: String,
    store: Option<PropertyStore>,
    transport: Option<Arc<dyn Transport>>,
    handler: Arc<dyn StateModelHandler>,
    membership: MembershipConfig,
    max_per_resource: usize,
    zone: Option<String>,
    tags: BTreeSet<String>,
    join_timeout: Duration,
    health_interval: Duration,
}

impl ParticipantBuilder {
    /// The property store client.
    pub fn store(mut self, store: PropertyStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The node endpoint (named like the instance) the participant listens on.
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The application's transition handler (default: [`AcceptAll`]).
    pub fn handler(mut self, handler: Arc<dyn StateModelHandler>) -> Self {
        self.handler = handler;
        self
    }

    /// Gossip timing (default: [`MembershipConfig::lan`]).
    pub fn membership_config(mut self, config: MembershipConfig) -> Self {
        self.membership = config;
        self
    }

    /// How many transitions of one resource may run at once (default 40, as Helix's pool).
    pub fn max_concurrent_per_resource(mut self, n: usize) -> Self {
        self.max_per_resource = n.max(1);
        self
    }

    /// The fault zone written into the instance config when the participant joins by itself.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }

    /// A tag written into the instance config when the participant joins by itself.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.insert(tag.into());
        self
    }

    /// How long to wait for the gossip to answer at start (default 2 s).
    pub fn join_timeout(mut self, d: Duration) -> Self {
        self.join_timeout = d;
        self
    }

    /// How often the health report is written (default 5 s; only when something is new).
    pub fn health_interval(mut self, d: Duration) -> Self {
        self.health_interval = d;
        self
    }

    /// Joins the cluster: registers a session and starts serving transitions.
    pub async fn connect(self) -> Result<Participant, ParticipantError> {
        let store = self.store.ok_or_else(|| ParticipantError::Builder {
            what: "no store client (call .store(…))".into(),
        })?;
        let transport = self.transport.ok_or_else(|| ParticipantError::Builder {
            what: "no transport (call .transport(…))".into(),
        })?;
        let app_store = crate::config::AppPropertyStore::new(store.clone(), &self.cluster);
        let config = crate::config::ConfigAccessor::new(store.clone());
        let layout = crate::model::Layout::new(&self.cluster);
        let health_store = store.clone();
        let inner = session::start(session::Settings {
            cluster: self.cluster,
            instance: self.instance,
            store,
            transport,
            handler: self.handler,
            membership: self.membership,
            max_per_resource: self.max_per_resource,
            zone: self.zone,
            tags: self.tags,
            join_timeout: self.join_timeout,
        })
        .await?;
        let health = health::HealthReporter::start(
            health_store,
            &layout,
            &inner.instance,
            self.health_interval,
            inner.events.subscribe(),
        );
        Ok(Participant {
            inner,
            app_store,
            config,
            health,
        })
    }
}

/// A running participant. Dropping it stops it as a crash would; call
/// [`Participant::shutdown`] to leave gracefully.
pub struct Participant {
    inner: session::Handle,
    app_store: crate::config::AppPropertyStore,
    config: crate::config::ConfigAccessor,
    health: health::HealthReporter,
}

impl std::fmt::Debug for Participant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Participant")
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

impl Participant {
    /// A builder for instance `instance` of cluster `cluster`.
    pub fn builder(cluster: impl Into<String>, instance: impl Into<String>) -> ParticipantBuilder {
        ParticipantBuilder {
            cluster: cluster.into(),
            instance: instance.into(),
            store: None,
            transport: None,
            handler: Arc::new(AcceptAll),
            membership: MembershipConfig::lan(),
            max_per_resource: 40,
            zone: None,
            tags: BTreeSet::new(),
            join_timeout: Duration::from_secs(2),
            health_interval: health::DEFAULT_INTERVAL,
        }
    }

    /// Health reports: `participant.health().report("latency_ms", 12.0, Scope::resource("db"))`
    /// (see [`health::HealthReporter`]); the transition latency and error rate per resource
    /// are reported by themselves.
    pub fn health(&self) -> &health::HealthReporter {
        &self.health
    }

    /// The cluster's application property store (`/<C>/PROPERTYSTORE`), sharing this
    /// participant's store client and cache.
    pub fn property_store(&self) -> &crate::config::AppPropertyStore {
        &self.app_store
    }

    /// Scoped config of the cluster, with change subscriptions.
    pub fn config_accessor(&self) -> &crate::config::ConfigAccessor {
        &self.config
    }

    /// The instance name.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Transition events: the first call gets every event since the session began, later
    /// calls the events from then on.
    pub fn events(&self) -> broadcast::Receiver<TransitionEvent> {
        let first = self
            .inner
            .first_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        first.unwrap_or_else(|| self.inner.events.subscribe())
    }

    /// The session's status; changes as sessions end and begin.
    pub fn status(&self) -> watch::Receiver<SessionStatus> {
        self.inner.status.clone()
    }

    /// The current session id, if live.
    pub fn session(&self) -> Option<String> {
        match &*self.inner.status.borrow() {
            SessionStatus::Live(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The messaging handle: send by criteria, register handlers for message types
    /// (messages arrive over QUIC, and persistent ones from this instance's `MESSAGES`).
    pub fn messaging(&self) -> &crate::messaging::Messaging {
        &self.inner.messaging
    }

    /// The gossip membership this participant runs.
    pub fn membership(&self) -> &crate::membership::Membership {
        &self.inner.membership
    }

    /// Leaves gracefully: steps every replica down to its initial state through the handler
    /// (so the application stops serving before any other replica is promoted), ends the
    /// session in the store (its replicas leave the external view at once), leaves the
    /// gossip and stops.
    pub async fn shutdown(self) {
        self.inner.shutdown(true).await;
    }

    /// Stops without telling anyone (as a crash would look), for tests.
    pub async fn kill(self) {
        self.inner.shutdown(false).await;
    }
}

/// Wall clock, microseconds since the Unix epoch (the `ts_us` of events; [`crate::clock`]'s,
/// virtual in the simulator).
pub fn now_us() -> u64 {
    crate::clock::unix_us()
}
