//! Network fault injection for real processes (`strand --net-faults FILE …`), off unless
//! that flag is given: `strand bench chaos` uses it to cut and lose traffic between the
//! processes of a loopback cluster, which the kernel cannot do per process.
//!
//! ```text
//!   FILE (rules, rewritten by the bench) ──poll 50 ms──► NetFaults (current Rules)
//!   quinn endpoint ──► FaultySocket ──► the UDP socket
//!                      try_send: drop by destination (or by chance)
//!                      poll_recv: drop by source
//! ```
//!
//! Every QUIC endpoint of a process with faults installed sends and receives through a
//! [`FaultySocket`], so gossip, messages, transitions and store traffic are all subject to
//! the rules. Dropping a datagram is what a lossy or cut link does: QUIC retransmits, and
//! gives up by its idle timeout.
//!
//! Rules, one per line (`#` comments; an empty file means no faults):
//! - `out all` / `in all`: drop every outgoing / incoming datagram;
//! - `out ADDR` / `in ADDR`: drop datagrams to / from that address;
//! - `loss P`: drop each outgoing datagram with probability P (0 ≤ P ≤ 1).
//!
//! A file that does not parse leaves the rules as they were and logs why.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The rules in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    /// Drop every outgoing datagram.
    pub out_all: bool,
    /// Drop every incoming datagram.
    pub in_all: bool,
    /// Drop datagrams to these addresses.
    pub out: HashSet<SocketAddr>,
    /// Drop datagrams from these addresses.
    pub from: HashSet<SocketAddr>,
    /// Probability of dropping any outgoing datagram.
    pub loss: f64,
}

impl Rules {
    /// Parses a rules file; the error names the line.
    pub fn parse(text: &str) -> Result<Rules, String> {
        let mut r = Rules::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {raw:?}", n + 1);
            let mut words = line.split_whitespace();
            let (verb, arg) = (words.next().unwrap_or(""), words.next());
            if words.next().is_some() {
                return Err(bad("one argument per rule"));
            }
            let arg = arg.ok_or_else(|| bad("missing argument"))?;
            match verb {
                "out" | "in" => {
                    let all = arg == "all";
                    let addr = if all {
                        None
                    } else {
                        Some(
                            arg.parse::<SocketAddr>()
                                .map_err(|_| bad("not `all` or IP:PORT"))?,
                        )
                    };
                    match (verb == "out", addr) {
                        (true, None) => r.out_all = true,
                        (false, None) => r.in_all = true,
                        (true, Some(a)) => {
                            r.out.insert(a);
                        }
                        (false, Some(a)) => {
                            r.from.insert(a);
                        }
                    }
                }
                "loss" => {
                    let p: f64 = arg.parse().map_err(|_| bad("not a probability"))?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(bad("a probability is between 0 and 1"));
                    }
                    r.loss = p;
                }
                _ => return Err(bad("unknown rule (out, in, loss)")),
            }
        }
        Ok(r)
    }

    /// Whether a datagram to `to` is dropped; `roll` is uniform in [0, 1).
    pub fn drops_out(&self, to: SocketAddr, roll: f64) -> bool {
        self.out_all || self.out.contains(&to) || roll < self.loss
    }

    /// Whether a datagram from `from` is dropped.
    pub fn drops_in(&self, from: SocketAddr) -> bool {
        self.in_all || self.from.contains(&from)
    }
}

/// The process's fault rules, reloaded from their file.
#[derive(Debug, Default)]
pub struct NetFaults {
    rules: RwLock<Rules>,
}

impl NetFaults {
    /// The rules in force now.
    pub fn rules(&self) -> Rules {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the rules.
    pub fn set(&self, rules: Rules) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = rules;
    }

    fn drops_out(&self, to: SocketAddr) -> bool {
        let r = self.rules.read().unwrap_or_else(|p| p.into_inner());
        let roll = if r.loss > 0.0 { rand::random::<f64>() } else { 1.0 };
        r.drops_out(to, roll)
    }

    fn drops_in(&self, from: SocketAddr) -> bool {
        self.rules
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .drops_in(from)
    }
}

static INSTALLED: OnceLock<Arc<NetFaults>> = OnceLock::new();

/// The faults installed in this process, if any: every QUIC endpoint bound afterwards goes
/// through a [`FaultySocket`] over them.
pub fn installed() -> Option<Arc<NetFaults>> {
    INSTALLED.get().cloned()
}

