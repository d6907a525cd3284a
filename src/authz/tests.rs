//! The decision table, row by row: every rule of `rules::allow`, allowed and refused.

use super::*;
use crate::model::fields::{MSG_TYPE, SRC_NAME};
use crate::model::Record;
use crate::propertystore::core::{Command, Op, Txn};
use crate::propertystore::protocol::{ReadMode, StoreRequest};

fn message(msg_type: &str, src: &str) -> Vec<u8> {
    let mut r = Record::new("m1");
    r.set_simple(MSG_TYPE, msg_type);
    r.set_simple(SRC_NAME, src);
    r.to_bytes()
}

fn put(path: &str) -> Action<'_> {
    Action::Put { path, value: b"" }
}

fn del(path: &str) -> Action<'_> {
    Action::Delete {
        path,
        recursive: false,
    }
}

#[test]
fn every_rule_of_the_table() {
    use Role::*;
    let app = message("ECHO", "p1");
    let forged_src = message("ECHO", "p3");
    let transition = message("STATE_TRANSITION", "p1");
    let cancel = message("STATE_TRANSITION_CANCELLATION", "p1");
    let rows: Vec<(Role, &str, Action<'_>, bool)> = vec![
        // Everyone reads and asks for status.
        (Viewer, "v", Action::Read { path: "/" }, true),
        (
            Participant,
            "p1",
            Action::Read {
                path: "/C/INSTANCES/p2",
            },
            true,
        ),
        (Store, "store-1", Action::Status, true),
        // Admin: everything.
        (Admin, "a", put("/"), true),
        (
            Admin,
            "a",
            Action::Delete {
                path: "/",
                recursive: true,
            },
            true,
        ),
        (Admin, "a", Action::Compact, true),
        (Admin, "a", Action::ChangeMembership, true),
        // Operator: every key but the root; no compaction, no membership.
        (Operator, "o", put("/C"), true),
        (Operator, "o", put("/C/IDEALSTATES/db"), true),
        (
            Operator,
            "o",
            Action::Delete {
                path: "/C",
                recursive: true,
            },
            true,
        ),
        (
            Operator,
            "o",
            Action::Delete {
                path: "/",
                recursive: true,
            },
            false,
        ),
        (Operator, "o", Action::Compact, false),
        (Operator, "o", Action::ChangeMembership, false),
        // Viewer, spectator, store: no writes.
        (Viewer, "v", put("/C/PROPERTYSTORE/x"), false),
        (Viewer, "v", del("/C/LIVEINSTANCES/v"), false),
        (Viewer, "v", Action::Compact, false),
        (Spectator, "s", put("/C/EXTERNALVIEW/db"), false),
        (
            Spectator,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: &app,
            },
            true,
        ),
        (
            Spectator,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: &transition,
            },
            false,
        ),
        (
            Spectator,
            "s",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: &app,
            },
            false,
        ),
        (Spectator, "p1", del("/C/INSTANCES/p2/MESSAGES/m1"), false),
        (
            Viewer,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: &app,
            },
            false,
        ),
        (Store, "store-1", put("/C/x"), false),
        (Store, "store-1", Action::ChangeMembership, false),
        // Controller.
        (Controller, "c1", put("/C/EXTERNALVIEW/db"), true),
        (Controller, "c1", del("/C/EXTERNALVIEW/db"), true),
        (Controller, "c1", put("/C/CONTROLLER/LEADER"), true),
        (Controller, "c1", put("/C/CONTROLLER/GENERATIONS/c1"), true),
        (Controller, "c1", put("/C/IDEALSTATES/db"), true),
        (Controller, "c1", del("/C/IDEALSTATES/db"), false),
        (Controller, "c1", put("/C/INSTANCES/p1/MESSAGES/m1"), true),
        (Controller, "c1", del("/C/INSTANCES/p1/MESSAGES/m1"), true),
        (Controller, "c1", put("/C/INSTANCES/p1/HISTORY"), true),
        (Controller, "c1", del("/C/LIVEINSTANCES/p1"), true),
        (Controller, "c1", put("/C/LIVEINSTANCES/p1"), false),
        (Controller, "c1", del("/C/INSTANCES/p1/CURRENTSTATES/s1/db"), true),
        (
            Controller,
            "c1",
            put("/C/INSTANCES/p1/CURRENTSTATES/s1/db"),
            false,
        ),
        (Controller, "c1", put("/C/CONFIGS/CLUSTER/C"), false),
        (Controller, "c1", put("/C/PROPERTYSTORE/x"), false),
        (Controller, "c1", put("/C"), false),
        (Controller, "c1", Action::Compact, false),
        // Participant: its own records.
        (Participant, "p1", put("/C/LIVEINSTANCES/p1"), true),
        (Participant, "p1", del("/C/LIVEINSTANCES/p1"), true),
        (Participant, "p1", put("/C/LIVEINSTANCES/p2"), false),
        (Participant, "p1", put("/C/CONFIGS/PARTICIPANT/p1"), true),
        (Participant, "p1", put("/C/CONFIGS/PARTICIPANT/p2"), false),
        (Participant, "p1", put("/C/CONFIGS/CLUSTER/C"), false),
        (Participant, "p1", put("/C/INSTANCES/p1"), true),
        (Participant, "p1", put("/C/INSTANCES/p1/GENERATION"), true),
        (
            Participant,
            "p1",
            put("/C/INSTANCES/p1/CURRENTSTATES/s1/db"),
            true,
        ),
        (
            Participant,
            "p1",
            put("/C/INSTANCES/p2/CURRENTSTATES/s1/db"),
            false,
        ),
        (
            Participant,
            "p1",
            del("/C/INSTANCES/p1/CURRENTSTATES/s0/db"),
            true,
        ),
        (Participant, "p1", put("/C/INSTANCES/p1/ERRORS/s1/db/db_0"), true),
        (Participant, "p1", put("/C/INSTANCES/p1/HEALTHREPORT/disk"), true),
        (Participant, "p1", put("/C/INSTANCES/p2/HEALTHREPORT/disk"), false),
        (Participant, "p1", del("/C/INSTANCES/p1/MESSAGES/m1"), true),
        (Participant, "p1", del("/C/INSTANCES/p2/MESSAGES/m1"), false),
        (Participant, "p1", put("/C/INSTANCES/p1/HISTORY"), false),
        (Participant, "p1", put("/C/PROPERTYSTORE/app/x"), true),
        (
            Participant,
            "p1",
            Action::Delete {
                path: "/C/PROPERTYSTORE",
                recursive: true,
            },
            true,
        ),
        (Participant, "p1", put("/C/EXTERNALVIEW/db"), false),
        (Participant, "p1", put("/C/IDEALSTATES/db"), false),
        (Participant, "p1", put("/C/CONTROLLER/LEADER"), false),
        (Participant, "p1", put("/D/PROPERTYSTORE2/x"), false),
        (Participant, "p1", put("/C"), false),
        (Participant, "p1", Action::Compact, false),
        (Participant, "p1", Action::ChangeMembership, false),
        // A participant's application message to another instance: its own, never a transition.
        (
            Participant,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: &app,
            },
            true,
        ),
        (
            Participant,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: &forged_src,
            },
            false,
        ),
        (
            Participant,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: &transition,
            },
            false,
        ),
        (
            Participant,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: &cancel,
            },
            false,
        ),
        (
            Participant,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1",
                value: b"not json",
            },
            false,
        ),
        (
            Participant,
            "p1",
            Action::Put {
                path: "/C/INSTANCES/p2/MESSAGES/m1/x",
                value: &app,
            },
            false,
        ),
    ];
    for (role, name, action, allowed) in rows {
        let got = allow(role, name, &action);
        assert_eq!(got.is_ok(), allowed, "{role} {name:?} {action}: {got:?}");
        if let Err(d) = got {
            assert_eq!(d.name, name);
            assert!(d.to_string().contains("permission denied"), "{d}");
        }
    }
}

