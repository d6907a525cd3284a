//! `strand bench store`: starts the replicas as separate `strand store run` processes on
//! loopback (data on disk, fsync on), then measures put throughput and latency at each
//! client count, linearizable gets, cached gets and watch notification latency.
//!
//! The workload follows `../shared/anchors/store_bench.sh`: distinct keys, one request in
//! flight per client task, tasks spread over `--conns` client endpoints, per-request
//! latency. Each phase stops at `--ops` operations or its time cap.
//!
//! `cached_gets` times the cache's hit path (`PropertyStore::cache_lookup`, what
//! `cached_get` does on a hit) on every core over up to 10 000 filled keys while another
//! client rewrites every 16th of them, so the cache applies its watch's changes as it serves
//! (`rewrites_during`, `watch_revisions_applied_during`; `stale_after` counts rewritten keys
//! whose cached value is not the last write once the watch caught up: it must be 0);
//! `watch_latency_us` is from the moment a put is sent until a watcher of its prefix holds the
//! event (so it includes the put's commit).
//!
//! `--failover-trials N` measures leader failover instead (three or more replicas): see
//! [`failover`]. `--heartbeat-ms` and `--election-timeout-ms` pass Raft timing to the
//! replicas, to compare settings.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::store::{runtime, CLIENT_NAME, EXIT_WITH_PARENT_ENV};
use crate::cli::CliError;
use crate::propertystore::{replica_name, EventKind, PropertyStore, StoreClientConfig};
use crate::settings::{self, Settings, SettingsFlags};
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::Transport;

/// Arguments of `strand bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreBenchArgs {
    /// Replicas to start.
    #[arg(long, default_value_t = 3)]
    pub replicas: u64,
    /// Operations per phase.
    #[arg(long, default_value_t = 100_000)]
    pub ops: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Client counts (concurrent requests) to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64,256")]
    pub clients: Vec<usize>,
    /// Client endpoints (connections) the client tasks are spread over.
    #[arg(long, default_value_t = 8)]
    pub conns: usize,
    /// Time cap of each phase with one client, in seconds.
    #[arg(long, default_value_t = 150)]
    pub seq_max_seconds: u64,
    /// Time cap of every other phase, in seconds.
    #[arg(long, default_value_t = 120)]
    pub phase_max_seconds: u64,
    /// Watch notifications to time.
    #[arg(long, default_value_t = 2000)]
    pub watch_events: u64,
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Measure leader failover instead: this many trials, each SIGKILLs the leader and times
    /// the first acknowledged write and the first watch event after the kill (then restarts
    /// the killed replica and waits for it to catch up).
    #[arg(long, default_value_t = 0)]
    pub failover_trials: u32,
    /// The replicas' Raft heartbeat interval (`strand store run --heartbeat-ms`).
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// The replicas' election timeout range, MIN,MAX in ms (`strand store run
    /// --election-timeout-ms`).
    #[arg(long, value_delimiter = ',')]
    pub election_timeout_ms: Vec<u64>,
    /// How the leader serves the linearizable gets (`strand store run --read-mode`): `lease`
    /// (the replicas' default) or `read-index` (etcd's way, one heartbeat round per batch).
    #[arg(long, value_enum, default_value_t)]
    pub read_mode: crate::cli::store::LeaderReads,
    /// Keep the replicas' directory (data and `replica-<id>.log`) and print where it is.
    #[arg(long)]
    pub keep_dir: bool,
}

