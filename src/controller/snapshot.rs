//! From the mirror to the engine's input, purely: which sessions count, what they hold,
//! what is in flight.
//!
//! ```text
//!   Mirror (configs, ideal states, live instances, current states, messages, switches)
//!   + ended sessions (SWIM said down; the store may not show it yet) + offline times + now
//!     ▼ build
//!   View { snapshot: ClusterSnapshot, sessions: live instance → (session, address),
//!          stale_messages: messages of sessions that no longer count, timeouts }
//! ```
//!
//! Only the current session of a live instance counts: current states of other sessions
//! are ignored, and messages addressed to them are stale (the round deletes them) — except
//! while such a session *lingers*: its participant may not know yet that its session
//! ended, and holds its replicas until its session lease runs out (see
//! [`crate::participant::lease`]). A lingering session's current states and the targets of
//! the transitions sent to it count against the state bounds
//! ([`ResourceSnapshot::lingering`]), and its messages are kept until it stops lingering.
//! A session lingers while its live-instance record still names it (SWIM declared it
//! down, the fenced delete is not through yet), for [`Liveness::gone`]'s time after the
//! record went, and, after a takeover, every session that does not count lingers until
//! [`Liveness::takeover_until_ms`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use super::mirror::Mirror;
use crate::model::fields::{MSG_TYPE, SESSION_ID, TGT_SESSION_ID};
use crate::model::layout::Key;
use crate::model::{ClusterConfig, ClusterConstraints, CurrentState, IdealState, InstanceConfig, Record};
use crate::participant::ledger::TransitionMessage;
use crate::participant::register::{ADDR_FIELD, GOSSIP_GENERATION_FIELD};
use crate::rebalance::transitions::ReplicaTransition;
use crate::rebalance::{ClusterSnapshot, InstanceInfo, ResourceSnapshot, Shared};
use crate::statemodel::{StateModelDefinition, DROPPED};

/// The field of the maintenance record that says who switched it on (Helix's
/// `TRIGGERED_BY`: `USER` or `CONTROLLER`).
pub const TRIGGER_FIELD: &str = "TRIGGERED_BY";
/// [`TRIGGER_FIELD`]'s value when the controller switched maintenance on by itself.
pub const TRIGGER_CONTROLLER: &str = "CONTROLLER";

/// A live session, as the leader counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id.
    pub id: String,
    /// Where the participant listens, if it said.
    pub addr: Option<SocketAddr>,
    /// The gossip generation it registered with.
    pub gossip_generation: u64,
    /// The live-instance record's raw value (fences the leader's delete of it).
    pub live_value: Vec<u8>,
}

/// What the leader knows beyond the store.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    /// Instances whose session SWIM ended, with the gossip generation declared down; their
    /// live-instance record no longer counts if it is of that generation or older.
    pub down: HashMap<String, u64>,
    /// When each instance was last seen going offline (ms, same clock as `now_ms`).
    pub offline_since: HashMap<String, u64>,
    /// The leader's clock now (ms).
    pub now_ms: u64,
    /// The leader's monotonic clock now (ms since its leadership began): what lingering is
    /// measured by, so a jump of the wall clock does not cut it short.
    pub mono_ms: u64,
    /// (instance, session) → until when (`mono_ms`) that session lingers: its live-instance
    /// record went (deleted or replaced) at most a lease before.
    pub gone: HashMap<(String, String), u64>,
    /// A new leader does not know which sessions its predecessor ended, or when: until
    /// then (`mono_ms`), every session that does not count lingers.
    pub takeover_until_ms: u64,
}

impl Liveness {
    /// Whether `session` of `instance`, which does not count, may still act on its
    /// replicas. `named_by_live` says its live-instance record still names it.
    fn lingers(&self, instance: &str, session: &str, named_by_live: bool) -> bool {
        if crate::testing::linger_broken() {
            return false;
        }
        named_by_live
            || self.mono_ms < self.takeover_until_ms
            || self
                .gone
                .get(&(instance.to_string(), session.to_string()))
                .is_some_and(|until| self.mono_ms < *until)
    }
}

