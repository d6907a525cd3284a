//! One resource decided up to the cluster-wide throttle, partition by partition: what
//! [`super::compute`] does for every resource, and what [`super::Engine`] redoes for only
//! the partitions whose inputs changed ([`Cluster::patch`]).
//!
//! ```text
//!   resource context   state model, bounds (STATE_CONSTRAINT), N, REPLICAS, mode, disabled
//!   preference lists   FULL_AUTO: placement · SEMI_AUTO: listFields · CUSTOMIZED: the map
//!   per partition      best possible → candidates → selection under the bounds → moves,
//!                      per-instance counts, replicas moved
//! ```
//!
//! A partition's outcome ([`Cluster::decide_partition`]) is a function of its preference
//! list, the current states and pending transitions of its live holders, whether the
//! instances named by its list and holders are live and enabled, and the resource context;
//! `N` (live candidates) reaches it only through `ANY_LIVEINSTANCE` or a bound of `N`, and
//! otherwise only as a field of its moves. [`Cluster::patch`] decides again exactly the
//! partitions where one of those inputs may differ and keeps the others' outcomes, so a
//! patched resource equals the resource planned from scratch.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::assignment::{self, Eligibility};
use super::bounds::StateBounds;
use super::delayed::DelaySettings;
use super::error::RebalanceError;
use super::holdings::Holdings;
use super::pipeline::{
    classify, expected_states, has_every_list, previous_placement, Cluster, HeldTransition, HoldReason,
    InstanceStats, ResourceDecision, ResourceSnapshot, NO_STATES,
};
use super::placement::{place_prepared, Placement, PlacementInput, Prepared, ReplicaCount};
use super::selection::{self, BoundRejection};
use super::throttle::Movement;
use super::transitions::{self, ReplicaTransition};
use crate::model::{IdealState, RebalanceMode, RecordError, Replicas};
use crate::statemodel::{StateModelDefinition, UpperBound, DROPPED, ERROR};

/// partition → {instance → state}: borrowed from the snapshot where every holder counts,
/// a filtered copy where some do not (dead instances, DROPPED).
type StatesByPartition<'a> = BTreeMap<&'a str, Cow<'a, BTreeMap<String, String>>>;
/// partition → transitions in flight.
type PendingByPartition = BTreeMap<String, Vec<ReplicaTransition>>;

/// What one partition adds besides its best possible map; kept only when not empty.
#[derive(Debug, Clone, Default)]
pub(super) struct PartitionExtras {
    /// Candidates the state bounds held back.
    pub held: Vec<HeldTransition>,
    /// Its transitions in flight, as throttles count them.
    pub pending_moves: Vec<Movement>,
    /// Its candidates that passed the state bounds, for the throttles.
    pub candidate_moves: Vec<Movement>,
    /// Replicas of its best possible map on instances that hold no replica of it now.
    pub moved: usize,
}

impl PartitionExtras {
    fn is_empty(&self) -> bool {
        self.held.is_empty()
            && self.pending_moves.is_empty()
            && self.candidate_moves.is_empty()
            && self.moved == 0
    }
}

/// How FULL_AUTO resources are placed.
#[derive(Clone, Copy)]
pub(super) enum Placer<'p> {
    /// [`super::placement::place`], keeping what a later patch reuses ([`PlacementMemo`]).
    Builtin,
    /// Another placement (tests and benches compare against one).
    Custom(&'p dyn Fn(&PlacementInput<'_>) -> Placement),
}

/// A resource's last FULL_AUTO placement by index: what a patch places again from, and
/// compares the new lists with, without names.
#[derive(Debug, Clone)]
pub(super) struct PlacementMemo {
    /// Placement's name-derived inputs (valid while the ideal state and the instances'
    /// names are; the engine patches only then).
    prepared: Prepared,
    /// The lists placed, per sorted partition, as indices into the instances sorted by
    /// name: the decision's preference lists.
    lists: Vec<Vec<u32>>,
}

/// One resource decided up to the cluster-wide throttle. What [`super::compute`] finishes at
/// once and what [`super::Engine`] keeps across rounds: it depends only on the resource's
/// snapshot and the cluster-wide inputs of [`super::pipeline::ClusterInputs`] (and on the
/// clock when `clock_sensitive`).
#[derive(Debug, Clone)]
pub(super) struct Planned {
    /// Preference lists, best possible maps and `moved`; transitions and `held` empty.
    pub decision: ResourceDecision,
    /// Per partition, in name order; partitions with nothing to add are absent.
    pub extras: BTreeMap<String, PartitionExtras>,
    /// Per-instance counts, by index into the instances sorted by name.
    pub stats: Vec<InstanceStats>,
    /// Counts of instances in its best possible map that are not configured.
    pub other_stats: BTreeMap<String, InstanceStats>,
    /// When delayed rebalance needs it decided again.
    pub next_recompute_ms: Option<u64>,
    /// Its placement read the clock (delayed rebalance is on): it holds for any `now_ms` from
    /// the one it was decided at up to (excluding) `next_recompute_ms`, as placement reads
    /// the clock only to ask which delay windows are still open.
    pub clock_sensitive: bool,
    /// `N` when it was decided.
    pub live_candidates: usize,
    /// Whether a partition's outcome depends on `N` beyond its moves' `live_candidates`
    /// (`ANY_LIVEINSTANCE`, or a state bound of `N`).
    pub n_sensitive: bool,
    /// The ideal state's partitions, in order (they depend on the ideal state only, which a
    /// patch never changes).
    pub partitions: Arc<Vec<String>>,
    /// Whether the ideal state persists a list for every partition (FULL_AUTO only).
    pub every_list: bool,
    /// Its preference lists as the built-in placement placed them (FULL_AUTO outside
    /// maintenance); `None` when they came from anywhere else.
    pub placement: Option<Box<PlacementMemo>>,
    /// Which partitions each instance holds in the current states it was decided from
    /// (kept by the engine, which patches it; `None` elsewhere).
    pub holdings: Option<Holdings>,
}

