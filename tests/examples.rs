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