/// The round's inputs.
#[derive(Debug, Clone)]
pub struct View {
    /// The engine's input.
    pub snapshot: ClusterSnapshot,
    /// Live instance → its counted session.
    pub sessions: BTreeMap<String, Session>,
    /// Paths of messages to sessions that do not count any more.
    pub stale_messages: Vec<String>,
    /// Live-instance records that no longer count (SWIM declared them down): instance →
    /// raw value, for the fenced delete that ends the session in the store.
    pub ended: BTreeMap<String, Vec<u8>>,
    /// resource → its ideal state (for external views and message fields).
    pub ideal_states: BTreeMap<String, IdealState>,
    /// resource → partition → {instance → state}, over counted sessions only (no DROPPED).
    pub current: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    /// resource → state model, for resources some session holds (dropped ones included).
    pub held_models: BTreeMap<String, String>,
    /// The maintenance record's trigger, if the record exists.
    pub maintenance_trigger: Option<String>,
    /// Instances whose history record must change: instance → `LAST_OFFLINE_TIME` (ms, or
    /// [`ONLINE`] for a live one). A new leader reads offline times back from these records,
    /// so a delayed rebalance in progress is not restarted by a takeover.
    pub offline_times: BTreeMap<String, i64>,
}

/// Field of `INSTANCES/<i>/HISTORY` (Helix's ParticipantHistory): when the instance last went
/// offline, in ms since the epoch, or [`ONLINE`].
pub const LAST_OFFLINE_TIME: &str = "LAST_OFFLINE_TIME";
/// [`LAST_OFFLINE_TIME`] of an instance that is live (Helix's `ONLINE`).
pub const ONLINE: i64 = -1;

fn parse_u64(r: &Record, k: &str) -> Option<u64> {
    r.simple(k).and_then(|v| v.trim().parse().ok())
}

