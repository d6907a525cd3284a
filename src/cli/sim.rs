//! `strand sim`: the deterministic whole-cluster simulation ([`crate::sim`]).
//!
//! `strand sim --seed S [--steps N]` runs one seed; `strand sim --seeds K [--first F]` runs
//! seeds F..F+K. Each failing seed is printed with its violations and a minimal trace; the
//! exit code is 1 if any seed failed. `--json` prints one summary document. `--replay-check`
//! runs each seed twice and fails it if the two traces differ (where they part is printed).

use std::time::{Duration, Instant};

use super::CliError;
use crate::sim::faults::Mix;
use crate::sim::watchdog::DEFAULT_STALL_LIMIT;
use crate::sim::{self, Outcome, SimConfig, SimError};

/// Arguments of `strand sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Run this many seeds, from `--first`.
    #[arg(long)]
    pub seeds: Option<u64>,
    /// The first seed of a batch.
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    /// Fault steps per seed.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// Which faults: `all`, `no-partitions` (crashes, stalled disks, loss, delay), or
    /// `clocks` (`all` with wall-clock jumps in place of loss and delay).
    #[arg(long, value_enum, default_value_t)]
    pub faults: Mix,
    /// Run each seed twice and fail it if the replay's trace (every fault, transition event
    /// and client operation with its virtual time) differs from the first run's.
    #[arg(long)]
    pub replay_check: bool,
    /// Print one JSON summary.
    #[arg(long)]
    pub json: bool,
    /// Seconds of wall time that virtual time may stand still while a seed's cluster runs
    /// before the seed is stopped and reported failing ("no progress"), so a batch goes on.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_STALL_LIMIT.as_secs())]
    pub stall_after: u64,
    /// Test-only: break selection (two MASTERs may exist) to see the simulator catch it.
    #[cfg(feature = "testing")]
    #[arg(long, hide = true)]
    pub break_selection: bool,
    /// Test-only: participants accept transitions of older controller epochs.
    #[cfg(feature = "testing")]
    #[arg(long, hide = true)]
    pub break_fencing: bool,
    /// Test-only: a task of the run stops virtual time once the cluster first converged, to
    /// see the watchdog report it (`--stall-after`).
    #[cfg(feature = "testing")]
    #[arg(long, hide = true)]
    pub stop_virtual_time: bool,
}

/// Runs `strand sim`.
pub fn run(args: SimArgs) -> Result<(), CliError> {
    // Silent unless RUST_LOG / STRAND_LOG asks (the trace is the report).
    super::process::init_logging("off");
    let (first, count) = match (args.seed, args.seeds) {
        (Some(s), None) => (s, 1),
        (None, Some(k)) if k > 0 => (args.first, k),
        (None, Some(_)) => return Err(CliError::usage("--seeds must be at least 1")),
        _ => return Err(CliError::usage("give --seed S or --seeds N")),
    };
    if args.steps == 0 {
        return Err(CliError::usage("--steps must be at least 1"));
    }
    if args.stall_after == 0 {
        return Err(CliError::usage("--stall-after must be at least 1"));
    }
    #[cfg(feature = "testing")]
    {
        use std::sync::atomic::Ordering;
        crate::testing::BREAK_SELECTION.store(args.break_selection, Ordering::Relaxed);
        crate::testing::BREAK_FENCING.store(args.break_fencing, Ordering::Relaxed);
        crate::testing::STOP_VIRTUAL_TIME.store(args.stop_virtual_time, Ordering::Relaxed);
    }
    let started = Instant::now();
    let json = args.json;
    let like = SimConfig {
        stall_after: Duration::from_secs(args.stall_after),
        replay_check: args.replay_check,
        ..SimConfig::new(first, args.steps, args.faults)
    };
    let results = sim::run_batch(first, count, like, |r| {
        if !json {
            print_one(r);
        }
    });
    let wall_s = started.elapsed().as_secs_f64();
    let failed: Vec<u64> = results
        .iter()
        .filter_map(|r| match r {
            Ok(o) if o.violations.is_empty() => None,
            Ok(o) => Some(o.seed),
            Err(SimError::Cluster { seed, .. } | SimError::Panicked { seed }) => Some(*seed),
            Err(SimError::Runtime(_)) => Some(u64::MAX),
        })
        .collect();
    let virtual_s: f64 = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|o| o.virtual_ms as f64 / 1e3)
        .sum();
    if json {
        let outcomes: Vec<serde_json::Value> = results
            .iter()
            .map(|r| match r {
                Ok(o) => serde_json::to_value(o).unwrap_or_default(),
                Err(e) => serde_json::json!({ "error": e.to_string() }),
            })
            .collect();
        let doc = serde_json::json!({
            "seeds": count,
            "first": first,
            "steps": args.steps,
            "failed": failed,
            "wall_s": wall_s,
            "virtual_s": virtual_s,
            "seeds_per_s": count as f64 / wall_s.max(1e-9),
            "outcomes": outcomes,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!(
            "{count} seeds ({first}..{}), {} steps each: {} failed; {virtual_s:.0} s virtual in {wall_s:.1} s ({:.2} seeds/s)",
            first + count,
            args.steps,
            failed.len(),
            count as f64 / wall_s.max(1e-9)
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Reported)
    }
}

fn print_one(r: &Result<Outcome, SimError>) {
    match r {
        Ok(o) if o.violations.is_empty() => println!(
            "seed {}: ok ({} ops, {} transition events, {} disk stalls ({} of the leader), \
             {} unsynced WAL bytes lost in crashes, {:.1} s virtual, digest {:016x})",
            o.seed,
            o.ops,
            o.events,
            o.stalls.len(),
            o.stalls.iter().filter(|s| s.led).count(),
            o.unsynced_lost,
            o.virtual_ms as f64 / 1e3,
            o.digest
        ),
        Ok(o) => {
            println!("seed {}: {} violation(s)", o.seed, o.violations.len());
            for v in &o.violations {
                println!("  {}: {}", v.invariant, v.detail);
            }
            println!("  trace (! fault, * note):\n{}", o.minimal_trace);
            println!(
                "  replay: strand sim --seed {} --steps {} --faults {}",
                o.seed,
                o.faults,
                o.mix.name()
            );
        }
        Err(e) => println!("{e}"),
    }
}
