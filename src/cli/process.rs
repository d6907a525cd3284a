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

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's
    /// fields at the top level, plus the spans it happened in.
    Json,
}

static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// Sets the format [`init_logging`] uses (the global `--log-format` flag); the first call wins.
pub fn set_log_format(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
}

/// Logs to stderr (stdout may carry a command's output), filtered by `STRAND_LOG`, else
/// `RUST_LOG`, else `default`, in the format of `--log-format`; colours only when stderr is
/// a terminal.
pub fn init_logging(default: &str) {
    let filter = ["STRAND_LOG", "RUST_LOG"]
        .iter()
        .find_map(|var| tracing_subscriber::EnvFilter::try_from_env(var).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let format = LOG_FORMAT.get().copied().unwrap_or_default();
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = subscriber(format, filter, std::io::stderr).try_init();
}

/// The subscriber of [`init_logging`], writing to `writer`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(std::io::stderr().is_terminal()).finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::LogBuffer;

    fn logged(format: LogFormat, filter: &str) -> String {
        let buf = LogBuffer::default();
        let out = buf.clone();
        let sub = subscriber(format, tracing_subscriber::EnvFilter::new(filter), move || {
            out.clone()
        });
        tracing::subscriber::with_default(sub, || {
            tracing::info!(target: "strand::demo", replica = 3, "store ready");
            tracing::debug!(target: "strand::demo", "filtered out");
        });
        buf.text()
    }

    #[test]
    fn json_lines_parse_with_level_target_message_and_fields() {
        let text = logged(LogFormat::Json, "info");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "the filter applies: {text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "strand::demo");
        assert_eq!(v["message"], "store ready");
        assert_eq!(v["replica"], 3);
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn text_lines_are_not_json() {
        let text = logged(LogFormat::Text, "info");
        assert!(text.contains("store ready") && text.contains("INFO"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }
}
