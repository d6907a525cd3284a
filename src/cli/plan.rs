//! `strand plan FILE [-o json|table]`: what-if placement and transition plan, offline.
//!
//! ```text
//!   FILE (JSON cluster description) ──parse──▶ ClusterSnapshot ──rebalance::compute──▶ Decision
//!                                                                     │
//!                                               table for people ◀────┴────▶ JSON for programs
//! ```
//!
//! The input format is documented in `examples/plan/README.md`. Unknown fields are ignored;
//! a field of the wrong kind is a usage error (exit 2) that names the field by its path
//! (`instances[1].live`) and says what was expected.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::{output, CliError, OutputFormat};
use crate::model::{sort_partitions, ClusterConfig, ClusterConstraints, IdealState, Record};
use crate::rebalance::pipeline::{self, ClusterSnapshot, Decision, MaintenanceReason, ResourceSnapshot};
use crate::rebalance::transitions::ReplicaTransition;
use crate::rebalance::InstanceInfo;
use crate::statemodel::StateModelDefinition;

/// Arguments of `strand plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The cluster description (JSON; `-` for standard input). See examples/plan/README.md.
    pub file: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Runs `strand plan`.
pub fn run(args: PlanArgs) -> Result<(), CliError> {
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::usage(format!("cannot read standard input: {e}")))?;
        s
    } else {
        super::read_file(&args.file)?
    };
    let snapshot =
        parse_input(&text).map_err(|e| CliError::usage(format!("{}: {e}", args.file.display())))?;
    let decision =
        pipeline::compute(&snapshot).map_err(|e| CliError::usage(format!("{}: {e}", args.file.display())))?;
    let text = match args.output {
        OutputFormat::Json => {
            let v = decision_json(&decision);
            let mut s = serde_json::to_string_pretty(&v).map_err(|e| CliError::failed(e.to_string()))?;
            s.push('\n');
            s
        }
        OutputFormat::Table => decision_table(&decision),
    };
    // A closed pipe (`strand plan … | head`) is not an error worth a message.
    let mut out = std::io::stdout().lock();
    match std::io::Write::write_all(&mut out, text.as_bytes()).and_then(|()| std::io::Write::flush(&mut out))
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(format!("cannot write the plan: {e}")))
        }
        _ => Ok(()),
    }
}

/// A field path while parsing, for error messages (`resources[0].pending[2].to`).
fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong(path: &str, expected: &str, v: &Value) -> String {
    format!("field {path}: expected {expected}, found {}", kind(v))
}

fn object<'a>(path: &str, v: &'a Value) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| wrong(path, "an object", v))
}

fn array<'a>(path: &str, v: &'a Value) -> Result<&'a Vec<Value>, String> {
    v.as_array().ok_or_else(|| wrong(path, "an array", v))
}

fn string(path: &str, v: &Value) -> Result<String, String> {
    v.as_str()
        .map(String::from)
        .ok_or_else(|| wrong(path, "a string", v))
}

fn boolean(path: &str, v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| wrong(path, "true or false", v))
}

fn unsigned(path: &str, v: &Value) -> Result<u64, String> {
    v.as_u64().ok_or_else(|| wrong(path, "a non-negative integer", v))
}

/// A present, non-null field.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn record(path: &str, v: &Value) -> Result<Record, String> {
    object(path, v)?;
    Record::from_value(v.clone()).map_err(|e| format!("field {path}: {e}"))
}

fn strings(path: &str, v: &Value) -> Result<Vec<String>, String> {
    array(path, v)?
        .iter()
        .enumerate()
        .map(|(i, s)| string(&format!("{path}[{i}]"), s))
        .collect()
}

/// Parses the input of `strand plan` into a snapshot.
pub fn parse_input(text: &str) -> Result<ClusterSnapshot, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let top = object("(top level)", &root)?;
    let mut snap = ClusterSnapshot::default();
    if let Some(v) = get(top, "clusterConfig") {
        snap.cluster_config = ClusterConfig::new(record("clusterConfig", v)?);
    }
    if let Some(v) = get(top, "messageConstraints") {
        snap.message_constraints = Some(ClusterConstraints::new(record("messageConstraints", v)?));
    }
    if let Some(v) = get(top, "stateConstraints") {
        snap.state_constraints = Some(ClusterConstraints::new(record("stateConstraints", v)?));
    }
    if let Some(v) = get(top, "maintenance") {
        snap.maintenance = boolean("maintenance", v)?;
    }
    if let Some(v) = get(top, "paused") {
        snap.paused = boolean("paused", v)?;
    }
    if let Some(v) = get(top, "nowMs") {
        snap.now_ms = unsigned("nowMs", v)?;
    }
    let instances =
        get(top, "instances").ok_or("field instances is missing: list the cluster's instances")?;
    for (i, v) in array("instances", instances)?.iter().enumerate() {
        snap.instances
            .push(parse_instance(&format!("instances[{i}]"), v)?);
    }
    if let Some(v) = get(top, "stateModels") {
        for (i, m) in array("stateModels", v)?.iter().enumerate() {
            let path = format!("stateModels[{i}]");
            let rec = record(&path, m)?;
            let def = StateModelDefinition::from_record(&rec).map_err(|errors| {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!(
                    "field {path} (state model '{}') is invalid: {}",
                    rec.id,
                    list.join("; ")
                )
            })?;
            snap.state_models.insert(def.name().to_string(), def);
        }
    }
    if let Some(v) = get(top, "resources") {
        for (i, r) in array("resources", v)?.iter().enumerate() {
            snap.resources
                .push(parse_resource(&format!("resources[{i}]"), r)?.into());
        }
    }
    Ok(snap)
}

