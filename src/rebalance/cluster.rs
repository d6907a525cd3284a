//! The engine's view of the cluster's instances.

use std::collections::{BTreeMap, BTreeSet};

/// Helix's default `INSTANCE_WEIGHT`.
pub const DEFAULT_INSTANCE_WEIGHT: u32 = 1000;

/// One instance as the engine sees it: configuration plus liveness.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    /// Instance name (`localhost_12913`).
    pub name: String,
    /// Has a live session.
    #[serde(default = "yes")]
    pub live: bool,
    /// `HELIX_ENABLED`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fault zone (`HELIX_ZONE_ID`); instances without one are each their own zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// `TAG_LIST`.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// `INSTANCE_WEIGHT`: capacity relative to the others.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Disabled partitions by resource; the key `""` applies to every resource.
    #[serde(default)]
    pub disabled_partitions: BTreeMap<String, BTreeSet<String>>,
    /// When the instance went offline (ms, same clock as `now_ms`), for delayed rebalance.
    #[serde(default)]
    pub offline_since_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

fn default_weight() -> u32 {
    DEFAULT_INSTANCE_WEIGHT
}

impl InstanceInfo {
    /// A live, enabled instance with default weight and no zone or tags.
    pub fn new(name: impl Into<String>) -> Self {
        InstanceInfo {
            name: name.into(),
            live: true,
            enabled: true,
            zone: None,
            tags: BTreeSet::new(),
            weight: DEFAULT_INSTANCE_WEIGHT,
            disabled_partitions: BTreeMap::new(),
            offline_since_ms: None,
        }
    }

    /// The fault zone this instance counts in (its own name when it has none).
    pub fn fault_zone(&self) -> &str {
        self.zone.as_deref().unwrap_or(&self.name)
    }

    /// Whether `partition` of `resource` is disabled on this instance.
    pub fn is_partition_disabled(&self, resource: &str, partition: &str) -> bool {
        [resource, ""].iter().any(|r| {
            self.disabled_partitions
                .get(*r)
                .is_some_and(|s| s.contains(partition))
        })
    }

    /// Whether the instance may host replicas of a resource with the given group tag.
    pub fn has_tag(&self, tag: Option<&str>) -> bool {
        tag.is_none_or(|t| self.tags.contains(t))
    }
}
