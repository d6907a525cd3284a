//! The command line (`strand …`): argument parsing with clap, one file per command.
//!
//! Every command returns `Result<(), CliError>`; [`main`] prints errors as one clear line
//! on stderr and maps them to exit codes (1 for failures, 2 for bad usage). Nothing here
//! panics on bad input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod admin;
pub mod bench;
pub mod completions;
pub mod controller;
pub mod demo;
pub mod helix_admin;
pub mod http;
pub mod local_cluster;
pub mod members;
pub mod node;
pub mod node_setup;
pub mod output;
pub mod participant;
pub mod plan;
pub mod process;
pub mod progress;
pub mod sim;
pub mod statemodel;
pub mod status;
pub mod store;
pub mod tls;
pub mod watch;

pub use output::OutputFormat;

/// strand: a cluster manager for partitioned, replicated services.
#[derive(Debug, Parser)]
#[command(name = "strand", version, about, propagate_version = true)]
pub struct Cli {
    /// How log lines are written on stderr: `text`, or `json` (one object per line with
    /// `timestamp`, `level`, `target`, `message`); `RUST_LOG` / `STRAND_LOG` filter them.
    #[arg(long, global = true, value_enum, default_value_t, env = "STRAND_LOG_FORMAT")]
    pub log_format: process::LogFormat,
    /// Fault injection for fault runs (`strand bench chaos`): drop this process's QUIC
    /// datagrams by the rules in FILE, re-read as it changes (`out|in all|IP:PORT`,
    /// `loss P`; see `transport::faults`). Off unless given.
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "FILE",
        env = "STRAND_NET_FAULTS"
    )]
    pub net_faults: Option<std::path::PathBuf>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// A whole local cluster: Helix's tutorial, then a participant's and a controller's
    /// SIGKILL, with the failover times measured.
    Demo(demo::DemoArgs),
    /// What-if placement and transition plan for a JSON cluster description, offline.
    Plan(plan::PlanArgs),
    /// State model definitions: validate a STATEMODELDEFS record, list or show built-ins.
    Statemodel(statemodel::StatemodelArgs),
    /// Certificates for mutual TLS: a cluster CA, node and client certificates.
    Tls(tls::TlsArgs),
    /// Run a strand node process.
    Node(node::NodeArgs),
    /// The gossip view of the cluster, like `serf members`.
    Members(members::MembersArgs),
    /// The property store: run a replica, show status, add or remove replicas.
    Store(store::StoreArgs),
    /// Administration: clusters, instances, resources, partitions, state models, configs,
    /// constraints; raw store access (ls, get, put, rm, watch).
    Admin(admin::AdminArgs),
    /// helix-admin.sh's options, verbatim (`--zkSvr ADDR --addCluster C`, …).
    HelixAdmin(helix_admin::HelixAdminArgs),
    /// Benchmarks that print JSON.
    Bench(bench::BenchArgs),
    /// Deterministic simulation of a whole cluster under seeded faults, with its invariants
    /// checked (`--seed S` or `--seeds N`).
    Sim(sim::SimArgs),
    /// Run a controller (several may run; one leads each cluster).
    Controller(controller::ControllerArgs),
    /// Run the ready-made participant, which logs every transition as a JSON line.
    Participant(participant::ParticipantArgs),
    /// The live external view of a cluster.
    Watch(watch::WatchArgs),
    /// Shell completions: `strand completions bash > /etc/bash_completion.d/strand`,
    /// `strand completions zsh > "${fpath[1]}/_strand"`, `strand completions fish >
    /// ~/.config/fish/completions/strand.fish`.
    Completions(completions::CompletionsArgs),
    /// One screen of a cluster: controller, instances, resources converged or not, alerts.
    Status(status::StatusArgs),
}

/// A command's failure, printed as `error: …`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input (arguments, files) is wrong; exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed; exit code 1.
    #[error("{0}")]
    Failed(String),
    /// A check ran and found problems, already printed; exit code 1, nothing more printed.
    #[error("")]
    Reported,
}

impl CliError {
    /// A failure with a message.
    pub fn failed(msg: impl std::fmt::Display) -> Self {
        CliError::Failed(msg.to_string())
    }

    /// A usage error with a message.
    pub fn usage(msg: impl std::fmt::Display) -> Self {
        CliError::Usage(msg.to_string())
    }
}

/// Parses the process's arguments, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Reported) => ExitCode::from(1),
        Err(e @ CliError::Usage(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<(), CliError> {
    process::set_log_format(cli.log_format);
    if let Some(path) = cli.net_faults {
        crate::transport::faults::install_from_file(path).map_err(CliError::usage)?;
    }
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Statemodel(args) => statemodel::run(args),
        Command::Tls(args) => tls::run(args),
        Command::Node(args) => node::run(args),
        Command::Members(args) => members::run(args),
        Command::Store(args) => store::run(args),
        Command::Admin(args) => admin::run(args),
        Command::HelixAdmin(args) => helix_admin::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Controller(args) => controller::run(args),
        Command::Participant(args) => participant::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Status(args) => status::run(args),
    }
}

/// Reads a whole file, with an error that names it.
pub fn read_file(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))
}
