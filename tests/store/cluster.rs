//! Store replicas as real `strand store run` processes on loopback, for the tests.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strand::propertystore::protocol::ReplicaStatus;
use strand::propertystore::{replica_name, PropertyStore, StoreClientConfig};
use strand::settings::{self, Settings, SettingsFlags};
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::Transport;

/// A set of replica processes, killed when dropped.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    snapshot_every: u64,
    /// Extra environment of every replica process.
    env: Vec<(String, String)>,
    /// Extra arguments of every replica process.
    args: Vec<String>,
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    pub fn settings(&self) -> Settings {
        Settings::load_with_env(
            &SettingsFlags {
                tls_dir: Some(self.tls_dir()),
                store: vec![],
            },
            |_| None,
        )
        .unwrap()
    }

    /// Starts `n` replicas that form one store.
    pub fn start(n: usize, snapshot_every: u64) -> Cluster {
        Self::start_with(n, snapshot_every, &[], &[])
    }

    /// [`Cluster::start`], every replica process with `env` in its environment and `args`
    /// after the others.
    pub fn start_with(n: usize, snapshot_every: u64, env: &[(&str, &str)], args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            dir,
            addrs: (0..n)
                .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
                .collect(),
            children: (0..n).map(|_| None).collect(),
            snapshot_every,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        let settings = c.settings();
        for id in 1..=n as u64 {
            settings::tls_material_for(&settings, &replica_name(id), strand::authz::Role::Store).unwrap();
        }
        settings::tls_material_for(&settings, "test-client", strand::authz::Role::Admin).unwrap();
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    fn peers(&self) -> String {
        self.addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("{}@{a}", i + 1))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts (or restarts) replica `i` (0-based; its id is `i + 1`).
    pub fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("replica-{}.log", i + 1)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(["store", "run", "--id", &(i + 1).to_string()])
            .args(["--listen", &self.addrs[i].to_string(), "--peers", &self.peers()])
            .args(["--snapshot-every", &self.snapshot_every.to_string()])
            .args(&self.args)
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("data-{}", i + 1)))
            .arg("--tls-dir")
            .arg(self.tls_dir())
            .env("STRAND_EXIT_WITH_PARENT", "1")
            .env("STRAND_LOG", "warn,strand=info,openraft=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    /// Starts one more replica with `--join` (not a member until `add-replica`); returns
    /// its index.
    pub fn spawn_joiner(&mut self) -> usize {
        let i = self.addrs.len();
        let id = (i + 1) as u64;
        settings::tls_material_for(&self.settings(), &replica_name(id), strand::authz::Role::Store).unwrap();
        self.addrs.push(SocketAddr::from(([127, 0, 0, 1], free_port())));
        let log = std::fs::File::create(self.dir.path().join(format!("replica-{id}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(["store", "run", "--id", &id.to_string(), "--join"])
            .args(["--listen", &self.addrs[i].to_string()])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("data-{id}")))
            .arg("--tls-dir")
            .arg(self.tls_dir())
            .env("STRAND_EXIT_WITH_PARENT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(Some(child));
        i
    }

    /// What replica `i` (0-based) has logged so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("replica-{}.log", i + 1))).unwrap_or_default()
    }

    /// SIGKILLs replica `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// A client endpoint with the test client's certificate (for raw requests).
    pub fn client_transport(&self) -> Arc<dyn Transport> {
        let tls =
            settings::tls_material_for(&self.settings(), "test-client", strand::authz::Role::Admin).unwrap();
        let mut qc = QuicConfig::new("127.0.0.1:0".parse().unwrap(), tls);
        qc.handshake_timeout = Duration::from_millis(800);
        QuicTransport::client(qc).unwrap()
    }

    /// A client of every replica.
    pub fn client(&self, cache: u64) -> PropertyStore {
        self.client_with(cache, Duration::from_secs(2))
    }

    /// A client of every replica whose requests wait up to `request_timeout` for an answer.
    pub fn client_with(&self, cache: u64, request_timeout: Duration) -> PropertyStore {
        let transport = self.client_transport();
        let mut config = StoreClientConfig::new(self.addrs.clone());
        config.cache_capacity = cache;
        config.request_timeout = request_timeout;
        config.deadline = request_timeout + Duration::from_secs(18);
        PropertyStore::new(transport, config)
    }

    /// Each live replica's status.
    pub async fn statuses(&self, client: &PropertyStore) -> Vec<Option<ReplicaStatus>> {
        client
            .status_all()
            .await
            .into_iter()
            .map(|(_, r)| r.ok())
            .collect()
    }

    /// Waits until a live replica other than `not` leads, and returns its index.
    pub async fn wait_leader(&self, client: &PropertyStore, not: Option<usize>) -> usize {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for (i, s) in self.statuses(client).await.into_iter().enumerate() {
                if Some(i) != not && self.children[i].is_some() {
                    if let Some(s) = s {
                        if s.role == "leader" {
                            return i;
                        }
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until replica `i` has applied at least `revision`.
    pub async fn wait_revision(&self, client: &PropertyStore, i: usize, revision: u64) -> ReplicaStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Some(s)) = self.statuses(client).await.into_iter().nth(i) {
                if s.revision >= revision {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "replica {} did not reach revision {revision}",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
