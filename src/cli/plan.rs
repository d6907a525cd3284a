//! `strand plan` (being built).

use super::CliError;

/// Arguments of `strand plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {}

/// Runs `strand plan`.
pub fn run(_args: PlanArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand plan is not built yet"))
}
