//! `strand bench detect` (being built).

use crate::cli::CliError;

/// Arguments of `strand bench detect`.
#[derive(Debug, clap::Args)]
pub struct DetectBenchArgs {}

/// Runs `strand bench detect`.
pub fn run(_args: DetectBenchArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand bench detect is not built yet"))
}
