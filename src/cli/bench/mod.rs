//! `strand bench …`: benchmarks that start real processes or run the engines, and print JSON.

use super::CliError;

/// Arguments of `strand bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {}

/// Runs a benchmark.
pub fn run(args: BenchArgs) -> Result<(), CliError> {
    match args.which {}
}
