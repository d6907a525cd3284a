//! FULL_AUTO placement: sticky, balanced, zone-aware preference lists.
//!
//! [`place`] decides, for one resource, which instances hold each partition's replicas and
//! in which order (the first instance of a preference list is the one that gets the top
//! state, so the order balances top states too). It takes the previous placement as input
//! and keeps what is still valid. Delayed rebalance ([`super::delayed`]) is applied here:
//! an offline instance inside its delay window keeps its place.
//!
//! ```text
//!  previous lists ──► keep what is valid (candidate, no duplicate, zone room, ≤ R)
//!        │
//!  targets ◄── water-filling by weight, per fault zone then per instance, with the zone
//!        │      bounds of one partition and the caps; ties go to what is already held
//!        ▼
//!  move     over-target instances hand replicas to under-target ones, in place
//!  fill     empty slots take the valid instance with the largest deficit (two-level heap)
//!  augment  stuck slots: shortest chain of reassignments to an instance with room
//!           (first through replicas placed this round, so nothing kept moves)
//!  polish   single moves that even the weighted load, where targets were unreachable
//!  tops     first position: keep the previous holder, then over-target instances hand
//!           tops over (directly, along chains), then single hand-overs that even it
//!        ▼
//!  preference lists (top first) + when the next delay expires
//! ```
//!
//! Everything runs on integer indices and flat vectors: names are sorted once, so the
//! result does not depend on the order of the input's lists or maps, and ties are broken
//! by a stable hash of the resource and instance names (so resources spread differently).
//! Targets are `floor` or `ceil` of each instance's share: replica and top-state counts
//! are within ±1 of even (weighted), as far as fault-zone isolation and caps allow.
//! A result is its own fixed point: placing again with it as the previous placement
//! returns it unchanged, so a controller that reruns placement every round moves nothing
//! until something changes.

use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use super::delayed;
pub use super::delayed::DelaySettings;
use super::InstanceInfo;
pub use prepared::Prepared;
use shares::{
    apportion, apportion_one, bisect, bisect_level, share_bound, share_bounds, waterfill, zone_limits, Level,
};

mod prepared;
mod shares;

/// How many replicas each partition wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaCount {
    /// A fixed number (`REPLICAS: "3"`).
    Count(usize),
    /// One on every eligible live instance (`REPLICAS: "ANY_LIVEINSTANCE"`).
    AnyLiveInstance,
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

/// Marks an empty slot or a missing index.
const NONE: u32 = u32::MAX;

/// Work budget of one augmenting-path search (instances examined); past it the slot is
/// filled by the fallback instead.
const SEARCH_BUDGET: usize = 1 << 21;

/// Computes the preference lists of one FULL_AUTO resource. See the module documentation.
pub fn place(input: &PlacementInput<'_>) -> Placement {
    place_indexed(input).into_placement()
}

/// [`place`]'s result before it is named: lists of indices into the sorted instances, so a
/// caller holding the last lists can compare them without building new ones.
#[derive(Debug, Clone)]
pub struct IndexedPlacement<'a> {
    /// The partitions, sorted, without duplicates.
    pub partitions: Vec<&'a str>,
    /// The instances, sorted by name, without duplicates.
    pub instances: Vec<&'a InstanceInfo>,
    /// Each partition's list (same order as `partitions`): indices into `instances`, best
    /// first.
    pub lists: Vec<Vec<u32>>,
    /// When a delay expires and placement must run again (ms), if any.
    pub next_recompute_ms: Option<u64>,
}

impl IndexedPlacement<'_> {
    /// Partition `p`'s list, by name.
    pub fn names(&self, p: usize) -> Vec<String> {
        self.lists[p]
            .iter()
            .map(|&g| self.instances[g as usize].name.clone())
            .collect()
    }

    /// Whether partition `p`'s list is `names`.
    pub fn is(&self, p: usize, names: &[String]) -> bool {
        let list = &self.lists[p];
        list.len() == names.len()
            && list
                .iter()
                .zip(names)
                .all(|(&g, n)| self.instances[g as usize].name == *n)
    }

    /// The named placement.
    pub fn into_placement(self) -> Placement {
        self.to_placement()
    }

    /// The named placement, keeping this one.
    pub fn to_placement(&self) -> Placement {
        // Partitions are in name order already, so collecting builds the map in bulk.
        let preference_lists = (0..self.partitions.len())
            .map(|p| (self.partitions[p].to_string(), self.names(p)))
            .collect();
        Placement {
            preference_lists,
            next_recompute_ms: self.next_recompute_ms,
        }
    }
}

/// [`place`] without naming the result.
pub fn place_indexed<'a>(input: &PlacementInput<'a>) -> IndexedPlacement<'a> {
    place_prepared(input, &Prepared::new(input))
}

/// [`place_indexed`] with its name-derived inputs prepared already (by [`Prepared::new`] on
/// this input, or on one it may serve: see [`Prepared`]).
pub fn place_prepared<'a>(input: &PlacementInput<'a>, prepared: &Prepared) -> IndexedPlacement<'a> {
    // Canonical orders: partitions and instances by name, duplicates dropped.
    let parts: Vec<&str> = prepared
        .part_order
        .iter()
        .map(|&k| input.partitions[k as usize].as_str())
        .collect();
    let insts: Vec<&InstanceInfo> = prepared
        .inst_order
        .iter()
        .map(|&k| &input.instances[k as usize])
        .collect();
    let prev = &prepared.prev;

    let eligible = |x: &InstanceInfo| x.enabled && x.has_tag(input.instance_group_tag);
    let live: Vec<bool> = insts.iter().map(|x| x.live && eligible(x)).collect();
    let expiry: Vec<Option<u64>> = insts
        .iter()
        .map(|x| match input.delay {
            Some(d) if eligible(x) && !x.live => delayed::expiry(x, &d, input.now_ms),
            _ => None,
        })
        .collect();
    let ctx = Ctx {
        insts: &insts,
        part_tie: &prepared.part_tie,
        inst_tie: &prepared.inst_tie,
        zone_rank: &prepared.zone_rank,
        zone_tie: &prepared.zone_tie,
        prev,
        replicas: input.replicas,
        cap: input.max_partitions_per_instance,
    };

    let any_delayed = expiry.iter().any(Option::is_some);
    let lists: Vec<Vec<u32>> = if any_delayed {
        // All: live instances plus the offline ones keeping their places (those that hold
        // something); active: live only.
        let mut holds_any = vec![false; insts.len()];
        for &g in prev.iter().flatten() {
            holds_any[g as usize] = true;
        }
        let all_members: Vec<Member> = (0..insts.len())
            .filter_map(|g| {
                if live[g] {
                    Some(Member::Free(g as u32))
                } else {
                    (expiry[g].is_some() && holds_any[g]).then_some(Member::Pinned(g as u32))
                }
            })
            .collect();
        let mut all = ctx.solve(&all_members);
        let active_members: Vec<Member> = (0..insts.len())
            .filter(|&g| live[g])
            .map(|g| Member::Free(g as u32))
            .collect();
        // The live-only placement starts from the "all" one: its replacements for the
        // offline replicas are where those replicas go if the delay expires, and the same
        // "all" result gives the same top-up (so placing again from a result keeps it).
        let active_ctx = Ctx { prev: &all, ..ctx };
        let active = active_ctx.solve(&active_members);
        // As in Helix, MIN_ACTIVE_REPLICAS counts at most the replicas a partition wants.
        let wanted = match input.replicas {
            ReplicaCount::Count(r) => r,
            ReplicaCount::AnyLiveInstance => usize::MAX,
        };
        let min_active = input.delay.map_or(0, |d| d.min_active_replicas).min(wanted);
        delayed::top_up(
            &mut all,
            prev,
            &active,
            &live,
            min_active,
            input.max_partitions_per_instance,
        );
        all
    } else {
        let members: Vec<Member> = (0..insts.len())
            .filter(|&g| live[g])
            .map(|g| Member::Free(g as u32))
            .collect();
        ctx.solve(&members)
    };

    IndexedPlacement {
        partitions: parts,
        instances: insts,
        lists,
        next_recompute_ms: expiry.iter().flatten().copied().min(),
    }
}