fn parse_instance(path: &str, v: &Value) -> Result<InstanceInfo, String> {
    let obj = object(path, v)?;
    let name = string(
        &at(path, "name"),
        get(obj, "name").ok_or_else(|| format!("field {} is missing", at(path, "name")))?,
    )?;
    if name.is_empty() {
        return Err(format!("field {}: the instance name is empty", at(path, "name")));
    }
    let mut info = InstanceInfo::new(name);
    if let Some(v) = get(obj, "live") {
        info.live = boolean(&at(path, "live"), v)?;
    }
    if let Some(v) = get(obj, "enabled") {
        info.enabled = boolean(&at(path, "enabled"), v)?;
    }
    if let Some(v) = get(obj, "zone") {
        info.zone = Some(string(&at(path, "zone"), v)?).filter(|z| !z.is_empty());
    }
    if let Some(v) = get(obj, "tags") {
        info.tags = strings(&at(path, "tags"), v)?.into_iter().collect();
    }
    if let Some(v) = get(obj, "weight") {
        let p = at(path, "weight");
        let w = unsigned(&p, v)?;
        info.weight = u32::try_from(w)
            .ok()
            .filter(|w| *w > 0)
            .ok_or_else(|| format!("field {p}: expected a positive integer below 2^32, found {w}"))?;
    }
    if let Some(v) = get(obj, "disabledPartitions") {
        let p = at(path, "disabledPartitions");
        for (resource, parts) in object(&p, v)? {
            let list: BTreeSet<String> = strings(&format!("{p}.{resource}"), parts)?.into_iter().collect();
            info.disabled_partitions.insert(resource.clone(), list);
        }
    }
    if let Some(v) = get(obj, "offlineSinceMs") {
        info.offline_since_ms = Some(unsigned(&at(path, "offlineSinceMs"), v)?);
    }
    Ok(info)
}

fn parse_resource(path: &str, v: &Value) -> Result<ResourceSnapshot, String> {
    let obj = object(path, v)?;
    let name = get(obj, "name")
        .map(|n| string(&at(path, "name"), n))
        .transpose()?;
    let mut res = match get(obj, "idealState") {
        Some(is) => {
            let p = at(path, "idealState");
            let rec = record(&p, is)?;
            if rec.id.is_empty() {
                return Err(format!("field {p}.id: the resource name is empty"));
            }
            if let Some(n) = &name {
                if *n != rec.id {
                    return Err(format!(
                        "field {}: '{n}' differs from the ideal state's id '{}'",
                        at(path, "name"),
                        rec.id
                    ));
                }
            }
            ResourceSnapshot::new(IdealState::new(rec))
        }
        None => {
            let name = name.ok_or_else(|| {
                format!("{path}: give an idealState, or a name and stateModel for a dropped resource")
            })?;
            let model = get(obj, "stateModel")
                .ok_or_else(|| {
                    format!(
                        "field {} is missing (the resource has no idealState)",
                        at(path, "stateModel")
                    )
                })
                .and_then(|m| string(&at(path, "stateModel"), m))?;
            ResourceSnapshot::dropped(name, model)
        }
    };
    if let Some(v) = get(obj, "currentState") {
        let p = at(path, "currentState");
        for (partition, holders) in object(&p, v)? {
            let pp = format!("{p}.{partition}");
            let mut map = BTreeMap::new();
            for (instance, state) in object(&pp, holders)? {
                map.insert(instance.clone(), string(&format!("{pp}.{instance}"), state)?);
            }
            res.current_state.insert(partition.clone(), map);
        }
    }
    if let Some(v) = get(obj, "pending") {
        let p = at(path, "pending");
        for (i, t) in array(&p, v)?.iter().enumerate() {
            let tp = format!("{p}[{i}]");
            let o = object(&tp, t)?;
            let field = |k: &str| -> Result<String, String> {
                let fp = at(&tp, k);
                string(&fp, get(o, k).ok_or_else(|| format!("field {fp} is missing"))?)
            };
            res.pending.push(ReplicaTransition::new(
                field("partition")?,
                field("instance")?,
                field("from")?,
                field("to")?,
            ));
        }
    }
    Ok(res)
}

fn transition_json(t: &ReplicaTransition) -> Value {
    json!({"partition": t.partition, "instance": t.instance, "from": t.from, "to": t.to})
}

