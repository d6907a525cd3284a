//! The controller: leadership with fencing epochs, the pipeline that feeds the pure
//! [`crate::rebalance`] engine, dispatch of transitions and the external view.
//!
//! ```text
//!   Controller (one process, one gossip membership, one task per cluster)
//!     standby ── judge(LEADER record, gossip view) ── vacant? ── take (conditional write;
//!        ▲          the leader's MemberDown / LEADER deleted          epoch = its revision)
//!        │                                                             │
//!        └──────── a fenced write failed (another controller took over) ◄ lead:
//!             mirror = range(/<C>) at revision r, then watch(/<C>/, r+1)
//!             MemberDown/Left of a live instance → its session no longer counts
//!             on change (coalesced) or at next_recompute_ms: one round
//!               snapshot::build (pure) → rebalance::Engine::round (pure; kept across the
//!               leadership's rounds, reuses unchanged resources) → round::plan (pure)
//!               → fenced transactions (end sessions, messages, external views, lists)
//!               → send the recorded messages over QUIC (one task per participant)
//! ```
//!
//! [`mirror`], [`snapshot`], [`round`] and [`election`] decide; [`leader`] only carries
//! out what they decide. [`stats`] reads each round's health off its snapshot and decision
//! (partitions missing their top state or below their minimum of active replicas, throttled
//! and ended transitions) for the controller's metrics (`metrics`).
//! Beside the rounds, on its own timer, the leader aggregates the
//! participants' health reports and evaluates alert rules ([`health`]).

pub mod election;
pub mod health;
mod leader;
mod metrics;
pub mod mirror;
pub mod round;
pub mod sighting;
pub mod snapshot;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::membership::{Membership, MembershipConfig, Roles};
use crate::model::Layout;
use crate::participant::register;
use crate::propertystore::{ClientError, Op, PropertyStore, Txn};
use crate::transport::Transport;

/// Why a controller could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// Something is missing from the builder.
    #[error("controller builder: {what}")]
    Builder {
        /// What.
        what: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] ClientError),
    /// Membership could not start.
    #[error("membership: {reason}")]
    Membership {
        /// Why.
        reason: String,
    },
    /// The messaging service could not start.
    #[error("messaging: {reason}")]
    Messaging {
        /// Why.
        reason: String,
    },
}

/// A controller's role in one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Waiting to lead.
    Standby,
    /// Leading with this epoch.
    Leader {
        /// The fencing epoch.
        epoch: u64,
    },
}

/// Builds a [`Controller`].
pub struct ControllerBuilder {
    name: String,
    clusters: Vec<String>,
    store: Option<PropertyStore>,
    transport: Option<Arc<dyn Transport>>,
    membership: MembershipConfig,
    grace: Duration,
}

impl ControllerBuilder {
    /// A cluster to control (repeatable).
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.clusters.push(cluster.into());
        self
    }

    /// The store client.
    pub fn store(mut self, store: PropertyStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The node endpoint (named like the controller).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Gossip timing (default: [`MembershipConfig::lan`]).
    pub fn membership_config(mut self, config: MembershipConfig) -> Self {
        self.membership = config;
        self
    }

    /// How long a leader record or a session the gossip has not heard of (at its
    /// generation) counts as alive from when this controller first read it (default 1.5 s):
    /// it is taken over or ended then.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Joins the gossip and starts one task per cluster.
    pub async fn start(self) -> Result<Controller, ControllerError> {
        let store = self.store.ok_or_else(|| ControllerError::Builder {
            what: "no store client (call .store(…))".into(),
        })?;
        let transport = self.transport.ok_or_else(|| ControllerError::Builder {
            what: "no transport (call .transport(…))".into(),
        })?;
        if self.clusters.is_empty() {
            return Err(ControllerError::Builder {
                what: "no cluster to control (call .cluster(…))".into(),
            });
        }
        let generation = next_generation(&store, &self.clusters, &self.name).await?;
        let mut seeds = Vec::new();
        for c in &self.clusters {
            for s in register::seeds(&store, &Layout::new(c), &self.name).await? {
                if !seeds.contains(&s) {
                    seeds.push(s);
                }
            }
        }
        let membership = Membership::builder(transport.clone())
            .roles(Roles::CONTROLLER)
            .clusters(self.clusters.clone())
            .seeds(seeds)
            .generation(generation)
            .config(self.membership)
            .start()
            .map_err(|e| ControllerError::Membership {
                reason: e.to_string(),
            })?;
        let membership = Arc::new(membership);
        let (stop_tx, stop_rx) = watch::channel(None);
        let mut roles = BTreeMap::new();
        let mut tasks = Vec::new();
        for c in &self.clusters {
            let (role_tx, role_rx) = watch::channel(Role::Standby);
            roles.insert(c.clone(), role_rx);
            let ctx = leader::Ctx {
                layout: Layout::new(c),
                name: self.name.clone(),
                session: format!("{generation:x}"),
                store: store.clone(),
                transport: transport.clone(),
                membership: membership.clone(),
                grace: self.grace,
                role: role_tx,
                stop: stop_rx.clone(),
            };
            tasks.push(tokio::spawn(leader::run(ctx)));
        }
        let leads = roles.clone();
        let session = format!("{generation:x}");
        let messaging = crate::messaging::Messaging::builder(
            &self.name,
            &self.clusters[0],
            transport.clone(),
            store.clone(),
        )
        .sender_type("CONTROLLER")
        .session(move || Some(session.clone()))
        // Controller-addressed messages are answered by the cluster's leader only.
        .serves(move |c| {
            leads
                .get(c)
                .is_some_and(|r| matches!(*r.borrow(), Role::Leader { .. }))
        })
        .receive()
        .build()
        .map_err(|e| ControllerError::Messaging {
            reason: e.to_string(),
        })?;
        Ok(Controller {
            name: self.name,
            roles,
            membership,
            messaging,
            transport,
            stop: stop_tx,
            tasks,
        })
    }
}

