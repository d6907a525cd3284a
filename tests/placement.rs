//! FULL_AUTO placement: invariants after every churn step, movement bounds, delayed
//! rebalance, determinism, and an exhaustive reference for small clusters.
//!
//! The property tests draw random clusters (1–40 instances, zones, weights, tags, disabled
//! and offline instances, caps) and apply churn (add, remove, disable, rezone, reweight,
//! offline with and without a delay). After every step the checker verifies every
//! invariant placement promises. The seed is fixed (override with `STRAND_PROPTEST_SEED`)
//! and printed, so a failure can be replayed.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use strand::rebalance::placement::{place, DelaySettings, Placement, PlacementInput, ReplicaCount};
use strand::rebalance::InstanceInfo;

const RESOURCE: &str = "myDB";

fn seed() -> u64 {
    std::env::var("STRAND_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0002)
}

fn config(cases: u32) -> Config {
    let seed = seed();
    eprintln!("proptest seed {seed} (set STRAND_PROPTEST_SEED to change it)");
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}

/// A whole cluster as the tests mutate it.
#[derive(Debug, Clone)]
struct Cluster {
    partitions: Vec<String>,
    replicas: ReplicaCount,
    instances: Vec<InstanceInfo>,
    tag: Option<String>,
    cap: Option<usize>,
    delay: Option<DelaySettings>,
    now_ms: u64,
    previous: BTreeMap<String, Vec<String>>,
}

impl Cluster {
    fn input(&self) -> PlacementInput<'_> {
        PlacementInput {
            resource: RESOURCE,
            partitions: &self.partitions,
            replicas: self.replicas,
            instances: &self.instances,
            previous: &self.previous,
            instance_group_tag: self.tag.as_deref(),
            max_partitions_per_instance: self.cap,
            delay: self.delay,
            now_ms: self.now_ms,
        }
    }

    fn eligible(&self, x: &InstanceInfo) -> bool {
        x.enabled && x.has_tag(self.tag.as_deref())
    }

    /// Live, enabled, tagged instances.
    fn candidates(&self) -> Vec<&InstanceInfo> {
        self.instances
            .iter()
            .filter(|x| x.live && self.eligible(x))
            .collect()
    }

    /// Offline instances inside their delay window (expiry per name).
    fn delayed(&self) -> BTreeMap<String, u64> {
        let Some(d) = self.delay else {
            return BTreeMap::new();
        };
        self.instances
            .iter()
            .filter(|x| !x.live && self.eligible(x))
            .filter_map(|x| {
                let e = x.offline_since_ms?.saturating_add(d.delay_ms);
                (e > self.now_ms).then(|| (x.name.clone(), e))
            })
            .collect()
    }

    /// Uniform weights, no cap, no tag, no delay, no zones: where the strict bounds hold.
    fn plain(&self) -> bool {
        let w = self.instances.first().map(|x| x.weight);
        self.instances
            .iter()
            .all(|x| Some(x.weight) == w && x.zone.is_none())
            && self.cap.is_none()
            && self.tag.is_none()
            && self.delayed().is_empty()
    }
}

fn r_eff(replicas: ReplicaCount, n: usize) -> usize {
    match replicas {
        ReplicaCount::Count(r) => r.min(n),
        ReplicaCount::AnyLiveInstance => n,
    }
}

/// Replicas of one partition a zone may hold (the test's own derivation).
fn zone_max(c: &Cluster, members: &[&InstanceInfo]) -> BTreeMap<String, usize> {
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for x in members {
        *sizes.entry(x.fault_zone().to_string()).or_default() += 1;
    }
    let r = r_eff(c.replicas, members.len());
    if c.replicas == ReplicaCount::AnyLiveInstance {
        return sizes;
    }
    let mut k = 1;
    while sizes.values().map(|&s| s.min(k)).sum::<usize>() < r {
        k += 1;
    }
    sizes.into_iter().map(|(z, s)| (z, s.min(k))).collect()
}

fn counts(pl: &Placement) -> BTreeMap<String, (usize, usize)> {
    let mut c: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for list in pl.preference_lists.values() {
        for (k, n) in list.iter().enumerate() {
            let e = c.entry(n.clone()).or_default();
            e.0 += 1;
            if k == 0 {
                e.1 += 1;
            }
        }
    }
    c
}

