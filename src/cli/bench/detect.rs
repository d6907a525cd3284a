//! `strand bench detect`: failure detection with real `strand node` processes on loopback.
//!
//! Starts `--nodes` processes of the current executable (a fresh development CA in a temp
//! directory), waits until every node sees every other alive, then per trial SIGKILLs one
//! node, measures from the kill until the first and until every survivor prints
//! `MemberDown` for it (the nodes' own event timestamps), and restarts it. Then a few
//! graceful leaves (SIGTERM) measure until every survivor prints `MemberLeft`. Any
//! `MemberDown` of a process that was still running counts as a false positive. `--load`
//! runs two busy-loop processes meanwhile, so both cores are saturated.
//!
//! JSON: `nodes`, `trials`, `load`, `first_detect_ms`, `all_detect_ms`, `leave_ms` (each
//! `p50`, `p99` — `null` under 100 samples, read `max` of `n` — `max`, `n`; in whole ms, as
//! `resolution_ms` says: the nodes stamp events in whole ms), `false_positives`, `missed` (trials where some survivor never saw
//! the kill or the leave within 10 s), `leaves_seen_as_down`, `isolated_events`, `rejoins`
//! and `suspicions` (over the whole run, every node), `config`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::cli::node::EXIT_WITH_PARENT_ENV;
use crate::cli::CliError;
use crate::settings::{self, Settings, SettingsFlags};

/// Arguments of `strand bench detect`.
#[derive(Debug, clap::Args)]
pub struct DetectBenchArgs {
    /// How many node processes.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// How many SIGKILL trials.
    #[arg(long, default_value_t = 20)]
    pub trials: usize,
    /// How many graceful-leave trials (default: a quarter of the trials, at least 3).
    #[arg(long)]
    pub leaves: Option<usize>,
    /// Saturate both cores with busy-loop processes during the run.
    #[arg(long)]
    pub load: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Probe period of the nodes, in milliseconds (default: the LAN default).
    #[arg(long, value_name = "MS")]
    pub probe_period_ms: Option<u64>,
    /// Suspicion timeout of the nodes, in milliseconds (default: the LAN default).
    #[arg(long, value_name = "MS")]
    pub suspect_ms: Option<u64>,
    /// Internal: be one of the busy-loop processes of `--load`.
    #[arg(long, hide = true)]
    pub busy_loop: bool,
}

const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restarted node may take until every node sees it up (generous: a starved
/// machine makes QUIC handshakes slow).
const REJOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The wall clock in whole milliseconds, truncated as the nodes truncate the `at_unix_ms` of
/// their events: differences of the two are whole milliseconds, good to ±1 ms, and are
/// reported as such (`resolution_ms`), never with a fraction the clocks do not have.
fn unix_ms_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0)
}

/// The timestamps' resolution, in ms.
const RESOLUTION_MS: u64 = 1;

/// One line a node printed.
struct Line {
    slot: usize,
    value: Value,
}

struct Proc {
    slot: usize,
    name: String,
    child: Child,
    generation: u64,
}

/// A member event, as one node printed it.
#[derive(Debug, Clone)]
struct Ev {
    observer: usize,
    kind: String,
    name: String,
    generation: u64,
    at_ms: f64,
}

struct Bench {
    exe: PathBuf,
    tls_dir: PathBuf,
    addrs: Vec<SocketAddr>,
    extra: Vec<String>,
    tx: mpsc::Sender<Line>,
    rx: mpsc::Receiver<Line>,
    next_slot: usize,
    /// Running processes by node index.
    procs: BTreeMap<usize, Proc>,
    /// The name and generation of the process in each slot.
    slots: BTreeMap<usize, (String, u64)>,
    events: Vec<Ev>,
    /// (name, generation) of processes that were killed or left, with when.
    ended: BTreeMap<(String, u64), f64>,
}

fn free_port() -> Result<u16, CliError> {
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| CliError::failed(format!("no free port: {e}")))?;
    s.local_addr()
        .map(|a| a.port())
        .map_err(|e| CliError::failed(format!("no free port: {e}")))
}