impl Planned {
    /// Its bound rejections, in partition order (the decision's `held` before throttling).
    pub fn bound_held(&self) -> Vec<HeldTransition> {
        self.extras
            .values()
            .flat_map(|e| e.held.iter().cloned())
            .collect()
    }

    /// Its transitions in flight, as throttles count them, in partition order.
    pub fn pending_moves(&self) -> impl Iterator<Item = &Movement> {
        self.extras.values().flat_map(|e| e.pending_moves.iter())
    }

    /// Its candidates, in partition order.
    pub fn candidate_moves(&self) -> impl Iterator<Item = &Movement> {
        self.extras.values().flat_map(|e| e.candidate_moves.iter())
    }
}

/// Instances that may not serve a partition: disabled instances (or all of them when the
/// resource is disabled), plus those where the partition is disabled.
struct Disabled {
    everywhere: BTreeSet<String>,
    by_partition: BTreeMap<String, BTreeSet<String>>,
}

impl Disabled {
    fn of(&self, partition: &str) -> Cow<'_, BTreeSet<String>> {
        match self.by_partition.get(partition) {
            None => Cow::Borrowed(&self.everywhere),
            Some(s) if self.everywhere.is_empty() => Cow::Borrowed(s),
            Some(s) => Cow::Owned(self.everywhere.union(s).cloned().collect()),
        }
    }
}

/// What every partition of one resource is decided with.
struct ResourceCtx<'a> {
    name: &'a str,
    model: &'a StateModelDefinition,
    model_name: String,
    /// The model's state bounds with the `STATE_CONSTRAINT` overrides for this resource.
    bounds: StateBounds,
    /// Live, enabled instances the resource may use (`N`).
    live_candidates: usize,
    /// `None` when the resource was dropped.
    ideal: Option<&'a IdealState>,
    mode: Option<RebalanceMode>,
    /// `REPLICAS` (`None` for a dropped resource).
    replicas_field: Option<Replicas>,
    in_maintenance: bool,
    /// The ideal state's partitions (none when dropped).
    partitions: Arc<Vec<String>>,
    /// FULL_AUTO: whether the ideal state persists a list for every partition (then those
    /// lists are the previous placement).
    every_list: bool,
    disabled: Disabled,
    /// partition → states ended sessions may still hold ([`ResourceSnapshot::lingering`]).
    lingering: &'a BTreeMap<String, Vec<String>>,
}

impl ResourceCtx<'_> {
    /// A partition's replica count (`R`): `REPLICAS`, the list's length when it is 0, the
    /// live candidates for `ANY_LIVEINSTANCE`; for a partition without a preference list
    /// (dropped, or no longer in the ideal state), the size of its best possible map.
    fn replicas_of(&self, list: Option<&[String]>, best_len: usize) -> usize {
        match (self.replicas_field, list) {
            (Some(Replicas::Count(0)), Some(list)) => list.len(),
            (Some(Replicas::Count(n)), Some(_)) => n,
            (Some(Replicas::AnyLiveInstance), Some(_)) => self.live_candidates,
            _ => best_len,
        }
    }

    /// Whether a partition's outcome depends on `N` beyond its moves' `live_candidates`.
    fn n_sensitive(&self) -> bool {
        self.replicas_field == Some(Replicas::AnyLiveInstance)
            || self.bounds.iter().any(|(_, b)| b == UpperBound::LiveCandidates)
    }
}

/// Per-instance counts of one resource's best possible maps.
struct Tally<'s> {
    stats: &'s mut Vec<InstanceStats>,
    other: &'s mut BTreeMap<String, InstanceStats>,
}

