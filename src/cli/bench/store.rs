//! `strand bench store` (being built).

use crate::cli::CliError;

/// Arguments of `strand bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreBenchArgs {}

/// Runs `strand bench store`.
pub fn run(_args: StoreBenchArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand bench store is not built yet"))
}
