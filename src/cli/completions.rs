//! `strand completions SHELL`: the shell's completion script for every command, flag and
//! fixed value, generated from the same clap definitions that parse the command line, so it
//! never drifts from them.

use clap::CommandFactory;

use super::{Cli, CliError};

/// Arguments of `strand completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish (elvish and powershell too).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script on stdout.
pub fn run(args: CompletionsArgs) -> Result<(), CliError> {
    let mut out = Vec::new();
    script(args.shell, &mut out);
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::failed(format!("cannot write the script: {e}")))
}

/// The completion script of `shell` for `strand`.
pub fn script(shell: clap_complete::Shell, out: &mut Vec<u8>) {
    clap_complete::generate(shell, &mut Cli::command(), "strand", out);
}
