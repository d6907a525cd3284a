//! `strand bench messaging [--json]`: criteria-addressed messaging over real QUIC (mutual
//! TLS, loopback), in one process.
//!
//! Set-up: a single-replica property store (RocksDB in a temp dir) on its own QUIC
//! endpoint; `--recipients` messaging endpoints (each its own QUIC endpoint with a node
//! certificate, answering `ECHO` like `strand participant run`), each registered as a live
//! instance (`LIVEINSTANCES/<i>` with `SESSION_ID` and `STRAND_ADDR`, as a participant
//! registers; no gossip or state machine runs, so only the messaging path is timed); one
//! sender on a client endpoint whose view of the cluster is fed by the store's watch.
//!
//! Phases: `send_and_wait` to one instance (`instanceName=r0`), to 10 (`instanceName=r_`)
//! and to 100 (`instanceName=r%`), each resolving criteria, fanning out in parallel and
//! collecting every reply; then messages per second with 64 in flight to one recipient
//! (one connection) and spread over every recipient (many connections); last,
//! `send_and_wait_remote_us`: `send_and_wait` to a recipient in another process (a real
//! `strand participant run`, `peer0`) from a task on the sender's runtime, which is what
//! two nodes pay.
//!
//! Beside them, the floors under one `send_and_wait` (see [`super::floor`]): `quic_floor_us`
//! (bare quinn, a stream per request) and `transport_floor_us` (strand's transport alone);
//! and, per phase, what one operation cost the process (`cost_per_op`: CPU µs over every
//! thread, context switches), figures the machine's load moves far less than latencies.
//!
//! Last, `config_notify_us` as `strand bench config` measures it (3 store replicas as
//! processes, a listener in another process; `--config-samples 0` skips it).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::floor::Usage;
use crate::admin::Admin;
use crate::cli::store::{runtime, EXIT_WITH_PARENT_ENV};
use crate::cli::CliError;
use crate::messaging::{Criteria, Messaging, Outgoing};
use crate::model::fields::SESSION_ID;
use crate::model::{Layout, Record};
use crate::participant::register::ADDR_FIELD;
use crate::propertystore::{replica_name, PropertyStore, ReplicaConfig, StoreClientConfig, StoreServer};
use crate::settings::{self, Settings, SettingsFlags};
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::Transport;

/// The key the config notification figures go under.
pub const CONFIG_NOTIFY_KEY: &str = "config_notify_us";

/// Arguments of `strand bench messaging`.
#[derive(Debug, clap::Args)]
pub struct MessagingBenchArgs {
    /// Recipients (messaging endpoints registered as live instances); at least 100 for
    /// the `fanout100_us` figure.
    #[arg(long, default_value_t = 100)]
    pub recipients: usize,
    /// `send_and_wait` samples to one instance.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Samples of each fan-out.
    #[arg(long, default_value_t = 200)]
    pub fanout_samples: usize,
    /// Messages for each throughput phase.
    #[arg(long, default_value_t = 20_000)]
    pub throughput_msgs: usize,
    /// Config notifications to time (`config_notify_us`, as `strand bench config`); 0 skips.
    #[arg(long, default_value_t = 1000)]
    pub config_samples: usize,
    /// `send_and_wait` samples to a recipient in another process (`strand participant
    /// run`, as a real node); 0 skips.
    #[arg(long, default_value_t = 2000)]
    pub remote_samples: usize,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

const C: &str = "BENCH";

/// The recipient in another process. In-process recipients are `r0`, `r1`, …, so the
/// fan-out criteria (`r_`, `r%`) never match it.
const REMOTE: &str = "peer0";

/// `strand participant run` as the recipient of the cross-process phase; killed when
/// dropped.
struct RemoteRecipient(Child);

impl RemoteRecipient {
    fn start(tls_dir: &Path, store: SocketAddr) -> Result<Self, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::failed(format!("cannot find this executable: {e}")))?;
        let child = Command::new(exe)
            .args([
                "participant",
                "run",
                "--cluster",
                C,
                "--instance",
                REMOTE,
                "--tls-dir",
            ])
            .arg(tls_dir)
            .args(["--store", &store.to_string()])
            .env(EXIT_WITH_PARENT_ENV, "1")
            // Its warnings (a session lost on a loaded machine) would interleave with the
            // bench's own output; errors still show.
            .env("STRAND_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::failed(format!("cannot start the remote recipient: {e}")))?;
        Ok(Self(child))
    }
}

