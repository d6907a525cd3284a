//! The decision table: [`allow`] says whether one role, held by the certificate named
//! `name`, may do one [`Action`]. Pure: no I/O, no clock; every rule has a row in the
//! table-driven test below.
//!
//! ```text
//!   role          reads  writes                                                   compact, membership
//!   admin         all    all                                                      yes
//!   operator      all    every key except `/` itself                              no
//!   viewer        all    none                                                     no
//!   spectator     all    an application message it sends (as a participant may)  no
//!   store         all    none (replicas speak Raft, not STORE)                    no
//!   controller    all    /<C>/EXTERNALVIEW/**, /<C>/CONTROLLER/**, /<C>/IDEALSTATES/<R>,
//!                        /<C>/INSTANCES/<i>/{MESSAGES/**, HISTORY}, deletes of
//!                        /<C>/LIVEINSTANCES/<i> and /<C>/INSTANCES/<i>/CURRENTSTATES/**  no
//!   participant   all    its own /<C>/LIVEINSTANCES/<self>, /<C>/CONFIGS/PARTICIPANT/<self>,
//!                        /<C>/INSTANCES/<self> and everything under it but HISTORY;
//!                        /<C>/PROPERTYSTORE/**; an application message it sends (SRC_NAME
//!                        = <self>, not a state transition) to /<C>/INSTANCES/<i>/MESSAGES/<id>  no
//! ```

use super::{Action, Denied, Role};
use crate::model::fields::{MSG_TYPE, SRC_NAME};
use crate::model::Record;

/// Whether `role`, held by the certificate named `name`, may do `action`.
pub fn allow(role: Role, name: &str, action: &Action<'_>) -> Result<(), Denied> {
    let deny = |reason: &str| Err(Denied::new(role, name, action, reason));
    match action {
        Action::Status | Action::Read { .. } => Ok(()),
        Action::Compact | Action::ChangeMembership => match role {
            Role::Admin => Ok(()),
            _ => deny("only the admin role compacts the store or changes its replicas"),
        },
        Action::Put { path, value } => write(role, name, path, Write::Put(value), &deny),
        Action::Delete { path, .. } => write(role, name, path, Write::Delete, &deny),
    }
}

#[derive(Clone, Copy)]
enum Write<'a> {
    Put(&'a [u8]),
    Delete,
}

fn write(
    role: Role,
    name: &str,
    path: &str,
    w: Write<'_>,
    deny: &dyn Fn(&str) -> Result<(), Denied>,
) -> Result<(), Denied> {
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match role {
        Role::Admin => Ok(()),
        Role::Operator if segs.is_empty() => deny("only the admin role writes the store's root"),
        Role::Operator => Ok(()),
        Role::Viewer => deny("this role reads only"),
        Role::Spectator => match (segs.as_slice(), w) {
            ([_, "INSTANCES", _, "MESSAGES", _], Write::Put(value)) if is_own_app_message(name, value) => Ok(()),
            _ => deny("a spectator writes only the application messages it sends"),
        },
        Role::Store => deny("store replicas replicate through Raft and write nothing through STORE"),
        Role::Controller => controller_write(&segs, w)
            .then_some(())
            .map_or_else(|| deny("a controller writes external views, messages, its CONTROLLER records, ideal-state write-backs and instance histories only"), Ok),
        Role::Participant => participant_write(name, &segs, w)
            .then_some(())
            .map_or_else(|| deny("a participant writes only its own instance's records, its application messages and the cluster's PROPERTYSTORE"), Ok),
    }
}

fn controller_write(segs: &[&str], w: Write<'_>) -> bool {
    let delete = matches!(w, Write::Delete);
    match segs {
        [_, "EXTERNALVIEW", _, ..] | [_, "CONTROLLER", _, ..] => true,
        [_, "IDEALSTATES", _] => !delete,
        [_, "INSTANCES", _, "MESSAGES", _, ..] => true,
        [_, "INSTANCES", _, "HISTORY"] => !delete,
        [_, "LIVEINSTANCES", _] => delete,
        [_, "INSTANCES", _, "CURRENTSTATES", _, ..] => delete,
        _ => false,
    }
}

/// What leadership a write of `role` needs (see [`super::request::check_command`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leadership {
    /// None.
    Free,
    /// The caller must lead: the transaction carries the fence "`/<C>/CONTROLLER/LEADER`
    /// holds exactly a record naming the caller", and the write is not in its failure branch.
    Fenced,
    /// The write is the leadership record itself: taking it (a record naming the caller,
    /// conditioned on the record's current value or absence) or resigning it (fenced).
    Claim,
}

/// What leadership `role` needs for `action`: a controller's writes of cluster records
/// (external views, ideal-state write-backs, state transitions, histories, removal of dead
/// instances' records) are [`Leadership::Fenced`], and the leadership record is
/// [`Leadership::Claim`]; its other `CONTROLLER` records, application messages it sends as
/// itself and deletes of its own messages are free. Other roles need none.
pub fn leadership(role: Role, name: &str, action: &Action<'_>) -> Leadership {
    if role != Role::Controller {
        return Leadership::Free;
    }
    let (path, w) = match action {
        Action::Put { path, value } => (*path, Write::Put(value)),
        Action::Delete { path, .. } => (*path, Write::Delete),
        _ => return Leadership::Free,
    };
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let fenced = |yes: bool| if yes { Leadership::Fenced } else { Leadership::Free };
    match (segs.as_slice(), w) {
        ([_, "CONTROLLER", "LEADER"], _) => Leadership::Claim,
        ([_, "CONTROLLER", ..], _) => Leadership::Free,
        ([_, "INSTANCES", i, "MESSAGES", ..], Write::Delete) => fenced(*i != name),
        ([_, "INSTANCES", _, "MESSAGES", _], Write::Put(value)) => fenced(!is_own_app_message(name, value)),
        _ => Leadership::Fenced,
    }
}

fn participant_write(name: &str, segs: &[&str], w: Write<'_>) -> bool {
    match (segs, w) {
        ([_, "PROPERTYSTORE", ..], _) => true,
        ([_, "LIVEINSTANCES", i], _) | ([_, "CONFIGS", "PARTICIPANT", i], _) => *i == name,
        ([_, "INSTANCES", i], _) => *i == name,
        // The controller keeps instance histories.
        ([_, "INSTANCES", _, "HISTORY", ..], _) => false,
        ([_, "INSTANCES", i, "MESSAGES", _], Write::Put(value)) if *i != name => {
            is_own_app_message(name, value)
        }
        ([_, "INSTANCES", i, _, ..], _) => *i == name,
        _ => false,
    }
}

/// Whether `value` is an application message record sent by `name`: a participant may leave
/// one in another instance's `MESSAGES` (Helix's `ClusterMessagingService`), never a state
/// transition (those come from the leading controller).
fn is_own_app_message(name: &str, value: &[u8]) -> bool {
    let Ok(Some(record)) = Record::from_stored(value) else {
        return false;
    };
    let transition = record
        .simple(MSG_TYPE)
        .is_none_or(|t| t.to_ascii_uppercase().starts_with("STATE_TRANSITION"));
    !transition && record.simple(SRC_NAME) == Some(name)
}
