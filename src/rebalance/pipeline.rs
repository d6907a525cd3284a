//! The pipeline: one cluster snapshot in, the whole decision out.
//!
//! ```text
//!   ClusterSnapshot (instances, cluster config, resources with ideal state, current and
//!                    pending states, state models, state and message constraints,
//!                    maintenance/pause, now_ms)
//!     │ per resource:       state bounds (the model's, STATE_CONSTRAINT overrides)
//!     │ per resource, per partition:
//!     │   preference list   FULL_AUTO: placement::place · SEMI_AUTO: listFields ·
//!     │                     CUSTOMIZED: the mapField's instances · dropped: none
//!     │   best possible     assignment (maintenance: keep replicas, recover top states)
//!     │   candidates        transitions: next hop per replica with nothing in flight
//!     │   selection         state bounds, counting current + both ends of pending
//!     │ across the cluster:
//!     │   throttle          throttle configs, message constraints (pause: nothing)
//!     ▼
//!   Decision (best possible, preference lists, transitions to send, what was held back
//!             and why, per-instance stats, replicas moved, next recomputation)
//! ```
//!
//! [`compute`] is pure: the same snapshot gives the same decision, whatever the order of
//! its instances, resources, maps and pending transitions. Current states and pending
//! transitions of instances that are not live are ignored (their sessions ended), except
//! that FULL_AUTO's previous placement remembers where replicas were, which delayed
//! rebalance needs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

use super::assignment::{self, Eligibility};
use super::bounds::{StateBounds, StateConstraints};
use super::cluster::Fnv;
use super::error::RebalanceError;
use super::placement::{self, Placement, PlacementInput, ReplicaCount};
use super::plan::Placer;
use super::shared::Shared;
use super::throttle::{Movement, ThrottleReason, Throttles, Urgency};
use super::transitions::ReplicaTransition;
use super::{InstanceInfo, NameSet};
use crate::model::{
    sort_partitions, ClusterConfig, ClusterConstraints, IdealState, RebalanceMode, RebalanceType, Record,
};
use crate::statemodel::{self, StateModelDefinition, DROPPED, ERROR};

/// One resource as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSnapshot {
    /// The resource's name.
    pub name: String,
    /// Its ideal state; `None` when the resource was dropped (its replicas walk to DROPPED).
    pub ideal_state: Option<IdealState>,
    /// The state model of a dropped resource (from its current states); ignored when the
    /// ideal state is present.
    pub state_model: Option<String>,
    /// partition → {instance → current state}.
    pub current_state: BTreeMap<String, BTreeMap<String, String>>,
    /// Transitions sent and not yet ended.
    pub pending: Vec<ReplicaTransition>,
    /// partition → states that replicas of ended sessions may still be in (their current
    /// states and the targets of transitions sent to them), while their participant may
    /// not know yet that its session ended (see the controller's session lease). They count
    /// against the state bounds and get no transitions: a successor is not promoted to
    /// MASTER while the old MASTER may still act as one.
    pub lingering: BTreeMap<String, Vec<String>>,
}

impl ResourceSnapshot {
    /// A resource with the given ideal state, nothing held and nothing in flight.
    pub fn new(ideal_state: IdealState) -> Self {
        ResourceSnapshot {
            name: ideal_state.resource().to_string(),
            ideal_state: Some(ideal_state),
            state_model: None,
            current_state: BTreeMap::new(),
            pending: Vec::new(),
            lingering: BTreeMap::new(),
        }
    }

    /// A dropped resource of the given state model (its current states still to be set).
    pub fn dropped(name: impl Into<String>, state_model: impl Into<String>) -> Self {
        ResourceSnapshot {
            name: name.into(),
            ideal_state: None,
            state_model: Some(state_model.into()),
            current_state: BTreeMap::new(),
            pending: Vec::new(),
            lingering: BTreeMap::new(),
        }
    }
}

