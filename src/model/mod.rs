//! The data model: Helix's `ZNRecord` ([`Record`]) and typed views over it.
//!
//! Every piece of cluster metadata (ideal states, external views, current states, configs,
//! state model definitions, messages) is a [`Record`]: an `id` plus `simpleFields`,
//! `listFields` and `mapFields`. The typed views in this module read and write Helix's own
//! field names, so a Helix user can read, export and import strand's records.

mod constraints;
mod current_state;
mod external_view;
pub mod layout;
mod live_instance;
mod message;
mod record;
mod resource_config;
mod throttle;
mod views;

pub use constraints::{
    ClusterConstraints, ConstraintAttribute, ConstraintItem, ConstraintType, ConstraintValue,
};
pub use current_state::CurrentState;
pub use external_view::ExternalView;
pub use layout::Layout;
pub use live_instance::LiveInstance;
pub use message::{Message, MessageState, MessageType, StateTransitionBuilder};
pub use record::{Record, RecordError};
pub use resource_config::ResourceConfig;
pub use throttle::{RebalanceType, StateTransitionThrottleConfig, ThrottleScope};
pub use views::*;

/// Helpers shared by the unit tests of the model and of the engine.
#[cfg(test)]
pub(crate) mod test_util {
    use std::collections::BTreeMap;

    /// A string map from literal pairs.
    pub(crate) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}
