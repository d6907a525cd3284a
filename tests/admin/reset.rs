//! Resetting replicas in ERROR: a Helix-shaped message for the current session only.

use strand::admin::AdminError;
use strand::model::{CurrentState, Layout, Message, Record};

use crate::support::{self, Store, NOW_MS};

fn parts(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_writes_an_error_to_initial_message_for_the_current_session() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    support::cluster_with_instances(&admin, "C", 1).await;
    admin
        .add_resource("C", "myDB", &strand::admin::AddResource::new(4, "MasterSlave"))
        .await
        .unwrap();
    let l = Layout::new("C");
    let i = "localhost_12913";

    let e = admin
        .reset_partitions("C", i, "myDB", &parts(&["myDB_0"]))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "instance localhost_12913 is not live in cluster C");

    let mut live = Record::new(i);
    live.set_simple("SESSION_ID", "s2");
    support::put(&client, &l.live_instance(i), &live).await;
    let mut old = CurrentState::create("myDB", "s1", "MasterSlave");
    old.set_state("myDB_2", "ERROR");
    support::put(&client, &l.current_state(i, "s1", "myDB"), &old.record).await;
    let mut cs = CurrentState::create("myDB", "s2", "MasterSlave");
    cs.set_state("myDB_0", "ERROR");
    cs.set_state("myDB_1", "MASTER");
    support::put(&client, &l.current_state(i, "s2", "myDB"), &cs.record).await;

    let e = admin
        .reset_partitions("C", i, "myDB", &parts(&["myDB_1"]))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot reset myDB/myDB_1 on localhost_12913: it is MASTER, not ERROR"
    );
    // ERROR in an earlier session does not count.
    let e = admin
        .reset_partitions("C", i, "myDB", &parts(&["myDB_2"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, AdminError::NotInError { state, .. } if state == "not held"),
        "{e}"
    );
    assert!(client.children(&l.messages(i)).await.unwrap().is_empty());

    let sent = admin
        .reset_partitions("C", i, "myDB", &parts(&["myDB_0"]))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let id = sent[0].id().to_string();
    assert_eq!(client.children(&l.messages(i)).await.unwrap(), vec![id.clone()]);
    let m = Message::new(support::record(&client, &l.message(i, &id)).await);
    m.validate().unwrap();
    let r = &m.record;
    assert_eq!(r.simple("MSG_TYPE"), Some("STATE_TRANSITION"));
    assert_eq!(r.simple("MSG_STATE"), Some("new"));
    assert_eq!(r.simple("FROM_STATE"), Some("ERROR"));
    assert_eq!(r.simple("TO_STATE"), Some("OFFLINE"));
    assert_eq!(r.simple("TGT_NAME"), Some(i));
    assert_eq!(r.simple("TGT_SESSION_ID"), Some("s2"));
    assert_eq!(r.simple("SRC_NAME"), Some("admin"));
    assert_eq!(r.simple("RESOURCE_NAME"), Some("myDB"));
    assert_eq!(r.simple("PARTITION_NAME"), Some("myDB_0"));
    assert_eq!(r.simple("STATE_MODEL_DEF"), Some("MasterSlave"));
    assert_eq!(r.simple("CREATE_TIMESTAMP"), Some(NOW_MS.to_string().as_str()));

    // A second reset while the first is pending is refused.
    let e = admin
        .reset_partitions("C", i, "myDB", &parts(&["myDB_0"]))
        .await
        .unwrap_err();
    assert!(matches!(e, AdminError::PendingMessage { .. }), "{e}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_instance_and_resource_find_every_replica_in_error() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    let names = support::cluster_with_instances(&admin, "C", 2).await;
    for r in ["a", "b"] {
        admin
            .add_resource("C", r, &strand::admin::AddResource::new(2, "OnlineOffline"))
            .await
            .unwrap();
    }
    let l = Layout::new("C");
    for (n, i) in names.iter().enumerate() {
        let session = format!("s{n}");
        let mut live = Record::new(i);
        live.set_simple("SESSION_ID", &session);
        support::put(&client, &l.live_instance(i), &live).await;
        for r in ["a", "b"] {
            let mut cs = CurrentState::create(r, &session, "OnlineOffline");
            cs.set_state(&format!("{r}_0"), "ERROR");
            cs.set_state(&format!("{r}_1"), "ONLINE");
            support::put(&client, &l.current_state(i, &session, r), &cs.record).await;
        }
    }
    let sent = admin.reset_resource("C", "a").await.unwrap();
    let mut got: Vec<(&str, &str)> = sent
        .iter()
        .map(|m| (m.tgt_name().unwrap(), m.partition_name().unwrap()))
        .collect();
    got.sort();
    assert_eq!(got, [(names[0].as_str(), "a_0"), (names[1].as_str(), "a_0")]);

    // a_0 is already being reset on instance 0: only b_0 is new.
    let sent = admin.reset_instance("C", &names[0]).await.unwrap();
    let got: Vec<(&str, &str)> = sent
        .iter()
        .map(|m| (m.resource_name().unwrap(), m.partition_name().unwrap()))
        .collect();
    assert_eq!(got, [("b", "b_0")]);
    assert!(sent
        .iter()
        .all(|m| m.tgt_name() == Some(names[0].as_str()) && m.to_state() == Some("OFFLINE")));
    assert_eq!(client.children(&l.messages(&names[0])).await.unwrap().len(), 2);
    assert!(admin.reset_instance("C", &names[0]).await.unwrap().is_empty());
    let e = admin.reset_resource("C", "nodb").await.unwrap_err();
    assert!(matches!(e, AdminError::ResourceNotFound { .. }), "{e}");
    store.shutdown().await;
}
