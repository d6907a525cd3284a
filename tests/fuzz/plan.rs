//! Plan files (`strand plan FILE`): arbitrary and mutated text, and generated cluster
//! descriptions with edge-case fields, through the parser, the whole rebalance pipeline and
//! both renderings. Each ends in a plan or a clear error.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use strand::cli::plan::{decision_json, decision_table, parse_input};
use strand::rebalance::pipeline;

use super::mutate::{mutated_text, mutations};

const INSTANCES: &[&str] = &[
    "localhost_1",
    "localhost_2",
    "localhost_3",
    "localhost_4",
    "localhost_5",
];
const STATES: &[&str] = &[
    "MASTER",
    "SLAVE",
    "OFFLINE",
    "DROPPED",
    "ERROR",
    "ONLINE",
    "LEADER",
    "STANDBY",
    "BOOTSTRAP",
    "nope",
    "",
];
const MODELS: &[&str] = &[
    "MasterSlave",
    "OnlineOffline",
    "LeaderStandby",
    "OnlineOfflineWithBootstrap",
    "StorageSchemata",
    "Custom",
    "",
];

/// A number-ish field: small values mostly, and the edges.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => (1u32..6).prop_map(|v| v.to_string()),
        1 => prop::sample::select(vec![
            "-1", "0", "4294967296", "18446744073709551615", "99999999999999999999", "-9223372036854775808",
            "ANY_LIVEINSTANCE", "", "x", "10000001",
        ]).prop_map(String::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// A field's value: usually of the right kind, sometimes anything.
fn or_any(v: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop_oneof![40 => v, 1 => any_json()]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => prop::sample::select(INSTANCES).prop_map(String::from),
        1 => prop::sample::select(vec!["", "é", "localhost_9"]).prop_map(String::from),
    ]
}

fn state() -> impl Strategy<Value = String> {
    prop::sample::select(STATES).prop_map(String::from)
}

fn instance() -> impl Strategy<Value = Value> {
    (
        or_any(name().prop_map(Value::from)),
        proptest::option::of(or_any(proptest::bool::weighted(0.8).prop_map(Value::from))),
        proptest::option::of(or_any(proptest::bool::weighted(0.9).prop_map(Value::from))),
        proptest::option::of(or_any(
            prop::sample::select(vec!["z1", "z2", ""]).prop_map(Value::from),
        )),
        proptest::option::of(or_any(prop_oneof![
            30 => (1u32..200).prop_map(Value::from),
            1 => Just(json!(0)),
            1 => Just(json!(4294967296u64)),
        ])),
        proptest::option::of(or_any(Just(json!({"db0": ["db0_0", "db0_1"]})))),
        proptest::option::of(or_any(any::<u64>().prop_map(Value::from))),
    )
        .prop_map(|(name, live, enabled, zone, weight, disabled, offline)| {
            let mut o = Map::new();
            o.insert("name".into(), name);
            for (k, v) in [
                ("live", live),
                ("enabled", enabled),
                ("zone", zone),
                ("weight", weight),
                ("disabledPartitions", disabled),
                ("offlineSinceMs", offline),
            ] {
                if let Some(v) = v {
                    o.insert(k.into(), v);
                }
            }
            Value::Object(o)
        })
}

fn partition_map() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map(
        prop::sample::select(vec!["db0_0", "db0_1", "db0_2", "db0_10", "x"]).prop_map(String::from),
        proptest::collection::btree_map(name(), state().prop_map(Value::from), 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        0..4,
    )
    .prop_map(|m| m.into_iter().collect())
}

fn ideal_state() -> impl Strategy<Value = Value> {
    (
        prop_oneof![40 => prop::sample::select(vec!["db0", "db1"]), 1 => Just("")],
        number_text(),
        number_text(),
        prop_oneof![
            30 => prop::sample::select(vec!["FULL_AUTO", "SEMI_AUTO", "CUSTOMIZED", "AUTO"]),
            1 => Just("bogus"),
        ],
        prop_oneof![30 => prop::sample::select(&MODELS[..5]), 1 => prop::sample::select(&MODELS[5..])],
        proptest::option::of(number_text()),
        proptest::option::of(number_text()),
        proptest::collection::btree_map(
            prop::sample::select(vec!["db0_0", "db0_1", "db0_2"]).prop_map(String::from),
            proptest::collection::vec(name().prop_map(Value::from), 0..4).prop_map(Value::from),
            0..3,
        ),
        partition_map(),
        proptest::option::weighted(
            0.3,
            (
                prop_oneof![
                    5 => (0u64..100_000).prop_map(|v| v.to_string()),
                    1 => Just(i64::MAX.to_string()),
                    1 => Just("-5".to_string()),
                ],
                prop::sample::select(vec!["true", "false", "TRUE"]),
            ),
        ),
    )
        .prop_map(
            |(id, n, replicas, mode, model, min_active, max_per, lists, maps, delay)| {
                let mut simple = json!({
                    "NUM_PARTITIONS": n,
                    "REPLICAS": replicas,
                    "REBALANCE_MODE": mode,
                    "STATE_MODEL_DEF_REF": model,
                });
                if let Some(v) = min_active {
                    simple["MIN_ACTIVE_REPLICAS"] = v.into();
                }
                if let Some(v) = max_per {
                    simple["MAX_PARTITIONS_PER_INSTANCE"] = v.into();
                }
                if let Some((ms, enabled)) = delay {
                    simple["REBALANCE_DELAY"] = ms.into();
                    simple["DELAY_REBALANCE_ENABLED"] = enabled.into();
                }
                json!({
                    "id": id,
                    "simpleFields": simple,
                    "listFields": Value::Object(lists.into_iter().collect()),
                    "mapFields": Value::Object(maps),
                })
            },
        )
}

