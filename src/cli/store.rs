//! `strand store run|status|add-replica|remove-replica`: run a property store replica and
//! manage the replica set.
//!
//! `strand store run` with no arguments is the development quick start (like
//! `start-standalone-zookeeper.sh`): one replica at `127.0.0.1:7400`, data in
//! `$XDG_DATA_HOME/strand/store` (default `~/.local/share/strand/store`), TLS material in the
//! settings' TLS directory (a development CA is created there on first use). The other
//! commands reach it with no flags, because the default store endpoint is the same address.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::output::{table, OutputFormat};
use super::CliError;
use crate::authz::Role;
use crate::propertystore::{replica_name, PropertyStore, ReplicaConfig, StoreClientConfig, StoreServer};
use crate::settings::{self, Settings, SettingsFlags};
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::tls::TlsDir;

/// The port of the development store and of the default store endpoint.
pub const DEFAULT_PORT: u16 = 7400;
/// The name of the CLI's client certificate.
pub const CLIENT_NAME: &str = "strand-cli";
pub use super::process::EXIT_WITH_PARENT_ENV;
use super::process::{honour_exit_with_parent, init_logging};

/// Arguments of `strand store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// `strand store …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Run a replica (no arguments: a single-replica development store).
    Run(RunArgs),
    /// Every replica's id, address, role, term, leader, commit and applied index, size.
    Status(StatusArgs),
    /// Add a replica (it must be running with `--join`): learner first, then voter.
    AddReplica(AddReplicaArgs),
    /// Remove a replica from the voters.
    RemoveReplica(RemoveReplicaArgs),
}

/// `strand store run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// This replica's id (a positive integer).
    #[arg(long)]
    pub id: Option<u64>,
    /// The address to listen on (UDP, QUIC).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The initial replicas: ID@ADDR, comma-separated (include this one).
    #[arg(long, value_name = "ID@ADDR", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// The data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Join an existing store (then `strand store add-replica`) instead of forming one.
    #[arg(long)]
    pub join: bool,
    /// Take a snapshot and purge the log every this many entries.
    #[arg(long, default_value_t = 20_000)]
    pub snapshot_every: u64,
    /// Revisions of watch history to keep.
    #[arg(long, default_value_t = crate::propertystore::server::DEFAULT_RETAIN)]
    pub retain: u64,
    /// The Raft heartbeat interval in ms (default: the replica's, see `ReplicaConfig`).
    #[arg(long, value_name = "MS")]
    pub heartbeat_ms: Option<u64>,
    /// The election timeout range in ms, MIN,MAX (default: the replica's). Every replica of a
    /// store should use the same values: the read lease is half of MIN.
    #[arg(long, value_name = "MIN,MAX", value_delimiter = ',')]
    pub election_timeout_ms: Vec<u64>,
    /// How the leader serves linearizable reads: `lease` (the default) answers without a
    /// round trip while its lease holds, which assumes the replicas' clocks run at nearly the
    /// same rate (see `propertystore::lease`); `read-index` confirms leadership with a
    /// heartbeat round for every batch of reads, as etcd does, and assumes nothing of clocks.
    #[arg(long, value_enum, default_value_t)]
    pub read_mode: LeaderReads,
    /// Free bytes the data directory's filesystem must keep: below them the leader refuses
    /// writes (deletes and compaction still go through) until space returns.
    #[arg(long, value_name = "BYTES", default_value_t = crate::propertystore::space::DEFAULT_MIN_FREE_BYTES)]
    pub min_free_bytes: u64,
    /// A log write that waits this long for its fsync marks the disk stalled: a leader steps
    /// down (and the replica does not campaign) until the disk catches up.
    #[arg(long, value_name = "MS", default_value_t = crate::propertystore::server::DEFAULT_DISK_STALL.as_millis() as u64)]
    pub disk_stall_ms: u64,
    /// Worker threads of the replica's async runtime (1 to 1024; default: one per CPU).
    #[arg(long, value_name = "N")]
    pub worker_threads: Option<usize>,
    /// TLS directory.
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// The HTTP API and dashboard (its store client talks to this replica and its peers).
    #[command(flatten)]
    pub http: super::http::HttpFlags,
}

/// How a leader serves linearizable reads (`strand store run --read-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LeaderReads {
    /// Under the leader's lease when it holds, else by read-index.
    #[default]
    Lease,
    /// Always by read-index.
    ReadIndex,
}