/// A stable 64-bit hash of two strings (FNV-1a, then a splitmix finaliser), independent of
/// the process's hash seed.
fn hash2(a: &str, b: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.bytes().chain([0xff]).chain(b.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A candidate of one solve: free to take replicas, or pinned (an offline instance in its
/// delay window: it keeps exactly the replicas it held, takes no new ones and no top).
#[derive(Debug, Clone, Copy)]
enum Member {
    /// A live, enabled, tagged instance (global index).
    Free(u32),
    /// An offline instance keeping its place (global index).
    Pinned(u32),
}

/// What every solve of one `place` call shares.
struct Ctx<'a> {
    insts: &'a [&'a InstanceInfo],
    part_tie: &'a [u64],
    /// Per instance (global index): its tie-breaking hash, its zone's rank.
    inst_tie: &'a [u64],
    zone_rank: &'a [u32],
    /// Per zone rank: the zone's tie-breaking hash.
    zone_tie: &'a [u64],
    prev: &'a [Vec<u32>],
    replicas: ReplicaCount,
    cap: Option<usize>,
}

impl Ctx<'_> {
    /// Places every partition on `members`; returns lists of global instance indices.
    fn solve(&self, members: &[Member]) -> Vec<Vec<u32>> {
        let nparts = self.prev.len();
        let n = members.len();
        let r = match self.replicas {
            ReplicaCount::Count(r) => r.min(n),
            ReplicaCount::AnyLiveInstance => n,
        };
        if n == 0 || r == 0 || nparts == 0 {
            return vec![Vec::new(); nparts];
        }
        let mut s = Solver::new(self, members, r);
        s.keep_previous();
        s.compute_targets();
        s.move_excess();
        s.fill();
        s.assign_tops();
        s.into_lists()
    }
}

/// One solve's working state, all indexed by candidate (`0..n`) and partition (`0..P`).
struct Solver<'a> {
    ctx: &'a Ctx<'a>,
    /// Candidate → global instance index.
    global: Vec<u32>,
    /// Global instance index → candidate (or `NONE`).
    local: Vec<u32>,
    pinned: Vec<bool>,
    weight: Vec<f64>,
    tie: Vec<u64>,
    zone: Vec<u32>,
    zone_tie: Vec<u64>,
    /// Replicas of one partition a zone may hold.
    zone_max: Vec<u32>,
    /// Instances per zone.
    zone_members: Vec<Vec<u32>>,
    /// Most replicas an instance may hold.
    hard: Vec<u32>,
    nparts: usize,
    r: usize,
    /// `nparts × r` slots, `NONE` when empty.
    slots: Vec<u32>,
    /// Whether a slot's replica is new in this round (not kept from the previous lists).
    fresh: Vec<bool>,
    count: Vec<u32>,
    /// Replicas kept from the previous lists, per instance (before any move).
    kept: Vec<u32>,
    target: Vec<u32>,
    /// Floor and ceiling of each instance's exact share: a ceiling unused by one
    /// instance may pass to another whose floor is its target.
    lower: Vec<u32>,
    upper: Vec<u32>,
    /// Per zone: the sum of its instances' targets, and the floor and ceiling of its share.
    zone_target: Vec<u32>,
    zone_low: Vec<u32>,
    zone_up: Vec<u32>,
    /// Top-state targets used while moving, estimated from the replica targets.
    top_estimate: Vec<u32>,
    /// Partitions each instance held at the first position of the kept lists.
    kept_tops: Vec<u32>,
}

impl<'a> Solver<'a> {
    fn new(ctx: &'a Ctx<'a>, members: &[Member], r: usize) -> Self {
        let n = members.len();
        let mut global = Vec::with_capacity(n);
        let mut pinned = Vec::with_capacity(n);
        for m in members {
            match *m {
                Member::Free(g) => {
                    global.push(g);
                    pinned.push(false);
                }
                Member::Pinned(g) => {
                    global.push(g);
                    pinned.push(true);
                }
            }
        }
        let mut local = vec![NONE; ctx.insts.len()];
        for (i, &g) in global.iter().enumerate() {
            local[g as usize] = i as u32;
        }
        let info = |i: usize| ctx.insts[global[i] as usize];
        let weight: Vec<f64> = (0..n).map(|i| f64::from(info(i).weight.max(1))).collect();
        let tie: Vec<u64> = global.iter().map(|&g| ctx.inst_tie[g as usize]).collect();
        // Zones, indexed by sorted zone name (ranks sort as the names do).
        let rank = |i: usize| ctx.zone_rank[global[i] as usize];
        let mut znames: Vec<u32> = (0..n).map(rank).collect();
        znames.sort_unstable();
        znames.dedup();
        let zone: Vec<u32> = (0..n)
            .map(|i| znames.binary_search(&rank(i)).unwrap_or(0) as u32)
            .collect();
        let mut zone_members = vec![Vec::new(); znames.len()];
        for (i, &z) in zone.iter().enumerate() {
            zone_members[z as usize].push(i as u32);
        }
        let sizes: Vec<usize> = zone_members.iter().map(Vec::len).collect();
        let zone_max = zone_limits(&sizes, r, ctx.replicas == ReplicaCount::AnyLiveInstance);
        let zone_tie = znames.iter().map(|&z| ctx.zone_tie[z as usize]).collect();
        let nparts = ctx.prev.len();
        let hard_cap = ctx.cap.unwrap_or(usize::MAX).min(nparts) as u32;
        Solver {
            ctx,
            global,
            local,
            pinned,
            weight,
            tie,
            zone,
            zone_tie,
            zone_max,
            zone_members,
            hard: vec![hard_cap; n],
            nparts,
            r,
            slots: vec![NONE; nparts * r],
            fresh: vec![false; nparts * r],
            count: vec![0; n],
            kept: vec![0; n],
            target: vec![0; n],
            lower: vec![0; n],
            upper: vec![0; n],
            zone_target: Vec::new(),
            zone_low: Vec::new(),
            zone_up: Vec::new(),
            top_estimate: vec![0; n],
            kept_tops: vec![0; n],
        }
    }

    fn n(&self) -> usize {
        self.global.len()
    }

    fn row(&self, p: usize) -> &[u32] {
        &self.slots[p * self.r..(p + 1) * self.r]
    }

    fn holds(&self, p: usize, i: u32) -> bool {
        self.row(p).contains(&i)
    }

    /// Replicas of partition `p` in zone `z`, not counting instance `except`.
    fn zone_count(&self, p: usize, z: u32, except: u32) -> u32 {
        self.row(p)
            .iter()
            .filter(|&&i| i != NONE && i != except && self.zone[i as usize] == z)
            .count() as u32
    }