fn resource() -> impl Strategy<Value = Value> {
    (
        prop_oneof![20 => ideal_state().prop_map(Some), 1 => Just(None)],
        proptest::option::weighted(0.2, prop::sample::select(vec!["db0", "db1"])),
        proptest::option::weighted(0.2, prop::sample::select(MODELS)),
        proptest::option::of(partition_map()),
        prop_oneof![
            3 => Just(vec![]),
            1 => proptest::collection::vec(
                (
                    prop::sample::select(vec!["db0_0", "db0_1"]),
                    name(),
                    prop_oneof![10 => prop::sample::select(&STATES[..5]), 1 => prop::sample::select(STATES)],
                    prop_oneof![10 => prop::sample::select(&STATES[..5]), 1 => prop::sample::select(STATES)],
                )
                    .prop_map(|(p, i, f, t)| json!({"partition": p, "instance": i, "from": f, "to": t})),
                1..3,
            ),
        ],
    )
        .prop_map(|(is, name, model, current, pending)| {
            let mut o = Map::new();
            if let Some(v) = is {
                o.insert("idealState".into(), v);
            }
            if let Some(v) = name {
                o.insert("name".into(), v.into());
            }
            if let Some(v) = model {
                o.insert("stateModel".into(), v.into());
            }
            if let Some(v) = current {
                o.insert("currentState".into(), Value::Object(v));
            }
            o.insert("pending".into(), Value::from(pending));
            Value::Object(o)
        })
}

fn cluster_config() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(number_text()),
        proptest::option::of(prop_oneof![20 => prop::sample::select(vec!["true", "false"]), 1 => Just("maybe")]),
        proptest::collection::vec(
            prop_oneof![
                20 => prop::sample::select(vec![
                    r#"{"rebalanceType":"LOAD_BALANCE","throttleScope":"INSTANCE","maxPartitionInTransition":"1"}"#,
                    r#"{"rebalanceType":"RECOVERY_BALANCE","throttleScope":"CLUSTER","maxPartitionInTransition":"2"}"#,
                    r#"{"rebalanceType":"ANY","throttleScope":"RESOURCE","maxPartitionInTransition":"1"}"#,
                    r#"{"rebalanceType":"LOAD_BALANCE","throttleScope":"PARTITION","maxPartitionInTransition":0}"#,
                    r#"{'rebalanceType':'ANY','throttleScope':'INSTANCE','maxPartitionInTransition':'3'}"#,
                ]),
                1 => prop::sample::select(vec![
                    r#"{"rebalanceType":"RECOVERY_BALANCE","throttleScope":"RESOURCE","maxPartitionInTransition":"-1"}"#,
                    r#"{rebalanceType=ANY, throttleScope=CLUSTER, maxPartitionInTransition=2}"#,
                    "not json",
                ]),
            ],
            0..3,
        ),
    )
        .prop_map(|(max_offline, delay, throttles)| {
            let mut simple = Map::new();
            if let Some(v) = max_offline {
                simple.insert("MAX_OFFLINE_INSTANCES_ALLOWED".into(), v.into());
            }
            if let Some(v) = delay {
                simple.insert("DELAY_REBALANCE_ENABLED".into(), v.into());
            }
            json!({
                "id": "C",
                "simpleFields": simple,
                "listFields": {"STATE_TRANSITION_THROTTLE_CONFIGS": throttles},
            })
        })
}

