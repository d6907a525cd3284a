//! Records (Helix's ZNRecord JSON, as stored and as sent) and every typed view over them:
//! ideal states, current states, external views, live instances, configs, constraints,
//! messages, state model definitions, transition and application messages, health records.

use proptest::prelude::*;
use strand::admin::{ConfigScope, ConfigScopeType};
use strand::config::diff::ConfigFilter;
use strand::config::fold::ConfigFold;
use strand::health::decide::State as HealthState;
use strand::health::Report;
use strand::messaging::wire::AppMessage;
use strand::model::{
    ClusterConfig, ClusterConstraints, CurrentState, ExternalView, IdealState, InstanceConfig, LiveInstance,
    Message, Record, ResourceConfig,
};
use strand::participant::ledger::TransitionMessage;
use strand::propertystore::{Event, EventKind, Stat};
use strand::statemodel::{builtin, builtin_names, StateModelDefinition};

use super::alloc::peak_bytes;
use super::mutate::{mutated, mutated_text, mutations};

/// Field names the views read, and a few others.
const KEYS: &[&str] = &[
    "NUM_PARTITIONS",
    "REPLICAS",
    "REBALANCE_MODE",
    "IDEAL_STATE_MODE",
    "REBALANCE_STRATEGY",
    "STATE_MODEL_DEF_REF",
    "STATE_MODEL_FACTORY_NAME",
    "MAX_PARTITIONS_PER_INSTANCE",
    "INSTANCE_GROUP_TAG",
    "MIN_ACTIVE_REPLICAS",
    "REBALANCE_DELAY",
    "DELAY_REBALANCE_ENABLED",
    "DELAY_REBALANCE_TIME",
    "HELIX_ENABLED",
    "HELIX_HOST",
    "HELIX_PORT",
    "HELIX_DISABLED_PARTITION",
    "TAG_LIST",
    "HELIX_ZONE_ID",
    "ZONE_ID",
    "INSTANCE_WEIGHT",
    "MAX_OFFLINE_INSTANCES_ALLOWED",
    "STATE_TRANSITION_THROTTLE_CONFIGS",
    "BUCKET_SIZE",
    "SESSION_ID",
    "STATE_MODEL_DEF",
    "CURRENT_STATE",
    "REQUESTED_STATE",
    "PREVIOUS_STATE",
    "INFO",
    "START_TIME",
    "END_TIME",
    "HELIX_VERSION",
    "LIVE_INSTANCE",
    "RESOURCE_CAPACITY",
    "RESOURCE_TYPE",
    "GROUP_ROUTING_ENABLED",
    "EXTERNAL_VIEW_DISABLED",
    "MONITORING_DISABLED",
    "PARTITION_CAPACITY_MAP",
    "MSG_ID",
    "MSG_TYPE",
    "MSG_SUBTYPE",
    "MSG_STATE",
    "SRC_NAME",
    "TGT_NAME",
    "SRC_SESSION_ID",
    "TGT_SESSION_ID",
    "EXE_SESSION_ID",
    "SRC_INSTANCE_TYPE",
    "FROM_STATE",
    "TO_STATE",
    "PARTITION_NAME",
    "RESOURCE_NAME",
    "CREATE_TIMESTAMP",
    "READ_TIMESTAMP",
    "EXECUTE_START_TIMESTAMP",
    "CORRELATION_ID",
    "TIMEOUT",
    "RETRY_COUNT",
    "PARENT_MSG_ID",
    "CONSTRAINT_VALUE",
    "STRAND_BODY",
    "STRAND_CLUSTER",
    "STRAND_EPOCH",
    "STRAND_EXPIRY_MS",
    "STRAND_PERSISTENT",
    "PARTITION_STATE",
    "INITIAL_STATE",
    "STATE_PRIORITY_LIST",
    "STATE_TRANSITION_PRIORITYLIST",
    "MASTER.meta",
    "SLAVE.meta",
    "OFFLINE.next",
    "MASTER.next",
    "count",
    "TestDB_0",
    "TestDB_1",
    "localhost_1",
    "localhost_2",
    "MASTER",
    "SLAVE",
    "OFFLINE",
    "DROPPED",
    "ERROR",
    "ONLINE",
];

