use super::*;
use crate::model::Record;

fn ms() -> StateModelDefinition {
    builtin("MasterSlave").unwrap()
}

#[test]
fn builtins_are_valid_and_named() {
    for name in builtin_names() {
        let def = builtin(name).unwrap_or_else(|| panic!("{name} must build"));
        assert_eq!(def.name(), name);
        assert!(validate(&def).is_empty());
        assert!(def.has_state(DROPPED) && def.has_state(ERROR));
    }
    assert!(builtin("NoSuchModel").is_none());
}

#[test]
fn master_slave_next_hops_follow_shortest_paths() {
    let d = ms();
    assert_eq!(d.next_hop("OFFLINE", "MASTER"), Some("SLAVE"));
    assert_eq!(d.next_hop("SLAVE", "MASTER"), Some("MASTER"));
    assert_eq!(d.next_hop("MASTER", "OFFLINE"), Some("SLAVE"));
    assert_eq!(d.next_hop("MASTER", "DROPPED"), Some("SLAVE"));
    assert_eq!(d.next_hop("SLAVE", "DROPPED"), Some("OFFLINE"));
    assert_eq!(d.next_hop("ERROR", "OFFLINE"), Some("OFFLINE"));
    assert_eq!(
        d.next_hop("ERROR", "MASTER"),
        None,
        "ERROR leaves only by reset or drop"
    );
    assert_eq!(d.next_hop("OFFLINE", "OFFLINE"), None);
    assert_eq!(d.next_hop("OFFLINE", "ERROR"), None, "ERROR is never planned");
    assert_eq!(d.top_state(), "MASTER");
    assert_eq!(d.initial_state(), "OFFLINE");
    assert_eq!(d.upper_bound("MASTER"), UpperBound::Count(1));
    assert_eq!(d.upper_bound("SLAVE"), UpperBound::Replicas);
    assert_eq!(d.transition_priority("MASTER", "SLAVE"), Some(0));
    assert!(d.transition_priority("SLAVE", "MASTER") < d.transition_priority("OFFLINE", "SLAVE"));
}

#[test]
fn state_counts_match_helix() {
    let c = |d: &StateModelDefinition, n, r| d.state_counts(n, r);
    let s = |v: &[(&str, usize)]| v.iter().map(|(a, b)| (a.to_string(), *b)).collect::<Vec<_>>();
    assert_eq!(c(&ms(), 3, 3), s(&[("MASTER", 1), ("SLAVE", 2)]));
    assert_eq!(c(&ms(), 5, 3), s(&[("MASTER", 1), ("SLAVE", 2)]));
    assert_eq!(c(&ms(), 2, 3), s(&[("MASTER", 1), ("SLAVE", 1)]));
    assert_eq!(c(&ms(), 1, 3), s(&[("MASTER", 1)]));
    assert_eq!(c(&ms(), 0, 3), s(&[]));
    let ls = builtin("LeaderStandby").unwrap();
    assert_eq!(c(&ls, 4, 3), s(&[("LEADER", 1), ("STANDBY", 2)]));
    let oo = builtin("OnlineOffline").unwrap();
    assert_eq!(c(&oo, 5, 3), s(&[("ONLINE", 3)]));
    assert_eq!(c(&oo, 2, 3), s(&[("ONLINE", 2)]));
    let schemata = builtin("StorageSchemata").unwrap();
    assert_eq!(c(&schemata, 4, 3), s(&[("MASTER", 4)]));
    let boot = builtin("OnlineOfflineWithBootstrap").unwrap();
    assert_eq!(c(&boot, 3, 3), s(&[("ONLINE", 3)]));
}

#[test]
fn helix_leader_standby_example_builds() {
    // The annotated example from Helix's state model tutorial.
    let def = StateModelDefinition::builder("LeaderStandby")
        .initial_state("OFFLINE")
        .state_with_priority("LEADER", 1)
        .state_with_priority("STANDBY", 2)
        .state("OFFLINE")
        .state(DROPPED)
        .upper_bound("LEADER", UpperBound::Count(1))
        .dynamic_upper_bound("STANDBY", "R")
        .transition_with_priority("STANDBY", "LEADER", 1)
        .transition_with_priority("OFFLINE", "STANDBY", 2)
        .transition_with_priority("LEADER", "STANDBY", 3)
        .transition_with_priority("STANDBY", "OFFLINE", 3)
        .transition("OFFLINE", DROPPED)
        .build()
        .unwrap();
    assert_eq!(def.states(), ["LEADER", "STANDBY", "OFFLINE", "DROPPED", "ERROR"]);
    assert_eq!(def.transitions()[0], Transition::new("STANDBY", "LEADER"));
    assert_eq!(def.next_hop("OFFLINE", "LEADER"), Some("STANDBY"));
}

