//! `strand node run`: a process that joins the gossip and reports what it sees.
//!
//! Events go to stdout as JSON lines (the first is `{"event":"Started",…}` with the node's
//! name, address and generation), so tests and `strand bench detect` can follow them.
//! SIGTERM or SIGINT makes the node leave gracefully (every member is told at once) and
//! exit 0. With `STRAND_EXIT_WITH_PARENT=1` the process dies with its parent (tests).

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::CliError;
use crate::membership::{Membership, MembershipConfig, RecvError, Roles};
use crate::settings::{self, Settings, SettingsFlags};
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::{PeerRole, Transport};

pub use super::process::EXIT_WITH_PARENT_ENV;
use super::process::{honour_exit_with_parent, init_logging};

/// Arguments of `strand node`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: NodeCommand,
}

/// `strand node …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Join the gossip and print membership events as JSON lines until SIGTERM/SIGINT.
    Run(NodeRunArgs),
}

/// Arguments of `strand node run`.
#[derive(Debug, clap::Args)]
pub struct NodeRunArgs {
    /// The node's name (its certificate's name; unique in the cluster).
    #[arg(long)]
    pub name: String,
    /// The UDP address to listen on (port 0: any free port, printed in the Started line).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7946")]
    pub listen: SocketAddr,
    /// A node to join through; repeat or separate with commas.
    #[arg(long = "seed", value_name = "ADDR", value_delimiter = ',')]
    pub seeds: Vec<SocketAddr>,
    /// A role this node plays: store, controller, participant, spectator; repeatable.
    #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
    pub roles: Vec<String>,
    /// A cluster this node belongs to; repeatable.
    #[arg(long = "cluster", value_name = "CLUSTER")]
    pub clusters: Vec<String>,
    /// Probe period in milliseconds (default: the LAN default, 100).
    #[arg(long, value_name = "MS")]
    pub probe_period_ms: Option<u64>,
    /// Time a suspect has to refute, in milliseconds (default: the LAN default, 200).
    #[arg(long, value_name = "MS")]
    pub suspect_ms: Option<u64>,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// Runs `strand node`.
pub fn run(args: NodeArgs) -> Result<(), CliError> {
    match args.action {
        NodeCommand::Run(a) => run_node(a),
    }
}

fn config_from(args: &NodeRunArgs) -> Result<MembershipConfig, CliError> {
    let mut config = MembershipConfig::lan();
    if let Some(ms) = args.probe_period_ms {
        config.probe_period = Duration::from_millis(ms);
        config.probe_rtt = config.probe_rtt.min(config.probe_period / 2);
    }
    if let Some(ms) = args.suspect_ms {
        config.suspect_to_down_after = Duration::from_millis(ms);
    }
    config.validate().map_err(CliError::usage)?;
    Ok(config)
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (the reader went away) must not stop the node.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run_node(args: NodeRunArgs) -> Result<(), CliError> {
    honour_exit_with_parent();
    init_logging("info");
    let mut roles = Roles::NONE;
    for r in &args.roles {
        roles = roles.union(Roles::parse_one(r).map_err(CliError::usage)?);
    }
    let config = config_from(&args)?;
    let settings = Settings::load(&args.settings).map_err(CliError::failed)?;
    // The certificate grants the roles the node gossips; a bare gossip member is a spectator.
    let mut granted = crate::authz::RoleSet::NONE;
    for r in &args.roles {
        granted = granted.with(crate::authz::Role::parse(r).map_err(CliError::usage)?);
    }
    if granted.is_empty() {
        granted = crate::authz::RoleSet::of(crate::authz::Role::Spectator);
    }
    let tls = settings::tls_material_as(&settings, &args.name, PeerRole::Node, granted)
        .map_err(CliError::failed)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        // Watch the signals before anyone can know we are up.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::failed(format!("cannot watch SIGTERM: {e}")))?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| CliError::failed(format!("cannot watch SIGINT: {e}")))?;
        let transport = QuicTransport::bind(QuicConfig::new(args.listen, tls))
            .map_err(|e| CliError::failed(format!("cannot listen on {}: {e}", args.listen)))?;
        crate::transport::reload::watch_material(
            &transport,
            crate::transport::tls::TlsDir::new(&settings.tls_dir),
            args.name.clone(),
            PeerRole::Node,
            crate::transport::reload::RELOAD_EVERY,
            true,
        );
        let (membership, mut events) = Membership::builder(transport.clone())
            .roles(roles)
            .clusters(args.clusters.clone())
            .seeds(args.seeds.clone())
            .config(config)
            .start_subscribed()
            .map_err(CliError::failed)?;
        let local = membership.local();
        print_line(
            &serde_json::json!({
                "event": "Started",
                "name": local.name,
                "addr": local.addr,
                "generation": local.generation,
                "roles": local.roles.names(),
                "clusters": local.clusters,
            })
            .to_string(),
        );
        loop {
            tokio::select! {
                biased;
                _ = term.recv() => break,
                _ = int.recv() => break,
                e = events.recv() => match e {
                    Ok(e) => match serde_json::to_string(&e) {
                        Ok(line) => print_line(&line),
                        Err(err) => tracing::warn!("cannot print an event: {err}"),
                    },
                    Err(RecvError::Lagged(n)) => {
                        print_line(&serde_json::json!({"event": "Lagged", "missed": n}).to_string());
                    }
                    Err(RecvError::Closed) => {
                        transport.shutdown().await;
                        return Err(CliError::failed("membership stopped"));
                    }
                },
            }
        }
        let _ = membership.leave().await;
        print_line(&serde_json::json!({"event": "Stopped", "name": local.name}).to_string());
        transport.shutdown().await;
        Ok(())
    })
}