/// Installs faults read from `path` (missing = no faults), re-read every 50 ms by a thread
/// for the life of the process. Returns an error if faults were installed already or the
/// file exists and does not parse.
pub fn install_from_file(path: PathBuf) -> Result<Arc<NetFaults>, String> {
    let faults = Arc::new(NetFaults::default());
    let read = |path: &PathBuf| match std::fs::read_to_string(path) {
        Ok(text) => Some(Rules::parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(Ok(Rules::default())),
        Err(_) => None,
    };
    if let Some(first) = read(&path) {
        faults.set(first.map_err(|e| format!("{}: {e}", path.display()))?);
    }
    INSTALLED
        .set(faults.clone())
        .map_err(|_| "network faults are installed already".to_string())?;
    let watched = faults.clone();
    std::thread::Builder::new()
        .name("net-faults".into())
        .spawn(move || {
            let mut last = None;
            loop {
                std::thread::sleep(Duration::from_millis(50));
                match read(&path) {
                    Some(Ok(rules)) if last.as_ref() != Some(&rules) => {
                        tracing::warn!(?rules, "network faults now in force");
                        watched.set(rules.clone());
                        last = Some(rules);
                    }
                    Some(Err(e)) => tracing::warn!("network faults file: {e}; rules unchanged"),
                    _ => {}
                }
            }
        })
        .map_err(|e| format!("cannot start the faults thread: {e}"))?;
    Ok(faults)
}

/// A UDP socket that applies [`NetFaults`] to what passes through it.
pub struct FaultySocket {
    inner: Arc<dyn AsyncUdpSocket>,
    faults: Arc<NetFaults>,
}

impl FaultySocket {
    /// `inner` under `faults`.
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, faults: Arc<NetFaults>) -> Self {
        FaultySocket { inner, faults }
    }
}

impl fmt::Debug for FaultySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultySocket")
            .field("inner", &self.inner)
            .finish()
    }
}

impl AsyncUdpSocket for FaultySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if self.faults.drops_out(transmit.destination) {
            return Ok(()); // lost on the way
        }
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            let n = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            let kept = keep(bufs, meta, n, |from| !self.faults.drops_in(from));
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
            // All dropped: read again (the socket registers the waker when it has nothing).
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// Moves the first `n` received datagrams whose source `wanted` accepts to the front of
/// `bufs`/`meta`, in order; returns how many.
fn keep(
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [RecvMeta],
    n: usize,
    wanted: impl Fn(SocketAddr) -> bool,
) -> usize {
    let mut kept = 0;
    for i in 0..n {
        if !wanted(meta[i].addr) {
            continue;
        }
        if kept != i {
            let len = meta[i].len;
            let (front, back) = bufs.split_at_mut(i);
            front[kept][..len].copy_from_slice(&back[0][..len]);
            meta[kept] = meta[i];
        }
        kept += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    #[test]
    fn rules_parse_and_decide() {
        let r = Rules::parse("# cut from the leader\nout 127.0.0.1:7001\nin 127.0.0.1:7002\nloss 0.25\n")
            .unwrap();
        assert!(r.drops_out(addr(7001), 0.99));
        assert!(!r.drops_out(addr(7002), 0.99), "in-rules do not drop outgoing");
        assert!(r.drops_out(addr(7003), 0.1), "lost by chance");
        assert!(!r.drops_out(addr(7003), 0.3));
        assert!(r.drops_in(addr(7002)));
        assert!(!r.drops_in(addr(7001)));
        let all = Rules::parse("out all\nin all").unwrap();
        assert!(all.drops_out(addr(1), 1.0) && all.drops_in(addr(1)));
        assert_eq!(Rules::parse("  \n# nothing\n").unwrap(), Rules::default());
        assert!(!Rules::default().drops_out(addr(1), 0.0), "no loss by default");
    }

    #[test]
    fn bad_rules_are_refused_with_their_line() {
        for (text, why) in [
            ("out", "missing argument"),
            ("out 127.0.0.1", "IP:PORT"),
            ("loss 1.5", "between 0 and 1"),
            ("loss x", "probability"),
            ("cut all", "unknown rule"),
            ("out all now", "one argument"),
        ] {
            let e = Rules::parse(&format!("loss 0\n{text}")).unwrap_err();
            assert!(e.contains("line 2") && e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn dropped_datagrams_are_squeezed_out_in_order() {
        let mut storage = [[1u8; 4], [2u8; 4], [3u8; 4]];
        let mut meta: Vec<RecvMeta> = (0..3)
            .map(|i| RecvMeta {
                addr: addr(10 + i as u16),
                len: 2 + i,
                stride: 2 + i,
                ecn: None,
                dst_ip: None,
            })
            .collect();
        let [a, b, c] = &mut storage;
        let mut bufs = [IoSliceMut::new(a), IoSliceMut::new(b), IoSliceMut::new(c)];
        let kept = keep(&mut bufs, &mut meta, 3, |from| from != addr(10));
        assert_eq!(kept, 2);
        assert_eq!((meta[0].addr, meta[0].len), (addr(11), 3));
        assert_eq!((meta[1].addr, meta[1].len), (addr(12), 4));
        assert_eq!(&bufs[0][..3], &[2, 2, 2]);
        assert_eq!(&bufs[1][..4], &[3, 3, 3, 3]);
        assert_eq!(keep(&mut bufs, &mut meta, 2, |_| false), 0);
    }
}