    /// Whether `i` may join partition `p` in place of `except` (zone room, no duplicate).
    fn may_join(&self, p: usize, i: u32, except: u32) -> bool {
        let z = self.zone[i as usize];
        !self.holds(p, i) && self.zone_count(p, z, except) < self.zone_max[z as usize]
    }

    /// Keeps every previous replica that is still valid, in the previous order.
    /// Pinned (offline, delayed) instances are kept first: a list that grew past `R` for
    /// `MIN_ACTIVE_REPLICAS` gives up its live extras, which the top-up adds back.
    fn keep_previous(&mut self) {
        let any_pinned = self.pinned.iter().any(|&b| b);
        for p in 0..self.nparts {
            let mut k = 0;
            let passes: &[bool] = if any_pinned { &[true, false] } else { &[false] };
            for &pinned_pass in passes {
                for &g in &self.ctx.prev[p] {
                    if k == self.r {
                        break;
                    }
                    let i = self.local[g as usize];
                    if i == NONE || (any_pinned && self.pinned[i as usize] != pinned_pass) {
                        continue;
                    }
                    if !self.may_join(p, i, NONE) {
                        continue;
                    }
                    self.slots[p * self.r + k] = i;
                    self.count[i as usize] += 1;
                    k += 1;
                }
            }
            if any_pinned {
                // Back to the previous order.
                let order = &self.ctx.prev[p];
                let local = &self.local;
                let rank = |i: u32| {
                    order
                        .iter()
                        .position(|&g| local[g as usize] == i)
                        .unwrap_or(usize::MAX)
                };
                self.slots[p * self.r..p * self.r + k].sort_by_key(|&i| rank(i));
            }
        }
        self.kept.clone_from(&self.count);
        for p in 0..self.nparts {
            if let Some(&i) = self
                .row(p)
                .iter()
                .find(|&&i| i != NONE && !self.pinned[i as usize])
            {
                self.kept_tops[i as usize] += 1;
            }
        }
        for i in 0..self.n() {
            if self.pinned[i] {
                self.hard[i] = self.hard[i].min(self.kept[i]);
            }
        }
    }

    /// Replica targets: water-filling by weight over zones then instances, rounded to
    /// floor or ceil with ties going to the instances (zones) already holding more.
    fn compute_targets(&mut self) {
        let n = self.n();
        let lo: Vec<f64> = (0..n)
            .map(|i| {
                if self.pinned[i] {
                    f64::from(self.hard[i])
                } else {
                    0.0
                }
            })
            .collect();
        let hi: Vec<f64> = self.hard.iter().map(|&h| f64::from(h)).collect();
        let nz = self.zone_members.len();
        let zsum_max: u32 = self.zone_max.iter().sum();
        let mut zlo = vec![0u64; nz];
        let mut zhi = vec![0u64; nz];
        for z in 0..nz {
            let cap_sum: u64 = self.zone_members[z]
                .iter()
                .map(|&i| u64::from(self.hard[i as usize]))
                .sum();
            let m = u64::from(self.zone_max[z]);
            zhi[z] = (self.nparts as u64 * m).min(cap_sum);
            let others = u64::from(zsum_max) - m;
            let least = (self.r as u64).saturating_sub(others);
            zlo[z] = (self.nparts as u64 * least).min(zhi[z]);
        }
        let total: u64 = (self.nparts as u64 * self.r as u64).min(zhi.iter().sum());
        let zone_total = |z: usize, lambda: f64| -> f64 {
            let s: f64 = self.zone_members[z]
                .iter()
                .map(|&i| (lambda * self.weight[i as usize]).clamp(lo[i as usize], hi[i as usize]))
                .sum();
            s.clamp(zlo[z] as f64, zhi[z] as f64)
        };
        let lambda_max = (0..n).map(|i| hi[i] / self.weight[i]).fold(0.0, f64::max) + 1.0;
        let lambda = if self.zone_members.iter().all(|m| m.len() == 1) {
            // Every zone is one instance: the same sum over flat terms, zone by zone.
            let flat =
                |v: &[f64]| -> Vec<f64> { self.zone_members.iter().map(|m| v[m[0] as usize]).collect() };
            let (w, l, h) = (flat(&self.weight), flat(&lo), flat(&hi));
            let zl: Vec<f64> = zlo.iter().map(|&v| v as f64).collect();
            let zh: Vec<f64> = zhi.iter().map(|&v| v as f64).collect();
            let level = Level {
                w: &w,
                lo: &l,
                hi: &h,
                outer: Some((&zl, &zh)),
            };
            bisect_level(lambda_max, total as f64, &level)
        } else {
            bisect(lambda_max, total as f64, |l| {
                (0..nz).map(|z| zone_total(z, l)).sum()
            })
        };
        let ytot: Vec<f64> = (0..nz).map(|z| zone_total(z, lambda)).collect();
        let zkept: Vec<u64> = (0..nz)
            .map(|z| {
                self.zone_members[z]
                    .iter()
                    .map(|&i| u64::from(self.kept[i as usize]))
                    .sum()
            })
            .collect();
        let yint = apportion(&ytot, &zlo, &zhi, total, &zkept, &self.zone_tie);
        let (zl, zu) = share_bounds(&ytot, &zhi);
        self.zone_low = zl.iter().zip(&zlo).map(|(&a, &b)| a.max(b as u32)).collect();
        self.zone_up = zu;
        self.zone_target = vec![0; nz];
        for z in 0..nz {
            if let [i] = self.zone_members[z][..] {
                // A zone of one instance (every instance without a zone): the same
                // computation as below, for one share ([`apportion_one`]).
                let i = i as usize;
                let x = ytot[z].clamp(lo[i], hi[i]);
                let (li, hi_i) = (lo[i] as u64, hi[i] as u64);
                let (low, up) = share_bound(x, hi_i);
                self.target[i] = apportion_one(x, li, hi_i, yint[z]) as u32;
                self.lower[i] = low.max(li as u32).min(self.target[i]);
                self.upper[i] = up.max(self.target[i]);
                self.zone_target[z] += self.target[i];
                continue;
            }
            let members = self.zone_members[z].clone();
            let w: Vec<f64> = members.iter().map(|&i| self.weight[i as usize]).collect();
            let l: Vec<f64> = members.iter().map(|&i| lo[i as usize]).collect();
            let h: Vec<f64> = members.iter().map(|&i| hi[i as usize]).collect();
            let x = waterfill(&w, &l, &h, ytot[z]);
            let li: Vec<u64> = l.iter().map(|&v| v as u64).collect();
            let hi_i: Vec<u64> = h.iter().map(|&v| v as u64).collect();
            let k: Vec<u64> = members
                .iter()
                .map(|&i| u64::from(self.kept[i as usize]))
                .collect();
            let t: Vec<u64> = members.iter().map(|&i| self.tie[i as usize]).collect();
            let ints = apportion(&x, &li, &hi_i, yint[z], &k, &t);
            let (low, up) = share_bounds(&x, &hi_i);
            for (j, &i) in members.iter().enumerate() {
                let i = i as usize;
                self.target[i] = ints[j] as u32;
                self.lower[i] = low[j].max(li[j] as u32).min(self.target[i]);
                self.upper[i] = up[j].max(self.target[i]);
                self.zone_target[z] += self.target[i];
            }
        }
        let tops = (self.nparts as u64).min(total);
        let caps: Vec<u32> = self.target.clone();
        self.top_estimate = self.top_targets(&caps, tops);
    }

