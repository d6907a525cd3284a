//! Where each record lives in the property store: Helix's znode layout, kept.
//!
//! ```text
//!   /<C>                                  the cluster (its key marks that it exists)
//!   /<C>/CONFIGS/CLUSTER/<C>              cluster config
//!   /<C>/CONFIGS/PARTICIPANT/<i>          instance config (a registered instance)
//!   /<C>/CONFIGS/RESOURCE/<R>             resource config
//!   /<C>/IDEALSTATES/<R>                  ideal state
//!   /<C>/EXTERNALVIEW/<R>                 external view (written by the leading controller)
//!   /<C>/STATEMODELDEFS/<SM>              state model definitions
//!   /<C>/LIVEINSTANCES/<i>                a participant's live session
//!   /<C>/INSTANCES/<i>/CURRENTSTATES/<session>/<R>   what <i> holds in that session
//!   /<C>/INSTANCES/<i>/MESSAGES/<id>      transitions sent to <i> and not yet done
//!   /<C>/INSTANCES/<i>/HISTORY            when <i> last went offline (LAST_OFFLINE_TIME)
//!   /<C>/INSTANCES/<i>/{ERRORS,STATUSUPDATES,HEALTHREPORT}
//!   /<C>/INSTANCES/<i>/HEALTHREPORT/<name>   a participant's health report (`crate::health`)
//!   /<C>/CONTROLLER/LEADER                the leading controller and its epoch
//!   /<C>/CONTROLLER/{PAUSE,MAINTENANCE}   operator switches
//!   /<C>/CONTROLLER/{HISTORY,ERRORS,STATUSUPDATES,MESSAGES}
//!   /<C>/CONTROLLER/{ALERTS,STATS}        alert rules and stats to aggregate (admin)
//!   /<C>/CONTROLLER/{PERSISTENTSTATS,ALERT_STATUS,ALERT_HISTORY}   (the leader)
//!   /<C>/PROPERTYSTORE/…                  the application's property store
//! ```
//!
//! Keys are flat in strand's store: a "directory" exists when a key has that prefix.
//! `addCluster` writes an empty key for each directory above so that `ls /<C>` shows the
//! same eight children as Helix.

/// The eight directories directly under a cluster, as Helix lists them.
pub const CLUSTER_DIRS: [&str; 8] = [
    "CONFIGS",
    "CONTROLLER",
    "EXTERNALVIEW",
    "IDEALSTATES",
    "INSTANCES",
    "LIVEINSTANCES",
    "PROPERTYSTORE",
    "STATEMODELDEFS",
];

/// The directories under `CONFIGS`.
pub const CONFIG_DIRS: [&str; 3] = ["CLUSTER", "PARTICIPANT", "RESOURCE"];

/// The directories under `CONTROLLER` (Helix's; `LEADER` is a key, not one of them).
pub const CONTROLLER_DIRS: [&str; 4] = ["ERRORS", "HISTORY", "MESSAGES", "STATUSUPDATES"];

/// The directories under `INSTANCES/<i>`.
pub const INSTANCE_DIRS: [&str; 5] = [
    "CURRENTSTATES",
    "ERRORS",
    "HEALTHREPORT",
    "MESSAGES",
    "STATUSUPDATES",
];

/// Paths of one cluster's records.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    cluster: String,
}