impl Drop for RemoteRecipient {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the sender's watch-fed view shows `want` live instances.
async fn await_view(sender: &Messaging, want: usize) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view = sender
            .view(C, Duration::from_secs(10))
            .await
            .map_err(CliError::failed)?;
        if view.live.len() >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CliError::failed(format!(
                "the sender's view showed {} of {want} live instances after 30 s",
                view.live.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut us: Vec<u64>) -> serde_json::Value {
    us.sort_unstable();
    json!({
        "samples": us.len(),
        "p50": percentile(&us, 0.5),
        "p99": percentile(&us, 0.99),
        "max": us.last().copied().unwrap_or(0),
    })
}

fn node(settings: &Settings, name: &str) -> Result<Arc<dyn Transport>, CliError> {
    let tls = settings::tls_material_for(settings, name, crate::authz::Role::Participant)
        .map_err(CliError::failed)?;
    let t = QuicTransport::bind(QuicConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), tls))
        .map_err(CliError::failed)?;
    Ok(t as Arc<dyn Transport>)
}

/// Runs `strand bench messaging`.
pub fn run(args: MessagingBenchArgs) -> Result<(), CliError> {
    if args.recipients < 10 {
        return Err(CliError::usage("--recipients must be at least 10"));
    }
    let out = runtime()?.block_on(measure(&args))?;
    print(out, &args)
}

async fn timed(m: &Messaging, criteria: &Criteria, expect: usize, n: usize) -> Result<Vec<u64>, CliError> {
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = m
            .send_and_wait(
                criteria,
                Outgoing::new("ECHO").body(json!("x")),
                Duration::from_secs(5),
            )
            .await
            .map_err(CliError::failed)?;
        us.push(t.elapsed().as_micros() as u64);
        if r.replies.len() != expect {
            return Err(CliError::failed(format!(
                "{criteria}: {} replies of {expect}: {r:?}",
                r.replies.len()
            )));
        }
    }
    Ok(us)
}