fn constraints(id: &'static str) -> impl Strategy<Value = Value> {
    let attribute = prop_oneof![
        Just(("STATE", "MASTER")),
        Just(("STATE", "SLAVE")),
        Just(("RESOURCE", ".*")),
        Just(("RESOURCE", "db0")),
        Just(("INSTANCE", "localhost_1")),
        Just(("INSTANCE", ".*")),
        Just(("PARTITION", "db0_1")),
        Just(("TRANSITION", "OFFLINE-SLAVE")),
        Just(("TRANSITION", "SLAVE-MASTER")),
        Just(("MESSAGE_TYPE", "STATE_TRANSITION")),
    ];
    let attribute = prop_oneof![
        30 => attribute,
        1 => prop_oneof![Just(("CONSTRAINT_TYPE", "x")), Just(("NOPE", "1"))],
    ];
    let value = prop_oneof![
        20 => prop::sample::select(vec!["0", "1", "2", "3", "R", "N"]),
        1 => prop::sample::select(vec!["-1", "", "x", "18446744073709551616"]),
    ];
    let item = (
        proptest::collection::vec(attribute, 1..3),
        proptest::option::weighted(0.95, value),
    )
        .prop_map(|(attrs, value)| {
            let mut m: Map<String, Value> = attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::from(v)))
                .collect();
            if let Some(v) = value {
                m.insert("CONSTRAINT_VALUE".into(), v.into());
            }
            Value::Object(m)
        });
    (
        proptest::collection::btree_map(
            prop::sample::select(vec!["c0", "c1", "c2"]).prop_map(String::from),
            item,
            0..3,
        ),
        prop_oneof![20 => Just(id), 1 => Just("OTHER")],
    )
        .prop_map(|(items, id)| json!({"id": id, "mapFields": Value::Object(items.into_iter().collect())}))
}

/// A generated cluster description.
fn plan() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(instance(), 1..6),
        proptest::collection::vec(resource(), 1..4),
        proptest::option::of(cluster_config()),
        proptest::option::of(constraints("STATE_CONSTRAINT")),
        proptest::option::of(constraints("MESSAGE_CONSTRAINT")),
        proptest::option::of(or_any(proptest::bool::weighted(0.1).prop_map(Value::from))),
        proptest::option::of(or_any(any::<u64>().prop_map(Value::from))),
    )
        .prop_map(
            |(instances, resources, config, state_c, message_c, maintenance, now)| {
                // Names unique (a repeated one is an error the parser is known to report).
                let instances: Vec<Value> = instances
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut inst)| {
                        if inst["name"].as_str().is_some_and(|n| INSTANCES.contains(&n)) {
                            inst["name"] = format!("localhost_{}", i + 1).into();
                        }
                        inst
                    })
                    .collect();
                let resources: Vec<Value> = resources
                    .into_iter()
                    .enumerate()
                    .map(|(j, mut res)| {
                        let id = format!("db{j}");
                        if res["idealState"]["id"].as_str().is_some_and(|n| !n.is_empty()) {
                            res["idealState"]["id"] = id.clone().into();
                        }
                        if res.get("name").is_some() {
                            res["name"] = id.into();
                        }
                        res
                    })
                    .collect();
                let mut o = Map::new();
                o.insert("instances".into(), instances.into());
                o.insert("resources".into(), resources.into());
                for (k, v) in [
                    ("clusterConfig", config),
                    ("stateConstraints", state_c),
                    ("messageConstraints", message_c),
                    ("maintenance", maintenance),
                    ("nowMs", now),
                ] {
                    if let Some(v) = v {
                        o.insert(k.into(), v);
                    }
                }
                Value::Object(o)
            },
        )
}

/// Parses and plans `text` as `strand plan` does; an error must say something.
fn plan_text(text: &str) -> Result<(), TestCaseError> {
    match parse_input(text) {
        Ok(snapshot) => match pipeline::compute(&snapshot) {
            Ok(decision) => {
                let _ = decision_json(&decision);
                let _ = decision_table(&decision);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        },
        Err(e) => prop_assert!(!e.is_empty()),
    }
    Ok(())
}

fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plan");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    out.sort();
    assert!(out.len() >= 5, "the example plans are found");
    out
}

proptest! {
    #![proptest_config(super::config(256))]

    #[test]
    fn any_text_is_a_plan_or_a_clear_error(text in ".{0,80}") {
        plan_text(&text)?;
    }

    #[test]
    fn generated_cluster_descriptions_plan_or_fail_clearly(p in plan()) {
        plan_text(&p.to_string())?;
    }

    #[test]
    fn mutated_example_plans_plan_or_fail_clearly(which in any::<prop::sample::Index>(), ms in mutations()) {
        let all = examples();
        let text = &all[which.index(all.len())];
        plan_text(&mutated_text(text, &ms))?;
    }
}

#[test]
fn every_example_plan_plans() {
    for text in examples() {
        let snapshot = parse_input(&text).unwrap();
        pipeline::compute(&snapshot).unwrap();
    }
}

/// The generated descriptions are not all refused early: enough of them reach the
/// pipeline and come out as plans with transitions, or the properties above would test
/// only the parser's first checks.
#[test]
fn generated_descriptions_reach_the_planner() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (n, mut planned, mut with_transitions) = (1000, 0, 0);
    for _ in 0..n {
        let p = plan().new_tree(&mut runner).unwrap().current();
        if let Ok(decision) = parse_input(&p.to_string())
            .map_err(|_| ())
            .and_then(|s| pipeline::compute(&s).map_err(|_| ()))
        {
            planned += 1;
            if decision_json(&decision).to_string().contains("\"to\"") {
                with_transitions += 1;
            }
        }
    }
    assert!(planned * 10 >= n, "{planned} of {n} planned");
    assert!(
        with_transitions * 20 >= n,
        "{with_transitions} of {n} planned transitions"
    );
}
