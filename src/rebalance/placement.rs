//! FULL_AUTO placement: sticky, balanced, zone-aware preference lists.
//!
//! [`place`] decides, for one resource, which instances hold each partition's replicas and
//! in which order (the first instance of a preference list is the one that gets the top
//! state, so the order balances top states too). It takes the previous placement as input
//! and keeps what is still valid. Delayed rebalance ([`super::delayed`]) is applied here:
//! an offline instance inside its delay window keeps its place.

use std::collections::BTreeMap;

use super::InstanceInfo;

/// How many replicas each partition wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaCount {
    /// A fixed number (`REPLICAS: "3"`).
    Count(usize),
    /// One on every eligible live instance (`REPLICAS: "ANY_LIVEINSTANCE"`).
    AnyLiveInstance,
}

/// Delayed rebalance settings, resolved from the resource and the cluster config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelaySettings {
    /// How long an offline instance keeps its place (ms).
    pub delay_ms: u64,
    /// `MIN_ACTIVE_REPLICAS`: below this many live replicas, add replicas at once.
    pub min_active_replicas: usize,
}

/// Everything [`place`] needs for one resource.
#[derive(Debug, Clone)]
pub struct PlacementInput<'a> {
    /// Resource name (tie-breaking hashes may use it, so resources spread differently).
    pub resource: &'a str,
    /// Partition names, in any order.
    pub partitions: &'a [String],
    /// Replicas per partition.
    pub replicas: ReplicaCount,
    /// Every instance of the cluster, live or not, in any order.
    pub instances: &'a [InstanceInfo],
    /// The previous placement: partition → instances, best first (the previous preference
    /// list, or the current holders ordered by state priority). Instances that are gone,
    /// disabled or untagged are ignored.
    pub previous: &'a BTreeMap<String, Vec<String>>,
    /// `INSTANCE_GROUP_TAG`: only instances with this tag are candidates.
    pub instance_group_tag: Option<&'a str>,
    /// `MAX_PARTITIONS_PER_INSTANCE`: never exceeded; partitions stay short instead.
    pub max_partitions_per_instance: Option<usize>,
    /// Delayed rebalance, when enabled for this resource.
    pub delay: Option<DelaySettings>,
    /// The caller's clock (ms, same clock as [`InstanceInfo::offline_since_ms`]).
    pub now_ms: u64,
}

/// The result of [`place`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Partition → instances, best first. Every partition of the input has an entry (an
    /// empty list when nothing can host it). With delayed rebalance, a list may name an
    /// offline instance that is keeping its place.
    pub preference_lists: BTreeMap<String, Vec<String>>,
    /// When a delay expires and placement must run again (ms), if any.
    pub next_recompute_ms: Option<u64>,
}
