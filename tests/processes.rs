//! The runtime as real processes (`strand store run`, `strand controller run`,
//! `strand participant run`), where the process boundary is the point: SIGKILL, and a
//! controller paused by SIGSTOP and resumed after a takeover. After each test, the
//! participants' transition logs are checked for two MASTERs at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use strand::admin::{AddResource, Admin};
use strand::cli::local_cluster::LocalCluster;
use strand::model::RebalanceMode;
use strand::participant::audit;
use strand::spectator::Spectator;

const WAIT: Duration = Duration::from_secs(30);

fn local(cluster: &str) -> LocalCluster {
    LocalCluster::new(None, cluster)
        .unwrap()
        .with_exe(env!("CARGO_BIN_EXE_strand"))
}

async fn wait_for(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn admin_of(cluster: &LocalCluster) -> Admin {
    let admin = Admin::new(cluster.client().unwrap());
    let deadline = Instant::now() + WAIT;
    while admin.list_clusters().await.is_err() {
        assert!(Instant::now() < deadline, "the store never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin
}

fn assert_never_two_masters(cluster: &LocalCluster) {
    let lines = audit::parse_lines(&cluster.transition_log());
    assert!(!lines.is_empty(), "no participant reported a transition");
    let v = audit::violations(&lines, "MASTER", 1, &cluster.ends);
    assert!(v.is_empty(), "two MASTERs at once: {v:#?}");
}

fn one_master_each(states: &BTreeMap<String, BTreeMap<String, String>>, n: usize) -> bool {
    states.len() == n
        && states
            .values()
            .all(|m| m.values().filter(|s| *s == "MASTER").count() == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_master_is_replaced_and_a_paused_old_controller_changes_nothing_when_resumed() {
    let mut cluster = local("PROC");
    cluster.start_store(1).unwrap();
    let admin = admin_of(&cluster).await;
    admin.add_cluster("PROC").await.unwrap();
    for i in 0..3 {
        admin
            .add_instance("PROC", &format!("localhost:{}", 12913 + i))
            .await
            .unwrap();
    }
    let mut spec = AddResource::new(6, "MasterSlave");
    spec.mode = RebalanceMode::FullAuto;
    admin.add_resource("PROC", "db", &spec).await.unwrap();
    admin
        .set_resource_property("PROC", "db", "REPLICAS", "3")
        .await
        .unwrap();
    let spectator = Spectator::connect(cluster.client().unwrap(), "PROC")
        .await
        .unwrap();
    cluster.start_controller("ctl-a").unwrap();
    wait_for("ctl-a to lead", || cluster.leading_controller().is_some()).await;
    cluster.start_controller("ctl-b").unwrap();
    let instances: Vec<String> = (0..3).map(|i| format!("localhost_{}", 12913 + i)).collect();
    for i in &instances {
        cluster.start_participant(i, &[]).unwrap();
    }
    wait_for("convergence", || {
        let s = spectator.table().states("db");
        one_master_each(&s, 6) && s.values().all(|m| m.len() == 3)
    })
    .await;

    // `strand status`: the leader, the standby from the leader's gossip, three live
    // instances, the resource converged. The routing table can show one MASTER each while
    // the controller still moves a MASTER for balance, so status is asked until it says
    // converged (a status that never does fails below).
    let (leader, epoch, _) = cluster.leading_controller().unwrap();
    let status_now = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(["status", "--cluster", "PROC", "-o", "json", "--store"])
            .arg(cluster.store_addrs[0].to_string())
            .env("STRAND_TLS_DIR", cluster.tls_dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let deadline = Instant::now() + WAIT;
    let mut status = status_now();
    while status["resources"][0]["converged"] != serde_json::json!(true) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = status_now();
    }
    assert_eq!(status["leader"]["name"], serde_json::json!(leader), "{status}");
    assert_eq!(status["leader"]["epoch"], serde_json::json!(epoch), "{status}");
    let standby = if leader == "ctl-a" { "ctl-b" } else { "ctl-a" };
    assert_eq!(status["standbys"], serde_json::json!([standby]), "{status}");
    assert_eq!(
        status["resources"][0]["converged"],
        serde_json::json!(true),
        "{status}"
    );
    let live = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["live"] == serde_json::json!(true))
        .count();
    assert_eq!(live, 3, "{status}");

    // SIGKILL the participant with the most MASTERs.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for m in spectator.table().states("db").values() {
        for (i, s) in m {
            if s == "MASTER" {
                *counts.entry(i.clone()).or_default() += 1;
            }
        }
    }
    let victim = counts.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
    cluster.end_participant(&victim, false).unwrap();
    wait_for("a MASTER for every partition without the victim", || {
        let s = spectator.table().states("db");
        one_master_each(&s, 6) && s.values().all(|m| !m.contains_key(&victim))
    })
    .await;
    cluster.start_participant(&victim, &[]).unwrap();
    wait_for("the victim back", || {
        let s = spectator.table().states("db");
        one_master_each(&s, 6) && s.values().all(|m| m.len() == 3)
    })
    .await;

    // Pause the leading controller; the standby takes over and acts.
    let (old, old_epoch, _) = cluster.leading_controller().unwrap();
    cluster.controllers[&old].signal(Signal::SIGSTOP);
    wait_for("the standby to lead", || {
        cluster
            .leading_controller()
            .is_some_and(|(n, e, _)| n != old && e > old_epoch)
    })
    .await;
    let mut spec = AddResource::new(2, "OnlineOffline");
    spec.mode = RebalanceMode::FullAuto;
    admin.add_resource("PROC", "after", &spec).await.unwrap();
    admin
        .set_resource_property("PROC", "after", "REPLICAS", "2")
        .await
        .unwrap();
    wait_for("the new leader to place the new resource", || {
        let s = spectator.table().states("after");
        s.len() == 2
            && s.values()
                .all(|m| m.len() == 2 && m.values().all(|st| st == "ONLINE"))
    })
    .await;

    // Resume the old leader: it finds itself fenced and stands by; nothing it sends runs.
    let resumed_us = strand::participant::now_us();
    cluster.controllers[&old].signal(Signal::SIGCONT);
    wait_for("the old leader to stand by", || {
        cluster.controllers[&old]
            .lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l.text).ok())
            .any(|v| v["role"] == "standby")
    })
    .await;
    // A change after the resume is still carried out by the new leader only.
    cluster.end_participant(&instances[0], false).unwrap();
    wait_for("failover under the new leader", || {
        let s = spectator.table().states("db");
        one_master_each(&s, 6) && s.values().all(|m| !m.contains_key(&instances[0]))
    })
    .await;
    let log = audit::parse_lines(&cluster.transition_log());
    let raw = cluster.transition_log();
    let stale_runs = raw
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["epoch"].as_u64() == Some(old_epoch)
                && v["phase"] == "begin"
                && v["ts_us"].as_u64().is_some_and(|t| t > resumed_us)
        })
        .count();
    assert_eq!(
        stale_runs, 0,
        "a transition of the stale leader ran after it resumed"
    );
    assert!(!log.is_empty());
    assert_never_two_masters(&cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_accept_helix_options_and_print_their_transitions() {
    let mut cluster = local("MYCLUSTER");
    cluster.start_store(1).unwrap();
    let admin = admin_of(&cluster).await;
    admin.add_cluster("MYCLUSTER").await.unwrap();
    admin.add_instance("MYCLUSTER", "localhost:12913").await.unwrap();
    admin
        .add_resource("MYCLUSTER", "myDB", &AddResource::new(2, "MasterSlave"))
        .await
        .unwrap();
    admin.rebalance("MYCLUSTER", "myDB", 1, None).await.unwrap();
    cluster.start_controller("ctl").unwrap();
    // start-helix-participant.sh's options, verbatim (the instance name comes from them).
    let mut p = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
        .args([
            "participant",
            "run",
            "--zkSvr",
            &cluster.store_flag(),
            "--cluster",
            "MYCLUSTER",
            "--host",
            "localhost",
            "--port",
            "12913",
            "--stateModelType",
            "MasterSlave",
            "--fail",
            "myDB_1:OFFLINE-SLAVE",
        ])
        .env("STRAND_TLS_DIR", cluster.tls_dir())
        .env("STRAND_EXIT_WITH_PARENT", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = p.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&l) {
                sink.lock().unwrap().push(v);
            }
        }
    });
    wait_for("myDB_0 MASTER and myDB_1 in ERROR", || {
        let l = lines.lock().unwrap();
        l.iter()
            .any(|v| v["partition"] == "myDB_0" && v["to"] == "MASTER" && v["phase"] == "ok")
            && l.iter()
                .any(|v| v["partition"] == "myDB_1" && v["to"] == "SLAVE" && v["phase"] == "error")
    })
    .await;
    let first = lines.lock().unwrap()[0].clone();
    for key in [
        "ts_us",
        "instance",
        "session",
        "resource",
        "partition",
        "from",
        "to",
        "phase",
        "msg_id",
        "epoch",
    ] {
        assert!(first.get(key).is_some(), "no {key} in {first}");
    }
    assert_eq!(first["instance"], "localhost_12913");
    assert!(first["epoch"].as_u64().unwrap() > 0);
    let _ = p.kill();
    let _ = p.wait();
}

