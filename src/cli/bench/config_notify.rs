//! `strand bench config --json`: config change notification latency across processes.
//!
//! ```text
//!   this process                           3 × `strand store run`     `strand admin config watch
//!   t0 = clock; ConfigAccessor::set ──────► leader: read, txn ───────► --timestamps -o json` (a child
//!   t_ack = clock                            replicate, fsync, apply ─► process): prints the change
//!   notify = received_unix_us − t0   ◄──── stdout line ◄───────────── with received_unix_us
//! ```
//!
//! Both clocks are the same machine's wall clock. [`measure_config_notify`] is the measurement
//! alone, for other benchmarks (`strand bench messaging`) that already run a store.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use super::store::{client, percentile, start_replicas, steady};
use crate::admin::{Admin, ConfigScope};
use crate::cli::store::{runtime, EXIT_WITH_PARENT_ENV};
use crate::cli::CliError;
use crate::config::ConfigAccessor;
use crate::participant::now_us;

/// Arguments of `strand bench config`.
#[derive(Debug, clap::Args)]
pub struct ConfigBenchArgs {
    /// Store replicas (processes).
    #[arg(long, default_value_t = 3)]
    pub replicas: u64,
    /// Measured changes (after 20 unmeasured ones).
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// One line of JSON.
    #[arg(long)]
    pub json: bool,
    /// Worker threads of each replica's runtime (`strand store run --worker-threads`;
    /// default: the replica's own default, one per CPU).
    #[arg(long, value_name = "N")]
    pub replica_threads: Option<usize>,
    /// Where the time goes: every process records stage marks (`STRAND_MARKS`), and the
    /// result gives each hop's p50/p99 and each process's CPU time and context switches per
    /// change (only the changes are made: no get or put is timed beside them).
    #[arg(long)]
    pub breakdown: bool,
}

/// The listener process; killed when dropped.
struct Listener {
    child: Child,
    lines: tokio::sync::mpsc::Receiver<String>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_listener(tls_dir: &Path, eps: &[SocketAddr], scope: &ConfigScope) -> Result<Listener, CliError> {
    let exe =
        std::env::current_exe().map_err(|e| CliError::failed(format!("cannot find this executable: {e}")))?;
    let store = eps.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let mut child = Command::new(exe)
        .args([
            "admin",
            "config",
            "watch",
            "--timestamps",
            "-o",
            "json",
            "--scope",
        ])
        .arg(scope.to_string())
        .arg("--tls-dir")
        .arg(tls_dir)
        .args(["--store", &store])
        .env(EXIT_WITH_PARENT_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CliError::failed(format!("cannot start the listener: {e}")))?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| CliError::failed("the listener has no stdout"))?;
    let (tx, lines) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    Ok(Listener { child, lines })
}

/// Waits for the listener's line about value `want` (a thread reads the child's stdout).
async fn received(listener: &mut Listener, want: &str) -> Result<u64, CliError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = tokio::time::timeout(left, listener.lines.recv())
            .await
            .ok()
            .flatten()
            .ok_or_else(|| {
                CliError::failed(format!("the listener printed no change to {want} within 10 s"))
            })?;
        let v: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| CliError::failed(format!("the listener printed {line:?}: {e}")))?;
        if v["new"].as_str() == Some(want) {
            return v["received_unix_us"]
                .as_u64()
                .ok_or_else(|| CliError::failed(format!("no received_unix_us in {line:?}")));
        }
    }
}

fn summary(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    json!({
        "p50": percentile(&v, 0.5),
        "p99": percentile(&v, 0.99),
        "max": v.last().copied().unwrap_or(0),
        "samples": v.len(),
    })
}

/// A new cluster, a setter (a long-lived client with a cache, as the one a participant or an
/// application's `ConfigAccessor` holds) and a listener process subscribed to the cluster's
/// scope: the listener subscribes when it has started, so this writes until it reports a
/// change, then drops what it reported.
async fn setter_and_listener(
    tls_dir: &Path,
    eps: &[SocketAddr],
) -> Result<(ConfigAccessor, ConfigScope, Listener), CliError> {
    let admin = Admin::new(client(tls_dir, eps, 10_000)?);
    let cluster = format!("bench{}", now_us());
    admin.add_cluster(&cluster).await.map_err(CliError::failed)?;
    let scope = ConfigScope::Cluster { cluster };
    let config = ConfigAccessor::from_admin(admin);
    let mut listener = start_listener(tls_dir, eps, &scope)?;
    let mut warm = 0u64;
    loop {
        warm += 1;
        let v = format!("warm-{warm}");
        config
            .set_key(&scope, "bench_value", &v)
            .await
            .map_err(CliError::failed)?;
        let ready = tokio::time::timeout(Duration::from_millis(500), listener.lines.recv()).await;
        if ready.is_ok_and(|l| l.is_some()) {
            break;
        }
        if warm > 60 {
            return Err(CliError::failed("the listener reported nothing within 30 s"));
        }
    }
    while listener.lines.try_recv().is_ok() {}
    Ok((config, scope, listener))
}