#[test]
fn only_admins_and_operators_administer() {
    for r in Role::ALL {
        assert_eq!(
            administers(RoleSet::of(r)),
            matches!(r, Role::Admin | Role::Operator),
            "{r}"
        );
    }
    assert!(administers(RoleSet::of(Role::Viewer).with(Role::Operator)));
    assert!(!administers(RoleSet::NONE));
}

#[test]
fn any_role_of_a_certificate_allows() {
    let both = RoleSet::of(Role::Controller).with(Role::Participant);
    assert!(check(both, "n", &put("/C/EXTERNALVIEW/db")).is_ok());
    assert!(check(both, "n", &put("/C/LIVEINSTANCES/n")).is_ok());
    let d = check(both, "n", &put("/C/CONFIGS/CLUSTER/C")).unwrap_err();
    assert_eq!(d.roles, "controller,participant");
    let d = check(RoleSet::NONE, "n", &Action::Status).unwrap_err();
    assert!(d.reason.contains("no role"), "{d}");
}

#[test]
fn requests_are_checked_by_every_write_they_carry() {
    let p = RoleSet::of(Role::Participant);
    let txn = |paths: &[&str], failure: &[&str]| {
        let op = |p: &&str| Op::Set {
            path: p.to_string(),
            value: Vec::new(),
            expected_version: None,
        };
        StoreRequest::Write(Command::Txn(Txn {
            conditions: Vec::new(),
            success: paths.iter().map(op).collect(),
            failure: failure.iter().map(op).collect(),
        }))
    };
    assert!(check_request(
        p,
        "p1",
        &txn(&["/C/LIVEINSTANCES/p1", "/C/INSTANCES/p1/GENERATION"], &[])
    )
    .is_ok());
    assert!(check_request(
        p,
        "p1",
        &txn(&["/C/LIVEINSTANCES/p1", "/C/LIVEINSTANCES/p2"], &[])
    )
    .is_err());
    assert!(check_request(p, "p1", &txn(&["/C/LIVEINSTANCES/p1"], &["/C/EXTERNALVIEW/db"])).is_err());
    assert!(check_request(p, "p1", &StoreRequest::Write(Command::Compact { below: 5 })).is_err());
    assert!(check_request(p, "p1", &StoreRequest::RemoveReplica { id: 2 }).is_err());
    assert!(check_request(
        RoleSet::of(Role::Admin),
        "a",
        &StoreRequest::RemoveReplica { id: 2 }
    )
    .is_ok());
    let get = StoreRequest::Get {
        path: "/C".into(),
        mode: ReadMode::Linearizable,
    };
    assert!(check_request(RoleSet::of(Role::Viewer), "v", &get).is_ok());
    let v = RoleSet::of(Role::Viewer);
    assert!(check_request(v, "v", &txn(&["/C/PROPERTYSTORE/x"], &[])).is_err());
}