/// Everything the engine decides from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// Every configured instance, live or not.
    pub instances: Vec<InstanceInfo>,
    /// The cluster config (throttles, MAX_OFFLINE_INSTANCES_ALLOWED, delay defaults, …).
    pub cluster_config: ClusterConfig,
    /// The resources, each shared between the snapshots cloned from one another until one
    /// of them changes it (see [`Shared`]).
    pub resources: Vec<Shared<ResourceSnapshot>>,
    /// State models by name; built-ins need not be listed.
    pub state_models: BTreeMap<String, StateModelDefinition>,
    /// The `MESSAGE_CONSTRAINT` record, if any.
    pub message_constraints: Option<ClusterConstraints>,
    /// The `STATE_CONSTRAINT` record, if any: overrides of the state models' bounds, per
    /// resource and state (see [`super::bounds`]).
    pub state_constraints: Option<ClusterConstraints>,
    /// Maintenance mode was switched on by an operator.
    pub maintenance: bool,
    /// The cluster is paused: nothing is sent.
    pub paused: bool,
    /// The caller's clock (ms), for delayed rebalance.
    pub now_ms: u64,
}

/// Why the cluster is in maintenance mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceReason {
    /// An operator switched it on.
    Manual,
    /// More instances are offline or disabled than `MAX_OFFLINE_INSTANCES_ALLOWED`.
    TooManyOffline {
        /// Instances offline or disabled.
        offline: usize,
        /// The configured maximum.
        allowed: usize,
    },
}

/// Why a candidate transition is not sent this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// It would exceed the bound of its target state (counting pending transitions).
    Bound {
        /// The state.
        state: String,
        /// Its bound.
        bound: usize,
    },
    /// A throttle or message constraint has no room.
    Throttled(ThrottleReason),
    /// The cluster is paused.
    Paused,
}

impl std::fmt::Display for HoldReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HoldReason::Bound { state, bound } => write!(f, "bound of {state} ({bound}) reached"),
            HoldReason::Throttled(r) => write!(f, "{r}"),
            HoldReason::Paused => f.write_str("cluster paused"),
        }
    }
}

/// A candidate transition held back, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldTransition {
    /// The transition.
    pub transition: ReplicaTransition,
    /// Why it waits.
    pub reason: HoldReason,
}

/// The decision for one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceDecision {
    /// The resource's state model.
    pub state_model: String,
    /// The rebalance mode; `None` for a dropped resource.
    pub mode: Option<RebalanceMode>,
    /// partition → instances, best first.
    pub preference_lists: BTreeMap<String, Vec<String>>,
    /// partition → {instance → best possible state}.
    pub best_possible: BTreeMap<String, BTreeMap<String, String>>,
    /// The transitions to send this round, by partition (natural order) then instance.
    pub transitions: Vec<ReplicaTransition>,
    /// Candidates held back this round.
    pub held: Vec<HeldTransition>,
    /// Replicas of the best possible map (in a state other than DROPPED, ERROR and the initial
    /// state) on instances that hold no replica of the partition now.
    pub moved: usize,
}

/// Per-instance counts over the best possible maps of every resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStats {
    /// Replicas in any state but DROPPED and the initial state (ERROR included).
    pub replicas: usize,
    /// Replicas in their model's top state (MASTER, LEADER, ONLINE).
    pub top_states: usize,
}

/// The engine's whole decision for one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Per resource.
    pub resources: BTreeMap<String, ResourceDecision>,
    /// Per instance (every configured instance, zeros included).
    pub stats: BTreeMap<String, InstanceStats>,
    /// Replicas moved versus the current state, over all resources.
    pub moved: usize,
    /// When delayed rebalance needs the engine to run again (ms), if ever.
    pub next_recompute_ms: Option<u64>,
    /// Set when the cluster is in maintenance mode.
    pub maintenance: Option<MaintenanceReason>,
    /// The cluster is paused (nothing is sent).
    pub paused: bool,
}

impl Decision {
    /// Every transition to send, over all resources: (resource, transition).
    pub fn all_transitions(&self) -> impl Iterator<Item = (&str, &ReplicaTransition)> {
        self.resources
            .iter()
            .flat_map(|(r, d)| d.transitions.iter().map(move |t| (r.as_str(), t)))
    }
}

