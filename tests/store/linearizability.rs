//! `strand bench linearizability` as a test (issue 19 §2): three replica processes, clients
//! doing gets, puts, compare-and-sets and transactions over three keys while the leader is
//! SIGKILLed and then SIGSTOPped; the history must be linearizable and the watch streams
//! right, with lease reads and with read-index reads. The harness is shown able to fail: a
//! stale read planted in the recorded history is caught, and so are gets served from the
//! client's cache while recorded as linearizable.

use std::process::Command;

use strand::check::linearizability::{check, Call, Operation, Ret, Verdict, Versioned};

/// Runs the bench for a few seconds; returns its report and whether it exited 0.
fn bench(extra: &[&str], history: Option<&std::path::Path>) -> (serde_json::Value, bool) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
    cmd.args([
        "bench",
        "linearizability",
        "--json",
        "--seconds",
        "6",
        "--faults",
        "2",
    ])
    .args(["--clients", "4", "--watchers", "1"])
    .args(extra)
    .env("STRAND_LOG", "warn");
    if let Some(h) = history {
        cmd.arg("--history-out").arg(h);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("{report}");
    (report, out.status.success())
}

/// The report of a run that must hold: faults injected, operations of every kind with
/// answers, a linearizable verdict and clean watch streams.
fn assert_clean(report: &serde_json::Value, mode: &str) {
    let m = &report["modes"][0];
    assert_eq!(m["read_mode"], mode);
    assert_eq!(m["faults"]["kills"], 1, "{m}");
    assert_eq!(m["faults"]["pauses"], 1, "{m}");
    for kind in ["get", "put", "cas", "txn"] {
        assert!(m["ops"][kind].as_u64().unwrap() > 0, "no {kind} recorded: {m}");
    }
    assert_eq!(m["verdict"], "Linearizable", "{m}");
    assert!(m["watches"][0]["events"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(m["watches"][0]["violations"], serde_json::json!([]), "{m}");
    assert_eq!(report["violations"], 0);
}

#[test]
fn history_across_a_leader_kill_and_pause_is_linearizable_with_lease_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let (report, ok) = bench(&["--read-modes", "lease"], Some(&path));
    assert_clean(&report, "lease");
    assert!(ok);

    // The same recorded history with one stale read planted in it: a read, after everything
    // else, of a key's first version when the key was written again later.
    let mut history: Vec<Operation> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(check(&history), Verdict::Linearizable);
    let first_put = |version: u64| {
        history.iter().find_map(|o| match (&o.call, &o.ret) {
            (Call::Put { key, value } | Call::Cas { key, value, .. }, Ret::Written { version: v })
                if *v == version =>
            {
                Some((key.clone(), *value))
            }
            _ => None,
        })
    };
    let (key, value) = first_put(1).expect("some write made version 1");
    assert!(first_put(2).is_some(), "some key was written twice");
    let end = history.iter().map(|o| o.complete).max().unwrap() + 1;
    history.push(Operation {
        client: 99,
        call: Call::Get { key: key.clone() },
        ret: Ret::Get(Some(Versioned { value, version: 1 })),
        invoke: end,
        complete: end + 1,
    });
    match check(&history) {
        Verdict::NotLinearizable(v) => {
            assert!(v.keys.contains(&key));
            assert!(v.unplaced.contains(&(history.len() - 1)), "{v:?}");
        }
        other => panic!("the planted stale read passed: {other:?}"),
    }
}

#[test]
fn history_across_a_leader_kill_and_pause_is_linearizable_with_read_index_reads() {
    let (report, ok) = bench(&["--read-modes", "read-index"], None);
    assert_clean(&report, "read-index");
    assert!(ok);
}

#[test]
fn gets_served_from_the_cache_as_if_linearizable_are_caught() {
    let (report, ok) = bench(&["--read-modes", "lease", "--gets", "cache"], None);
    let m = &report["modes"][0];
    assert!(
        m["verdict"].get("not_linearizable").is_some(),
        "cached gets lag other clients' writes, yet the history passed: {m}"
    );
    assert!(!ok, "the bench exits non-zero on a violation");
}
