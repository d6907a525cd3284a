//! Resources: adding (Helix's ideal state), rebalancing, dropping, switches, properties,
//! state models.

use std::collections::BTreeMap;

use strand::admin::{AddResource, AdminError};
use strand::model::{IdealState, Layout, RebalanceMode, Record};

use crate::support::{self, Store};

const TUTORIAL_IDEAL_STATE: &str = r#"{
  "id" : "myDB",
  "mapFields" : {
  },
  "listFields" : {
  },
  "simpleFields" : {
    "IDEAL_STATE_MODE" : "AUTO",
    "NUM_PARTITIONS" : "6",
    "REBALANCE_MODE" : "SEMI_AUTO",
    "REBALANCE_STRATEGY" : "DEFAULT",
    "REPLICAS" : "0",
    "STATE_MODEL_DEF_REF" : "MasterSlave",
    "STATE_MODEL_FACTORY_NAME" : "DEFAULT"
  }
}"#;

/// instance → state → how many partitions.
fn states_per_instance(is: &IdealState) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for map in is.record.map_fields.values() {
        for (i, s) in map {
            *out.entry(i.clone()).or_default().entry(s.clone()).or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_resource_writes_the_tutorials_ideal_state() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    admin.add_cluster("MYCLUSTER").await.unwrap();
    admin
        .add_resource("MYCLUSTER", "myDB", &AddResource::new(6, "MasterSlave"))
        .await
        .unwrap();
    let stored = client.get("/MYCLUSTER/IDEALSTATES/myDB").await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&stored.value).unwrap(), TUTORIAL_IDEAL_STATE);
    assert_eq!(admin.list_resources("MYCLUSTER", None).await.unwrap(), ["myDB"]);
    let info = admin.resource_info("MYCLUSTER", "myDB").await.unwrap();
    assert_eq!(info.ideal_state.to_helix_json(), TUTORIAL_IDEAL_STATE);
    assert_eq!(info.external_view, None);

    let e = admin
        .add_resource("MYCLUSTER", "myDB", &AddResource::new(6, "MasterSlave"))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "resource myDB already exists in cluster MYCLUSTER");
    let e = admin
        .add_resource("MYCLUSTER", "other", &AddResource::new(6, "NoSuchModel"))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "state model NoSuchModel does not exist in cluster MYCLUSTER"
    );
    assert!(!support::exists(&client, "/MYCLUSTER/IDEALSTATES/other").await);

    // Helix's legacy mode names; FULL_AUTO's legacy spelling is written back.
    let full = AddResource::new(4, "OnlineOffline").mode(AddResource::parse_mode("AUTO_REBALANCE").unwrap());
    let is = admin.add_resource("MYCLUSTER", "full", &full).await.unwrap();
    assert_eq!(is.rebalance_mode().unwrap(), RebalanceMode::FullAuto);
    let r = support::record(&client, "/MYCLUSTER/IDEALSTATES/full").await;
    assert_eq!(r.simple("REBALANCE_MODE"), Some("FULL_AUTO"));
    assert_eq!(r.simple("IDEAL_STATE_MODE"), Some("AUTO_REBALANCE"));
    let e = admin
        .add_resource("MYCLUSTER", "zero", &AddResource::new(0, "MasterSlave"))
        .await
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_gives_each_of_three_instances_two_masters_and_four_slaves() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    let names = support::cluster_with_instances(&admin, "MYCLUSTER", 3).await;
    admin
        .add_resource("MYCLUSTER", "myDB", &AddResource::new(6, "MasterSlave"))
        .await
        .unwrap();
    let returned = admin.rebalance("MYCLUSTER", "myDB", 3, None).await.unwrap();
    let is = IdealState::new(support::record(&client, "/MYCLUSTER/IDEALSTATES/myDB").await);
    assert_eq!(is, returned);
    assert_eq!(is.record.simple("REPLICAS"), Some("3"));
    assert_eq!(is.record.simple("REBALANCE_MODE"), Some("SEMI_AUTO"));

    let per = states_per_instance(&is);
    assert_eq!(per.keys().cloned().collect::<Vec<_>>(), names);
    for (i, counts) in &per {
        assert_eq!(counts.get("MASTER"), Some(&2), "{i}: {counts:?}");
        assert_eq!(counts.get("SLAVE"), Some(&4), "{i}: {counts:?}");
    }
    for p in 0..6 {
        let part = format!("myDB_{p}");
        let list = is.preference_list(&part).unwrap();
        let mut distinct = list.to_vec();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{part}: {list:?}");
        let map = is.instance_state_map(&part).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map[&list[0]], "MASTER", "{part}: the list starts with its MASTER");
    }

    // Rebalancing again moves nothing.
    let again = admin.rebalance("MYCLUSTER", "myDB", 3, None).await.unwrap();
    assert_eq!(again, is);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_skips_disabled_instances_and_respects_the_group_tag() {
    let store = Store::start().await;
    let admin = store.admin();
    let names = support::cluster_with_instances(&admin, "C", 4).await;
    admin
        .add_resource("C", "db", &AddResource::new(4, "MasterSlave"))
        .await
        .unwrap();
    admin.enable_instance("C", &names[3], false).await.unwrap();
    let is = admin.rebalance("C", "db", 2, None).await.unwrap();
    let per = states_per_instance(&is);
    assert!(
        !per.contains_key(&names[3]),
        "disabled instance got replicas: {per:?}"
    );
    assert_eq!(per.values().map(|c| c.values().sum::<usize>()).sum::<usize>(), 8);

    admin.add_instance_tag("C", &names[0], "ssd").await.unwrap();
    admin.add_instance_tag("C", &names[1], "ssd").await.unwrap();
    let is = admin.rebalance("C", "db", 2, Some("ssd")).await.unwrap();
    assert_eq!(is.instance_group_tag(), Some("ssd"));
    let per = states_per_instance(&is);
    assert_eq!(per.keys().cloned().collect::<Vec<_>>(), names[..2].to_vec());
    for counts in per.values() {
        assert_eq!(counts.get("MASTER"), Some(&2));
        assert_eq!(counts.get("SLAVE"), Some(&2));
    }
    assert_eq!(admin.list_resources("C", Some("ssd")).await.unwrap(), ["db"]);

    let e = admin.rebalance("C", "db", 2, Some("gpu")).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot rebalance resource db: no enabled instance has tag gpu"
    );
    let e = admin.rebalance("C", "nodb", 2, None).await.unwrap_err();
    assert!(matches!(e, AdminError::ResourceNotFound { .. }), "{e}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customized_rebalance_writes_only_the_map() {
    let store = Store::start().await;
    let admin = store.admin();
    support::cluster_with_instances(&admin, "C", 2).await;
    let spec = AddResource::new(2, "OnlineOffline").mode(RebalanceMode::Customized);
    admin.add_resource("C", "db", &spec).await.unwrap();
    let is = admin.rebalance("C", "db", 2, None).await.unwrap();
    assert!(is.record.list_fields.is_empty());
    assert_eq!(is.record.map_fields.len(), 2);
    assert!(is
        .record
        .map_fields
        .values()
        .all(|m| m.values().all(|s| s == "ONLINE") && m.len() == 2));
    assert_eq!(is.rebalance_mode().unwrap(), RebalanceMode::Customized);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_resource_leaves_current_states_and_external_view_to_the_controller() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    support::cluster_with_instances(&admin, "C", 1).await;
    let l = Layout::new("C");
    admin
        .add_resource("C", "db", &AddResource::new(2, "MasterSlave"))
        .await
        .unwrap();
    let values = BTreeMap::from([("k".to_string(), "v".to_string())]);
    admin
        .set_config(
            &strand::admin::ConfigScope::parse("RESOURCE=C,db").unwrap(),
            &values,
        )
        .await
        .unwrap();
    let ev = Record::new("db");
    support::put(&client, &l.external_view("db"), &ev).await;
    let cs = Record::new("db");
    support::put(&client, &l.current_state("localhost_12913", "s1", "db"), &cs).await;

    admin.drop_resource("C", "db").await.unwrap();
    assert!(!support::exists(&client, &l.ideal_state("db")).await);
    assert!(!support::exists(&client, &l.resource_config("db")).await);
    assert!(support::exists(&client, &l.external_view("db")).await);
    assert!(support::exists(&client, &l.current_state("localhost_12913", "s1", "db")).await);
    assert!(admin.list_resources("C", None).await.unwrap().is_empty());
    let e = admin.drop_resource("C", "db").await.unwrap_err();
    assert_eq!(e.to_string(), "resource db does not exist in cluster C");
    let e = admin.resource_info("C", "db").await.unwrap_err();
    assert!(matches!(e, AdminError::ResourceNotFound { .. }), "{e}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_switches_properties_and_ideal_state_files() {
    let store = Store::start().await;
    let admin = store.admin();
    admin.add_cluster("C").await.unwrap();
    admin
        .add_resource("C", "db", &AddResource::new(2, "MasterSlave"))
        .await
        .unwrap();

    admin.enable_resource("C", "db", false).await.unwrap();
    assert!(!admin.ideal_state("C", "db").await.unwrap().enabled().unwrap());
    admin.enable_resource("C", "db", true).await.unwrap();
    assert!(admin.ideal_state("C", "db").await.unwrap().enabled().unwrap());

    admin
        .set_resource_property("C", "db", "MIN_ACTIVE_REPLICAS", "2")
        .await
        .unwrap();
    assert_eq!(
        admin.resource_properties("C", "db").await.unwrap()["MIN_ACTIVE_REPLICAS"],
        "2"
    );
    admin
        .remove_resource_property("C", "db", "MIN_ACTIVE_REPLICAS")
        .await
        .unwrap();
    assert!(!admin
        .resource_properties("C", "db")
        .await
        .unwrap()
        .contains_key("MIN_ACTIVE_REPLICAS"));
    let e = admin
        .set_resource_property("C", "nodb", "K", "V")
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "resource nodb does not exist in cluster C");

    let mut custom = IdealState::create("custom", 1, "OnlineOffline", RebalanceMode::Customized).record;
    custom.map_fields.insert(
        "custom_0".into(),
        BTreeMap::from([("h_1".to_string(), "ONLINE".to_string())]),
    );
    admin
        .add_ideal_state("C", "custom", custom.clone())
        .await
        .unwrap();
    assert_eq!(admin.ideal_state("C", "custom").await.unwrap().record, custom);
    let e = admin.add_ideal_state("C", "other", custom).await.unwrap_err();
    assert!(e.is_usage() && e.to_string().contains("resource's name"), "{e}");

    let info = admin.partition_info("C", "custom", "custom_0").await.unwrap();
    assert_eq!(info.ideal_state.id, "custom/custom_0");
    assert_eq!(info.ideal_state.map("custom_0").unwrap()["h_1"], "ONLINE");
    assert!(info.external_view.is_none());
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_state_models_are_validated_before_they_are_stored() {
    let store = Store::start().await;
    let admin = store.admin();
    admin.add_cluster("C").await.unwrap();
    let mut good = strand::statemodel::builtin("OnlineOffline").unwrap().to_record();
    good.id = "MyModel".into();
    admin.add_state_model("C", &good).await.unwrap();
    assert!(admin
        .list_state_models("C")
        .await
        .unwrap()
        .contains(&"MyModel".to_string()));
    assert_eq!(admin.state_model("C", "MyModel").await.unwrap(), good);
    let e = admin.add_state_model("C", &good).await.unwrap_err();
    assert_eq!(e.to_string(), "state model MyModel already exists in cluster C");
    admin
        .add_resource("C", "db", &AddResource::new(1, "MyModel"))
        .await
        .unwrap();

    let mut bad = good.clone();
    bad.id = "Broken".into();
    bad.simple_fields.insert("INITIAL_STATE".into(), "NOWHERE".into());
    let e = admin.add_state_model("C", &bad).await.unwrap_err();
    assert!(matches!(e, AdminError::InvalidStateModel { .. }), "{e}");
    assert!(e.to_string().contains("NOWHERE"), "{e}");
    let e = admin.state_model("C", "Broken").await.unwrap_err();
    assert!(matches!(e, AdminError::StateModelNotFound { .. }), "{e}");
    store.shutdown().await;
}