/// The states replicas will hold once their pending transitions complete: `current` with
/// each pending transition's target, except that ERROR stays ERROR (it leaves only by an
/// operator's reset) and a replica on its way to DROPPED keeps its state until it is gone.
pub(super) fn expected_states(
    current: &BTreeMap<String, String>,
    pending: &[ReplicaTransition],
) -> BTreeMap<String, String> {
    let mut out = current.clone();
    for t in pending {
        let in_error = current.get(&t.instance).is_some_and(|s| s == ERROR);
        if !in_error && t.to != DROPPED && t.to != ERROR {
            out.insert(t.instance.clone(), t.to.clone());
        }
    }
    out
}

/// Computes the decision for a snapshot with FULL_AUTO placement by [`placement::place`].
pub fn compute(snapshot: &ClusterSnapshot) -> Result<Decision, RebalanceError> {
    decide(snapshot, Placer::Builtin)
}

/// No holders.
pub(super) static NO_STATES: BTreeMap<String, String> = BTreeMap::new();

/// The cluster-wide inputs every resource is decided with.
pub(super) struct Cluster<'a> {
    pub(super) snapshot: &'a ClusterSnapshot,
    pub(super) builtins: BTreeMap<String, StateModelDefinition>,
    /// Every instance, by name.
    pub(super) instances: Vec<InstanceInfo>,
    /// Instance name → its index in `instances`.
    pub(super) index: HashMap<String, usize, BuildHasherDefault<Fnv>>,
    pub(super) live: NameSet,
    pub(super) maintenance: Option<MaintenanceReason>,
    pub(super) throttles: Throttles,
    pub(super) state_constraints: StateConstraints,
    pub(super) max_partitions_per_instance: Option<usize>,
    pub(super) delay_enabled: bool,
    pub(super) delay_ms: Option<u64>,
}

impl<'a> Cluster<'a> {
    pub(super) fn new(snapshot: &'a ClusterSnapshot) -> Result<Self, RebalanceError> {
        let mut instances: Vec<InstanceInfo> = snapshot.instances.clone();
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = instances.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(RebalanceError::DuplicateInstance {
                instance: w[0].name.clone(),
            });
        }
        let live = instances
            .iter()
            .filter(|i| i.live)
            .map(|i| i.name.clone())
            .collect();
        let config = &snapshot.cluster_config;
        let cfg_err = |e| RebalanceError::record("cluster config", e);
        let maintenance = if snapshot.maintenance {
            Some(MaintenanceReason::Manual)
        } else {
            let offline = instances.iter().filter(|i| !i.live || !i.enabled).count();
            match config.max_offline_instances_allowed().map_err(cfg_err)? {
                Some(allowed) if offline > allowed => {
                    Some(MaintenanceReason::TooManyOffline { offline, allowed })
                }
                _ => None,
            }
        };
        let throttles = Throttles::new(
            config.state_transition_throttle_configs().map_err(cfg_err)?,
            snapshot.message_constraints.as_ref(),
        )?;
        Ok(Cluster {
            snapshot,
            builtins: statemodel::builtins()
                .into_iter()
                .map(|m| (m.name().to_string(), m))
                .collect(),
            index: instances
                .iter()
                .enumerate()
                .map(|(k, i)| (i.name.clone(), k))
                .collect(),
            instances,
            live,
            maintenance,
            throttles,
            state_constraints: StateConstraints::new(snapshot.state_constraints.as_ref())?,
            max_partitions_per_instance: config.max_partitions_per_instance().map_err(cfg_err)?,
            delay_enabled: config.delay_rebalance_enabled().map_err(cfg_err)?,
            delay_ms: config.rebalance_delay_ms().map_err(cfg_err)?,
        })
    }

    /// A state model by name: the snapshot's, else a built-in.
    pub(super) fn model(&self, name: &str) -> Option<&StateModelDefinition> {
        self.snapshot
            .state_models
            .get(name)
            .or_else(|| self.builtins.get(name))
    }

    /// Throttles the selected transitions of every resource across the cluster (or holds
    /// them all when the cluster is paused): the accepted ones and the held ones.
    pub(super) fn throttle(
        &self,
        pending: &[Movement],
        candidates: Vec<Movement>,
    ) -> (Vec<Movement>, Vec<(Movement, HoldReason)>) {
        if self.snapshot.paused {
            let held = candidates.into_iter().map(|m| (m, HoldReason::Paused)).collect();
            (Vec::new(), held)
        } else {
            let out = self.throttles.apply(pending, candidates);
            let held = out
                .held
                .into_iter()
                .map(|(m, r)| (m, HoldReason::Throttled(r)))
                .collect();
            (out.accepted, held)
        }
    }

    /// Why the cluster is in maintenance mode, if it is.
    pub(super) fn maintenance(&self) -> Option<MaintenanceReason> {
        self.maintenance
    }

    /// The decision's cluster-wide fields, its resources yet to add.
    pub(super) fn empty_decision(&self) -> Decision {
        Decision {
            maintenance: self.maintenance,
            paused: self.snapshot.paused,
            ..Default::default()
        }
    }

    /// Every configured instance's counts (zeros included), summed over the resources'
    /// tallies, and the counts of instances not configured.
    pub(super) fn stats<'p>(
        &self,
        planned: impl Iterator<Item = (&'p [InstanceStats], &'p BTreeMap<String, InstanceStats>)>,
    ) -> BTreeMap<String, InstanceStats> {
        let mut stats = vec![InstanceStats::default(); self.instances.len()];
        let mut other: BTreeMap<String, InstanceStats> = BTreeMap::new();
        for (by_index, by_name) in planned {
            for (sum, s) in stats.iter_mut().zip(by_index) {
                sum.replicas += s.replicas;
                sum.top_states += s.top_states;
            }
            for (name, s) in by_name {
                let sum = other.entry(name.clone()).or_default();
                sum.replicas += s.replicas;
                sum.top_states += s.top_states;
            }
        }
        // Both in name order: the map is built in bulk.
        self.instances
            .iter()
            .map(|i| i.name.clone())
            .zip(stats)
            .chain(other)
            .collect()
    }
}