/// Replicas in `new` that were not in `old` at the same partition.
fn moved(old: &BTreeMap<String, Vec<String>>, new: &BTreeMap<String, Vec<String>>) -> usize {
    new.iter()
        .map(|(p, l)| {
            let o = old.get(p);
            l.iter().filter(|n| !o.is_some_and(|o| o.contains(n))).count()
        })
        .sum()
}

/// A compact description of a cluster and its placement, for failure messages.
fn describe(c: &Cluster, pl: &Placement) -> String {
    let mut out = format!(
        "{} partitions, replicas {:?}, tag {:?}, cap {:?}, delay {:?}, now {}\n",
        c.partitions.len(),
        c.replicas,
        c.tag,
        c.cap,
        c.delay,
        c.now_ms
    );
    let cnt = counts(pl);
    for x in &c.instances {
        out += &format!(
            "  {} live={} enabled={} zone={:?} weight={} tags={:?} offline_since={:?} -> {:?}\n",
            x.name,
            x.live,
            x.enabled,
            x.zone,
            x.weight,
            x.tags,
            x.offline_since_ms,
            cnt.get(&x.name)
        );
    }
    out
}

/// Every invariant of one placement result. Returns a description of the first violation.
fn check(c: &Cluster, pl: &Placement) -> Result<(), String> {
    let cands = c.candidates();
    let delayed = c.delayed();
    let by_name: BTreeMap<&str, &InstanceInfo> = c.instances.iter().map(|x| (x.name.as_str(), x)).collect();
    let cand_names: BTreeSet<&str> = cands.iter().map(|x| x.name.as_str()).collect();
    let parts: BTreeSet<&str> = c.partitions.iter().map(String::as_str).collect();
    let keys: BTreeSet<&str> = pl.preference_lists.keys().map(String::as_str).collect();
    if parts != keys {
        return Err(format!("partitions {parts:?} but lists for {keys:?}"));
    }
    // The members of the "all" solve: candidates plus the delayed instances that hold
    // something.
    let mut members: Vec<&InstanceInfo> = cands.clone();
    members.extend(
        c.instances
            .iter()
            .filter(|x| delayed.contains_key(&x.name) && c.previous.values().any(|l| l.contains(&x.name))),
    );
    let r_all = r_eff(c.replicas, members.len());
    let zmax = zone_max(c, &members);
    let wanted = match c.replicas {
        ReplicaCount::Count(r) => r,
        ReplicaCount::AnyLiveInstance => usize::MAX,
    };
    let min_active = c.delay.map_or(0, |d| d.min_active_replicas).min(wanted);
    for (p, list) in &pl.preference_lists {
        let set: BTreeSet<&String> = list.iter().collect();
        if set.len() != list.len() {
            return Err(format!("{p}: duplicate instance in {list:?}"));
        }
        let prev = c.previous.get(p);
        for n in list {
            if cand_names.contains(n.as_str()) {
                continue;
            }
            if !delayed.contains_key(n) {
                return Err(format!("{p}: {n} is not a candidate ({list:?})"));
            }
            if !prev.is_some_and(|l| l.contains(n)) {
                return Err(format!("{p}: offline {n} got a new replica"));
            }
        }
        if let Some(first) = list.first() {
            if delayed.contains_key(first) && list.iter().any(|n| cand_names.contains(n.as_str())) {
                return Err(format!(
                    "{p}: offline {first} is first though a live replica exists"
                ));
            }
        }
        // Delayed instances keep their places.
        if let Some(prev) = prev {
            for n in prev {
                if delayed.contains_key(n) && !list.contains(n) {
                    // Allowed only when the previous list itself broke a rule for it.
                    let kept_before = prev.iter().filter(|m| *m == n).count() == 1;
                    let zone_ok = by_name.get(n.as_str()).is_some_and(|x| {
                        let z = x.fault_zone();
                        prev.iter()
                            .take_while(|m| *m != n)
                            .filter(|m| by_name.get(m.as_str()).is_some_and(|y| y.fault_zone() == z))
                            .count()
                            < zmax.get(z).copied().unwrap_or(0)
                    });
                    let pos_ok = prev.iter().position(|m| m == n).is_some_and(|k| k < r_all);
                    if kept_before && zone_ok && pos_ok && c.cap.is_none() {
                        return Err(format!("{p}: offline {n} lost its place ({prev:?} -> {list:?})"));
                    }
                }
            }
        }
        let live = list.iter().filter(|n| cand_names.contains(n.as_str())).count();
        if list.len() > r_all && (delayed.is_empty() || live > min_active) {
            return Err(format!("{p}: {} replicas, want {r_all}: {list:?}", list.len()));
        }
        // Replicas added for MIN_ACTIVE_REPLICAS ignore zones (as Helix's do).
        if delayed.is_empty() {
            let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
            for n in list {
                let z = by_name[n.as_str()].fault_zone();
                *per_zone.entry(z).or_default() += 1;
                if per_zone[z] > zmax[z] {
                    return Err(format!("{p}: zone {z} holds more than {} of {list:?}", zmax[z]));
                }
            }
        }
        if c.cap.is_none() {
            if delayed.is_empty() && list.len() < r_all {
                return Err(format!("{p}: only {} replicas of {r_all}: {list:?}", list.len()));
            }
            let want_live = min_active.min(r_eff(c.replicas, cands.len()));
            if !delayed.is_empty() && live < want_live {
                return Err(format!(
                    "{p}: {live} live replicas, min active {want_live}: {list:?}"
                ));
            }
        }
    }
    let cnt = counts(pl);
    if let Some(cap) = c.cap {
        for (n, (k, _)) in &cnt {
            if *k > cap {
                return Err(format!("{n} holds {k} partitions, cap {cap}"));
            }
        }
    }
    if pl.next_recompute_ms != delayed.values().copied().min() {
        return Err(format!(
            "next recompute {:?}, want {:?}",
            pl.next_recompute_ms,
            delayed.values().min()
        ));
    }
    if delayed.is_empty() {
        check_balance(c, pl, &cands, &zmax)?;
    }
    Ok(())
}

