//! [`ConfigError`]: what the config accessor and the application property store report.

use crate::admin::AdminError;
use crate::propertystore::{ClientError, StoreError};

/// Why a config or application property store operation did not succeed. Unless the
/// variant says otherwise, nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// From the admin layer: a bad scope, key list or value, a cluster, instance or resource
    /// that does not exist, a store failure while reading or writing a config.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// An application property store path is not acceptable.
    #[error("property store path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `create` found the path there.
    #[error("{path} already exists in the property store")]
    AlreadyExists {
        /// The application path.
        path: String,
    },
    /// A conditional write found the path at another version.
    #[error("{path} is at version {actual}, expected {expected}")]
    VersionMismatch {
        /// The application path.
        path: String,
        /// The version asked for (0: absent).
        expected: u64,
        /// The version found.
        actual: u64,
    },
    /// `update` met a concurrent write on every attempt.
    #[error("update of {path} gave up after {attempts} attempts, each beaten by a concurrent write")]
    Conflict {
        /// The application path.
        path: String,
        /// How many read-compute-write rounds were tried.
        attempts: usize,
    },
    /// A subscription cannot start where asked: the store's history no longer reaches back.
    #[error("cannot replay from revision {from}: the store's history starts at revision {oldest}; subscribe from now")]
    Compacted {
        /// The revision asked for.
        from: u64,
        /// The oldest revision the store still has.
        oldest: u64,
    },
    /// A write was sent but no answer came: it may or may not have been applied.
    #[error("{what}: outcome unknown: {reason}")]
    OutcomeUnknown {
        /// The operation.
        what: String,
        /// What happened.
        reason: String,
    },
    /// The store refused or failed the operation.
    #[error("{what}: {source}")]
    Store {
        /// The operation.
        what: String,
        /// The store's error.
        source: ClientError,
    },
    /// A config value is not what its key needs.
    #[error("config key {key} in {scope} is {value:?}: {reason}")]
    BadValue {
        /// The scope.
        scope: String,
        /// The key.
        key: String,
        /// The value found.
        value: String,
        /// What was expected.
        reason: String,
    },
}

impl ConfigError {
    /// Whether the error is bad input (a usage error for the CLI).
    pub fn is_usage(&self) -> bool {
        match self {
            ConfigError::Admin(e) => e.is_usage(),
            ConfigError::InvalidPath { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn store(what: impl Into<String>, source: ClientError) -> Self {
        match source {
            ClientError::OutcomeUnknown { reason } => ConfigError::OutcomeUnknown {
                what: what.into(),
                reason,
            },
            ClientError::Store(StoreError::Compacted { requested, oldest }) => ConfigError::Compacted {
                from: requested,
                oldest,
            },
            source => ConfigError::Store {
                what: what.into(),
                source,
            },
        }
    }
}