impl Bench {
    fn node_name(i: usize) -> String {
        format!("detect{i}")
    }

    fn spawn(&mut self, i: usize) -> Result<(), CliError> {
        let name = Self::node_name(i);
        let mut cmd = Command::new(&self.exe);
        cmd.args([
            "node",
            "run",
            "--name",
            &name,
            "--listen",
            &self.addrs[i].to_string(),
        ]);
        for (j, a) in self.addrs.iter().enumerate() {
            if j != i {
                cmd.args(["--seed", &a.to_string()]);
            }
        }
        cmd.arg("--tls-dir").arg(&self.tls_dir);
        cmd.args(&self.extra);
        cmd.env(EXIT_WITH_PARENT_ENV, "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| CliError::failed(format!("cannot start {}: {e}", self.exe.display())))?;
        let slot = self.next_slot;
        self.next_slot += 1;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| CliError::failed("child without stdout"))?;
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(Line { slot, value }).is_err() {
                        break;
                    }
                }
            }
        });
        self.procs.insert(
            i,
            Proc {
                slot,
                name: name.clone(),
                child,
                generation: 0,
            },
        );
        // Its Started line gives the generation.
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            self.pump(Duration::from_millis(20));
            if let Some(&(_, g)) = self.slots.get(&slot) {
                if let Some(p) = self.procs.get_mut(&i) {
                    p.generation = g;
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CliError::failed(format!(
                    "{name} did not start within {STEP_TIMEOUT:?}"
                )));
            }
        }
    }

    /// Takes the lines printed so far (waiting at most `wait` for the first).
    fn pump(&mut self, wait: Duration) {
        let mut first = true;
        loop {
            let line = if first {
                first = false;
                self.rx.recv_timeout(wait).ok()
            } else {
                self.rx.try_recv().ok()
            };
            let Some(Line { slot, value }) = line else { break };
            let kind = value
                .get("event")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if kind == "Started" {
                let name = value
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let g = value.get("generation").and_then(Value::as_u64).unwrap_or(0);
                self.slots.insert(slot, (name, g));
                continue;
            }
            let (Some(name), Some(generation), Some(at)) = (
                value.get("name").and_then(Value::as_str),
                value.get("generation").and_then(Value::as_u64),
                value.get("at_unix_ms").and_then(Value::as_f64),
            ) else {
                continue;
            };
            if kind == "Rejoined" {
                // The node was declared down and came back with a new generation.
                if let Some(p) = self.procs.values_mut().find(|p| p.slot == slot) {
                    p.generation = generation;
                }
                if let Some(entry) = self.slots.get_mut(&slot) {
                    entry.1 = generation;
                }
            }
            self.events.push(Ev {
                observer: slot,
                kind,
                name: name.to_string(),
                generation,
                at_ms: at,
            });
        }
    }

    /// Waits until `pred` holds over the events, at most `timeout`.
    fn wait(&mut self, timeout: Duration, mut pred: impl FnMut(&Bench) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            self.pump(Duration::from_millis(10));
        }
    }

    /// Whether the running process `observer` saw `name` (generation `g`) with `kind`;
    /// the earliest time it did.
    fn seen(&self, observer_slot: usize, kind: &str, name: &str, g: u64) -> Option<f64> {
        self.events
            .iter()
            .filter(|e| e.observer == observer_slot && e.kind == kind && e.name == name && e.generation == g)
            .map(|e| e.at_ms)
            .reduce(f64::min)
    }

    fn survivors_except(&self, victim: usize) -> Vec<usize> {
        self.procs
            .iter()
            .filter(|(i, _)| **i != victim)
            .map(|(_, p)| p.slot)
            .collect()
    }

    /// Starts node `i` again (named `name`) and waits until every node sees every node up.
    fn restart(&mut self, i: usize, name: &str) -> Result<(), CliError> {
        self.spawn(i)?;
        if !self.wait(REJOIN_TIMEOUT, Bench::all_see_all_up) {
            return Err(CliError::failed(format!(
                "{name} did not rejoin within {REJOIN_TIMEOUT:?}: {}",
                self.not_up()
            )));
        }
        Ok(())
    }

    /// Who does not see whom up yet, for error messages.
    fn not_up(&self) -> String {
        let mut out = Vec::new();
        for obs in self.procs.values() {
            for p in self.procs.values().filter(|p| p.slot != obs.slot) {
                let last = self
                    .events
                    .iter()
                    .rev()
                    .find(|e| {
                        e.observer == obs.slot
                            && e.name == p.name
                            && matches!(e.kind.as_str(), "MemberUp" | "MemberDown" | "MemberLeft")
                    })
                    .map(|e| format!("{}#{}", e.kind, e.generation));
                if last.as_deref() != Some(&format!("MemberUp#{}", p.generation)) {
                    out.push(format!(
                        "{} sees {}#{} as {}",
                        obs.name,
                        p.name,
                        p.generation,
                        last.unwrap_or_else(|| "nothing".into())
                    ));
                }
            }
        }
        out.join("; ")
    }

    fn all_see_all_up(&self) -> bool {
        self.procs.values().all(|obs| {
            self.procs.values().filter(|p| p.slot != obs.slot).all(|p| {
                // The last up/down/left event about p's name must be its MemberUp of the
                // current generation (a refuted suspicion in between does not matter).
                self.events
                    .iter()
                    .rev()
                    .find(|e| {
                        e.observer == obs.slot
                            && e.name == p.name
                            && matches!(e.kind.as_str(), "MemberUp" | "MemberDown" | "MemberLeft")
                    })
                    .is_some_and(|e| e.kind == "MemberUp" && e.generation == p.generation)
            })
        })
    }

    /// Ends node `i` with SIGKILL or SIGTERM; returns when the signal was sent (unix ms)
    /// and the generation it had.
    fn end(&mut self, i: usize, graceful: bool) -> Result<(f64, String, u64), CliError> {
        let mut p = self
            .procs
            .remove(&i)
            .ok_or_else(|| CliError::failed(format!("node {i} is not running")))?;
        let at = unix_ms_now();
        if graceful {
            let pid = nix::unistd::Pid::from_raw(p.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        } else {
            let _ = p.child.kill();
        }
        self.ended.insert((p.name.clone(), p.generation), at);
        if !graceful {
            let _ = p.child.wait();
        } else {
            // Reaped after it exits; it needs a moment to tell everyone.
            let deadline = Instant::now() + STEP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                self.pump(Duration::from_millis(10));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        Ok((at, p.name, p.generation))
    }

    /// MemberDown events about processes that were running when the event was printed.
    fn false_positives(&self) -> usize {
        self.events
            .iter()
            .filter(|e| e.kind == "MemberDown")
            .filter(|e| match self.ended.get(&(e.name.clone(), e.generation)) {
                Some(ended_at) => e.at_ms + 1.0 < *ended_at,
                None => true,
            })
            .count()
    }

    /// MemberDown events (instead of MemberLeft) about processes that left gracefully.
    fn leaves_seen_as_down(&self, left: &BTreeSet<(String, u64)>) -> usize {
        self.events
            .iter()
            .filter(|e| e.kind == "MemberDown" && left.contains(&(e.name.clone(), e.generation)))
            .count()
    }

    fn stop_all(&mut self) {
        for (_, mut p) in std::mem::take(&mut self.procs) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop_all();
        let _ = std::fs::remove_dir_all(&self.tls_dir);
    }
}

/// The fewest samples a p99 is reported from: with fewer, the 99th percentile is the maximum
/// and is reported as `max` of `n` only.
pub(crate) const MIN_SAMPLES_FOR_P99: usize = 100;

/// p50, p99 and max of `xs` (nearest rank), rounded to 0.1; p99 is `null` with fewer than
/// [`MIN_SAMPLES_FOR_P99`] samples (read `max` of `n` instead).
pub(crate) fn summary(xs: &[f64]) -> Value {
    if xs.is_empty() {
        return serde_json::json!({"p50": null, "p99": null, "max": null, "n": 0});
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let idx = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        (v[idx] * 10.0).round() / 10.0
    };
    let p99 = (v.len() >= MIN_SAMPLES_FOR_P99).then(|| rank(0.99));
    serde_json::json!({"p50": rank(0.5), "p99": p99, "max": rank(1.0), "n": v.len()})
}

fn busy_loop() -> Result<(), CliError> {
    crate::cli::process::honour_exit_with_parent();
    let end = Instant::now() + Duration::from_secs(3600);
    let mut x: u64 = 1;
    while Instant::now() < end {
        for _ in 0..1_000_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
        }
        std::hint::black_box(x);
    }
    Ok(())
}

