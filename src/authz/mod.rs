//! Authorization by role: what the holder of a certificate may do to the property store.
//!
//! Mutual TLS says who a peer is (its name, [`crate::transport::tls`]); the certificate also
//! carries its [`Role`]s (`strand://role/<role>` URIs). This module decides, purely, whether
//! those roles allow one store request; the STORE service (`propertystore::server`) asks it
//! for every request and answers a refusal with [`crate::propertystore::protocol::StoreResponse::PermissionDenied`].
//!
//! ```text
//!   verified certificate ─► Peer { name, roles } ─┐
//!   StoreRequest ─► request::actions ─► [Action] ─┴─► check: some role allows every action
//!                                                        └─ rules::allow(role, name, action)
//! ```
//!
//! ```text
//!   authz/role.rs     Role, RoleSet, their names
//!   authz/rules.rs    allow(role, name, action): the decision table
//!   authz/request.rs  a store request or command → the actions it takes
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

mod request;
mod role;
mod rules;

pub use request::{check_command, check_request};
pub use role::{Role, RoleSet, UnknownRole};
pub use rules::allow;

/// One thing a store request does, as authorization sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// The replica's status.
    Status,
    /// Reads the key or subtree at `path` (get, children, range, watch).
    Read {
        /// The key or prefix.
        path: &'a str,
    },
    /// Creates or sets a key.
    Put {
        /// The key.
        path: &'a str,
        /// The value written.
        value: &'a [u8],
    },
    /// Deletes a key (and its subtree when `recursive`).
    Delete {
        /// The key.
        path: &'a str,
        /// Whether the subtree goes too.
        recursive: bool,
    },
    /// Drops watch history.
    Compact,
    /// Adds or removes a replica.
    ChangeMembership,
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Status => f.write_str("status"),
            Action::Read { path } => write!(f, "read {path}"),
            Action::Put { path, .. } => write!(f, "write {path}"),
            Action::Delete {
                path,
                recursive: false,
            } => write!(f, "delete {path}"),
            Action::Delete {
                path,
                recursive: true,
            } => write!(f, "delete {path} recursively"),
            Action::Compact => f.write_str("compact the store"),
            Action::ChangeMembership => f.write_str("change the store's replicas"),
        }
    }
}

/// A refused request: who asked, with which roles, for what, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("permission denied: {name:?} ({roles}) may not {action}: {reason}")]
pub struct Denied {
    /// The name in the caller's certificate.
    pub name: String,
    /// The caller's roles, as printed.
    pub roles: String,
    /// What it asked for.
    pub action: String,
    /// Why it is refused.
    pub reason: String,
}

impl Denied {
    fn new(role: Role, name: &str, action: &Action<'_>, reason: &str) -> Denied {
        Denied {
            name: name.to_string(),
            roles: role.to_string(),
            action: action.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Whether `roles` may administer clusters through the admin API (the HTTP server's writes):
/// admin or operator.
pub fn administers(roles: RoleSet) -> bool {
    roles.contains(Role::Admin) || roles.contains(Role::Operator)
}

/// Whether a certificate named `name` with `roles` may do `action`: some role must allow it.
pub fn check(roles: RoleSet, name: &str, action: &Action<'_>) -> Result<(), Denied> {
    let mut refusal = None;
    for role in roles.iter() {
        match allow(role, name, action) {
            Ok(()) => return Ok(()),
            Err(d) => refusal = Some(d),
        }
    }
    Err(match refusal {
        Some(mut d) => {
            d.roles = roles.to_string();
            d
        }
        None => Denied {
            name: name.to_string(),
            roles: roles.to_string(),
            action: action.to_string(),
            reason: "the certificate carries no role".into(),
        },
    })
}

#[cfg(test)]
mod tests;
