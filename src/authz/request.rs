//! A store request or command → the [`Action`]s it takes, each checked with [`check`].
//! A transaction's conditions are reads, which every role may do; its success and failure
//! operations are writes.

use super::{check, Action, Denied, RoleSet};
use crate::propertystore::core::{Command, Op};
use crate::propertystore::protocol::StoreRequest;

fn op_action(op: &Op) -> Action<'_> {
    match op {
        Op::Create { path, value } | Op::Set { path, value, .. } => Action::Put { path, value },
        Op::Delete { path, recursive, .. } => Action::Delete {
            path,
            recursive: *recursive,
        },
    }
}

/// Whether `roles` allow every write of `cmd`.
pub fn check_command(roles: RoleSet, name: &str, cmd: &Command) -> Result<(), Denied> {
    match cmd {
        Command::Compact { .. } => check(roles, name, &Action::Compact),
        Command::Txn(t) => t
            .success
            .iter()
            .chain(&t.failure)
            .try_for_each(|op| check(roles, name, &op_action(op))),
    }
}

/// Whether `roles` allow `req`. A [`StoreRequest::Writes`] is checked write by write by its
/// handler (each write gets its own answer), so here only its other parts count.
pub fn check_request(roles: RoleSet, name: &str, req: &StoreRequest) -> Result<(), Denied> {
    let read = |path: &str| check(roles, name, &Action::Read { path });
    match req {
        StoreRequest::Write(cmd) => check_command(roles, name, cmd),
        StoreRequest::Writes(_) => Ok(()),
        StoreRequest::Get { path, .. } | StoreRequest::Children { path, .. } => read(path),
        StoreRequest::Range { prefix, .. }
        | StoreRequest::Watch { prefix, .. }
        | StoreRequest::WatchPage { prefix, .. } => read(prefix),
        StoreRequest::Status => check(roles, name, &Action::Status),
        StoreRequest::Audit { cluster, .. } => check(roles, name, &Action::Read { path: cluster }),
        StoreRequest::AddReplica { .. } | StoreRequest::RemoveReplica { .. } => {
            check(roles, name, &Action::ChangeMembership)
        }
    }
}
