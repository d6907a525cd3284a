//! The deterministic simulation (`strand sim`, issue 19 §1): it must catch planted bugs —
//! a selection that lets two MASTERs exist, fencing of deposed controllers removed (their
//! rounds write unfenced, participants apply older epochs) — and a fixed batch without them
//! must find nothing, partitions and disk faults included. Real bugs the simulator found (a
//! MASTER partitioned with a store minority; a watch that stopped virtual time) are kept as
//! regression tests, a seed whose store leader's disk stalls shows the leader stepping down
//! while the store keeps serving, and a run whose virtual time stops fails instead of hanging.
//!
//! The planted bugs are switched on through `strand::testing` (the `testing` feature);
//! the switches are process-wide, so every test here holds `SWITCHES` while it runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use strand::sim::cluster::SHAPE;
use strand::sim::faults::{schedule, Fault, Mix};
use strand::sim::{self, Outcome, SimConfig};

static SWITCHES: Mutex<()> = Mutex::new(());

/// Turns a switch on until dropped.
struct On(&'static AtomicBool);

impl On {
    fn new(switch: &'static AtomicBool) -> On {
        switch.store(true, Ordering::SeqCst);
        On(switch)
    }
}

impl Drop for On {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn run(seed: u64, steps: usize, mix: Mix) -> Outcome {
    sim::run(SimConfig::new(seed, steps, mix)).unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

fn describe(o: &Outcome) -> String {
    let v: Vec<String> = o
        .violations
        .iter()
        .map(|v| format!("{}: {}", v.invariant, v.detail))
        .collect();
    format!("seed {}: {}\n{}", o.seed, v.join("\n"), o.minimal_trace)
}

/// Runs seeds `0..seeds` until one's outcome is `caught`; whether one was.
fn caught_within(seeds: u64, steps: usize, mix: Mix, caught: impl Fn(&Outcome) -> bool) -> bool {
    for seed in 0..seeds {
        let o = run(seed, steps, mix);
        if caught(&o) {
            eprintln!("caught: {}", describe(&o));
            return true;
        }
    }
    false
}

#[test]
fn a_selection_that_allows_two_masters_is_caught_within_a_few_seeds() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let _on = On::new(&strand::testing::BREAK_SELECTION);
    // Caught while the cluster first balances, before any fault: the planted bug, not a
    // fault's doing.
    let caught = caught_within(20, 1, Mix::NoPartitions, |o| {
        o.violations.iter().any(|v| {
            v.invariant == "two-masters" && v.at_us.iter().min().is_some_and(|t| *t < o.first_fault_us)
        })
    });
    assert!(caught, "a broken selection went unnoticed for 20 seeds");
}

/// Long (minutes): since the session lease, a seed exposes a deposed controller's messages to
/// a session that saw a newer epoch far less often — caught at seeds 2, 88 and 115 of 0..120
/// in one run (seed 2 every time before the lease), and at none of 0..40 in another. Run with
/// `cargo test --all-features --test sim -- --ignored`; `STRAND_SIM_FENCING_SEEDS=N` changes
/// the budget and `STRAND_SIM_COUNT_ALL=1` counts every catching seed. The checker itself is
/// tested in CI (`sim::invariants::tests::an_older_epoch_after_a_newer_one_in_a_session_is_caught`).
#[test]
#[ignore = "long: up to a few hundred seeds; run with --ignored"]
fn a_participant_that_accepts_fenced_epochs_is_caught_within_a_few_hundred_seeds() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let _on = On::new(&strand::testing::BREAK_FENCING);
    let seeds = std::env::var("STRAND_SIM_FENCING_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FENCING_SEEDS);
    let keep_going = std::env::var_os("STRAND_SIM_COUNT_ALL").is_some();
    let mut caught = Vec::new();
    for seed in 0..seeds {
        let o = run(seed, 4, Mix::All);
        if o.violations.iter().any(|v| v.invariant == "stale-epoch") {
            eprintln!("caught at seed {seed}: {}", describe(&o));
            caught.push(seed);
            if !keep_going {
                return;
            }
        }
    }
    if !caught.is_empty() {
        eprintln!("caught at seeds {caught:?} of {seeds}");
        return;
    }
    panic!("a broken fencing check went unnoticed for {seeds} seeds");
}

const FENCING_SEEDS: u64 = 300;

#[test]
fn a_fixed_batch_finds_no_violation() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    for seed in 0..BATCH {
        let o = run(seed, 3, Mix::All);
        assert!(o.violations.is_empty(), "{}", describe(&o));
        assert!(o.ops > 0 && o.events > 0, "seed {seed} ran nothing: {o:?}");
    }
}

const BATCH: u64 = 12;

/// Found by the simulator (`strand sim --seed 2 --steps 3`): a partition cuts
/// [store-2, ctl-0, node-1] from the rest. node-1, MASTER of db_2 and kv_0, still reaches
/// two gossip peers, so it is not "isolated" and keeps serving as MASTER; the controller on
/// the majority side promotes node-4 and node-2 about 0.5 s later; node-1 steps down only
/// when the partition heals (2 s later). Fixed by the session lease
/// (`strand::participant::lease`): node-1 steps down when a majority of store replicas has
/// not confirmed its session for a lease, and the controller counts its replicas until a
/// lease after it ended the session.
#[test]
fn a_master_partitioned_with_a_minority_steps_down_before_a_successor_is_promoted() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let o = run(2, 3, Mix::All);
    // No two MASTERs, and the partitions still converge (the linger ends).
    assert!(o.violations.is_empty(), "{}", describe(&o));
}

