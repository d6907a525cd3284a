//! The engine's view of the cluster's instances.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

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

/// FNV-1a: a fixed, seedless hash for the engine's name lookups. Sets and maps hashed with it
/// are only queried, never iterated, so no decision depends on their order.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A set of names (instances) for membership tests: faster than a `BTreeSet` of strings,
/// and never iterated.
pub type NameSet = HashSet<String, BuildHasherDefault<Fnv>>;