impl LeaderReads {
    /// The flag's value naming this mode.
    pub fn name(self) -> &'static str {
        match self {
            LeaderReads::Lease => "lease",
            LeaderReads::ReadIndex => "read-index",
        }
    }
}

/// `strand store status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// `strand store add-replica`.
#[derive(Debug, clap::Args)]
pub struct AddReplicaArgs {
    /// The new replica's id.
    #[arg(long)]
    pub id: u64,
    /// Its address.
    #[arg(long, value_name = "ADDR")]
    pub addr: SocketAddr,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// `strand store remove-replica`.
#[derive(Debug, clap::Args)]
pub struct RemoveReplicaArgs {
    /// The replica's id.
    #[arg(long)]
    pub id: u64,
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
}

/// Runs `strand store`.
pub fn run(args: StoreArgs) -> Result<(), CliError> {
    match args.command {
        StoreCommand::Run(a) => run_replica(a),
        StoreCommand::Status(a) => status(a),
        StoreCommand::AddReplica(a) => {
            let rt = runtime()?;
            rt.block_on(async {
                let client = connect(&a.settings)?;
                let voters = client.add_replica(a.id, a.addr).await.map_err(CliError::failed)?;
                println!("replica {} added; voters: {voters:?}", a.id);
                Ok(())
            })
        }
        StoreCommand::RemoveReplica(a) => {
            let rt = runtime()?;
            rt.block_on(async {
                let client = connect(&a.settings)?;
                let voters = client.remove_replica(a.id).await.map_err(CliError::failed)?;
                println!("replica {} removed; voters: {voters:?}", a.id);
                Ok(())
            })
        }
    }
}

/// The most worker threads `--worker-threads` takes.
const MAX_WORKER_THREADS: usize = 1024;

/// Checks a `--worker-threads` value: 1 to [`MAX_WORKER_THREADS`].
pub fn check_worker_threads(n: usize) -> Result<(), CliError> {
    if (1..=MAX_WORKER_THREADS).contains(&n) {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "--worker-threads must be 1 to {MAX_WORKER_THREADS}, not {n}"
        )))
    }
}

/// A multi-thread runtime with `threads` workers (checked by [`check_worker_threads`]), or
/// one per CPU.
fn runtime_with(threads: Option<usize>) -> Result<tokio::runtime::Runtime, CliError> {
    let Some(n) = threads else { return runtime() };
    check_worker_threads(n)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(n)
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))
}

/// A multi-threaded tokio runtime for a command.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the async runtime: {e}")))
}

/// The default data directory of `strand store run`.
pub fn default_data_dir() -> Result<PathBuf, CliError> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let data = var("XDG_DATA_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|h| h.join(".local").join("share")))
        .ok_or_else(|| CliError::usage("neither XDG_DATA_HOME nor HOME is set; give --data-dir"))?;
    Ok(data.join("strand").join("store"))
}

/// Parses `ID@ADDR`.
pub fn parse_peer(text: &str) -> Result<(u64, SocketAddr), CliError> {
    let (id, addr) = text.split_once('@').ok_or_else(|| {
        CliError::usage(format!(
            "--peers item {text:?}: expected ID@ADDR, like 1@127.0.0.1:7401"
        ))
    })?;
    let id: u64 = id.parse().ok().filter(|i| *i > 0).ok_or_else(|| {
        CliError::usage(format!(
            "--peers item {text:?}: {id:?} is not a positive replica id"
        ))
    })?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| CliError::usage(format!("--peers item {text:?}: {addr:?} is not an address: {e}")))?;
    Ok((id, addr))
}