/// The planted version of that bug: without the leader's linger, a MASTER cut off with a
/// store minority overlaps its successor (its lease alone is not enough: the successor is
/// promoted as soon as the gossip's verdict is in).
#[test]
fn without_the_linger_a_partitioned_master_is_caught_beside_its_successor() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let _on = On::new(&strand::testing::BREAK_LINGER);
    let caught = caught_within(LINGER_SEEDS, 3, Mix::All, |o| {
        o.violations.iter().any(|v| v.invariant == "two-masters")
    });
    assert!(
        caught,
        "a controller without the linger went unnoticed for {LINGER_SEEDS} seeds"
    );
}

const LINGER_SEEDS: u64 = 20;

/// A stalled disk (issue 19 §1): in seed 17 the store leader's log fsyncs stall for 3.6 s,
/// longer than the stall bound (2 s). The leader must step down, the others elect a leader
/// whose disk works and serve the clients while the stall lasts, and every invariant holds
/// (no acknowledged write lost, the watch stream whole, no two MASTERs). A stall that does
/// nothing leaves the leader in place and fails this test.
#[test]
fn a_leader_whose_disk_stalls_steps_down_and_the_store_keeps_serving() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let o = run(STALLED_LEADER_SEED, 3, Mix::All);
    assert!(o.violations.is_empty(), "{}", describe(&o));
    let stall = o.stalls.iter().find(|s| s.led).unwrap_or_else(|| {
        panic!(
            "seed {STALLED_LEADER_SEED} stalls the leader's disk: {:?}",
            o.stalls
        )
    });
    assert!(
        stall.hold_ms > 3_000,
        "held past the bound (the schedule changed?): {stall:?}"
    );
    assert!(stall.stepped_down, "the disk guard stepped it down: {stall:?}");
    assert!(
        stall.leader_at_heal.is_some_and(|l| l != stall.replica),
        "another replica leads: {stall:?}"
    );
    assert!(
        stall.answered > 0,
        "clients were served during the stall: {stall:?}"
    );
}

const STALLED_LEADER_SEED: u64 = 17;

/// A seed replays identically (issue 19 §1): two runs of each seed of a batch, one after the
/// other in this process, give the same trace — every fault, every participant's transition
/// event and every client operation with its virtual time — so a failing seed can be rerun
/// and debugged. Fails (the report says at which line the runs part) if anything a run does
/// depends on wall time, a thread outside its runtime, the process's hash seeds or an
/// unseeded random draw: tokio's unbiased `select!`, a wall-clock stamp, a message id from
/// `rand::random`, an unseeded foca, a snapshot built on a blocking thread.
#[test]
fn a_seed_replays_identically() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    for seed in REPLAY_SEEDS {
        let r = sim::replay(SimConfig::new(seed, 3, Mix::All)).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(r.first.violations.is_empty(), "{}", describe(&r.first));
        assert!(
            r.first.ops > 0 && r.first.events > 0 && r.first.trace.len() > r.first.ops,
            "seed {seed} ran nothing: {:?}",
            r.first
        );
        if let Some(d) = r.divergence() {
            panic!("seed {seed}: {d}");
        }
        assert_eq!(r.first.digest, r.second.digest, "seed {seed}");
    }
}