#[test]
fn bad_participant_and_controller_arguments_get_one_clear_line_and_exit_2() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["participant", "run", "--cluster", "C"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--instance"), "{err}");
    let (code, err) = run(&[
        "participant",
        "run",
        "--cluster",
        "C",
        "--instance",
        "a",
        "--fail",
        "nonsense",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("PARTITION:FROM-TO"), "{err}");
    let (code, err) = run(&["participant", "run", "--cluster", "C", "--instance", "bad name!"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&["controller", "run", "--cluster", "C", "--mode", "WEIRD"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs `strand helix-admin --zkSvr STORE ARGS…` and returns its stdout (fails the test on a
/// non-zero exit).
fn helix_admin(cluster: &LocalCluster, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
        .arg("helix-admin")
        .args(["--zkSvr", &cluster.store_addrs[0].to_string()])
        .args(args)
        .env("STRAND_TLS_DIR", cluster.tls_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helix-admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The record printed after `heading` in `--listResourceInfo` output.
fn printed_record(text: &str, heading: &str) -> Option<strand::model::Record> {
    let start = text.find(heading)? + heading.len();
    let rest = &text[start..];
    let end = rest.find("\n}").map(|i| i + 2)?;
    strand::model::Record::from_json(rest[..end].trim()).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_with_helix_admin_options_verbatim() {
    let mut cluster = local("MYCLUSTER");
    cluster.start_store(1).unwrap();
    admin_of(&cluster).await;
    helix_admin(&cluster, &["--addCluster", "MYCLUSTER"]);
    for port in ["12913", "12914", "12915"] {
        helix_admin(
            &cluster,
            &["--addNode", "MYCLUSTER", &format!("localhost:{port}")],
        );
    }
    helix_admin(
        &cluster,
        &["--addResource", "MYCLUSTER", "myDB", "6", "MasterSlave"],
    );
    let before = helix_admin(&cluster, &["--listResourceInfo", "MYCLUSTER", "myDB"]);
    assert!(before.contains("No externalView for myDB"), "{before}");
    helix_admin(&cluster, &["--rebalance", "MYCLUSTER", "myDB", "3"]);
    cluster.start_controller("controller").unwrap();
    for port in [12913, 12914, 12915] {
        // start-helix-participant.sh's options.
        let instance = format!("localhost_{port}");
        cluster
            .start_participant(
                &instance,
                &["--stateModelType".to_string(), "MasterSlave".to_string()],
            )
            .unwrap();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let text = helix_admin(&cluster, &["--listResourceInfo", "MYCLUSTER", "myDB"]);
        let ideal = printed_record(&text, "IdealState for myDB:").expect("an ideal state is printed");
        if let Some(ev) = printed_record(&text, "ExternalView for myDB:") {
            if ev.map_fields == ideal.map_fields {
                // The tutorial's shape: 2 MASTERs and 4 SLAVEs per instance.
                for i in ["localhost_12913", "localhost_12914", "localhost_12915"] {
                    let masters = ev
                        .map_fields
                        .values()
                        .filter(|m| m.get(i).map(String::as_str) == Some("MASTER"))
                        .count();
                    let slaves = ev
                        .map_fields
                        .values()
                        .filter(|m| m.get(i).map(String::as_str) == Some("SLAVE"))
                        .count();
                    assert_eq!((masters, slaves), (2, 4), "{i}: {text}");
                }
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the external view never equalled the ideal state:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_never_two_masters(&cluster);
}

/// `strand bench chaos` (issue 19 §3) with the faults that go through the transport's fault
/// layer and a pause: each must take effect (the cluster serves again without the target
/// while the fault holds, which it cannot if the target still answers; each is held 8 s, far
/// beyond a failover, so a busy machine does not fail it), heal, and leave no invariant
/// broken.
#[test]
fn chaos_with_isolation_a_one_way_cut_and_a_pause_breaks_no_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["bench", "chaos", "--json", "--minutes", "10", "--count", "3"])
        .args(["--hold-ms", "8000", "--participants", "4"])
        .args([
            "--faults",
            "isolate_participant,mute_participant,pause_participant",
        ])
        .arg("--dir")
        .arg(dir.path())
        .env("STRAND_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{report}");
    assert_eq!(report["violations"]["total"], 0, "{report}");
    let log = report["faults"]["log"].as_array().unwrap();
    let kinds: std::collections::BTreeSet<&str> = log.iter().map(|f| f["fault"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["isolate_participant", "mute_participant", "pause_participant"],
        "{report}"
    );
    for f in log {
        assert!(f["served_ms"].is_number(), "the fault never took effect: {f}");
        assert!(f["settle_ms"].is_number(), "never healed: {f}");
    }
    assert!(report["operations"]["store"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["operations"]["transitions"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["store"]["verdict"], "Linearizable", "{report}");
}
