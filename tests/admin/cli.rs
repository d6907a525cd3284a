//! The Helix tutorial's admin steps with `strand helix-admin` in place of
//! `./helix-admin.sh`, and `strand admin <noun> <verb>`, against a `strand store run`
//! process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use strand::model::{IdealState, Record};

struct StoreProcess {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Drop for StoreProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(cmd: &mut Command, dir: &std::path::Path) {
    cmd.env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data-home"))
        .env("XDG_CONFIG_HOME", dir.join("config-home"))
        .env("STRAND_TLS_DIR", dir.join("tls"))
        .env_remove("STRAND_STORE")
        .env_remove("STRAND_CONFIG")
        .env("STRAND_EXIT_WITH_PARENT", "1");
}

/// `strand store run` on a free port, its TLS material and data in a temp dir.
fn store() -> StoreProcess {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
    cmd.args(["store", "run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"));
    env(&mut cmd, dir.path());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("store replica 1 listening on "), "{line:?}");
    let addr = line.split_whitespace().nth(5).unwrap().to_string();
    StoreProcess { child, addr, dir }
}

impl StoreProcess {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
        cmd.args(args);
        env(&mut cmd, self.dir.path());
        cmd.output().unwrap()
    }

    /// `strand helix-admin --zkSvr ADDR args…`.
    fn helix(&self, args: &str) -> Output {
        let mut all = vec!["helix-admin", "--zkSvr", &self.addr];
        all.extend(args.split_whitespace());
        self.run(&all)
    }

    /// `strand helix-admin --zkSvr ADDR args…`, each argument as given (rules have spaces).
    fn helix_args(&self, args: &[&str]) -> Output {
        let mut all = vec!["helix-admin", "--zkSvr", &self.addr];
        all.extend(args);
        self.run(&all)
    }

    /// `strand admin args… --store ADDR`.
    fn admin(&self, args: &[&str]) -> Output {
        let mut all = vec!["admin"];
        all.extend(args);
        all.extend(["--store", &self.addr]);
        self.run(&all)
    }
}

fn ok(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status.code());
    assert!(!err.contains("panicked"), "{err}");
    String::from_utf8(out.stdout).unwrap()
}

fn fails(out: Output, code: i32) -> String {
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err:?}");
    err
}

const TUTORIAL_IDEAL_STATE: &str = r#"IdealState for myDB:
{
  "id" : "myDB",
  "mapFields" : {
  },
  "listFields" : {
  },
  "simpleFields" : {
    "IDEAL_STATE_MODE" : "AUTO",
    "NUM_PARTITIONS" : "6",
    "REBALANCE_MODE" : "SEMI_AUTO",
    "REBALANCE_STRATEGY" : "DEFAULT",
    "REPLICAS" : "0",
    "STATE_MODEL_DEF_REF" : "MasterSlave",
    "STATE_MODEL_FACTORY_NAME" : "DEFAULT"
  }
}

No externalView for myDB
"#;

