//! `strand store` (being built).

use super::CliError;

/// Arguments of `strand store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {}

/// Runs `strand store`.
pub fn run(_args: StoreArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand store is not built yet"))
}