/// The replica processes; killed (and their directory removed) when dropped.
pub(super) struct Replicas {
    children: Vec<Option<Child>>,
    addrs: Vec<SocketAddr>,
    dir: PathBuf,
    /// `strand store run` arguments every replica gets beyond its own.
    extra: Vec<String>,
    /// Leave `dir` in place when dropped.
    keep: bool,
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.keep {
            eprintln!("replica data and logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Replicas {
    /// Starts (or restarts) replica `i` (id `i + 1`), its log appended to `replica-<id>.log`.
    pub(super) fn spawn(&mut self, i: usize) -> Result<(), CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::failed(format!("cannot find this executable: {e}")))?;
        let id = i + 1;
        let peers = self
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}@{a}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("replica-{id}.log")))
            .map_err(CliError::failed)?;
        let child = Command::new(&exe)
            .args([
                "store",
                "run",
                "--id",
                &id.to_string(),
                "--listen",
                &self.addrs[i].to_string(),
            ])
            .args(["--peers", &peers, "--data-dir"])
            .arg(self.dir.join(format!("data-{id}")))
            .arg("--tls-dir")
            .arg(self.dir.join("tls"))
            .args(&self.extra)
            .env(EXIT_WITH_PARENT_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| CliError::failed(format!("cannot start replica {id}: {e}")))?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// Sends `signal` to replica `i` if it runs (SIGSTOP pauses it, SIGCONT resumes it).
    pub(super) fn signal(&self, i: usize, signal: nix::sys::signal::Signal) {
        if let Some(c) = &self.children[i] {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), signal);
        }
    }

    /// The process ids of the running replicas, in replica order.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }

    /// SIGKILLs replica `i` and reaps it.
    pub(super) fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> Result<u16, CliError> {
    let s =
        UdpSocket::bind("127.0.0.1:0").map_err(|e| CliError::failed(format!("cannot pick a port: {e}")))?;
    Ok(s.local_addr().map_err(CliError::failed)?.port())
}

pub(super) fn start_replicas(
    n: u64,
    dir: &Path,
    extra: Vec<String>,
) -> Result<(Replicas, Vec<SocketAddr>), CliError> {
    let settings = Settings::load(&SettingsFlags {
        tls_dir: Some(dir.join("tls")),
        store: vec![],
    })
    .map_err(CliError::failed)?;
    let mut addrs = Vec::new();
    for id in 1..=n {
        settings::tls_material_for(&settings, &replica_name(id), crate::authz::Role::Store)
            .map_err(CliError::failed)?;
        addrs.push(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
    }
    let mut reps = Replicas {
        children: addrs.iter().map(|_| None).collect(),
        addrs: addrs.clone(),
        dir: dir.to_path_buf(),
        extra,
        keep: false,
    };
    for i in 0..addrs.len() {
        reps.spawn(i)?;
    }
    Ok((reps, addrs))
}

/// A new directory for one bench's replicas: `strand-bench-<what>-<pid>-<ns>` in the temp dir.
pub(super) fn bench_dir(what: &str) -> Result<PathBuf, CliError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("strand-bench-{what}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

pub(super) fn client(tls_dir: &Path, eps: &[SocketAddr], cache: u64) -> Result<PropertyStore, CliError> {
    let settings = Settings::load(&SettingsFlags {
        tls_dir: Some(tls_dir.to_path_buf()),
        store: vec![],
    })
    .map_err(CliError::failed)?;
    let tls = settings::tls_material_for(&settings, CLIENT_NAME, crate::authz::Role::Admin)
        .map_err(CliError::failed)?;
    let transport = QuicTransport::client(QuicConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), tls))
        .map_err(CliError::failed)?;
    let mut config = StoreClientConfig::new(eps.to_vec());
    config.cache_capacity = cache;
    config.deadline = Duration::from_secs(30);
    Ok(PropertyStore::new(transport as Arc<dyn Transport>, config))
}

/// A client as `strand admin put` makes one (`cli::store::connect`): a new endpoint, a
/// 1-second handshake timeout, the default request timeout and deadline, no cache.
fn cli_client(tls_dir: &Path, eps: &[SocketAddr]) -> Result<PropertyStore, CliError> {
    let settings = Settings::load(&SettingsFlags {
        tls_dir: Some(tls_dir.to_path_buf()),
        store: vec![],
    })
    .map_err(CliError::failed)?;
    let tls = settings::tls_material_for(&settings, CLIENT_NAME, crate::authz::Role::Admin)
        .map_err(CliError::failed)?;
    let mut qc = QuicConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), tls);
    qc.handshake_timeout = Duration::from_secs(1);
    let transport = QuicTransport::client(qc).map_err(CliError::failed)?;
    let mut config = StoreClientConfig::new(eps.to_vec());
    config.cache_capacity = 0;
    Ok(PropertyStore::new(transport as Arc<dyn Transport>, config))
}

