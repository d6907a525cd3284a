//! `/metrics` of a live embedded cluster after real activity: every family the README lists
//! for the gossip, the store, the controller, the participants and messaging is there, with
//! values that follow from what the test did. And the Grafana dashboard in `deploy/` queries
//! only metrics the README lists, and covers each of them.
//!
//! One test per binary on purpose: the recorder is process-wide, so the counts below are
//! this cluster's alone.

#[path = "http_support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use strand::messaging::{AppMessage, Criteria, HandlerFn, Outgoing};
use support::*;

/// The samples of `/metrics`: (name, labels as `k="v"` strings, value).
fn samples(text: &str) -> Vec<(String, Vec<String>, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let value: f64 = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect();
            Some((name.to_string(), labels, value))
        })
        .collect()
}

/// The sum of every series of `name` carrying all of `labels`; `None` if there is none.
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let matching: Vec<f64> = samples(text)
        .into_iter()
        .filter(|(n, ls, _)| n == name && labels.iter().all(|l| ls.iter().any(|x| x == l)))
        .map(|(_, _, v)| v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

async fn scrape(base: &str) -> String {
    let (status, body) = get(base, "/metrics").await;
    assert_eq!(status, 200);
    body.as_str().expect("text exposition").to_string()
}

/// Scrapes until `pred` holds (counters trail the activity by a round or an upkeep).
async fn scrape_until(base: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(base).await;
        if pred(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const WEB: &str = r#"cluster="WEB""#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_every_module_follow_the_cluster_activity() {
    let f = start(181, false).await;
    wait_ev(&f.admin, "convergence", |ev| converged(ev, 3, "")).await;

    // 4 partitions × 3 replicas: at least 12 OFFLINE→SLAVE and 4 SLAVE→MASTER were sent and
    // have completed; the controller counts a completion at the round after it.
    let text = scrape_until(&f.base, "16 completed transitions", |t| {
        value(t, "strand_controller_transitions_completed_total", &[WEB]).unwrap_or(0.0) >= 16.0
    })
    .await;
    let sent = value(&text, "strand_controller_transitions_sent_total", &[WEB]).unwrap();
    assert!(sent >= 16.0, "{text}");
    assert_eq!(
        value(&text, "strand_controller_transitions_failed_total", &[WEB]),
        Some(0.0)
    );
    // web_0's own count of transitions run is part of what the controller sent.
    let ran = value(&text, "strand_participant_transitions_total", &[r#"phase="ok""#]).unwrap();
    assert!(ran >= 1.0 && sent >= ran, "sent {sent}, web_0 ran {ran}");
    let rounds = value(&text, "strand_controller_rounds_total", &[WEB]).unwrap();
    assert!(rounds >= 1.0);
    assert_eq!(
        value(&text, "strand_controller_round_duration_seconds_count", &[WEB]),
        Some(rounds),
        "one duration per round"
    );
    assert_eq!(
        value(
            &text,
            "strand_controller_leadership_changes_total",
            &[WEB, r#"to="leader""#]
        ),
        Some(1.0)
    );
    assert!(value(&text, "strand_controller_transitions_throttled_total", &[WEB]).is_some());
    // Converged: every partition has its MASTER and all three replicas active.
    let text = scrape_until(&f.base, "healthy partitions", |t| {
        value(t, "strand_controller_partitions_missing_top_state", &[WEB]) == Some(0.0)
            && value(t, "strand_controller_partitions_below_min_active", &[WEB]) == Some(0.0)
    })
    .await;
    assert_eq!(
        value(
            &text,
            "strand_participant_transitions_in_flight",
            &[r#"instance="web_0""#]
        ),
        Some(0.0)
    );

    // The store: writes (sessions, messages, current states) were proposed and applied,
    // the log was fsynced, the admin's reads were served, the controller watches.
    for family in [
        "strand_store_write_seconds_count",
        "strand_store_fsync_seconds_count",
        "strand_store_read_seconds_count",
    ] {
        assert!(
            value(&text, family, &[]).unwrap_or(0.0) >= 1.0,
            "{family}: {text}"
        );
    }
    assert!(value(&text, "strand_store_commit_index", &[]).unwrap() >= 1.0);
    assert!(value(&text, "strand_store_watchers", &[]).is_some(), "{text}");
    // The disk: not stalled, and its free space measured.
    assert_eq!(
        value(&text, "strand_store_disk_stalled", &[]),
        Some(0.0),
        "{text}"
    );
    assert!(
        value(&text, "strand_store_disk_free_bytes", &[]).unwrap_or(0.0) > 0.0,
        "{text}"
    );

    // The gossip probes members and times the round trips.
    let text = scrape_until(&f.base, "probe round trips", |t| {
        value(t, "strand_membership_probe_rtt_seconds_count", &[]).unwrap_or(0.0) >= 1.0
    })
    .await;
    for family in [
        "strand_membership_suspicions_total",
        "strand_membership_false_suspicions_total",
        "strand_membership_refutations_total",
    ] {
        assert!(value(&text, family, &[]).is_some(), "{family}: {text}");
    }

    // Messaging: one answered send_and_wait, one that times out, one to no handler.
    let web_1 = &f.cluster.participants["web_1"];
    web_1.messaging().register_handler(
        "ECHO",
        None,
        HandlerFn(|m: AppMessage| async move { Ok(json!(m.body)) }),
    );
    web_1.messaging().register_handler(
        "SLOW",
        None,
        HandlerFn(|_m: AppMessage| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(json!("late"))
        }),
    );
    let sender = f.cluster.participants["web_0"].messaging();
    let to_web_1 = Criteria::parse("instanceName=web_1").unwrap();
    let r = sender
        .send_and_wait(&to_web_1, Outgoing::new("ECHO").body(json!("hi")), WAIT)
        .await
        .unwrap();
    assert_eq!(r.replies.len(), 1, "{r:?}");
    let r = sender
        .send_and_wait(&to_web_1, Outgoing::new("SLOW"), Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(r.timed_out.len(), 1, "{r:?}");
    let r = sender.send(&to_web_1, Outgoing::new("NOBODY")).await.unwrap();
    assert_eq!(r.failed.len(), 1, "{r:?}");
    let text = scrape(&f.base).await;
    assert_eq!(value(&text, "strand_messaging_messages_total", &[]), Some(3.0));
    assert_eq!(value(&text, "strand_messaging_timeouts_total", &[]), Some(1.0));
    assert_eq!(value(&text, "strand_messaging_failures_total", &[]), Some(1.0));
    assert_eq!(
        value(
            &text,
            "strand_messaging_send_duration_seconds_count",
            &[r#"wait="false""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "strand_messaging_send_duration_seconds_count",
            &[r#"wait="true""#]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "strand_messaging_reply_seconds_count", &[]),
        Some(1.0)
    );
    f.cluster.shutdown().await;
}

/// Metric names in the README's metrics table: `strand_…` in its first column.
fn readme_metrics() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("### Metrics").expect("README has a Metrics section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n#").map_or(section.len(), |i| i + 4)];
    section
        .lines()
        .filter(|l| l.starts_with("| `strand_"))
        .map(|l| l[3..].split('`').next().unwrap().to_string())
        .collect()
}

/// Metric names a PromQL expression uses: `strand_…` identifiers, without the histogram
/// suffixes the exporter adds.
fn queried(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("strand_") {
        let s = i + at;
        let mut e = s;
        while e < bytes.len() && (bytes[e].is_ascii_alphanumeric() || bytes[e] == b'_') {
            e += 1;
        }
        let name = &expr[s..e];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|x| name.strip_suffix(x))
            .unwrap_or(name);
        into.insert(base.to_string());
        i = e;
    }
}

#[test]
fn the_grafana_dashboard_queries_only_listed_metrics_and_covers_the_main_ones() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/strand.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let vars = dash["templating"]["list"].as_array().expect("template variables");
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus datasource variable"
    );
    let mut used = BTreeSet::new();
    let panels = dash["panels"].as_array().expect("panels");
    for p in panels {
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {} uses the variable",
            p["title"]
        );
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("panel {} has targets", p["title"]));
        assert!(!targets.is_empty(), "panel {} queries something", p["title"]);
        for t in targets {
            queried(t["expr"].as_str().expect("a PromQL expr"), &mut used);
        }
    }
    let listed = readme_metrics();
    assert!(listed.len() >= 30, "the README lists the metrics: {listed:?}");
    let unknown: Vec<_> = used.difference(&listed).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the README does not list: {unknown:?}"
    );
    // Every listed metric of the main families has a panel (others, such as alerts, may
    // live on their own dashboards).
    let main = [
        "strand_member",
        "strand_store_",
        "strand_controller_",
        "strand_participant_",
        "strand_messaging_",
    ];
    let unshown: Vec<_> = listed
        .difference(&used)
        .filter(|m| main.iter().any(|p| m.starts_with(p)))
        .collect();
    assert!(unshown.is_empty(), "README metrics with no panel: {unshown:?}");
}
