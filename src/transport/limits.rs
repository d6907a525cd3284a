//! Per-peer limits of a serving endpoint: how many connections one identity (the name in its
//! certificate) may hold, and how many requests and messages it may have in flight over all
//! of them. QUIC's own stream limit bounds one connection; these bound a peer that opens
//! many, so that one peer (any holder of a valid certificate) cannot take every task and
//! queue slot of a node while the others wait.
//!
//! ```text
//!   connection accepted ─► PeerLimits::connect(name) ─► ConnectionSlot   (or refused: close)
//!   stream accepted     ─► ConnectionSlot::stream()  ─► StreamPermit     (or refused: answer)
//!   slot / permit dropped ─► counts go down; an idle identity is forgotten
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a peer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The peer already holds the most connections one identity may.
    #[error("{peer} already holds {limit} connections to this node (the most one identity may)")]
    Connections {
        /// The peer's name.
        peer: String,
        /// The limit.
        limit: usize,
    },
    /// The peer already has the most requests and messages in flight one identity may.
    #[error("{peer} already has {limit} requests in flight at this node (the most one identity may); retry when some complete")]
    Streams {
        /// The peer's name.
        peer: String,
        /// The limit.
        limit: usize,
    },
}

#[derive(Debug, Default)]
struct Load {
    connections: usize,
    streams: usize,
}

#[derive(Debug)]
struct Shared {
    max_connections: usize,
    max_streams: usize,
    peers: Mutex<HashMap<String, Load>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Load>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lowers one of `peer`'s counts; forgets the peer when both reach zero.
    fn release(&self, peer: &str, f: impl FnOnce(&mut Load)) {
        let mut peers = self.lock();
        if let Some(load) = peers.get_mut(peer) {
            f(load);
            if load.connections == 0 && load.streams == 0 {
                peers.remove(peer);
            }
        }
    }
}

/// The limits and the current load of every peer.
#[derive(Debug, Clone)]
pub struct PeerLimits {
    shared: Arc<Shared>,
}

impl PeerLimits {
    /// At most `max_connections` connections and `max_streams` streams in flight per
    /// identity (each at least 1).
    pub fn new(max_connections: usize, max_streams: usize) -> Self {
        PeerLimits {
            shared: Arc::new(Shared {
                max_connections: max_connections.max(1),
                max_streams: max_streams.max(1),
                peers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Admits a connection of `peer`, or refuses it when the peer holds the most it may.
    pub fn connect(&self, peer: &str) -> Result<ConnectionSlot, LimitExceeded> {
        let mut peers = self.shared.lock();
        let load = peers.entry(peer.to_string()).or_default();
        if load.connections >= self.shared.max_connections {
            return Err(LimitExceeded::Connections {
                peer: peer.to_string(),
                limit: self.shared.max_connections,
            });
        }
        load.connections += 1;
        Ok(ConnectionSlot {
            shared: self.shared.clone(),
            peer: peer.to_string(),
        })
    }

    /// `peer`'s (connections, streams in flight).
    pub fn load(&self, peer: &str) -> (usize, usize) {
        self.shared
            .lock()
            .get(peer)
            .map_or((0, 0), |l| (l.connections, l.streams))
    }
}

/// One admitted connection; its peer's count goes down when it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    shared: Arc<Shared>,
    peer: String,
}

impl ConnectionSlot {
    /// Admits one stream of this connection's peer, or refuses it when the peer has the most
    /// in flight it may (over all its connections).
    pub fn stream(&self) -> Result<StreamPermit, LimitExceeded> {
        let mut peers = self.shared.lock();
        let load = peers.entry(self.peer.clone()).or_default();
        if load.streams >= self.shared.max_streams {
            return Err(LimitExceeded::Streams {
                peer: self.peer.clone(),
                limit: self.shared.max_streams,
            });
        }
        load.streams += 1;
        Ok(StreamPermit {
            shared: self.shared.clone(),
            peer: self.peer.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.shared
            .release(&self.peer, |l| l.connections = l.connections.saturating_sub(1));
    }
}

/// One admitted stream; released when dropped (the stream was answered or abandoned).
#[derive(Debug)]
pub struct StreamPermit {
    shared: Arc<Shared>,
    peer: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.shared
            .release(&self.peer, |l| l.streams = l.streams.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_per_identity_and_released_on_drop() {
        let limits = PeerLimits::new(2, 10);
        let a1 = limits.connect("a").unwrap();
        let _a2 = limits.connect("a").unwrap();
        assert_eq!(
            limits.connect("a").unwrap_err(),
            LimitExceeded::Connections {
                peer: "a".into(),
                limit: 2
            }
        );
        // Another identity is not affected.
        let _b = limits.connect("b").unwrap();
        drop(a1);
        let _a3 = limits.connect("a").unwrap();
        assert_eq!(limits.load("a"), (2, 0));
    }

    #[test]
    fn streams_are_capped_over_all_connections_of_a_peer() {
        let limits = PeerLimits::new(4, 3);
        let (c1, c2) = (limits.connect("a").unwrap(), limits.connect("a").unwrap());
        let held = [c1.stream().unwrap(), c2.stream().unwrap(), c1.stream().unwrap()];
        assert!(matches!(
            c2.stream(),
            Err(LimitExceeded::Streams { limit: 3, .. })
        ));
        let b = limits.connect("b").unwrap();
        let _b1 = b.stream().unwrap();
        drop(held);
        assert_eq!(limits.load("a"), (2, 0));
        let _again = c2.stream().unwrap();
    }

    #[test]
    fn an_idle_identity_is_forgotten_only_when_its_streams_are_done_too() {
        let limits = PeerLimits::new(1, 1);
        let c = limits.connect("a").unwrap();
        let s = c.stream().unwrap();
        drop(c);
        // The stream outlives its connection: it still counts.
        assert_eq!(limits.load("a"), (0, 1));
        let c = limits.connect("a").unwrap();
        assert!(c.stream().is_err());
        drop(s);
        assert!(c.stream().is_ok());
        drop(c);
        assert!(limits.shared.lock().is_empty());
    }
}