/// One phase's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Phase {
    /// Concurrent client tasks.
    pub clients: usize,
    /// Completed operations per second.
    pub ops_per_s: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    #[serde(skip)]
    ok: u64,
    #[serde(skip)]
    errors: u64,
}

/// Put errors printed so far (the first few are printed).
static REPORTED_ERRORS: AtomicU64 = AtomicU64::new(0);

pub(super) fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn phase(
    clients: &[PropertyStore],
    tasks: usize,
    ops: u64,
    cap: Duration,
    op: impl Fn(PropertyStore, u64) -> futures::future::BoxFuture<'static, bool> + Send + Sync + 'static,
) -> Phase {
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + cap;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let c = clients[t % clients.len()].clone();
        let next = next.clone();
        let errors = errors.clone();
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops || Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                if op(c.clone(), i).await {
                    lat.push(t0.elapsed().as_micros() as u64);
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        if let Ok(l) = h.await {
            all.extend(l);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    Phase {
        clients: tasks,
        ops_per_s: (all.len() as f64 / elapsed.max(1e-9)) as u64,
        p50_us: percentile(&all, 0.5),
        p99_us: percentile(&all, 0.99),
        ok: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Runs `strand bench store`.
pub fn run(args: StoreBenchArgs) -> Result<(), CliError> {
    if args.replicas == 0
        || args.ops == 0
        || args.clients.is_empty()
        || args.clients.contains(&0)
        || args.conns == 0
    {
        return Err(CliError::usage(
            "--replicas, --ops, --conns and every --clients value must be positive",
        ));
    }
    if !matches!(args.election_timeout_ms[..], [] | [_, _]) {
        return Err(CliError::usage("--election-timeout-ms takes MIN,MAX"));
    }
    if args.failover_trials > 0 && args.replicas < 3 {
        return Err(CliError::usage(
            "--failover-trials needs at least 3 --replicas (a majority must survive the kill)",
        ));
    }
    if args.value_size > crate::propertystore::core::MAX_VALUE_LEN {
        return Err(CliError::usage(
            "--value-size exceeds the store's 1 MiB value limit",
        ));
    }
    let dir = bench_dir("store")?;
    let mut extra = Vec::new();
    if let Some(h) = args.heartbeat_ms {
        extra.extend(["--heartbeat-ms".to_string(), h.to_string()]);
    }
    if let [min, max] = args.election_timeout_ms[..] {
        extra.extend(["--election-timeout-ms".to_string(), format!("{min},{max}")]);
    }
    extra.extend(["--read-mode".to_string(), args.read_mode.name().to_string()]);
    let (mut replicas, eps) = start_replicas(args.replicas, &dir, extra)?;
    replicas.keep = args.keep_dir;
    let rt = runtime()?;
    let result = if args.failover_trials > 0 {
        rt.block_on(failover(&args, &mut replicas))
    } else {
        rt.block_on(measure(&args, &dir, &eps))
    };
    drop(replicas);
    let out = result?;
    if args.json {
        println!("{}", serde_json::to_string(&out).map_err(CliError::failed)?);
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(CliError::failed)?
        );
    }
    Ok(())
}

async fn measure(
    args: &StoreBenchArgs,
    dir: &Path,
    eps: &[SocketAddr],
) -> Result<serde_json::Value, CliError> {
    let tls_dir = dir.join("tls");
    let clients: Vec<PropertyStore> = (0..args.conns)
        .map(|_| client(&tls_dir, eps, 0))
        .collect::<Result<_, _>>()?;
    // Wait for a leader: the first write succeeds once one is elected.
    let ready = Instant::now() + Duration::from_secs(60);
    loop {
        match clients[0].set("/bench/ready", b"1", None).await {
            Ok(_) => break,
            Err(e) if Instant::now() > ready => {
                return Err(CliError::failed(format!("the store did not become ready: {e}")))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let value = Arc::new(vec![b'v'; args.value_size]);
    let mut puts = Vec::new();
    let mut widest = (0usize, 0u64);
    for &c in &args.clients {
        let cap = Duration::from_secs(if c == 1 {
            args.seq_max_seconds
        } else {
            args.phase_max_seconds
        });
        let v = value.clone();
        let p = phase(&clients, c, args.ops, cap, move |cl, i| {
            let v = v.clone();
            Box::pin(async move {
                match cl.set(&format!("/bench/p{c}/k{i}"), &v, None).await {
                    Ok(_) => true,
                    Err(e) => {
                        // The first few errors say why, not only how many.
                        if REPORTED_ERRORS.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("put c={c} error: {e}");
                        }
                        false
                    }
                }
            })
        })
        .await;
        eprintln!(
            "put c={c}: {} ops/s p50 {} µs p99 {} µs ({} ok, {} errors)",
            p.ops_per_s, p.p50_us, p.p99_us, p.ok, p.errors
        );
        if p.ok > widest.1 || (p.ok == widest.1 && c > widest.0) {
            widest = (c, p.ok);
        }
        puts.push(p);
    }
    let (src, written) = widest;
    let mut gets = Vec::new();
    for &c in &args.clients {
        let cap = Duration::from_secs(if c == 1 {
            args.seq_max_seconds
        } else {
            args.phase_max_seconds
        });
        let p = phase(&clients, c, args.ops, cap, move |cl, i| {
            Box::pin(async move {
                matches!(
                    cl.get(&format!("/bench/p{src}/k{}", i % written.max(1))).await,
                    Ok(Some(_))
                )
            })
        })
        .await;
        eprintln!(
            "get c={c}: {} ops/s p50 {} µs p99 {} µs ({} ok, {} errors)",
            p.ops_per_s, p.p50_us, p.p99_us, p.ok, p.errors
        );
        gets.push(p);
    }

    // Cached gets: fill a cache with up to 10 000 keys, then read them on every core.
    let cached = client(&tls_dir, eps, 200_000)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while cached.cache_progress() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let keys: Arc<Vec<String>> = Arc::new(
        (0..written.clamp(1, 10_000))
            .map(|i| format!("/bench/p{src}/k{i}"))
            .collect(),
    );
    for k in keys.iter() {
        let _ = cached.cached_get(k).await;
    }
    // Meanwhile another client rewrites every 16th key, one put after another: the cache
    // takes each change from its watch while it serves the lookups.
    let changing: Vec<String> = keys.iter().step_by(16).cloned().collect();
    let rewrites = Arc::new(AtomicU64::new(0));
    let stop_writes = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress_before = cached.cache_progress();
    let write_task = {
        let (writer, rewrites, stop) = (clients[0].clone(), rewrites.clone(), stop_writes.clone());
        let changing = changing.clone();
        tokio::spawn(async move {
            let mut last: Vec<Option<String>> = vec![None; changing.len()];
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = &changing[i as usize % changing.len()];
                let v = format!("rewrite-{i}");
                if writer.set(k, v.as_bytes(), None).await.is_ok() {
                    rewrites.fetch_add(1, Ordering::Relaxed);
                    last[i as usize % changing.len()] = Some(v);
                }
                i += 1;
            }
            last
        })
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_thread = (args.ops * 20).max(1_000_000);
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..threads {
        let cached = cached.clone();
        let keys = keys.clone();
        handles.push(std::thread::spawn(move || {
            let mut hits = 0u64;
            let mut samples = Vec::with_capacity((per_thread / 64) as usize + 1);
            for i in 0..per_thread {
                let k = &keys[(i as usize + t * 7919) % keys.len()];
                if i % 64 == 0 {
                    let t0 = Instant::now();
                    let hit = cached.cache_lookup(k).is_some();
                    samples.push(t0.elapsed().as_nanos() as u64);
                    hits += hit as u64;
                } else {
                    hits += cached.cache_lookup(k).is_some() as u64;
                }
            }
            (hits, samples)
        }));
    }
    let mut hits = 0;
    let mut samples = Vec::new();
    for h in handles {
        if let Ok((n, s)) = h.join() {
            hits += n;
            samples.extend(s);
        }
    }
    let cached_elapsed = started.elapsed().as_secs_f64();
    stop_writes.store(true, Ordering::Relaxed);
    let last_values = write_task.await.unwrap_or_default();
    let rewrites = rewrites.load(Ordering::Relaxed);
    let progressed = cached.cache_progress().saturating_sub(progress_before);
    // The cache ends up with the rewritten values (its watch applied them).
    let fresh_deadline = Instant::now() + Duration::from_secs(10);
    let stale = loop {
        let stale = changing
            .iter()
            .zip(&last_values)
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .filter(|(k, v)| {
                cached
                    .cache_lookup(k)
                    .flatten()
                    .is_none_or(|r| r.value != v.as_bytes())
            })
            .count();
        if stale == 0 || Instant::now() > fresh_deadline {
            break stale;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    samples.sort_unstable();
    let total = per_thread * threads as u64;
    eprintln!(
        "cached get: {hits} hits of {total} lookups on {threads} threads in {cached_elapsed:.2} s, \
         while {rewrites} puts rewrote {} of the keys (the cache's watch advanced {progressed} \
         revisions; {stale} keys stale afterwards)",
        changing.len()
    );
    let cached_ops = (hits as f64 / cached_elapsed.max(1e-9)) as u64;
    let cached_p50_us = percentile(&samples, 0.5) as f64 / 1000.0;

    // Watch latency: one writer, one watcher; each value carries its send time.
    let base = Instant::now();
    let watcher_client = client(&tls_dir, eps, 0)?;
    let mut watcher = watcher_client.watch("/bench/watch/", 0);
    let _ = tokio::time::timeout(Duration::from_millis(10), watcher.next_batch()).await;
    let n = args.watch_events;
    let writer = clients[0].clone();
    let write_task = tokio::spawn(async move {
        for i in 0..n {
            let sent = base.elapsed().as_nanos() as u64;
            let _ = writer
                .set(&format!("/bench/watch/k{i}"), &sent.to_le_bytes(), None)
                .await;
        }
    });
    let mut lat = Vec::new();
    let wdeadline = Instant::now() + Duration::from_secs(args.phase_max_seconds);
    while (lat.len() as u64) < n && Instant::now() < wdeadline {
        match tokio::time::timeout(Duration::from_secs(5), watcher.next_batch()).await {
            Ok(Ok(events)) => {
                let now = base.elapsed().as_nanos() as u64;
                for e in events {
                    if let EventKind::Put { value, .. } = e.kind {
                        if let Ok(b) = <[u8; 8]>::try_from(value.as_slice()) {
                            lat.push(now.saturating_sub(u64::from_le_bytes(b)) / 1000);
                        }
                    }
                }
            }
            Ok(Err(e)) => return Err(CliError::failed(format!("watch failed: {e}"))),
            Err(_) => break,
        }
    }
    let _ = write_task.await;
    lat.sort_unstable();
    eprintln!("watch: {} notifications timed", lat.len());

    Ok(serde_json::json!({
        "replicas": args.replicas,
        "value_size": args.value_size,
        "read_mode": args.read_mode.name(),
        "puts": puts,
        "gets": gets,
        "cached_gets": {
            "ops_per_s": cached_ops,
            "p50_us": cached_p50_us,
            "lookups": total,
            "hits": hits,
            "keys": keys.len(),
            "rewritten_keys": changing.len(),
            "rewrites_during": rewrites,
            "watch_revisions_applied_during": progressed,
            "stale_after": stale,
        },
        "watch_latency_us": { "p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99) },
    }))
}

/// What the failover trials' writer and watcher saw, and when.
#[derive(Default)]
struct Seen {
    /// Write `i + 1`: when it was sent, and when it was acknowledged (`None`: not).
    writes: Vec<(Instant, Option<Instant>)>,
    /// Write index → when the watcher first held its event.
    events: std::collections::BTreeMap<u64, Instant>,
    /// Writes whose outcome was unknown.
    unknown: u64,
}

/// Waits until every replica answers, all name one leader, and each has applied what the
/// leader had when they first agreed; returns the leader's index.
pub(super) async fn steady(probe: &PropertyStore, addrs: &[SocketAddr]) -> Result<usize, CliError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut target: Option<(usize, u64)> = None;
    loop {
        if Instant::now() > deadline {
            return Err(CliError::failed(
                "the replicas did not settle on a leader within 60 s",
            ));
        }
        let statuses = probe.status_all().await;
        let of = |a: &SocketAddr| {
            statuses
                .iter()
                .find(|(x, _)| x == a)
                .and_then(|(_, r)| r.as_ref().ok())
        };
        let all: Option<Vec<_>> = addrs.iter().map(of).collect();
        let leader = all.as_ref().and_then(|all| {
            let l = all.first()?.leader?;
            all.iter().all(|s| s.leader == Some(l)).then_some(l)
        });
        match (all, leader, target) {
            (Some(all), Some(l), None) => {
                let revision = all.iter().map(|s| s.revision).max().unwrap_or(0);
                target = Some((l as usize - 1, revision));
            }
            (Some(all), Some(l), Some((t, revision))) if l as usize - 1 == t => {
                if all.iter().all(|s| s.revision >= revision) {
                    return Ok(t);
                }
            }
            _ => target = None,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Percentiles of a sample in ms, one decimal.
fn summary_ms(samples: &[Duration]) -> serde_json::Value {
    let mut us: Vec<u64> = samples.iter().map(|d| d.as_micros() as u64).collect();
    us.sort_unstable();
    let ms = |v: u64| (v as f64 / 100.0).round() / 10.0;
    serde_json::json!({
        "p50": ms(percentile(&us, 0.5)),
        "p99": ms(percentile(&us, 0.99)),
        "max": ms(us.last().copied().unwrap_or(0)),
    })
}

/// `strand bench store --failover-trials N`: a writer (one put after another) and a watcher
/// (a separate client, attached to the leader) run throughout; each trial waits for a
/// settled store, SIGKILLs the leader, and takes the time from the kill to (a) the first
/// acknowledged write among those sent after it, (b) the watcher holding the event of the
/// first write sent after it, and (c) the first success of new clients started one after
/// another from the kill, each putting one key (as `strand admin put` runs); then restarts
/// the killed replica.
async fn failover(args: &StoreBenchArgs, reps: &mut Replicas) -> Result<serde_json::Value, CliError> {
    let tls_dir = reps.dir.join("tls");
    let eps = reps.addrs.clone();
    let writer = client(&tls_dir, &eps, 0)?;
    let watch_client = client(&tls_dir, &eps, 0)?;
    let probe = client(&tls_dir, &eps, 0)?;
    let ready = Instant::now() + Duration::from_secs(60);
    while let Err(e) = writer.set("/failover/ready", b"1", None).await {
        if Instant::now() > ready {
            return Err(CliError::failed(format!("the store did not become ready: {e}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let write_task = {
        let (seen, stop) = (seen.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let sent = Instant::now();
                let r = writer
                    .set(&format!("/failover/k{i}"), &i.to_le_bytes(), None)
                    .await;
                let done = Instant::now();
                let unknown = matches!(r, Err(crate::propertystore::ClientError::OutcomeUnknown { .. }));
                {
                    let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                    s.writes.push((sent, r.is_ok().then_some(done)));
                    s.unknown += u64::from(unknown);
                }
                if r.is_err() && !unknown {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let watch_task = {
        let (seen, stop, watch_client) = (seen.clone(), stop.clone(), watch_client.clone());
        tokio::spawn(async move {
            let mut watcher = watch_client.watch("/failover/", 0);
            while !stop.load(Ordering::Relaxed) {
                match watcher.next_batch().await {
                    Ok(events) => {
                        let now = Instant::now();
                        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                        for e in events {
                            if let EventKind::Put { value, .. } = e.kind {
                                if let Ok(b) = <[u8; 8]>::try_from(value.as_slice()) {
                                    s.events.entry(u64::from_le_bytes(b)).or_insert(now);
                                }
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("watch: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    };

    let mut writes = Vec::new();
    let mut watches = Vec::new();
    let mut clis = Vec::new();
    let mut samples = Vec::new();
    let mut missed = 0u32;
    let progress = crate::cli::progress::Progress::start("store failover trials");
    for trial in 1..=args.failover_trials {
        progress.set(format!("store failover trial {trial}/{}", args.failover_trials));
        let leader = steady(&probe, &eps).await?;
        // The watcher's client learns the leader from a linearizable read, so its watch
        // polls the replica about to be killed.
        let _ = watch_client.get("/failover/ready").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed_at = Instant::now();
        reps.kill(leader);
        let give_up = killed_at + Duration::from_secs(15);
        // New clients, one after another from the kill on, each putting one key as one
        // `strand admin put` does, until one succeeds.
        let fresh = {
            let (tls_dir, eps) = (tls_dir.clone(), eps.clone());
            tokio::spawn(async move {
                let mut attempts = 0u32;
                while Instant::now() < give_up {
                    attempts += 1;
                    let Ok(c) = cli_client(&tls_dir, &eps) else {
                        break;
                    };
                    let key = format!("/failover/cli-{trial}-{attempts}");
                    if c.set(&key, b"1", None).await.is_ok() {
                        return (Some(Instant::now()), attempts);
                    }
                }
                (None, attempts)
            })
        };
        let (write, watch) = loop {
            let (write, watch) = {
                let s = seen.lock().unwrap_or_else(|e| e.into_inner());
                match s.writes.iter().position(|(sent, _)| *sent >= killed_at) {
                    Some(p) => (
                        s.writes[p..].iter().find_map(|(_, done)| *done),
                        s.events.range(p as u64 + 1..).map(|(_, t)| *t).min(),
                    ),
                    None => (None, None),
                }
            };
            if (write.is_some() && watch.is_some()) || Instant::now() > give_up {
                break (write.map(|t| t - killed_at), watch.map(|t| t - killed_at));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let (cli_done, cli_attempts) = fresh.await.unwrap_or((None, 0));
        let cli = cli_done.map(|t| t - killed_at);
        let ms = |d: Option<Duration>| d.map(|d| (d.as_micros() as f64 / 100.0).round() / 10.0);
        crate::cli::progress::clear_line();
        eprintln!(
            "trial {trial}: killed replica {}; write after {:?} ms, watch event after {:?} ms, \
             new client's write after {:?} ms ({cli_attempts} attempts)",
            leader + 1,
            ms(write),
            ms(watch),
            ms(cli),
        );
        samples.push(serde_json::json!({
            "killed": leader + 1,
            "write_after_kill_ms": ms(write),
            "watch_after_kill_ms": ms(watch),
            "new_client_write_after_kill_ms": ms(cli),
            "new_client_attempts": cli_attempts,
        }));
        match (write, watch, cli) {
            (Some(w), Some(v), Some(c)) => {
                writes.push(w);
                watches.push(v);
                clis.push(c);
            }
            _ => missed += 1,
        }
        reps.spawn(leader)?;
    }
    progress.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = write_task.await;
    watch_task.abort();
    let unknown = seen.lock().unwrap_or_else(|e| e.into_inner()).unknown;
    Ok(serde_json::json!({
        "replicas": args.replicas,
        "trials": args.failover_trials,
        "missed": missed,
        "heartbeat_ms": args.heartbeat_ms,
        "election_timeout_ms": args.election_timeout_ms,
        "write_after_kill_ms": summary_ms(&writes),
        "watch_after_kill_ms": summary_ms(&watches),
        "new_client_write_after_kill_ms": summary_ms(&clis),
        "unknown_writes": unknown,
        "samples": samples,
    }))
}
