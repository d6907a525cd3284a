//! Helix's messaging scenario on an `EmbeddedCluster`: 5 participants, TestDB with 20
//! partitions × 3 replicas (SEMI_AUTO), criteria-addressed sends and replies, the
//! controller's leader, persistent and session-specific messages, bad input.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use strand::embedded::EmbeddedCluster;
use strand::messaging::{AppMessage, Criteria, HandlerFn, Messaging, MessagingError, Outgoing};
use strand::model::{ClusterConfig, IdealState, InstanceConfig, Layout, RebalanceMode, Record};
use strand::transport::Transport;

const C: &str = "C";
const WAIT: Duration = Duration::from_secs(20);

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node_{i}")).collect()
}

async fn cluster(c: &mut EmbeddedCluster, instances: &[String]) {
    let l = Layout::new(C);
    let store = c.store();
    store.set(&l.root(), b"", None).await.unwrap();
    let cc = ClusterConfig::new(Record::new(C));
    store
        .set(&l.cluster_config(), &cc.record.to_bytes(), None)
        .await
        .unwrap();
    for i in instances {
        let ic = InstanceConfig::create(i);
        c.put_record(&l.instance_config(i), &ic.record).await.unwrap();
    }
}

/// TestDB: 20 partitions × 3 replicas on 5 nodes, SEMI_AUTO; partition p on nodes p, p+1,
/// p+2 (mod 5), the first MASTER.
fn test_db(nodes: &[String]) -> IdealState {
    let mut is = IdealState::create("TestDB", 20, "MasterSlave", RebalanceMode::SemiAuto);
    is.record.set_simple("REPLICAS", 3);
    for p in 0..20 {
        let list: Vec<String> = (0..3).map(|k| nodes[(p + k) % nodes.len()].clone()).collect();
        let map = list
            .iter()
            .enumerate()
            .map(|(k, i)| (i.clone(), if k == 0 { "MASTER" } else { "SLAVE" }.to_string()))
            .collect();
        is.record.map_fields.insert(format!("TestDB_{p}"), map);
        is.record.list_fields.insert(format!("TestDB_{p}"), list);
    }
    is
}

/// Answers ECHO with its name and the body; SLOW after 3 s; FAIL with an error; NOTE
/// records what it got in `notes`.
fn install(m: &Messaging, notes: Arc<Mutex<Vec<(String, AppMessage)>>>) {
    let me = m.name().to_string();
    let name = me.clone();
    m.register_handler(
        "ECHO",
        None,
        HandlerFn(move |msg: AppMessage| {
            let name = name.clone();
            async move {
                let body: serde_json::Value = serde_json::from_str(&msg.body).unwrap_or_default();
                Ok(json!({"instance": name, "body": body, "partition": msg.partition}))
            }
        }),
    );
    m.register_handler(
        "SLOW",
        None,
        HandlerFn(|_msg: AppMessage| async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(json!("slow"))
        }),
    );
    m.register_handler(
        "FAIL",
        None,
        HandlerFn(|_msg: AppMessage| async move { Err::<serde_json::Value, _>("disk on fire".to_string()) }),
    );
    m.register_handler(
        "NOTE",
        None,
        HandlerFn(move |msg: AppMessage| {
            let notes = notes.clone();
            let me = me.clone();
            async move {
                notes.lock().unwrap().push((me, msg));
                Ok(json!("noted"))
            }
        }),
    );
}