/// The cluster-wide inputs a resource's [`super::plan::Planned`] depends on: all of the snapshot but its
/// resources, the clock, the message constraints and the pause flag (those act at the
/// throttle, which runs every round).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ClusterInputs {
    instances: Vec<InstanceInfo>,
    cluster_config: ClusterConfig,
    state_models: BTreeMap<String, StateModelDefinition>,
    state_constraints: Option<ClusterConstraints>,
    maintenance: bool,
}

impl ClusterInputs {
    /// The instances of `snapshot` whose liveness, enabling or offline time differ from
    /// these inputs (none: the same inputs), or `None` when anything else differs (an
    /// instance added, removed, reordered or reconfigured, or another cluster-wide input).
    pub fn changed_instances(&self, snapshot: &ClusterSnapshot) -> Option<Vec<String>> {
        let same_rest = self.instances.len() == snapshot.instances.len()
            && self.cluster_config == snapshot.cluster_config
            && self.state_models == snapshot.state_models
            && self.state_constraints == snapshot.state_constraints
            && self.maintenance == snapshot.maintenance;
        if !same_rest {
            return None;
        }
        let mut changed = Vec::new();
        for (a, b) in self.instances.iter().zip(&snapshot.instances) {
            if a == b {
                continue;
            }
            let liveness_only = a.name == b.name
                && a.zone == b.zone
                && a.tags == b.tags
                && a.weight == b.weight
                && a.disabled_partitions == b.disabled_partitions;
            if !liveness_only {
                return None;
            }
            changed.push(b.name.clone());
        }
        Some(changed)
    }

    /// The inputs of `snapshot`.
    pub fn of(snapshot: &ClusterSnapshot) -> Self {
        ClusterInputs {
            instances: snapshot.instances.clone(),
            cluster_config: snapshot.cluster_config.clone(),
            state_models: snapshot.state_models.clone(),
            state_constraints: snapshot.state_constraints.clone(),
            maintenance: snapshot.maintenance,
        }
    }
}

