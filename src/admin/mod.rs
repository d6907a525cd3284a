//! The admin API: Helix's `HelixAdmin` on strand's property store.
//!
//! [`Admin`] reads and writes Helix-shaped records at the paths of [`Layout`]; it decides
//! nothing about replicas itself. The leading controller reacts to what it writes (a new
//! ideal state, a disabled instance, a pause switch, a reset message).
//!
//! ```text
//!   strand admin …  /  strand helix-admin …  /  a library user
//!        │
//!        ▼
//!   Admin ── cluster · instance · resource · rebalance · config · constraint ·
//!        │   statemodel · reset · health (alert rules, stats, aggregates) · status
//!        │                                (one file per concern)
//!        │
//!        │  records: read (empty "directory" keys are no record), guarded
//!        │  transactions (a guard that fails names what is missing or present),
//!        │  read-modify-write at the version read, retried on a concurrent change
//!        ▼
//!   PropertyStore  /<C>/IDEALSTATES/<R>, /<C>/CONFIGS/PARTICIPANT/<i>, …
//! ```
//!
//! Every write is one store transaction, so a failed command changed nothing. A write whose
//! answer was lost is reported as [`AdminError::OutcomeUnknown`], never as a failure. Time
//! and message ids come from [`Admin::with_clock`] and [`Admin::with_id_source`] (the system
//! clock and random ids by default), so tests can fix them.

mod cluster;
mod config;
mod constraint;
mod health;
mod instance;
mod rebalance;
mod records;
mod reset;
mod resource;
mod statemodel;
mod status;

use std::sync::Arc;

pub use cluster::{ClusterInfo, MAINTENANCE_TRIGGERED_BY_USER};
pub use config::{parse_key_values, parse_keys, ConfigScope, ConfigScopeType};
pub use constraint::parse_constraint_type;
pub(crate) use health::firing_row;
pub use health::{AggregateRow, AlertInfo, FiringRow, HealthOverview};
pub use instance::{instance_name, InstanceDetails};
pub use rebalance::compute_rebalance;
pub use reset::reset_message;
pub use resource::{AddResource, PartitionInfo, ResourceInfo};
pub use statemodel::{builtin_records, resolve_builtin, HELIX_STATE_MODEL_ALIASES};
pub use status::{build as build_status, ClusterStatus, InstanceStatus, ResourceStatus};

use crate::model::{Layout, RecordError};
use crate::propertystore::{ClientError, PropertyStore};
use crate::statemodel::ValidationError;

/// The name admin writes as `SRC_NAME` of the messages it sends.
pub const ADMIN_SOURCE: &str = "admin";

