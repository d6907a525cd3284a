//! `strand bench …`: benchmarks that start real processes or run the engines, and print JSON.

use super::CliError;

mod breakdown;
pub mod chaos;
pub mod config_notify;
pub mod detect;
pub mod failover;
pub mod floor;
pub mod linz;
pub mod messaging;
pub mod rebalance;
pub mod store;

/// Arguments of `strand bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The rebalance engine: full placement and recomputation, balance and movement.
    Rebalance(rebalance::RebalanceBenchArgs),
    /// Failure detection: SIGKILL one of N real `strand node` processes per trial.
    Detect(detect::DetectBenchArgs),
    /// The property store: replicas as real processes, puts, gets, cached gets, watches.
    Store(store::StoreBenchArgs),
    /// Config change notifications: from a `set` in one process to a listener in another.
    Config(config_notify::ConfigBenchArgs),
    /// Failover of a real cluster: participant and controller SIGKILLs, convergence.
    Failover(failover::FailoverBenchArgs),
    /// The store's history under leader kills and pauses, checked for linearizability, and
    /// its watch streams checked against it.
    Linearizability(linz::LinzBenchArgs),
    /// Criteria-addressed messaging over real QUIC: send_and_wait, fan-outs, throughput.
    Messaging(messaging::MessagingBenchArgs),
    /// Kills, pauses and network faults on a cluster of real processes, with the invariants
    /// (one top state, fenced epochs, a linearizable store, recovery) checked.
    Chaos(chaos::ChaosBenchArgs),
}

/// Runs a benchmark. Those with trials show each trial as progress themselves; the others
/// show a spinner while they measure (on a terminal only).
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    let running = |what: &str| super::progress::Progress::start(format!("bench {what}: measuring"));
    match args.which {
        BenchCommand::Rebalance(a) => {
            let _p = running("rebalance");
            rebalance::run(a)
        }
        BenchCommand::Detect(a) => detect::run(a),
        BenchCommand::Store(a) => store::run(a),
        BenchCommand::Failover(a) => failover::run(a),
        BenchCommand::Chaos(a) => chaos::run(a),
        BenchCommand::Messaging(a) => {
            let _p = running("messaging");
            messaging::run(a)
        }
        BenchCommand::Config(a) => {
            let _p = running("config");
            config_notify::run(a)
        }
        BenchCommand::Linearizability(a) => linz::run(a),
    }
}
