//! What every long-running strand process does at start: logging to stderr and, for test and
//! benchmark children, dying with the parent.

use std::io::IsTerminal;

/// Set to `1` in a child's environment so that it is SIGKILLed when its parent dies (tests
/// and benchmarks set it, so a failed run leaves no process behind).
pub const EXIT_WITH_PARENT_ENV: &str = "STRAND_EXIT_WITH_PARENT";

/// When [`EXIT_WITH_PARENT_ENV`] is `1`, arranges (prctl `PDEATHSIG`) to be killed with the
/// parent, and exits at once if the parent is already gone.
pub fn honour_exit_with_parent() {
    if std::env::var_os(EXIT_WITH_PARENT_ENV).is_some_and(|v| v == "1") {
        let parent = nix::unistd::getppid();
        if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).is_err() {
            eprintln!("warning: cannot arrange to exit with the parent process");
        }
        // The parent may have died before the call: then we were re-parented already.
        if nix::unistd::getppid() != parent {
            std::process::exit(1);
        }
    }
}

/// Logs to stderr (stdout may carry a command's output), filtered by `STRAND_LOG`, else
/// `RUST_LOG`, else `default`; colours only when stderr is a terminal.
pub fn init_logging(default: &str) {
    let filter = ["STRAND_LOG", "RUST_LOG"]
        .iter()
        .find_map(|var| tracing_subscriber::EnvFilter::try_from_env(var).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}
