//! Instances: registration, switches, tags, zone, weight, dropping, disabled partitions.

use strand::admin::{AddResource, AdminError};
use strand::model::{InstanceConfig, Layout, Record};

use crate::support::{self, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_registers_config_and_directories_like_helix() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    admin.add_cluster("C").await.unwrap();
    let l = Layout::new("C");

    assert_eq!(
        admin.add_instance("C", "localhost:12913").await.unwrap(),
        "localhost_12913"
    );
    let c = support::record(&client, &l.instance_config("localhost_12913")).await;
    assert_eq!(c.simple("HELIX_HOST"), Some("localhost"));
    assert_eq!(c.simple("HELIX_PORT"), Some("12913"));
    assert_eq!(c.simple("HELIX_ENABLED"), Some("true"));
    assert_eq!(
        client.children(&l.instance("localhost_12913")).await.unwrap(),
        [
            "CURRENTSTATES",
            "ERRORS",
            "HEALTHREPORT",
            "MESSAGES",
            "STATUSUPDATES"
        ]
    );
    assert_eq!(
        client.children(&l.instances()).await.unwrap(),
        ["localhost_12913"]
    );

    let e = admin.add_instance("C", "localhost_12913").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "instance localhost_12913 already exists in cluster C"
    );
    assert!(admin
        .add_instance("C", "localhost:")
        .await
        .unwrap_err()
        .is_usage());

    admin.add_instance("C", "localhost:12914").await.unwrap();
    assert_eq!(
        admin.list_instances("C", None).await.unwrap(),
        ["localhost_12913", "localhost_12914"]
    );
    let e = admin.instance_config("C", "nobody_1").await.unwrap_err();
    assert_eq!(e.to_string(), "instance nobody_1 does not exist in cluster C");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switches_tags_zone_and_weight_land_in_the_instance_config() {
    let store = Store::start().await;
    let admin = store.admin();
    support::cluster_with_instances(&admin, "C", 2).await;
    let config = |i: &'static str| {
        let admin = admin.clone();
        async move { admin.instance_config("C", i).await.unwrap() }
    };

    admin
        .enable_instance("C", "localhost:12913", false)
        .await
        .unwrap();
    assert!(!config("localhost_12913").await.enabled().unwrap());
    admin.enable_instance("C", "localhost_12913", true).await.unwrap();
    assert!(config("localhost_12913").await.enabled().unwrap());

    admin
        .add_instance_tag("C", "localhost_12913", "ssd")
        .await
        .unwrap();
    admin
        .add_instance_tag("C", "localhost_12913", "ssd")
        .await
        .unwrap();
    admin
        .add_instance_tag("C", "localhost_12913", "big")
        .await
        .unwrap();
    assert_eq!(config("localhost_12913").await.tags(), ["ssd", "big"]);
    assert_eq!(
        admin.list_instances("C", Some("ssd")).await.unwrap(),
        ["localhost_12913"]
    );
    admin
        .remove_instance_tag("C", "localhost_12913", "ssd")
        .await
        .unwrap();
    admin
        .remove_instance_tag("C", "localhost_12913", "never")
        .await
        .unwrap();
    assert_eq!(config("localhost_12913").await.tags(), ["big"]);
    assert!(admin.list_instances("C", Some("ssd")).await.unwrap().is_empty());

    admin
        .set_instance_zone("C", "localhost_12914", Some("rack-1"))
        .await
        .unwrap();
    admin
        .set_instance_weight("C", "localhost_12914", Some(2000))
        .await
        .unwrap();
    let c = config("localhost_12914").await;
    assert_eq!(c.zone(), Some("rack-1"));
    assert_eq!(c.weight().unwrap(), Some(2000));
    admin
        .set_instance_zone("C", "localhost_12914", None)
        .await
        .unwrap();
    admin
        .set_instance_weight("C", "localhost_12914", None)
        .await
        .unwrap();
    let c = config("localhost_12914").await;
    assert_eq!((c.zone(), c.weight().unwrap()), (None, None));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_node_needs_a_disabled_instance_that_is_not_live() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    support::cluster_with_instances(&admin, "C", 2).await;
    let l = Layout::new("C");
    let i = "localhost_12913";

    let e = admin.drop_instance("C", i).await.unwrap_err();
    assert!(matches!(e, AdminError::InstanceEnabled { .. }), "{e}");
    admin.enable_instance("C", i, false).await.unwrap();
    let mut live = Record::new(i);
    live.set_simple("SESSION_ID", "s1");
    support::put(&client, &l.live_instance(i), &live).await;
    let e = admin.drop_instance("C", i).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "instance localhost_12913 is live in cluster C; stop it before dropping it"
    );

    client.delete(&l.live_instance(i), None, false).await.unwrap();
    admin.drop_instance("C", "localhost:12913").await.unwrap();
    assert!(!support::exists(&client, &l.instance_config(i)).await);
    assert!(client.children(&l.instance(i)).await.unwrap().is_empty());
    assert!(!support::exists(&client, &l.instance(i)).await);
    assert_eq!(
        admin.list_instances("C", None).await.unwrap(),
        ["localhost_12914"]
    );
    let e = admin.drop_instance("C", i).await.unwrap_err();
    assert!(matches!(e, AdminError::InstanceNotFound { .. }), "{e}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_partitions_are_a_comma_list_per_resource() {
    let store = Store::start().await;
    let admin = store.admin();
    support::cluster_with_instances(&admin, "C", 1).await;
    admin
        .add_resource("C", "myDB", &AddResource::new(6, "MasterSlave"))
        .await
        .unwrap();
    let i = "localhost_12913";
    let parts = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let disabled = || {
        let admin = admin.clone();
        async move {
            let c: InstanceConfig = admin.instance_config("C", i).await.unwrap();
            (
                c.record.map("HELIX_DISABLED_PARTITION").cloned(),
                c.disabled_partitions(),
            )
        }
    };

    admin
        .enable_partitions("C", i, "myDB", &parts(&["myDB_0", "myDB_1"]), false)
        .await
        .unwrap();
    let (raw, read) = disabled().await;
    assert_eq!(raw.unwrap()["myDB"], "myDB_0,myDB_1");
    assert_eq!(read["myDB"], ["myDB_0", "myDB_1"]);

    admin
        .enable_partitions("C", i, "myDB", &parts(&["myDB_0"]), true)
        .await
        .unwrap();
    assert_eq!(disabled().await.1["myDB"], ["myDB_1"]);
    admin
        .enable_partitions("C", i, "myDB", &parts(&["myDB_1"]), true)
        .await
        .unwrap();
    let (raw, read) = disabled().await;
    assert_eq!(raw, None, "an empty map field is removed");
    assert!(read.is_empty());

    let e = admin
        .enable_partitions("C", i, "myDB", &parts(&["myDB_0", "myDB_9"]), false)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "resource myDB in cluster C has no partition myDB_9"
    );
    let e = admin
        .enable_partitions("C", i, "nodb", &parts(&["nodb_0"]), false)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "resource nodb does not exist in cluster C");
    let e = admin
        .enable_partitions("C", "ghost_1", "myDB", &parts(&["myDB_0"]), false)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "instance ghost_1 does not exist in cluster C");
    assert!(disabled().await.1.is_empty(), "failed calls changed nothing");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tag_changes_are_never_lost() {
    let store = Store::start().await;
    let admin = store.admin();
    support::cluster_with_instances(&admin, "C", 1).await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            // Separate clients, so the writes really race.
            let admin = strand::admin::Admin::new(store.client());
            tokio::spawn(async move {
                admin
                    .add_instance_tag("C", "localhost_12913", &format!("t{t}"))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut tags = admin
        .instance_config("C", "localhost_12913")
        .await
        .unwrap()
        .tags()
        .to_vec();
    tags.sort();
    assert_eq!(tags, (0..8).map(|t| format!("t{t}")).collect::<Vec<_>>());
    store.shutdown().await;
}
