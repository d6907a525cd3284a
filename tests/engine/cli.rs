//! `strand plan` as a user runs it: the shipped examples, and bad input.

use std::process::Command;

use rand::RngExt;
use serde_json::Value;

fn strand(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .output()
        .expect("run strand");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn example(name: &str) -> String {
    format!("{}/examples/plan/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn plan_json(file: &str) -> Value {
    let (code, out, err) = strand(&["plan", file, "-o", "json"]);
    assert_eq!(code, 0, "{file}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{file}: {e}: {out}"))
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write input");
    path.display().to_string()
}

const EXAMPLES: [&str; 9] = [
    "maintenance.json",
    "dropped.json",
    "tutorial.json",
    "failover.json",
    "semi_auto.json",
    "customized.json",
    "throttled.json",
    "zones.json",
    "state_constraint.json",
];

#[test]
fn every_example_plans_in_both_formats() {
    for name in EXAMPLES {
        let file = example(name);
        let v = plan_json(&file);
        let r = &v["resources"]["myDB"];
        for key in ["bestPossible", "preferenceLists", "transitions", "held", "moved"] {
            assert!(!r[key].is_null(), "{name}: no {key}");
        }
        assert!(v["stats"].is_object() && v["moved"].is_u64(), "{name}");
        let (code, table, err) = strand(&["plan", &file]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            table.contains("resource myDB") && table.contains("TOP STATES"),
            "{name}: {table}"
        );
    }
}

#[test]
fn tutorial_gives_each_instance_two_masters_and_four_slaves() {
    let v = plan_json(&example("tutorial.json"));
    for (instance, s) in v["stats"].as_object().unwrap() {
        assert_eq!(
            (s["replicas"].as_u64(), s["topStates"].as_u64()),
            (Some(6), Some(2)),
            "{instance}"
        );
    }
    let r = &v["resources"]["myDB"];
    assert_eq!(r["transitions"].as_array().unwrap().len(), 18);
    assert_eq!(v["moved"], 18);
    assert_eq!(r["preferenceLists"].as_object().unwrap().len(), 6);
    let keys: Vec<&String> = r["bestPossible"].as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "myDB_0");
    assert_eq!(keys[5], "myDB_5");
}

#[test]
fn failover_promotes_existing_slaves() {
    let v = plan_json(&example("failover.json"));
    let sent = v["resources"]["myDB"]["transitions"].as_array().unwrap();
    let promotions: Vec<&Value> = sent.iter().filter(|t| t["to"] == "MASTER").collect();
    assert_eq!(promotions.len(), 2, "{sent:?}");
    assert!(promotions.iter().all(|t| t["from"] == "SLAVE"));
    assert!(sent.iter().all(|t| t["instance"] != "localhost_12913"));
}

#[test]
fn semi_auto_example_hands_over_and_does_not_replace_the_dead() {
    let v = plan_json(&example("semi_auto.json"));
    let r = &v["resources"]["myDB"];
    let sent = r["transitions"].as_array().unwrap();
    assert!(sent
        .iter()
        .any(|t| t["partition"] == "myDB_0" && t["from"] == "MASTER" && t["to"] == "SLAVE"));
    let held = r["held"].as_array().unwrap();
    assert!(held.iter().any(|h| h["partition"] == "myDB_0"
        && h["to"] == "MASTER"
        && h["reason"].as_str().unwrap().contains("MASTER")));
    assert_eq!(v["stats"]["localhost_12915"]["replicas"], 0);
    assert_eq!(v["moved"], 0);
}