/// Builds the round's inputs from the mirror.
pub fn build(mirror: &Mirror, liveness: &Liveness) -> View {
    let mut configs: BTreeMap<String, InstanceConfig> = BTreeMap::new();
    let mut ideal_states: BTreeMap<String, IdealState> = BTreeMap::new();
    let mut lives: BTreeMap<String, (Record, Vec<u8>)> = BTreeMap::new();
    let mut cs_records: Vec<(&str, &str, Record)> = Vec::new();
    let mut messages: Vec<(&str, String, Record)> = Vec::new();
    let mut state_models: BTreeMap<String, StateModelDefinition> = BTreeMap::new();
    let mut cluster_config = ClusterConfig::default();
    let mut message_constraints = None;
    let mut state_constraints = None;
    let mut paused = false;
    let mut maintenance_trigger = None;
    let mut histories: HashMap<&str, i64> = HashMap::new();
    let layout = mirror.layout();

    for (key, entry) in mirror.classified() {
        let Some(record) = entry.record.as_deref() else {
            if key == Key::Pause {
                paused = true;
            }
            continue;
        };
        match key {
            Key::ClusterConfig => cluster_config = ClusterConfig::new(record.clone()),
            Key::InstanceConfig(i) => {
                configs.insert(i.to_string(), InstanceConfig::new(record.clone()));
            }
            Key::IdealState(r) => {
                ideal_states.insert(r.to_string(), IdealState::new(record.clone()));
            }
            Key::StateModel(m) => {
                if let Ok(def) = StateModelDefinition::from_record(record) {
                    state_models.insert(m.to_string(), def);
                }
            }
            Key::LiveInstance(i) => {
                lives.insert(i.to_string(), (record.clone(), entry.value.to_vec()));
            }
            Key::CurrentState {
                instance,
                session,
                resource: _,
            } => cs_records.push((instance, session, record.clone())),
            Key::Message { instance, id } => {
                messages.push((instance, layout.message(instance, id), record.clone()));
            }
            Key::Constraint("MESSAGE_CONSTRAINT") => {
                message_constraints = Some(ClusterConstraints::new(record.clone()));
            }
            Key::Constraint("STATE_CONSTRAINT") => {
                state_constraints = Some(ClusterConstraints::new(record.clone()));
            }
            Key::Pause => paused = true,
            Key::InstanceHistory(i) => {
                if let Some(t) = record
                    .simple(LAST_OFFLINE_TIME)
                    .and_then(|v| v.trim().parse().ok())
                {
                    histories.insert(i, t);
                }
            }
            Key::Maintenance => {
                maintenance_trigger = Some(record.simple(TRIGGER_FIELD).unwrap_or("USER").to_string());
            }
            _ => {}
        }
    }

    // Sessions that count: a live-instance record of a configured instance that SWIM has
    // not declared down at its generation or later.
    let mut sessions = BTreeMap::new();
    let mut ended = BTreeMap::new();
    for (instance, (record, raw)) in &lives {
        let gossip_generation = parse_u64(record, GOSSIP_GENERATION_FIELD).unwrap_or(0);
        if liveness
            .down
            .get(instance)
            .is_some_and(|down| gossip_generation <= *down)
        {
            ended.insert(instance.clone(), raw.clone());
            continue;
        }
        let Some(id) = record.simple(SESSION_ID) else {
            continue;
        };
        sessions.insert(
            instance.clone(),
            Session {
                id: id.to_string(),
                addr: record.simple(ADDR_FIELD).and_then(|a| a.parse().ok()),
                gossip_generation,
                live_value: raw.clone(),
            },
        );
    }

    // A session that does not count but may still act on its replicas (module docs).
    let lingers = |instance: &str, session: &str| {
        sessions.get(instance).is_none_or(|s| s.id != session)
            && liveness.lingers(
                instance,
                session,
                lives
                    .get(instance)
                    .is_some_and(|(r, _)| r.simple(SESSION_ID) == Some(session)),
            )
    };
    // resource → partition → states lingering sessions may hold.
    let mut lingering: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut linger = |resource: &str, partition: String, state: String| {
        if state != DROPPED {
            lingering
                .entry(resource.to_string())
                .or_default()
                .entry(partition)
                .or_default()
                .push(state);
        }
    };

    // Current states of counted sessions.
    let mut current: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    let mut held_models = BTreeMap::new();
    for (instance, session, record) in cs_records {
        if sessions.get(instance).is_none_or(|s| s.id != session) {
            if lingers(instance, session) {
                let cs = CurrentState::new(record);
                for (partition, state) in cs.partition_states() {
                    linger(cs.resource(), partition, state);
                }
            }
            continue;
        }
        let cs = CurrentState::new(record);
        if let Ok(model) = cs.state_model() {
            held_models
                .entry(cs.resource().to_string())
                .or_insert_with(|| model.to_string());
        }
        let per_resource = current.entry(cs.resource().to_string()).or_default();
        for (partition, state) in cs.partition_states() {
            if state != DROPPED {
                per_resource
                    .entry(partition)
                    .or_default()
                    .insert(instance.to_string(), state);
            }
        }
    }

    // Pending transitions: messages to counted sessions; the rest are stale.
    let mut pending: BTreeMap<String, Vec<ReplicaTransition>> = BTreeMap::new();
    let mut stale_messages = Vec::new();
    for (instance, path, record) in messages {
        let target = record.simple(TGT_SESSION_ID).unwrap_or_default();
        let counted = sessions.get(instance).is_some_and(|s| target == s.id);
        if !counted {
            if !lingers(instance, target) {
                stale_messages.push(path);
            } else if record.simple(MSG_TYPE) == Some("STATE_TRANSITION") {
                // It may have run: count its target too, until the session is gone.
                if let Ok(m) = TransitionMessage::parse(&record) {
                    linger(&m.resource, m.partition, m.to);
                }
            }
            continue;
        }
        if record.simple(MSG_TYPE) != Some("STATE_TRANSITION") {
            continue;
        }
        if let Ok(m) = TransitionMessage::parse(&record) {
            pending
                .entry(m.resource.clone())
                .or_default()
                .push(ReplicaTransition::new(m.partition, instance, m.from, m.to));
        }
    }

    // Two messages for one replica (a write whose outcome was unknown, planned again): the
    // engine takes one per replica. Count the one that could raise the replica highest, so
    // a bound is never passed whichever of them the participant runs (it runs one).
    for (resource, list) in pending.iter_mut() {
        let model_name = ideal_states
            .get(resource)
            .and_then(|is| is.state_model().ok().map(str::to_string))
            .or_else(|| held_models.get(resource).cloned());
        let model = model_name.as_deref().and_then(|m| {
            state_models
                .get(m)
                .cloned()
                .or_else(|| crate::statemodel::builtin(m))
        });
        let rank = |state: &str| {
            model
                .as_ref()
                .and_then(|m| m.state_priority(state))
                .unwrap_or(usize::MAX)
        };
        list.sort_by(|a, b| {
            (&a.partition, &a.instance, rank(&a.to), rank(&a.from)).cmp(&(
                &b.partition,
                &b.instance,
                rank(&b.to),
                rank(&b.from),
            ))
        });
        list.dedup_by(|later, kept| later.partition == kept.partition && later.instance == kept.instance);
    }

    let mut offline_times = BTreeMap::new();
    let instances = configs
        .iter()
        .map(|(name, config)| {
            let live = sessions.contains_key(name);
            let mut info = InstanceInfo::new(name.clone());
            info.live = live;
            info.enabled = config.enabled().unwrap_or(true);
            info.zone = config.zone().map(str::to_string);
            info.tags = config.tags().iter().cloned().collect::<BTreeSet<_>>();
            if let Ok(Some(w)) = config.weight() {
                info.weight = w;
            }
            info.disabled_partitions = config
                .disabled_partitions()
                .into_iter()
                .map(|(r, ps)| (r, ps.into_iter().collect()))
                .collect();
            // What this leader saw first, then what an earlier leader recorded, then now.
            let recorded = histories.get(name.as_str()).copied();
            info.offline_since_ms = (!live).then(|| {
                liveness
                    .offline_since
                    .get(name)
                    .copied()
                    .or(recorded.and_then(|t| u64::try_from(t).ok()))
                    .unwrap_or(liveness.now_ms)
            });
            let want = info.offline_since_ms.map_or(ONLINE, |t| t as i64);
            if recorded != Some(want) {
                offline_times.insert(name.clone(), want);
            }
            info
        })
        .collect();

    let mut resources: Vec<Shared<ResourceSnapshot>> = Vec::new();
    let mut names: BTreeSet<String> = ideal_states.keys().cloned().collect();
    names.extend(current.keys().cloned());
    names.extend(pending.keys().cloned());
    for name in &names {
        let mut res = match ideal_states.get(name) {
            Some(is) => ResourceSnapshot::new(is.clone()),
            None => match held_models.get(name) {
                Some(model) => ResourceSnapshot::dropped(name.clone(), model.clone()),
                None => continue,
            },
        };
        res.current_state = current.get(name).cloned().unwrap_or_default();
        res.pending = pending.remove(name).unwrap_or_default();
        res.lingering = lingering.remove(name).unwrap_or_default();
        resources.push(res.into());
    }

    let manual_maintenance = maintenance_trigger
        .as_deref()
        .is_some_and(|t| t != TRIGGER_CONTROLLER);
    View {
        snapshot: ClusterSnapshot {
            instances,
            cluster_config,
            resources,
            state_models,
            message_constraints,
            state_constraints,
            maintenance: manual_maintenance,
            paused,
            now_ms: liveness.now_ms,
        },
        sessions,
        stale_messages,
        ended,
        ideal_states,
        current,
        held_models,
        maintenance_trigger,
        offline_times,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Layout, Message, RebalanceMode};
    use crate::propertystore::{Event, EventKind, Stat};

    fn put(m: &mut Mirror, rev: &mut u64, path: String, r: &Record) {
        *rev += 1;
        m.apply(&[Event {
            revision: *rev,
            path,
            kind: EventKind::Put {
                value: r.to_bytes(),
                stat: Stat {
                    version: 1,
                    create_revision: *rev,
                    mod_revision: *rev,
                },
            },
        }]);
    }

    /// A mirror of cluster C with these instances registered.
    fn with_instances(names: &[&str]) -> (Layout, Mirror, u64) {
        let l = Layout::new("C");
        let mut m = Mirror::load(l.clone(), Vec::new(), 0);
        let mut rev = 0;
        for i in names {
            put(
                &mut m,
                &mut rev,
                l.instance_config(i),
                &InstanceConfig::create(i).record,
            );
        }
        (l, m, rev)
    }

    fn live(instance: &str, session: &str, generation: u64) -> Record {
        let mut r = crate::model::LiveInstance::create(instance, session, "v", "1@h").record;
        r.set_simple(GOSSIP_GENERATION_FIELD, generation);
        r.set_simple(ADDR_FIELD, "127.0.0.1:9");
        r
    }

    #[test]
    fn only_current_sessions_count_and_messages_to_others_are_stale() {
        let (l, mut m, mut rev) = with_instances(&["a", "b"]);
        let is = IdealState::create("db", 2, "MasterSlave", RebalanceMode::FullAuto);
        put(&mut m, &mut rev, l.ideal_state("db"), &is.record);
        put(&mut m, &mut rev, l.live_instance("a"), &live("a", "s2", 7));
        put(&mut m, &mut rev, l.live_instance("b"), &live("b", "t1", 3));
        // a's old session still has a current state; only s2's counts.
        let mut old = CurrentState::create("db", "s1", "MasterSlave");
        old.set_state("db_0", "MASTER");
        put(&mut m, &mut rev, l.current_state("a", "s1", "db"), &old.record);
        let mut cur = CurrentState::create("db", "s2", "MasterSlave");
        cur.set_state("db_1", "SLAVE");
        put(&mut m, &mut rev, l.current_state("a", "s2", "db"), &cur.record);
        let msg = |id: &str, session: &str| {
            Message::state_transition(id)
                .source("ctl", "x")
                .target("a", session)
                .replica("db", "db_1")
                .state_model("MasterSlave")
                .transition("SLAVE", "MASTER")
                .build(1)
                .unwrap()
                .record
        };
        put(&mut m, &mut rev, l.message("a", "m1"), &msg("m1", "s1"));
        put(&mut m, &mut rev, l.message("a", "m2"), &msg("m2", "s2"));

        let mut liveness = Liveness {
            now_ms: 1000,
            ..Default::default()
        };
        let v = build(&m, &liveness);
        assert_eq!(v.sessions.keys().collect::<Vec<_>>(), ["a", "b"]);
        let db = v.snapshot.resources.iter().find(|r| r.name == "db").unwrap();
        assert_eq!(db.current_state["db_1"]["a"], "SLAVE");
        assert!(!db.current_state.contains_key("db_0"));
        assert_eq!(
            db.pending,
            vec![ReplicaTransition::new("db_1", "a", "SLAVE", "MASTER")]
        );
        assert_eq!(v.stale_messages, vec![l.message("a", "m1")]);

        // SWIM declared b down at its generation: b's session ends; a later one would count.
        liveness.down.insert("b".into(), 3);
        let v = build(&m, &liveness);
        assert!(!v.sessions.contains_key("b"));
        assert!(v.ended.contains_key("b"));
        let b = v.snapshot.instances.iter().find(|i| i.name == "b").unwrap();
        assert!(!b.live);
        assert_eq!(b.offline_since_ms, Some(1000));
        liveness.down.insert("b".into(), 2);
        assert!(build(&m, &liveness).sessions.contains_key("b"));
    }

    #[test]
    fn an_ended_session_lingers_while_its_record_names_it_and_for_its_lease_after() {
        let (l, mut m, mut rev) = with_instances(&["a", "b"]);
        let is = IdealState::create("db", 2, "MasterSlave", RebalanceMode::FullAuto);
        put(&mut m, &mut rev, l.ideal_state("db"), &is.record);
        put(&mut m, &mut rev, l.live_instance("a"), &live("a", "s1", 7));
        put(&mut m, &mut rev, l.live_instance("b"), &live("b", "t1", 3));
        let mut cs = CurrentState::create("db", "s1", "MasterSlave");
        cs.set_state("db_0", "MASTER");
        cs.set_state("db_1", "DROPPED");
        put(&mut m, &mut rev, l.current_state("a", "s1", "db"), &cs.record);
        // A promotion sent to a, which it may have run.
        let promote = Message::state_transition("m1")
            .source("ctl", "x")
            .target("a", "s1")
            .replica("db", "db_1")
            .state_model("MasterSlave")
            .transition("SLAVE", "MASTER")
            .build(1)
            .unwrap()
            .record;
        put(&mut m, &mut rev, l.message("a", "m1"), &promote.clone());
        let lingering = |v: &View| {
            v.snapshot
                .resources
                .iter()
                .find(|r| r.name == "db")
                .map(|r| r.lingering.clone())
                .unwrap_or_default()
        };
        let both = BTreeMap::from([
            ("db_0".to_string(), vec!["MASTER".to_string()]),
            ("db_1".to_string(), vec!["MASTER".to_string()]),
        ]);

        // Counted: nothing lingers.
        let mut liveness = Liveness {
            now_ms: 1000,
            mono_ms: 50,
            ..Default::default()
        };
        assert!(lingering(&build(&m, &liveness)).is_empty());

        // SWIM declared a down; its record still names s1: it lingers, its message is kept.
        liveness.down.insert("a".into(), 7);
        let v = build(&m, &liveness);
        assert!(!v.sessions.contains_key("a"));
        assert_eq!(lingering(&v), both);
        assert!(v.stale_messages.is_empty());

        // The record went: without a `gone` entry (the lease seen out) nothing lingers, and
        // the message is stale.
        rev += 1;
        m.apply(&[Event {
            revision: rev,
            path: l.live_instance("a"),
            kind: EventKind::Delete,
        }]);
        let v = build(&m, &liveness);
        assert!(lingering(&v).is_empty());
        assert_eq!(v.stale_messages, vec![l.message("a", "m1")]);

        // Within the lease after the record went, it lingers; after, it does not.
        liveness.gone.insert(("a".into(), "s1".into()), 60);
        assert_eq!(lingering(&build(&m, &liveness)), both);
        liveness.mono_ms = 60;
        assert!(lingering(&build(&m, &liveness)).is_empty());

        // A leader that just took over lets every session that does not count linger.
        liveness.gone.clear();
        liveness.takeover_until_ms = 61;
        assert_eq!(lingering(&build(&m, &liveness)), both);
        // b's current session counts, and never lingers.
        assert!(build(&m, &liveness).sessions.contains_key("b"));
    }

    #[test]
    fn offline_times_are_recorded_and_a_new_leader_reads_them_back() {
        let (l, mut m, mut rev) = with_instances(&["a", "b"]);
        put(&mut m, &mut rev, l.live_instance("a"), &live("a", "s", 1));
        // This leader saw b go offline at 700: both facts are to be recorded.
        let mut liveness = Liveness {
            now_ms: 1000,
            ..Default::default()
        };
        liveness.offline_since.insert("b".into(), 700);
        let v = build(&m, &liveness);
        assert_eq!(
            v.offline_times,
            BTreeMap::from([("a".to_string(), ONLINE), ("b".to_string(), 700)])
        );
        for (i, t) in &v.offline_times {
            let mut h = Record::new(i.as_str());
            h.set_simple(LAST_OFFLINE_TIME, *t);
            put(&mut m, &mut rev, l.instance_history(i), &h);
        }
        assert!(build(&m, &liveness).offline_times.is_empty());

        // A new leader, which saw nothing go offline, takes b's time from its history
        // instead of starting b's delay again from its own clock.
        let new_leader = Liveness {
            now_ms: 5000,
            ..Default::default()
        };
        let v = build(&m, &new_leader);
        let b = v.snapshot.instances.iter().find(|i| i.name == "b").unwrap();
        assert_eq!(b.offline_since_ms, Some(700));
        assert!(v.offline_times.is_empty());
    }

    #[test]
    fn two_messages_for_one_replica_count_as_the_one_that_raises_it_highest() {
        let (l, mut m, mut rev) = with_instances(&["a"]);
        let is = IdealState::create("db", 1, "MasterSlave", RebalanceMode::FullAuto);
        put(&mut m, &mut rev, l.ideal_state("db"), &is.record);
        put(&mut m, &mut rev, l.live_instance("a"), &live("a", "s", 1));
        for (id, to) in [("m1", "OFFLINE"), ("m2", "MASTER")] {
            let msg = Message::state_transition(id)
                .source("ctl", "x")
                .target("a", "s")
                .replica("db", "db_0")
                .state_model("MasterSlave")
                .transition("SLAVE", to)
                .build(1)
                .unwrap();
            put(&mut m, &mut rev, l.message("a", id), &msg.record);
        }
        let v = build(&m, &Liveness::default());
        let db = v.snapshot.resources.iter().find(|r| r.name == "db").unwrap();
        assert_eq!(
            db.pending,
            vec![ReplicaTransition::new("db_0", "a", "SLAVE", "MASTER")]
        );
        // And the engine accepts it (it refuses two pending transitions of one replica).
        assert!(crate::rebalance::compute(&v.snapshot).is_ok());
    }

    #[test]
    fn a_dropped_resource_still_held_is_walked_to_dropped_and_switches_are_read() {
        let (l, mut m, mut rev) = with_instances(&["a"]);
        put(&mut m, &mut rev, l.live_instance("a"), &live("a", "s", 1));
        let mut cs = CurrentState::create("gone", "s", "OnlineOffline");
        cs.set_state("gone_0", "ONLINE");
        put(&mut m, &mut rev, l.current_state("a", "s", "gone"), &cs.record);
        put(&mut m, &mut rev, l.pause(), &Record::new("pause"));
        let mut maint = Record::new("maintenance");
        maint.set_simple(TRIGGER_FIELD, TRIGGER_CONTROLLER);
        put(&mut m, &mut rev, l.maintenance(), &maint);
        let v = build(&m, &Liveness::default());
        let gone = v.snapshot.resources.iter().find(|r| r.name == "gone").unwrap();
        assert!(gone.ideal_state.is_none());
        assert_eq!(gone.state_model.as_deref(), Some("OnlineOffline"));
        assert!(v.snapshot.paused);
        // Maintenance the controller switched on is recomputed each round, not forced.
        assert!(!v.snapshot.maintenance);
        assert_eq!(v.maintenance_trigger.as_deref(), Some(TRIGGER_CONTROLLER));
    }
}
