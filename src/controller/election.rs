//! Leadership of a cluster: the `CONTROLLER/LEADER` record, who may take it, and the
//! condition that fences every write of the leader.
//!
//! The record keeps Helix's shape (a LiveInstance-like record named after the controller)
//! and adds the controller's address and gossip generation. It is taken by a conditional
//! write: "if LEADER still holds exactly what I read (or is missing), set it to mine". The
//! store revision of that write is the leader's **epoch**: revisions only grow, so a later
//! leader's epoch is always higher, even if the record was deleted in between. Every later
//! write of the leader carries the condition "LEADER holds exactly my record" — unique per
//! take, since it names the take's time and generation — so a leader that was paused and
//! replaced changes nothing when it resumes.

use std::net::SocketAddr;
use std::time::Duration;

use crate::membership::{MemberStatus, Status};
use crate::model::{LiveInstance, Record};
use crate::participant::register::{ADDR_FIELD, GOSSIP_GENERATION_FIELD};
use crate::propertystore::{Cmp, Condition, Op, Txn};

/// The simple field with the wall-clock time (ms) of the take, which makes each take's
/// record unique.
pub const TAKEN_FIELD: &str = "STRAND_TAKEN_MS";

/// The record a controller writes when it takes leadership.
pub fn leader_record(
    name: &str,
    session: &str,
    addr: SocketAddr,
    gossip_generation: u64,
    now_ms: u64,
) -> Record {
    let mut r = LiveInstance::create(
        name,
        session,
        concat!("strand-", env!("CARGO_PKG_VERSION")),
        &crate::entropy::pid_at(addr.ip()),
    )
    .record;
    r.set_simple(ADDR_FIELD, addr);
    r.set_simple(GOSSIP_GENERATION_FIELD, gossip_generation);
    r.set_simple(TAKEN_FIELD, now_ms);
    r
}

/// Whether leadership may be taken, judged from the record and the gossip view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vacancy {
    /// Nobody leads, or the leader is gone: take it if the record still holds `seen`.
    Vacant {
        /// The record's raw value as read (`None`: missing).
        seen: Option<Vec<u8>>,
    },
    /// Another controller leads and is alive.
    Held {
        /// Its name.
        by: String,
    },
}

/// Judges whether the leadership record names a live controller. `leader` is the record's
/// raw value; `members` the gossip view; a leader the view does not know yet (at the
/// record's generation) counts as alive until `gossip_age`, how long this node has known
/// the record (never more than its gossip has run), reaches `grace`.
pub fn judge(
    leader: Option<&[u8]>,
    my_name: &str,
    members: &[MemberStatus],
    gossip_age: Duration,
    grace: Duration,
) -> Vacancy {
    let Some(raw) = leader else {
        return Vacancy::Vacant { seen: None };
    };
    let vacant = Vacancy::Vacant {
        seen: Some(raw.to_vec()),
    };
    let Some(record) = Record::from_stored(raw).ok().flatten() else {
        return vacant; // an empty or unreadable record names nobody
    };
    if record.id == my_name || record.id.is_empty() {
        return vacant; // an earlier run of this controller
    }
    let generation: u64 = record
        .simple(GOSSIP_GENERATION_FIELD)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    match members.iter().find(|m| m.name == record.id && !m.is_local) {
        Some(m) if m.generation >= generation => match m.status {
            Status::Alive | Status::Suspect => Vacancy::Held { by: record.id },
            Status::Down | Status::Left => vacant,
        },
        // Only an older generation is known: the leader restarted and is joining, or the
        // view has not caught up; wait for the grace period like for an unknown one.
        _ if gossip_age < grace => Vacancy::Held { by: record.id },
        _ => vacant,
    }
}

/// The transaction that takes leadership if the record still holds `seen`.
pub fn take(path: &str, seen: Option<&[u8]>, mine: &[u8]) -> Txn {
    let condition = match seen {
        Some(v) => Condition::Value {
            path: path.to_string(),
            cmp: Cmp::Eq,
            value: v.to_vec(),
        },
        None => Condition::Missing {
            path: path.to_string(),
        },
    };
    Txn {
        conditions: vec![condition],
        success: vec![Op::Set {
            path: path.to_string(),
            value: mine.to_vec(),
            expected_version: None,
        }],
        failure: Vec::new(),
    }
}

/// The condition every write of the leader carries.
pub fn fence(path: &str, mine: &[u8]) -> Condition {
    Condition::Value {
        path: path.to_string(),
        cmp: Cmp::Eq,
        value: mine.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, generation: u64, status: Status) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            generation,
            status,
            roles: vec![],
            clusters: vec![],
            last_heard_ms: None,
            rtt_ms: None,
            is_local: false,
        }
    }

    #[test]
    fn leadership_is_vacant_only_when_the_leader_is_gone() {
        let rec = leader_record("c1", "s", "127.0.0.1:5".parse().unwrap(), 10, 1).to_bytes();
        let g = Duration::from_secs(1);
        let young = Duration::from_millis(100);
        assert_eq!(judge(None, "c2", &[], young, g), Vacancy::Vacant { seen: None });
        let held = Vacancy::Held { by: "c1".into() };
        assert_eq!(
            judge(Some(&rec), "c2", &[member("c1", 10, Status::Alive)], young, g),
            held
        );
        assert_eq!(
            judge(Some(&rec), "c2", &[member("c1", 10, Status::Suspect)], young, g),
            held
        );
        let vacant = Vacancy::Vacant {
            seen: Some(rec.clone()),
        };
        assert_eq!(
            judge(Some(&rec), "c2", &[member("c1", 10, Status::Down)], young, g),
            vacant
        );
        assert_eq!(
            judge(Some(&rec), "c2", &[member("c1", 11, Status::Left)], young, g),
            vacant
        );
        // Unknown to the view: held during the grace period, vacant after it.
        assert_eq!(judge(Some(&rec), "c2", &[], young, g), held);
        assert_eq!(judge(Some(&rec), "c2", &[], g * 2, g), vacant);
        // A down member of an older generation says nothing about the leader's generation.
        assert_eq!(
            judge(Some(&rec), "c2", &[member("c1", 9, Status::Down)], young, g),
            held
        );
        // Our own earlier run, or garbage, can be taken over.
        assert_eq!(
            judge(Some(&rec), "c1", &[member("c1", 10, Status::Alive)], young, g),
            vacant
        );
        assert_eq!(
            judge(Some(b"not json"), "c2", &[], young, g),
            Vacancy::Vacant {
                seen: Some(b"not json".to_vec())
            }
        );
    }
}