#[test]
fn the_helix_tutorial_runs_step_for_step_with_strand_helix_admin() {
    let s = store();
    assert_eq!(ok(s.helix("--addCluster MYCLUSTER")), "");
    assert_eq!(
        ok(s.admin(&["ls", "/MYCLUSTER"])),
        "CONFIGS\nCONTROLLER\nEXTERNALVIEW\nIDEALSTATES\nINSTANCES\nLIVEINSTANCES\nPROPERTYSTORE\nSTATEMODELDEFS\n"
    );
    assert_eq!(ok(s.helix("--listClusters")), "Existing clusters:\nMYCLUSTER\n");
    assert_eq!(ok(s.admin(&["ls", "/MYCLUSTER/INSTANCES"])), "");

    for port in [12913, 12914, 12915] {
        assert_eq!(ok(s.helix(&format!("--addNode MYCLUSTER localhost:{port}"))), "");
    }
    assert_eq!(
        ok(s.admin(&["ls", "/MYCLUSTER/INSTANCES"])),
        "localhost_12913\nlocalhost_12914\nlocalhost_12915\n"
    );
    // Who did it, what and when: the replica recorded the CLI's administrative writes.
    let audit: serde_json::Value =
        serde_json::from_str(&ok(s.admin(&["audit", "--cluster", "MYCLUSTER", "-o", "json"]))).unwrap();
    let added = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["who"] == "strand-cli"
                && e["roles"] == "admin"
                && e["what"]
                    .to_string()
                    .contains("/MYCLUSTER/CONFIGS/PARTICIPANT/localhost_1291")
                && e["when_ms"].as_u64().is_some_and(|t| t > 0)
        })
        .count();
    assert!(added >= 3, "{audit:#}");
    assert_eq!(
        ok(s.helix("--listClusterInfo MYCLUSTER")),
        "Existing resources in cluster MYCLUSTER:\nInstances in cluster MYCLUSTER:\nlocalhost_12913\nlocalhost_12914\nlocalhost_12915\n"
    );
    let models = ok(s.admin(&["ls", "/MYCLUSTER/STATEMODELDEFS"]));
    for m in [
        "MasterSlave",
        "STORAGE_DEFAULT_SM_SCHEMATA",
        "LeaderStandby",
        "OnlineOffline",
    ] {
        assert!(models.lines().any(|l| l == m), "{m} missing: {models}");
    }

    assert_eq!(ok(s.helix("--addResource MYCLUSTER myDB 6 MasterSlave")), "");
    let stored = ok(s.admin(&["get", "/MYCLUSTER/IDEALSTATES/myDB"]));
    assert_eq!(
        stored,
        TUTORIAL_IDEAL_STATE
            .lines()
            .skip(1)
            .take(16)
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    );
    assert_eq!(
        ok(s.helix("--listResourceInfo MYCLUSTER myDB")),
        TUTORIAL_IDEAL_STATE
    );

    assert_eq!(ok(s.helix("--rebalance MYCLUSTER myDB 3")), "");
    let info = ok(s.helix("--listResourceInfo MYCLUSTER myDB"));
    let json = info
        .strip_prefix("IdealState for myDB:\n")
        .and_then(|r| r.strip_suffix("\n\nNo externalView for myDB\n"))
        .unwrap_or_else(|| panic!("not Helix's layout: {info}"));
    let record = Record::from_json(json).unwrap();
    assert_eq!(record.to_helix_json(), json, "printed as Helix prints it");
    let is = IdealState::new(record);
    assert_eq!(is.record.simple("REPLICAS"), Some("3"));
    let mut masters = std::collections::BTreeMap::<String, usize>::new();
    let mut slaves = std::collections::BTreeMap::<String, usize>::new();
    for p in 0..6 {
        let part = format!("myDB_{p}");
        let list = is.preference_list(&part).unwrap();
        let map = is.instance_state_map(&part).unwrap();
        let mut distinct = list.to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "no instance twice in {part}: {list:?}");
        assert_eq!(map[&list[0]], "MASTER", "{part}");
        for (i, state) in map {
            match state.as_str() {
                "MASTER" => *masters.entry(i.clone()).or_default() += 1,
                "SLAVE" => *slaves.entry(i.clone()).or_default() += 1,
                other => panic!("{part}: {i} is {other}"),
            }
        }
    }
    for i in ["localhost_12913", "localhost_12914", "localhost_12915"] {
        assert_eq!((masters[i], slaves[i]), (2, 4), "{i}");
    }

    // Failures: one line, exit 1 for a refused command, exit 2 for bad usage.
    let err = fails(s.helix("--addCluster MYCLUSTER"), 1);
    assert_eq!(err, "error: cluster MYCLUSTER already exists\n");
    let err = fails(s.helix("--addResource MYCLUSTER myDB 6 MasterSlave"), 1);
    assert!(
        err.contains("resource myDB already exists in cluster MYCLUSTER"),
        "{err}"
    );
    let err = fails(s.helix("--listResourceInfo NOPE myDB"), 1);
    assert!(err.contains("cluster NOPE does not exist"), "{err}");
    let err = fails(s.helix("--frobnicate MYCLUSTER"), 2);
    assert!(err.contains("unknown option --frobnicate"), "{err}");
    let err = fails(s.helix("--addNode MYCLUSTER"), 2);
    assert!(err.contains("--addNode takes 2"), "{err}");
    let err = fails(s.helix("--rebalance MYCLUSTER myDB three"), 2);
    assert!(err.contains("expected a number"), "{err}");

    // The rest of helix-admin's vocabulary, briefly.
    assert_eq!(
        ok(s.helix("--listResources MYCLUSTER")),
        "Existing resources in cluster MYCLUSTER:\nmyDB\n"
    );
    assert_eq!(
        ok(s.helix("--listInstances MYCLUSTER")),
        "Instances in cluster MYCLUSTER:\nlocalhost_12913\nlocalhost_12914\nlocalhost_12915\n"
    );
    ok(s.helix("--enableInstance MYCLUSTER localhost:12915 false"));
    let out = ok(s.helix("--listInstanceInfo MYCLUSTER localhost_12915"));
    assert!(
        out.starts_with("InstanceConfig: {\n  \"id\" : \"localhost_12915\""),
        "{out}"
    );
    assert!(out.contains("\"HELIX_ENABLED\" : \"false\""), "{out}");
    ok(s.helix("--enablePartition false MYCLUSTER localhost_12913 myDB myDB_0 myDB_1"));
    let out = ok(s.helix("--listInstanceInfo MYCLUSTER localhost_12913"));
    assert!(out.contains("\"myDB\" : \"myDB_0,myDB_1\""), "{out}");
    ok(s.helix("--setConfig CLUSTER MYCLUSTER allowParticipantAutoJoin=true"));
    let out = ok(s.helix("--getConfig CLUSTER MYCLUSTER allowParticipantAutoJoin"));
    assert!(out.contains("\"allowParticipantAutoJoin\" : \"true\""), "{out}");
    ok(s.helix("--setConfig RESOURCE=MYCLUSTER,myDB k1=v1"));
    let out = ok(s.helix("--getConfig RESOURCE MYCLUSTER,myDB"));
    assert!(out.contains("\"k1\" : \"v1\""), "{out}");
    ok(s.helix("--setConstraint MYCLUSTER MESSAGE_CONSTRAINT c1 MESSAGE_TYPE=STATE_TRANSITION,INSTANCE=.*,CONSTRAINT_VALUE=1"));
    let out = ok(s.helix("--getConstraints MYCLUSTER MESSAGE_CONSTRAINT"));
    assert!(
        out.contains("\"c1\" : {") && out.contains("\"CONSTRAINT_VALUE\" : \"1\""),
        "{out}"
    );
    ok(s.helix("--enableCluster MYCLUSTER false"));
    assert_eq!(
        ok(s.admin(&["ls", "/MYCLUSTER/CONTROLLER"]))
            .lines()
            .filter(|l| *l == "PAUSE")
            .count(),
        1
    );
    ok(s.helix("--enableCluster MYCLUSTER true"));
    assert!(!ok(s.admin(&["ls", "/MYCLUSTER/CONTROLLER"])).contains("PAUSE"));
    let out = ok(s.helix("--listStateModels MYCLUSTER"));
    assert!(
        out.starts_with("Existing state models:\n") && out.contains("\nMasterSlave\n"),
        "{out}"
    );
    let out = ok(s.helix("--listPartitionInfo MYCLUSTER myDB myDB_0"));
    assert!(
        out.starts_with("IdealState for myDB/myDB_0:\n{\n  \"id\" : \"myDB/myDB_0\""),
        "{out}"
    );
    assert!(out.ends_with("\nNo externalView for myDB/myDB_0\n"), "{out}");

    ok(s.helix("--dropResource MYCLUSTER myDB"));
    assert_eq!(
        ok(s.helix("--listResources MYCLUSTER")),
        "Existing resources in cluster MYCLUSTER:\n"
    );
    ok(s.helix("--dropCluster MYCLUSTER"));
    assert_eq!(ok(s.helix("--listClusters")), "Existing clusters:\n");
}

