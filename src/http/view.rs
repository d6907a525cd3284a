//! The dashboard's picture of one cluster, built from one range read of `/<C>` (every
//! record at one store revision), this process's gossip view and the store replicas'
//! status. Pure: no I/O, no clock; the HTTP shell gathers the inputs.
//!
//! ```text
//!   range(/<C>) at r ─┐
//!   members()        ─┼─► build() ─► ClusterView { leader, switches, instances,
//!   status_all()     ─┘                            resources (partition × instance grid),
//!                                                  store replicas }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::membership::MemberStatus;
use crate::model::layout::Key;
use crate::model::{CurrentState, IdealState, InstanceConfig, Layout, Message, Record, Replicas};
use crate::propertystore::protocol::ReplicaStatus;
use crate::rebalance::assignment::{assign_auto, Eligibility};
use crate::rebalance::bounds::StateBounds;
use crate::rebalance::NameSet;
use crate::statemodel::StateModelDefinition;

/// What the dashboard shows of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterView {
    /// The cluster.
    pub cluster: String,
    /// The store revision every record was read at.
    pub revision: u64,
    /// The leading controller, if one leads.
    pub leader: Option<LeaderView>,
    /// Controllers of this cluster the gossip knows, alive, that do not lead.
    pub standbys: Vec<String>,
    /// The pause switch's reason, while the cluster is paused.
    pub paused: Option<Switch>,
    /// The maintenance record, while maintenance is on.
    pub maintenance: Option<Switch>,
    /// Configured instances, by name.
    pub instances: Vec<InstanceView>,
    /// Resources, by name.
    pub resources: Vec<ResourceView>,
    /// The property store's replicas.
    pub store: Vec<StoreReplicaView>,
    /// Health alerts that fire (the leader's `ALERT_STATUS`).
    pub alerts: Vec<crate::admin::FiringRow>,
}

/// The leading controller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderView {
    /// Its name.
    pub name: String,
    /// Its epoch (the store revision of its leadership record).
    pub epoch: u64,
    /// When it took the lead (ms since the epoch), if recorded.
    pub since_ms: Option<u64>,
}

/// A switch (pause, maintenance) that is on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Switch {
    /// Why, as the operator wrote it.
    pub reason: String,
    /// Who switched it on, when recorded.
    pub by: Option<String>,
    /// When (ms since the epoch), when recorded.
    pub since_ms: Option<u64>,
}

/// One instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceView {
    /// The instance name.
    pub name: String,
    /// `HELIX_ENABLED`.
    pub enabled: bool,
    /// Its zone, if set.
    pub zone: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its live session, if it has one.
    pub session: Option<String>,
    /// What the gossip says of it, if this process's gossip knows it.
    pub gossip: Option<GossipView>,
    /// Replicas it holds in its live session (any state but the initial one).
    pub replicas: usize,
    /// Replicas it holds in its state model's top state.
    pub top_states: usize,
    /// Partitions disabled on it, as `resource/partition`.
    pub disabled_partitions: Vec<String>,
}

/// A member's liveness from the gossip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GossipView {
    /// alive, suspect, down or left.
    pub status: String,
    /// Its generation.
    pub generation: u64,
    /// The last probe's round-trip time, in ms.
    pub rtt_ms: Option<f64>,
}

/// One resource: a partition × instance grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceView {
    /// The resource.
    pub name: String,
    /// Its state model.
    pub state_model: String,
    /// The model's top state (MASTER, LEADER, ONLINE…), when the model is known.
    pub top_state: Option<String>,
    /// Whether the resource is enabled.
    pub enabled: bool,
    /// Partitions, in Helix's natural order.
    pub partitions: Vec<String>,
    /// Every instance that appears in a cell, sorted.
    pub instances: Vec<String>,
    /// The cells, one per (partition, instance) that has anything to show.
    pub cells: Vec<Cell>,
    /// Cells whose external view differs from the ideal state.
    pub differences: usize,
}