/// Values that sit on the edges of what the views parse.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "0", "1", "3", "-1", "-9223372036854775808", "18446744073709551615", "99999999999999999999",
            "1e3", "", " ", "true", "FALSE", "yes", "N", "R", "-", "ANY_LIVEINSTANCE", "FULL_AUTO",
            "SEMI_AUTO", "CUSTOMIZED", "AUTO", "MASTER", "SLAVE", "OFFLINE", "DROPPED", "ERROR",
            "STATE_TRANSITION", "new", "read", "MasterSlave", "OnlineOffline", "LeaderStandby",
            "{}", "[]", "{\"a\":1}", "MASTER-SLAVE", "*", "localhost_1", "TestDB_0", "\u{0}", "é",
        ]).prop_map(String::from),
        1 => any::<i64>().prop_map(|v| v.to_string()),
        1 => ".{0,16}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(KEYS).prop_map(String::from), 1 => ".{0,10}"]
}

/// A record whose fields are mostly ones the views read, with edge-case values.
pub fn record() -> impl Strategy<Value = Record> {
    (
        prop_oneof![Just("TestDB".to_string()), ".{0,10}"],
        proptest::collection::btree_map(key(), field_value(), 0..12),
        proptest::collection::btree_map(key(), proptest::collection::vec(field_value(), 0..4), 0..4),
        proptest::collection::btree_map(
            key(),
            proptest::collection::btree_map(key(), field_value(), 0..4),
            0..4,
        ),
    )
        .prop_map(|(id, simple, lists, maps)| {
            let mut r = Record::new(id);
            r.simple_fields = simple;
            r.list_fields = lists;
            r.map_fields = maps;
            r
        })
}

/// Reads `r` through every view and parser of records; nothing may panic.
pub fn read_every_way(r: &Record) {
    let is = IdealState::new(r.clone());
    let _ = (
        is.rebalance_mode(),
        is.num_partitions(),
        is.replicas(),
        is.state_model(),
    );
    let _ = (
        is.max_partitions_per_instance(),
        is.min_active_replicas(),
        is.rebalance_delay_ms(),
    );
    let _ = (
        is.delay_rebalance_enabled(),
        is.enabled(),
        is.instance_group_tag(),
    );
    if let Ok(parts) = is.partitions() {
        for p in parts.iter().take(8) {
            let _ = (is.preference_list(p), is.instance_state_map(p));
        }
    }
    let ic = InstanceConfig::new(r.clone());
    let _ = (
        ic.enabled(),
        ic.tags(),
        ic.zone(),
        ic.weight(),
        ic.disabled_partitions(),
    );
    let cc = ClusterConfig::new(r.clone());
    let _ = (
        cc.max_offline_instances_allowed(),
        cc.delay_rebalance_enabled(),
        cc.rebalance_delay_ms(),
    );
    let _ = (
        cc.max_partitions_per_instance(),
        cc.state_transition_throttle_configs(),
    );
    let cs = CurrentState::new(r.clone());
    let _ = (
        cs.session_id(),
        cs.state_model(),
        cs.bucket_size(),
        cs.partition_states(),
        cs.validate(),
    );
    for p in cs.partitions().iter().take(8) {
        let _ = (
            cs.state(p),
            cs.requested_state(p),
            cs.info(p),
            cs.previous_state(p),
        );
        let _ = (cs.start_time_ms(p), cs.end_time_ms(p));
    }
    let ev = ExternalView::new(r.clone());
    let _ = (
        ev.state_model(),
        ev.bucket_size(),
        ev.validate(),
        ev.count_by_instance("MASTER"),
    );
    for p in ev.partitions().iter().take(8) {
        let _ = ev.instances_in_state(p, "MASTER");
    }
    let li = LiveInstance::new(r.clone());
    let _ = (
        li.session_id(),
        li.helix_version(),
        li.resource_capacity(),
        li.validate(),
    );
    let rc = ResourceConfig::new(r.clone());
    let _ = (
        rc.num_partitions(),
        rc.replicas(),
        rc.min_active_replicas(),
        rc.max_partitions_per_instance(),
    );
    let _ = (
        rc.enabled(),
        rc.rebalance_mode(),
        rc.rebalance_delay_ms(),
        rc.delay_rebalance_enabled(),
    );
    let _ = (
        rc.group_routing_enabled(),
        rc.external_view_disabled(),
        rc.monitoring_disabled(),
    );
    let _ = rc.partition_capacity_map();
    let cons = ClusterConstraints::new(r.clone());
    let _ = (cons.constraint_type(), cons.items(), cons.validate());
    let m = Message::new(r.clone());
    let _ = (
        m.msg_type(),
        m.msg_state(),
        m.bucket_size(),
        m.create_timestamp_ms(),
        m.read_timestamp_ms(),
    );
    let _ = (
        m.execute_start_timestamp_ms(),
        m.timeout_ms(),
        m.retry_count(),
        m.validate(),
    );
    let _ = StateModelDefinition::from_record(r);
    let _ = TransitionMessage::parse(r);
    let _ = AppMessage::from_record(r);
    let _ = Report::from_record("localhost_1", r);
    let _ = HealthState::from_records(Some(r), Some(r), Some(r));
}