/// No single valid move or top hand-over would even out the load (weighted): the targets
/// are met as far as zones and caps allow; plus the strict ±1 bounds where they apply.
fn check_balance(
    c: &Cluster,
    pl: &Placement,
    cands: &[&InstanceInfo],
    zmax: &BTreeMap<String, usize>,
) -> Result<(), String> {
    let cnt = counts(pl);
    let get = |n: &str| cnt.get(n).copied().unwrap_or((0, 0));
    let hard = c.cap.unwrap_or(usize::MAX).min(c.partitions.len());
    // A short list only when no instance with room may join it.
    let r = r_eff(c.replicas, cands.len());
    for (p, list) in &pl.preference_lists {
        if list.len() >= r {
            continue;
        }
        for b in cands {
            if list.contains(&b.name) || get(&b.name).0 >= hard {
                continue;
            }
            let z = b.fault_zone();
            let in_zone = list
                .iter()
                .filter(|n| cands.iter().any(|x| &x.name == *n && x.fault_zone() == z))
                .count();
            if in_zone < zmax[z] {
                return Err(format!("{p}: short ({list:?}) though {} has room", b.name));
            }
        }
    }
    for a in cands {
        for b in cands {
            if a.name == b.name {
                continue;
            }
            let (ca, ta) = get(&a.name);
            let (cb, tb) = get(&b.name);
            let (wa, wb) = (f64::from(a.weight.max(1)), f64::from(b.weight.max(1)));
            if ca > 0 && cb < hard && (ca as f64 - 1.0) / wa >= (cb as f64 + 1.0) / wb - 1e-9 {
                for (p, list) in &pl.preference_lists {
                    if !list.contains(&a.name) || list.contains(&b.name) {
                        continue;
                    }
                    let z = b.fault_zone();
                    let in_zone = list
                        .iter()
                        .filter(|n| **n != a.name)
                        .filter(|n| cands.iter().any(|x| &x.name == *n && x.fault_zone() == z))
                        .count();
                    if in_zone < zmax[z] {
                        return Err(format!(
                            "{p}: moving {} ({ca}) to {} ({cb}) would even the load",
                            a.name, b.name
                        ));
                    }
                }
            }
            if ta > 0 && tb < cb && (ta as f64 - 1.0) / wa >= (tb as f64 + 1.0) / wb - 1e-9 {
                for (p, list) in &pl.preference_lists {
                    if list.first() == Some(&a.name) && list.contains(&b.name) {
                        return Err(format!(
                            "{p}: {} has {ta} tops, {} only {tb}: hand-over would even them",
                            a.name, b.name
                        ));
                    }
                }
            }
        }
    }
    if c.plain() && !cands.is_empty() {
        let reps: Vec<usize> = cands.iter().map(|x| get(&x.name).0).collect();
        let tops: Vec<usize> = cands.iter().map(|x| get(&x.name).1).collect();
        let spread = |v: &[usize]| v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0);
        if spread(&reps) > 1 || spread(&tops) > 1 {
            return Err(format!("replicas {reps:?} tops {tops:?}: not within ±1"));
        }
    }
    Ok(())
}