fn run_replica(args: RunArgs) -> Result<(), CliError> {
    honour_exit_with_parent();
    init_logging("warn,strand=info");
    let settings = Settings::load(&args.settings).map_err(CliError::usage)?;
    let id = match args.id {
        Some(0) => return Err(CliError::usage("--id must be a positive integer")),
        Some(id) => id,
        None if args.join => return Err(CliError::usage("--id is required with --join")),
        None if args.peers.is_empty() => 1,
        None => return Err(CliError::usage("--id is required with --peers")),
    };
    let peers = args
        .peers
        .iter()
        .map(|p| parse_peer(p))
        .collect::<Result<Vec<_>, _>>()?;
    if !peers.is_empty() && !peers.iter().any(|(p, _)| *p == id) && !args.join {
        return Err(CliError::usage(format!(
            "--peers does not list this replica (id {id})"
        )));
    }
    let listen = match args.listen {
        Some(l) => l,
        None => match peers.iter().find(|(p, _)| *p == id) {
            Some((_, a)) => *a,
            None => SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
        },
    };
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    let tls =
        settings::tls_material_for(&settings, &replica_name(id), Role::Store).map_err(CliError::failed)?;
    let mut config = ReplicaConfig::new(id, listen, data_dir.clone(), tls);
    config.peers = peers;
    config.join = args.join;
    config.snapshot_every = args.snapshot_every;
    config.retain = args.retain;
    config.lease_reads = args.read_mode == LeaderReads::Lease;
    config.min_free_bytes = args.min_free_bytes;
    if args.disk_stall_ms == 0 {
        return Err(CliError::usage("--disk-stall-ms must be at least 1"));
    }
    config.disk_stall = Duration::from_millis(args.disk_stall_ms);
    if let Some(h) = args.heartbeat_ms {
        config.heartbeat = Duration::from_millis(h);
    }
    match args.election_timeout_ms[..] {
        [] => {}
        [min, max] if min < max => {
            config.election_timeout = (Duration::from_millis(min), Duration::from_millis(max))
        }
        _ => {
            return Err(CliError::usage(
                "--election-timeout-ms takes MIN,MAX with MIN < MAX, like 150,300",
            ))
        }
    }
    let mut http_settings = args.settings.clone();
    if http_settings.store.is_empty() {
        http_settings.store = std::iter::once(listen)
            .chain(config.peers.iter().map(|(_, a)| *a))
            .map(|a| a.to_string())
            .collect();
    }
    let rt = runtime_with(args.worker_threads)?;
    rt.block_on(async move {
        // The replica's endpoint reloads its certificate and the revocation list when the
        // files change (or on SIGHUP).
        let transport = QuicTransport::bind(QuicConfig::new(config.listen, config.tls.clone()))
            .map_err(CliError::failed)?;
        crate::transport::reload::watch_material(
            &transport,
            TlsDir::new(&settings.tls_dir),
            replica_name(id),
            crate::transport::PeerRole::Node,
            crate::transport::reload::RELOAD_EVERY,
            true,
        );
        let server = StoreServer::start_on(config, transport)
            .await
            .map_err(CliError::failed)?;
        let http = match args.http.http {
            Some(_) => {
                let client = connect_with(&http_settings, 0)?;
                let observed = crate::http::Observed::store(&server);
                args.http
                    .start(&http_settings, &replica_name(id), Role::Store, client, observed)
                    .await?
            }
            None => None,
        };
        println!(
            "store replica {id} listening on {} (data {}, TLS {})",
            server.local_addr(),
            data_dir.display(),
            settings.tls_dir.display()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::failed(format!("cannot watch SIGTERM: {e}")))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping");
        if let Some(h) = http {
            h.shutdown().await;
        }
        server.shutdown().await;
        Ok(())
    })
}

/// The store endpoints the settings name, or the development store's.
pub fn endpoints(settings: &Settings) -> Result<Vec<SocketAddr>, CliError> {
    if settings.store.is_empty() {
        return Ok(vec![SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))]);
    }
    let mut out = Vec::new();
    for ep in &settings.store {
        let addrs = ep
            .resolve()
            .map_err(|e| CliError::usage(format!("cannot resolve {}:{}: {e}", ep.host, ep.port)))?;
        out.extend(addrs.into_iter().take(1));
    }
    Ok(out)
}

/// A store client over `transport`, a node's own endpoint, so the store sees the node's
/// name and roles (a participant's or controller's writes are checked against its own
/// certificate), with a cache of `cache_capacity` entries.
pub fn connect_over(
    flags: &SettingsFlags,
    transport: Arc<dyn crate::transport::Transport>,
    cache_capacity: u64,
) -> Result<PropertyStore, CliError> {
    let settings = Settings::load(flags).map_err(CliError::usage)?;
    let mut config = StoreClientConfig::new(endpoints(&settings)?);
    config.cache_capacity = cache_capacity;
    Ok(PropertyStore::new(transport, config))
}

/// A store client for a command: a client QUIC endpoint with the CLI's certificate.
/// Needs a tokio runtime.
pub fn connect(flags: &SettingsFlags) -> Result<PropertyStore, CliError> {
    connect_with(flags, 0)
}

