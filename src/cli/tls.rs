//! `strand tls` (being built).

use super::CliError;

/// Arguments of `strand tls`.
#[derive(Debug, clap::Args)]
pub struct TlsArgs {}

/// Runs `strand tls`.
pub fn run(_args: TlsArgs) -> Result<(), CliError> {
    Err(CliError::failed("strand tls is not built yet"))
}