fn app_message() -> impl Strategy<Value = AppMessage> {
    let name = "[a-zA-Z0-9_-]{1,10}";
    (
        (
            name,
            name,
            name,
            prop::sample::select(vec!["ECHO", "USER_DEFINE_MSG", "custom"]),
            proptest::option::of(name),
        ),
        (
            name,
            prop::sample::select(vec!["PARTICIPANT", "CONTROLLER", "SPECTATOR", "ADMIN"]),
            name,
            name,
        ),
        (
            proptest::option::of(name),
            proptest::option::of(name),
            proptest::option::of(name),
        ),
        (
            prop::sample::select(vec!["{}", "[1,2]", "\"text\"", "null", "{\"k\":{\"n\":[true]}}"]),
            0u64..1 << 50,
        ),
        (proptest::option::of(0u64..1 << 50), any::<bool>(), 0u32..100),
    )
        .prop_map(
            |(
                (id, correlation_id, cluster, msg_type, subtype),
                (src_name, src_type, tgt_name, tgt_session),
                (resource, partition, partition_state),
                (body, created_ms),
                (expiry_ms, persistent, retry),
            )| AppMessage {
                id,
                correlation_id,
                cluster,
                msg_type: msg_type.into(),
                subtype,
                src_name,
                src_type: src_type.into(),
                tgt_name,
                tgt_session,
                resource,
                partition,
                partition_state,
                body: body.into(),
                created_ms,
                expiry_ms,
                persistent,
                retry,
            },
        )
}

proptest! {
    #![proptest_config(super::config(512))]

    #[test]
    fn any_text_or_bytes_as_a_record_is_a_record_or_a_json_error(text in ".{0,64}", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Err(e) = Record::from_json(&text) {
            prop_assert!(e.to_string().contains("record"), "{e}");
        }
        if let Ok(Some(r)) = Record::from_stored(&bytes) {
            read_every_way(&r);
        }
    }

    #[test]
    fn records_round_trip_through_helix_json_and_the_store(r in record()) {
        prop_assert_eq!(Record::from_json(&r.to_helix_json()).unwrap(), r.clone());
        prop_assert_eq!(Record::from_stored(&r.to_bytes()).unwrap(), Some(r.clone()));
        prop_assert_eq!(Record::from_value(r.to_value()).unwrap(), r);
    }

    #[test]
    fn every_view_reads_any_record_without_panicking(r in record()) {
        let ((), held) = peak_bytes(|| read_every_way(&r));
        // NUM_PARTITIONS alone may name up to 10 million partitions; nothing else grows
        // with a field's value.
        prop_assert!(held < 1 << 30, "{held} bytes held");
    }

    #[test]
    fn mutated_record_json_is_a_record_or_an_error(r in record(), ms in mutations()) {
        let text = mutated_text(&r.to_helix_json(), &ms);
        if let Ok(r) = Record::from_json(&text) {
            read_every_way(&r);
        }
        let _ = Record::from_stored(&mutated(&r.to_bytes(), &ms, 0));
    }

    #[test]
    fn state_models_round_trip_and_mutated_ones_are_refused_or_valid(which in 0usize..16, r in record(), pick in any::<prop::sample::Index>()) {
        let names = builtin_names();
        let def = builtin(names[which % names.len()]).unwrap();
        let rec = def.to_record();
        prop_assert_eq!(StateModelDefinition::from_record(&rec).unwrap(), def.clone());
        let back = Record::from_json(&rec.to_helix_json()).unwrap();
        prop_assert_eq!(StateModelDefinition::from_record(&back).unwrap(), def);
        // Graft one random field onto a genuine definition.
        let mut grafted = rec.clone();
        if let Some((k, v)) = r.simple_fields.iter().nth(pick.index(r.simple_fields.len().max(1))) {
            grafted.simple_fields.insert(k.clone(), v.clone());
        }
        for (k, v) in r.list_fields.iter().take(1) {
            grafted.list_fields.insert(k.clone(), v.clone());
        }
        for (k, v) in r.map_fields.iter().take(1) {
            grafted.map_fields.insert(k.clone(), v.clone());
        }
        match StateModelDefinition::from_record(&grafted) {
            Ok(d) => {
                prop_assert!(d.has_state(d.initial_state()));
                read_every_way(&d.to_record());
            }
            Err(errors) => prop_assert!(!errors.is_empty()),
        }
    }

    #[test]
    fn application_messages_round_trip_through_their_record(m in app_message()) {
        let r = m.to_record();
        prop_assert_eq!(AppMessage::from_record(&r).unwrap(), m.clone());
        let back = Record::from_json(&r.to_helix_json()).unwrap();
        prop_assert_eq!(AppMessage::from_record(&back).unwrap(), m);
    }
}