fn natural<V>(map: &BTreeMap<String, V>) -> Vec<(&String, &V)> {
    let mut keys: Vec<String> = map.keys().cloned().collect();
    sort_partitions(&mut keys);
    keys.into_iter().filter_map(|k| map.get_key_value(&k)).collect()
}

fn maintenance_text(m: &MaintenanceReason) -> String {
    match m {
        MaintenanceReason::Manual => "manual".into(),
        MaintenanceReason::TooManyOffline { offline, allowed } => {
            format!("automatic: {offline} instances offline or disabled, MAX_OFFLINE_INSTANCES_ALLOWED is {allowed}")
        }
    }
}

/// The decision as the JSON document `strand plan -o json` prints.
pub fn decision_json(d: &Decision) -> Value {
    let mut resources = Map::new();
    for (name, r) in &d.resources {
        let mut best = Map::new();
        for (p, m) in natural(&r.best_possible) {
            best.insert(p.clone(), json!(m));
        }
        let mut lists = Map::new();
        for (p, l) in natural(&r.preference_lists) {
            lists.insert(p.clone(), json!(l));
        }
        let held: Vec<Value> = r
            .held
            .iter()
            .map(|h| {
                let mut v = transition_json(&h.transition);
                v["reason"] = json!(h.reason.to_string());
                v
            })
            .collect();
        resources.insert(
            name.clone(),
            json!({
                "stateModel": r.state_model,
                "mode": r.mode.map(|m| m.as_str()).unwrap_or("DROPPED"),
                "preferenceLists": lists,
                "bestPossible": best,
                "transitions": r.transitions.iter().map(transition_json).collect::<Vec<_>>(),
                "held": held,
                "moved": r.moved,
            }),
        );
    }
    json!({
        "resources": resources,
        "stats": d.stats,
        "moved": d.moved,
        "maintenance": d.maintenance.as_ref().map(maintenance_text),
        "paused": d.paused,
        "nextRecomputeMs": d.next_recompute_ms,
    })
}

/// The decision as the tables `strand plan` prints by default.
pub fn decision_table(d: &Decision) -> String {
    let mut out = String::new();
    if let Some(m) = &d.maintenance {
        out.push_str(&format!("maintenance mode ({})\n", maintenance_text(m)));
    }
    if d.paused {
        out.push_str("cluster paused: no transition is sent\n");
    }
    for (name, r) in &d.resources {
        out.push_str(&format!(
            "resource {name} ({}, {}): {} transitions to send, {} held, {} replicas moved\n",
            r.state_model,
            r.mode.map(|m| m.as_str()).unwrap_or("DROPPED"),
            r.transitions.len(),
            r.held.len(),
            r.moved
        ));
        let rows: Vec<Vec<String>> = natural(&r.best_possible)
            .into_iter()
            .map(|(p, m)| {
                let list = r.preference_lists.get(p).map(|l| l.join(",")).unwrap_or_default();
                let mut states: Vec<(&String, &String)> = m.iter().collect();
                // Order the states like the preference list, the rest by name.
                let pos = |i: &String| {
                    r.preference_lists
                        .get(p)
                        .and_then(|l| l.iter().position(|x| x == i))
                        .unwrap_or(usize::MAX)
                };
                states.sort_by_key(|(i, _)| (pos(i), (*i).clone()));
                let best = states
                    .iter()
                    .map(|(i, s)| format!("{i}:{s}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                vec![p.clone(), list, best]
            })
            .collect();
        out.push_str(&output::table(
            &["PARTITION", "PREFERENCE LIST", "BEST POSSIBLE"],
            &rows,
        ));
        if !r.transitions.is_empty() {
            let rows: Vec<Vec<String>> = r
                .transitions
                .iter()
                .map(|t| {
                    vec![
                        t.partition.clone(),
                        t.instance.clone(),
                        format!("{}→{}", t.from, t.to),
                    ]
                })
                .collect();
            out.push_str("send:\n");
            out.push_str(&output::table(&["PARTITION", "INSTANCE", "TRANSITION"], &rows));
        }
        if !r.held.is_empty() {
            let rows: Vec<Vec<String>> = r
                .held
                .iter()
                .map(|h| {
                    let t = &h.transition;
                    vec![
                        t.partition.clone(),
                        t.instance.clone(),
                        format!("{}→{}", t.from, t.to),
                        h.reason.to_string(),
                    ]
                })
                .collect();
            out.push_str("held:\n");
            out.push_str(&output::table(
                &["PARTITION", "INSTANCE", "TRANSITION", "REASON"],
                &rows,
            ));
        }
        out.push('\n');
    }
    let rows: Vec<Vec<String>> = d
        .stats
        .iter()
        .map(|(i, s)| vec![i.clone(), s.replicas.to_string(), s.top_states.to_string()])
        .collect();
    out.push_str(&output::table(&["INSTANCE", "REPLICAS", "TOP STATES"], &rows));
    out.push_str(&format!("replicas moved: {}\n", d.moved));
    if let Some(t) = d.next_recompute_ms {
        out.push_str(&format!("next recomputation at {t} ms\n"));
    }
    out
}
