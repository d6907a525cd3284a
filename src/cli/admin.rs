//! `strand admin` (being built).

use super::CliError;

/// Arguments of `strand admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {}

/// Runs `strand admin`.
pub fn run(_args: AdminArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand admin is not built yet"))
}
