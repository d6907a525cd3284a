//! From the engine's decision to the writes and sends of one round, purely.
//!
//! ```text
//!   View + Decision + Mirror + who leads (name, session, epoch)
//!     ▼ plan
//!   Plan { txns: store transactions (the shell adds the leader's fence to each),
//!          sends: instance → (address, message records) }
//!     ending sessions SWIM declared down   delete LIVEINSTANCES/<i> if unchanged
//!     stale messages                        delete (sessions that no longer count)
//!     selected transitions                  create INSTANCES/<i>/MESSAGES/<id> (Helix's shape,
//!                                           with the epoch), then send them
//!     external views                        set when they differ from current states; delete
//!                                           once a dropped resource has no replica left
//!     FULL_AUTO preference lists            written back into the ideal state (delayed
//!                                           rebalance remembers places through them), only if
//!                                           the ideal state is still the version read
//!     maintenance                           switched on when too many instances are offline,
//!                                           off again when the controller had switched it on
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::mirror::Mirror;
use super::snapshot::{View, LAST_OFFLINE_TIME, TRIGGER_CONTROLLER, TRIGGER_FIELD};
use crate::model::{ExternalView, Message, Record};
use crate::participant::ledger::EPOCH_FIELD;
use crate::propertystore::{Cmp, Condition, Op, Txn};
use crate::rebalance::pipeline::MaintenanceReason;
use crate::rebalance::Decision;

/// Operations per transaction at most (the store allows 256 operations and conditions).
const OPS_PER_TXN: usize = 200;
/// Bytes of paths and values per transaction at most (the store allows 4 MiB); a single
/// larger record goes alone and the store refuses it with a clear error.
const BYTES_PER_TXN: usize = 2 << 20;

/// Who leads, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The controller's name.
    pub name: String,
    /// The controller's session id.
    pub session: String,
    /// The fencing epoch (the store revision at which leadership was taken).
    pub epoch: u64,
}

/// What one round writes and sends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Transactions to run in order, each fenced by the shell.
    pub txns: Vec<Txn>,
    /// instance → (its address, the messages to send it once they are recorded).
    pub sends: BTreeMap<String, (SocketAddr, Vec<Record>)>,
    /// Messages created, by instance (for logs and tests).
    pub messages: usize,
}