/// The fewest replica moves that reach ±1 balance after a join (uniform weights, no zones):
/// old instances keep min(count, target), targets' ceilings going to the fullest.
fn min_moves_on_join(old_counts: &[usize], total: usize) -> usize {
    let n = old_counts.len() + 1;
    let (q, rem) = (total / n, total % n);
    let mut sorted = old_counts.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut targets: Vec<usize> = (0..n).map(|i| if i < rem { q + 1 } else { q }).collect();
    // The new instance (count 0) takes a floor when it can.
    targets.sort_unstable_by(|a, b| b.cmp(a));
    sorted
        .iter()
        .zip(&targets)
        .map(|(c, t)| c.saturating_sub(*t))
        .sum()
}

/// Whether a ±1-balanced placement exists that keeps every replica but the leaver's
/// (uniform weights, no zones): a flow from the leaver's partitions to the instances that
/// do not hold them, each instance taking between what it lacks to the floor and to the
/// ceiling of the new even share.
fn only_leaver_moves_possible(
    previous: &BTreeMap<String, Vec<String>>,
    leaver: &str,
    instances: &[String],
    r: usize,
) -> bool {
    let parts: Vec<&Vec<String>> = previous.values().collect();
    let (np, ni) = (parts.len(), instances.len());
    let total = np * r;
    let (floor, rem) = (total / ni, total % ni);
    let ceil = floor + usize::from(rem > 0);
    let kept: Vec<usize> = instances
        .iter()
        .map(|n| parts.iter().filter(|l| l.contains(n)).count())
        .collect();
    if kept.iter().any(|&k| k > ceil) {
        return false;
    }
    // Nodes: 0 source, 1..=np partitions, then instances, then the sink.
    let sink = 1 + np + ni;
    let mut cap = vec![vec![0i64; sink + 1]; sink + 1];
    let mut holes = 0;
    for (p, l) in parts.iter().enumerate() {
        let h = r.saturating_sub(l.iter().filter(|n| *n != leaver).count());
        holes += h;
        cap[0][1 + p] = h as i64;
        for (i, n) in instances.iter().enumerate() {
            if !l.contains(n) {
                cap[1 + p][1 + np + i] = 1;
            }
        }
    }
    let lo: Vec<i64> = kept.iter().map(|&k| floor.saturating_sub(k) as i64).collect();
    let hi: Vec<i64> = kept.iter().map(|&k| (ceil - k) as i64).collect();
    let flow = |cap: &mut Vec<Vec<i64>>| -> i64 {
        let mut total = 0;
        loop {
            let mut prev = vec![usize::MAX; sink + 1];
            prev[0] = 0;
            let mut queue = std::collections::VecDeque::from([0usize]);
            while let Some(u) = queue.pop_front() {
                for v in 0..=sink {
                    if prev[v] == usize::MAX && cap[u][v] > 0 {
                        prev[v] = u;
                        queue.push_back(v);
                    }
                }
            }
            if prev[sink] == usize::MAX {
                return total;
            }
            let mut v = sink;
            while v != 0 {
                let u = prev[v];
                cap[u][v] -= 1;
                cap[v][u] += 1;
                v = u;
            }
            total += 1;
        }
    };
    for i in 0..ni {
        cap[1 + np + i][sink] = lo[i];
    }
    let first = flow(&mut cap);
    if first < lo.iter().sum::<i64>() {
        return false;
    }
    for i in 0..ni {
        cap[1 + np + i][sink] += hi[i] - lo[i];
    }
    first + flow(&mut cap) == holes as i64
}

#[derive(Debug, Clone)]
enum Op {
    Add { zone: Option<u8>, weight: u32 },
    Remove(usize),
    Disable(usize),
    Enable(usize),
    Rezone(usize, Option<u8>),
    Reweight(usize, u32),
    Offline(usize),
    Online(usize),
    Tick,
}

