//! A store request or command → the [`Action`]s it takes, each checked with [`check`].
//! A transaction's conditions are reads, which every role may do; its success and failure
//! operations are writes. A controller's writes of cluster records must also carry the
//! leadership fence ([`check_command`]).

use super::rules::{self, Leadership};
use super::{allow, check, Action, Denied, Role, RoleSet};
use crate::model::{Layout, Record};
use crate::propertystore::core::{Cmp, Command, Condition, Op};
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

/// Whether `roles` allow every write of `cmd`. A write that only the controller role
/// allows, and only to the leader ([`rules::leadership`]), must be in the success branch of
/// a transaction whose conditions include the leadership fence naming the caller:
/// "`/<C>/CONTROLLER/LEADER` holds exactly this record", a record whose id is the caller's
/// name. The store then applies the write only while the caller leads: a controller that
/// lost the leadership (or never had it) changes no cluster record. The leadership record
/// itself is written by a controller only as the election does: a record naming it,
/// conditioned on the record's current value or absence (taking), or deleted under its own
/// fence (resigning) — never overwritten blindly.
pub fn check_command(roles: RoleSet, name: &str, cmd: &Command) -> Result<(), Denied> {
    match cmd {
        Command::Compact { .. } => check(roles, name, &Action::Compact),
        Command::Txn(t) => {
            let ops = t.success.iter().map(|op| (op, false));
            ops.chain(t.failure.iter().map(|op| (op, true)))
                .try_for_each(|(op, on_failure)| {
                    let action = op_action(op);
                    check(roles, name, &action)?;
                    let free = roles.iter().any(|r| {
                        allow(r, name, &action).is_ok()
                            && rules::leadership(r, name, &action) == Leadership::Free
                    });
                    let led = match rules::leadership(Role::Controller, name, &action) {
                        Leadership::Free => true,
                        Leadership::Fenced => {
                            !on_failure && fenced_as_leader(name, op_path(op), &t.conditions)
                        }
                        Leadership::Claim => !on_failure && claims_as_elected(name, op, &t.conditions),
                    };
                    if free || led || crate::testing::fencing_broken() {
                        return Ok(());
                    }
                    Err(Denied {
                        name: name.to_string(),
                        roles: roles.to_string(),
                        action: action.to_string(),
                        reason: "a controller writes cluster records only as the leader (in the success \
                             branch of a transaction conditioned on /<C>/CONTROLLER/LEADER holding \
                             its record), and the leadership record only as the election does"
                            .into(),
                    })
                })
        }
    }
}

/// Whether `op` on the leadership record is an election's: a record naming `name` written
/// on the condition of the record's current value or absence, or a delete under `name`'s
/// own fence.
fn claims_as_elected(name: &str, op: &Op, conditions: &[Condition]) -> bool {
    match op {
        Op::Create { path, value } | Op::Set { path, value, .. } => {
            let mine = Record::from_stored(value)
                .ok()
                .flatten()
                .is_some_and(|r| r.id == name);
            let conditioned = conditions.iter().any(|c| match c {
                Condition::Missing { path: p } => p == path,
                Condition::Value {
                    path: p,
                    cmp: Cmp::Eq,
                    ..
                } => p == path,
                _ => false,
            });
            mine && conditioned
        }
        Op::Delete { path, .. } => fenced_as_leader(name, path, conditions),
    }
}

fn op_path(op: &Op) -> &str {
    match op {
        Op::Create { path, .. } | Op::Set { path, .. } | Op::Delete { path, .. } => path,
    }
}

/// Whether `conditions` require that the leadership record of `path`'s cluster is exactly a
/// record naming `name`.
fn fenced_as_leader(name: &str, path: &str, conditions: &[Condition]) -> bool {
    let Some(cluster) = path.trim_start_matches('/').split('/').find(|s| !s.is_empty()) else {
        return false;
    };
    let leader = Layout::new(cluster).leader();
    conditions.iter().any(|c| match c {
        Condition::Value {
            path,
            cmp: Cmp::Eq,
            value,
        } => {
            *path == leader
                && Record::from_stored(value)
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.id == name)
        }
        _ => false,
    })
}

/// Whether `roles` allow `req`. A [`StoreRequest::Writes`] is checked write by write by its
/// handler (each write gets its own answer), so here only its other parts count.
pub fn check_request(roles: RoleSet, name: &str, req: &StoreRequest) -> Result<(), Denied> {
    let read = |path: &str| check(roles, name, &Action::Read { path });
    match req {
        StoreRequest::Write(cmd) => check_command(roles, name, cmd),
        StoreRequest::Writes(_) => Ok(()),
        StoreRequest::Get { path, .. }
        | StoreRequest::Children { path, .. }
        | StoreRequest::ConfirmHeld { path, .. } => read(path),
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
