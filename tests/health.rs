//! Health reports and alerts end to end in one process (`EmbeddedCluster`): participants
//! report a stat, the leading controller aggregates it into `PERSISTENTSTATS`, a rule fires
//! when the aggregate crosses its threshold and clears when it drops back, both recorded in
//! `ALERT_STATUS` / `ALERT_HISTORY`; `Admin::health`, `Admin::status` and `strand status`'s
//! screen show it.

use std::sync::Arc;
use std::time::Duration;

use strand::admin::{AddResource, Admin, HealthOverview};
use strand::embedded::EmbeddedCluster;
use strand::health::Scope;
use strand::model::{Layout, Record};
use strand::participant::Participant;
use strand::transport::Transport;

const C: &str = "HEALTHY";
const I1: &str = "localhost_12913";
const I2: &str = "localhost_12914";
const RULE: &str = "AVG(latency_ms)[RESOURCE=*] > 50";
const WAIT: Duration = Duration::from_secs(20);

async fn participant(c: &mut EmbeddedCluster, instance: &str) {
    let p = Participant::builder(C, instance)
        .store(c.store())
        .transport(c.network().endpoint(instance) as Arc<dyn Transport>)
        // Long, so that the test's flushes decide what is written.
        .health_interval(Duration::from_secs(3600))
        .connect()
        .await
        .unwrap();
    c.participants.insert(instance.to_string(), p);
}

async fn report(c: &EmbeddedCluster, instance: &str, partition: &str, value: f64) {
    let h = c.participants[instance].health();
    h.report("latency_ms", value, Scope::partition("db", partition))
        .unwrap();
    h.flush().await.unwrap();
}