fn weight_strategy(weighted: bool) -> BoxedStrategy<u32> {
    if weighted {
        prop_oneof![Just(1000u32), Just(500), Just(2000), Just(1500)].boxed()
    } else {
        Just(1000u32).boxed()
    }
}

/// No zone when there are none, else mostly one of `zones`.
fn zone_strategy(zones: u8) -> BoxedStrategy<Option<u8>> {
    if zones == 0 {
        Just(None).boxed()
    } else {
        proptest::option::weighted(0.9, 0..zones).boxed()
    }
}

fn op_strategy(weighted: bool, zones: u8) -> impl Strategy<Value = Op> {
    let zone = move || zone_strategy(zones);
    prop_oneof![
        3 => (zone(), weight_strategy(weighted)).prop_map(|(zone, weight)| Op::Add { zone, weight }),
        3 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::Disable),
        1 => any::<usize>().prop_map(Op::Enable),
        1 => (any::<usize>(), zone()).prop_map(|(i, z)| Op::Rezone(i, z)),
        1 => (any::<usize>(), weight_strategy(weighted)).prop_map(|(i, w)| Op::Reweight(i, w)),
        2 => any::<usize>().prop_map(Op::Offline),
        1 => any::<usize>().prop_map(Op::Online),
        1 => Just(Op::Tick),
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    cluster: Cluster,
    ops: Vec<Op>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (any::<bool>(), 0u8..5, any::<bool>(), any::<bool>(), any::<bool>()).prop_flat_map(
        |(weighted, zones, tagged, capped, delayed)| {
            let inst = (
                zone_strategy(zones),
                weight_strategy(weighted),
                proptest::bool::weighted(0.9),
                proptest::bool::weighted(0.1),
                proptest::bool::weighted(0.9),
            );
            let replicas = prop_oneof![
                6 => (1usize..5).prop_map(ReplicaCount::Count),
                1 => Just(ReplicaCount::AnyLiveInstance),
            ];
            (
                proptest::collection::vec(inst, 1..40),
                1usize..60,
                replicas,
                (0usize..30),
                (0u64..3, 0usize..4),
                proptest::collection::vec(op_strategy(weighted, zones), 1..8),
            )
                .prop_map(
                    move |(insts, nparts, replicas, cap, (delay_kind, min_active), ops)| {
                        let instances = insts
                            .into_iter()
                            .enumerate()
                            .map(|(i, (zone, weight, has_tag, disabled, live))| {
                                let mut x = InstanceInfo::new(format!("node_{i:02}"));
                                x.zone = zone.map(|z| format!("zone{z}"));
                                x.weight = weight;
                                if !tagged || has_tag {
                                    x.tags.insert("ssd".into());
                                }
                                x.enabled = !disabled;
                                x.live = live;
                                if !live {
                                    x.offline_since_ms = Some(0);
                                }
                                x
                            })
                            .collect();
                        let delay = delayed.then_some(DelaySettings {
                            delay_ms: [0, 150, 1_000][delay_kind as usize],
                            min_active_replicas: min_active,
                        });
                        Scenario {
                            cluster: Cluster {
                                partitions: (0..nparts).map(|p| format!("{RESOURCE}_{p}")).collect(),
                                replicas,
                                instances,
                                tag: tagged.then(|| "ssd".to_string()),
                                cap: capped.then_some(cap + 1),
                                delay,
                                now_ms: 100,
                                previous: BTreeMap::new(),
                            },
                            ops,
                        }
                    },
                )
        },
    )
}