async fn throughput(m: &Messaging, targets: &[String], total: usize) -> Result<f64, CliError> {
    let per_task = total / 64;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..64 {
        let m = m.clone();
        let c = Criteria::parse(&format!(
            "instanceName={},dataSource=LIVEINSTANCES",
            targets[k % targets.len()]
        ))
        .map_err(CliError::failed)?;
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let r = m
                    .send_and_wait(&c, Outgoing::new("ECHO"), Duration::from_secs(5))
                    .await
                    .map_err(|e| e.to_string())?;
                if r.replies.len() != 1 {
                    return Err(format!("no reply: {r:?}"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(CliError::failed)?.map_err(CliError::failed)?;
    }
    Ok((per_task * 64) as f64 / start.elapsed().as_secs_f64())
}

async fn measure(args: &MessagingBenchArgs) -> Result<serde_json::Value, CliError> {
    let dir = tempfile::tempdir().map_err(CliError::failed)?;
    let flags = SettingsFlags {
        tls_dir: Some(dir.path().join("tls")),
        store: vec![],
    };
    let settings = Settings::load(&flags).map_err(CliError::usage)?;
    let store_ep = node(&settings, &replica_name(1))?;
    let store_addr = store_ep.local_addr();
    let tls = settings::tls_material_for(&settings, &replica_name(1), crate::authz::Role::Store)
        .map_err(CliError::failed)?;
    let server = StoreServer::start_on(
        ReplicaConfig::new(1, store_addr, dir.path().join("store"), tls),
        store_ep,
    )
    .await
    .map_err(CliError::failed)?;
    let client_tls = settings::tls_material_for(&settings, "bench-sender", crate::authz::Role::Admin)
        .map_err(CliError::failed)?;
    let sender_ep = QuicTransport::client(QuicConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), client_tls))
        .map_err(CliError::failed)? as Arc<dyn Transport>;
    let store = PropertyStore::new(sender_ep.clone(), StoreClientConfig::new(vec![store_addr]));
    let l = Layout::new(C);
    let admin = Admin::new(store.clone());
    admin.add_cluster(C).await.map_err(CliError::failed)?;
    if args.remote_samples > 0 {
        admin.add_instance(C, REMOTE).await.map_err(CliError::failed)?;
    }

    let names: Vec<String> = (0..args.recipients).map(|i| format!("r{i}")).collect();
    let mut recipients = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ep = node(&settings, name)?;
        let mut live = Record::new(name);
        live.set_simple(SESSION_ID, format!("{:x}", i + 1));
        live.set_simple(ADDR_FIELD, ep.local_addr());
        store
            .set(&l.live_instance(name), &live.to_bytes(), None)
            .await
            .map_err(CliError::failed)?;
        let m = Messaging::builder(name, C, ep, store.clone())
            .sender_type("PARTICIPANT")
            .receive()
            .build()
            .map_err(CliError::failed)?;
        crate::cli::participant::answer_echo(&m, Duration::ZERO);
        recipients.push(m);
    }
    let sender = Messaging::builder("bench-sender", C, sender_ep.clone(), store.clone())
        .build()
        .map_err(CliError::failed)?;
    let remote = (args.remote_samples > 0)
        .then(|| RemoteRecipient::start(&dir.path().join("tls"), store_addr))
        .transpose()?;
    // The sender's watch-fed view holds every recipient before timing starts.
    await_view(&sender, args.recipients + usize::from(remote.is_some())).await?;
    let one = Criteria::parse("instanceName=r0,dataSource=LIVEINSTANCES").map_err(CliError::failed)?;
    let ten = Criteria::parse("instanceName=r_,dataSource=LIVEINSTANCES").map_err(CliError::failed)?;
    let all = Criteria::parse("instanceName=r%,dataSource=LIVEINSTANCES").map_err(CliError::failed)?;
    // Warm the connections.
    timed(&sender, &all, args.recipients, 5).await?;
    timed(&sender, &one, 1, 200).await?;
    let la = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (n, nf) = (args.samples, args.fanout_samples);
    let (quic_floor, quic_cost) = super::floor::quic_floor(&settings, 200, n).await?;
    let (transport_floor, transport_cost) =
        super::floor::transport_floor(&settings, &sender_ep, 200, n).await?;
    let u = Usage::now();
    let single = timed(&sender, &one, 1, n).await?;
    let single_cost = u.per_op_since(n);
    let u = Usage::now();
    let f10 = timed(&sender, &ten, 10, nf).await?;
    let f10_cost = u.per_op_since(nf);
    let u = Usage::now();
    let fall = timed(&sender, &all, args.recipients, nf.min(100)).await?;
    let fall_cost = u.per_op_since(nf.min(100));
    let one_conn = throughput(&sender, &names[..1], args.throughput_msgs).await?;
    let many = throughput(&sender, &names, args.throughput_msgs).await?;
    // Two nodes: the recipient is a real participant process, and the caller is a task on
    // the sender's runtime, as a caller inside a node is (a transition handler, a service's
    // request task). Each round trip wakes a thread parked in each process.
    let remote_us = match &remote {
        Some(_) => {
            let to = Criteria::parse(&format!("instanceName={REMOTE},dataSource=LIVEINSTANCES"))
                .map_err(CliError::failed)?;
            let m = sender.clone();
            let n = args.remote_samples;
            let us = tokio::spawn(async move {
                timed(&m, &to, 1, 200).await?;
                timed(&m, &to, 1, n).await
            })
            .await
            .map_err(CliError::failed)??;
            summary(us)
        }
        None => serde_json::Value::Null,
    };
    drop(remote);
    let out = json!({
        "path": "in-process over real QUIC + mutual TLS on loopback: one sender (client endpoint), recipients each on their own node endpoint, a single-replica store feeding the sender's view",
        "recipients": args.recipients,
        "send_and_wait_us": summary(single),
        "send_and_wait_remote_us": remote_us,
        "quic_floor_us": summary(quic_floor),
        "transport_floor_us": summary(transport_floor),
        "fanout10_us": summary(f10),
        "fanout100_us": summary(fall),
        "cost_per_op": {
            "quic_floor": quic_cost,
            "transport_floor": transport_cost,
            "send_and_wait": single_cost,
            "fanout10": f10_cost,
            "fanout100": fall_cost,
        },
        "msgs_per_s": {
            "one_connection_64_in_flight": one_conn.round(),
            "many_connections_64_in_flight": many.round(),
        },
        CONFIG_NOTIFY_KEY: serde_json::Value::Null,
        "loadavg_at_start": la.trim(),
    });
    drop(recipients);
    server.shutdown().await;
    Ok(out)
}

/// Prints the messaging figures with the config notification figures folded in.
fn print(mut out: serde_json::Value, args: &MessagingBenchArgs) -> Result<(), CliError> {
    if args.config_samples > 0 {
        let config = super::config_notify::collect(3, args.config_samples, false, None)?;
        out[CONFIG_NOTIFY_KEY] = config[CONFIG_NOTIFY_KEY].clone();
    }
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(CliError::failed)?
        );
    }
    Ok(())
}