#[test]
fn builder_adds_dropped_and_error() {
    let def = StateModelDefinition::builder("Tiny")
        .initial_state("OFF")
        .state("ON")
        .state("OFF")
        .transition("OFF", "ON")
        .transition("ON", "OFF")
        .build()
        .unwrap();
    assert!(def.has_state(DROPPED));
    assert!(def.is_transition("OFF", DROPPED));
    assert!(def.is_transition(ERROR, "OFF"));
    assert!(def.is_transition(ERROR, DROPPED));
    assert_eq!(def.next_hop("ON", DROPPED), Some("OFF"));
}

#[test]
fn builtins_round_trip_through_records_and_json() {
    for def in builtins() {
        let record = def.to_record();
        let back = StateModelDefinition::from_record(&record).unwrap();
        assert_eq!(back, def, "{}", def.name());
        let json = record.to_helix_json();
        let parsed = Record::from_json(&json).unwrap();
        assert_eq!(StateModelDefinition::from_record(&parsed).unwrap(), def);
    }
}

#[test]
fn helix_master_slave_record_is_read() {
    let json = r#"{
      "id" : "MasterSlave",
      "mapFields" : {
        "DROPPED.meta" : { "count" : "-1" },
        "ERROR.meta" : { "count" : "-1" },
        "ERROR.next" : { "DROPPED" : "DROPPED", "OFFLINE" : "OFFLINE" },
        "MASTER.meta" : { "count" : "1" },
        "MASTER.next" : { "SLAVE" : "SLAVE", "DROPPED" : "SLAVE", "OFFLINE" : "SLAVE" },
        "OFFLINE.meta" : { "count" : "-1" },
        "OFFLINE.next" : { "MASTER" : "SLAVE", "SLAVE" : "SLAVE", "DROPPED" : "DROPPED" },
        "SLAVE.meta" : { "count" : "R" },
        "SLAVE.next" : { "MASTER" : "MASTER", "DROPPED" : "OFFLINE", "OFFLINE" : "OFFLINE" }
      },
      "listFields" : {
        "STATE_PRIORITY_LIST" : [ "MASTER", "SLAVE", "OFFLINE", "DROPPED", "ERROR" ],
        "STATE_TRANSITION_PRIORITYLIST" : [ "MASTER-SLAVE", "SLAVE-MASTER", "OFFLINE-SLAVE", "SLAVE-OFFLINE", "OFFLINE-DROPPED" ]
      },
      "simpleFields" : { "INITIAL_STATE" : "OFFLINE" }
    }"#;
    let def = StateModelDefinition::from_record(&Record::from_json(json).unwrap()).unwrap();
    assert_eq!(def, ms());
}

fn record_errors(edit: impl FnOnce(&mut Record)) -> Vec<ValidationError> {
    let mut r = ms().to_record();
    edit(&mut r);
    StateModelDefinition::from_record(&r).expect_err("the edited record must be invalid")
}

fn has(errors: &[ValidationError], pred: impl Fn(&ValidationError) -> bool) -> bool {
    errors.iter().any(pred)
}

#[test]
fn rule_name_present() {
    let e = record_errors(|r| r.id = " ".into());
    assert!(has(&e, |e| *e == ValidationError::MissingName), "{e:?}");
}

#[test]
fn rule_initial_state_present() {
    let e = record_errors(|r| {
        r.simple_fields.remove("INITIAL_STATE");
    });
    assert!(has(&e, |e| *e == ValidationError::MissingInitialState), "{e:?}");
}

#[test]
fn rule_initial_state_is_a_state() {
    let e = record_errors(|r| r.set_simple("INITIAL_STATE", "SLEEPING"));
    assert!(
        has(
            &e,
            |e| matches!(e, ValidationError::InitialStateNotAState { state } if state == "SLEEPING")
        ),
        "{e:?}"
    );
}

#[test]
fn rule_dropped_present() {
    let e = record_errors(|r| {
        r.list_fields.insert(
            "STATE_PRIORITY_LIST".into(),
            vec!["MASTER".into(), "SLAVE".into(), "OFFLINE".into()],
        );
        r.map_fields.remove("DROPPED.meta");
        for row in r.map_fields.values_mut() {
            row.remove("DROPPED");
        }
        r.list_fields
            .get_mut("STATE_TRANSITION_PRIORITYLIST")
            .unwrap()
            .retain(|t| !t.contains("DROPPED"));
    });
    assert!(has(&e, |e| *e == ValidationError::MissingDropped), "{e:?}");
}

#[test]
fn rule_bounds_are_numbers_n_or_r() {
    let e = record_errors(|r| {
        r.map_fields
            .get_mut("MASTER.meta")
            .unwrap()
            .insert("count".into(), "many".into());
    });
    assert!(
        has(
            &e,
            |e| matches!(e, ValidationError::InvalidBound { state, value } if state == "MASTER" && value == "many")
        ),
        "{e:?}"
    );
    let e = StateModelDefinition::builder("X")
        .initial_state("A")
        .state("A")
        .dynamic_upper_bound("A", "Q")
        .build()
        .unwrap_err();
    assert!(
        has(&e, |e| matches!(e, ValidationError::InvalidBound { .. })),
        "{e:?}"
    );
}

