//! The examples in `examples/`, run as tests: each example's `run` is the code `cargo run
//! --example NAME` runs, and its result is checked here.

#[allow(dead_code)]
#[path = "../examples/live_config.rs"]
mod live_config;

use live_config::Limits;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_config_applies_each_change_in_order_with_its_old_value() {
    let (initial, seen) = live_config::run(false).await.unwrap();
    assert_eq!(
        initial,
        Limits {
            max_qps: 200,
            timeout_ms: 1_000
        },
        "the value set before the service started, and the default of the unset key"
    );
    let changes: Vec<_> = seen
        .iter()
        .map(|(c, l)| (c.key.clone(), c.old.clone(), c.new.clone(), *l))
        .collect();
    assert_eq!(
        changes,
        vec![
            (
                "max_qps".to_string(),
                Some("200".to_string()),
                Some("500".to_string()),
                Limits {
                    max_qps: 500,
                    timeout_ms: 1_000
                }
            ),
            (
                "timeout_ms".to_string(),
                None,
                Some("250".to_string()),
                Limits {
                    max_qps: 500,
                    timeout_ms: 250
                }
            ),
        ]
    );
    assert!(seen[0].0.revision < seen[1].0.revision);
}

#[test]
fn live_config_limits_fall_back_to_defaults_on_removed_or_bad_values() {
    let l = Limits::default().apply("max_qps", Some("7"));
    assert_eq!(l.max_qps, 7);
    assert_eq!(
        l.apply("max_qps", Some("lots")).max_qps,
        Limits::default().max_qps
    );
    assert_eq!(l.apply("max_qps", None).max_qps, Limits::default().max_qps);
    assert_eq!(l.apply("other", Some("1")), l);
}

#[allow(dead_code)]
#[path = "../examples/bootstrap.rs"]
mod bootstrap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_a_new_replica_holds_every_key_of_its_partitions() {
    // 100 keys over 6 partitions: ~17 a partition, more than one 16-entry chunk.
    let out = bootstrap::run(100, false).await.unwrap();
    assert_eq!(out.written.len(), 110);
    assert!(!out.new_node.is_empty(), "the new node hosts no replica");
    // The keys came by the bootstrap, before the replica was SLAVE, not by keeping up after.
    assert!(
        out.bootstrapped.values().sum::<usize>() > 0,
        "the new node copied nothing before it became SLAVE: {:?}",
        out.bootstrapped
    );
    for (partition, held) in &out.new_node {
        let expected: std::collections::BTreeMap<_, _> = out
            .written
            .iter()
            .filter(|(k, _)| bootstrap::partition_of(k) == *partition)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(held, &expected, "{partition} on the new node");
    }
}

/// Builds the `embedded_kv` example (a no-op when it is current) and the `strand` binary it
/// runs the store and controller with, and returns the example's path.
fn embedded_kv_binary() -> std::path::PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--example", "embedded_kv"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example embedded_kv failed");
    let strand = std::path::PathBuf::from(env!("CARGO_BIN_EXE_strand"));
    strand.parent().unwrap().join("examples").join("embedded_kv")
}

#[test]
fn embedded_kv_requests_resume_at_a_new_master_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(embedded_kv_binary())
        .arg("40")
        .env("STRAND_EXE", env!("CARGO_BIN_EXE_strand"))
        .env("EMBEDDED_KV_DIR", dir.path())
        // The leader's view of each round, for the logs shown when the run fails.
        .env("STRAND_LOG", "info,strand::controller::leader=debug")
        .output()
        .expect("the example runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        log_tails(dir.path(), 80)
    );
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in {text}"))
            .to_string()
    };
    // "<phase>: <ok> ok, <failed> failed, latency …": every request is counted; requests
    // succeed before the kill and after it (a timeout under load may fail one or two).
    let counts = |name: &str| -> (usize, usize) {
        let l = line(name);
        let words: Vec<&str> = l.split_whitespace().collect();
        (words[1].parse().unwrap(), words[3].parse().unwrap())
    };
    for name in ["before:", "after:"] {
        let (ok, failed) = counts(name);
        assert_eq!(ok + failed, 40, "{text}");
        assert!(ok >= 30, "{text}");
    }
    // "<old> SIGKILLed; requests failed for <duration>, then resumed at <new>"
    let summary = line("node_");
    let (old, rest) = summary
        .split_once(" SIGKILLed; requests failed for ")
        .expect(&summary);
    let (window, new) = rest.split_once(", then resumed at ").expect(&summary);
    assert_ne!(old, new.trim(), "{summary}");
    assert!(
        window.ends_with('s') && window.chars().next().unwrap().is_ascii_digit(),
        "{summary}"
    );
}

/// The last `n` lines of each process log in `dir`, for a failure's message.
fn log_tails(dir: &std::path::Path, n: usize) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
    logs.sort();
    let mut out = String::new();
    for path in logs {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!(
            "==== {} (last {n} of {} lines)\n",
            path.display(),
            lines.len()
        ));
        for l in &lines[lines.len().saturating_sub(n)..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}
