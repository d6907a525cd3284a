//! The incremental round equals the full one: seeded random sequences of changes (instances
//! down, up, disabled, joining, rezoned; current-state updates from completed and failed
//! transitions; ideal-state edits; resources disabled, added and dropped; throttle and
//! message-constraint changes; pause, maintenance, delayed rebalance and the clock) and,
//! after every step, [`Engine::round`] on the changed snapshot must give exactly
//! [`compute`]'s decision (or the same error). A failure names its seed: rerun with
//! `ENGINE_SEED=<seed>`; `ENGINE_SEEDS=<count>` runs more seeds than the default.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use strand::model::fields::{
    DELAY_REBALANCE_TIME, HELIX_ENABLED, NUM_PARTITIONS, REPLICAS, STATE_TRANSITION_THROTTLE_CONFIGS,
};
use strand::model::{ClusterConstraints, Record};
use strand::rebalance::pipeline::{ClusterSnapshot, ResourceSnapshot};
use strand::rebalance::{compute, Decision, Engine};

use super::properties::{churn, modes, random_cluster, seeds};
use super::support::*;

const THROTTLES: [&str; 3] = [
    r#"{"THROTTLE_SCOPE":"INSTANCE","MAX_PARTITION_IN_TRANSITION":"1"}"#,
    r#"{"THROTTLE_SCOPE":"CLUSTER","MAX_PARTITION_IN_TRANSITION":"2","REBALANCE_TYPE":"LOAD_BALANCE"}"#,
    r#"{"THROTTLE_SCOPE":"RESOURCE","MAX_PARTITION_IN_TRANSITION":"1","REBALANCE_TYPE":"RECOVERY_BALANCE"}"#,
];

/// One random change beyond the instance churn of the property tests.
fn change(rng: &mut StdRng, snap: &mut ClusterSnapshot, fresh: &mut usize) {
    let r = rng.random_range(0..snap.resources.len());
    match rng.random_range(0..10) {
        // An ideal-state edit: the replica count or the partition count.
        0 => {
            if let Some(is) = snap.resources[r].ideal_state.as_mut() {
                if rng.random_bool(0.5) {
                    is.record.set_simple(REPLICAS, rng.random_range(1..=3usize));
                } else if is.record.list_fields.is_empty() && is.record.map_fields.is_empty() {
                    is.record.set_simple(NUM_PARTITIONS, rng.random_range(1..=7usize));
                }
            }
        }
        // The resource disabled or enabled.
        1 => {
            if let Some(is) = snap.resources[r].ideal_state.as_mut() {
                let on = is.enabled().unwrap_or(true);
                is.record.set_simple(HELIX_ENABLED, !on);
            }
        }
        // The resource dropped: its replicas walk to DROPPED.
        2 if snap.resources[r].ideal_state.is_some() => {
            let model = model_of(snap, &snap.resources[r]);
            let res = &mut snap.resources[r];
            res.ideal_state = None;
            res.state_model = Some(model.name().to_string());
        }
        // A new resource, or a dropped one with nothing left is forgotten.
        3 => {
            let forgotten =
                snap.resources[r].ideal_state.is_none() && snap.resources[r].current_state.is_empty();
            if forgotten && snap.resources.len() > 1 {
                snap.resources.remove(r);
            } else {
                *fresh += 1;
                let mode = modes()[rng.random_range(0..3)];
                let is = ideal(&format!("new{fresh}"), 3, 2, "MasterSlave", mode);
                snap.resources.push(ResourceSnapshot::new(is).into());
            }
        }
        // Throttle configs changed.
        4 => {
            let n = rng.random_range(0..=THROTTLES.len());
            let list = THROTTLES[..n].iter().map(|s| s.to_string()).collect();
            snap.cluster_config
                .record
                .list_fields
                .insert(STATE_TRANSITION_THROTTLE_CONFIGS.into(), list);
        }
        // A message constraint set or removed.
        5 => {
            snap.message_constraints = if snap.message_constraints.is_some() {
                None
            } else {
                let mut c = Record::new("MESSAGE_CONSTRAINT");
                c.map_fields.insert(
                    "perInstance".into(),
                    BTreeMap::from([
                        ("MESSAGE_TYPE".to_string(), "STATE_TRANSITION".to_string()),
                        ("INSTANCE".to_string(), ".*".to_string()),
                        (
                            "CONSTRAINT_VALUE".to_string(),
                            rng.random_range(1..3u32).to_string(),
                        ),
                    ]),
                );
                Some(ClusterConstraints::new(c))
            };
        }
        6 => snap.paused = !snap.paused,
        7 => snap.maintenance = !snap.maintenance,
        // Delayed rebalance switched on or off.
        8 => {
            if snap.cluster_config.record.simple(DELAY_REBALANCE_TIME).is_some() {
                snap.cluster_config
                    .record
                    .simple_fields
                    .remove(DELAY_REBALANCE_TIME);
            } else {
                snap.cluster_config
                    .record
                    .set_simple(DELAY_REBALANCE_TIME, rng.random_range(1..4u64) * 100);
            }
        }
        _ => offline_now(rng, snap),
    }
}