/// Why an admin operation did not succeed. Apart from [`AdminError::OutcomeUnknown`],
/// nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// An argument is not acceptable (a name, a number, a scope, a key-value list).
    #[error("{what}: {reason}")]
    InvalidArgument {
        /// What was given (`cluster name "a/b"`, `--mode`).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `add cluster` found the cluster there.
    #[error("cluster {cluster} already exists")]
    ClusterExists {
        /// The cluster.
        cluster: String,
    },
    /// The cluster does not exist.
    #[error("cluster {cluster} does not exist")]
    ClusterNotFound {
        /// The cluster.
        cluster: String,
    },
    /// `add instance` found the instance there.
    #[error("instance {instance} already exists in cluster {cluster}")]
    InstanceExists {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
    },
    /// The instance is not configured in the cluster.
    #[error("instance {instance} does not exist in cluster {cluster}")]
    InstanceNotFound {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
    },
    /// `add resource` found the resource there.
    #[error("resource {resource} already exists in cluster {cluster}")]
    ResourceExists {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
    },
    /// The resource has no ideal state in the cluster.
    #[error("resource {resource} does not exist in cluster {cluster}")]
    ResourceNotFound {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
    },
    /// Partitions named are not partitions of the resource.
    #[error("resource {resource} in cluster {cluster} has no partition {partitions}")]
    PartitionNotFound {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// The names not found, comma-separated.
        partitions: String,
    },
    /// `add state model` found a definition of that name there.
    #[error("state model {state_model} already exists in cluster {cluster}")]
    StateModelExists {
        /// The cluster.
        cluster: String,
        /// The state model.
        state_model: String,
    },
    /// The state model is not defined in the cluster.
    #[error("state model {state_model} does not exist in cluster {cluster}")]
    StateModelNotFound {
        /// The cluster.
        cluster: String,
        /// The state model.
        state_model: String,
    },
    /// A state model definition breaks rules of a valid model.
    #[error("state model {state_model} is invalid: {}", join_errors(errors))]
    InvalidStateModel {
        /// The model's name.
        state_model: String,
        /// Every broken rule.
        errors: Vec<ValidationError>,
    },
    /// The constraint id is not in the cluster's constraints of that type.
    #[error("cluster {cluster} has no {constraint_type} with id {id}")]
    ConstraintNotFound {
        /// The cluster.
        cluster: String,
        /// `MESSAGE_CONSTRAINT` or `STATE_CONSTRAINT`.
        constraint_type: String,
        /// The constraint id.
        id: String,
    },
    /// An instance that is live cannot be dropped.
    #[error("instance {instance} is live in cluster {cluster}; stop it before dropping it")]
    InstanceLive {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
    },
    /// An enabled instance cannot be dropped (as in Helix).
    #[error("instance {instance} is enabled in cluster {cluster}; disable it before dropping it")]
    InstanceEnabled {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
    },
    /// A cluster with live instances cannot be dropped (as in Helix).
    #[error("cluster {cluster} still has live instances ({instances}); stop them first")]
    ClusterHasLiveInstances {
        /// The cluster.
        cluster: String,
        /// The live instances, comma-separated.
        instances: String,
    },
    /// The operation needs the instance's live session and it has none.
    #[error("instance {instance} is not live in cluster {cluster}")]
    InstanceNotLive {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
    },
    /// Only replicas in ERROR can be reset.
    #[error("cannot reset {resource}/{partition} on {instance}: it is {state}, not ERROR")]
    NotInError {
        /// The instance.
        instance: String,
        /// The resource.
        resource: String,
        /// The partition.
        partition: String,
        /// Its current state (`not held` when the session holds no replica of it).
        state: String,
    },
    /// A message for the replica is still waiting on the instance (as Helix, no second one).
    #[error("cannot reset {resource}/{partition} on {instance}: message {message} for it is still pending")]
    PendingMessage {
        /// The instance.
        instance: String,
        /// The resource.
        resource: String,
        /// The partition.
        partition: String,
        /// The pending message's id.
        message: String,
    },
    /// The alert rule or stat is configured already.
    #[error("{kind} {key} already exists in cluster {cluster}")]
    HealthKeyExists {
        /// The cluster.
        cluster: String,
        /// `alert rule` or `stat`.
        kind: String,
        /// The rule's or stat's canonical text.
        key: String,
    },
    /// The alert rule or stat is not configured.
    #[error("cluster {cluster} has no {kind} {key}")]
    HealthKeyNotFound {
        /// The cluster.
        cluster: String,
        /// `alert rule` or `stat`.
        kind: String,
        /// The text given.
        key: String,
    },
    /// A stored record (or a record given as input) cannot be read.
    #[error("{path}: {source}")]
    InvalidRecord {
        /// Where the record is (a store path or a file).
        path: String,
        /// The field and the reason.
        #[source]
        source: RecordError,
    },
    /// The resource cannot be rebalanced as asked.
    #[error("cannot rebalance resource {resource}: {reason}")]
    Rebalance {
        /// The resource.
        resource: String,
        /// Why.
        reason: String,
    },
    /// A record kept changing under concurrent writers; nothing was written.
    #[error("{path} kept changing while it was being updated; nothing was written, try again")]
    Conflict {
        /// The record.
        path: String,
    },
    /// A write was sent and no answer came: it may or may not have been applied.
    #[error("outcome unknown while {what}: {reason}")]
    OutcomeUnknown {
        /// What was being done.
        what: String,
        /// What happened.
        reason: String,
    },
    /// The store refused the operation or could not be reached; nothing was written.
    #[error("{what}: {source}")]
    Store {
        /// What was being done.
        what: String,
        /// The store client's error.
        #[source]
        source: ClientError,
    },
}

