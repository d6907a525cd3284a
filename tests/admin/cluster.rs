//! Clusters: Helix's layout, listing, dropping, pause and maintenance.

use strand::admin::AdminError;
use strand::model::Layout;
use strand::statemodel::StateModelDefinition;

use crate::support::{self, Store, NOW_MS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_cluster_writes_helix_layout_config_and_built_in_state_models() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    admin.add_cluster("MYCLUSTER").await.unwrap();

    assert_eq!(
        client.children("/MYCLUSTER").await.unwrap(),
        [
            "CONFIGS",
            "CONTROLLER",
            "EXTERNALVIEW",
            "IDEALSTATES",
            "INSTANCES",
            "LIVEINSTANCES",
            "PROPERTYSTORE",
            "STATEMODELDEFS"
        ]
    );
    assert_eq!(
        client.children("/MYCLUSTER/CONFIGS").await.unwrap(),
        ["CLUSTER", "PARTICIPANT", "RESOURCE"]
    );
    assert_eq!(
        client.children("/MYCLUSTER/CONTROLLER").await.unwrap(),
        ["ERRORS", "HISTORY", "MESSAGES", "STATUSUPDATES"]
    );
    // Directory keys hold empty values; records are Helix JSON.
    assert!(client
        .get("/MYCLUSTER/IDEALSTATES")
        .await
        .unwrap()
        .unwrap()
        .value
        .is_empty());
    let config = support::record(&client, "/MYCLUSTER/CONFIGS/CLUSTER/MYCLUSTER").await;
    assert_eq!(config.id, "MYCLUSTER");

    let models = client.children("/MYCLUSTER/STATEMODELDEFS").await.unwrap();
    for m in [
        "MasterSlave",
        "LeaderStandby",
        "OnlineOffline",
        "STORAGE_DEFAULT_SM_SCHEMATA",
    ] {
        assert!(models.iter().any(|x| x == m), "{m} missing from {models:?}");
        let r = support::record(&client, &format!("/MYCLUSTER/STATEMODELDEFS/{m}")).await;
        let def = StateModelDefinition::from_record(&r).unwrap();
        assert_eq!(def.name(), m);
    }
    assert_eq!(admin.list_state_models("MYCLUSTER").await.unwrap(), models);

    // The warm-up key at the root is not a cluster.
    assert_eq!(admin.list_clusters().await.unwrap(), ["MYCLUSTER"]);
    admin.add_cluster("OTHER").await.unwrap();
    assert_eq!(admin.list_clusters().await.unwrap(), ["MYCLUSTER", "OTHER"]);

    let e = admin.add_cluster("MYCLUSTER").await.unwrap_err();
    assert_eq!(e.to_string(), "cluster MYCLUSTER already exists");
    assert!(!e.is_usage());
    for bad in ["", "a/b", "my cluster"] {
        assert!(admin.add_cluster(bad).await.unwrap_err().is_usage(), "{bad:?}");
    }
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_cluster_removes_everything_but_not_while_instances_are_live() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    let names = support::cluster_with_instances(&admin, "C", 1).await;
    let l = Layout::new("C");
    let mut live = strand::model::Record::new(&names[0]);
    live.set_simple("SESSION_ID", "s1");
    support::put(&client, &l.live_instance(&names[0]), &live).await;

    let e = admin.drop_cluster("C").await.unwrap_err();
    assert!(
        matches!(&e, AdminError::ClusterHasLiveInstances { instances, .. } if instances == "localhost_12913"),
        "{e}"
    );
    assert!(support::exists(&client, &l.cluster_config()).await);

    client
        .delete(&l.live_instance(&names[0]), None, false)
        .await
        .unwrap();
    admin.drop_cluster("C").await.unwrap();
    assert!(client.children("/C").await.unwrap().is_empty());
    assert!(!support::exists(&client, "/C").await);
    assert!(admin.list_clusters().await.unwrap().is_empty());

    // Everything on a missing cluster fails and says so.
    let missing = "cluster C does not exist";
    assert_eq!(admin.drop_cluster("C").await.unwrap_err().to_string(), missing);
    assert_eq!(
        admin.add_instance("C", "h:1").await.unwrap_err().to_string(),
        missing
    );
    let spec = strand::admin::AddResource::new(6, "MasterSlave");
    assert_eq!(
        admin
            .add_resource("C", "db", &spec)
            .await
            .unwrap_err()
            .to_string(),
        missing
    );
    assert_eq!(
        admin.list_instances("C", None).await.unwrap_err().to_string(),
        missing
    );
    assert_eq!(
        admin.list_resources("C", None).await.unwrap_err().to_string(),
        missing
    );
    assert_eq!(
        admin.pause_cluster("C", None).await.unwrap_err().to_string(),
        missing
    );
    assert_eq!(
        admin
            .enable_instance("C", "h_1", false)
            .await
            .unwrap_err()
            .to_string(),
        missing
    );
    // A failed write left nothing behind.
    assert!(client.children("/C").await.unwrap().is_empty());
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_maintenance_switches() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    admin.add_cluster("C").await.unwrap();
    let l = Layout::new("C");

    assert!(!admin.is_paused("C").await.unwrap());
    admin.pause_cluster("C", Some("upgrade")).await.unwrap();
    assert!(admin.is_paused("C").await.unwrap());
    assert_eq!(
        support::record(&client, &l.pause()).await.simple("REASON"),
        Some("upgrade")
    );
    admin.resume_cluster("C").await.unwrap();
    assert!(!support::exists(&client, &l.pause()).await);
    admin.resume_cluster("C").await.unwrap();

    admin.set_maintenance("C", true, Some("rack swap")).await.unwrap();
    let m = support::record(&client, &l.maintenance()).await;
    assert_eq!(m.simple("REASON"), Some("rack swap"));
    assert_eq!(m.simple("TRIGGERED_BY"), Some("USER"));
    assert_eq!(m.simple("TIMESTAMP"), Some(NOW_MS.to_string().as_str()));
    assert_eq!(m.simple("OPERATOR"), Some("tester"));
    let info = admin.cluster_info("C").await.unwrap();
    assert_eq!(info.maintenance.as_ref(), Some(&m));
    assert!(!info.paused);
    admin.set_maintenance("C", false, None).await.unwrap();
    assert!(!support::exists(&client, &l.maintenance()).await);
    assert_eq!(admin.maintenance("C").await.unwrap(), None);
    store.shutdown().await;
}
