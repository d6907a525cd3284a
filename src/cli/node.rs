//! `strand node` (being built).

use super::CliError;

/// Arguments of `strand node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {}

/// Runs `strand node`.
pub fn run(_args: NodeArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand node is not built yet"))
}