/// Shuffles instances, partitions and previous lists' map order deterministically.
fn shuffled(c: &Cluster, salt: u64) -> Cluster {
    let mut s = c.clone();
    let key = |name: &str| {
        let mut h = salt ^ 0x9e37_79b9_7f4a_7c15;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    s.instances.sort_by_key(|x| key(&x.name));
    s.partitions.sort_by_key(|p| key(p));
    s
}

/// Applies `op`, returning the name of an instance that left or joined (for the movement
/// checks) and whether it joined.
fn apply(c: &mut Cluster, op: &Op, next_id: &mut usize) -> Option<(String, bool)> {
    c.now_ms += 100;
    let n = c.instances.len();
    let pick = |i: usize| if n == 0 { None } else { Some(i % n) };
    match *op {
        Op::Add { zone, weight } => {
            let mut x = InstanceInfo::new(format!("new_{:02}", *next_id));
            *next_id += 1;
            x.zone = zone.map(|z| format!("zone{z}"));
            x.weight = weight;
            if c.tag.is_some() {
                x.tags.insert("ssd".into());
            }
            let name = x.name.clone();
            c.instances.push(x);
            return Some((name, true));
        }
        Op::Remove(i) => {
            let i = pick(i)?;
            let x = c.instances.remove(i);
            return Some((x.name, false));
        }
        Op::Disable(i) => {
            let i = pick(i)?;
            c.instances[i].enabled = false;
            return Some((c.instances[i].name.clone(), false));
        }
        Op::Enable(i) => {
            let i = pick(i)?;
            c.instances[i].enabled = true;
        }
        Op::Rezone(i, z) => {
            let i = pick(i)?;
            c.instances[i].zone = z.map(|z| format!("zone{z}"));
        }
        Op::Reweight(i, w) => {
            let i = pick(i)?;
            c.instances[i].weight = w;
        }
        Op::Offline(i) => {
            let i = pick(i)?;
            let now = c.now_ms;
            let x = &mut c.instances[i];
            if x.live {
                x.live = false;
                x.offline_since_ms = Some(now);
                return Some((x.name.clone(), false));
            }
        }
        Op::Online(i) => {
            let i = pick(i)?;
            c.instances[i].live = true;
            c.instances[i].offline_since_ms = None;
        }
        Op::Tick => {}
    }
    None
}

fn run_scenario(sc: Scenario) -> Result<(), TestCaseError> {
    let mut c = sc.cluster;
    let mut next_id = 0;
    let mut pl = place(&c.input());
    check(&c, &pl).map_err(|e| TestCaseError::fail(format!("initial: {e}\n{}", describe(&c, &pl))))?;
    for (step, op) in sc.ops.iter().enumerate() {
        c.previous = pl.preference_lists.clone();
        let was_plain = c.plain();
        let was_candidate: BTreeSet<String> = c.candidates().iter().map(|x| x.name.clone()).collect();
        let old_counts = counts(&pl);
        let change = apply(&mut c, op, &mut next_id);
        pl = place(&c.input());
        let ctx =
            |e: String| TestCaseError::fail(format!("step {step} ({op:?}): {e}\n{}", describe(&c, &pl)));
        check(&c, &pl).map_err(ctx)?;
        let again = place(&shuffled(&c, step as u64 + 1).input());
        if again != pl {
            return Err(ctx("the result depends on the order of the inputs".into()));
        }
        // A result is its own fixed point: placing again from it changes nothing.
        let mut settled = c.clone();
        settled.previous = pl.preference_lists.clone();
        let replay = place(&settled.input());
        if replay != pl {
            let m = moved(&pl.preference_lists, &replay.preference_lists);
            let diff: Vec<String> = pl
                .preference_lists
                .iter()
                .filter(|(p, l)| replay.preference_lists.get(*p) != Some(l))
                .take(3)
                .map(|(p, l)| format!("{p}: {l:?} -> {:?}", replay.preference_lists.get(p)))
                .collect();
            return Err(ctx(format!(
                "placing again from the result changed it ({m} moved): {diff:?}"
            )));
        }
        if !(was_plain && c.plain()) || c.replicas == ReplicaCount::AnyLiveInstance {
            continue;
        }
        let Some((name, joined)) = change else { continue };
        if joined {
            let old: Vec<usize> = was_candidate
                .iter()
                .map(|n| old_counts.get(n).map_or(0, |v| v.0))
                .collect();
            let total: usize = pl.preference_lists.values().map(Vec::len).sum();
            let old_total: usize = old.iter().sum();
            if total == old_total && !old.is_empty() {
                let min = min_moves_on_join(&old, total);
                let m = moved(&c.previous, &pl.preference_lists);
                if m as f64 > 1.1 * min as f64 {
                    return Err(ctx(format!("join moved {m}, minimum {min}")));
                }
            }
        } else if was_candidate.contains(&name) {
            let held = old_counts.get(&name).map_or(0, |v| v.0);
            let m = moved(&c.previous, &pl.preference_lists);
            let shrank = r_eff(c.replicas, c.candidates().len()) < r_eff(c.replicas, was_candidate.len());
            let names: Vec<String> = c.candidates().iter().map(|x| x.name.clone()).collect();
            let r = r_eff(c.replicas, names.len());
            if !shrank && m != held && only_leaver_moves_possible(&c.previous, &name, &names, r) {
                return Err(ctx(format!("{name} left holding {held}, but {m} replicas moved")));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn churn_keeps_every_invariant(sc in scenario()) {
        run_scenario(sc)?;
    }
}

/// A plain cluster (uniform weights, no zones) with joins and leaves only: the movement
/// bounds are checked at every step.
fn plain_scenario() -> impl Strategy<Value = Scenario> {
    (
        2usize..30,
        1usize..120,
        1usize..4,
        proptest::collection::vec(any::<(bool, usize)>(), 1..10),
    )
        .prop_map(|(n, nparts, r, steps)| {
            let instances = (0..n)
                .map(|i| InstanceInfo::new(format!("node_{i:02}")))
                .collect();
            let ops = steps
                .into_iter()
                .map(|(join, i)| {
                    if join {
                        Op::Add {
                            zone: None,
                            weight: 1000,
                        }
                    } else {
                        Op::Remove(i)
                    }
                })
                .collect();
            Scenario {
                cluster: Cluster {
                    partitions: (0..nparts).map(|p| format!("{RESOURCE}_{p}")).collect(),
                    replicas: ReplicaCount::Count(r),
                    instances,
                    tag: None,
                    cap: None,
                    delay: None,
                    now_ms: 0,
                    previous: BTreeMap::new(),
                },
                ops,
            }
        })
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn joins_and_leaves_move_the_minimum(sc in plain_scenario()) {
        run_scenario(sc)?;
    }
}

// ---------------------------------------------------------------------------------------
// Exhaustive reference for small clusters (garage-style: the optimised assignment against
// a naive search over every assignment).

/// Every way to choose `r` of `n` instances, as sorted index sets.
fn combinations(n: usize, r: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    fn go(start: usize, n: usize, r: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if cur.len() == r {
            out.push(cur.clone());
            return;
        }
        for i in start..n {
            cur.push(i);
            go(i + 1, n, r, cur, out);
            cur.pop();
        }
    }
    go(0, n, r, &mut cur, &mut out);
    out
}

/// Best (smallest) max−min replica spread over all zone-valid assignments, and the fewest
/// moves from `previous` among assignments with spread ≤ 1.
fn naive(
    zones: &[usize],
    nparts: usize,
    r: usize,
    zmax: &BTreeMap<usize, usize>,
    previous: &[BTreeSet<usize>],
) -> (usize, Option<usize>) {
    let n = zones.len();
    let choices: Vec<Vec<usize>> = combinations(n, r)
        .into_iter()
        .filter(|set| {
            let mut per: BTreeMap<usize, usize> = BTreeMap::new();
            set.iter().all(|&i| {
                let e = per.entry(zones[i]).or_default();
                *e += 1;
                *e <= zmax[&zones[i]]
            })
        })
        .collect();
    let mut best_spread = usize::MAX;
    let mut best_moves: Option<usize> = None;
    let mut idx = vec![0usize; nparts];
    loop {
        let mut count = vec![0usize; n];
        let mut moves = 0;
        for (p, &k) in idx.iter().enumerate() {
            for &i in &choices[k] {
                count[i] += 1;
                if !previous[p].contains(&i) {
                    moves += 1;
                }
            }
        }
        let spread = count.iter().max().unwrap_or(&0) - count.iter().min().unwrap_or(&0);
        best_spread = best_spread.min(spread);
        if spread <= 1 {
            best_moves = Some(best_moves.map_or(moves, |b: usize| b.min(moves)));
        }
        // Next combination of choices.
        let mut p = 0;
        loop {
            if p == nparts {
                return (best_spread, best_moves);
            }
            idx[p] += 1;
            if idx[p] < choices.len() {
                break;
            }
            idx[p] = 0;
            p += 1;
        }
    }
}

fn small_case() -> impl Strategy<Value = (Vec<Option<u8>>, usize, usize, Vec<Vec<usize>>)> {
    (2usize..5, 1usize..5, 1usize..3, any::<bool>()).prop_flat_map(|(n, nparts, r, zoned)| {
        let zone = if zoned {
            proptest::option::of(0u8..3).boxed()
        } else {
            Just(None).boxed()
        };
        (
            proptest::collection::vec(zone, n),
            Just(nparts),
            Just(r.min(n)),
            proptest::collection::vec(proptest::collection::vec(0usize..n + 1, 0..r.min(n) + 1), nparts),
        )
    })
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn small_clusters_match_the_exhaustive_reference((zones, nparts, r, prev) in small_case()) {
        let instances: Vec<InstanceInfo> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| {
                let mut x = InstanceInfo::new(format!("n{i}"));
                x.zone = z.map(|z| format!("z{z}"));
                x
            })
            .collect();
        let n = instances.len();
        let partitions: Vec<String> = (0..nparts).map(|p| format!("p{p}")).collect();
        // Previous lists name existing instances, or a gone one (index n).
        let previous: BTreeMap<String, Vec<String>> = prev
            .iter()
            .enumerate()
            .map(|(p, l)| (format!("p{p}"), l.iter().map(|&i| format!("n{i}")).collect()))
            .collect();
        let c = Cluster {
            partitions,
            replicas: ReplicaCount::Count(r),
            instances,
            tag: None,
            cap: None,
            delay: None,
            now_ms: 0,
            previous,
        };
        let pl = place(&c.input());
        check(&c, &pl).map_err(TestCaseError::fail)?;
        // Zones as indices, with the same per-partition limits the checker derives.
        let members: Vec<&InstanceInfo> = c.instances.iter().collect();
        let zm = zone_max(&c, &members);
        let znames: Vec<String> = zm.keys().cloned().collect();
        let zidx: Vec<usize> = c.instances.iter().map(|x| znames.iter().position(|z| z == x.fault_zone()).unwrap_or(0)).collect();
        let zmax: BTreeMap<usize, usize> = znames.iter().enumerate().map(|(i, z)| (i, zm[z])).collect();
        // The previous lists as the engine keeps them: known, distinct, zone-valid, ≤ r.
        let prev_sets: Vec<BTreeSet<usize>> = (0..nparts)
            .map(|p| prev[p].iter().copied().filter(|&i| i < n).collect())
            .collect();
        let (best_spread, best_moves) = naive(&zidx, nparts, r, &zmax, &prev_sets);
        let cnt = counts(&pl);
        let reps: Vec<usize> = c.instances.iter().map(|x| cnt.get(&x.name).map_or(0, |v| v.0)).collect();
        let spread = reps.iter().max().unwrap_or(&0) - reps.iter().min().unwrap_or(&0);
        prop_assert!(spread <= best_spread.max(1), "spread {spread}, best {best_spread}: {:?}", pl.preference_lists);
        let zoned = c.instances.iter().any(|x| x.zone.is_some());
        if !zoned {
            let m = moved(&c.previous, &pl.preference_lists);
            let best = best_moves.unwrap_or(usize::MAX);
            prop_assert!(m <= best, "moved {m}, fewest {best}: {:?} -> {:?}", c.previous, pl.preference_lists);
        }
    }
}

#[test]
fn tutorial_layout_two_tops_and_six_replicas_each() {
    let c = Cluster {
        partitions: (0..6).map(|p| format!("{RESOURCE}_{p}")).collect(),
        replicas: ReplicaCount::Count(3),
        instances: (0..3)
            .map(|i| InstanceInfo::new(format!("localhost_{}", 12913 + i)))
            .collect(),
        tag: None,
        cap: None,
        delay: None,
        now_ms: 0,
        previous: BTreeMap::new(),
    };
    let pl = place(&c.input());
    check(&c, &pl).unwrap();
    let cnt = counts(&pl);
    assert_eq!(cnt.len(), 3);
    assert!(cnt.values().all(|&v| v == (6, 2)), "{cnt:?}");
}

#[test]
fn min_moves_on_join_is_exact_for_a_known_case() {
    // 10 replicas on 4 instances (3,3,2,2) → 5 instances want 2 each: 1+1 moves.
    assert_eq!(min_moves_on_join(&[3, 3, 2, 2], 10), 2);
    // 6 on 2 (3,3) → 3 instances want 2 each: 2 moves.
    assert_eq!(min_moves_on_join(&[3, 3], 6), 2);
}