impl Plan {
    /// Takes the sends of the messages `written` (the operations of a transaction that
    /// succeeded) created: they are recorded now and may go out at once, before the round's
    /// later transactions.
    pub fn take_recorded(
        &mut self,
        layout: &crate::model::Layout,
        written: &[Op],
    ) -> Vec<(String, SocketAddr, Vec<Record>)> {
        let paths: std::collections::BTreeSet<&str> = written
            .iter()
            .filter_map(|op| match op {
                Op::Create { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        if paths.is_empty() {
            return out;
        }
        for (instance, (addr, records)) in self.sends.iter_mut() {
            let (now, later): (Vec<Record>, Vec<Record>) = std::mem::take(records)
                .into_iter()
                .partition(|r| paths.contains(layout.message(instance, &r.id).as_str()));
            *records = later;
            if !now.is_empty() {
                out.push((instance.clone(), *addr, now));
            }
        }
        self.sends.retain(|_, (_, records)| !records.is_empty());
        out
    }
}

fn delete(path: &str) -> Op {
    Op::Delete {
        path: path.to_string(),
        expected_version: None,
        recursive: false,
    }
}

fn set(path: String, record: &Record) -> Op {
    Op::Set {
        path,
        value: record.to_bytes(),
        expected_version: None,
    }
}

fn chunked(ops: Vec<Op>) -> Vec<Txn> {
    let mut txns = Vec::new();
    let mut current: Vec<Op> = Vec::new();
    let mut bytes = 0usize;
    for op in ops {
        let size = match &op {
            Op::Create { path, value } | Op::Set { path, value, .. } => path.len() + value.len(),
            Op::Delete { path, .. } => path.len(),
        };
        if !current.is_empty() && (current.len() >= OPS_PER_TXN || bytes + size > BYTES_PER_TXN) {
            txns.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(op);
    }
    if !current.is_empty() {
        txns.push(current);
    }
    txns.into_iter()
        .map(|success| Txn {
            conditions: Vec::new(),
            success,
            failure: Vec::new(),
        })
        .collect()
}

/// Plans the round's writes and sends. `new_id` names each message.
pub fn plan(
    view: &View,
    decision: &Decision,
    mirror: &Mirror,
    leader: &Leader,
    now_ms: u64,
    mut new_id: impl FnMut() -> String,
) -> Plan {
    let layout = mirror.layout();
    let mut plan = Plan::default();

    // Sessions SWIM ended: delete their live-instance record if it is still that session.
    for (instance, raw) in &view.ended {
        let path = layout.live_instance(instance);
        plan.txns.push(Txn {
            conditions: vec![Condition::Value {
                path: path.clone(),
                cmp: Cmp::Eq,
                value: raw.clone(),
            }],
            success: vec![delete(&path)],
            failure: Vec::new(),
        });
    }
    for path in &view.stale_messages {
        plan.txns.push(Txn {
            conditions: vec![Condition::Exists { path: path.clone() }],
            success: vec![delete(path)],
            failure: Vec::new(),
        });
    }

    // Messages for the selected transitions.
    let mut creates = Vec::new();
    for (resource, t) in decision.all_transitions() {
        let Some(session) = view.sessions.get(&t.instance) else {
            continue;
        };
        let model = &decision.resources[resource].state_model;
        let id = new_id();
        let mut builder = Message::state_transition(&id)
            .source(&leader.name, &leader.session)
            .target(&t.instance, &session.id)
            .replica(resource, &t.partition)
            .state_model(model)
            .transition(&t.from, &t.to);
        let timeout_key = format!("{}-{}_TIMEOUT", t.from, t.to);
        if let Some(ms) = view
            .ideal_states
            .get(resource)
            .and_then(|is| is.record.simple(&timeout_key))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
        {
            builder = builder.timeout_ms(ms);
        }
        let Ok(mut msg) = builder.build(now_ms) else {
            continue;
        };
        msg.record.set_simple(EPOCH_FIELD, leader.epoch);
        msg.record.set_simple("SRC_INSTANCE_TYPE", "CONTROLLER");
        creates.push(Op::Create {
            path: layout.message(&t.instance, &id),
            value: msg.record.to_bytes(),
        });
        if let Some(addr) = session.addr {
            plan.sends
                .entry(t.instance.clone())
                .or_insert_with(|| (addr, Vec::new()))
                .1
                .push(msg.record);
        }
        plan.messages += 1;
    }

    // External views, and the rest of the unconditional writes.
    let mut ops = creates;
    let mut resources: Vec<&String> = view.ideal_states.keys().collect();
    resources.extend(
        view.held_models
            .keys()
            .filter(|r| !view.ideal_states.contains_key(*r)),
    );
    for resource in resources {
        let path = layout.external_view(resource);
        let existing = mirror.record(&path);
        let maps = view.current.get(resource);
        let mut ev = match view.ideal_states.get(resource) {
            Some(is) => ExternalView::for_ideal_state(is),
            None => {
                if maps.is_none_or(|m| m.is_empty()) {
                    continue;
                }
                let mut ev = ExternalView::create(resource);
                if let Some(old) = existing {
                    ev.record.simple_fields = old.simple_fields.clone();
                }
                ev
            }
        };
        if let Some(maps) = maps {
            for (partition, states) in maps {
                if !states.is_empty() {
                    ev.set_state_map(partition, states.clone());
                }
            }
        }
        if existing.map(|r| r.as_ref()) != Some(&ev.record) {
            ops.push(set(path, &ev.record));
        }
    }
    // External views of resources with no ideal state and no replica left.
    let ev_prefix = format!("{}/", layout.external_views());
    for (path, entry) in mirror.under(&ev_prefix) {
        let resource = &path[ev_prefix.len()..];
        if entry.record.is_some()
            && !view.ideal_states.contains_key(resource)
            && view.current.get(resource).is_none_or(|m| m.is_empty())
        {
            ops.push(delete(path));
        }
    }

    // When instances went offline (or that they are live), for the next leader.
    for (instance, t) in &view.offline_times {
        let path = layout.instance_history(instance);
        let mut history = match mirror.record(&path) {
            Some(r) => r.as_ref().clone(),
            None => Record::new(instance.as_str()),
        };
        history.set_simple(LAST_OFFLINE_TIME, *t);
        ops.push(set(path, &history));
    }

    // Maintenance the controller switches by itself.
    match (&decision.maintenance, view.maintenance_trigger.as_deref()) {
        (Some(MaintenanceReason::TooManyOffline { offline, allowed }), None) => {
            let mut r = Record::new("maintenance");
            r.set_simple(TRIGGER_FIELD, TRIGGER_CONTROLLER);
            r.set_simple(
                "REASON",
                format!("{offline} instances offline or disabled, more than MAX_OFFLINE_INSTANCES_ALLOWED={allowed}"),
            );
            r.set_simple("TIMESTAMP", now_ms);
            r.set_simple("CONTROLLER", &leader.name);
            ops.push(set(layout.maintenance(), &r));
        }
        (None, Some(TRIGGER_CONTROLLER)) => ops.push(delete(&layout.maintenance())),
        _ => {}
    }
    plan.txns.extend(chunked(ops));

    // FULL_AUTO preference lists back into the ideal state, if it was not changed meanwhile.
    for (resource, rd) in &decision.resources {
        if rd.mode != Some(crate::model::RebalanceMode::FullAuto) {
            continue;
        }
        let Some(is) = view.ideal_states.get(resource) else {
            continue;
        };
        let path = layout.ideal_state(resource);
        let Some(entry) = mirror.get(&path) else { continue };
        let lists: BTreeMap<String, Vec<String>> = rd
            .preference_lists
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(p, l)| (p.clone(), l.clone()))
            .collect();
        if is.record.list_fields == lists {
            continue;
        }
        let mut record = is.record.clone();
        record.list_fields = lists;
        plan.txns.push(Txn {
            conditions: vec![Condition::Version {
                path: path.clone(),
                cmp: Cmp::Eq,
                version: entry.version,
            }],
            success: vec![set(path, &record)],
            failure: Vec::new(),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::snapshot::{build, Liveness};
    use crate::model::{CurrentState, IdealState, InstanceConfig, Layout, LiveInstance, RebalanceMode};
    use crate::participant::register::{ADDR_FIELD, GOSSIP_GENERATION_FIELD};
    use crate::propertystore::{Event, EventKind, Stat};
    use crate::rebalance::compute;

    fn mirror_with(records: Vec<(String, Record)>) -> Mirror {
        let l = Layout::new("C");
        let mut m = Mirror::load(l, Vec::new(), 0);
        for (rev, (path, r)) in records.into_iter().enumerate() {
            let rev = rev as u64 + 1;
            m.apply(&[Event {
                revision: rev,
                path,
                kind: EventKind::Put {
                    value: r.to_bytes(),
                    stat: Stat {
                        version: 1,
                        create_revision: rev,
                        mod_revision: rev,
                    },
                },
            }]);
        }
        m
    }

    fn leader() -> Leader {
        Leader {
            name: "ctl".into(),
            session: "c1".into(),
            epoch: 42,
        }
    }

    #[test]
    fn a_round_records_messages_with_the_epoch_sends_them_and_writes_the_external_view() {
        let l = Layout::new("C");
        let mut live = LiveInstance::create("a", "s1", "v", "1@h").record;
        live.set_simple(ADDR_FIELD, "127.0.0.1:9000");
        live.set_simple(GOSSIP_GENERATION_FIELD, 1);
        let mut is = IdealState::create("db", 2, "MasterSlave", RebalanceMode::SemiAuto);
        is.record.set_simple("REPLICAS", 1);
        is.record.list_fields.insert("db_0".into(), vec!["a".into()]);
        is.record.list_fields.insert("db_1".into(), vec!["a".into()]);
        is.record.set_simple("OFFLINE-SLAVE_TIMEOUT", 500);
        let mut cs = CurrentState::create("db", "s1", "MasterSlave");
        cs.set_state("db_1", "SLAVE");
        let m = mirror_with(vec![
            (l.instance_config("a"), InstanceConfig::create("a").record),
            (l.ideal_state("db"), is.record.clone()),
            (l.live_instance("a"), live),
            (l.current_state("a", "s1", "db"), cs.record),
        ]);
        let view = build(&m, &Liveness::default());
        let decision = compute(&view.snapshot).unwrap();
        let mut n = 0;
        let plan = plan(&view, &decision, &m, &leader(), 7, || {
            n += 1;
            format!("m{n}")
        });
        // db_0: OFFLINE→SLAVE (with its timeout); db_1: SLAVE→MASTER.
        assert_eq!(plan.messages, 2);
        let (addr, sent) = &plan.sends["a"];
        assert_eq!(addr.port(), 9000);
        let by_partition: BTreeMap<_, _> = sent
            .iter()
            .map(|r| (r.simple("PARTITION_NAME").unwrap().to_string(), r))
            .collect();
        assert_eq!(by_partition["db_0"].simple("TO_STATE"), Some("SLAVE"));
        assert_eq!(by_partition["db_0"].simple("TIMEOUT"), Some("500"));
        assert_eq!(by_partition["db_1"].simple("TO_STATE"), Some("MASTER"));
        for r in sent {
            assert_eq!(r.simple(EPOCH_FIELD), Some("42"));
            assert_eq!(r.simple("TGT_SESSION_ID"), Some("s1"));
        }
        let ops: Vec<&Op> = plan.txns.iter().flat_map(|t| &t.success).collect();
        let ev = ops
            .iter()
            .find_map(|o| match o {
                Op::Set { path, value, .. } if *path == l.external_view("db") => Some(value),
                _ => None,
            })
            .expect("the external view is written");
        let ev = Record::from_stored(ev).unwrap().unwrap();
        assert_eq!(ev.map("db_1").unwrap()["a"], "SLAVE");
        assert!(ev.map("db_0").is_none());
        assert_eq!(ev.simple("NUM_PARTITIONS"), Some("2"));
        assert!(ops
            .iter()
            .any(|o| matches!(o, Op::Create { path, .. } if path.starts_with(&l.messages("a")))));
    }

    #[test]
    fn a_message_is_sent_once_its_create_succeeded_and_never_otherwise() {
        let l = Layout::new("C");
        let mut live = LiveInstance::create("a", "s1", "v", "1@h").record;
        live.set_simple(ADDR_FIELD, "127.0.0.1:9000");
        live.set_simple(GOSSIP_GENERATION_FIELD, 1);
        let mut is = IdealState::create("db", 2, "MasterSlave", RebalanceMode::SemiAuto);
        is.record.set_simple("REPLICAS", 1);
        is.record.list_fields.insert("db_0".into(), vec!["a".into()]);
        is.record.list_fields.insert("db_1".into(), vec!["a".into()]);
        let m = mirror_with(vec![
            (l.instance_config("a"), InstanceConfig::create("a").record),
            (l.ideal_state("db"), is.record.clone()),
            (l.live_instance("a"), live),
        ]);
        let view = build(&m, &Liveness::default());
        let decision = compute(&view.snapshot).unwrap();
        let mut n = 0;
        let mut plan = plan(&view, &decision, &m, &leader(), 7, || {
            n += 1;
            format!("m{n}")
        });
        assert_eq!(plan.sends["a"].1.len(), 2);
        // A transaction without creates (a stale message's delete) releases nothing.
        let unrelated = Txn {
            conditions: Vec::new(),
            success: vec![delete(&l.message("a", "old"))],
            failure: Vec::new(),
        };
        assert!(plan.take_recorded(&l, &unrelated.success).is_empty());
        assert_eq!(plan.sends["a"].1.len(), 2);
        // The transaction creating both messages succeeded: both go out, once. (A message
        // whose transaction failed is never taken, so never sent.)
        let creates = plan
            .txns
            .iter()
            .find(|t| t.success.iter().any(|o| matches!(o, Op::Create { .. })))
            .unwrap()
            .clone();
        let sent = plan.take_recorded(&l, &creates.success);
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].0.as_str(), sent[0].2.len()), ("a", 2));
        assert!(plan.sends.is_empty());
        assert!(plan.take_recorded(&l, &creates.success).is_empty());
    }

    #[test]
    fn transactions_are_cut_by_operations_and_by_bytes() {
        let op = |n: usize| Op::Set {
            path: format!("/C/x{n}"),
            value: vec![b'v'; 600 << 10],
            expected_version: None,
        };
        // 600 KiB each: at most 3 per 2 MiB transaction.
        let txns = chunked((0..7).map(op).collect());
        assert_eq!(
            txns.iter().map(|t| t.success.len()).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
        let small = (0..450)
            .map(|n| Op::Delete {
                path: format!("/C/y{n}"),
                expected_version: None,
                recursive: false,
            })
            .collect();
        assert_eq!(
            chunked(small).iter().map(|t| t.success.len()).collect::<Vec<_>>(),
            vec![200, 200, 50]
        );
    }

    #[test]
    fn a_dropped_resource_with_nothing_left_loses_its_external_view() {
        let l = Layout::new("C");
        let m = mirror_with(vec![
            (l.instance_config("a"), InstanceConfig::create("a").record),
            (l.external_view("old"), ExternalView::create("old").record),
        ]);
        let view = build(&m, &Liveness::default());
        let decision = compute(&view.snapshot).unwrap();
        let plan = plan(&view, &decision, &m, &leader(), 7, || "x".into());
        let ops: Vec<&Op> = plan.txns.iter().flat_map(|t| &t.success).collect();
        assert!(ops
            .iter()
            .any(|o| matches!(o, Op::Delete { path, .. } if *path == l.external_view("old"))));
        assert_eq!(plan.messages, 0);
    }
}