#[test]
fn a_huge_partition_count_is_refused_not_allocated() {
    let mut r = Record::new("TestDB");
    r.set_simple("NUM_PARTITIONS", "18446744073709551615");
    let (p, held) = peak_bytes(|| IdealState::new(r.clone()).partitions());
    assert!(p.is_err(), "{p:?}");
    assert!(held < 1 << 16, "{held}");
}

/// A config path of cluster `C`, right or nearly so.
fn config_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/C/CONFIGS/CLUSTER/C".to_string()),
        Just("/C/CONFIGS/PARTICIPANT/localhost_1".to_string()),
        Just("/C/CONFIGS/RESOURCE/TestDB".to_string()),
        Just("/C/CONFIGS/RESOURCE".to_string()),
        Just("/C/CONFIGS/RESOURCE/TestDB/extra".to_string()),
        Just("/C/CONFIGS/CLUSTER/other".to_string()),
        "/C/CONFIGS/[A-Z]{0,12}/.{0,8}",
        ".{0,16}",
    ]
}

proptest! {
    #![proptest_config(super::config(256))]

    /// What a config subscription does with each store event: any value (a record, JSON that
    /// is not one, bytes that are not UTF-8, nothing) under any path becomes changes or a
    /// reported malformed record.
    #[test]
    fn config_subscriptions_fold_any_stored_value(
        events in proptest::collection::vec(
            (
                config_path(),
                prop_oneof![
                    record().prop_map(|r| Some(r.to_bytes())),
                    proptest::collection::vec(any::<u8>(), 0..32).prop_map(Some),
                    Just(None),
                ],
            ),
            1..8,
        ),
        kind in prop::sample::select(vec![
            ConfigScopeType::Cluster,
            ConfigScopeType::Participant,
            ConfigScopeType::Resource,
            ConfigScopeType::Partition,
        ]),
    ) {
        let filters = [
            ConfigFilter::Kind { cluster: "C".into(), kind },
            ConfigFilter::Scope(ConfigScope::parse("CLUSTER=C").unwrap()),
            ConfigFilter::Scope(ConfigScope::parse("CLUSTER=C,RESOURCE=TestDB").unwrap()),
        ];
        for filter in filters {
            let mut fold = ConfigFold::new(filter, Default::default(), 1);
            for (i, (path, value)) in events.iter().enumerate() {
                let revision = i as u64 + 1;
                let kind = match value {
                    Some(v) => EventKind::Put {
                        value: v.clone(),
                        stat: Stat { version: 1, create_revision: revision, mod_revision: revision },
                    },
                    None => EventKind::Delete,
                };
                let _ = fold.apply(&Event { revision, path: path.clone(), kind });
                let _ = strand::config::diff::record_scope("C", path);
            }
            for (_, _, reason) in fold.take_malformed() {
                prop_assert!(!reason.is_empty());
            }
        }
    }
}