#[test]
fn throttled_example_holds_transitions_with_reasons() {
    let v = plan_json(&example("throttled.json"));
    let r = &v["resources"]["myDB"];
    let sent = r["transitions"].as_array().unwrap();
    let on = |i: &str| sent.iter().filter(|t| t["instance"] == i).count();
    assert_eq!(
        on("localhost_12913"),
        1,
        "one pending counts against the limit of 2"
    );
    assert_eq!(on("localhost_12914"), 2);
    assert_eq!(on("localhost_12915"), 1, "message constraint slow12915");
    let reasons: Vec<&str> = r["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("INSTANCE")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("slow12915")), "{reasons:?}");
}

#[test]
fn state_constraint_example_gives_my_db_two_masters_per_partition() {
    let v = plan_json(&example("state_constraint.json"));
    let r = &v["resources"]["myDB"];
    for (p, states) in r["bestPossible"].as_object().unwrap() {
        let masters = states
            .as_object()
            .unwrap()
            .values()
            .filter(|s| *s == "MASTER")
            .count();
        assert_eq!(masters, 2, "{p}: {states}");
    }
    let sent = r["transitions"].as_array().unwrap();
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert!(sent.iter().all(|t| t["from"] == "SLAVE" && t["to"] == "MASTER"));
}

#[test]
fn zones_example_puts_one_replica_per_zone_on_tagged_instances() {
    let v = plan_json(&example("zones.json"));
    let zone = |i: &str| match i {
        "localhost_12913" | "localhost_12914" => "a",
        "localhost_12915" | "localhost_12916" => "b",
        _ => "c",
    };
    for (p, list) in v["resources"]["myDB"]["preferenceLists"].as_object().unwrap() {
        let list: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(list.len(), 3, "{p}");
        let mut zones: Vec<&str> = list.iter().map(|i| zone(i)).collect();
        zones.sort();
        assert_eq!(zones, ["a", "b", "c"], "{p}: {list:?}");
        assert!(!list.contains(&"localhost_12919"), "{p}");
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        &dir,
        "x.json",
        r#"{"someday": 1, "instances": [{"name": "a", "color": "blue"}],
            "resources": [{"idealState": {"id": "r", "simpleFields": {"NUM_PARTITIONS": "1",
              "REBALANCE_MODE": "SEMI_AUTO", "STATE_MODEL_DEF_REF": "OnlineOffline"},
              "listFields": {"r_0": ["a"]}, "extra": {}}, "notes": "x"}]}"#,
    );
    let v = plan_json(&f);
    assert_eq!(v["resources"]["r"]["bestPossible"]["r_0"]["a"], "ONLINE");
}

