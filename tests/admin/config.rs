//! Scoped configs and constraints.

use std::collections::BTreeMap;

use strand::admin::{parse_key_values, AddResource, AdminError, ConfigScope};
use strand::model::{ClusterConstraints, ConstraintAttribute, ConstraintType, ConstraintValue, Layout};

use crate::support::{self, Store};

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_at_every_scope_land_in_the_right_record() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    support::cluster_with_instances(&admin, "C", 1).await;
    admin
        .add_resource("C", "myDB", &AddResource::new(2, "MasterSlave"))
        .await
        .unwrap();
    let l = Layout::new("C");

    let cluster = ConfigScope::parse("CLUSTER=C").unwrap();
    admin
        .set_config(
            &cluster,
            &parse_key_values("allowParticipantAutoJoin=true,MAX_OFFLINE_INSTANCES_ALLOWED=2").unwrap(),
        )
        .await
        .unwrap();
    let r = support::record(&client, &l.cluster_config()).await;
    assert_eq!(r.simple("allowParticipantAutoJoin"), Some("true"));
    assert_eq!(r.simple("MAX_OFFLINE_INSTANCES_ALLOWED"), Some("2"));
    assert_eq!(
        admin
            .get_config(&cluster, &keys(&["allowParticipantAutoJoin", "absent"]))
            .await
            .unwrap(),
        BTreeMap::from([("allowParticipantAutoJoin".to_string(), "true".to_string())])
    );
    admin
        .remove_config(&cluster, &keys(&["allowParticipantAutoJoin"]))
        .await
        .unwrap();
    assert_eq!(admin.get_config(&cluster, &[]).await.unwrap().len(), 1);

    let participant = ConfigScope::parse("PARTICIPANT=C,localhost_12913").unwrap();
    admin
        .set_config(&participant, &parse_key_values("HELIX_ZONE_ID=z1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        admin
            .instance_config("C", "localhost_12913")
            .await
            .unwrap()
            .zone(),
        Some("z1")
    );

    let resource = ConfigScope::from_parts("RESOURCE", "C,myDB").unwrap();
    admin
        .set_config(&resource, &parse_key_values("k1=v1,k2=v2").unwrap())
        .await
        .unwrap();
    let r = support::record(&client, &l.resource_config("myDB")).await;
    assert_eq!(r.id, "myDB");
    assert_eq!(r.simple("k1"), Some("v1"));

    let partition = ConfigScope::parse("PARTITION=C,myDB,myDB_0").unwrap();
    admin
        .set_config(&partition, &parse_key_values("p=1,q=2").unwrap())
        .await
        .unwrap();
    let r = support::record(&client, &l.resource_config("myDB")).await;
    assert_eq!(r.map("myDB_0").unwrap()["p"], "1");
    assert_eq!(r.simple("k2"), Some("v2"), "the resource's keys are kept");
    assert_eq!(
        admin.get_config(&partition, &keys(&["q"])).await.unwrap()["q"],
        "2"
    );
    admin.remove_config(&partition, &keys(&["p", "q"])).await.unwrap();
    let r = support::record(&client, &l.resource_config("myDB")).await;
    assert!(r.map("myDB_0").is_none(), "an emptied partition map is removed");

    // Missing targets are named; nothing is created for them.
    let e = admin
        .set_config(
            &ConfigScope::parse("PARTICIPANT=C,ghost_1").unwrap(),
            &parse_key_values("a=b").unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "instance ghost_1 does not exist in cluster C");
    assert!(!support::exists(&client, &l.instance_config("ghost_1")).await);
    let e = admin
        .set_config(
            &ConfigScope::parse("RESOURCE=C,nodb").unwrap(),
            &parse_key_values("a=b").unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "resource nodb does not exist in cluster C");
    assert!(!support::exists(&client, &l.resource_config("nodb")).await);
    let e = admin
        .get_config(&ConfigScope::parse("CLUSTER=D").unwrap(), &[])
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "cluster D does not exist");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constraints_are_set_read_and_removed_by_id() {
    let store = Store::start().await;
    let admin = store.admin();
    let client = store.client();
    admin.add_cluster("C").await.unwrap();
    let l = Layout::new("C");
    let t = ConstraintType::MessageConstraint;

    assert!(admin
        .constraints("C", t)
        .await
        .unwrap()
        .record
        .map_fields
        .is_empty());
    admin
        .set_constraint(
            "C",
            t,
            "constraint1",
            &parse_key_values("MESSAGE_TYPE=STATE_TRANSITION,INSTANCE=.*,CONSTRAINT_VALUE=10").unwrap(),
        )
        .await
        .unwrap();
    admin
        .set_constraint(
            "C",
            t,
            "c2",
            &parse_key_values("RESOURCE=myDB,CONSTRAINT_VALUE=ANY").unwrap(),
        )
        .await
        .unwrap();
    let stored = ClusterConstraints::new(support::record(&client, &l.constraint("MESSAGE_CONSTRAINT")).await);
    stored.validate().unwrap();
    let items = stored.items().unwrap();
    assert_eq!(items["constraint1"].value, ConstraintValue::Count(10));
    assert_eq!(
        items["constraint1"].attribute(ConstraintAttribute::Instance),
        Some(".*")
    );
    assert_eq!(items["c2"].value, ConstraintValue::Any);
    assert_eq!(admin.constraints("C", t).await.unwrap(), stored);

    let e = admin
        .set_constraint(
            "C",
            t,
            "bad",
            &parse_key_values("HOST=a,CONSTRAINT_VALUE=1").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        e.is_usage() && e.to_string().contains("unknown constraint attribute"),
        "{e}"
    );

    admin.remove_constraint("C", t, "c2").await.unwrap();
    let items = admin.constraints("C", t).await.unwrap().items().unwrap();
    assert_eq!(items.keys().collect::<Vec<_>>(), ["constraint1"]);
    let e = admin.remove_constraint("C", t, "c2").await.unwrap_err();
    assert!(matches!(e, AdminError::ConstraintNotFound { .. }), "{e}");
    let e = admin
        .remove_constraint("C", ConstraintType::StateConstraint, "x")
        .await
        .unwrap_err();
    assert!(matches!(e, AdminError::ConstraintNotFound { .. }), "{e}");
    store.shutdown().await;
}
