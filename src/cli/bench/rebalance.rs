//! `strand bench rebalance` (being built).

use crate::cli::CliError;

/// Arguments of `strand bench rebalance`.
#[derive(Debug, clap::Args)]
pub struct RebalanceBenchArgs {}

/// Runs `strand bench rebalance`.
pub fn run(_args: RebalanceBenchArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand bench rebalance is not built yet"))
}