/// Measures `samples` config changes against the store at `eps` (TLS material in `tls_dir`):
/// from the start of `ConfigAccessor::set` here to a listener in another process having the
/// new value. Returns `{"config_notify_us": {p50, p99, max, samples}, …}` with, for where the
/// time goes, the set's own acknowledgement, the listener's lag behind it (0 when it was
/// first), and a linearizable get and a durable put timed alone.
pub async fn measure_config_notify(
    tls_dir: &Path,
    eps: &[SocketAddr],
    samples: usize,
) -> Result<serde_json::Value, CliError> {
    // The setter is a long-lived client with a cache, as the one a participant or an
    // application's ConfigAccessor holds; the get and put timed alone use a client without.
    let store = client(tls_dir, eps, 0)?;
    let (config, scope, mut listener) = setter_and_listener(tls_dir, eps).await?;
    let (mut notify, mut ack, mut after_ack) = (Vec::new(), Vec::new(), Vec::new());
    // Where the time goes: a set is a read of the record (from the setter's cache when it
    // holds the setter's own last write) and one durable transaction; a linearizable get
    // and a durable put are timed alone too, on a client without a cache.
    let (mut read, mut put) = (Vec::new(), Vec::new());
    let raw = format!("{}/bench_raw", crate::model::Layout::new(scope.cluster()).root());
    for i in 0..samples + 20 {
        let v = format!("v{i}");
        let t0 = now_us();
        config
            .set_key(&scope, "bench_value", &v)
            .await
            .map_err(CliError::failed)?;
        let t_ack = now_us();
        let at = received(&mut listener, &v).await?;
        let t1 = now_us();
        store.get(&scope.path()).await.map_err(CliError::failed)?;
        let t2 = now_us();
        store
            .set(&raw, v.as_bytes(), None)
            .await
            .map_err(CliError::failed)?;
        let t3 = now_us();
        if i >= 20 {
            notify.push(at.saturating_sub(t0));
            ack.push(t_ack - t0);
            after_ack.push(at.saturating_sub(t_ack));
            read.push(t2 - t1);
            put.push(t3 - t2);
        }
    }
    Ok(json!({
        "config_notify_us": summary(notify),
        "set_ack_us": summary(ack),
        "notify_after_ack_us": summary(after_ack),
        "linearizable_get_us": summary(read),
        "durable_put_us": summary(put),
    }))
}