#[test]
fn wrong_input_names_the_field_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{", "not valid JSON"),
        ("[]", "expected an object"),
        ("{}", "instances is missing"),
        (
            r#"{"instances": [{"name": "a"}, {"name": "b", "live": "yes"}]}"#,
            "instances[1].live: expected true or false",
        ),
        (
            r#"{"instances": [{"live": true}]}"#,
            "instances[0].name is missing",
        ),
        (
            r#"{"instances": [{"name": "a", "weight": -3}]}"#,
            "instances[0].weight",
        ),
        (
            r#"{"instances": [{"name": "a", "tags": "ssd"}]}"#,
            "instances[0].tags: expected an array",
        ),
        (
            r#"{"instances": [{"name": "a"}], "resources": [{"idealState": {"id": "r", "simpleFields": {"STATE_MODEL_DEF_REF": "Nope"}}}]}"#,
            "unknown state model 'Nope'",
        ),
        (
            r#"{"instances": [{"name": "a"}], "resources": [{"idealState": {"id": "r", "simpleFields": {"STATE_MODEL_DEF_REF": "MasterSlave", "REPLICAS": "three"}}}]}"#,
            "REPLICAS",
        ),
        (
            r#"{"instances": [{"name": "a"}], "resources": [{"idealState": {"id": "r", "simpleFields": {"STATE_MODEL_DEF_REF": "MasterSlave"}},
               "pending": [{"partition": "r_0", "instance": "a", "from": "OFFLINE"}]}]}"#,
            "resources[0].pending[0].to is missing",
        ),
        (
            r#"{"instances": [{"name": "a"}], "resources": [{"idealState": {"id": "r", "simpleFields": {"STATE_MODEL_DEF_REF": "MasterSlave"}},
               "currentState": {"r_0": {"a": 1}}}]}"#,
            "resources[0].currentState.r_0.a: expected a string",
        ),
        (
            r#"{"instances": [{"name": "a"}], "clusterConfig": {"id": "C", "listFields": {"STATE_TRANSITION_THROTTLE_CONFIGS": ["{\"THROTTLE_SCOPE\":\"RACK\"}"]}}}"#,
            "STATE_TRANSITION_THROTTLE_CONFIGS[0]",
        ),
        (
            r#"{"instances": [{"name": "a"}], "stateModels": [{"id": "Broken", "simpleFields": {}}]}"#,
            "stateModels[0]",
        ),
        (
            r#"{"instances": [{"name": "a"}], "paused": "no"}"#,
            "paused: expected true or false",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let f = write(&dir, &format!("bad{i}.json"), text);
        let (code, out, err) = strand(&["plan", &f]);
        assert_eq!(code, 2, "{text}: exit {code}, {out}{err}");
        assert!(err.contains(needle), "{text}: expected '{needle}' in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = strand(&["plan", "/nonexistent/plan.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn reads_standard_input() {
    let text = std::fs::read_to_string(example("semi_auto.json")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["plan", "-", "-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run strand");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["resources"]["myDB"]["mode"], "SEMI_AUTO");
}

#[test]
fn dropped_example_walks_replicas_down_one_hop() {
    let v = plan_json(&example("dropped.json"));
    let r = &v["resources"]["myDB"];
    assert_eq!(r["mode"], "DROPPED");
    let sent = r["transitions"].as_array().unwrap();
    assert_eq!(sent.len(), 8, "{sent:?}");
    for t in sent {
        let hop = (t["from"].as_str().unwrap(), t["to"].as_str().unwrap());
        assert!(matches!(hop, ("MASTER", "SLAVE") | ("SLAVE", "OFFLINE")), "{t}");
        assert!(
            !(t["partition"] == "myDB_0" && t["instance"] == "localhost_12914"),
            "busy: {t}"
        );
    }
}

#[test]
fn maintenance_example_recovers_masters_without_replacing() {
    let v = plan_json(&example("maintenance.json"));
    assert!(v["maintenance"]
        .as_str()
        .unwrap()
        .contains("MAX_OFFLINE_INSTANCES_ALLOWED"));
    let r = &v["resources"]["myDB"];
    let sent = r["transitions"].as_array().unwrap();
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|t| t["from"] == "SLAVE" && t["to"] == "MASTER"),
        "{sent:?}"
    );
    assert_eq!(v["moved"], 0);
    for (p, best) in r["bestPossible"].as_object().unwrap() {
        let masters = best
            .as_object()
            .unwrap()
            .values()
            .filter(|s| *s == "MASTER")
            .count();
        assert!(masters <= 1, "{p}");
    }
}

/// Replaces one random value somewhere in `v` with a random JSON value.
fn mutate(v: &mut Value, rng: &mut rand::rngs::StdRng) {
    let descend = rng.random_bool(0.8);
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let k = m.keys().nth(rng.random_range(0..m.len())).unwrap().clone();
            mutate(m.get_mut(&k).unwrap(), rng);
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.random_range(0..a.len());
            mutate(&mut a[i], rng);
        }
        _ => {
            *v = match rng.random_range(0..8) {
                0 => Value::Null,
                1 => Value::Bool(rng.random_bool(0.5)),
                2 => serde_json::json!(rng.random_range(-5i64..100)),
                3 => serde_json::json!("MASTER"),
                4 => serde_json::json!("x"),
                5 => serde_json::json!([]),
                6 => serde_json::json!({}),
                _ => serde_json::json!(-1.5),
            }
        }
    }
}

#[test]
fn mutated_examples_never_panic() {
    use rand::SeedableRng;
    for name in EXAMPLES {
        let text = std::fs::read_to_string(example(name)).unwrap();
        let original: Value = serde_json::from_str(&text).unwrap();
        for seed in 0..150u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut v = original.clone();
            for _ in 0..rng.random_range(1..4) {
                mutate(&mut v, &mut rng);
            }
            let input = v.to_string();
            let outcome = std::panic::catch_unwind(|| {
                if let Ok(snap) = strand::cli::plan::parse_input(&input) {
                    let _ = strand::rebalance::compute(&snap);
                }
            });
            assert!(outcome.is_ok(), "{name}, seed {seed}: panicked on {input}");
        }
    }
}
