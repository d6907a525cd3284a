//! Real `strand node run` processes on loopback, over QUIC with a development CA in a temp
//! directory: SIGKILL, SIGTERM and restart, seen through the nodes' JSON event lines.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous: the machine may be busy.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn strand() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strand"))
}

pub struct NodeProc {
    pub name: String,
    pub child: Child,
    pub lines: Arc<Mutex<Vec<Value>>>,
}

impl NodeProc {
    pub fn start(tls_dir: &Path, name: &str, addr: SocketAddr, seeds: &[SocketAddr]) -> NodeProc {
        let mut cmd = strand();
        cmd.args(["node", "run", "--name", name, "--listen", &addr.to_string()])
            .arg("--tls-dir")
            .arg(tls_dir)
            .args(["--role", "participant", "--cluster", "MYCLUSTER"]);
        for s in seeds {
            cmd.args(["--seed", &s.to_string()]);
        }
        let mut child = cmd
            .env("STRAND_EXIT_WITH_PARENT", "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line: {line:?}: {e}"));
                sink.lock().unwrap().push(v);
            }
        });
        NodeProc {
            name: name.to_string(),
            child,
            lines,
        }
    }

    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().unwrap().clone()
    }

    /// The node's current generation: its `Started` one, or the latest `Rejoined` one (a
    /// node declared down under load comes back with a higher generation; waiting for the
    /// old one would time out and hide what happened).
    pub fn generation(&self) -> Option<u64> {
        self.lines()
            .iter()
            .rev()
            .find(|v| v["event"] == "Started" || v["event"] == "Rejoined")
            .and_then(|v| v["generation"].as_u64())
    }

    /// The latest up/down/left event this node printed about `name`: (kind, generation).
    pub fn last_about(&self, name: &str) -> Option<(String, u64)> {
        self.lines()
            .iter()
            .rev()
            .find(|v| {
                v["name"] == name
                    && matches!(
                        v["event"].as_str(),
                        Some("MemberUp" | "MemberDown" | "MemberLeft")
                    )
            })
            .map(|v| {
                (
                    v["event"].as_str().unwrap().to_string(),
                    v["generation"].as_u64().unwrap_or(0),
                )
            })
    }

    pub fn count(&self, kind: &str, name: &str) -> usize {
        self.lines()
            .iter()
            .filter(|v| v["event"] == kind && v["name"] == name)
            .count()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_addr() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}

pub fn wait_for(what: &str, timeout: Duration, pred: impl FnMut() -> bool) {
    assert!(eventually(timeout, pred), "timed out waiting for {what}");
}

/// Whether `pred` holds within `timeout`.
pub fn eventually(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !pred() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub addrs: Vec<SocketAddr>,
    pub nodes: Vec<Option<NodeProc>>,
}

impl Cluster {
    /// `n` nodes, each seeded with all the others, all seeing each other up.
    pub fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Create the CA once before the nodes race for it.
        let out = strand()
            .args(["tls", "ca", "generate", "--dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let addrs: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let mut c = Cluster {
            dir,
            addrs,
            nodes: Vec::new(),
        };
        for i in 0..n {
            let node = c.spawn(i);
            c.nodes.push(Some(node));
        }
        c.wait_all_up();
        c
    }

    pub fn spawn(&self, i: usize) -> NodeProc {
        let seeds: Vec<SocketAddr> = self
            .addrs
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| *a)
            .collect();
        NodeProc::start(self.dir.path(), &format!("p{i}"), self.addrs[i], &seeds)
    }

    pub fn node(&self, i: usize) -> &NodeProc {
        self.nodes[i].as_ref().unwrap()
    }

    pub fn running(&self) -> impl Iterator<Item = &NodeProc> {
        self.nodes.iter().flatten()
    }

    /// Every running node's event lines, for failure messages.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for n in self.running() {
            for v in n.lines() {
                out.push_str(&format!(
                    "\n  {}: {} {} #{} at {}",
                    n.name, v["event"], v["name"], v["generation"], v["at_unix_ms"]
                ));
            }
        }
        out
    }

    pub fn wait_all_up(&self) {
        for obs in self.running() {
            for other in self.running().filter(|o| o.name != obs.name) {
                let ok = eventually(DEADLINE, || {
                    let g = other.generation();
                    g.is_some() && obs.last_about(&other.name) == Some(("MemberUp".into(), g.unwrap()))
                });
                assert!(ok, "{} does not see {} up:{}", obs.name, other.name, self.dump());
            }
        }
    }
}

#[test]
fn five_processes_see_a_kill_a_restart_and_a_leave() {
    let mut c = Cluster::start(5);

    // SIGKILL p4: every survivor prints MemberDown for it.
    let mut victim = c.nodes[4].take().unwrap();
    let g4 = victim.generation().unwrap();
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    for obs in c.running() {
        let ok = eventually(DEADLINE, || {
            obs.last_about("p4") == Some(("MemberDown".into(), g4))
        });
        assert!(ok, "{} does not see p4 down:{}", obs.name, c.dump());
    }

    // Restart it at the same address: up again, with a higher generation.
    c.nodes[4] = Some(c.spawn(4));
    c.wait_all_up();
    let g4b = c.node(4).generation().unwrap();
    assert!(g4b > g4, "{g4b} <= {g4}");

    // SIGTERM p3: it leaves gracefully, everyone prints MemberLeft (not MemberDown), exit 0.
    let mut leaver = c.nodes[3].take().unwrap();
    let g3 = leaver.generation().unwrap();
    let pid = nix::unistd::Pid::from_raw(leaver.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    for obs in c.running() {
        let ok = eventually(DEADLINE, || {
            obs.last_about("p3") == Some(("MemberLeft".into(), g3))
        });
        assert!(ok, "{} does not see p3 leave:{}", obs.name, c.dump());
        assert_eq!(
            obs.count("MemberDown", "p3"),
            0,
            "{} saw p3 down:{}",
            obs.name,
            c.dump()
        );
    }
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = leaver.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "p3 did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "p3 exited with {status}");
    assert!(leaver.lines().iter().any(|v| v["event"] == "Stopped"));

    // Nobody alive was ever declared down.
    for obs in c.running() {
        for other in ["p0", "p1", "p2"] {
            assert_eq!(obs.count("MemberDown", other), 0, "{} saw {other} down", obs.name);
        }
    }
}
