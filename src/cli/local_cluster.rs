//! A cluster of real strand processes on loopback, for `strand demo` and
//! `strand bench failover`: store replicas, controllers and ready-made participants, each a
//! child process of this one (they die with it), whose stdout lines are kept with the time
//! each arrived.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::process::EXIT_WITH_PARENT_ENV;
use super::CliError;
use crate::propertystore::PropertyStore;
use crate::settings::SettingsFlags;

/// One line a child printed, and when it arrived.
#[derive(Debug, Clone)]
pub struct Line {
    /// When this process read it.
    pub at: Instant,
    /// The line.
    pub text: String,
}

/// A child process and what it printed.
pub struct Proc {
    child: Child,
    /// Its stdout lines so far.
    pub lines: Arc<Mutex<Vec<Line>>>,
    /// Its process id.
    pub pid: u32,
}

impl Proc {
    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its stdout lines so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), sig);
    }

    /// SIGKILLs it and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERMs it and waits up to `within` for it to exit (then SIGKILLs it).
    pub fn stop(&mut self, within: Duration) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if !self.running() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free UDP port on loopback (the socket is closed again).
pub fn free_port() -> Result<u16, CliError> {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| CliError::failed(format!("no free port: {e}")))
}

/// The processes of one local cluster.
pub struct LocalCluster {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    exe: PathBuf,
    /// The store replicas' addresses.
    pub store_addrs: Vec<SocketAddr>,
    /// Store replicas by id.
    pub stores: BTreeMap<u64, Proc>,
    /// Controllers by name.
    pub controllers: BTreeMap<String, Proc>,
    /// Participants by instance name.
    pub participants: BTreeMap<String, Proc>,
    /// The cluster every controller and participant belongs to.
    pub cluster: String,
    /// Lines of participants that were killed or stopped.
    past: Vec<Line>,
    /// When each participant's processes ended (wall clock µs), for the two-masters audit.
    pub ends: BTreeMap<String, Vec<u64>>,
    /// Whether processes start with `--net-faults <dir>/<name>.faults`.
    net_faults: bool,
}

impl LocalCluster {
    /// A cluster whose files live in `dir` (created), or in a temp dir removed at the end.
    pub fn new(dir: Option<&Path>, cluster: &str) -> Result<LocalCluster, CliError> {
        let (dir, temp) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| CliError::failed(format!("cannot create {}: {e}", d.display())))?;
                (d.to_path_buf(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("strand-local-")
                    .tempdir()
                    .map_err(|e| CliError::failed(format!("cannot create a temp dir: {e}")))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let exe = std::env::current_exe()
            .map_err(|e| CliError::failed(format!("cannot find strand itself: {e}")))?;
        Ok(LocalCluster {
            dir,
            _temp: temp,
            exe,
            store_addrs: Vec::new(),
            stores: BTreeMap::new(),
            controllers: BTreeMap::new(),
            participants: BTreeMap::new(),
            cluster: cluster.to_string(),
            past: Vec::new(),
            ends: BTreeMap::new(),
            net_faults: false,
        })
    }

    /// Starts every process from now on with network fault injection, its rules in
    /// `<dir>/<name>.faults` ([`LocalCluster::set_net_faults`]; none until written).
    pub fn with_net_faults(mut self) -> Self {
        self.net_faults = true;
        self
    }

    fn faults_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.faults"))
    }