struct Load(Vec<Child>);

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_load(exe: &Path, n: usize) -> Result<Load, CliError> {
    let mut load = Load(Vec::new());
    for _ in 0..n {
        let child = Command::new(exe)
            .args(["bench", "detect", "--busy-loop"])
            .env(EXIT_WITH_PARENT_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| CliError::failed(format!("cannot start a busy loop: {e}")))?;
        load.0.push(child);
    }
    Ok(load)
}

/// Runs `strand bench detect`.
pub fn run(args: DetectBenchArgs) -> Result<(), CliError> {
    if args.busy_loop {
        return busy_loop();
    }
    if args.nodes < 3 {
        return Err(CliError::usage("--nodes must be at least 3"));
    }
    let exe =
        std::env::current_exe().map_err(|e| CliError::failed(format!("cannot find this executable: {e}")))?;
    let tls_dir = std::env::temp_dir().join(format!("strand-bench-detect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tls_dir);
    // Create the CA and every certificate up front, so the nodes start at once.
    let settings = Settings::load(&SettingsFlags {
        tls_dir: Some(tls_dir.clone()),
        store: Vec::new(),
    })
    .map_err(CliError::failed)?;
    for i in 0..args.nodes {
        settings::tls_material_for(&settings, &Bench::node_name(i), crate::authz::Role::Spectator)
            .map_err(CliError::failed)?;
    }
    let mut addrs = Vec::new();
    for _ in 0..args.nodes {
        addrs.push(SocketAddr::from(([127, 0, 0, 1], free_port()?)));
    }
    let mut extra = Vec::new();
    if let Some(ms) = args.probe_period_ms {
        extra.extend(["--probe-period-ms".to_string(), ms.to_string()]);
    }
    if let Some(ms) = args.suspect_ms {
        extra.extend(["--suspect-ms".to_string(), ms.to_string()]);
    }
    let (tx, rx) = mpsc::channel();
    let mut bench = Bench {
        exe: exe.clone(),
        tls_dir,
        addrs,
        extra,
        tx,
        rx,
        next_slot: 0,
        procs: BTreeMap::new(),
        slots: BTreeMap::new(),
        events: Vec::new(),
        ended: BTreeMap::new(),
    };
    let _load = if args.load {
        Some(start_load(&exe, 2)?)
    } else {
        None
    };
    for i in 0..args.nodes {
        bench.spawn(i)?;
    }
    if !bench.wait(Duration::from_secs(30), Bench::all_see_all_up) {
        return Err(CliError::failed(
            "the nodes did not all see each other within 30 s",
        ));
    }
    bench.wait(Duration::from_secs(1), |_| false);

    let mut first = Vec::new();
    let mut all = Vec::new();
    let mut missed = 0usize;
    let progress = crate::cli::progress::Progress::start("detection trials");
    for t in 0..args.trials {
        progress.set(format!("detection trial {}/{}", t + 1, args.trials));
        let victim = (t + 1) % args.nodes;
        let (killed_at, name, g) = bench.end(victim, false)?;
        let survivors = bench.survivors_except(victim);
        let ok = bench.wait(STEP_TIMEOUT, |b| {
            survivors
                .iter()
                .all(|&s| b.seen(s, "MemberDown", &name, g).is_some())
        });
        let times: Vec<f64> = survivors
            .iter()
            .filter_map(|&s| bench.seen(s, "MemberDown", &name, g))
            .map(|at| (at - killed_at).max(0.0))
            .collect();
        if !ok {
            missed += 1;
        }
        if let Some(f) = times.iter().copied().reduce(f64::min) {
            first.push(f);
        }
        if ok {
            all.push(times.iter().copied().fold(0.0, f64::max));
        }
        bench.restart(victim, &name)?;
        bench.wait(Duration::from_millis(300), |_| false);
    }

    progress.finish();
    let leaves = args.leaves.unwrap_or((args.trials / 4).max(3));
    let mut leave = Vec::new();
    let mut left = BTreeSet::new();
    for t in 0..leaves {
        let victim = (t + 1) % args.nodes;
        let survivors = bench.survivors_except(victim);
        let (left_at, name, g) = bench.end(victim, true)?;
        left.insert((name.clone(), g));
        let ok = bench.wait(STEP_TIMEOUT, |b| {
            survivors
                .iter()
                .all(|&s| b.seen(s, "MemberLeft", &name, g).is_some())
        });
        if ok {
            let worst = survivors
                .iter()
                .filter_map(|&s| bench.seen(s, "MemberLeft", &name, g))
                .map(|at| (at - left_at).max(0.0))
                .fold(0.0, f64::max);
            leave.push(worst);
        } else {
            missed += 1;
        }
        bench.restart(victim, &name)?;
    }
    bench.wait(Duration::from_millis(500), |_| false);
    let false_positives = bench.false_positives();
    let leaves_as_down = bench.leaves_seen_as_down(&left);
    let isolated = bench.events.iter().filter(|e| e.kind == "Isolated").count();
    let suspicions = bench
        .events
        .iter()
        .filter(|e| e.kind == "MemberSuspected")
        .count();
    let result = serde_json::json!({
        "nodes": args.nodes,
        "trials": args.trials,
        "leaves": leaves,
        "load": args.load,
        "first_detect_ms": summary(&first),
        "all_detect_ms": summary(&all),
        "leave_ms": summary(&leave),
        "false_positives": false_positives,
        "missed": missed,
        "leaves_seen_as_down": leaves_as_down,
        "isolated_events": isolated,
        "rejoins": bench.events.iter().filter(|e| e.kind == "Rejoined").count(),
        "suspicions": suspicions,
        "resolution_ms": RESOLUTION_MS,
        "config": {
            "probe_period_ms": args.probe_period_ms.unwrap_or(100),
            "suspect_ms": args.suspect_ms.unwrap_or(200),
        },
    });
    bench.stop_all();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).map_err(CliError::failed)?
        );
    } else {
        let show = |k: &str| {
            let v = &result[k];
            if v["p99"].is_null() {
                format!(
                    "p50 {} ms, max of {} {} ms (too few for a p99)",
                    v["p50"], v["n"], v["max"]
                )
            } else {
                format!("p50 {} ms, p99 {} ms, max {} ms", v["p50"], v["p99"], v["max"])
            }
        };
        println!("nodes {}, trials {}, load {}", args.nodes, args.trials, args.load);
        println!("first survivor sees MemberDown: {}", show("first_detect_ms"));
        println!("every survivor sees MemberDown: {}", show("all_detect_ms"));
        println!("every survivor sees MemberLeft: {}", show("leave_ms"));
        println!("false positives: {false_positives}, missed: {missed}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_p99_is_reported_from_fewer_than_100_samples() {
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = summary(&twenty);
        assert!(s["p99"].is_null(), "{s}");
        assert_eq!((s["max"].as_f64(), s["n"].as_u64()), (Some(20.0), Some(20)));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summary(&hundred);
        assert_eq!((s["p50"].as_f64(), s["p99"].as_f64()), (Some(50.0), Some(99.0)));
    }

    #[test]
    fn the_clock_has_whole_milliseconds_like_the_nodes_timestamps() {
        assert_eq!(unix_ms_now().fract(), 0.0);
    }
}
