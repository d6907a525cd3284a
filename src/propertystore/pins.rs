//! Which replica a client expects at each address: the client pins a replica's identity
//! (its certificate's name, `store-<id>`) once it knows it, and from then on a replica at
//! that address whose certificate names another is refused by the transport before anything
//! is sent.
//!
//! Names are learned from what replicas answer: the voters and learners of the replicated
//! membership (id and address of every replica) and leader hints replace what was pinned;
//! a replica's own id in its status pins an address nothing named yet (trust on first use —
//! the address's first answer must come from a certificate of the cluster's CA).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use super::protocol::StoreResponse;
use super::replica_name;

/// What an answer from `from` says about who is where: `(address, name, replace)`, where
/// `replace` says whether the name replaces one already pinned (membership and leader hints)
/// or only fills a gap (a replica's own word).
pub fn learned(from: SocketAddr, resp: &StoreResponse) -> Vec<(SocketAddr, String, bool)> {
    let mut out = Vec::new();
    let mut named = |id, addr: &str, replace| {
        if let Ok(a) = addr.parse::<SocketAddr>() {
            out.push((a, replica_name(id), replace));
        }
    };
    match resp {
        StoreResponse::Status(s) => {
            for (id, addr) in s.voters.iter().chain(&s.learners) {
                named(*id, addr, true);
            }
            named(s.id, &from.to_string(), false);
        }
        StoreResponse::NotLeader {
            leader: Some((id, addr)),
        } => named(*id, addr, true),
        StoreResponse::Confirmation(c) => {
            for (id, addr) in &c.voters.addrs {
                named(*id, addr, true);
            }
            named(c.replica, &from.to_string(), false);
        }
        StoreResponse::Many(answers) => {
            for a in answers {
                if let StoreResponse::NotLeader {
                    leader: Some((id, addr)),
                } = a
                {
                    named(*id, addr, true);
                }
            }
        }
        _ => {}
    }
    out
}

/// The pinned names, by address.
#[derive(Debug, Default)]
pub(super) struct Pins {
    names: Mutex<HashMap<SocketAddr, String>>,
}

impl Pins {
    /// The name pinned at `addr`, if any.
    pub(super) fn name(&self, addr: SocketAddr) -> Option<String> {
        self.lock().get(&addr).cloned()
    }

    /// Takes what `resp`, answered from `from`, says (see [`learned`]).
    pub(super) fn learn(&self, from: SocketAddr, resp: &StoreResponse) {
        let found = learned(from, resp);
        if found.is_empty() {
            return;
        }
        let mut names = self.lock();
        for (addr, name, replace) in found {
            if replace {
                names.insert(addr, name);
            } else {
                names.entry(addr).or_insert(name);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, String>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propertystore::protocol::ReplicaStatus;
    use crate::propertystore::ReplicaId;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn status(id: ReplicaId, voters: Vec<(ReplicaId, String)>) -> ReplicaStatus {
        ReplicaStatus::example(id, voters)
    }

    #[test]
    fn membership_replaces_and_a_replica_s_own_word_fills_gaps() {
        let pins = Pins::default();
        let first = status(1, vec![(1, addr(7001).to_string()), (2, addr(7002).to_string())]);
        // Asked at another address than the membership names (a proxy, another interface).
        pins.learn(addr(9001), &StoreResponse::Status(first));
        assert_eq!(pins.name(addr(7001)).as_deref(), Some("store-1"));
        assert_eq!(pins.name(addr(7002)).as_deref(), Some("store-2"));
        assert_eq!(pins.name(addr(9001)).as_deref(), Some("store-1"));
        // A replica's own word does not replace a pin ...
        let other = status(3, Vec::new());
        pins.learn(addr(7002), &StoreResponse::Status(other));
        assert_eq!(pins.name(addr(7002)).as_deref(), Some("store-2"));
        // ... the replicated membership and leader hints do.
        pins.learn(
            addr(7001),
            &StoreResponse::Many(vec![StoreResponse::NotLeader {
                leader: Some((4, addr(7002).to_string())),
            }]),
        );
        assert_eq!(pins.name(addr(7002)).as_deref(), Some("store-4"));
        assert!(learned(addr(1), &StoreResponse::Unavailable { reason: "x".into() }).is_empty());
    }
}