/// The snapshot's resources in name order; an error for a name given twice.
pub(super) fn sorted_resources(
    snapshot: &ClusterSnapshot,
) -> Result<Vec<&Shared<ResourceSnapshot>>, RebalanceError> {
    let mut resources: Vec<&Shared<ResourceSnapshot>> = snapshot.resources.iter().collect();
    resources.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = resources.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(RebalanceError::DuplicateResource {
            resource: w[0].name.clone(),
        });
    }
    Ok(resources)
}

/// Sorts a resource's transitions and held candidates into the decision's order.
pub(super) fn order_output(d: &mut ResourceDecision) {
    sort_transitions(&mut d.transitions);
    d.held
        .sort_by(|a, b| transition_key(&a.transition).cmp(&transition_key(&b.transition)));
}

/// [`compute`] with the FULL_AUTO placement given by the caller (the engine's own
/// [`placement::place`] in production; another one to compare against in tests and benches).
pub fn compute_with(
    snapshot: &ClusterSnapshot,
    place: impl Fn(&PlacementInput<'_>) -> Placement,
) -> Result<Decision, RebalanceError> {
    decide(snapshot, Placer::Custom(&place))
}

/// [`compute`] with the given placement.
fn decide(snapshot: &ClusterSnapshot, place: Placer<'_>) -> Result<Decision, RebalanceError> {
    let cluster = Cluster::new(snapshot)?;
    let resources = sorted_resources(snapshot)?;
    let mut planned = Vec::with_capacity(resources.len());
    for res in &resources {
        planned.push(cluster.plan(res, place)?);
    }
    let mut pending: Vec<Movement> = Vec::new();
    let mut candidates: Vec<Movement> = Vec::new();
    for p in &mut planned {
        let mut held = Vec::new();
        for e in p.extras.values_mut() {
            pending.append(&mut e.pending_moves);
            candidates.append(&mut e.candidate_moves);
            held.append(&mut e.held);
        }
        p.decision.held = held;
    }
    let (accepted, held) = cluster.throttle(&pending, candidates);
    let index: HashMap<&str, usize, BuildHasherDefault<Fnv>> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    for m in accepted {
        planned[index[m.resource.as_str()]]
            .decision
            .transitions
            .push(m.transition);
    }
    for (m, reason) in held {
        planned[index[m.resource.as_str()]]
            .decision
            .held
            .push(HeldTransition {
                transition: m.transition,
                reason,
            });
    }
    let mut decision = cluster.empty_decision();
    decision.stats = cluster.stats(planned.iter().map(|p| (p.stats.as_slice(), &p.other_stats)));
    let mut out = Vec::with_capacity(planned.len());
    for (res, p) in resources.iter().zip(planned) {
        if let Some(t) = p.next_recompute_ms {
            decision.next_recompute_ms = Some(decision.next_recompute_ms.map_or(t, |n| n.min(t)));
        }
        let mut d = p.decision;
        order_output(&mut d);
        decision.moved += d.moved;
        out.push((res.name.clone(), d));
    }
    // In name order: the map is built in bulk.
    decision.resources = out.into_iter().collect();
    Ok(decision)
}

/// Whether `lists` (an ideal state's listFields) has a non-empty list for every partition.
pub(super) fn has_every_list(lists: &BTreeMap<String, Vec<String>>, partitions: &[String]) -> bool {
    let mut sorted: Vec<&str> = partitions.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut entries = lists.iter().peekable();
    sorted.into_iter().all(|p| {
        while entries.next_if(|(k, _)| k.as_str() < p).is_some() {}
        entries
            .peek()
            .is_some_and(|(k, l)| k.as_str() == p && !l.is_empty())
    })
}

/// The previous placement FULL_AUTO starts from: the ideal state's listFields where present,
/// else the current holders (live or not), highest state first, then by name. A replica in
/// the initial state serves nothing and is not a holder: counting it would make placement
/// flip-flop while a replica is being moved out (it drops to OFFLINE, sorts last, and
/// placement would pick another partition to take from its instance).
pub(super) fn previous_placement(
    ideal: &IdealState,
    model: &StateModelDefinition,
    partitions: &[String],
    current: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for p in partitions {
        let list = match ideal.preference_list(p) {
            Some(l) if !l.is_empty() => l.to_vec(),
            _ => {
                let mut holders: Vec<(&String, &String)> = current
                    .get(p)
                    .map(|h| {
                        h.iter()
                            .filter(|(_, s)| *s != DROPPED && *s != model.initial_state())
                            .collect()
                    })
                    .unwrap_or_default();
                holders.sort_by_key(|(i, s)| (model.state_priority(s).unwrap_or(usize::MAX), *i));
                holders.into_iter().map(|(i, _)| i.clone()).collect()
            }
        };
        out.insert(p.clone(), list);
    }
    out
}

/// A partition's rebalance type and urgency: recovery when the best possible map wants more
/// replicas in some active state than the current state has.
pub(super) fn classify(
    model: &StateModelDefinition,
    current: &BTreeMap<String, String>,
    best: &BTreeMap<String, String>,
) -> (RebalanceType, Urgency) {
    let initial = model.initial_state();
    let active = |s: &String| s != initial && s != DROPPED && s != ERROR;
    let count = |m: &BTreeMap<String, String>| {
        let mut c: BTreeMap<String, usize> = BTreeMap::new();
        for s in m.values().filter(|s| active(s)) {
            *c.entry(s.clone()).or_default() += 1;
        }
        c
    };
    let (want, have) = (count(best), count(current));
    let recovery = want.iter().any(|(s, n)| have.get(s).copied().unwrap_or(0) < *n);
    let top = model.top_state();
    let kind = if recovery {
        RebalanceType::RecoveryBalance
    } else {
        RebalanceType::LoadBalance
    };
    let urgency = Urgency {
        has_top_state: have.contains_key(top) || !want.contains_key(top),
        load_balance: !recovery,
        active_replicas: have.values().sum(),
    };
    (kind, urgency)
}

/// A transition's sort key: its partition's natural key, then its instance (borrowed, so
/// a comparison allocates nothing).
fn transition_key(t: &ReplicaTransition) -> (&str, u64, &str, &str) {
    let (prefix, n) = match t.partition.rsplit_once('_') {
        Some((a, b)) => match b.parse::<u64>() {
            Ok(n) => (a, n),
            Err(_) => (t.partition.as_str(), 0),
        },
        None => (t.partition.as_str(), 0),
    };
    (prefix, n, &t.partition, &t.instance)
}

/// Sorts transitions by partition (natural order: `db_2` before `db_10`), then instance.
pub fn sort_transitions(transitions: &mut [ReplicaTransition]) {
    transitions.sort_by(|a, b| transition_key(a).cmp(&transition_key(b)));
}

/// Fills a FULL_AUTO or SEMI_AUTO ideal state the way `helix-admin --rebalance` does: places
/// `replicas` replicas of every partition over `instances` (all of them, live or not, as
/// Helix does), writes the preference lists into listFields and the resulting states
/// (every listed instance up, the state model's bounds) into mapFields, and sets `REPLICAS`.
/// A CUSTOMIZED ideal state is returned unchanged apart from `REPLICAS`.
pub fn rebalance_ideal_state(
    ideal: &IdealState,
    instances: &[InstanceInfo],
    replicas: usize,
    model: &StateModelDefinition,
) -> Result<IdealState, RebalanceError> {
    let ctx = || format!("resource {}", ideal.resource());
    let partitions = ideal.partitions().map_err(|e| RebalanceError::record(ctx(), e))?;
    let mut record: Record = ideal.record.clone();
    record.set_simple(crate::model::fields::REPLICAS, replicas);
    let mode = ideal
        .rebalance_mode()
        .map_err(|e| RebalanceError::record(ctx(), e))?;
    if mode == RebalanceMode::Customized {
        return Ok(IdealState::new(record));
    }
    // Every instance counts as up for this computation.
    let all_up: Vec<InstanceInfo> = instances
        .iter()
        .map(|i| InstanceInfo {
            live: true,
            offline_since_ms: None,
            ..i.clone()
        })
        .collect();
    let previous: BTreeMap<String, Vec<String>> = partitions
        .iter()
        .filter_map(|p| ideal.preference_list(p).map(|l| (p.clone(), l.to_vec())))
        .collect();
    let input = PlacementInput {
        resource: ideal.resource(),
        partitions: &partitions,
        replicas: ReplicaCount::Count(replicas),
        instances: &all_up,
        previous: &previous,
        instance_group_tag: ideal.instance_group_tag(),
        max_partitions_per_instance: ideal
            .max_partitions_per_instance()
            .map_err(|e| RebalanceError::record(ctx(), e))?,
        delay: None,
        now_ms: 0,
    };
    let placed = placement::place(&input);
    let live: NameSet = all_up.iter().map(|i| i.name.clone()).collect();
    let none = BTreeSet::new();
    let who = Eligibility {
        live: &live,
        disabled: &none,
    };
    let mut names = partitions.clone();
    sort_partitions(&mut names);
    let bounds = StateBounds::of_model(model);
    for p in names {
        let list = placed.preference_lists.get(&p).cloned().unwrap_or_default();
        let states = assignment::assign_auto(model, &bounds, &list, &BTreeMap::new(), who, replicas);
        record.list_fields.insert(p.clone(), list);
        record.map_fields.insert(p, states);
    }
    Ok(IdealState::new(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_util::map;
    use crate::statemodel::builtin;

    #[test]
    fn missing_states_make_a_recovery_and_a_missing_top_state_is_most_urgent() {
        let ms = builtin("MasterSlave").unwrap();
        let best = map(&[("a", "MASTER"), ("b", "SLAVE"), ("c", "SLAVE")]);
        let (kind, u) = classify(&ms, &map(&[("b", "SLAVE"), ("c", "SLAVE")]), &best);
        assert_eq!(kind, RebalanceType::RecoveryBalance);
        assert!(!u.has_top_state && !u.load_balance);
        assert_eq!(u.active_replicas, 2);
        // A move: the same counts, other instances.
        let now = map(&[("d", "MASTER"), ("b", "SLAVE"), ("c", "SLAVE")]);
        let (kind, u) = classify(&ms, &now, &best);
        assert_eq!(kind, RebalanceType::LoadBalance);
        assert!(u.has_top_state && u.load_balance);
        assert!(classify(&ms, &now, &best).1 > classify(&ms, &map(&[]), &best).1);
    }

    #[test]
    fn previous_placement_prefers_lists_then_holders_by_state() {
        let ms = builtin("MasterSlave").unwrap();
        let mut is = IdealState::create("db", 2, "MasterSlave", RebalanceMode::FullAuto);
        is.record
            .list_fields
            .insert("db_0".into(), vec!["x".into(), "y".into()]);
        let parts = vec!["db_0".to_string(), "db_1".to_string()];
        let current = BTreeMap::from([
            ("db_0".to_string(), map(&[("a", "MASTER")])),
            (
                "db_1".to_string(),
                map(&[
                    ("a", "SLAVE"),
                    ("b", "MASTER"),
                    ("c", "DROPPED"),
                    ("d", "OFFLINE"),
                ]),
            ),
        ]);
        let prev = previous_placement(&is, &ms, &parts, &current);
        assert_eq!(prev["db_0"], ["x", "y"]);
        assert_eq!(prev["db_1"], ["b", "a"]);
    }

    #[test]
    fn transitions_sort_in_natural_partition_order() {
        let mut t = vec![
            ReplicaTransition::new("db_10", "a", "OFFLINE", "SLAVE"),
            ReplicaTransition::new("db_2", "b", "OFFLINE", "SLAVE"),
            ReplicaTransition::new("db_2", "a", "OFFLINE", "SLAVE"),
        ];
        sort_transitions(&mut t);
        let got: Vec<(&str, &str)> = t
            .iter()
            .map(|x| (x.partition.as_str(), x.instance.as_str()))
            .collect();
        assert_eq!(got, [("db_2", "a"), ("db_2", "b"), ("db_10", "a")]);
    }
}