/// Waits until `m`'s view of the cluster satisfies `pred`.
async fn wait_view(m: &Messaging, what: &str, pred: impl Fn(&strand::messaging::ClusterView) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = m.view(C, WAIT).await.unwrap();
        if pred(&v) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn converged(v: &strand::messaging::ClusterView) -> bool {
    v.external_views.get("TestDB").is_some_and(|ev| {
        ev.len() == 20
            && ev.values().all(|m| {
                m.len() == 3
                    && m.values().filter(|s| *s == "MASTER").count() == 1
                    && m.values().filter(|s| *s == "SLAVE").count() == 2
            })
    }) && v.live.len() == 5
        && v.leader.is_some()
}

/// A message built by hand, as a sender (or a bad one) would put it on the wire or in the
/// store.
fn hand_made(id: &str, target: &str, session: &str, body: &str, persistent: bool) -> AppMessage {
    AppMessage {
        id: id.into(),
        correlation_id: id.into(),
        cluster: C.into(),
        msg_type: "NOTE".into(),
        subtype: None,
        src_name: "tester".into(),
        src_type: "ADMIN".into(),
        tgt_name: target.into(),
        tgt_session: session.into(),
        resource: None,
        partition: None,
        partition_state: None,
        body: body.into(),
        created_ms: 0,
        expiry_ms: None,
        persistent,
        retry: 0,
    }
}

fn ask(text: &str) -> Criteria {
    Criteria::parse(text).unwrap()
}

async fn wait_notes(notes: &Arc<Mutex<Vec<(String, AppMessage)>>>, n: usize) -> Vec<(String, AppMessage)> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = notes.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} notes arrived",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helix_messaging_scenario_by_instance_partition_state_and_data_source() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let nodes = names(5);
    let mut c = EmbeddedCluster::start(17).await.unwrap();
    cluster(&mut c, &nodes).await;
    c.add_controller("ctl-1", &[C]).await.unwrap();
    c.add_controller("ctl-2", &[C]).await.unwrap();
    let notes = Arc::new(Mutex::new(Vec::new()));
    for n in &nodes {
        let p = c.add_participant(C, n, None).await.unwrap();
        install(p.messaging(), notes.clone());
    }
    let is = test_db(&nodes);
    c.put_record(&Layout::new(C).ideal_state("TestDB"), &is.record)
        .await
        .unwrap();
    let (leader, _) = c.wait_leader(C, WAIT).await.expect("a leader");
    for (name, ctl) in &c.controllers {
        let name = name.clone();
        ctl.messaging().register_handler(
            "WHO_LEADS",
            None,
            HandlerFn(move |_m: AppMessage| {
                let name = name.clone();
                async move { Ok(json!(name)) }
            }),
        );
    }
    let p0 = c.participants["node_0"].messaging().clone();
    wait_view(&p0, "TestDB converged in node_0's view", converged).await;

    // send to one instance reaches it (and only it).
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send(
            &ask("instanceName=node_2"),
            Outgoing::new("NOTE").body(json!({"n": 1})),
        )
        .await
        .unwrap();
    assert_eq!((r.recipients, r.replies.len()), (1, 1), "{r:?}");
    let got = wait_notes(&notes, 1).await;
    assert_eq!(got[0].0, "node_2");
    assert_eq!(got[0].1.body, "{\"n\":1}");
    assert_eq!(got[0].1.src_name, "node_0");

    // send_and_wait to one instance: one reply, carrying the handler's answer.
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send_and_wait(
            &ask("instanceName=node_3"),
            Outgoing::new("ECHO").body(json!("hi")),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r.replies.len(), 1, "{r:?}");
    assert!(r.all_answered());
    let body: serde_json::Value = serde_json::from_str(&r.replies[0].body).unwrap();
    assert_eq!(body["instance"], "node_3");
    assert_eq!(body["body"], "hi");

    // A timeout shorter than the handler: timed out, not answered.
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send_and_wait(
            &ask("instanceName=node_3"),
            Outgoing::new("SLOW"),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert!(r.replies.is_empty(), "{r:?}");
    assert_eq!(r.timed_out, vec!["node_3".to_string()]);

    // Broadcast from a participant: 4 replies, 5 with self-exclusion off; the reply
    // handler is called once per reply as they arrive.
    let mut seen = Vec::new();
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send_and_wait_with(
            &ask("instanceName=%"),
            Outgoing::new("ECHO"),
            WAIT,
            &mut |reply| seen.push(reply.instance.clone()),
        )
        .await
        .unwrap();
    assert_eq!(r.replies.len(), 4, "{r:?} {:?}", p0.view(C, WAIT).await.unwrap());
    seen.sort();
    assert_eq!(seen, nodes[1..].to_vec());
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send_and_wait(
            &ask("instanceName=%,selfExcluded=false"),
            Outgoing::new("ECHO"),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r.replies.len(), 5, "{r:?}");

    // By partition, by partition and state, ideal states: as many replies as replicas match.
    wait_view(&p0, "TestDB converged", converged).await;
    let ev = p0.view(C, WAIT).await.unwrap().external_views["TestDB"].clone();
    let count = |pred: &dyn Fn(&str, &str) -> bool| -> usize {
        ev.iter()
            .flat_map(|(p, m)| m.values().map(move |s| (p.clone(), s.clone())))
            .filter(|(p, s)| pred(p, s))
            .count()
    };
    let cases: Vec<(&str, usize)> = vec![
        (
            "instanceName=%,resource=TestDB,partition=TestDB_7,selfExcluded=false",
            3,
        ),
        (
            "instanceName=%,resource=TestDB,partition=TestDB_7,partitionState=MASTER,selfExcluded=false",
            1,
        ),
        (
            "instanceName=%,resource=TestDB,partition=TestDB_1_,partitionState=SLAVE,selfExcluded=false",
            count(&|p, s| p.starts_with("TestDB_1") && p.len() == 9 && s == "SLAVE"),
        ),
        (
            "instanceName=%,resource=TestDB,partition=%,selfExcluded=false",
            60,
        ),
        (
            "instanceName=%,resource=TestDB,partition=%,partitionState=SLAVE,selfExcluded=false",
            40,
        ),
        (
            "instanceName=%,resource=TestDB,partition=TestDB_7,dataSource=IDEALSTATES,selfExcluded=false",
            3,
        ),
        (
            "instanceName=%,resource=TestDB,partition=%,partitionState=MASTER,dataSource=IDEALSTATES",
            20 - 4,
        ),
        ("instanceName=%,dataSource=LIVEINSTANCES", 4),
        ("instanceName=node_1%,dataSource=INSTANCES,selfExcluded=false", 1),
    ];
    assert_eq!(cases[2].1, 20, "10..19: 10 partitions × 2 SLAVEs");
    for (text, want) in cases {
        wait_view(&p0, "TestDB converged", converged).await;
        let r = p0
            .send_and_wait(&ask(text), Outgoing::new("ECHO"), WAIT)
            .await
            .unwrap();
        assert_eq!(r.replies.len(), want, "{text}: {r:?}");
        assert!(r.all_answered(), "{text}: {r:?}");
    }
    // Each replica's message names its partition.
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send_and_wait(
            &ask(
                "instanceName=%,resource=TestDB,partition=TestDB_7,partitionState=MASTER,selfExcluded=false",
            ),
            Outgoing::new("ECHO"),
            WAIT,
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&r.replies[0].body).unwrap();
    assert_eq!(body["partition"], "TestDB_7");
    assert_eq!(
        body["instance"],
        ev["TestDB_7"]
            .iter()
            .find(|(_, s)| *s == "MASTER")
            .unwrap()
            .0
            .as_str()
    );

    // A spectator sends from a client endpoint; replies come back on the same requests.
    let spectator = c.spectator(C).await.unwrap();
    let sm = spectator
        .messaging("spectator-1", c.network().client("spectator-1"))
        .unwrap();
    wait_view(&sm, "TestDB converged in the spectator's view", converged).await;
    let r = sm
        .send_and_wait(
            &ask("instanceName=%,resource=TestDB,partition=TestDB_0"),
            Outgoing::new("ECHO"),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r.replies.len(), 3, "{r:?}");

    // Controller-addressed: answered by the leader only.
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send_and_wait(
            &ask("recipientInstanceType=CONTROLLER"),
            Outgoing::new("WHO_LEADS"),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r.replies.len(), 1, "{r:?}");
    assert_eq!(r.replies[0].body, json!(leader).to_string());
    // A handler's error comes back as an error reply; a type without a handler fails.
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send_and_wait(&ask("instanceName=node_4"), Outgoing::new("FAIL"), WAIT)
        .await
        .unwrap();
    assert!(r.replies.is_empty());
    assert!(r.failed[0].reason.contains("disk on fire"), "{r:?}");
    wait_view(&p0, "TestDB converged", converged).await;
    let r = p0
        .send_and_wait(&ask("instanceName=node_4"), Outgoing::new("NOBODY_HANDLES"), WAIT)
        .await
        .unwrap();
    assert!(
        r.failed[0]
            .reason
            .contains("no handler for message type NOBODY_HANDLES"),
        "{r:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_message_reaches_a_recipient_that_was_down_and_a_later_session_refuses_a_session_specific_one(
) {
    let nodes = names(2);
    let mut c = EmbeddedCluster::start(23).await.unwrap();
    cluster(&mut c, &nodes).await;
    let notes = Arc::new(Mutex::new(Vec::new()));
    for n in &nodes {
        let p = c.add_participant(C, n, None).await.unwrap();
        install(p.messaging(), notes.clone());
    }
    let p0 = c.participants["node_0"].messaging().clone();
    wait_view(&p0, "both live", |v| v.live.len() == 2).await;
    let old_session = c.participants["node_1"].session().unwrap();
    c.stop_participant("node_1").await.unwrap();
    wait_view(&p0, "node_1 gone", |v| v.live.len() == 1).await;

    // node_1 is down: the persistent message waits in its MESSAGES folder.
    let r = p0
        .send(
            &ask("instanceName=node_1,dataSource=INSTANCES"),
            Outgoing::new("NOTE").body(json!({"k": "v"})).persistent(),
        )
        .await
        .unwrap();
    assert_eq!(r.queued, vec!["node_1".to_string()], "{r:?}");
    // One that expires before node_1 is back is refused then, and deleted unrun.
    let r = p0
        .send(
            &ask("instanceName=node_1,dataSource=INSTANCES"),
            Outgoing::new("NOTE")
                .body(json!("expired"))
                .persistent()
                .expiry(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    assert_eq!(r.queued.len(), 1, "{r:?}");
    // A non-persistent one has nobody to go to.
    let r = p0
        .send(
            &ask("instanceName=node_1,dataSource=INSTANCES"),
            Outgoing::new("NOTE"),
        )
        .await
        .unwrap();
    assert_eq!(r.recipients, 0, "{r:?}");
    let store = c.store();
    let dir = Layout::new(C).messages("node_1");
    let waiting = store.children(&dir).await.unwrap();
    assert_eq!(waiting.len(), 2);
    tokio::time::sleep(Duration::from_millis(5)).await;
    // A session-specific message for node_1's old session, as a sender that resolved it
    // before the restart would have written it.
    let stale = hand_made("stale-0", "node_1", &old_session, "\"stale\"", true);
    store
        .set(
            &Layout::new(C).message("node_1", "stale-0"),
            &stale.to_record().to_bytes(),
            None,
        )
        .await
        .unwrap();

    // node_1 comes back (a new session): the waiting message is handled once, the stale
    // one refused, and both are deleted.
    let p = c.add_participant(C, "node_1", None).await.unwrap();
    install(p.messaging(), notes.clone());
    let got = wait_notes(&notes, 1).await;
    assert_eq!(got[0].0, "node_1");
    assert_eq!(got[0].1.body, "{\"k\":\"v\"}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !store.children(&dir).await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "handled messages were not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = notes.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        1,
        "ran once, the stale session's message never: {got:?}"
    );

    // Persistent to a live instance: the QUIC copy and the store copy run it once between
    // them, the sender gets the one reply, and the store copy is deleted.
    wait_view(&p0, "node_1 back", |v| v.live.len() == 2).await;
    let r = p0
        .send_and_wait(
            &ask("instanceName=node_1,dataSource=LIVEINSTANCES"),
            Outgoing::new("NOTE").body(json!("both ways")).persistent(),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r.replies.len(), 1, "{r:?}");
    assert_eq!(r.replies[0].body, "\"noted\"");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !store.children(&dir).await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handled copy was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(notes.lock().unwrap().len(), 2, "{:?}", notes.lock().unwrap());

    // Session-specific to a live instance is accepted by its current session.
    wait_view(&p0, "node_1 back", |v| v.live.len() == 2).await;
    let r = p0
        .send_and_wait(
            &ask("instanceName=node_1,sessionSpecific=true,dataSource=LIVEINSTANCES"),
            Outgoing::new("ECHO"),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(r.replies.len(), 1, "{r:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_criteria_and_bad_bodies_get_clear_errors() {
    let nodes = names(2);
    let mut c = EmbeddedCluster::start(29).await.unwrap();
    cluster(&mut c, &nodes).await;
    let p = c.add_participant(C, "node_0", None).await.unwrap();
    let m = p.messaging().clone();
    for (text, needle) in [
        ("instanceName", "not key=value"),
        ("colour=red", "unknown key"),
        ("dataSource=CURRENTSTATES", "EXTERNALVIEW"),
    ] {
        let e = Criteria::parse(text).unwrap_err();
        assert!(
            matches!(e, MessagingError::BadCriteria { .. }) && e.to_string().contains(needle),
            "{text}: {e}"
        );
    }
    // A live instance whose endpoint is gone (crashed, its record still there): each copy
    // is sent again (2 retries by default), then reported failed.
    c.add_participant(C, "node_1", None).await.unwrap();
    wait_view(&m, "node_1 live", |v| v.live.contains_key("node_1")).await;
    c.kill_participant("node_1").await.unwrap();
    let r = m
        .send_and_wait(
            &ask("instanceName=node_1,dataSource=LIVEINSTANCES"),
            Outgoing::new("ECHO"),
            WAIT,
        )
        .await
        .unwrap();
    assert!(r.replies.is_empty(), "{r:?}");
    assert!(r.failed[0].reason.contains("after 3 attempts"), "{r:?}");
    // No controller leads: a controller-addressed message is an error, not silence.
    let e = m
        .send(&Criteria::controller(), Outgoing::new("X"))
        .await
        .unwrap_err();
    assert!(matches!(e, MessagingError::NoLeader { .. }), "{e}");
    let e = m
        .send(&Criteria::all_participants(), Outgoing::new("bad type!"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("message type"), "{e}");
    // A malformed body sent by hand over the wire is answered with an error.
    let bad = hand_made("x-0", "node_0", "*", "{not json", false);
    let client = c.network().client("tester");
    let addr = m.view(C, WAIT).await.unwrap().live["node_0"].addr.unwrap();
    let answer: strand::messaging::wire::AppAnswer = strand::transport::call(
        &*client,
        &strand::transport::PeerAddr::named("node_0", addr),
        strand::transport::Service::APP_MESSAGES,
        &strand::messaging::wire::AppRequest::Deliver {
            message: bad,
            wait: true,
        },
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        matches!(&answer, strand::messaging::wire::AppAnswer::Failed(r) if r.contains("not JSON")),
        "{answer:?}"
    );
    let garbage = client
        .request(
            &strand::transport::PeerAddr::named("node_0", addr),
            strand::transport::Service::APP_MESSAGES,
            bytes::Bytes::from_static(b"garbage"),
            WAIT,
        )
        .await
        .unwrap_err();
    assert!(
        garbage.to_string().contains("bad application message"),
        "{garbage}"
    );
    c.shutdown().await;
}

fn boom() -> Result<serde_json::Value, String> {
    panic!("this handler panics on its first poll")
}

/// A handler runs on the inbox's task until it first waits (no task of its own for one that
/// answers at once): one that panics there fails its own message and the inbox goes on;
/// one that waits is finished in a task of its own and its reply still arrives, while
/// another message is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_its_message_only_and_a_waiting_one_still_answers() {
    let nodes = names(2);
    let mut c = EmbeddedCluster::start(31).await.unwrap();
    cluster(&mut c, &nodes).await;
    let m = c
        .add_participant(C, "node_0", None)
        .await
        .unwrap()
        .messaging()
        .clone();
    let r = c
        .add_participant(C, "node_1", None)
        .await
        .unwrap()
        .messaging()
        .clone();
    r.register_handler("PANIC", None, HandlerFn(|_m: AppMessage| async move { boom() }));
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    r.register_handler(
        "WAIT",
        None,
        HandlerFn(move |_m: AppMessage| {
            let mut open = open_rx.clone();
            async move {
                open.wait_for(|o| *o).await.map_err(|e| e.to_string())?;
                Ok(json!("waited"))
            }
        }),
    );
    r.register_handler(
        "NOW",
        None,
        HandlerFn(|_m: AppMessage| async move { Ok(json!("now")) }),
    );
    wait_view(&m, "node_1 live", |v| v.live.contains_key("node_1")).await;
    let to = ask("instanceName=node_1,dataSource=LIVEINSTANCES");
    for _ in 0..2 {
        let res = m.send_and_wait(&to, Outgoing::new("PANIC"), WAIT).await.unwrap();
        assert!(res.replies.is_empty(), "{res:?}");
        assert_eq!(res.failed.len(), 1, "{res:?}");
        assert!(res.failed[0].reason.contains("handler dropped"), "{res:?}");
    }
    // WAIT waits until NOW was answered: the inbox is not held by a waiting handler.
    let waiting = {
        let m = m.clone();
        let to = to.clone();
        tokio::spawn(async move { m.send_and_wait(&to, Outgoing::new("WAIT"), WAIT).await })
    };
    let now = m.send_and_wait(&to, Outgoing::new("NOW"), WAIT).await.unwrap();
    assert_eq!(now.replies.len(), 1, "{now:?}");
    assert_eq!(now.replies[0].body, json!("now").to_string(), "{now:?}");
    open_tx.send(true).unwrap();
    let waited = waiting.await.unwrap().unwrap();
    assert_eq!(waited.replies.len(), 1, "{waited:?}");
    assert_eq!(waited.replies[0].body, json!("waited").to_string(), "{waited:?}");
    c.shutdown().await;
}

#[path = "messaging/cli.rs"]
mod cli;