#[test]
fn rule_every_state_reaches_dropped() {
    let e = StateModelDefinition::builder("Stuck")
        .initial_state("OFF")
        .state("ON")
        .state("OFF")
        .transition("OFF", "ON")
        .build()
        .unwrap_err();
    assert!(
        has(
            &e,
            |e| matches!(e, ValidationError::CannotReachDropped { state } if state == "ON")
        ),
        "{e:?}"
    );
}

#[test]
fn rule_initial_reaches_every_state() {
    let e = StateModelDefinition::builder("Island")
        .initial_state("OFF")
        .state("ON")
        .state("LOST")
        .state("OFF")
        .transition("OFF", "ON")
        .transition("ON", "OFF")
        .transition("LOST", "OFF")
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        vec![ValidationError::UnreachableFromInitial {
            state: "LOST".into(),
            initial: "OFF".into()
        }]
    );
}

#[test]
fn rule_no_next_hop_loops() {
    let e = record_errors(|r| {
        // MASTER → DROPPED via SLAVE, and SLAVE → DROPPED via MASTER: a loop.
        r.map_fields
            .get_mut("SLAVE.next")
            .unwrap()
            .insert("DROPPED".into(), "MASTER".into());
    });
    assert!(
        has(
            &e,
            |e| matches!(e, ValidationError::NextHopLoop { to, .. } if to == "DROPPED")
        ),
        "{e:?}"
    );
}

#[test]
fn rule_no_next_hop_dead_ends() {
    let e = record_errors(|r| {
        r.map_fields.get_mut("SLAVE.next").unwrap().remove("DROPPED");
    });
    assert!(
        has(
            &e,
            |e| matches!(e, ValidationError::NextHopDeadEnd { from, at, .. } if from == "MASTER" && at == "SLAVE")
        ),
        "{e:?}"
    );
}

#[test]
fn rule_next_hops_are_transitions() {
    let e = record_errors(|r| {
        r.map_fields
            .get_mut("OFFLINE.next")
            .unwrap()
            .insert("MASTER".into(), "DROPPED".into());
        r.map_fields.get_mut("OFFLINE.next").unwrap().remove("DROPPED");
    });
    assert!(
        has(
            &e,
            |e| matches!(e, ValidationError::NextHopNotATransition { hop, .. } if hop == "DROPPED")
        ),
        "{e:?}"
    );
}

#[test]
fn rule_transition_priorities_name_real_transitions() {
    let e = record_errors(|r| {
        r.list_fields
            .get_mut("STATE_TRANSITION_PRIORITYLIST")
            .unwrap()
            .push("OFFLINE-MASTER".into());
    });
    assert_eq!(
        e,
        vec![ValidationError::UnknownTransitionInPriorityList {
            transition: "OFFLINE-MASTER".into()
        }]
    );
    let e = StateModelDefinition::builder("X")
        .initial_state("A")
        .state("A")
        .transition("A", "B")
        .build()
        .unwrap_err();
    assert!(
        has(
            &e,
            |e| matches!(e, ValidationError::UnknownStateInTransition { state, .. } if state == "B")
        ),
        "{e:?}"
    );
}

#[test]
fn rule_states_listed_once_and_bounds_on_real_states() {
    let e = StateModelDefinition::builder("X")
        .initial_state("A")
        .state("A")
        .state("A")
        .upper_bound("Z", UpperBound::Count(1))
        .build()
        .unwrap_err();
    assert!(
        has(&e, |e| matches!(e, ValidationError::DuplicateState { .. })),
        "{e:?}"
    );
    assert!(
        has(
            &e,
            |e| matches!(e, ValidationError::BoundOnUnknownState { state } if state == "Z")
        ),
        "{e:?}"
    );
}

#[test]
fn every_broken_rule_is_reported_at_once() {
    let e = record_errors(|r| {
        r.id = String::new();
        r.map_fields
            .get_mut("MASTER.meta")
            .unwrap()
            .insert("count".into(), "x".into());
        r.list_fields
            .get_mut("STATE_TRANSITION_PRIORITYLIST")
            .unwrap()
            .push("OFFLINE-MASTER".into());
    });
    assert!(e.len() >= 3, "{e:?}");
}

#[test]
fn transitions_without_next_maps_are_taken_from_the_priority_list() {
    let mut r = ms().to_record();
    r.map_fields.retain(|k, _| !k.ends_with(".next"));
    let def = StateModelDefinition::from_record(&r).unwrap();
    assert_eq!(def.next_hop("OFFLINE", "MASTER"), Some("SLAVE"));
    assert_eq!(def, ms());
}
