//! Helpers for the engine tests: snapshot builders, a participant simulator that applies
//! sent transitions, and the invariant checker every round runs through.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::StdRng;
use rand::RngExt;
use strand::model::{IdealState, RebalanceMode, Record};
use strand::rebalance::pipeline::{ClusterSnapshot, Decision, ResourceSnapshot};
use strand::rebalance::transitions::ReplicaTransition;
use strand::rebalance::{compute, InstanceInfo};
use strand::statemodel::{builtin, StateModelDefinition, UpperBound, DROPPED, ERROR};

/// `localhost_12913`, `localhost_12914`, …
pub fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("localhost_{}", 12913 + i)).collect()
}

/// `n` live, enabled instances.
pub fn instances(n: usize) -> Vec<InstanceInfo> {
    names(n).into_iter().map(InstanceInfo::new).collect()
}

/// An ideal state with `partitions` partitions, `replicas` replicas.
pub fn ideal(
    resource: &str,
    partitions: usize,
    replicas: usize,
    model: &str,
    mode: RebalanceMode,
) -> IdealState {
    let mut is = IdealState::create(resource, partitions, model, mode);
    is.record.set_simple("REPLICAS", replicas);
    is
}

/// The tutorial's SEMI_AUTO ideal state (the preference lists Helix's `--rebalance` wrote).
pub fn tutorial_semi_auto() -> IdealState {
    let text = include_str!("../../examples/plan/semi_auto.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    IdealState::new(Record::from_value(v["resources"][0]["idealState"].clone()).unwrap())
}

/// The state model of a resource of the snapshot.
pub fn model_of(snap: &ClusterSnapshot, res: &ResourceSnapshot) -> StateModelDefinition {
    let name = match &res.ideal_state {
        Some(is) => is.state_model().unwrap().to_string(),
        None => res.state_model.clone().unwrap(),
    };
    snap.state_models
        .get(&name)
        .cloned()
        .or_else(|| builtin(&name))
        .unwrap_or_else(|| panic!("no state model {name}"))
}

/// The bound of `state` for `res`: the state model's, unless an item of the snapshot's
/// `STATE_CONSTRAINT` record names the state (plainly, or `.*`) and the resource (plainly,
/// `.*` or not at all); a resource-named item beats the others, then the smaller number.
/// A plain re-reading of the rule for the checks, independent of the engine's.
pub fn state_bound(
    snap: &ClusterSnapshot,
    res: &ResourceSnapshot,
    model: &StateModelDefinition,
    state: &str,
) -> UpperBound {
    let Some(c) = &snap.state_constraints else {
        return model.upper_bound(state);
    };
    if state == DROPPED || state == ERROR {
        return UpperBound::Unbounded;
    }
    let mut best: Option<(bool, UpperBound)> = None;
    for item in c.record.map_fields.values() {
        let resource = item.get("RESOURCE").map(String::as_str);
        let named = resource.is_some_and(|r| r == res.name);
        let applies = item.get("STATE").is_some_and(|s| s == state || s == ".*")
            && (named || matches!(resource, None | Some(".*")))
            && item
                .keys()
                .all(|k| ["STATE", "RESOURCE", "CONSTRAINT_VALUE"].contains(&k.as_str()));
        if !applies {
            continue;
        }
        let bound = match item["CONSTRAINT_VALUE"].as_str() {
            "N" => UpperBound::LiveCandidates,
            "R" => UpperBound::Replicas,
            "ANY" => UpperBound::Unbounded,
            n => UpperBound::Count(n.parse().unwrap()),
        };
        let better = match best {
            None => true,
            Some((was_named, was)) => {
                named && !was_named
                    || named == was_named
                        && matches!((bound, was), (UpperBound::Count(a), UpperBound::Count(b)) if a < b)
            }
        };
        if better {
            best = Some((named, bound));
        }
    }
    best.map_or_else(|| model.upper_bound(state), |(_, b)| b)
}

/// Runs the engine, failing the test on an error.
pub fn decide(snap: &ClusterSnapshot) -> Decision {
    compute(snap).unwrap_or_else(|e| panic!("compute failed: {e}"))
}

/// Sends the decision's transitions: they become pending.
pub fn send(snap: &mut ClusterSnapshot, d: &Decision) {
    for res in &mut snap.resources {
        if let Some(rd) = d.resources.get(&res.name) {
            res.pending.extend(rd.transitions.iter().cloned());
        }
    }
}

/// Completes pending transitions (each with probability `p`; `p >= 1.0` completes all). With
/// probability `error_p` a completed transition fails and leaves the replica in ERROR.
pub fn complete(snap: &mut ClusterSnapshot, rng: &mut StdRng, p: f64, error_p: f64) {
    for res in &mut snap.resources {
        let pending = std::mem::take(&mut res.pending);
        for t in pending {
            if p >= 1.0 || rng.random_bool(p) {
                let holders = res.current_state.entry(t.partition.clone()).or_default();
                if error_p > 0.0 && rng.random_bool(error_p) {
                    holders.insert(t.instance.clone(), ERROR.to_string());
                } else if t.to == DROPPED {
                    holders.remove(&t.instance);
                } else {
                    holders.insert(t.instance.clone(), t.to.clone());
                }
                if holders.is_empty() {
                    res.current_state.remove(&t.partition);
                }
            } else {
                res.pending.push(t);
            }
        }
    }
}

/// An instance dies: its session ends, its replicas and transitions are gone (a fenced
/// participant steps down before it rejoins).
pub fn kill(snap: &mut ClusterSnapshot, instance: &str) {
    for i in &mut snap.instances {
        if i.name == instance {
            i.live = false;
        }
    }
    forget(snap, instance);
}

/// Removes an instance's current states and pending transitions.
pub fn forget(snap: &mut ClusterSnapshot, instance: &str) {
    for res in &mut snap.resources {
        for holders in res.current_state.values_mut() {
            holders.remove(instance);
        }
        res.current_state.retain(|_, h| !h.is_empty());
        res.pending.retain(|t| t.instance != instance);
    }
}

/// Runs rounds (decide, check, send, complete everything) until nothing is left to send;
/// returns the last decision and the number of rounds.
pub fn converge(snap: &mut ClusterSnapshot, max_rounds: usize) -> (Decision, usize) {
    let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(0);
    for round in 0..max_rounds {
        let d = decide(snap);
        if let Err(e) = check_decision(snap, &d) {
            panic!("round {round}: {e}");
        }
        let idle = d.resources.values().all(|r| r.transitions.is_empty())
            && snap.resources.iter().all(|r| r.pending.is_empty());
        if idle {
            return (d, round);
        }
        send(snap, &d);
        complete(snap, &mut rng, 1.0, 0.0);
        check_reported(snap).unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
    panic!("no convergence within {max_rounds} rounds");
}

/// Live instances' current states of one resource: partition → {instance → state}.
pub fn live_current(
    snap: &ClusterSnapshot,
    res: &ResourceSnapshot,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let live: BTreeSet<&str> = snap
        .instances
        .iter()
        .filter(|i| i.live)
        .map(|i| i.name.as_str())
        .collect();
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (p, holders) in &res.current_state {
        for (i, s) in holders {
            if live.contains(i.as_str()) && s != DROPPED {
                out.entry(p.clone()).or_default().insert(i.clone(), s.clone());
            }
        }
    }
    out
}

/// Shortest distance from `from` to `to` over the model's transitions (never into ERROR;
/// from ERROR only its direct exits), by a plain breadth-first search.
pub fn distance(model: &StateModelDefinition, from: &str, to: &str) -> Option<usize> {
    if from == to {
        return Some(0);
    }
    let mut seen = BTreeSet::from([from.to_string()]);
    let mut queue = VecDeque::from([(from.to_string(), 0usize)]);
    while let Some((s, d)) = queue.pop_front() {
        if s == ERROR && d > 0 {
            continue;
        }
        for t in model.transitions() {
            if t.from == s && t.to != ERROR && seen.insert(t.to.clone()) {
                if t.to == to {
                    return Some(d + 1);
                }
                if s != ERROR {
                    queue.push_back((t.to.clone(), d + 1));
                }
            }
        }
    }
    None
}

/// The participants' reported states never have more replicas in a fixed-bound state than
/// its bound (never two MASTERs).
pub fn check_reported(snap: &ClusterSnapshot) -> Result<(), String> {
    for res in &snap.resources {
        let model = model_of(snap, res);
        for (p, holders) in live_current(snap, res) {
            for s in model.states() {
                if let UpperBound::Count(n) = state_bound(snap, res, &model, s) {
                    let c = holders.values().filter(|x| *x == s).count();
                    if c > n {
                        return Err(format!(
                            "{}/{p}: {c} replicas report {s} (bound {n}): {holders:?}",
                            res.name
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks one decision against the snapshot it was computed from: bounds (counting pending
/// transitions), next hops, one transition per replica, nothing sent to busy replicas,
/// disabled → initial state, ERROR kept.
pub fn check_decision(snap: &ClusterSnapshot, d: &Decision) -> Result<(), String> {
    let live_enabled = snap.instances.iter().filter(|i| i.live && i.enabled).count();
    for res in &snap.resources {
        let model = model_of(snap, res);
        let rd = d
            .resources
            .get(&res.name)
            .ok_or_else(|| format!("no decision for {}", res.name))?;
        let current = live_current(snap, res);
        let live: BTreeSet<&str> = snap
            .instances
            .iter()
            .filter(|i| i.live)
            .map(|i| i.name.as_str())
            .collect();
        let pending: Vec<&ReplicaTransition> = res
            .pending
            .iter()
            .filter(|t| live.contains(t.instance.as_str()))
            .collect();
        let replicas_field = res
            .ideal_state
            .as_ref()
            .and_then(|is| is.record.simple("REPLICAS").and_then(|r| r.parse::<usize>().ok()))
            .unwrap_or(0);
        let enabled_resource = res.ideal_state.as_ref().is_none_or(|is| is.enabled().unwrap());
        let empty = BTreeMap::new();

        // Best possible: fixed bounds, disabled → initial, ERROR kept.
        for (p, best) in &rd.best_possible {
            let holders = current.get(p).unwrap_or(&empty);
            for s in model.states() {
                if let UpperBound::Count(n) = state_bound(snap, res, &model, s) {
                    let c = best.values().filter(|x| *x == s).count();
                    if c > n {
                        return Err(format!(
                            "{}/{p}: best possible has {c} {s} (bound {n}): {best:?}",
                            res.name
                        ));
                    }
                }
            }
            for (i, s) in holders {
                let b = best.get(i).map(String::as_str);
                if s == ERROR && !matches!(b, Some(ERROR) | Some(DROPPED)) {
                    return Err(format!(
                        "{}/{p}: {i} is in ERROR but best possible says {b:?}",
                        res.name
                    ));
                }
                let info = snap.instances.iter().find(|x| &x.name == i).unwrap();
                let disabled = !enabled_resource || !info.enabled || info.is_partition_disabled(&res.name, p);
                if let (true, Some(is), false) = (disabled, &res.ideal_state, s == ERROR) {
                    // CUSTOMIZED drops a holder its map does not name, disabled or not.
                    let customized = is.rebalance_mode().unwrap() == RebalanceMode::Customized;
                    let in_map = is.instance_state_map(p).is_some_and(|m| m.contains_key(i));
                    let expected = if customized && !in_map {
                        DROPPED
                    } else {
                        model.initial_state()
                    };
                    if b != Some(expected) {
                        return Err(format!(
                            "{}/{p}: {i} is disabled and should be {expected}, best possible says {b:?}",
                            res.name
                        ));
                    }
                }
            }
            for i in best.keys() {
                if !live.contains(i.as_str()) {
                    return Err(format!(
                        "{}/{p}: best possible names {i}, which is not live",
                        res.name
                    ));
                }
            }
        }

        // Transitions: one per replica, none for busy replicas, next hop, bounds.
        let mut by_partition: BTreeMap<&str, Vec<&ReplicaTransition>> = BTreeMap::new();
        for t in &rd.transitions {
            by_partition.entry(&t.partition).or_default().push(t);
        }
        for (p, sent) in by_partition {
            let holders = current.get(p).unwrap_or(&empty);
            let best = rd.best_possible.get(p).unwrap_or(&empty);
            let here: Vec<&&ReplicaTransition> = pending.iter().filter(|t| t.partition == p).collect();
            let mut seen = BTreeSet::new();
            for t in &sent {
                if !seen.insert(&t.instance) {
                    return Err(format!("{}/{p}: two transitions for {}", res.name, t.instance));
                }
                if here.iter().any(|q| q.instance == t.instance) {
                    return Err(format!(
                        "{}/{p}: {} already has a transition in flight",
                        res.name, t.instance
                    ));
                }
                let held = holders
                    .get(&t.instance)
                    .map_or(model.initial_state(), String::as_str);
                if t.from != held {
                    return Err(format!(
                        "{}/{p}: {t:?} does not start from the current state {held}",
                        res.name
                    ));
                }
                if !model.is_transition(&t.from, &t.to) {
                    return Err(format!(
                        "{}/{p}: {t:?} is not a transition of {}",
                        res.name,
                        model.name()
                    ));
                }
                let target = best
                    .get(&t.instance)
                    .ok_or_else(|| format!("{}/{p}: {t:?} has no target", res.name))?;
                let (df, dt) = (distance(&model, &t.from, target), distance(&model, &t.to, target));
                if !(df.is_some() && dt.is_some() && dt.unwrap() + 1 == df.unwrap()) {
                    return Err(format!(
                        "{}/{p}: {t:?} is not on a shortest path to {target} ({df:?} → {dt:?})",
                        res.name
                    ));
                }
            }
            // Counts before (current + both ends of pending) and after this round.
            let mut before: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, s) in holders {
                if !here.iter().any(|q| &q.instance == i) {
                    *before.entry(s.as_str()).or_default() += 1;
                }
            }
            for q in &here {
                *before.entry(q.from.as_str()).or_default() += 1;
                if q.to != q.from {
                    *before.entry(q.to.as_str()).or_default() += 1;
                }
            }
            let list_len = rd.preference_lists.get(p).map_or(0, Vec::len);
            let replicas = if replicas_field > 0 {
                replicas_field
            } else {
                list_len
            };
            for s in model.states() {
                let bound = state_bound(snap, res, &model, s);
                if bound == UpperBound::Unbounded || s == DROPPED {
                    continue;
                }
                let into: Vec<&&ReplicaTransition> = sent.iter().filter(|t| &t.to == s).collect();
                let b = before.get(s.as_str()).copied().unwrap_or(0);
                let after = b + into.len();
                let ok = match bound {
                    UpperBound::Count(n) => after <= n,
                    UpperBound::LiveCandidates => after <= live_enabled.max(b),
                    UpperBound::Replicas => {
                        // Only a replica on its way further down may pass an R bound.
                        let demotions = into
                            .iter()
                            .filter(|t| {
                                let target = best.get(&t.instance).and_then(|b| model.state_priority(b));
                                model.state_priority(&t.to) > model.state_priority(&t.from)
                                    && target > model.state_priority(&t.to)
                            })
                            .count();
                        after - demotions <= replicas.max(b)
                    }
                    UpperBound::Unbounded => true,
                };
                if !ok {
                    return Err(format!(
                        "{}/{p}: {s} would reach {after} (bound {bound:?}, before {b}) with {sent:?} and pending {here:?}",
                        res.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A random valid state model: 1–3 states above the initial one, random bounds and
/// priorities, a chain of transitions up and down plus random shortcuts.
pub fn random_model(rng: &mut StdRng, name: &str) -> StateModelDefinition {
    loop {
        let k = rng.random_range(1..=3usize);
        let states: Vec<String> = (0..k).map(|i| format!("S{i}")).collect();
        let mut b = StateModelDefinition::builder(name).initial_state("OFFLINE");
        for (i, s) in states.iter().enumerate() {
            b = b.state_with_priority(s.clone(), i as u32 + 1);
            let bound = match rng.random_range(0..5) {
                0 => UpperBound::Count(1),
                1 => UpperBound::Count(2),
                2 => UpperBound::Replicas,
                3 if i == 0 => UpperBound::LiveCandidates,
                _ => UpperBound::Unbounded,
            };
            b = b.upper_bound(s.clone(), bound);
        }
        b = b.state_with_priority("OFFLINE", k as u32 + 1);
        let mut chain = states.clone();
        chain.push("OFFLINE".into());
        let mut edges: Vec<(String, String)> = Vec::new();
        for w in chain.windows(2) {
            edges.push((w[0].clone(), w[1].clone()));
            edges.push((w[1].clone(), w[0].clone()));
        }
        for _ in 0..rng.random_range(0..3) {
            let a = chain[rng.random_range(0..chain.len())].clone();
            let c = chain[rng.random_range(0..chain.len())].clone();
            if a != c && !edges.contains(&(a.clone(), c.clone())) {
                edges.push((a, c));
            }
        }
        for (a, c) in edges {
            let prio = rng.random_range(1..20u32);
            b = b.transition_with_priority(a, c, prio);
        }
        if let Ok(m) = b.build() {
            return m;
        }
    }
}
