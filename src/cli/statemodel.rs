//! `strand statemodel` (being built).

use super::CliError;

/// Arguments of `strand statemodel`.
#[derive(Debug, clap::Args)]
pub struct StatemodelArgs {}

/// Runs `strand statemodel`.
pub fn run(_args: StatemodelArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand statemodel is not built yet"))
}