fn join_errors(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl AdminError {
    /// Whether the error is bad input (a usage error for the CLI, exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, AdminError::InvalidArgument { .. })
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        AdminError::InvalidArgument {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn store(what: impl Into<String>, source: ClientError) -> Self {
        match source {
            ClientError::OutcomeUnknown { reason } => AdminError::OutcomeUnknown {
                what: what.into(),
                reason,
            },
            source => AdminError::Store {
                what: what.into(),
                source,
            },
        }
    }

    pub(crate) fn record(path: impl Into<String>, source: RecordError) -> Self {
        AdminError::InvalidRecord {
            path: path.into(),
            source,
        }
    }
}

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;
type IdSource = Arc<dyn Fn() -> String + Send + Sync>;

/// The admin API of one store (any number of clusters). Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    store: PropertyStore,
    clock: Clock,
    ids: IdSource,
    user: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// An admin over `store`, with the system clock, random message ids, and the operator
    /// named by `$USER` (recorded in maintenance records).
    pub fn new(store: PropertyStore) -> Self {
        Admin {
            store,
            clock: Arc::new(system_now_ms),
            ids: Arc::new(random_id),
            user: std::env::var("USER")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| "unknown".into()),
        }
    }

    /// Uses `clock` (milliseconds since the epoch) for timestamps.
    pub fn with_clock(mut self, clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses `ids` for message ids.
    pub fn with_id_source(mut self, ids: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.ids = Arc::new(ids);
        self
    }

    /// Records `user` as the operator who switches maintenance mode on.
    pub fn with_user(mut self, user: impl Into<String>) -> Self {
        self.user = user.into();
        self
    }

    /// The store this admin writes to.
    pub fn store(&self) -> &PropertyStore {
        &self.store
    }

    fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    fn next_id(&self) -> String {
        (self.ids)()
    }
}

fn system_now_ms() -> u64 {
    crate::clock::unix_ms()
}

/// A random id in the shape of a version-4 UUID, as Helix's message ids.
fn random_id() -> String {
    let v: u128 = crate::entropy::random_u128();
    let v = (v & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Checks a cluster, resource, partition, instance or state model name: one store path
/// segment (no `/`, no whitespace or control characters, not `.` or `..`).
pub fn validate_name(kind: &str, name: &str) -> Result<(), AdminError> {
    let bad = |reason: &str| AdminError::invalid(format!("{kind} name {name:?}"), reason);
    if name.is_empty() {
        return Err(bad("a name cannot be empty"));
    }
    if name.len() > 255 {
        return Err(bad("a name has at most 255 bytes"));
    }
    if name == "." || name == ".." {
        return Err(bad("'.' and '..' are not names"));
    }
    if name.contains('/') {
        return Err(bad("a name cannot contain '/'"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("a name cannot contain spaces or control characters"));
    }
    Ok(())
}

fn layout(cluster: &str) -> Result<Layout, AdminError> {
    validate_name("cluster", cluster)?;
    Ok(Layout::new(cluster))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_look_like_uuids_and_differ() {
        let a = random_id();
        let b = random_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4", "{a}");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn names_are_single_segments() {
        assert!(validate_name("cluster", "MYCLUSTER").is_ok());
        assert!(validate_name("instance", "localhost_12913").is_ok());
        for bad in ["", "a/b", "..", "a b", "x\n"] {
            let e = validate_name("cluster", bad).unwrap_err();
            assert!(e.is_usage(), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_lost_write_is_outcome_unknown() {
        let e = AdminError::store(
            "writing x",
            ClientError::OutcomeUnknown {
                reason: "timed out".into(),
            },
        );
        assert!(matches!(e, AdminError::OutcomeUnknown { .. }), "{e}");
        assert!(e.to_string().starts_with("outcome unknown"), "{e}");
    }
}