/// One replica's cell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The partition.
    pub partition: String,
    /// The instance.
    pub instance: String,
    /// The state the ideal state asks for (its map fields), if any.
    pub ideal: Option<String>,
    /// The state in the external view, if any.
    pub external: Option<String>,
    /// The state in the instance's live current state, if any.
    pub current: Option<String>,
    /// A transition in flight for it: `FROM-TO`.
    pub pending: Option<String>,
    /// The last error recorded for a replica in ERROR.
    pub error: Option<String>,
    /// Whether the ideal state and the external view disagree on it.
    pub differs: bool,
}

/// One store replica.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreReplicaView {
    /// Its address.
    pub addr: String,
    /// Its id, when it answered.
    pub id: Option<u64>,
    /// Leader, Follower, Candidate or Learner; `unreachable` when it did not answer.
    pub role: String,
    /// Its Raft term.
    pub term: Option<u64>,
    /// The last log index it applied.
    pub applied: Option<u64>,
    /// How far its applied index is behind the highest commit index any replica reported.
    pub lag: Option<u64>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// A record read from the store: its path, the record, and the revision that last changed it.
pub type StoredRecord = (String, Record, u64);

/// A store replica's answer to a status request, as gathered by the shell.
pub type ReplicaAnswer = (String, Result<ReplicaStatus, String>);

