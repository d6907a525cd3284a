//! `strand members` (being built).

use super::CliError;

/// Arguments of `strand members`.
#[derive(Debug, clap::Args)]
pub struct MembersArgs {}

/// Runs `strand members`.
pub fn run(_args: MembersArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand members is not built yet"))
}