impl Cluster<'_> {
    /// Adds (or, with `remove`, takes away) one best possible map's replicas to the counts;
    /// returns its replicas on instances that hold no replica of the partition now.
    fn tally(
        &self,
        model: &StateModelDefinition,
        best: &BTreeMap<String, String>,
        holders: &BTreeMap<String, String>,
        t: &mut Tally<'_>,
        remove: bool,
    ) -> usize {
        let (top, initial) = (model.top_state(), model.initial_state());
        let mut moved = 0;
        for (instance, state) in best {
            if state == DROPPED || state == initial {
                continue;
            }
            let is_top = usize::from(state == top);
            match self.index.get(instance.as_str()) {
                Some(&k) => {
                    let s = &mut t.stats[k];
                    if remove {
                        s.replicas -= 1;
                        s.top_states -= is_top;
                    } else {
                        s.replicas += 1;
                        s.top_states += is_top;
                    }
                }
                None if remove => {
                    if let Some(s) = t.other.get_mut(instance) {
                        s.replicas -= 1;
                        s.top_states -= is_top;
                        if s.replicas == 0 {
                            t.other.remove(instance);
                        }
                    }
                }
                None => {
                    let s = t.other.entry(instance.clone()).or_default();
                    s.replicas += 1;
                    s.top_states += is_top;
                }
            }
            if !holders.contains_key(instance) && state != ERROR {
                moved += 1;
            }
        }
        moved
    }

    /// The resource's state model: the ideal state's, or a dropped resource's.
    fn resource_model(&self, res: &ResourceSnapshot) -> Result<&StateModelDefinition, RebalanceError> {
        let rec_err = |e| RebalanceError::record(format!("resource {}", res.name), e);
        let model_name = match &res.ideal_state {
            Some(is) => is.state_model().map_err(rec_err)?.to_string(),
            None => res
                .state_model
                .clone()
                .ok_or_else(|| RebalanceError::MissingStateModel {
                    resource: res.name.clone(),
                })?,
        };
        self.model(&model_name)
            .ok_or_else(|| RebalanceError::UnknownStateModel {
                resource: res.name.clone(),
                state_model: model_name,
            })
    }

    /// An unknown state's error.
    fn unknown(
        res: &ResourceSnapshot,
        model: &StateModelDefinition,
        partition: &str,
        instance: &str,
        what: &'static str,
        state: &str,
    ) -> RebalanceError {
        RebalanceError::UnknownState {
            replica: format!(
                "resource {}, partition {partition}, instance {instance}",
                res.name
            ),
            what,
            state: state.to_string(),
            state_model: model.name().to_string(),
        }
    }

    /// The context every partition of `res` is decided with; `known` is the last plan of the
    /// same ideal state, whose partitions it reuses.
    fn resource_ctx<'r>(
        &self,
        res: &'r ResourceSnapshot,
        model: &'r StateModelDefinition,
        known: Option<&Planned>,
    ) -> Result<ResourceCtx<'r>, RebalanceError> {
        let rec_err = |e| RebalanceError::record(format!("resource {}", res.name), e);
        let mut ctx = ResourceCtx {
            name: &res.name,
            model,
            model_name: model.name().to_string(),
            bounds: self.state_constraints.bounds_for(&res.name, model),
            live_candidates: self.live.len(),
            ideal: res.ideal_state.as_ref(),
            mode: None,
            replicas_field: None,
            in_maintenance: false,
            partitions: Arc::default(),
            every_list: false,
            disabled: Disabled {
                everywhere: BTreeSet::new(),
                by_partition: BTreeMap::new(),
            },
            lingering: &res.lingering,
        };
        let Some(ideal) = &res.ideal_state else {
            return Ok(ctx);
        };
        let mode = ideal.rebalance_mode().map_err(rec_err)?;
        ctx.mode = Some(mode);
        let tag = ideal.instance_group_tag();
        ctx.live_candidates = self
            .instances
            .iter()
            .filter(|i| i.live && i.enabled && i.has_tag(tag))
            .count();
        ctx.replicas_field = Some(ideal.replicas().map_err(rec_err)?);
        match known {
            Some(k) => {
                ctx.partitions = Arc::clone(&k.partitions);
                ctx.every_list = k.every_list;
            }
            None => {
                ctx.partitions = Arc::new(ideal.partitions().map_err(rec_err)?);
                ctx.every_list = mode == RebalanceMode::FullAuto
                    && has_every_list(&ideal.record.list_fields, &ctx.partitions);
            }
        }
        ctx.in_maintenance = self.maintenance.is_some() && mode != RebalanceMode::Customized;
        let enabled = ideal.enabled().map_err(rec_err)?;
        ctx.disabled.everywhere = self
            .instances
            .iter()
            .filter(|i| !enabled || !i.enabled)
            .map(|i| i.name.clone())
            .collect();
        for i in &self.instances {
            for key in [res.name.as_str(), ""] {
                for p in i.disabled_partitions.get(key).into_iter().flatten() {
                    ctx.disabled
                        .by_partition
                        .entry(p.clone())
                        .or_default()
                        .insert(i.name.clone());
                }
            }
        }
        Ok(ctx)
    }

    /// Current states and pending transitions of live instances, checked against the model.
    fn live_states<'r>(
        &self,
        res: &'r ResourceSnapshot,
        model: &StateModelDefinition,
    ) -> Result<(StatesByPartition<'r>, PendingByPartition), RebalanceError> {
        let mut current: Vec<(&'r str, Cow<'r, BTreeMap<String, String>>)> =
            Vec::with_capacity(res.current_state.len());
        for (partition, holders) in &res.current_state {
            if let Some(states) = self.live_holders(res, model, partition, holders)? {
                current.push((partition, states));
            }
        }
        // In key order already: the map is built in bulk.
        let current: StatesByPartition<'r> = current.into_iter().collect();
        let mut pending: PendingByPartition = BTreeMap::new();
        for p in &res.pending {
            if let Some(s) = [&p.from, &p.to].into_iter().find(|s| !model.has_state(s)) {
                return Err(Self::unknown(
                    res,
                    model,
                    &p.partition,
                    &p.instance,
                    "pending transition",
                    s,
                ));
            }
            if !self.live.contains(&p.instance) {
                continue;
            }
            let list = pending.entry(p.partition.clone()).or_default();
            if list.iter().any(|q| q.instance == p.instance) {
                return Err(RebalanceError::DuplicatePending {
                    resource: res.name.clone(),
                    partition: p.partition.clone(),
                    instance: p.instance.clone(),
                });
            }
            list.push(p.clone());
        }
        for list in pending.values_mut() {
            list.sort();
        }
        Ok((current, pending))
    }

    /// One partition's holders that count (live, not DROPPED), checked against the model;
    /// `None` when none counts.
    fn live_holders<'r>(
        &self,
        res: &ResourceSnapshot,
        model: &StateModelDefinition,
        partition: &str,
        holders: &'r BTreeMap<String, String>,
    ) -> Result<Option<Cow<'r, BTreeMap<String, String>>>, RebalanceError> {
        let mut all_count = true;
        for (instance, state) in holders {
            if !model.has_state(state) {
                return Err(Self::unknown(
                    res,
                    model,
                    partition,
                    instance,
                    "current state",
                    state,
                ));
            }
            all_count &= state != DROPPED && self.live.contains(instance);
        }
        let states = if all_count {
            Cow::Borrowed(holders)
        } else {
            Cow::Owned(
                holders
                    .iter()
                    .filter(|(i, s)| *s != DROPPED && self.live.contains(*i))
                    .map(|(i, s)| (i.clone(), s.clone()))
                    .collect(),
            )
        };
        Ok((!states.is_empty()).then_some(states))
    }

    /// Delayed rebalance settings: the resource's delay, else the cluster's; on only when
    /// both switches allow it and the delay is positive. `MIN_ACTIVE_REPLICAS` defaults to
    /// the replica count, as in Helix.
    fn delay(&self, ideal: &IdealState, replicas: usize) -> Result<Option<DelaySettings>, RecordError> {
        let delay_ms = ideal.rebalance_delay_ms()?.or(self.delay_ms);
        let enabled = self.delay_enabled && ideal.delay_rebalance_enabled()?.unwrap_or(true);
        Ok(match delay_ms {
            Some(ms) if ms > 0 && enabled => Some(DelaySettings {
                delay_ms: ms,
                min_active_replicas: ideal.min_active_replicas()?.unwrap_or(replicas).min(replicas),
            }),
            _ => None,
        })
    }

    /// Runs `f` on the FULL_AUTO placement input of a resource (outside maintenance); also
    /// says whether placement reads the clock (delayed rebalance is on).
    fn with_placement_input<R>(
        &self,
        ctx: &ResourceCtx<'_>,
        res: &ResourceSnapshot,
        f: impl FnOnce(&PlacementInput<'_>) -> R,
    ) -> Result<(R, bool), RebalanceError> {
        let rec_err = |e| RebalanceError::record(format!("resource {}", res.name), e);
        let (Some(ideal), Some(replicas_field)) = (ctx.ideal, ctx.replicas_field) else {
            return Err(RebalanceError::MissingStateModel {
                resource: res.name.clone(),
            });
        };
        let partitions: &[String] = &ctx.partitions;
        // The persisted lists are the previous placement when every partition has one
        // (placement skips the keys that are not partitions); otherwise the current holders
        // fill the gaps.
        let owned;
        let previous = if ctx.every_list {
            &ideal.record.list_fields
        } else {
            owned = previous_placement(ideal, ctx.model, partitions, &res.current_state);
            &owned
        };
        let replicas_hint = match replicas_field {
            Replicas::Count(n) => n,
            Replicas::AnyLiveInstance => ctx.live_candidates,
        };
        let delay = self.delay(ideal, replicas_hint).map_err(rec_err)?;
        let input = PlacementInput {
            resource: &res.name,
            partitions,
            replicas: match replicas_field {
                Replicas::Count(n) => ReplicaCount::Count(n),
                Replicas::AnyLiveInstance => ReplicaCount::AnyLiveInstance,
            },
            instances: &self.instances,
            previous,
            instance_group_tag: ideal.instance_group_tag(),
            max_partitions_per_instance: ideal
                .max_partitions_per_instance()
                .map_err(rec_err)?
                .or(self.max_partitions_per_instance),
            delay,
            now_ms: self.snapshot.now_ms,
        };
        Ok((f(&input), delay.is_some()))
    }

    /// The preference lists of one resource. FULL_AUTO placement may ask for a
    /// recomputation at some time; that is folded into `next_recompute_ms`.
    fn lists(
        &self,
        ctx: &ResourceCtx<'_>,
        res: &ResourceSnapshot,
        place: Placer<'_>,
        next_recompute_ms: &mut Option<u64>,
        clock_sensitive: &mut bool,
        memo: &mut Option<Box<PlacementMemo>>,
    ) -> Result<BTreeMap<String, Vec<String>>, RebalanceError> {
        let (Some(ideal), Some(mode)) = (ctx.ideal, ctx.mode) else {
            return Ok(BTreeMap::new());
        };
        let model = ctx.model;
        let partitions: &[String] = &ctx.partitions;
        let mut lists = BTreeMap::new();
        match mode {
            RebalanceMode::SemiAuto => {
                for p in partitions {
                    let list = ideal.preference_list(p).map(<[String]>::to_vec);
                    lists.insert(p.clone(), list.unwrap_or_default());
                }
            }
            RebalanceMode::Customized => {
                let empty = BTreeMap::new();
                for p in partitions {
                    let map = ideal.instance_state_map(p).unwrap_or(&empty);
                    if let Some((i, s)) = map.iter().find(|(_, s)| !model.has_state(s)) {
                        return Err(Self::unknown(res, model, p, i, "ideal state map", s));
                    }
                    let mut list: Vec<String> = map.keys().cloned().collect();
                    list.sort_by_key(|i| model.state_priority(&map[i]).unwrap_or(usize::MAX));
                    lists.insert(p.clone(), list);
                }
            }
            RebalanceMode::FullAuto if ctx.in_maintenance => {
                lists = previous_placement(ideal, model, partitions, &res.current_state);
            }
            RebalanceMode::FullAuto => {
                let ((placed, kept), sensitive) =
                    self.with_placement_input(ctx, res, |input| match place {
                        Placer::Custom(f) => (f(input), None),
                        Placer::Builtin => {
                            let prepared = Prepared::new(input);
                            let indexed = place_prepared(input, &prepared);
                            let placed = indexed.to_placement();
                            let lists = indexed.lists;
                            let kept = prepared
                                .reusable()
                                .then(|| Box::new(PlacementMemo { prepared, lists }));
                            (placed, kept)
                        }
                    })?;
                *memo = kept;
                *clock_sensitive = sensitive;
                if let Some(t) = placed.next_recompute_ms {
                    *next_recompute_ms = Some(next_recompute_ms.map_or(t, |n| n.min(t)));
                }
                lists = placed.preference_lists;
                // Placement lists every partition it was given; this is only a guard.
                if lists.len() < partitions.len() {
                    for p in partitions {
                        lists.entry(p.clone()).or_default();
                    }
                }
            }
        }
        Ok(lists)
    }

    /// One partition decided: its best possible map (`None` when it has only transitions in
    /// flight) and what else it adds. `holders` are the live holders' states, `pending` the
    /// live instances' transitions in flight (sorted).
    fn decide_partition(
        &self,
        ctx: &ResourceCtx<'_>,
        partition: &str,
        list: Option<&[String]>,
        holders: &BTreeMap<String, String>,
        pending: &[ReplicaTransition],
    ) -> (Option<BTreeMap<String, String>>, PartitionExtras) {
        let model = ctx.model;
        let best = match (list, ctx.ideal) {
            (Some(list), Some(ideal)) => {
                let disabled = ctx.disabled.of(partition);
                let who = Eligibility {
                    live: &self.live,
                    disabled: &disabled,
                };
                let replicas = match ctx.replicas_field {
                    Some(Replicas::Count(0)) | None => list.len(),
                    Some(Replicas::Count(n)) => n,
                    Some(Replicas::AnyLiveInstance) => ctx.live_candidates,
                };
                Some(if ctx.mode == Some(RebalanceMode::Customized) {
                    let map = ideal.instance_state_map(partition).unwrap_or(&NO_STATES);
                    assignment::assign_customized(model, map, holders, who)
                } else if ctx.in_maintenance {
                    assignment::assign_maintenance(model, &ctx.bounds, list, holders, who, replicas)
                } else {
                    // Replicas with a transition in flight count as already in its target
                    // state: a SLAVE about to be one keeps the list's top-state choice, instead
                    // of the first replica to finish its OFFLINE→SLAVE taking MASTER and
                    // handing it over again a round later.
                    let expected = (!pending.is_empty()).then(|| expected_states(holders, pending));
                    assignment::assign_auto(
                        model,
                        &ctx.bounds,
                        list,
                        expected.as_ref().unwrap_or(holders),
                        who,
                        replicas,
                    )
                })
            }
            // Held, but no longer in the ideal state (or the resource was dropped).
            _ => (!holders.is_empty()).then(|| assignment::assign_dropped(holders)),
        };
        let mut extras = PartitionExtras::default();
        let best_map = best.as_ref().unwrap_or(&NO_STATES);
        let busy: BTreeSet<String> = pending.iter().map(|t| t.instance.clone()).collect();
        let candidates = transitions::partition_candidates(model, partition, holders, best_map, &busy);
        if !candidates.is_empty() || !pending.is_empty() {
            let replicas = ctx.replicas_of(list, best_map.len());
            let (kind, urgency) = classify(model, holders, best_map);
            let movement = |t: &ReplicaTransition| Movement {
                resource: ctx.name.to_string(),
                state_model: ctx.model_name.clone(),
                transition: t.clone(),
                kind,
                urgency,
                transition_priority: model.transition_priority(&t.from, &t.to).unwrap_or(usize::MAX),
                live_candidates: ctx.live_candidates,
                replicas,
            };
            extras.pending_moves = pending.iter().map(movement).collect();
            if !candidates.is_empty() {
                let bounds = selection::resolve_bounds(&ctx.bounds, ctx.live_candidates, replicas);
                let lingering = ctx.lingering.get(partition).map_or(&[][..], Vec::as_slice);
                let sel =
                    selection::select(model, &bounds, holders, pending, lingering, best_map, candidates);
                extras.candidate_moves = sel.accepted.iter().map(movement).collect();
                for BoundRejection {
                    transition,
                    state,
                    bound,
                } in sel.rejected
                {
                    extras.held.push(HeldTransition {
                        transition,
                        reason: HoldReason::Bound { state, bound },
                    });
                }
            }
        }
        (best, extras)
    }

    /// One resource decided up to the cluster-wide throttle: preference lists, best possible
    /// states, selection under the state bounds, per-instance counts and movement.
    pub(super) fn plan(&self, res: &ResourceSnapshot, place: Placer<'_>) -> Result<Planned, RebalanceError> {
        let model = self.resource_model(res)?;
        let (current, pending) = self.live_states(res, model)?;
        let ctx = self.resource_ctx(res, model, None)?;
        let mut next_recompute_ms = None;
        let mut clock_sensitive = false;
        let mut memo = None;
        let lists = self.lists(
            &ctx,
            res,
            place,
            &mut next_recompute_ms,
            &mut clock_sensitive,
            &mut memo,
        )?;
        let mut stats = vec![InstanceStats::default(); self.instances.len()];
        let mut other_stats = BTreeMap::new();
        let mut best_possible = Vec::with_capacity(lists.len());
        let mut extras = Vec::new();
        let mut moved = 0;
        // Every partition with a list, live holders or something in flight, in name order
        // (the three maps are).
        let (mut l, mut c, mut q) = (
            lists.iter().peekable(),
            current.iter().peekable(),
            pending.iter().peekable(),
        );
        loop {
            let next = [
                l.peek().map(|&(k, _)| k.as_str()),
                c.peek().map(|&(k, _)| *k),
                q.peek().map(|&(k, _)| k.as_str()),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(p) = next else { break };
            let list = l.next_if(|&(k, _)| k == p).map(|(_, v)| v.as_slice());
            let holders = c.next_if(|&(k, _)| *k == p).map_or(&NO_STATES, |(_, v)| &**v);
            let in_flight = q.next_if(|&(k, _)| k == p).map_or(&[][..], |(_, v)| v.as_slice());
            let (best, mut extra) = self.decide_partition(&ctx, p, list, holders, in_flight);
            if let Some(best) = best {
                let mut t = Tally {
                    stats: &mut stats,
                    other: &mut other_stats,
                };
                extra.moved = self.tally(model, &best, holders, &mut t, false);
                best_possible.push((p.to_string(), best));
            }
            moved += extra.moved;
            if !extra.is_empty() {
                extras.push((p.to_string(), extra));
            }
        }
        let n_sensitive = ctx.n_sensitive();
        let every_list = ctx.every_list;
        Ok(Planned {
            decision: ResourceDecision {
                state_model: ctx.model_name,
                mode: ctx.mode,
                preference_lists: lists,
                // In name order: the maps are built in bulk.
                best_possible: best_possible.into_iter().collect(),
                moved,
                ..Default::default()
            },
            extras: extras.into_iter().collect(),
            stats,
            other_stats,
            next_recompute_ms,
            clock_sensitive,
            live_candidates: ctx.live_candidates,
            n_sensitive,
            partitions: ctx.partitions,
            every_list,
            placement: memo,
            holdings: None,
        })
    }

    /// Decides `res` again from its last round: `planned` and `decision` were decided from
    /// `old` (the same value when `same`), and since then only the liveness, enabling or
    /// offline time of the instances named in `changed` differ among the cluster-wide inputs;
    /// `clock_ok` says whether the last placement still holds at this round's clock. Only
    /// the partitions whose inputs may differ are decided again: those whose list changed,
    /// whose holders or transitions in flight changed, or that name a changed instance.
    /// Returns false, changing nothing, when it cannot (the ideal state or model changed,
    /// `N` changed and matters, or an input is invalid): the caller plans from scratch.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn patch(
        &self,
        res: &ResourceSnapshot,
        old: &ResourceSnapshot,
        same: bool,
        changed: &[&str],
        clock_ok: bool,
        planned: &mut Planned,
        decision: &mut ResourceDecision,
    ) -> bool {
        if !same
            && (res.ideal_state != old.ideal_state
                || res.state_model != old.state_model
                || res.lingering != old.lingering)
        {
            return false;
        }
        let Ok(model) = self.resource_model(res) else {
            return false;
        };
        let Ok(ctx) = self.resource_ctx(res, model, Some(planned)) else {
            return false;
        };
        if ctx.live_candidates != planned.live_candidates && planned.n_sensitive {
            return false;
        }
        let named = |i: &str| changed.contains(&i);
        let names_changed = |list: &[String]| list.iter().any(|i| named(i));
        // New lists, where they may differ: placement reads liveness, the clock and (with
        // lists missing, or in maintenance) the current states.
        let replace = ctx.mode == Some(RebalanceMode::FullAuto)
            && (!changed.is_empty()
                || !clock_ok
                || (!same && (ctx.in_maintenance || ctx.ideal.is_none() || !ctx.every_list)));
        // partition → its new list (`None`: it has none any more).
        let mut new_lists: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
        let mut next_recompute_ms = planned.next_recompute_ms;
        let mut clock_sensitive = planned.clock_sensitive;
        let old_lists = &decision.preference_lists;
        // Partitions whose old list names a changed instance, when found by index.
        let mut named_before: Option<Vec<String>> = None;
        if replace && !ctx.in_maintenance {
            // Placement by index, from the last one's prepared inputs when there is one:
            // only the lists that changed are named.
            let memo = planned.placement.take();
            let changed_at: Vec<u32> = changed
                .iter()
                .filter_map(|i| self.index.get(*i).map(|&k| k as u32))
                .collect();
            let every_list = ctx.every_list;
            let compare = |input: &PlacementInput<'_>| {
                let (prepared, before) = match memo {
                    Some(m) => {
                        let PlacementMemo { mut prepared, lists } = *m;
                        if !every_list {
                            // The previous placement came from current states.
                            prepared.refresh_previous(input);
                        }
                        (prepared, Some(lists))
                    }
                    None => (Prepared::new(input), None),
                };
                let placed = place_prepared(input, &prepared);
                let mut changes = BTreeMap::new();
                let mut named = None;
                match before {
                    // The same partitions, the same instances: compare by position.
                    Some(before) if before.len() == placed.lists.len() => {
                        let mut found = Vec::new();
                        for (k, (now, then)) in placed.lists.iter().zip(&before).enumerate() {
                            if now != then {
                                changes.insert(placed.partitions[k].to_string(), Some(placed.names(k)));
                            }
                            if then.iter().any(|g| changed_at.contains(g)) {
                                found.push(placed.partitions[k].to_string());
                            }
                        }
                        named = Some(found);
                    }
                    _ => {
                        let mut old = old_lists.iter().peekable();
                        for (k, p) in placed.partitions.iter().enumerate() {
                            while let Some((gone, _)) = old.next_if(|(q, _)| q.as_str() < *p) {
                                changes.insert(gone.clone(), None);
                            }
                            let kept = old
                                .next_if(|(q, _)| q.as_str() == *p)
                                .is_some_and(|(_, l)| placed.is(k, l));
                            if !kept {
                                changes.insert(p.to_string(), Some(placed.names(k)));
                            }
                        }
                        for (gone, _) in old {
                            changes.insert(gone.clone(), None);
                        }
                    }
                }
                let (count, next) = (placed.partitions.len(), placed.next_recompute_ms);
                let memo = prepared.reusable().then(|| {
                    Box::new(PlacementMemo {
                        prepared,
                        lists: placed.lists,
                    })
                });
                (changes, named, count, next, memo)
            };
            let Ok(((changes, named, placed, next, memo), sensitive)) =
                self.with_placement_input(&ctx, res, compare)
            else {
                return false;
            };
            if placed < ctx.partitions.len() {
                return false;
            }
            new_lists = changes;
            named_before = named;
            planned.placement = memo;
            clock_sensitive = sensitive;
            next_recompute_ms = next;
        } else if replace {
            // Maintenance: the lists do not come from placement.
            planned.placement = None;
            let (mut next, mut memo) = (None, None);
            let Ok(lists) = self.lists(
                &ctx,
                res,
                Placer::Builtin,
                &mut next,
                &mut clock_sensitive,
                &mut memo,
            ) else {
                return false;
            };
            planned.placement = memo;
            next_recompute_ms = next;
            diff_keys(old_lists, &lists, |p| {
                new_lists.insert(p.to_string(), lists.get(p).cloned());
            });
        }

        // The partitions to decide again.
        let mut dirty: BTreeSet<String> = new_lists.keys().cloned().collect();
        if !changed.is_empty() {
            match named_before {
                Some(named) => dirty.extend(named),
                None => {
                    for (p, list) in old_lists {
                        if names_changed(list) {
                            dirty.insert(p.clone());
                        }
                    }
                }
            }
            for (p, list) in new_lists.iter().filter_map(|(p, l)| Some(p).zip(l.as_ref())) {
                if names_changed(list) {
                    dirty.insert(p.clone());
                }
            }
            match &planned.holdings {
                // They describe the last round's current states: where this round's differ,
                // the partitions are decided again below anyway.
                Some(h) => {
                    for k in changed.iter().filter_map(|i| self.index.get(*i)) {
                        dirty.extend(h.held_by(*k).iter().cloned());
                    }
                }
                None => {
                    for (p, holders) in &res.current_state {
                        if holders.keys().any(|i| named(i)) {
                            dirty.insert(p.clone());
                        }
                    }
                }
            }
            for t in &res.pending {
                if named(&t.instance) {
                    dirty.insert(t.partition.clone());
                }
            }
        }
        // Partitions whose holders changed since the last round.
        let mut moved_holders = Vec::new();
        if !same {
            diff_keys(&old.current_state, &res.current_state, |p| {
                dirty.insert(p.to_string());
                moved_holders.push(p);
            });
            if old.pending != res.pending {
                for t in old.pending.iter().chain(&res.pending) {
                    dirty.insert(t.partition.clone());
                }
            }
        }
        let list_of = |p: &str| match new_lists.get(p) {
            Some(l) => l.as_deref(),
            None => old_lists.get(p).map(Vec::as_slice),
        };

        // Their inputs, checked as the full plan checks them (any error: plan from scratch,
        // which reports it).
        let mut in_flight: BTreeMap<&str, Vec<ReplicaTransition>> = BTreeMap::new();
        for t in &res.pending {
            if !dirty.contains(&t.partition) {
                continue;
            }
            if [&t.from, &t.to].into_iter().any(|s| !model.has_state(s)) {
                return false;
            }
            if !self.live.contains(&t.instance) {
                continue;
            }
            let list = in_flight.entry(&t.partition).or_default();
            if list.iter().any(|q| q.instance == t.instance) {
                return false;
            }
            list.push(t.clone());
        }
        let mut outcomes = Vec::with_capacity(dirty.len());
        for p in &dirty {
            let holders = match res.current_state.get(p) {
                Some(h) => match self.live_holders(res, model, p, h) {
                    Ok(h) => h,
                    Err(_) => return false,
                },
                None => None,
            };
            let holders = holders.unwrap_or(Cow::Borrowed(&NO_STATES));
            let mut pending = in_flight.remove(p.as_str()).unwrap_or_default();
            pending.sort();
            let (best, extra) = self.decide_partition(&ctx, p, list_of(p), &holders, &pending);
            outcomes.push((p, holders, best, extra));
        }

        // Apply: take the old outcomes out, put the new ones in.
        let mut t = Tally {
            stats: &mut planned.stats,
            other: &mut planned.other_stats,
        };
        for (p, holders, best, mut extra) in outcomes {
            if let Some(old_best) = decision.best_possible.remove(p) {
                self.tally(model, &old_best, &NO_STATES, &mut t, true);
            }
            if let Some(old_extra) = planned.extras.remove(p) {
                decision.moved -= old_extra.moved;
            }
            if let Some(best) = best {
                extra.moved = self.tally(model, &best, &holders, &mut t, false);
                decision.best_possible.insert(p.clone(), best);
            }
            decision.moved += extra.moved;
            if !extra.is_empty() {
                planned.extras.insert(p.clone(), extra);
            }
        }
        if ctx.live_candidates != planned.live_candidates {
            for m in planned
                .extras
                .values_mut()
                .flat_map(|e| e.pending_moves.iter_mut().chain(e.candidate_moves.iter_mut()))
            {
                m.live_candidates = ctx.live_candidates;
            }
            planned.live_candidates = ctx.live_candidates;
        }
        for (p, list) in new_lists {
            match list {
                Some(l) => decision.preference_lists.insert(p, l),
                None => decision.preference_lists.remove(&p),
            };
        }
        if let Some(h) = planned.holdings.as_mut() {
            for p in moved_holders {
                h.update(self, p, old.current_state.get(p), res.current_state.get(p));
            }
        }
        planned.next_recompute_ms = next_recompute_ms;
        planned.clock_sensitive = clock_sensitive;
        true
    }
}

/// Calls `f` with every key whose value differs between two maps (present in one only, or
/// unequal), in order.
fn diff_keys<'m, V: PartialEq>(
    a: &'m BTreeMap<String, V>,
    b: &'m BTreeMap<String, V>,
    mut f: impl FnMut(&'m str),
) {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(&(ka, va)), Some(&(kb, vb))) if ka == kb => {
                if va != vb {
                    f(ka);
                }
                a.next();
                b.next();
            }
            (Some(&(ka, _)), Some(&(kb, _))) if ka < kb => {
                f(ka);
                a.next();
            }
            (Some(_), Some(&(kb, _))) | (None, Some(&(kb, _))) => {
                f(kb);
                b.next();
            }
            (Some(&(ka, _)), None) => {
                f(ka);
                a.next();
            }
        }
    }
}