/// Builds the view of `cluster` from the records under `/<C>` read at `revision`, the
/// gossip's members and the store replicas' status.
pub fn build(
    cluster: &str,
    revision: u64,
    records: &[StoredRecord],
    members: &[MemberStatus],
    replicas: &[ReplicaAnswer],
) -> ClusterView {
    let l = Layout::new(cluster);
    let mut by_kind = Gathered::default();
    for (path, record, mod_revision) in records {
        by_kind.add(&l, path, record, *mod_revision);
    }
    let gossip: BTreeMap<&str, &MemberStatus> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    let leader = by_kind.leader.as_ref().map(|(r, version_rev)| LeaderView {
        name: r.id.clone(),
        epoch: *version_rev,
        since_ms: r
            .simple(crate::controller::election::TAKEN_FIELD)
            .and_then(|v| v.parse().ok()),
    });
    let standbys = members
        .iter()
        .filter(|m| m.roles.iter().any(|r| r == "controller"))
        .filter(|m| m.clusters.iter().any(|c| c == cluster))
        .filter(|m| m.status.is_active())
        .filter(|m| leader.as_ref().is_none_or(|l| l.name != m.name))
        .map(|m| m.name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let resources = by_kind.resources();
    let instances = by_kind.instances(&gossip, &resources);
    ClusterView {
        cluster: cluster.to_string(),
        revision,
        leader,
        standbys,
        paused: by_kind.pause.as_ref().map(switch),
        maintenance: by_kind.maintenance.as_ref().map(switch),
        instances,
        resources,
        store: store_view(replicas),
        alerts: by_kind
            .alert_status
            .as_ref()
            .map(|r| {
                crate::health::records::decode_status(Some(r))
                    .firing
                    .values()
                    .map(crate::admin::firing_row)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn switch(r: &Record) -> Switch {
    Switch {
        reason: r.simple("REASON").unwrap_or("").to_string(),
        by: r.simple("OPERATOR").map(String::from),
        since_ms: r.simple("TIMESTAMP").and_then(|v| v.parse().ok()),
    }
}

fn store_view(replicas: &[ReplicaAnswer]) -> Vec<StoreReplicaView> {
    let commit = replicas
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter_map(|s| s.commit_index.max(s.applied_index))
        .max();
    let mut out: Vec<StoreReplicaView> = replicas
        .iter()
        .map(|(addr, r)| match r {
            Ok(s) => StoreReplicaView {
                addr: addr.clone(),
                id: Some(s.id),
                role: s.role.clone(),
                term: Some(s.term),
                applied: s.applied_index,
                lag: commit.map(|c| c.saturating_sub(s.applied_index.unwrap_or(0))),
                error: None,
            },
            Err(e) => StoreReplicaView {
                addr: addr.clone(),
                id: None,
                role: "unreachable".into(),
                term: None,
                applied: None,
                lag: None,
                error: Some(e.clone()),
            },
        })
        .collect();
    // Replicas by id; those that did not answer last.
    out.sort_by_key(|r| (r.id.is_none(), r.id, r.addr.clone()));
    out
}

/// The cell of (`p`, `i`), created empty on first use.
fn cell<'a>(cells: &'a mut BTreeMap<(String, String), Cell>, p: &str, i: &str) -> &'a mut Cell {
    cells
        .entry((p.to_string(), i.to_string()))
        .or_insert_with(|| Cell {
            partition: p.to_string(),
            instance: i.to_string(),
            ideal: None,
            external: None,
            current: None,
            pending: None,
            error: None,
            differs: false,
        })
}

/// The records of one cluster, by kind.
#[derive(Default)]
struct Gathered {
    leader: Option<(Record, u64)>,
    pause: Option<Record>,
    maintenance: Option<Record>,
    configs: BTreeMap<String, InstanceConfig>,
    live: BTreeMap<String, String>,
    ideal: BTreeMap<String, IdealState>,
    external: BTreeMap<String, Record>,
    models: BTreeMap<String, StateModelDefinition>,
    /// (instance, session, resource) → current state.
    current: BTreeMap<(String, String, String), CurrentState>,
    /// (resource, partition, instance) → FROM-TO, with the target session.
    pending: Vec<(String, String, String, String, String)>,
    /// The leader's alert status record.
    alert_status: Option<Record>,
}

impl Gathered {
    fn add(&mut self, l: &Layout, path: &str, record: &Record, mod_revision: u64) {
        if path == l.alert_status() {
            self.alert_status = Some(record.clone());
            return;
        }
        match l.classify(path) {
            // The epoch is the revision of the write that took the lead.
            Some(Key::Leader) => self.leader = Some((record.clone(), mod_revision)),
            Some(Key::Pause) => self.pause = Some(record.clone()),
            Some(Key::Maintenance) => self.maintenance = Some(record.clone()),
            Some(Key::InstanceConfig(i)) => {
                self.configs
                    .insert(i.to_string(), InstanceConfig::new(record.clone()));
            }
            Some(Key::LiveInstance(i)) => {
                if let Some(s) = record.simple(crate::model::fields::SESSION_ID) {
                    self.live.insert(i.to_string(), s.to_string());
                }
            }
            Some(Key::IdealState(r)) => {
                self.ideal.insert(r.to_string(), IdealState::new(record.clone()));
            }
            Some(Key::ExternalView(r)) => {
                self.external.insert(r.to_string(), record.clone());
            }
            Some(Key::StateModel(m)) => {
                if let Ok(def) = StateModelDefinition::from_record(record) {
                    self.models.insert(m.to_string(), def);
                }
            }
            Some(Key::CurrentState {
                instance,
                session,
                resource,
            }) => {
                self.current.insert(
                    (instance.to_string(), session.to_string(), resource.to_string()),
                    CurrentState::new(record.clone()),
                );
            }
            Some(Key::Message { instance, .. }) => {
                let m = Message::new(record.clone());
                if let (Some(r), Some(p), Some(from), Some(to)) = (
                    m.resource_name(),
                    m.partition_name(),
                    m.from_state(),
                    m.to_state(),
                ) {
                    self.pending.push((
                        r.to_string(),
                        p.to_string(),
                        instance.to_string(),
                        format!("{from}-{to}"),
                        m.tgt_session_id().unwrap_or("").to_string(),
                    ));
                }
            }
            _ => {}
        }
    }

    fn resources(&self) -> Vec<ResourceView> {
        let mut names: BTreeSet<&String> = self.ideal.keys().collect();
        names.extend(self.external.keys());
        names.into_iter().map(|r| self.resource(r)).collect()
    }

    fn resource(&self, name: &str) -> ResourceView {
        let ideal = self.ideal.get(name);
        let external = self.external.get(name);
        let state_model = ideal
            .and_then(|i| i.state_model().ok())
            .or_else(|| external.and_then(|e| e.simple(crate::model::fields::STATE_MODEL_DEF_REF)))
            .unwrap_or("")
            .to_string();
        let top_state = self.models.get(&state_model).map(|m| m.top_state().to_string());
        let mut partitions: BTreeSet<String> = ideal
            .and_then(|i| i.partitions().ok())
            .unwrap_or_default()
            .into_iter()
            .collect();
        if let Some(e) = external {
            partitions.extend(e.map_fields.keys().cloned());
        }
        let mut cells: BTreeMap<(String, String), Cell> = BTreeMap::new();
        for p in &partitions {
            if let Some(map) = ideal.and_then(|i| i.instance_state_map(p)) {
                for (i, s) in map {
                    cell(&mut cells, p, i).ideal = Some(s.clone());
                }
            } else if let (Some(is), Some(model)) = (ideal, self.models.get(&state_model)) {
                // No map fields (FULL_AUTO, SEMI_AUTO): the states the preference list asks
                // for, as the engine assigns them.
                for (i, s) in self.best_from_list(name, is, model, p) {
                    cell(&mut cells, p, &i).ideal = Some(s);
                }
            }
            if let Some(map) = external.and_then(|e| e.map(p)) {
                for (i, s) in map {
                    cell(&mut cells, p, i).external = Some(s.clone());
                }
            }
        }
        for ((instance, session, resource), cs) in &self.current {
            if resource != name || self.live.get(instance) != Some(session) {
                continue;
            }
            for (p, s) in cs.partition_states() {
                let c = cell(&mut cells, &p, instance);
                c.current = Some(s.clone());
                if s == "ERROR" {
                    c.error = Some(cs.info(&p).unwrap_or("").to_string());
                }
            }
        }
        for (r, p, i, t, session) in &self.pending {
            if r == name && (session.is_empty() || self.live.get(i) == Some(session)) {
                cell(&mut cells, p, i).pending = Some(t.clone());
            }
        }
        let mut differences = 0;
        let mut instances = BTreeSet::new();
        let mut out = Vec::with_capacity(cells.len());
        for (_, mut c) in cells {
            c.differs = c.ideal.is_some() && c.ideal != c.external;
            differences += usize::from(c.differs);
            instances.insert(c.instance.clone());
            out.push(c);
        }
        let mut partitions: Vec<String> = partitions.into_iter().collect();
        crate::model::sort_partitions(&mut partitions);
        ResourceView {
            name: name.to_string(),
            state_model,
            top_state,
            enabled: ideal.is_none_or(|i| i.enabled().unwrap_or(true)),
            partitions,
            instances: instances.into_iter().collect(),
            cells: out,
            differences,
        }
    }

    /// The states a partition's preference list asks for, as the engine's
    /// `assignment::assign_auto` gives them over the live, enabled instances and the current
    /// states of their sessions (the model's own bounds; a `STATE_CONSTRAINT` record and
    /// maintenance are not taken into account here).
    fn best_from_list(
        &self,
        resource: &str,
        is: &IdealState,
        model: &StateModelDefinition,
        partition: &str,
    ) -> BTreeMap<String, String> {
        let Some(list) = is.preference_list(partition) else {
            return BTreeMap::new();
        };
        let live: NameSet = self.live.keys().cloned().collect();
        let resource_disabled = !is.enabled().unwrap_or(true);
        let disabled: BTreeSet<String> = self
            .configs
            .iter()
            .filter(|(_, c)| {
                resource_disabled
                    || !c.enabled().unwrap_or(true)
                    || c.disabled_partitions()
                        .iter()
                        .any(|(r, ps)| (r.is_empty() || r == resource) && ps.iter().any(|q| q == partition))
            })
            .map(|(i, _)| i.clone())
            .collect();
        let holders: BTreeMap<String, String> = self
            .current
            .iter()
            .filter(|((i, session, r), _)| r == resource && self.live.get(i) == Some(session))
            .filter_map(|((i, _, _), cs)| cs.state(partition).map(|s| (i.clone(), s.to_string())))
            .collect();
        let who = Eligibility {
            live: &live,
            disabled: &disabled,
        };
        let replicas = match is.replicas() {
            Ok(Replicas::Count(0)) | Err(_) => list.len(),
            Ok(Replicas::Count(n)) => n,
            Ok(Replicas::AnyLiveInstance) => live.iter().filter(|i| who.can_serve(i)).count(),
        };
        assign_auto(
            model,
            &StateBounds::of_model(model),
            list,
            &holders,
            who,
            replicas,
        )
    }

    fn instances(
        &self,
        gossip: &BTreeMap<&str, &MemberStatus>,
        resources: &[ResourceView],
    ) -> Vec<InstanceView> {
        let mut names: BTreeSet<&String> = self.configs.keys().collect();
        names.extend(self.live.keys());
        names
            .into_iter()
            .map(|name| {
                let config = self.configs.get(name);
                let (mut replicas, mut top_states) = (0, 0);
                for r in resources {
                    let initial = self.models.get(&r.state_model).map(|m| m.initial_state());
                    for c in r.cells.iter().filter(|c| &c.instance == name) {
                        let Some(s) = c.current.as_deref() else { continue };
                        if Some(s) != initial && s != "DROPPED" {
                            replicas += 1;
                        }
                        if r.top_state.as_deref() == Some(s) {
                            top_states += 1;
                        }
                    }
                }
                InstanceView {
                    name: name.clone(),
                    enabled: config.is_none_or(|c| c.enabled().unwrap_or(true)),
                    zone: config.and_then(|c| c.zone()).map(String::from),
                    tags: config.map(|c| c.tags().to_vec()).unwrap_or_default(),
                    session: self.live.get(name).cloned(),
                    gossip: gossip.get(name.as_str()).map(|m| GossipView {
                        status: m.status.as_str().to_string(),
                        generation: m.generation,
                        rtt_ms: m.rtt_ms,
                    }),
                    replicas,
                    top_states,
                    disabled_partitions: config
                        .map(|c| {
                            c.disabled_partitions()
                                .into_iter()
                                .flat_map(|(r, ps)| ps.into_iter().map(move |p| format!("{r}/{p}")))
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::Status;
    use crate::model::{LiveInstance, Message};

    fn member(name: &str, roles: &[&str], status: Status) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            generation: 9,
            status,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            clusters: vec!["C".into()],
            last_heard_ms: Some(1),
            rtt_ms: Some(0.25),
            is_local: false,
        }
    }

    fn replica(id: u64, role: &str, commit: u64, applied: u64) -> ReplicaStatus {
        ReplicaStatus {
            addr: format!("127.0.0.1:{id}"),
            role: role.into(),
            term: 3,
            leader: Some(1),
            commit_index: Some(commit),
            applied_index: Some(applied),
            ..ReplicaStatus::example(id, vec![])
        }
    }

    /// A cluster with two instances (i2 disabled, in zone z2), one resource of two
    /// partitions: p0 converged, p1 with i1 in ERROR and a transition in flight on i2.
    fn records() -> Vec<StoredRecord> {
        let l = Layout::new("C");
        let mut out = Vec::new();
        let mut add = |path: String, r: Record, rev: u64| out.push((path, r, rev));
        add(l.leader(), Record::new("ctl-1"), 42);
        let mut i1 = InstanceConfig::create("i1").record;
        i1.set_simple("HELIX_ENABLED", "true");
        add(l.instance_config("i1"), i1, 2);
        let mut i2 = InstanceConfig::create("i2").record;
        i2.set_simple("HELIX_ENABLED", "false");
        i2.set_simple("HELIX_ZONE_ID", "z2");
        add(l.instance_config("i2"), i2, 3);
        add(
            l.live_instance("i1"),
            LiveInstance::create("i1", "s1", "v", "x").record,
            4,
        );
        add(
            l.live_instance("i2"),
            LiveInstance::create("i2", "s2", "v", "x").record,
            5,
        );
        add(
            l.state_model("MasterSlave"),
            crate::statemodel::builtin("MasterSlave").unwrap().to_record(),
            1,
        );
        let mut is = IdealState::create("db", 2, "MasterSlave", crate::model::RebalanceMode::SemiAuto).record;
        is.map_fields.insert(
            "db_0".into(),
            [("i1".into(), "MASTER".into()), ("i2".into(), "SLAVE".into())].into(),
        );
        is.map_fields.insert(
            "db_1".into(),
            [("i1".into(), "SLAVE".into()), ("i2".into(), "MASTER".into())].into(),
        );
        add(l.ideal_state("db"), is, 6);
        let mut ev = Record::new("db");
        ev.map_fields.insert(
            "db_0".into(),
            [("i1".into(), "MASTER".into()), ("i2".into(), "SLAVE".into())].into(),
        );
        ev.map_fields.insert(
            "db_1".into(),
            [("i1".into(), "ERROR".into()), ("i2".into(), "SLAVE".into())].into(),
        );
        add(l.external_view("db"), ev, 7);
        let mut cs1 = CurrentState::create("db", "s1", "MasterSlave");
        cs1.set_state("db_0", "MASTER");
        cs1.set_state("db_1", "ERROR");
        cs1.set_info("db_1", "disk full");
        add(l.current_state("i1", "s1", "db"), cs1.record, 8);
        let mut cs2 = CurrentState::create("db", "s2", "MasterSlave");
        cs2.set_state("db_0", "SLAVE");
        cs2.set_state("db_1", "SLAVE");
        add(l.current_state("i2", "s2", "db"), cs2.record, 9);
        // An old session's current state is not shown.
        let mut old = CurrentState::create("db", "s0", "MasterSlave");
        old.set_state("db_0", "MASTER");
        add(l.current_state("i2", "s0", "db"), old.record, 1);
        let m = Message::state_transition("m1")
            .source("ctl-1", "c1")
            .target("i2", "s2")
            .replica("db", "db_1")
            .state_model("MasterSlave")
            .transition("SLAVE", "MASTER")
            .build(1)
            .unwrap();
        add(l.message("i2", "m1"), m.record, 10);
        out
    }

    /// A FULL_AUTO ideal state has preference lists, not map fields: the grid's ideal states
    /// are what the engine assigns from the list over live, enabled instances.
    #[test]
    fn full_auto_ideal_states_come_from_the_preference_lists() {
        let l = Layout::new("C");
        let mut recs = records();
        let mut is = IdealState::create("kv", 3, "MasterSlave", crate::model::RebalanceMode::FullAuto).record;
        is.set_simple("REPLICAS", "1");
        is.list_fields
            .insert("kv_0".into(), vec!["i1".into(), "i2".into()]);
        // i2 is disabled (records()): the MASTER goes to the next instance of the list.
        is.list_fields
            .insert("kv_1".into(), vec!["i2".into(), "i1".into()]);
        is.list_fields.insert("kv_2".into(), vec!["i1".into()]);
        recs.push((l.ideal_state("kv"), is, 20));
        let mut ev = Record::new("kv");
        ev.map_fields
            .insert("kv_0".into(), [("i1".into(), "MASTER".into())].into());
        ev.map_fields
            .insert("kv_1".into(), [("i1".into(), "MASTER".into())].into());
        recs.push((l.external_view("kv"), ev, 21));
        let mut cs = CurrentState::create("kv", "s1", "MasterSlave");
        cs.set_state("kv_0", "MASTER");
        cs.set_state("kv_1", "MASTER");
        recs.push((l.current_state("i1", "s1", "kv"), cs.record, 22));
        let v = build("C", 30, &recs, &[], &[]);
        let r = v.resources.iter().find(|r| r.name == "kv").unwrap();
        let cell = |p: &str, i: &str| r.cells.iter().find(|c| c.partition == p && c.instance == i);
        assert_eq!(cell("kv_0", "i1").unwrap().ideal.as_deref(), Some("MASTER"));
        assert_eq!(cell("kv_1", "i1").unwrap().ideal.as_deref(), Some("MASTER"));
        assert!(
            cell("kv_1", "i2").is_none_or(|c| c.ideal.is_none()),
            "a disabled instance is given nothing"
        );
        // kv_2 is not placed yet: the one difference.
        let missing = cell("kv_2", "i1").unwrap();
        assert_eq!(
            (missing.ideal.as_deref(), missing.external.as_deref()),
            (Some("MASTER"), None)
        );
        assert!(missing.differs);
        assert_eq!(r.differences, 1);
    }

    #[test]
    fn the_view_shows_leader_switches_instances_and_the_grid_as_the_store_holds_them() {
        let members = vec![
            member("ctl-1", &["controller"], Status::Alive),
            member("ctl-2", &["controller"], Status::Alive),
            member("ctl-3", &["controller"], Status::Down),
            member("i1", &["participant"], Status::Alive),
        ];
        let replicas = vec![
            ("a".to_string(), Ok(replica(1, "Leader", 100, 100))),
            ("b".to_string(), Ok(replica(2, "Follower", 90, 95))),
            ("c".to_string(), Err("unreachable: timed out".to_string())),
        ];
        let v = build("C", 77, &records(), &members, &replicas);
        assert_eq!(v.revision, 77);
        let leader = v.leader.as_ref().unwrap();
        assert_eq!((leader.name.as_str(), leader.epoch), ("ctl-1", 42));
        assert_eq!(v.standbys, vec!["ctl-2".to_string()]);
        assert!(v.paused.is_none() && v.maintenance.is_none());

        let names: Vec<&str> = v.instances.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["i1", "i2"]);
        let (i1, i2) = (&v.instances[0], &v.instances[1]);
        assert!(i1.enabled && !i2.enabled);
        assert_eq!(i2.zone.as_deref(), Some("z2"));
        assert_eq!(i1.gossip.as_ref().map(|g| g.status.as_str()), Some("alive"));
        assert!(i2.gossip.is_none());
        assert_eq!((i1.replicas, i1.top_states), (2, 1));
        assert_eq!((i2.replicas, i2.top_states), (2, 0));

        let r = &v.resources[0];
        assert_eq!(r.top_state.as_deref(), Some("MASTER"));
        assert_eq!(r.partitions, ["db_0", "db_1"]);
        let cell = |p: &str, i: &str| {
            r.cells
                .iter()
                .find(|c| c.partition == p && c.instance == i)
                .unwrap()
        };
        assert_eq!(cell("db_0", "i2").current.as_deref(), Some("SLAVE"));
        let err = cell("db_1", "i1");
        assert_eq!(err.error.as_deref(), Some("disk full"));
        assert!(err.differs);
        let moving = cell("db_1", "i2");
        assert_eq!(moving.pending.as_deref(), Some("SLAVE-MASTER"));
        assert!(moving.differs, "ideal MASTER, external SLAVE");
        assert!(!cell("db_0", "i1").differs);
        assert_eq!(r.differences, 2);

        assert_eq!(v.store.len(), 3);
        assert_eq!(v.store[0].lag, Some(0));
        assert_eq!(v.store[1].lag, Some(5));
        let down = v.store.iter().find(|s| s.id.is_none()).unwrap();
        assert_eq!(down.role, "unreachable");
    }

    #[test]
    fn switches_show_their_reason_and_operator() {
        let l = Layout::new("C");
        let mut m = Record::new("maintenance");
        m.set_simple("REASON", "disk swap");
        m.set_simple("OPERATOR", "ops");
        m.set_simple("TIMESTAMP", "1700");
        let v = build(
            "C",
            1,
            &[(l.maintenance(), m, 3), (l.pause(), Record::new("pause"), 4)],
            &[],
            &[],
        );
        let s = v.maintenance.unwrap();
        assert_eq!(
            (s.reason.as_str(), s.by.as_deref(), s.since_ms),
            ("disk swap", Some("ops"), Some(1700))
        );
        assert_eq!(v.paused.unwrap().reason, "");
        assert!(v.leader.is_none() && v.resources.is_empty() && v.store.is_empty());
    }
}
