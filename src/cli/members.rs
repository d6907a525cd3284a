//! `strand members`: a node's gossip view, like `serf members`.
//!
//! Asks the node at `--node` (over QUIC with a client certificate) for its view and prints
//! name, address, generation, status, roles, clusters, last heard and RTT. Exits 1 when the
//! node cannot be reached.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::output::{table, OutputFormat};
use super::CliError;
use crate::membership::{query_members, MemberStatus, Status};
use crate::settings::{self, Settings, SettingsFlags};
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::Transport;

/// The client certificate name the CLI uses.
pub const CLI_CLIENT_NAME: &str = "admin";

/// Arguments of `strand members`.
#[derive(Debug, clap::Args)]
pub struct MembersArgs {
    /// The node to ask.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7946")]
    pub node: SocketAddr,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Only members with this status.
    #[arg(long, value_enum)]
    pub status: Option<StatusFilter>,
    /// How long to wait for the node, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// `--status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// Answering probes.
    Alive,
    /// Failed a probe, not yet refuted.
    Suspect,
    /// Declared down.
    Down,
    /// Left gracefully.
    Left,
}

impl StatusFilter {
    fn status(self) -> Status {
        match self {
            StatusFilter::Alive => Status::Alive,
            StatusFilter::Suspect => Status::Suspect,
            StatusFilter::Down => Status::Down,
            StatusFilter::Left => Status::Left,
        }
    }
}

/// Asks the node at `node` for its gossip view, over a client endpoint with the CLI's
/// client certificate.
pub async fn fetch(
    settings: &Settings,
    node: SocketAddr,
    timeout: Duration,
) -> Result<Vec<MemberStatus>, CliError> {
    let tls = settings::tls_material_for(settings, CLI_CLIENT_NAME, crate::authz::Role::Admin)
        .map_err(CliError::failed)?;
    let bind = match node.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let client = QuicTransport::client(QuicConfig::new(SocketAddr::new(bind, 0), tls))
        .map_err(|e| CliError::failed(format!("cannot set up a client endpoint: {e}")))?;
    let answer = query_members(&*client, node, timeout).await;
    client.shutdown().await;
    answer.map_err(|e| CliError::failed(format!("cannot get members from {node}: {e}")))
}

/// Runs `strand members`.
pub fn run(args: MembersArgs) -> Result<(), CliError> {
    let settings = Settings::load(&args.settings).map_err(CliError::failed)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}")))?;
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let rows = runtime.block_on(fetch(&settings, args.node, timeout))?;
    let rows: Vec<MemberStatus> = rows
        .into_iter()
        .filter(|r| args.status.is_none_or(|s| r.status == s.status()))
        .collect();
    match args.output {
        OutputFormat::Json => {
            let doc = serde_json::json!({ "node": args.node, "members": rows });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).map_err(CliError::failed)?
            );
        }
        OutputFormat::Table => print!("{}", render_table(&rows)),
    }
    Ok(())
}

fn dash_if_empty(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// The table `strand members` prints.
pub fn render_table(rows: &[MemberStatus]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                if r.is_local {
                    format!("{} (this node)", r.name)
                } else {
                    r.name.clone()
                },
                r.addr.to_string(),
                r.generation.to_string(),
                r.status.as_str().to_string(),
                dash_if_empty(r.roles.join(",")),
                dash_if_empty(r.clusters.join(",")),
                r.last_heard_ms.map_or("-".into(), |ms| format!("{ms}ms ago")),
                r.rtt_ms.map_or("-".into(), |ms| format!("{ms:.2}ms")),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "ADDRESS",
            "GENERATION",
            "STATUS",
            "ROLES",
            "CLUSTERS",
            "LAST HEARD",
            "RTT",
        ],
        &body,
    )
}