#[test]
fn a_controller_writes_cluster_records_only_fenced_as_the_leader() {
    use crate::propertystore::core::{Cmp, Condition};
    use rules::{leadership, Leadership};
    let needs_leadership = |r: Role, n: &str, a: &Action<'_>| leadership(r, n, a) == Leadership::Fenced;
    let c = Role::Controller;
    for (path, needs) in [
        ("/C/EXTERNALVIEW/db", true),
        ("/C/IDEALSTATES/db", true),
        ("/C/INSTANCES/p1/HISTORY", true),
        ("/C/CONTROLLER/GENERATIONS/c1", false),
    ] {
        assert_eq!(needs_leadership(c, "c1", &put(path)), needs, "{path}");
    }
    let app = message("ECHO", "c1");
    let transition = message("STATE_TRANSITION", "c1");
    let msg = "/C/INSTANCES/p1/MESSAGES/m1";
    assert!(!needs_leadership(
        c,
        "c1",
        &Action::Put {
            path: msg,
            value: &app
        }
    ));
    assert!(needs_leadership(
        c,
        "c1",
        &Action::Put {
            path: msg,
            value: &transition
        }
    ));
    assert!(needs_leadership(c, "c1", &del(msg)), "another instance's message");
    assert!(
        !needs_leadership(c, "c1", &del("/C/INSTANCES/c1/MESSAGES/m1")),
        "its own"
    );
    assert!(needs_leadership(c, "c1", &del("/C/LIVEINSTANCES/p1")));
    assert!(!needs_leadership(Role::Admin, "c1", &put("/C/EXTERNALVIEW/db")));

    let fence = |holder: &str, cluster: &str| Condition::Value {
        path: format!("/{cluster}/CONTROLLER/LEADER"),
        cmp: Cmp::Eq,
        value: Record::new(holder).to_bytes(),
    };
    let write = |conditions: Vec<Condition>| {
        Command::Txn(Txn {
            conditions,
            success: vec![Op::Set {
                path: "/C/EXTERNALVIEW/db".into(),
                value: b"{}".to_vec(),
                expected_version: None,
            }],
            failure: Vec::new(),
        })
    };
    let roles = RoleSet::of(c);
    assert!(check_command(roles, "c1", &write(vec![fence("c1", "C")])).is_ok());
    for conditions in [
        vec![],
        vec![fence("c2", "C")],
        vec![fence("c1", "D")],
        vec![Condition::Exists {
            path: "/C/CONTROLLER/LEADER".into(),
        }],
    ] {
        let d = check_command(roles, "c1", &write(conditions.clone())).unwrap_err();
        assert!(d.reason.contains("leader"), "{conditions:?}: {d}");
    }
    // Not in the failure branch: it runs exactly when the fence fails.
    let on_failure = Command::Txn(Txn {
        conditions: vec![fence("c1", "C")],
        success: Vec::new(),
        failure: vec![Op::Set {
            path: "/C/EXTERNALVIEW/db".into(),
            value: b"{}".to_vec(),
            expected_version: None,
        }],
    });
    assert!(check_command(roles, "c1", &on_failure).is_err());
    // The leadership record: taken as the election does, never overwritten blindly.
    assert_eq!(
        leadership(c, "c1", &put("/C/CONTROLLER/LEADER")),
        Leadership::Claim
    );
    let leader = "/C/CONTROLLER/LEADER".to_string();
    let take = |value: Vec<u8>, conditions: Vec<Condition>| {
        Command::Txn(Txn {
            conditions,
            success: vec![Op::Set {
                path: leader.clone(),
                value,
                expected_version: None,
            }],
            failure: Vec::new(),
        })
    };
    let missing = Condition::Missing { path: leader.clone() };
    let mine = Record::new("c1").to_bytes();
    assert!(check_command(roles, "c1", &take(mine.clone(), vec![missing.clone()])).is_ok());
    assert!(check_command(roles, "c1", &take(mine.clone(), vec![fence("c2", "C")])).is_ok());
    assert!(
        check_command(roles, "c1", &take(mine.clone(), vec![])).is_err(),
        "blind"
    );
    assert!(
        check_command(roles, "c1", &take(Record::new("c2").to_bytes(), vec![missing])).is_err(),
        "another's record"
    );
    let resign = |conditions: Vec<Condition>| {
        Command::Txn(Txn {
            conditions,
            success: vec![Op::Delete {
                path: leader.clone(),
                expected_version: None,
                recursive: false,
            }],
            failure: Vec::new(),
        })
    };
    assert!(check_command(roles, "c1", &resign(vec![fence("c1", "C")])).is_ok());
    assert!(check_command(roles, "c1", &resign(vec![fence("c2", "C")])).is_err());
    assert!(check_command(roles, "c1", &resign(vec![])).is_err());
    // An operator needs no fence; neither does a controller that is also an operator.
    assert!(check_command(RoleSet::of(Role::Operator), "o", &write(vec![])).is_ok());
    assert!(check_command(roles.with(Role::Operator), "c1", &write(vec![])).is_ok());
}

#[test]
fn a_confirmation_is_a_read_of_its_key() {
    let confirm = StoreRequest::ConfirmHeld {
        path: "/C/LIVEINSTANCES/p1".into(),
        value: b"session".to_vec(),
    };
    // A participant confirms its own live instance (and, as any reader, any other key).
    assert!(check_request(RoleSet::of(Role::Participant), "p1", &confirm).is_ok());
    assert!(check_request(RoleSet::of(Role::Viewer), "v", &confirm).is_ok());
    // A certificate with no role reads nothing, so it confirms nothing either.
    let denied = check_request(RoleSet::default(), "nobody", &confirm).unwrap_err();
    assert!(denied.action.contains("/C/LIVEINSTANCES/p1"), "{denied}");
}