    /// Top-state targets: `tops` first positions spread by weight, at most `caps[i]` each,
    /// none on pinned instances; ties go to the instances that held more first positions.
    fn top_targets(&self, caps: &[u32], tops: u64) -> Vec<u32> {
        self.top_bounds(caps, tops, &self.kept_tops).0
    }

    /// [`Self::top_targets`], plus the floor and ceiling of each instance's exact share:
    /// any counts between them that sum to `tops` are balanced too. Ties go to the
    /// instances with more first positions in `held`.
    fn top_bounds(&self, caps: &[u32], tops: u64, held: &[u32]) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
        let n = self.n();
        let hi: Vec<f64> = (0..n)
            .map(|i| if self.pinned[i] { 0.0 } else { f64::from(caps[i]) })
            .collect();
        let sum_hi: f64 = hi.iter().sum();
        let tops = tops.min(sum_hi as u64);
        let lo = vec![0.0; n];
        let x = waterfill(&self.weight, &lo, &hi, tops as f64);
        let lo_i = vec![0u64; n];
        let hi_i: Vec<u64> = hi.iter().map(|&v| v as u64).collect();
        let k: Vec<u64> = held.iter().map(|&v| u64::from(v)).collect();
        let tt = apportion(&x, &lo_i, &hi_i, tops, &k, &self.tie)
            .into_iter()
            .map(|v| v as u32)
            .collect();
        let (low, up) = share_bounds(&x, &hi_i);
        (tt, low, up)
    }

    /// The partitions each instance holds, in partition order.
    fn held(&self) -> Vec<Vec<u32>> {
        let mut held = vec![Vec::new(); self.n()];
        for p in 0..self.nparts {
            for &i in self.row(p) {
                if i != NONE {
                    held[i as usize].push(p as u32);
                }
            }
        }
        held
    }

    /// Instances above their target hand replicas to instances below theirs, in place
    /// (the receiving replica takes the same position); what cannot be handed over is
    /// dropped and refilled later.
    fn move_excess(&mut self) {
        let n = self.n();
        let mut over: Vec<u32> = (0..n as u32)
            .filter(|&i| self.count[i as usize] > self.target[i as usize])
            .collect();
        if over.is_empty() {
            return;
        }
        over.sort_by_key(|&i| (self.tie[i as usize], i));
        let held = self.held();
        let mut picker = Picker::new(self);
        for &x in &over {
            let xi = x as usize;
            let mut excess = self.count[xi] - self.target[xi];
            let top_excess = self.kept_tops[xi].saturating_sub(self.top_estimate[xi]);
            let r = self.r;
            // Order: first positions (while top-heavy), then the others, by a per-instance hash.
            let mut firsts: Vec<u32> = Vec::new();
            let mut others: Vec<u32> = Vec::new();
            for &p in &held[xi] {
                if self.slots[p as usize * r] == x {
                    firsts.push(p);
                } else {
                    others.push(p);
                }
            }
            let key = |p: &u32| (mix(self.ctx.part_tie[*p as usize] ^ self.tie[xi]), *p);
            firsts.sort_by_cached_key(key);
            // Among the others, partitions whose top holder has too many tops go first:
            // the instance that takes the replica can take that top as well.
            let heavy_top = |p: &u32| {
                let t = self.slots[*p as usize * r];
                t != NONE && self.kept_tops[t as usize] > self.top_estimate[t as usize]
            };
            others.sort_by_cached_key(|p| (!heavy_top(p), key(p)));
            let split = (top_excess.min(excess) as usize).min(firsts.len());
            let order: Vec<u32> = firsts[..split]
                .iter()
                .chain(others.iter())
                .chain(firsts[split..].iter())
                .copied()
                .collect();
            for &p in &order {
                if excess == 0 {
                    break;
                }
                let p = p as usize;
                if let Some(d) = picker.pick(self, p, x) {
                    let pos = self.row(p).iter().position(|&i| i == x).unwrap_or(0);
                    self.slots[p * r + pos] = d;
                    self.fresh[p * r + pos] = true;
                    self.count[d as usize] += 1;
                    self.count[xi] -= 1;
                    excess -= 1;
                }
            }
            for &p in &order {
                if excess == 0 {
                    break;
                }
                let p = p as usize;
                if let Some(pos) = self.row(p).iter().position(|&i| i == x) {
                    self.slots[p * r + pos] = NONE;
                    self.count[xi] -= 1;
                    excess -= 1;
                }
            }
        }
    }

    /// Fills every empty slot: the valid instance with the largest deficit, then chains of
    /// reassignments for the slots that greedy filling leaves stuck, then any instance with
    /// room (only when the targets cannot be met exactly).
    fn fill(&mut self) {
        let r = self.r;
        let mut picker = Picker::new(self);
        let mut stuck: Vec<usize> = Vec::new();
        for p in 0..self.nparts {
            for s in 0..r {
                if self.slots[p * r + s] != NONE {
                    continue;
                }
                match picker.pick(self, p, NONE) {
                    Some(i) => {
                        self.slots[p * r + s] = i;
                        self.fresh[p * r + s] = true;
                        self.count[i as usize] += 1;
                    }
                    None => {
                        stuck.push(p);
                        break;
                    }
                }
            }
        }
        if !stuck.is_empty() {
            let mut search = Search::new(self.n(), self.nparts);
            let mut held = self.held();
            for &p in &stuck {
                while self.row(p).contains(&NONE) {
                    let spare = (0..self.n()).any(|i| self.count[i] < self.target[i]);
                    let done = spare
                        && [(false, false), (false, true), (true, false), (true, true)]
                            .into_iter()
                            .any(|(kept, flexible)| self.augment(p, kept, flexible, &mut held, &mut search));
                    if !done && !self.overflow(p, &mut held) {
                        break;
                    }
                }
            }
        }
        self.polish_replicas();
        // Compact: empty slots go last, order kept.
        for p in 0..self.nparts {
            let row = &mut self.slots[p * r..(p + 1) * r];
            let fresh = &mut self.fresh[p * r..(p + 1) * r];
            let mut w = 0;
            for s in 0..r {
                if row[s] != NONE {
                    row[w] = row[s];
                    fresh[w] = fresh[s];
                    w += 1;
                }
            }
            row[w..].fill(NONE);
        }
    }

    /// Breadth-first search for a chain `p ← i1, q1 ← i2, …` ending at an instance below
    /// its target; applies it. With `allow_kept` false only replicas placed in this round
    /// are reassigned (so the chain moves nothing that stayed put). With `flexible`, the
    /// chain may also end at an instance at its target but below its ceiling, which then
    /// takes the ceiling of an instance that will not use it.
    fn augment(
        &mut self,
        p: usize,
        allow_kept: bool,
        flexible: bool,
        held: &mut [Vec<u32>],
        search: &mut Search,
    ) -> bool {
        let n = self.n();
        let donors: Vec<u32> = if flexible {
            (0..n as u32)
                .filter(|&i| {
                    let i = i as usize;
                    self.target[i] > self.lower[i] && self.count[i] < self.target[i]
                })
                .collect()
        } else {
            Vec::new()
        };
        if flexible && donors.is_empty() {
            return false;
        }
        let ends = |s: &Self, j: u32| {
            let ju = j as usize;
            s.count[ju] < s.target[ju] || (s.count[ju] < s.upper[ju] && s.donor_for(j, &donors).is_some())
        };
        let spare: Vec<u32> = (0..n as u32)
            .filter(|&j| !self.pinned[j as usize] && ends(self, j))
            .collect();
        if spare.is_empty() {
            return false;
        }
        search.begin();
        search.mark_part(p);
        let mut budget = SEARCH_BUDGET;
        for i in 0..n as u32 {
            if !self.pinned[i as usize] && self.may_join(p, i, NONE) {
                search.visit(i, NONE, p as u32);
                if ends(self, i) {
                    self.take_ceiling(i, &donors);
                    self.apply_chain(i, p, held, search);
                    return true;
                }
                search.queue.push_back(i);
            }
        }
        while let Some(i) = search.queue.pop_front() {
            // The partitions `i` may leave. Partitions are not marked: another instance
            // leaving the same partition is a different move; a chain that would change
            // one partition twice is not applied.
            let leavable: Vec<u32> = held[i as usize]
                .iter()
                .copied()
                .filter(|&q| {
                    let qu = q as usize;
                    !search.part_marked(qu)
                        && self
                            .row(qu)
                            .iter()
                            .position(|&x| x == i)
                            .is_some_and(|pos| allow_kept || self.fresh[qu * self.r + pos])
                })
                .collect();
            // First the instances with room (chains end there), then everyone else.
            for &q in &leavable {
                for &j in &spare {
                    if budget == 0 {
                        return false;
                    }
                    budget -= 1;
                    if j == i || search.visited(j) || !self.may_join(q as usize, j, i) {
                        continue;
                    }
                    search.visit(j, i, q);
                    if search.chain_is_simple(j) {
                        self.take_ceiling(j, &donors);
                        self.apply_chain(j, p, held, search);
                        return true;
                    }
                }
            }
            for &q in &leavable {
                for j in 0..n as u32 {
                    if budget == 0 {
                        return false;
                    }
                    budget -= 1;
                    if j == i
                        || self.pinned[j as usize]
                        || search.visited(j)
                        || !self.may_join(q as usize, j, i)
                    {
                        continue;
                    }
                    search.visit(j, i, q);
                    search.queue.push_back(j);
                }
            }
        }
        false
    }

    /// Whether moving one unit from `a` (holding `ca`) to `b` (holding `cb`) evens the
    /// weighted load: `a` stays at least as loaded as `b` becomes. Each such move lowers
    /// `Σ c²/w`, so repeating them ends; counts within the floor and ceiling of their
    /// shares never qualify.
    fn evens(&self, a: u32, ca: u32, b: u32, cb: u32) -> bool {
        let (wa, wb) = (self.weight[a as usize] as u64, self.weight[b as usize] as u64);
        ca > 0 && u64::from(ca - 1) * wb >= u64::from(cb + 1) * wa
    }

    /// Single replica moves that even the load, for what targets and chains left uneven
    /// (targets that zones, caps or the previous layout made unreachable).
    fn polish_replicas(&mut self) {
        let n = self.n();
        let r = self.r;
        let mut held: Option<Vec<Vec<u32>>> = None;
        for _ in 0..64 {
            // The lightest instance that may take one more, by (count + 1) / weight.
            let light = (0..n as u32)
                .filter(|&b| !self.pinned[b as usize] && self.count[b as usize] < self.hard[b as usize])
                .min_by(|&x, &y| {
                    let (cx, cy) = (
                        u64::from(self.count[x as usize] + 1),
                        u64::from(self.count[y as usize] + 1),
                    );
                    (cx * self.weight[y as usize] as u64).cmp(&(cy * self.weight[x as usize] as u64))
                });
            let Some(light) = light else { return };
            let cl = self.count[light as usize];
            let heavy: Vec<u32> = (0..n as u32)
                .filter(|&a| {
                    !self.pinned[a as usize] && a != light && self.evens(a, self.count[a as usize], light, cl)
                })
                .collect();
            if heavy.is_empty() {
                return;
            }
            let held = held.get_or_insert_with(|| self.held());
            let mut changed = false;
            'heavy: for a in heavy {
                let list = held[a as usize].clone();
                for q in list {
                    let qu = q as usize;
                    let Some(pos) = self.row(qu).iter().position(|&x| x == a) else {
                        continue;
                    };
                    for b in 0..n as u32 {
                        let bu = b as usize;
                        if b == a
                            || self.pinned[bu]
                            || self.count[bu] >= self.hard[bu]
                            || !self.evens(a, self.count[a as usize], b, self.count[bu])
                            || !self.may_join(qu, b, a)
                        {
                            continue;
                        }
                        self.slots[qu * r + pos] = b;
                        self.fresh[qu * r + pos] = true;
                        self.count[a as usize] -= 1;
                        self.count[bu] += 1;
                        held[bu].push(q);
                        if let Some(k) = held[a as usize].iter().position(|&x| x == q) {
                            held[a as usize].swap_remove(k);
                        }
                        changed = true;
                        continue 'heavy;
                    }
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// Single top hand-overs that even the load (see [`Self::evens`]).
    fn polish_tops(&self, top: &mut [u32], tc: &mut [u32]) {
        for _ in 0..64 {
            let mut changed = false;
            for (p, t) in top.iter_mut().enumerate() {
                let a = *t;
                if a == NONE {
                    continue;
                }
                let better = self.row(p).iter().copied().find(|&b| {
                    b != NONE
                        && b != a
                        && !self.pinned[b as usize]
                        && self.evens(a, tc[a as usize], b, tc[b as usize])
                });
                if let Some(b) = better {
                    *t = b;
                    tc[a as usize] -= 1;
                    tc[b as usize] += 1;
                    changed = true;
                }
            }
            if !changed {
                return;
            }
        }
    }

    /// A donor whose unused ceiling `j` may take: in the same zone, or in a zone whose
    /// total stays within its own floor and ceiling, as `j`'s does.
    fn donor_for(&self, j: u32, donors: &[u32]) -> Option<u32> {
        let zj = self.zone[j as usize] as usize;
        donors.iter().copied().find(|&d| {
            let zd = self.zone[d as usize] as usize;
            d != j
                && (zd == zj
                    || (self.zone_target[zd] > self.zone_low[zd] && self.zone_target[zj] < self.zone_up[zj]))
        })
    }

    /// When `end` is at its target, it takes the ceiling of a donor that does not use it.
    fn take_ceiling(&mut self, end: u32, donors: &[u32]) {
        let e = end as usize;
        if self.count[e] < self.target[e] {
            return;
        }
        if let Some(d) = self.donor_for(end, donors) {
            let d = d as usize;
            self.target[e] += 1;
            self.target[d] -= 1;
            self.zone_target[self.zone[e] as usize] += 1;
            self.zone_target[self.zone[d] as usize] -= 1;
        }
    }

    /// Applies the chain found by [`Self::augment`], ending at `end`.
    fn apply_chain(&mut self, end: u32, p: usize, held: &mut [Vec<u32>], search: &Search) {
        let r = self.r;
        self.count[end as usize] += 1;
        let mut cur = end;
        loop {
            let (from, q) = search.parent[cur as usize];
            let qu = q as usize;
            if from == NONE {
                debug_assert_eq!(qu, p);
                let pos = self.row(qu).iter().position(|&x| x == NONE).unwrap_or(0);
                self.slots[qu * r + pos] = cur;
                self.fresh[qu * r + pos] = true;
                held[cur as usize].push(q);
                return;
            }
            let pos = self.row(qu).iter().position(|&x| x == from).unwrap_or(0);
            self.slots[qu * r + pos] = cur;
            self.fresh[qu * r + pos] = true;
            held[cur as usize].push(q);
            if let Some(k) = held[from as usize].iter().position(|&x| x == q) {
                held[from as usize].swap_remove(k);
            }
            cur = from;
        }
    }

    /// Fallback for a slot no chain can fill: the valid instance with room whose load
    /// relative to its weight is the lowest. Returns false when there is none.
    fn overflow(&mut self, p: usize, held: &mut [Vec<u32>]) -> bool {
        let best = (0..self.n() as u32)
            .filter(|&i| self.count[i as usize] < self.hard[i as usize] && self.may_join(p, i, NONE))
            .min_by(|&a, &b| {
                let la = f64::from(self.count[a as usize] + 1) / self.weight[a as usize];
                let lb = f64::from(self.count[b as usize] + 1) / self.weight[b as usize];
                la.total_cmp(&lb)
                    .then(self.tie[a as usize].cmp(&self.tie[b as usize]))
            });
        let Some(i) = best else { return false };
        let pos = self.row(p).iter().position(|&x| x == NONE).unwrap_or(0);
        self.slots[p * self.r + pos] = i;
        self.fresh[p * self.r + pos] = true;
        self.count[i as usize] += 1;
        held[i as usize].push(p as u32);
        true
    }

    /// Chooses each partition's top (first) instance: the current first holder where the
    /// top-state targets allow, then over-target instances hand first positions to
    /// under-target replicas of the same partition, directly or along a chain; finally
    /// moves the top to the front of each list.
    fn assign_tops(&mut self) {
        let n = self.n();
        let r = self.r;
        let mut top = vec![NONE; self.nparts];
        let mut tc = vec![0u32; n];
        let mut topped: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (p, t) in top.iter_mut().enumerate() {
            if let Some(&i) = self
                .row(p)
                .iter()
                .find(|&&i| i != NONE && !self.pinned[i as usize])
            {
                *t = i;
                tc[i as usize] += 1;
                topped[i as usize].push(p as u32);
            }
        }
        let tops: u64 = tc.iter().map(|&v| u64::from(v)).sum();
        // Any count between the floor and the ceiling of an instance's exact share is
        // balanced: only what falls outside is fixed, by the fewest hand-overs (a chain
        // from the nearest instance that can give or take), so first positions change
        // as little as balance allows.
        let (_, low, up) = self.top_bounds(&self.count, tops, &tc);
        let mut over: Vec<u32> = (0..n as u32)
            .filter(|&i| tc[i as usize] > up[i as usize])
            .collect();
        over.sort_by_key(|&i| (self.tie[i as usize], i));
        // Direct hand-overs inside a partition.
        for &x in &over {
            let xi = x as usize;
            let mut mine = topped[xi].clone();
            mine.sort_by_cached_key(|p| (mix(self.ctx.part_tie[*p as usize] ^ self.tie[xi]), *p));
            for p in mine {
                if tc[xi] <= up[xi] {
                    break;
                }
                let pu = p as usize;
                let best = self
                    .row(pu)
                    .iter()
                    .enumerate()
                    .filter(|&(_, &j)| {
                        j != NONE && !self.pinned[j as usize] && tc[j as usize] < up[j as usize]
                    })
                    .max_by_key(|&(pos, &j)| {
                        let ju = j as usize;
                        (tc[ju] < low[ju], up[ju] - tc[ju], std::cmp::Reverse(pos))
                    })
                    .map(|(_, &j)| j);
                if let Some(j) = best {
                    top[pu] = j;
                    tc[xi] -= 1;
                    tc[j as usize] += 1;
                    if let Some(k) = topped[xi].iter().position(|&q| q == p) {
                        topped[xi].swap_remove(k);
                    }
                    topped[j as usize].push(p);
                }
            }
        }
        // Chains for what is left: first nobody above its ceiling, then nobody below its
        // floor.
        let mut search = Search::new(n, self.nparts);
        for x in 0..n as u32 {
            while tc[x as usize] > up[x as usize] {
                if !self.top_chain(x, &mut top, &mut tc, &up, &mut topped, &mut search) {
                    break;
                }
            }
        }
        if (0..n).any(|j| tc[j] < low[j]) {
            let held = self.held();
            for j in 0..n as u32 {
                while tc[j as usize] < low[j as usize] {
                    if !self.top_chain_back(j, &mut top, &mut tc, &low, &mut topped, &held, &mut search) {
                        break;
                    }
                }
            }
        }
        // Last, single hand-overs that even the load where the targets could not be met.
        self.polish_tops(&mut top, &mut tc);
        // Top first, the rest in their order.
        for (p, &t) in top.iter().enumerate() {
            if t == NONE {
                continue;
            }
            let row = &mut self.slots[p * r..(p + 1) * r];
            if let Some(pos) = row.iter().position(|&i| i == t) {
                row[..=pos].rotate_right(1);
            }
        }
    }

    /// One chain of top hand-overs from over-target `x` to an under-target instance.
    fn top_chain(
        &self,
        x: u32,
        top: &mut [u32],
        tc: &mut [u32],
        tt: &[u32],
        topped: &mut [Vec<u32>],
        search: &mut Search,
    ) -> bool {
        search.begin();
        search.visit(x, NONE, NONE);
        search.queue.push_back(x);
        let mut budget = SEARCH_BUDGET;
        while let Some(i) = search.queue.pop_front() {
            for &q in &topped[i as usize] {
                let qu = q as usize;
                if search.part_marked(qu) {
                    continue;
                }
                search.mark_part(qu);
                for &j in self.row(qu) {
                    if budget == 0 {
                        return false;
                    }
                    budget -= 1;
                    if j == NONE || self.pinned[j as usize] || search.visited(j) {
                        continue;
                    }
                    search.visit(j, i, q);
                    if tc[j as usize] < tt[j as usize] {
                        // Walk back: each partition on the chain passes its top forward.
                        tc[j as usize] += 1;
                        tc[x as usize] -= 1;
                        let mut cur = j;
                        loop {
                            let (from, q) = search.parent[cur as usize];
                            if from == NONE {
                                break;
                            }
                            top[q as usize] = cur;
                            topped[cur as usize].push(q);
                            if let Some(k) = topped[from as usize].iter().position(|&v| v == q) {
                                topped[from as usize].swap_remove(k);
                            }
                            cur = from;
                        }
                        return true;
                    }
                    search.queue.push_back(j);
                }
            }
        }
        false
    }

    /// One chain of top hand-overs toward `j` (below its floor `low`), from an instance
    /// above its floor: `j` takes the top of a partition it holds, whose previous top takes
    /// another, and so on.
    #[allow(clippy::too_many_arguments)]
    fn top_chain_back(
        &self,
        j: u32,
        top: &mut [u32],
        tc: &mut [u32],
        low: &[u32],
        topped: &mut [Vec<u32>],
        held: &[Vec<u32>],
        search: &mut Search,
    ) -> bool {
        search.begin();
        search.visit(j, NONE, NONE);
        search.queue.push_back(j);
        let mut budget = SEARCH_BUDGET;
        while let Some(i) = search.queue.pop_front() {
            for &q in &held[i as usize] {
                if budget == 0 {
                    return false;
                }
                budget -= 1;
                let qu = q as usize;
                let t = top[qu];
                if t == NONE || t == i || search.visited(t) {
                    continue;
                }
                // `t` would pass the top of `q` to `i`.
                search.visit(t, i, q);
                if tc[t as usize] > low[t as usize] {
                    tc[t as usize] -= 1;
                    tc[j as usize] += 1;
                    let mut cur = t;
                    loop {
                        let (to, q) = search.parent[cur as usize];
                        if to == NONE {
                            break;
                        }
                        top[q as usize] = to;
                        topped[to as usize].push(q);
                        if let Some(k) = topped[cur as usize].iter().position(|&v| v == q) {
                            topped[cur as usize].swap_remove(k);
                        }
                        cur = to;
                    }
                    return true;
                }
                search.queue.push_back(t);
            }
        }
        false
    }

    fn into_lists(self) -> Vec<Vec<u32>> {
        (0..self.nparts)
            .map(|p| {
                self.row(p)
                    .iter()
                    .filter(|&&i| i != NONE)
                    .map(|&i| self.global[i as usize])
                    .collect()
            })
            .collect()
    }
}

/// Picks, for a partition, the valid instance with the largest remaining deficit: a heap
/// of zones keyed by their best instance, over a heap of instances per zone.
struct Picker {
    zones: Vec<BinaryHeap<(u32, u64, u32)>>,
    top: BinaryHeap<(u32, u64, u32)>,
    stash_z: Vec<(u32, u64, u32)>,
    stash_i: Vec<(u32, u64, u32)>,
}

impl Picker {
    fn new(s: &Solver<'_>) -> Self {
        let mut zones = vec![BinaryHeap::new(); s.zone_members.len()];
        for i in 0..s.n() {
            let d = s.target[i].saturating_sub(s.count[i]);
            if d > 0 {
                zones[s.zone[i] as usize].push((d, s.tie[i], i as u32));
            }
        }
        let top = zones.iter().filter_map(|h| h.peek().copied()).collect();
        Picker {
            zones,
            top,
            stash_z: Vec::new(),
            stash_i: Vec::new(),
        }
    }

    /// The instance to add to partition `p` (in place of `except`, if not `NONE`); its
    /// deficit is taken down by one. The caller records the replica.
    fn pick(&mut self, s: &Solver<'_>, p: usize, except: u32) -> Option<u32> {
        let mut found = None;
        while let Some(key) = self.top.pop() {
            let z = s.zone[key.2 as usize] as usize;
            if self.zones[z].peek() != Some(&key) {
                continue; // stale
            }
            if s.zone_count(p, z as u32, except) >= s.zone_max[z] {
                self.stash_z.push(key);
                continue;
            }
            let mut chosen = None;
            while let Some(e) = self.zones[z].pop() {
                if s.holds(p, e.2) {
                    self.stash_i.push(e);
                } else {
                    chosen = Some(e);
                    break;
                }
            }
            let heap = &mut self.zones[z];
            if let Some((d, t, i)) = chosen {
                // A fresh tie for the next round, so that instances with equal deficits
                // come up in a new order each time and co-holders spread over everyone
                // (a fixed order would place replicas in cliques, and a leaver's replicas
                // could then only go to the instances outside its clique).
                if d > 1 {
                    heap.push((d - 1, mix(t ^ 0x9e37_79b9_7f4a_7c15), i));
                }
            }
            heap.extend(self.stash_i.drain(..));
            if let Some(&k) = heap.peek() {
                if chosen.is_some() {
                    self.top.push(k);
                } else {
                    self.stash_z.push(k);
                }
            }
            if let Some((_, _, i)) = chosen {
                found = Some(i);
                break;
            }
        }
        self.top.extend(self.stash_z.drain(..));
        found
    }
}

/// Scratch space of the breadth-first searches, reset in O(1) by generation stamps.
struct Search {
    generation: u32,
    inst_seen: Vec<u32>,
    part_seen: Vec<u32>,
    /// Instance → (the instance it replaces, the partition), `NONE` for roots.
    parent: Vec<(u32, u32)>,
    queue: VecDeque<u32>,
}

impl Search {
    fn new(n: usize, nparts: usize) -> Self {
        Search {
            generation: 0,
            inst_seen: vec![0; n],
            part_seen: vec![0; nparts],
            parent: vec![(NONE, NONE); n],
            queue: VecDeque::new(),
        }
    }

    fn begin(&mut self) {
        self.generation += 1;
        self.queue.clear();
    }

    fn visit(&mut self, i: u32, from: u32, q: u32) {
        self.inst_seen[i as usize] = self.generation;
        self.parent[i as usize] = (from, q);
    }

    fn visited(&self, i: u32) -> bool {
        self.inst_seen[i as usize] == self.generation
    }

    /// Whether the chain ending at `end` changes each partition once.
    fn chain_is_simple(&self, end: u32) -> bool {
        let mut seen: Vec<u32> = Vec::new();
        let mut cur = end;
        loop {
            let (from, q) = self.parent[cur as usize];
            if seen.contains(&q) {
                return false;
            }
            seen.push(q);
            if from == NONE {
                return true;
            }
            cur = from;
        }
    }

    fn mark_part(&mut self, p: usize) {
        self.part_seen[p] = self.generation;
    }

    fn part_marked(&self, p: usize) -> bool {
        self.part_seen[p] == self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}_{i}")).collect()
    }

    fn instances(n: usize) -> Vec<InstanceInfo> {
        (0..n)
            .map(|i| InstanceInfo::new(format!("localhost_{}", 12913 + i)))
            .collect()
    }

    fn input<'a>(
        parts: &'a [String],
        insts: &'a [InstanceInfo],
        prev: &'a BTreeMap<String, Vec<String>>,
        r: usize,
    ) -> PlacementInput<'a> {
        PlacementInput {
            resource: "myDB",
            partitions: parts,
            replicas: ReplicaCount::Count(r),
            instances: insts,
            previous: prev,
            instance_group_tag: None,
            max_partitions_per_instance: None,
            delay: None,
            now_ms: 0,
        }
    }

    /// (replicas, tops) per instance name.
    fn counts(pl: &Placement) -> BTreeMap<String, (usize, usize)> {
        let mut c: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for list in pl.preference_lists.values() {
            for (k, name) in list.iter().enumerate() {
                let e = c.entry(name.clone()).or_default();
                e.0 += 1;
                if k == 0 {
                    e.1 += 1;
                }
            }
        }
        c
    }

    #[test]
    fn tutorial_layout_gives_each_instance_six_replicas_and_two_tops() {
        let parts = names("myDB", 6);
        let insts = instances(3);
        let prev = BTreeMap::new();
        let pl = place(&input(&parts, &insts, &prev, 3));
        assert_eq!(pl.preference_lists.len(), 6);
        for list in pl.preference_lists.values() {
            assert_eq!(list.len(), 3);
        }
        let c = counts(&pl);
        assert_eq!(c.len(), 3);
        for (name, (replicas, tops)) in c {
            assert_eq!((replicas, tops), (6, 2), "{name}");
        }
        assert_eq!(pl.next_recompute_ms, None);
    }

    #[test]
    fn same_input_same_output_whatever_the_order() {
        let parts = names("db", 50);
        let mut insts = instances(7);
        for (i, x) in insts.iter_mut().enumerate() {
            x.zone = Some(format!("z{}", i % 3));
        }
        let prev = BTreeMap::new();
        let a = place(&input(&parts, &insts, &prev, 3));
        let mut parts_rev = parts.clone();
        parts_rev.reverse();
        let mut insts_rev = insts.clone();
        insts_rev.reverse();
        let b = place(&input(&parts_rev, &insts_rev, &prev, 3));
        assert_eq!(a, b);
    }

    #[test]
    fn one_replica_per_zone_when_zones_suffice() {
        let parts = names("db", 30);
        let mut insts = instances(6);
        for (i, x) in insts.iter_mut().enumerate() {
            x.zone = Some(format!("z{}", i % 3));
        }
        let prev = BTreeMap::new();
        let pl = place(&input(&parts, &insts, &prev, 3));
        for list in pl.preference_lists.values() {
            let mut zones: Vec<&str> = list
                .iter()
                .map(|n| insts.iter().find(|x| &x.name == n).map_or("", |x| x.fault_zone()))
                .collect();
            zones.sort_unstable();
            zones.dedup();
            assert_eq!(zones.len(), 3, "{list:?}");
        }
        for (replicas, _) in counts(&pl).values() {
            assert_eq!(*replicas, 15);
        }
    }

    #[test]
    fn losing_an_instance_moves_only_its_replicas() {
        let parts = names("db", 100);
        let insts = instances(5);
        let prev = BTreeMap::new();
        let before = place(&input(&parts, &insts, &prev, 3));
        let gone = insts[2].name.clone();
        let rest: Vec<InstanceInfo> = insts.iter().filter(|x| x.name != gone).cloned().collect();
        let after = place(&input(&parts, &rest, &before.preference_lists, 3));
        for (p, old) in &before.preference_lists {
            let new = &after.preference_lists[p];
            for name in old {
                if *name != gone {
                    assert!(new.contains(name), "{p}: {name} moved ({old:?} -> {new:?})");
                }
            }
        }
        let c = counts(&after);
        let (max, min) = (c.values().map(|v| v.0).max(), c.values().map(|v| v.0).min());
        assert_eq!((max, min), (Some(75), Some(75)));
    }

    #[test]
    fn any_live_instance_puts_a_replica_on_every_candidate() {
        let parts = names("db", 4);
        let mut insts = instances(4);
        insts[3].live = false;
        let prev = BTreeMap::new();
        let mut inp = input(&parts, &insts, &prev, 0);
        inp.replicas = ReplicaCount::AnyLiveInstance;
        let pl = place(&inp);
        for list in pl.preference_lists.values() {
            assert_eq!(list.len(), 3);
            assert!(!list.contains(&insts[3].name));
        }
        let c = counts(&pl);
        assert!(c.values().all(|v| v.0 == 4 && (1..=2).contains(&v.1)), "{c:?}");
    }

    #[test]
    fn the_cap_leaves_partitions_short_instead_of_overloading() {
        let parts = names("db", 10);
        let insts = instances(2);
        let prev = BTreeMap::new();
        let mut inp = input(&parts, &insts, &prev, 2);
        inp.max_partitions_per_instance = Some(4);
        let pl = place(&inp);
        assert!(counts(&pl).values().all(|v| v.0 == 4));
        let placed: usize = pl.preference_lists.values().map(Vec::len).sum();
        assert_eq!(placed, 8);
    }

    #[test]
    fn an_offline_instance_keeps_its_place_inside_the_delay() {
        let parts = names("db", 12);
        let mut insts = instances(4);
        let prev = BTreeMap::new();
        let before = place(&input(&parts, &insts, &prev, 3));
        insts[1].live = false;
        insts[1].offline_since_ms = Some(1_000);
        let mut inp = input(&parts, &insts, &before.preference_lists, 3);
        inp.delay = Some(DelaySettings {
            delay_ms: 500,
            min_active_replicas: 2,
        });
        inp.now_ms = 1_200;
        let during = place(&inp);
        assert_eq!(during.next_recompute_ms, Some(1_500));
        assert_eq!(during, {
            let mut again = inp.clone();
            again.now_ms = 1_300;
            place(&again)
        });
        for (p, old) in &before.preference_lists {
            let new = &during.preference_lists[p];
            let mut o = old.clone();
            o.sort();
            let mut n = new.clone();
            n.sort();
            assert_eq!(o, n, "{p}: min active 2 holds with one offline, nothing changes");
            assert_ne!(new[0], insts[1].name, "{p}: an offline instance is not first");
        }
        inp.now_ms = 1_500;
        let after = place(&inp);
        assert_eq!(after.next_recompute_ms, None);
        assert!(after
            .preference_lists
            .values()
            .all(|l| l.len() == 3 && !l.contains(&insts[1].name)));
    }

    #[test]
    fn min_active_replicas_adds_only_enough_live_replicas() {
        let parts = names("db", 6);
        let mut insts = instances(4);
        let prev = BTreeMap::new();
        let before = place(&input(&parts, &insts, &prev, 2));
        insts[0].live = false;
        insts[0].offline_since_ms = Some(0);
        let mut inp = input(&parts, &insts, &before.preference_lists, 2);
        inp.delay = Some(DelaySettings {
            delay_ms: 10_000,
            min_active_replicas: 2,
        });
        inp.now_ms = 5;
        let pl = place(&inp);
        for (p, old) in &before.preference_lists {
            let new = &pl.preference_lists[p];
            let live = new.iter().filter(|n| **n != insts[0].name).count();
            assert_eq!(live, 2, "{p}: {new:?}");
            if old.contains(&insts[0].name) {
                assert_eq!(new.len(), 3, "{p}: kept plus one live replica: {new:?}");
            } else {
                assert_eq!(new.len(), 2, "{p}: {new:?}");
            }
        }
    }

    #[test]
    fn a_disabled_instance_is_never_kept() {
        let parts = names("db", 6);
        let mut insts = instances(3);
        let prev = BTreeMap::new();
        let before = place(&input(&parts, &insts, &prev, 2));
        insts[0].live = false;
        insts[0].enabled = false;
        insts[0].offline_since_ms = Some(0);
        let mut inp = input(&parts, &insts, &before.preference_lists, 2);
        inp.delay = Some(DelaySettings {
            delay_ms: 10_000,
            min_active_replicas: 1,
        });
        let pl = place(&inp);
        assert!(pl.preference_lists.values().all(|l| !l.contains(&insts[0].name)));
        assert_eq!(pl.next_recompute_ms, None);
    }

    #[test]
    fn replicas_and_tops_follow_the_weights() {
        let parts = names("db", 30);
        let mut insts = instances(3);
        insts[0].weight = 500;
        insts[2].weight = 1500;
        let prev = BTreeMap::new();
        let pl = place(&input(&parts, &insts, &prev, 2));
        let c = counts(&pl);
        // 60 replicas and 30 tops over weights 1:2:3, one replica per partition each.
        assert_eq!(c[&insts[0].name], (10, 5));
        assert_eq!(c[&insts[1].name], (20, 10));
        assert_eq!(c[&insts[2].name], (30, 15));
    }
}
