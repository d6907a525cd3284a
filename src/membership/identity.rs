//! Who a member is: the identity that SWIM gossips about.
//!
//! A [`NodeId`] is a node's name (the name in its certificate), the address it listens on,
//! its generation and its metadata (roles and clusters). foca keys members by
//! [`foca::Identity::addr`], which here is the node's *name*: a node restarted at another
//! port, or with other metadata, replaces its earlier identity instead of appearing twice.
//! Of two identities with the same name, the one with the higher `(generation, revision)`
//! wins; a node that learns it was declared down renews itself with `generation + 1`.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::MembershipError;

/// The roles a process plays, as a small set (it travels in every gossip packet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Roles(u8);

impl Roles {
    /// No role: a bare gossip member.
    pub const NONE: Roles = Roles(0);
    /// A voter of the Raft-replicated property store.
    pub const STORE: Roles = Roles(1);
    /// A controller candidate.
    pub const CONTROLLER: Roles = Roles(2);
    /// A participant hosting partitions.
    pub const PARTICIPANT: Roles = Roles(4);
    /// A spectator watching external views.
    pub const SPECTATOR: Roles = Roles(8);

    const NAMES: [(Roles, &'static str); 4] = [
        (Roles::STORE, "store"),
        (Roles::CONTROLLER, "controller"),
        (Roles::PARTICIPANT, "participant"),
        (Roles::SPECTATOR, "spectator"),
    ];

    /// Both sets together.
    pub const fn union(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }

    /// Whether every role of `other` is in `self`.
    pub const fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles' names, in a fixed order.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(r, _)| self.contains(*r))
            .map(|(_, n)| *n)
            .collect()
    }

    /// One role by name (`store`, `controller`, `participant`, `spectator`).
    pub fn parse_one(name: &str) -> Result<Roles, MembershipError> {
        Self::NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(r, _)| *r)
            .ok_or_else(|| MembershipError::UnknownRole {
                name: name.to_string(),
            })
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        f.write_str(&self.names().join(","))
    }
}

/// A member's identity: what SWIM gossips about and what a session is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// The node's name, as in its certificate; unique in the cluster.
    pub name: String,
    /// Where the node listens.
    pub addr: SocketAddr,
    /// Bumped on every restart and whenever the node learns it was declared down.
    pub generation: u64,
    /// Bumped when the node changes its metadata within one generation.
    pub revision: u32,
    /// The roles the node plays.
    pub roles: Roles,
    /// The clusters the node belongs to.
    pub clusters: Vec<String>,
}

impl NodeId {
    /// A node's first identity in a generation.
    pub fn new(name: impl Into<String>, addr: SocketAddr, generation: u64) -> Self {
        NodeId {
            name: name.into(),
            addr,
            generation,
            revision: 0,
            roles: Roles::NONE,
            clusters: Vec::new(),
        }
    }

    /// The same node with `roles` and `clusters` as metadata.
    pub fn with_metadata(mut self, roles: Roles, clusters: Vec<String>) -> Self {
        self.roles = roles;
        self.clusters = clusters;
        self
    }

    /// The identity that follows this one after the node was declared down.
    pub fn renewed(&self) -> NodeId {
        NodeId {
            generation: self.generation.saturating_add(1),
            revision: 0,
            ..self.clone()
        }
    }

    fn rank(&self) -> (u64, u32) {
        (self.generation, self.revision)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.generation)
    }
}

impl foca::Identity for NodeId {
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(self.renewed())
    }

    fn addr(&self) -> String {
        self.name.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        match self.rank().cmp(&adversary.rank()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            // Two different identities of one rank: keep a deterministic one, so every member
            // makes the same choice.
            std::cmp::Ordering::Equal => {
                (self.addr, self.roles, &self.clusters)
                    >= (adversary.addr, adversary.roles, &adversary.clusters)
            }
        }
    }
}

/// A generation for a process starting at `unix_ms` (wall-clock milliseconds), higher than
/// any earlier process of the same node as long as the clock does not go back.
pub fn generation_at_start(unix_ms: u64) -> u64 {
    unix_ms.max(1)
}

#[cfg(test)]
mod tests {
    use foca::Identity;

    use super::*;

    fn id(generation: u64) -> NodeId {
        NodeId::new("n1", "127.0.0.1:7000".parse().unwrap(), generation)
    }

    #[test]
    fn higher_generation_wins_the_name() {
        assert!(id(2).win_addr_conflict(&id(1)));
        assert!(!id(1).win_addr_conflict(&id(2)));
        let mut updated = id(1);
        updated.revision = 1;
        assert!(updated.win_addr_conflict(&id(1)));
        assert_eq!(id(1).addr(), "n1");
    }

    #[test]
    fn renewal_bumps_the_generation_and_wins() {
        let r = id(5).renew().unwrap();
        assert_eq!(r.generation, 6);
        assert!(r.win_addr_conflict(&id(5)));
    }

    #[test]
    fn equal_rank_conflicts_are_decided_the_same_way_by_both_sides() {
        let a = id(3);
        let b = NodeId {
            addr: "127.0.0.1:7001".parse().unwrap(),
            ..id(3)
        };
        assert_ne!(a.win_addr_conflict(&b), b.win_addr_conflict(&a));
    }

    #[test]
    fn roles_parse_and_print() {
        let r = Roles::parse_one("Store")
            .unwrap()
            .union(Roles::parse_one("participant").unwrap());
        assert_eq!(r.to_string(), "store,participant");
        assert!(r.contains(Roles::STORE));
        assert!(!r.contains(Roles::CONTROLLER));
        assert!(matches!(
            Roles::parse_one("boss"),
            Err(MembershipError::UnknownRole { .. })
        ));
        assert_eq!(Roles::NONE.to_string(), "-");
    }
}