#[test]
fn strand_admin_nouns_and_verbs_print_tables_and_json() {
    let s = store();
    ok(s.admin(&["cluster", "add", "C"]));
    let out: serde_json::Value =
        serde_json::from_str(&ok(s.admin(&["cluster", "list", "-o", "json"]))).unwrap();
    assert_eq!(out["clusters"], serde_json::json!(["C"]));
    ok(s.admin(&["instance", "add", "C", "localhost:1", "localhost:2"]));
    ok(s.admin(&[
        "resource",
        "add",
        "C",
        "db",
        "4",
        "MasterSlave",
        "--mode",
        "AUTO_REBALANCE",
    ]));
    let out = ok(s.admin(&["resource", "rebalance", "C", "db", "2"]));
    assert!(out.starts_with("IdealState for db:\n"), "{out}");

    let info: serde_json::Value =
        serde_json::from_str(&ok(s.admin(&["resource", "info", "C", "db", "-o", "json"]))).unwrap();
    assert_eq!(info["ideal_state"]["simpleFields"]["REPLICAS"], "2");
    assert_eq!(info["ideal_state"]["simpleFields"]["REBALANCE_MODE"], "FULL_AUTO");
    assert_eq!(info["external_view"], serde_json::Value::Null);
    assert_eq!(info["ideal_state"]["mapFields"].as_object().unwrap().len(), 4);

    ok(s.admin(&["instance", "disable", "C", "localhost_2"]));
    ok(s.admin(&["instance", "tag", "C", "localhost_1", "ssd"]));
    let out = ok(s.admin(&["instance", "list", "C"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["INSTANCE", "ENABLED", "LIVE", "TAGS", "ZONE"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["localhost_1", "yes", "no", "ssd"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["localhost_2", "no", "no"]
    );
    let list: serde_json::Value =
        serde_json::from_str(&ok(s.admin(&["instance", "list", "C", "-o", "json"]))).unwrap();
    assert_eq!(list["instances"][1]["enabled"], false);

    ok(s.admin(&["config", "set", "PARTITION=C,db,db_0", "k=v"]));
    let got: serde_json::Value = serde_json::from_str(&ok(s.admin(&[
        "config",
        "get",
        "PARTITION=C,db,db_0",
        "-o",
        "json",
    ])))
    .unwrap();
    assert_eq!(got["values"], serde_json::json!({"k": "v"}));
    ok(s.admin(&["cluster", "maintenance", "C", "on", "--reason", "disk swap"]));
    let info: serde_json::Value =
        serde_json::from_str(&ok(s.admin(&["cluster", "info", "C", "-o", "json"]))).unwrap();
    assert_eq!(info["maintenance"]["simpleFields"]["REASON"], "disk swap");
    assert_eq!(info["maintenance"]["simpleFields"]["TRIGGERED_BY"], "USER");

    let err = fails(s.admin(&["config", "set", "NODE=C", "k=v"]), 2);
    assert!(err.contains("PARTICIPANT=C,INSTANCE"), "{err}");
    let err = fails(
        s.admin(&[
            "resource",
            "add",
            "C",
            "x",
            "4",
            "MasterSlave",
            "--mode",
            "SIDEWAYS",
        ]),
        2,
    );
    assert!(err.contains("FULL_AUTO"), "{err}");
    let err = fails(s.admin(&["instance", "drop", "C", "localhost_1"]), 1);
    assert_eq!(
        err,
        "error: instance localhost_1 is enabled in cluster C; disable it before dropping it\n"
    );
    let err = fails(
        s.admin(&["partition", "reset", "C", "localhost_1", "db", "db_0"]),
        1,
    );
    assert_eq!(err, "error: instance localhost_1 is not live in cluster C\n");
    let err = fails(s.admin(&["resource", "info", "NOPE", "db"]), 1);
    assert_eq!(err, "error: cluster NOPE does not exist\n");
}

#[test]
fn alert_rules_stats_health_and_status_from_the_command_line() {
    let s = store();
    ok(s.helix("--addCluster H"));
    ok(s.helix("--addNode H localhost:12913"));
    ok(s.helix("--addResource H db 2 MasterSlave"));

    assert_eq!(
        ok(s.admin(&[
            "alert",
            "add",
            "--cluster",
            "H",
            "avg(latency_ms)[resource=*] > 50"
        ])),
        "alert rule AVG(latency_ms)[RESOURCE=*] > 50 added\n"
    );
    // helix-admin's --addAlert / --addStat write the same records.
    assert_eq!(
        ok(s.helix_args(&["--addAlert", "H", "SUM(errors)[INSTANCE=*] >= 3"])),
        ""
    );
    ok(s.helix_args(&["--addStat", "H", "WINDOW(5)(latency_ms)"]));
    assert_eq!(
        ok(s.admin(&["stat", "ls", "--cluster", "H"])),
        "STAT\nWINDOW(5)(latency_ms)\n"
    );
    let ls = ok(s.admin(&["alert", "ls", "--cluster", "H"]));
    assert_eq!(
        ls,
        "RULE                              STATE  SCOPE  VALUE  SINCE\n\
         AVG(latency_ms)[RESOURCE=*] > 50  ok\n\
         SUM(errors)[INSTANCE=*] >= 3      ok\n"
    );
    let health: serde_json::Value =
        serde_json::from_str(&ok(s.admin(&["health", "--cluster", "H", "-o", "json"]))).unwrap();
    assert_eq!(health["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(health["stats"], serde_json::json!(["WINDOW(5)(latency_ms)"]));
    assert_eq!(health["aggregates"], serde_json::json!([]));
    assert!(ok(s.admin(&["health", "--cluster", "H"])).starts_with("no aggregates yet"));

    // Bad rules and unknown ones: one clear line, usage errors exit 2.
    let err = fails(
        s.admin(&["alert", "add", "--cluster", "H", "MAX(x)[RESOURCE=*] > 1"]),
        2,
    );
    assert!(
        err.contains("unknown aggregation \"MAX\"") && err.contains("column 1"),
        "{err}"
    );
    let err = fails(s.helix_args(&["--addAlert", "H", "AVG(x) > 1"]), 2);
    assert!(err.contains("expected a selector"), "{err}");
    let err = fails(
        s.admin(&["alert", "add", "--cluster", "H", "SUM(errors)[INSTANCE=*] >= 3"]),
        1,
    );
    assert!(err.contains("already exists"), "{err}");
    let err = fails(
        s.admin(&["alert", "rm", "--cluster", "H", "AVG(nope)[INSTANCE=*] > 1"]),
        1,
    );
    assert!(err.contains("has no alert rule"), "{err}");
    let err = fails(s.admin(&["health", "--cluster", "NOPE"]), 1);
    assert_eq!(err, "error: cluster NOPE does not exist\n");

    ok(s.admin(&["alert", "rm", "--cluster", "H", "AVG(latency_ms)[RESOURCE=*]>50"]));
    ok(s.helix_args(&["--dropAlert", "H", "SUM(errors)[INSTANCE=*] >= 3"]));
    ok(s.helix_args(&["--dropStat", "H", "WINDOW(5)(latency_ms)"]));
    let ls: serde_json::Value =
        serde_json::from_str(&ok(s.admin(&["alert", "ls", "--cluster", "H", "-o", "json"]))).unwrap();
    assert_eq!(ls["alerts"], serde_json::json!([]));

    // `strand status`: no controller, one instance not live, the resource not converged.
    let out = ok(s.run(&["status", "--cluster", "H", "--store", &s.addr]));
    assert!(out.contains("controller  NONE leads"), "{out}");
    assert!(out.contains("instances (0 of 1 live)"), "{out}");
    assert!(out.contains("localhost_12913  OFFLINE"), "{out}");
    assert!(out.contains("resources (0 of 1 converged)"), "{out}");
    assert!(out.contains("2 without top state"), "{out}");
    assert!(out.contains("alerts      none firing"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&ok(s.run(&[
        "status",
        "--cluster",
        "H",
        "-o",
        "json",
        "--store",
        &s.addr,
    ])))
    .unwrap();
    assert_eq!(json["leader"], serde_json::Value::Null);
    assert_eq!(json["resources"][0]["converged"], false);
    assert_eq!(json["instances"][0]["live"], false);
    let err = fails(s.run(&["status", "--cluster", "a/b", "--store", &s.addr]), 2);
    assert!(err.contains("cannot contain '/'"), "{err}");
}
