//! The `strand` binary: parses the command line and hands off to [`strand::cli`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    strand::cli::main()
}