    /// Replaces the network fault rules of process `name` (`store-<id>`, a controller's or a
    /// participant's name; see `transport::faults`); an empty text heals it. The process
    /// picks them up within 50 ms (the file is replaced whole, never read half-written).
    pub fn set_net_faults(&self, name: &str, rules: &str) -> Result<(), CliError> {
        let path = self.faults_file(name);
        let tmp = path.with_extension("faults.tmp");
        std::fs::write(&tmp, rules)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| CliError::failed(format!("cannot write {}: {e}", path.display())))
    }

    /// Runs `exe` as strand (tests run the binary cargo built; by default, this process's
    /// own executable).
    pub fn with_exe(mut self, exe: impl Into<PathBuf>) -> Self {
        self.exe = exe.into();
        self
    }

    /// Where its files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The TLS directory every process uses.
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    /// `--store` for the processes: the replicas' addresses, comma-separated.
    pub fn store_flag(&self) -> String {
        self.store_addrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Settings flags naming this cluster's TLS directory and store.
    pub fn settings(&self) -> SettingsFlags {
        SettingsFlags {
            tls_dir: Some(self.tls_dir()),
            store: self.store_addrs.iter().map(ToString::to_string).collect(),
        }
    }

    /// Starts a store of `replicas` replicas, waits up to `limit` for it to answer, and adds
    /// this cluster with `instances`; returns the admin API over a client of it.
    pub async fn start_store_and_cluster(
        &mut self,
        replicas: usize,
        instances: &[String],
        limit: Duration,
    ) -> Result<crate::admin::Admin, CliError> {
        self.start_store(replicas)?;
        let admin = crate::admin::Admin::new(self.client()?);
        let deadline = Instant::now() + limit;
        while admin.list_clusters().await.is_err() {
            if Instant::now() > deadline {
                return Err(CliError::failed("the store did not start"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        admin.add_cluster(&self.cluster).await.map_err(CliError::failed)?;
        for i in instances {
            admin
                .add_instance(&self.cluster, i)
                .await
                .map_err(CliError::failed)?;
        }
        Ok(admin)
    }

    /// A store client (needs a tokio runtime).
    pub fn client(&self) -> Result<PropertyStore, CliError> {
        super::store::connect_with(&self.settings(), 0)
    }

    fn spawn(&self, args: &[String], log: &str) -> Result<Proc, CliError> {
        let stderr = std::fs::File::create(self.dir.join(format!("{log}.log")))
            .map_err(|e| CliError::failed(format!("cannot create a log file: {e}")))?;
        let mut command = Command::new(&self.exe);
        if self.net_faults {
            command.arg("--net-faults").arg(self.faults_file(log));
        }
        let mut child = command
            .args(args)
            .env(EXIT_WITH_PARENT_ENV, "1")
            .env("STRAND_TLS_DIR", self.tls_dir())
            .env_remove("STRAND_STORE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| CliError::failed(format!("cannot start {}: {e}", self.exe.display())))?;
        let pid = child.id();
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(Line {
                        at: Instant::now(),
                        text: line,
                    });
                }
            });
        }
        Ok(Proc { child, lines, pid })
    }

    /// Starts `n` store replicas (ids 1..=n) and waits until they elect a leader.
    pub fn start_store(&mut self, n: usize) -> Result<(), CliError> {
        self.store_addrs = (0..n)
            .map(|_| free_port().map(|p| SocketAddr::from(([127, 0, 0, 1], p))))
            .collect::<Result<_, _>>()?;
        for id in 1..=n as u64 {
            self.spawn_store(id)?;
        }
        Ok(())
    }

    /// Starts (or restarts) replica `id`.
    pub fn spawn_store(&mut self, id: u64) -> Result<(), CliError> {
        let addr = self.store_addrs[(id - 1) as usize];
        let mut args = vec![
            "store".to_string(),
            "run".into(),
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            addr.to_string(),
            "--data-dir".into(),
            self.dir.join(format!("store-{id}")).display().to_string(),
        ];
        if self.store_addrs.len() > 1 {
            let peers = self
                .store_addrs
                .iter()
                .enumerate()
                .map(|(i, a)| format!("{}@{a}", i + 1))
                .collect::<Vec<_>>()
                .join(",");
            args.push("--peers".into());
            args.push(peers);
        }
        let p = self.spawn(&args, &format!("store-{id}"))?;
        self.stores.insert(id, p);
        Ok(())
    }

    /// Starts a controller named `name`.
    pub fn start_controller(&mut self, name: &str) -> Result<(), CliError> {
        let args = vec![
            "controller".to_string(),
            "run".into(),
            "--cluster".into(),
            self.cluster.clone(),
            "--name".into(),
            name.into(),
            "--store".into(),
            self.store_flag(),
        ];
        let p = self.spawn(&args, name)?;
        self.controllers.insert(name.to_string(), p);
        Ok(())
    }

    /// Starts the named controllers, then a ready-made participant for each instance.
    pub fn start_controllers_and_participants(
        &mut self,
        controllers: &[&str],
        instances: &[String],
    ) -> Result<(), CliError> {
        for name in controllers {
            self.start_controller(name)?;
        }
        for i in instances {
            self.start_participant(i, &[])?;
        }
        Ok(())
    }

    /// Starts participant `instance` with extra arguments.
    pub fn start_participant(&mut self, instance: &str, extra: &[String]) -> Result<(), CliError> {
        let mut args = vec![
            "participant".to_string(),
            "run".into(),
            "--cluster".into(),
            self.cluster.clone(),
            "--instance".into(),
            instance.into(),
            "--store".into(),
            self.store_flag(),
        ];
        args.extend(extra.iter().cloned());
        let p = self.spawn(&args, instance)?;
        self.participants.insert(instance.to_string(), p);
        Ok(())
    }

    /// The controller that last said it leads (from their role lines), and when it said so.
    pub fn leading_controller(&self) -> Option<(String, u64, Instant)> {
        let mut best: Option<(String, u64, Instant)> = None;
        for (name, p) in &self.controllers {
            let mut role: Option<(u64, Instant)> = None;
            for l in p.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l.text) {
                    match v.get("role").and_then(|r| r.as_str()) {
                        Some("leader") => role = v.get("epoch").and_then(|e| e.as_u64()).map(|e| (e, l.at)),
                        Some("standby") => role = None,
                        _ => {}
                    }
                }
            }
            if let Some((epoch, at)) = role {
                if best.as_ref().is_none_or(|b| epoch > b.1) {
                    best = Some((name.clone(), epoch, at));
                }
            }
        }
        best
    }

    /// SIGKILLs participant `instance` (SIGTERM when `graceful`); returns when it died.
    pub fn end_participant(&mut self, instance: &str, graceful: bool) -> Option<Instant> {
        let mut p = self.participants.remove(instance)?;
        if graceful {
            p.stop(Duration::from_secs(5));
        } else {
            p.kill();
        }
        let at = Instant::now();
        self.ends
            .entry(instance.to_string())
            .or_default()
            .push(crate::participant::now_us());
        self.past.extend(p.lines());
        Some(at)
    }

    /// Every participant's stdout so far, killed ones included, as one text (transition
    /// JSON lines).
    pub fn transition_log(&self) -> String {
        let mut out = String::new();
        for l in &self.past {
            out.push_str(&l.text);
            out.push('\n');
        }
        for p in self.participants.values() {
            for l in p.lines() {
                out.push_str(&l.text);
                out.push('\n');
            }
        }
        out
    }
}

/// Polls `pred` every millisecond until it holds (returning when) or `limit` has passed.
pub async fn wait_for(
    limit: std::time::Duration,
    what: &str,
    mut pred: impl FnMut() -> bool,
) -> Result<std::time::Instant, CliError> {
    let deadline = std::time::Instant::now() + limit;
    let _progress = super::progress::Progress::start(format!("waiting for {what}"));
    loop {
        if pred() {
            return Ok(std::time::Instant::now());
        }
        if std::time::Instant::now() > deadline {
            return Err(CliError::failed(format!("waited {limit:?} for {what}")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}
