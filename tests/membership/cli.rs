//! `strand members` against real node processes: JSON and table output, the status filter,
//! exit codes; and a small `strand bench detect` run.

use serde_json::Value;

use super::processes::{free_addr, strand, Cluster};

fn members(c: &Cluster, node: usize, extra: &[&str]) -> std::process::Output {
    strand()
        .args(["members", "--node", &c.addrs[node].to_string(), "--tls-dir"])
        .arg(c.dir.path())
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn members_lists_the_view_and_fails_clearly() {
    let mut c = Cluster::start(3);

    let out = members(&c, 0, &["-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["members"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{doc}");
    assert_eq!(rows[0]["name"], "p0");
    assert_eq!(rows[0]["is_local"], true);
    for r in rows {
        assert_eq!(r["status"], "alive", "{r}");
        assert_eq!(r["roles"], serde_json::json!(["participant"]));
        assert_eq!(r["clusters"], serde_json::json!(["MYCLUSTER"]));
        assert!(r["generation"].as_u64().unwrap() > 0);
    }
    // Remote rows carry last-heard and, once probed, an RTT.
    assert!(rows[1..].iter().all(|r| r["last_heard_ms"].is_u64()), "{doc}");

    let out = members(&c, 1, &[]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    let header = table.lines().next().unwrap();
    for col in [
        "NAME",
        "ADDRESS",
        "GENERATION",
        "STATUS",
        "ROLES",
        "LAST HEARD",
        "RTT",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains("p1 (this node)"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");

    // Kill p2: p0 shows it down, and the status filter keeps only that row.
    let mut victim = c.nodes[2].take().unwrap();
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    super::processes::wait_for("p0 to show p2 down", super::processes::DEADLINE, || {
        let out = members(&c, 0, &["-o", "json", "--status", "down"]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        doc["members"]
            .as_array()
            .is_some_and(|rows| rows.len() == 1 && rows[0]["name"] == "p2")
    });

    // No node there: exit 1 with a clear error.
    let out = strand()
        .args([
            "members",
            "--timeout-ms",
            "500",
            "--node",
            &free_addr().to_string(),
            "--tls-dir",
        ])
        .arg(c.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: cannot get members from"), "{err}");

    // Bad input: usage errors, exit 2.
    let out = members(&c, 0, &["--status", "sleepy"]);
    assert_eq!(out.status.code(), Some(2));
    let out = strand().args(["members", "--node", "nowhere"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = strand()
        .args(["node", "run", "--name", "x", "--role", "boss", "--tls-dir"])
        .arg(c.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));
}

/// With both cores saturated by busy loops: every kill is detected and no live member is
/// declared down.
#[test]
fn bench_detect_under_load_reports_its_figures_and_no_false_down() {
    let out = strand()
        .args([
            "bench", "detect", "--nodes", "4", "--trials", "3", "--leaves", "1", "--load", "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["nodes"], 4);
    assert_eq!(doc["trials"], 3);
    assert_eq!(doc["load"], true);
    for (key, n) in [("first_detect_ms", 3), ("all_detect_ms", 3), ("leave_ms", 1)] {
        for q in ["p50", "max"] {
            assert!(doc[key][q].is_number(), "{key}.{q} in {doc}");
        }
        // A p99 of 3 samples would be their maximum under another name.
        assert!(doc[key]["p99"].is_null(), "{key}.p99 in {doc}");
        assert_eq!(doc[key]["n"], n, "{key}.n in {doc}");
        // Whole milliseconds: the nodes' timestamps have no finer resolution.
        assert_eq!(
            doc[key]["max"].as_f64().unwrap().fract(),
            0.0,
            "{key}.max in {doc}"
        );
    }
    assert_eq!(doc["resolution_ms"], 1);
    assert_eq!(doc["false_positives"], 0, "{doc}");
    assert_eq!(doc["leaves_seen_as_down"], 0, "{doc}");
    assert_eq!(doc["missed"], 0, "{doc}");
}
