//! The built-in state models: MasterSlave, LeaderStandby, OnlineOffline,
//! OnlineOfflineWithBootstrap and StorageSchemata, as Helix defines them.

use super::{StateModelDefinition, UpperBound};

/// The names of the built-in models.
pub fn builtin_names() -> [&'static str; 5] {
    [
        "MasterSlave",
        "LeaderStandby",
        "OnlineOffline",
        "OnlineOfflineWithBootstrap",
        "StorageSchemata",
    ]
}

/// Every built-in model.
pub fn builtins() -> Vec<StateModelDefinition> {
    builtin_names().iter().filter_map(|n| builtin(n)).collect()
}

/// A built-in model by name (case-sensitive, as Helix's `STATE_MODEL_DEF_REF`).
pub fn builtin(name: &str) -> Option<StateModelDefinition> {
    let b = StateModelDefinition::builder(name).initial_state("OFFLINE");
    let b = match name {
        "MasterSlave" => b
            .state_with_priority("MASTER", 1)
            .state_with_priority("SLAVE", 2)
            .state_with_priority("OFFLINE", 3)
            .upper_bound("MASTER", UpperBound::Count(1))
            .upper_bound("SLAVE", UpperBound::Replicas)
            .transition_with_priority("MASTER", "SLAVE", 1)
            .transition_with_priority("SLAVE", "MASTER", 2)
            .transition_with_priority("OFFLINE", "SLAVE", 3)
            .transition_with_priority("SLAVE", "OFFLINE", 4)
            .transition_with_priority("OFFLINE", "DROPPED", 5),
        "LeaderStandby" => b
            .state_with_priority("LEADER", 1)
            .state_with_priority("STANDBY", 2)
            .state_with_priority("OFFLINE", 3)
            .upper_bound("LEADER", UpperBound::Count(1))
            .upper_bound("STANDBY", UpperBound::Replicas)
            .transition_with_priority("LEADER", "STANDBY", 1)
            .transition_with_priority("STANDBY", "LEADER", 2)
            .transition_with_priority("OFFLINE", "STANDBY", 3)
            .transition_with_priority("STANDBY", "OFFLINE", 4)
            .transition_with_priority("OFFLINE", "DROPPED", 5),
        "OnlineOffline" => b
            .state_with_priority("ONLINE", 1)
            .state_with_priority("OFFLINE", 2)
            .upper_bound("ONLINE", UpperBound::Replicas)
            .transition_with_priority("OFFLINE", "ONLINE", 1)
            .transition_with_priority("ONLINE", "OFFLINE", 2)
            .transition_with_priority("OFFLINE", "DROPPED", 3),
        "OnlineOfflineWithBootstrap" => b
            .state_with_priority("ONLINE", 1)
            .state_with_priority("BOOTSTRAP", 2)
            .state_with_priority("OFFLINE", 3)
            .upper_bound("ONLINE", UpperBound::Replicas)
            .upper_bound("BOOTSTRAP", UpperBound::Unbounded)
            .transition_with_priority("ONLINE", "OFFLINE", 1)
            .transition_with_priority("BOOTSTRAP", "ONLINE", 2)
            .transition_with_priority("OFFLINE", "BOOTSTRAP", 3)
            .transition_with_priority("BOOTSTRAP", "OFFLINE", 4)
            .transition_with_priority("OFFLINE", "DROPPED", 5),
        "StorageSchemata" => b
            .state_with_priority("MASTER", 1)
            .state_with_priority("OFFLINE", 2)
            .upper_bound("MASTER", UpperBound::LiveCandidates)
            .transition_with_priority("MASTER", "OFFLINE", 1)
            .transition_with_priority("OFFLINE", "MASTER", 2)
            .transition_with_priority("OFFLINE", "DROPPED", 3),
        _ => return None,
    };
    b.build().ok()
}