/// A live instance goes offline at the snapshot's clock (delayed rebalance keeps its places
/// until its window closes).
fn offline_now(rng: &mut StdRng, snap: &mut ClusterSnapshot) {
    let now = snap.now_ms;
    let live = snap.instances.iter().filter(|x| x.live).count();
    let i = rng.random_range(0..snap.instances.len());
    if live > 1 && snap.instances[i].live {
        snap.instances[i].live = false;
        snap.instances[i].offline_since_ms = Some(now);
    }
}

/// A seed's random cluster at `now_ms` 1000; even seeds have delayed rebalance on from the
/// start (the clock decides when places are given up).
fn start(seed: u64) -> (StdRng, ClusterSnapshot) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut snap = random_cluster(&mut rng, &modes());
    snap.now_ms = 1_000;
    if seed.is_multiple_of(2) {
        snap.cluster_config.record.set_simple(DELAY_REBALANCE_TIME, 200);
    }
    (rng, snap)
}

/// One round through the engine, which must equal the full one (or fail as it does);
/// returns the full round's decision.
fn checked_round(
    step: usize,
    engine: &mut Engine,
    snap: &ClusterSnapshot,
) -> Result<Option<Decision>, String> {
    let full = compute(snap);
    match (&full, engine.round(snap)) {
        (Ok(f), Ok(i)) if f == i => {}
        (Err(f), Err(i)) if f.to_string() == i.to_string() => {}
        (f, i) => {
            return Err(format!(
                "step {step}: incremental round differs from the full one\nfull: {f:?}\nincremental: {i:?}"
            ))
        }
    }
    Ok(full.ok())
}

/// Steps of random changes; after each, the incremental round must equal the full one.
fn run(seed: u64) -> Result<(), String> {
    let (mut rng, mut snap) = start(seed);
    let mut engine = Engine::new();
    let mut fresh = 0;
    for step in 0..60 {
        // Some steps change nothing but the clock: participants are slow.
        let mut quiet = false;
        match rng.random_range(0..6) {
            0 => churn(&mut rng, &mut snap),
            1 => change(&mut rng, &mut snap, &mut fresh),
            2 => offline_now(&mut rng, &mut snap),
            3 => quiet = true,
            _ => {} // only transitions complete and the clock moves
        }
        if rng.random_bool(0.5) {
            snap.now_ms += rng.random_range(0..150);
        }
        let full = checked_round(step, &mut engine, &snap)?;
        if let (Some(d), false) = (full, quiet) {
            send(&mut snap, &d);
            complete(&mut snap, &mut rng, 0.5, 0.02);
        }
    }
    Ok(())
}

/// Steps where only instances' liveness changes (down, back, disabled, enabled) while
/// transitions complete and the clock moves; returns how many resources the engine patched.
fn run_liveness(seed: u64) -> Result<usize, String> {
    let (mut rng, mut snap) = start(seed);
    let mut engine = Engine::new();
    let mut patched = 0;
    for step in 0..40 {
        let i = rng.random_range(0..snap.instances.len());
        match rng.random_range(0..4) {
            0 => offline_now(&mut rng, &mut snap),
            1 => snap.instances[i].live = true,
            2 => snap.instances[i].enabled = !snap.instances[i].enabled,
            _ => {} // only transitions complete and the clock moves
        }
        if rng.random_bool(0.5) {
            snap.now_ms += rng.random_range(0..150);
        }
        let full = checked_round(step, &mut engine, &snap)?;
        patched += engine.last_round().patched;
        if let Some(d) = full {
            send(&mut snap, &d);
            complete(&mut snap, &mut rng, 0.5, 0.02);
        }
    }
    Ok(patched)
}

#[test]
fn rounds_after_instances_fail_return_or_are_disabled_are_patched_and_equal_full_rounds() {
    let mut patched = 0;
    for seed in seeds(60) {
        match run_liveness(seed) {
            Ok(n) => patched += n,
            Err(e) => panic!("seed {seed} (rerun with ENGINE_SEED={seed}): {e}"),
        }
    }
    // The rounds went through the patch, not only through full decisions.
    assert!(patched > 0);
}

#[test]
fn incremental_rounds_equal_full_rounds_under_random_changes() {
    for seed in seeds(60) {
        if let Err(e) = run(seed) {
            panic!("seed {seed} (rerun with ENGINE_SEED={seed}): {e}");
        }
    }
}
