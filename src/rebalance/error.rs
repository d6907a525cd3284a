//! [`RebalanceError`]: why the engine could not decide for a cluster snapshot.
//!
//! Every variant names what was wrong (a resource, a partition, a field) so that
//! `strand plan` and the controller can print one clear line. The engine never returns a
//! partial decision: an error means nothing was decided, and no state changed anywhere.

use crate::model::RecordError;

/// Why [`super::pipeline::compute`] refused a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebalanceError {
    /// A resource names a state model that is neither given nor built in.
    #[error("resource {resource}: unknown state model '{state_model}'")]
    UnknownStateModel {
        /// The resource.
        resource: String,
        /// The state model named by `STATE_MODEL_DEF_REF`.
        state_model: String,
    },
    /// A dropped resource (one without an ideal state) does not say its state model.
    #[error("resource {resource} has no ideal state and names no state model")]
    MissingStateModel {
        /// The resource.
        resource: String,
    },
    /// A field of an ideal state (or of the cluster config) cannot be read.
    #[error("{context}: {source}")]
    InvalidRecord {
        /// What was being read (`resource myDB`, `cluster config`).
        context: String,
        /// The field and the reason.
        #[source]
        source: Box<RecordError>,
    },
    /// A current state, a pending transition or a CUSTOMIZED map names a state the
    /// resource's state model does not have.
    #[error("{replica}: {what} '{state}' is not a state of {state_model}")]
    UnknownState {
        /// The replica: `resource R, partition P, instance I`.
        replica: String,
        /// Where the state was found (`current state`, `pending transition`, `ideal state map`).
        what: &'static str,
        /// The state named.
        state: String,
        /// The resource's state model.
        state_model: String,
    },
    /// Two pending transitions are given for the same replica.
    #[error(
        "resource {resource}, partition {partition}, instance {instance}: more than one pending transition"
    )]
    DuplicatePending {
        /// The resource.
        resource: String,
        /// The partition.
        partition: String,
        /// The instance.
        instance: String,
    },
    /// Two instances share a name.
    #[error("instance {instance} is listed more than once")]
    DuplicateInstance {
        /// The repeated name.
        instance: String,
    },
    /// Two resources share a name.
    #[error("resource {resource} is listed more than once")]
    DuplicateResource {
        /// The repeated name.
        resource: String,
    },
    /// A message or state constraint's attribute is not a valid regular expression.
    #[error("{record} {id}: {attribute} = '{pattern}' is not a valid regular expression: {reason}")]
    InvalidConstraintPattern {
        /// Which record: `message constraint` or `state constraint`.
        record: &'static str,
        /// The constraint's id (its mapField key).
        id: String,
        /// The attribute.
        attribute: String,
        /// The pattern given.
        pattern: String,
        /// The regex parser's description.
        reason: String,
    },
}

impl RebalanceError {
    /// An [`RebalanceError::InvalidRecord`] while reading `context`.
    pub fn record(context: impl Into<String>, source: RecordError) -> Self {
        RebalanceError::InvalidRecord {
            context: context.into(),
            source: Box::new(source),
        }
    }
}