/// Waits until `pred` holds for the cluster's health overview.
async fn wait_health(admin: &Admin, what: &str, pred: impl Fn(&HealthOverview) -> bool) -> HealthOverview {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let o = admin.health(C).await.unwrap();
        if pred(&o) {
            return o;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {what}: {o:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn resource_avg(o: &HealthOverview) -> Option<f64> {
    o.aggregates
        .iter()
        .find(|a| a.stat == "AVG(latency_ms)" && a.scope == "RESOURCE=db")
        .map(|a| a.value)
}

fn firing(o: &HealthOverview) -> Vec<(String, f64)> {
    o.alerts
        .iter()
        .flat_map(|a| a.firing.iter().map(|f| (f.scope.clone(), f.value)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_stat_fires_a_rule_that_clears_when_it_drops_back() {
    let mut c = EmbeddedCluster::start(18).await.unwrap();
    let admin = Admin::new(c.store());
    admin.add_cluster(C).await.unwrap();
    for i in ["localhost:12913", "localhost:12914"] {
        admin.add_instance(C, i).await.unwrap();
    }
    admin
        .add_resource(C, "db", &AddResource::new(2, "MasterSlave"))
        .await
        .unwrap();
    admin.rebalance(C, "db", 2, None).await.unwrap();
    c.add_controller("controller-1", &[C]).await.unwrap();
    participant(&mut c, I1).await;
    participant(&mut c, I2).await;

    // A bad rule is refused with the reason; the good one is kept in canonical form.
    let bad = admin
        .add_alert(C, "AVG(latency_ms)[RESOURCE=*] >> 50")
        .await
        .unwrap_err();
    assert!(bad.is_usage() && bad.to_string().contains("column"), "{bad}");
    let rule = admin
        .add_alert(C, "avg(latency_ms) [resource=*] > 50.0")
        .await
        .unwrap();
    assert_eq!(rule.text(), RULE);
    assert!(admin.add_alert(C, RULE).await.is_err(), "the same rule twice");
    // The participants' own transition error rate, aggregated per resource.
    admin.add_stat(C, "AVG(transition_error_rate)").await.unwrap();

    // Below the threshold: aggregated, nothing fires.
    report(&c, I1, "db_0", 10.0).await;
    report(&c, I2, "db_1", 20.0).await;
    let o = wait_health(&admin, "aggregated 15", |o| resource_avg(o) == Some(15.0)).await;
    assert!(firing(&o).is_empty(), "{o:#?}");
    assert!(o
        .aggregates
        .iter()
        .any(|a| a.stat == "AVG(latency_ms)" && a.scope == "RESOURCE=db,PARTITION=db_1" && a.value == 20.0));
    assert!(o
        .aggregates
        .iter()
        .any(|a| a.stat == "AVG(latency_ms)" && a.scope == format!("INSTANCE={I1}") && a.value == 10.0));

    // Only the aggregate is persisted by the controller, under PERSISTENTSTATS.
    let store = c.store();
    let l = Layout::new(C);
    let persisted = store.get(&l.persistent_stats()).await.unwrap().unwrap();
    let persisted = Record::from_stored(&persisted.value).unwrap().unwrap();
    assert_eq!(
        persisted.map_fields["AVG(latency_ms)[RESOURCE=db]"]["VALUE"],
        "15"
    );

    // Above: the rule fires for the resource, with the aggregate's value.
    report(&c, I1, "db_0", 100.0).await;
    report(&c, I2, "db_1", 120.0).await;
    let o = wait_health(&admin, "firing", |o| !firing(o).is_empty()).await;
    assert_eq!(firing(&o), vec![("RESOURCE=db".to_string(), 110.0)]);
    assert_eq!(o.history.last().map(|h| h.event.as_str()), Some("FIRED"));

    // `strand status` shows it, with the leader and the converged resource.
    let status = admin.status(C, None).await.unwrap();
    assert_eq!(status.alerts.len(), 1);
    assert_eq!(status.alerts[0].rule, RULE);
    assert_eq!(
        status.leader.as_ref().map(|l| l.name.as_str()),
        Some("controller-1")
    );
    assert_eq!(status.instances.iter().filter(|i| i.live).count(), 2);
    let screen = strand::cli::status::render(&status, 0);
    assert!(
        screen.contains("controller  controller-1 leads, epoch"),
        "{screen}"
    );
    assert!(screen.contains("alerts (1 firing)"), "{screen}");
    assert!(
        screen.contains(RULE) && screen.contains("RESOURCE=db"),
        "{screen}"
    );

    // Back below: it clears, and the history says so.
    report(&c, I1, "db_0", 10.0).await;
    report(&c, I2, "db_1", 10.0).await;
    let o = wait_health(&admin, "cleared", |o| firing(o).is_empty()).await;
    let events: Vec<&str> = o.history.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(events, ["FIRED", "CLEARED"]);
    assert_eq!(o.history[1].scope, "RESOURCE=db");

    // The built-in error rate: the replicas' transitions all succeeded.
    let o = wait_health(&admin, "an error rate", |o| {
        o.aggregates
            .iter()
            .any(|a| a.stat == "AVG(transition_error_rate)" && a.scope == "RESOURCE=db")
    })
    .await;
    let rate = o
        .aggregates
        .iter()
        .find(|a| a.stat == "AVG(transition_error_rate)" && a.scope == "RESOURCE=db")
        .unwrap();
    assert_eq!(rate.value, 0.0);

    // A removed rule is gone from the list; removing it again says it is not there.
    admin.remove_alert(C, RULE).await.unwrap();
    assert!(admin.list_alerts(C).await.unwrap().is_empty());
    assert!(admin.remove_alert(C, RULE).await.is_err());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_folds_each_report_once_and_keeps_what_fires() {
    let mut c = EmbeddedCluster::start(19).await.unwrap();
    let admin = Admin::new(c.store());
    admin.add_cluster(C).await.unwrap();
    admin.add_instance(C, "localhost:12913").await.unwrap();
    c.add_controller("controller-1", &[C]).await.unwrap();
    let (first, _) = c.wait_leader(C, WAIT).await.unwrap();
    c.add_controller("controller-2", &[C]).await.unwrap();
    participant(&mut c, I1).await;
    admin
        .add_alert(C, "EXPONENTIAL(0.5)(latency_ms)[INSTANCE=*] > 50")
        .await
        .unwrap();
    let decayed = |o: &HealthOverview| {
        o.aggregates
            .iter()
            .find(|a| a.stat == "EXPONENTIAL(0.5)(latency_ms)" && a.scope == format!("INSTANCE={I1}"))
            .map(|a| (a.value, a.count))
    };
    report(&c, I1, "db_0", 100.0).await;
    let o = wait_health(&admin, "firing", |o| !firing(o).is_empty()).await;
    assert_eq!(decayed(&o), Some((100.0, 1)));

    // The leader dies; the other takes over from the persisted aggregates.
    c.kill_controller(&first).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.leader(C).is_none_or(|(n, _)| n == first) {
        assert!(tokio::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The next report is folded once into the old value (a leader that folded the first
    // report again would show 80 after three observations, and start from 100 twice).
    report(&c, I1, "db_0", 60.0).await;
    let o = wait_health(&admin, "the second report folded", |o| {
        decayed(o).is_some_and(|(_, n)| n >= 2)
    })
    .await;
    assert_eq!(decayed(&o), Some((80.0, 2)));
    // Still firing, and fired once: the new leader did not fire it again.
    assert_eq!(firing(&o).len(), 1);
    let fired = o.history.iter().filter(|h| h.event == "FIRED").count();
    assert_eq!(fired, 1, "{:?}", o.history);
    c.shutdown().await;
}