/// The changes of `--breakdown`: one at a time, each marked at its start, with every
/// process's CPU time and context switches read before and after (see [`super::breakdown`]).
async fn measure_breakdown(
    tls_dir: &Path,
    eps: &[SocketAddr],
    samples: usize,
    marks_dir: &Path,
    replicas: Vec<u32>,
) -> Result<serde_json::Value, CliError> {
    use super::breakdown::{changes, read_marks, report, summary_us, usage, usage_per_change, Pids};
    use crate::telemetry::marks::{self, Stage};

    let (config, scope, mut listener) = setter_and_listener(tls_dir, eps).await?;
    for i in 0..20 {
        let v = format!("w{i}");
        config
            .set_key(&scope, "bench_value", &v)
            .await
            .map_err(CliError::failed)?;
        received(&mut listener, &v).await?;
    }
    let pids = Pids {
        setter: std::process::id(),
        listener: listener.child.id(),
        replicas,
    };
    let mut names = vec![
        ("setter".to_string(), pids.setter),
        ("listener".to_string(), pids.listener),
    ];
    for (i, p) in pids.replicas.iter().enumerate() {
        names.push((format!("replica-{}", i + 1), *p));
    }
    let before: Vec<_> = names.iter().map(|(_, p)| usage(*p)).collect();
    let first_ns = now_us() * 1000;
    let mut notify = Vec::with_capacity(samples);
    for i in 0..samples {
        let v = format!("v{i}");
        let t0 = now_us();
        marks::mark(Stage::SetStart, i as u64);
        config
            .set_key(&scope, "bench_value", &v)
            .await
            .map_err(CliError::failed)?;
        let at = received(&mut listener, &v).await?;
        notify.push(at.saturating_sub(t0));
    }
    let after: Vec<_> = names.iter().map(|(_, p)| usage(*p)).collect();
    // Every process appends its marks every 20 ms: wait until the listener's last one is in
    // its file, then for one more round of the others.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut all = loop {
        let all = read_marks(marks_dir).map_err(CliError::failed)?;
        let delivered = all.get(&pids.listener).map_or(0, |m| {
            m.iter()
                .filter(|m| m.stage == Stage::Delivered && m.at_ns >= first_ns)
                .count()
        });
        if delivered >= samples || std::time::Instant::now() >= deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    if let Ok(again) = read_marks(marks_dir) {
        all = again;
    }
    for m in all.values_mut() {
        m.retain(|m| m.at_ns >= first_ns);
    }
    let changes = changes(&pids, &all);
    let mut out = report(&changes);
    out["config_notify_us"] = summary_us(notify);
    out["per_change"] = usage_per_change(&names, &before, &after, samples);
    out["processes"] = json!(names
        .iter()
        .map(|(n, p)| (n.clone(), json!(p)))
        .collect::<serde_json::Map<_, _>>());
    Ok(out)
}

/// Starts `replicas` store replicas as processes, measures `samples` config notifications
/// against them ([`measure_config_notify`]) and stops them. With `breakdown`, every process
/// records stage marks into a directory of the run and the result says where the time goes.
///
/// The changes are made from a task on the runtime's workers, as an application's code makes
/// them, not from the main thread's `block_on` future: that thread is outside the worker
/// pool, so every answer would wake it from a worker and every request would wake a worker
/// from it, hops no task pays. `replica_threads` gives the replicas' `--worker-threads`.
pub fn collect(
    replicas: u64,
    samples: usize,
    breakdown: bool,
    replica_threads: Option<usize>,
) -> Result<serde_json::Value, CliError> {
    let dir = std::env::temp_dir().join(format!("strand-bench-config-{}-{}", std::process::id(), now_us()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    let marks_dir = dir.join("marks");
    if breakdown {
        std::fs::create_dir_all(&marks_dir)
            .map_err(|e| CliError::failed(format!("cannot create {}: {e}", marks_dir.display())))?;
        // Before any other thread runs: the replicas and the listener inherit it, and this
        // process's first mark reads it.
        std::env::set_var(crate::telemetry::marks::MARKS_ENV, &marks_dir);
    }
    let extra =
        replica_threads.map_or_else(Vec::new, |n| vec!["--worker-threads".to_string(), n.to_string()]);
    let (procs, eps) = start_replicas(replicas, &dir, extra)?;
    let rt = runtime()?;
    let tls_dir = dir.join("tls");
    let pids = procs.pids();
    let result = rt.block_on(async {
        let probe = client(&tls_dir, &eps, 0)?;
        steady(&probe, &eps).await?;
        let measured = tokio::spawn(async move {
            if breakdown {
                measure_breakdown(&tls_dir, &eps, samples, &marks_dir, pids).await
            } else {
                measure_config_notify(&tls_dir, &eps, samples).await
            }
        });
        let mut out = measured
            .await
            .map_err(|e| CliError::failed(format!("the measurement stopped: {e}")))??;
        out["replicas"] = json!(replicas);
        if let Some(n) = replica_threads {
            out["replica_worker_threads"] = json!(n);
        }
        Ok::<_, CliError>(out)
    });
    drop(procs);
    result
}

/// Runs `strand bench config`.
pub fn run(args: ConfigBenchArgs) -> Result<(), CliError> {
    if args.replicas == 0 || args.samples == 0 {
        return Err(CliError::usage("--replicas and --samples must be positive"));
    }
    if let Some(n) = args.replica_threads {
        crate::cli::store::check_worker_threads(n)?;
    }
    let out = collect(args.replicas, args.samples, args.breakdown, args.replica_threads)?;
    let text = if args.json {
        serde_json::to_string(&out)
    } else {
        serde_json::to_string_pretty(&out)
    };
    println!("{}", text.map_err(CliError::failed)?);
    Ok(())
}