const REPLAY_SEEDS: [u64; 3] = [0, 2, 17];

/// Wall-clock jumps (issue 19 §1): in the `clocks` mix every member's wall clock (record
/// stamps, session and gossip generations, offline times) steps forward or back by up to a
/// minute and back again when the step heals, while the monotonic clock runs on. Two seeds,
/// one with a jump forward, one with a jump back: no invariant breaks, and each replays
/// identically.
#[test]
fn wall_clock_jumps_either_way_break_no_invariant_and_replay() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let jumps = |seed: u64| -> Vec<i64> {
        schedule(seed, 3, &SHAPE, Mix::Clocks)
            .into_iter()
            .filter_map(|s| match s.fault {
                Fault::ClockJump { ms } => Some(ms),
                _ => None,
            })
            .collect()
    };
    let forward = (0..100)
        .find(|s| jumps(*s).iter().any(|ms| *ms > 0))
        .expect("a seed jumping forward");
    let back = (0..100)
        .find(|s| jumps(*s).iter().any(|ms| *ms < 0))
        .expect("a seed jumping back");
    for seed in [forward, back] {
        let r =
            sim::replay(SimConfig::new(seed, 3, Mix::Clocks)).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(r.first.violations.is_empty(), "{}", describe(&r.first));
        assert!(
            r.first
                .trace
                .iter()
                .any(|l| l.text.contains("the wall clock jumps")),
            "seed {seed} jumped: {:?}",
            jumps(seed)
        );
        if let Some(d) = r.divergence() {
            panic!("seed {seed}: {d}");
        }
    }
}

/// Found by the simulator (`strand sim --seed 2181 --steps 3`; its virtual time stopped at
/// 5.3 s in 4 of 6 debug runs on 7707e59, before a seed replayed identically): the
/// cache watch of a store client whose believed leader it also held deposed gave up every
/// poll of another replica at once and chose again, without ever waiting. Fixed in
/// `propertystore::client::watcher` (`gives_way`), where
/// `a_watch_whose_believed_leader_is_deposed_waits_instead_of_spinning` keeps it without the
/// simulator's luck. Here the seed must end, with no violation ("progress" included).
#[test]
fn a_watch_that_gave_up_its_polls_for_a_deposed_leader_no_longer_stops_virtual_time() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let o = run(2181, 3, Mix::All);
    assert!(o.violations.is_empty(), "{}", describe(&o));
}

/// The watchdog: a run whose virtual time stops (here a planted task that yields without
/// ever waiting, once the cluster first converged) ends as a failing seed with a "progress"
/// violation and its trace, instead of hanging the batch; the stalled run is stopped.
#[test]
fn a_run_whose_virtual_time_stops_fails_with_no_progress_instead_of_hanging() {
    let _g = SWITCHES.lock().unwrap_or_else(|e| e.into_inner());
    let _on = On::new(&strand::testing::STOP_VIRTUAL_TIME);
    let config = SimConfig {
        stall_after: Duration::from_secs(5),
        ..SimConfig::new(0, 1, Mix::All)
    };
    let o = sim::run(config).unwrap_or_else(|e| panic!("seed 0: {e}"));
    let v = o
        .violations
        .iter()
        .find(|v| v.invariant == "progress")
        .unwrap_or_else(|| panic!("no progress violation: {}", describe(&o)));
    assert!(
        v.detail.starts_with("no progress: virtual time stuck at"),
        "{}",
        v.detail
    );
    assert!(
        !v.detail.contains("left behind"),
        "the run was stopped: {}",
        v.detail
    );
    // Stuck right after the first convergence, where the task was planted.
    assert!(
        o.minimal_trace.contains("converged (start)"),
        "{}",
        o.minimal_trace
    );
}