impl Layout {
    /// The layout of cluster `cluster`.
    pub fn new(cluster: impl Into<String>) -> Self {
        Layout {
            cluster: cluster.into(),
        }
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// `/<C>`.
    pub fn root(&self) -> String {
        format!("/{}", self.cluster)
    }

    /// `/<C>/<dir>` for one of [`CLUSTER_DIRS`].
    pub fn dir(&self, dir: &str) -> String {
        format!("/{}/{dir}", self.cluster)
    }

    /// `/<C>/CONFIGS/CLUSTER/<C>`.
    pub fn cluster_config(&self) -> String {
        format!("/{0}/CONFIGS/CLUSTER/{0}", self.cluster)
    }

    /// `/<C>/CONFIGS/PARTICIPANT`.
    pub fn instance_configs(&self) -> String {
        format!("/{}/CONFIGS/PARTICIPANT", self.cluster)
    }

    /// `/<C>/CONFIGS/PARTICIPANT/<i>`.
    pub fn instance_config(&self, instance: &str) -> String {
        format!("/{}/CONFIGS/PARTICIPANT/{instance}", self.cluster)
    }

    /// `/<C>/CONFIGS/RESOURCE`.
    pub fn resource_configs(&self) -> String {
        format!("/{}/CONFIGS/RESOURCE", self.cluster)
    }

    /// `/<C>/CONFIGS/RESOURCE/<R>`.
    pub fn resource_config(&self, resource: &str) -> String {
        format!("/{}/CONFIGS/RESOURCE/{resource}", self.cluster)
    }

    /// `/<C>/IDEALSTATES`.
    pub fn ideal_states(&self) -> String {
        format!("/{}/IDEALSTATES", self.cluster)
    }

    /// `/<C>/IDEALSTATES/<R>`.
    pub fn ideal_state(&self, resource: &str) -> String {
        format!("/{}/IDEALSTATES/{resource}", self.cluster)
    }

    /// `/<C>/EXTERNALVIEW`.
    pub fn external_views(&self) -> String {
        format!("/{}/EXTERNALVIEW", self.cluster)
    }

    /// `/<C>/EXTERNALVIEW/<R>`.
    pub fn external_view(&self, resource: &str) -> String {
        format!("/{}/EXTERNALVIEW/{resource}", self.cluster)
    }

    /// `/<C>/STATEMODELDEFS`.
    pub fn state_models(&self) -> String {
        format!("/{}/STATEMODELDEFS", self.cluster)
    }

    /// `/<C>/STATEMODELDEFS/<SM>`.
    pub fn state_model(&self, name: &str) -> String {
        format!("/{}/STATEMODELDEFS/{name}", self.cluster)
    }

    /// `/<C>/LIVEINSTANCES`.
    pub fn live_instances(&self) -> String {
        format!("/{}/LIVEINSTANCES", self.cluster)
    }

    /// `/<C>/LIVEINSTANCES/<i>`.
    pub fn live_instance(&self, instance: &str) -> String {
        format!("/{}/LIVEINSTANCES/{instance}", self.cluster)
    }

    /// `/<C>/INSTANCES`.
    pub fn instances(&self) -> String {
        format!("/{}/INSTANCES", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>`.
    pub fn instance(&self, instance: &str) -> String {
        format!("/{}/INSTANCES/{instance}", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>/GENERATION`: the last session generation the instance used, so
    /// that the next is higher even if the clock stepped back (strand's; Helix's sessions
    /// come from ZooKeeper).
    pub fn session_generation(&self, instance: &str) -> String {
        format!("/{}/INSTANCES/{instance}/GENERATION", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>/CURRENTSTATES`.
    pub fn current_states(&self, instance: &str) -> String {
        format!("/{}/INSTANCES/{instance}/CURRENTSTATES", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>/CURRENTSTATES/<session>`.
    pub fn session_current_states(&self, instance: &str, session: &str) -> String {
        format!("/{}/INSTANCES/{instance}/CURRENTSTATES/{session}", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>/CURRENTSTATES/<session>/<R>`.
    pub fn current_state(&self, instance: &str, session: &str, resource: &str) -> String {
        format!(
            "/{}/INSTANCES/{instance}/CURRENTSTATES/{session}/{resource}",
            self.cluster
        )
    }

    /// `/<C>/INSTANCES/<i>/HISTORY` (Helix's ParticipantHistory).
    pub fn instance_history(&self, instance: &str) -> String {
        format!("/{}/INSTANCES/{instance}/HISTORY", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>/MESSAGES`.
    pub fn messages(&self, instance: &str) -> String {
        format!("/{}/INSTANCES/{instance}/MESSAGES", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>/MESSAGES/<id>`.
    pub fn message(&self, instance: &str, id: &str) -> String {
        format!("/{}/INSTANCES/{instance}/MESSAGES/{id}", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>/ERRORS/<session>/<R>/<partition>`: why a transition failed.
    pub fn error(&self, instance: &str, session: &str, resource: &str, partition: &str) -> String {
        format!(
            "/{}/INSTANCES/{instance}/ERRORS/{session}/{resource}/{partition}",
            self.cluster
        )
    }

    /// `/<C>/CONTROLLER`.
    pub fn controller(&self) -> String {
        format!("/{}/CONTROLLER", self.cluster)
    }

    /// `/<C>/CONTROLLER/LEADER`: the leading controller and its epoch.
    pub fn leader(&self) -> String {
        format!("/{}/CONTROLLER/LEADER", self.cluster)
    }

    /// `/<C>/CONTROLLER/PAUSE`: present while the cluster is paused.
    pub fn pause(&self) -> String {
        format!("/{}/CONTROLLER/PAUSE", self.cluster)
    }

    /// `/<C>/CONTROLLER/MAINTENANCE`: present while maintenance mode is on.
    pub fn maintenance(&self) -> String {
        format!("/{}/CONTROLLER/MAINTENANCE", self.cluster)
    }

    /// `/<C>/CONTROLLER/HISTORY`: past leaders.
    pub fn controller_history(&self) -> String {
        format!("/{}/CONTROLLER/HISTORY", self.cluster)
    }

    /// `/<C>/INSTANCES/<i>/HEALTHREPORT/<name>`: a participant's health report.
    pub fn health_report(&self, instance: &str, name: &str) -> String {
        format!("/{}/INSTANCES/{instance}/HEALTHREPORT/{name}", self.cluster)
    }

    /// `/<C>/CONTROLLER/ALERTS`: the alert rules (admin's, Helix's name).
    pub fn alerts(&self) -> String {
        format!("/{}/CONTROLLER/ALERTS", self.cluster)
    }

    /// `/<C>/CONTROLLER/STATS`: stats to aggregate besides the rules' (admin's; Helix
    /// keeps them in `PERSISTENTSTATS`, which strand leaves to the leader alone).
    pub fn stats(&self) -> String {
        format!("/{}/CONTROLLER/STATS", self.cluster)
    }

    /// `/<C>/CONTROLLER/PERSISTENTSTATS`: the aggregates (the leader's).
    pub fn persistent_stats(&self) -> String {
        format!("/{}/CONTROLLER/PERSISTENTSTATS", self.cluster)
    }

    /// `/<C>/CONTROLLER/ALERT_STATUS`: what fires now (the leader's).
    pub fn alert_status(&self) -> String {
        format!("/{}/CONTROLLER/ALERT_STATUS", self.cluster)
    }

    /// `/<C>/CONTROLLER/ALERT_HISTORY`: the last alert transitions (the leader's).
    pub fn alert_history(&self) -> String {
        format!("/{}/CONTROLLER/ALERT_HISTORY", self.cluster)
    }

    /// `/<C>/CONFIGS/CLUSTER/<C>` holds constraints too in Helix; strand keeps them at
    /// `/<C>/CONFIGS/CONSTRAINT/<TYPE>` (`MESSAGE_CONSTRAINT`, `STATE_CONSTRAINT`).
    pub fn constraint(&self, constraint_type: &str) -> String {
        format!("/{}/CONFIGS/CONSTRAINT/{constraint_type}", self.cluster)
    }

    /// `/<C>/PROPERTYSTORE`.
    pub fn property_store(&self) -> String {
        format!("/{}/PROPERTYSTORE", self.cluster)
    }

    /// What a key under this cluster is, when it is one of the records above.
    pub fn classify<'a>(&self, path: &'a str) -> Option<Key<'a>> {
        let rest = path.strip_prefix('/')?.strip_prefix(self.cluster.as_str())?;
        let rest = rest.strip_prefix('/')?;
        let parts: Vec<&'a str> = rest.split('/').collect();
        Some(match parts.as_slice() {
            ["CONFIGS", "CLUSTER", c] if *c == self.cluster => Key::ClusterConfig,
            ["CONFIGS", "PARTICIPANT", i] => Key::InstanceConfig(i),
            ["CONFIGS", "RESOURCE", r] => Key::ResourceConfig(r),
            ["CONFIGS", "CONSTRAINT", t] => Key::Constraint(t),
            ["IDEALSTATES", r] => Key::IdealState(r),
            ["EXTERNALVIEW", r] => Key::ExternalView(r),
            ["STATEMODELDEFS", m] => Key::StateModel(m),
            ["LIVEINSTANCES", i] => Key::LiveInstance(i),
            ["INSTANCES", i, "CURRENTSTATES", s, r] => Key::CurrentState {
                instance: i,
                session: s,
                resource: r,
            },
            ["INSTANCES", i, "MESSAGES", id] => Key::Message { instance: i, id },
            ["INSTANCES", i, "HISTORY"] => Key::InstanceHistory(i),
            ["CONTROLLER", "LEADER"] => Key::Leader,
            ["CONTROLLER", "PAUSE"] => Key::Pause,
            ["CONTROLLER", "MAINTENANCE"] => Key::Maintenance,
            _ => Key::Other,
        })
    }
}

/// A cluster key, by kind (see [`Layout::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// The cluster config.
    ClusterConfig,
    /// An instance config.
    InstanceConfig(&'a str),
    /// A resource config.
    ResourceConfig(&'a str),
    /// A constraint record, by type.
    Constraint(&'a str),
    /// An ideal state.
    IdealState(&'a str),
    /// An external view.
    ExternalView(&'a str),
    /// A state model definition.
    StateModel(&'a str),
    /// A live instance.
    LiveInstance(&'a str),
    /// A current state.
    CurrentState {
        /// The instance.
        instance: &'a str,
        /// The session.
        session: &'a str,
        /// The resource.
        resource: &'a str,
    },
    /// A message to an instance.
    Message {
        /// The instance.
        instance: &'a str,
        /// The message id.
        id: &'a str,
    },
    /// An instance's history (Helix's ParticipantHistory: when it last went offline).
    InstanceHistory(&'a str),
    /// The controller leadership record.
    Leader,
    /// The pause switch.
    Pause,
    /// The maintenance switch.
    Maintenance,
    /// Anything else under the cluster (directories, property store, history…).
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_helix_layout_and_classify_back() {
        let l = Layout::new("MYCLUSTER");
        assert_eq!(l.ideal_state("myDB"), "/MYCLUSTER/IDEALSTATES/myDB");
        assert_eq!(l.cluster_config(), "/MYCLUSTER/CONFIGS/CLUSTER/MYCLUSTER");
        assert_eq!(
            l.current_state("localhost_12913", "s1", "myDB"),
            "/MYCLUSTER/INSTANCES/localhost_12913/CURRENTSTATES/s1/myDB"
        );
        assert_eq!(l.classify(&l.ideal_state("myDB")), Some(Key::IdealState("myDB")));
        assert_eq!(
            l.classify(&l.current_state("i", "s", "r")),
            Some(Key::CurrentState {
                instance: "i",
                session: "s",
                resource: "r"
            })
        );
        assert_eq!(
            l.classify(&l.message("i", "m1")),
            Some(Key::Message {
                instance: "i",
                id: "m1"
            })
        );
        assert_eq!(l.classify(&l.leader()), Some(Key::Leader));
        assert_eq!(l.classify("/MYCLUSTER/IDEALSTATES"), Some(Key::Other));
        assert_eq!(l.classify("/OTHER/IDEALSTATES/x"), None);
        assert_eq!(l.classify("/MYCLUSTERX/IDEALSTATES/x"), None);
        assert_eq!(l.classify("/MYCLUSTER/CONFIGS/CLUSTER/OTHER"), Some(Key::Other));
    }
}