/// Like [`connect`], with a client cache of `cache_capacity` entries.
pub fn connect_with(flags: &SettingsFlags, cache_capacity: u64) -> Result<PropertyStore, CliError> {
    let (transport, eps) = client_endpoint(flags)?;
    let mut config = StoreClientConfig::new(eps);
    config.cache_capacity = cache_capacity;
    Ok(PropertyStore::new(transport, config))
}

/// The CLI's client endpoint (certificate `strand-cli`) and the store endpoints the
/// settings name; for commands that also talk to nodes (`strand admin send`).
pub fn client_endpoint(
    flags: &SettingsFlags,
) -> Result<(Arc<dyn crate::transport::Transport>, Vec<SocketAddr>), CliError> {
    let settings = Settings::load(flags).map_err(CliError::usage)?;
    let eps = endpoints(&settings)?;
    let tls = settings::tls_material_for(&settings, CLIENT_NAME, Role::Admin).map_err(CliError::failed)?;
    let local: SocketAddr = if eps.iter().all(|a| a.ip().is_loopback()) {
        SocketAddr::from(([127, 0, 0, 1], 0))
    } else if eps.iter().all(|a| a.is_ipv6()) {
        "[::]:0".parse().expect("valid address")
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    let mut qc = QuicConfig::new(local, tls);
    qc.handshake_timeout = Duration::from_secs(1);
    let transport = QuicTransport::client(qc).map_err(CliError::failed)?;
    Ok((transport as Arc<dyn crate::transport::Transport>, eps))
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn status(args: StatusArgs) -> Result<(), CliError> {
    let rt = runtime()?;
    rt.block_on(async {
        let client = connect(&args.settings)?;
        let all = client.status_all().await;
        let reachable = all.iter().filter(|(_, r)| r.is_ok()).count();
        match args.output {
            OutputFormat::Json => {
                let items: Vec<serde_json::Value> = all
                    .iter()
                    .map(|(ep, r)| match r {
                        Ok(s) => serde_json::json!({
                            "endpoint": ep.to_string(),
                            "id": s.id,
                            "addr": s.addr,
                            "role": s.role,
                            "term": s.term,
                            "leader": s.leader,
                            "commit_index": s.commit_index,
                            "applied_index": s.applied_index,
                            "revision": s.revision,
                            "oldest_revision": s.oldest_revision,
                            "db_size_bytes": s.db_size_bytes,
                            "log_entries": s.log_entries,
                            "log_syncs": s.log_syncs,
                            "lease_reads": s.lease_reads,
                            "index_reads": s.index_reads,
                            "voters": s.voters.iter().map(|(i, a)| serde_json::json!({"id": i, "addr": a})).collect::<Vec<_>>(),
                            "learners": s.learners.iter().map(|(i, a)| serde_json::json!({"id": i, "addr": a})).collect::<Vec<_>>(),
                        }),
                        Err(e) => serde_json::json!({"endpoint": ep.to_string(), "error": e.to_string()}),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "replicas": items })).unwrap_or_default());
            }
            OutputFormat::Table => {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|(ep, r)| match r {
                        Ok(s) => vec![
                            s.id.to_string(),
                            s.addr.clone(),
                            s.role.clone(),
                            s.term.to_string(),
                            s.leader.map_or("-".into(), |l| l.to_string()),
                            s.commit_index.map_or("-".into(), |c| c.to_string()),
                            s.applied_index.map_or("-".into(), |c| c.to_string()),
                            s.revision.to_string(),
                            human_bytes(s.db_size_bytes),
                        ],
                        Err(_) => {
                            let mut row = vec!["?".into(), ep.to_string(), "unreachable".into()];
                            row.resize(9, "-".into());
                            row
                        }
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["ID", "ADDR", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "REVISION", "DB SIZE"],
                        &rows
                    )
                );
                // The reasons go below the table, so a long error does not stretch its columns.
                for (ep, r) in &all {
                    if let Err(e) = r {
                        eprintln!("{ep}: {e}");
                    }
                }
            }
        }
        if reachable == 0 {
            return Err(CliError::failed("no store replica answered"));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_with_clear_errors() {
        assert_eq!(
            parse_peer("2@127.0.0.1:7402").unwrap(),
            (2, "127.0.0.1:7402".parse().unwrap())
        );
        for bad in ["2", "0@127.0.0.1:1", "x@127.0.0.1:1", "1@nowhere"] {
            let e = parse_peer(bad).unwrap_err();
            assert!(matches!(e, CliError::Usage(_)), "{bad}: {e}");
        }
    }
}
