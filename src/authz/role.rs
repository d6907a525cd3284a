//! [`Role`]: what a certificate allows its holder to do, and [`RoleSet`], the roles one
//! certificate carries (usually one; a process that is a controller and a participant under
//! one name carries both).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A role a certificate grants. Printed and parsed as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Everything, including store membership changes and compaction.
    Admin,
    /// Administrative records of clusters (Helix's `HelixAdmin` writes); no store operations.
    Operator,
    /// Reads only.
    Viewer,
    /// A controller: external views, messages, the LEADER record, ideal-state write-backs.
    Controller,
    /// A participant: its own live instance, current states, errors and messages, and the
    /// cluster's application paths.
    Participant,
    /// A spectator: reads only (routing tables), and serves gossip.
    Spectator,
    /// A store replica: Raft between replicas.
    Store,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Operator,
        Role::Viewer,
        Role::Controller,
        Role::Participant,
        Role::Spectator,
        Role::Store,
    ];

    /// The role's name, as in certificates and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Controller => "controller",
            Role::Participant => "participant",
            Role::Spectator => "spectator",
            Role::Store => "store",
        }
    }

    /// Parses a role name; an unknown one is an error naming the known ones.
    pub fn parse(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }

    /// Whether the role runs a node (serves QUIC, gossips) rather than only calling nodes:
    /// its certificate is a node certificate.
    pub const fn is_node(self) -> bool {
        matches!(
            self,
            Role::Controller | Role::Participant | Role::Spectator | Role::Store
        )
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s)
    }
}

/// A role name strand does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role {0:?} (known roles: admin, operator, viewer, controller, participant, spectator, store)"
)]
pub struct UnknownRole(pub String);

/// The roles one certificate carries.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoleSet(u8);

impl RoleSet {
    /// No role.
    pub const NONE: RoleSet = RoleSet(0);

    /// The set of one role.
    pub const fn of(role: Role) -> RoleSet {
        RoleSet(role.bit())
    }

    /// This set with `role` added.
    pub const fn with(self, role: Role) -> RoleSet {
        RoleSet(self.0 | role.bit())
    }

    /// Both sets together.
    pub const fn union(self, other: RoleSet) -> RoleSet {
        RoleSet(self.0 | other.0)
    }

    /// Whether `role` is in the set.
    pub const fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether every role of `other` is in the set.
    pub const fn contains_all(self, other: RoleSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles, in [`Role::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// Whether a certificate with these roles is a node certificate (any role runs a node).
    pub fn is_node(self) -> bool {
        self.iter().any(Role::is_node)
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        iter.into_iter().fold(RoleSet::NONE, RoleSet::with)
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no role");
        }
        let names: Vec<&str> = self.iter().map(Role::name).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleSet({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_errors() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.name()), Ok(r));
        }
        let e = Role::parse("root").unwrap_err();
        assert!(
            e.to_string().contains("\"root\"") && e.to_string().contains("viewer"),
            "{e}"
        );
        assert!(Role::parse("Admin").is_err(), "names are lower case");
    }

    #[test]
    fn sets_hold_what_was_put_in() {
        let s: RoleSet = [Role::Controller, Role::Participant].into_iter().collect();
        assert!(s.contains(Role::Controller) && s.contains(Role::Participant));
        assert!(!s.contains(Role::Admin));
        assert_eq!(s.to_string(), "controller,participant");
        assert!(s.is_node());
        assert!(!RoleSet::of(Role::Viewer).is_node());
        assert!(s.contains_all(RoleSet::of(Role::Controller)));
        assert!(!RoleSet::of(Role::Controller).contains_all(s));
    }
}