/// The generation this controller's gossip identity starts with: above every one it used
/// before in any of its clusters (kept at `/<C>/CONTROLLER/GENERATIONS/<name>`), and at
/// least the clock's milliseconds, so it grows even if the clock steps back.
async fn next_generation(store: &PropertyStore, clusters: &[String], name: &str) -> Result<u64, ClientError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut generation = now.max(1);
    let paths: Vec<String> = clusters
        .iter()
        .map(|c| format!("{}/GENERATIONS/{name}", Layout::new(c).controller()))
        .collect();
    for p in &paths {
        if let Some(r) = store.get(p).await? {
            if let Some(last) = std::str::from_utf8(&r.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
            {
                generation = generation.max(last.saturating_add(1));
            }
        }
    }
    let ops = paths
        .into_iter()
        .map(|path| Op::Set {
            path,
            value: generation.to_string().into_bytes(),
            expected_version: None,
        })
        .collect();
    store
        .txn(Txn {
            conditions: Vec::new(),
            success: ops,
            failure: Vec::new(),
        })
        .await?;
    Ok(generation)
}

/// A running controller. Dropping it stops it as a crash would.
pub struct Controller {
    name: String,
    roles: BTreeMap<String, watch::Receiver<Role>>,
    membership: Arc<Membership>,
    messaging: crate::messaging::Messaging,
    transport: Arc<dyn Transport>,
    stop: watch::Sender<Option<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A builder for a controller named `name` (its certificate's name).
    pub fn builder(name: impl Into<String>) -> ControllerBuilder {
        ControllerBuilder {
            name: name.into(),
            clusters: Vec::new(),
            store: None,
            transport: None,
            membership: MembershipConfig::lan(),
            grace: Duration::from_millis(1500),
        }
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its role in `cluster`, as it changes.
    pub fn role(&self, cluster: &str) -> Option<watch::Receiver<Role>> {
        self.roles.get(cluster).cloned()
    }

    /// The messaging handle: register handlers for controller-addressed messages (answered
    /// only while this controller leads the message's cluster) and send by criteria (to
    /// the first cluster given, or the criteria's `clusterName`).
    pub fn messaging(&self) -> &crate::messaging::Messaging {
        &self.messaging
    }

    /// The gossip membership it runs.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Stops gracefully: gives up leadership (a standby takes over at once) and leaves
    /// the gossip.
    pub async fn shutdown(mut self) {
        self.stop_with(true).await;
    }

    /// Stops without telling anyone (as a crash would look), for tests.
    pub async fn kill(mut self) {
        self.stop_with(false).await;
    }

    async fn stop_with(&mut self, graceful: bool) {
        let _ = self.stop.send(Some(graceful));
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if graceful {
            let _ = self.membership.leave().await;
        } else {
            self.membership.shutdown().await;
        }
        self.transport.shutdown().await;
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.stop.send(Some(false));
        for t in &self.tasks {
            t.abort();
        }
    }
}
