//! `strand status`: one screen of a cluster — the leading controller, its epoch and the
//! standbys, pause and maintenance, instances, whether each resource has converged, and
//! the alerts that fire — from one range read of `/<C>` (every record at one revision)
//! and, when the caller has it, a gossip view (standbys are known only from the gossip).
//!
//! The picture of the cluster is the dashboard's ([`crate::http::view::build`], pure);
//! this file only summarises it.

use serde::Serialize;

use crate::http::view::{self, ClusterView, LeaderView, StoredRecord, Switch};
use crate::membership::MemberStatus;
use crate::model::{Layout, Record};

use super::health::{firing_row, FiringRow};
use super::{layout, Admin, AdminError};

/// One instance in `strand status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    /// The instance.
    pub name: String,
    /// Whether it has a live session.
    pub live: bool,
    /// `HELIX_ENABLED`.
    pub enabled: bool,
    /// Its zone.
    pub zone: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Replicas it holds (any state but the initial one).
    pub replicas: usize,
    /// Replicas in the top state.
    pub top_states: usize,
}

/// One resource in `strand status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceStatus {
    /// The resource.
    pub name: String,
    /// Its state model.
    pub state_model: String,
    /// How many partitions.
    pub partitions: usize,
    /// Whether it is enabled.
    pub enabled: bool,
    /// No transition pending, nothing in ERROR, the external view is what the ideal state
    /// names (where it names states), and (enabled) every partition has its top state.
    pub converged: bool,
    /// Replicas whose external view differs from the ideal state's.
    pub differences: usize,
    /// Transitions in flight.
    pub pending: usize,
    /// Replicas in ERROR.
    pub errors: usize,
    /// Partitions without a replica in the top state in the external view.
    pub without_top_state: usize,
}

/// What `strand status` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// The cluster.
    pub cluster: String,
    /// The store revision everything was read at.
    pub revision: u64,
    /// The leading controller and its epoch.
    pub leader: Option<LeaderView>,
    /// Controllers of the cluster that stand by, when a gossip view was given.
    pub standbys: Option<Vec<String>>,
    /// The pause switch, while paused.
    pub paused: Option<Switch>,
    /// The maintenance switch, while on.
    pub maintenance: Option<Switch>,
    /// Configured instances.
    pub instances: Vec<InstanceStatus>,
    /// Resources.
    pub resources: Vec<ResourceStatus>,
    /// Alerts that fire.
    pub alerts: Vec<FiringRow>,
}

impl ClusterStatus {
    /// Whether every resource converged and no alert fires.
    pub fn healthy(&self) -> bool {
        self.resources.iter().all(|r| r.converged) && self.alerts.is_empty()
    }
}

impl Admin {
    /// The status of `cluster`; `members` is a gossip view to find standbys in (`None`:
    /// standbys unknown).
    pub async fn status(
        &self,
        cluster: &str,
        members: Option<&[MemberStatus]>,
    ) -> Result<ClusterStatus, AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        let (entries, revision) = self
            .store()
            .range(&l.root())
            .await
            .map_err(|e| AdminError::store(format!("reading cluster {cluster}"), e))?;
        let records: Vec<StoredRecord> = entries
            .into_iter()
            .filter_map(|(path, r)| {
                let rec = Record::from_stored(&r.value).ok().flatten()?;
                Some((path, rec, r.stat.mod_revision))
            })
            .collect();
        Ok(build(cluster, revision, &records, members))
    }
}

/// The status from the cluster's records read at `revision` (pure).
pub fn build(
    cluster: &str,
    revision: u64,
    records: &[StoredRecord],
    members: Option<&[MemberStatus]>,
) -> ClusterStatus {
    let v: ClusterView = view::build(cluster, revision, records, members.unwrap_or(&[]), &[]);
    let l = Layout::new(cluster);
    let status = records
        .iter()
        .find(|(p, _, _)| *p == l.alert_status())
        .map(|(_, r, _)| r);
    let alerts = crate::health::records::decode_status(status)
        .firing
        .values()
        .map(firing_row)
        .collect();
    let instances = v
        .instances
        .iter()
        .map(|i| InstanceStatus {
            name: i.name.clone(),
            live: i.session.is_some(),
            enabled: i.enabled,
            zone: i.zone.clone(),
            tags: i.tags.clone(),
            replicas: i.replicas,
            top_states: i.top_states,
        })
        .collect();
    let resources = v
        .resources
        .iter()
        .map(|r| {
            let pending = r.cells.iter().filter(|c| c.pending.is_some()).count();
            let errors = r
                .cells
                .iter()
                .filter(|c| c.current.as_deref() == Some("ERROR") || c.external.as_deref() == Some("ERROR"))
                .count();
            let without_top_state = match &r.top_state {
                Some(top) if r.enabled => r
                    .partitions
                    .iter()
                    .filter(|p| {
                        !r.cells
                            .iter()
                            .any(|c| &c.partition == *p && c.external.as_deref() == Some(top.as_str()))
                    })
                    .count(),
                _ => 0,
            };
            ResourceStatus {
                name: r.name.clone(),
                state_model: r.state_model.clone(),
                partitions: r.partitions.len(),
                enabled: r.enabled,
                converged: pending == 0 && errors == 0 && r.differences == 0 && without_top_state == 0,
                differences: r.differences,
                pending,
                errors,
                without_top_state,
            }
        })
        .collect();
    ClusterStatus {
        cluster: cluster.to_string(),
        revision,
        leader: v.leader,
        standbys: members.map(|_| v.standbys),
        paused: v.paused,
        maintenance: v.maintenance,
        instances,
        resources,
        alerts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::records::encode_status;
    use crate::health::{AlertStatus, Firing, Group};
    use crate::membership::Status;
    use crate::model::{IdealState, InstanceConfig, LiveInstance, Message, RebalanceMode};

    fn member(name: &str, status: Status) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            generation: 1,
            status,
            roles: vec!["controller".into()],
            clusters: vec!["C".into()],
            last_heard_ms: None,
            rtt_ms: None,
            is_local: false,
        }
    }

    fn records() -> Vec<StoredRecord> {
        let l = Layout::new("C");
        let mut out = Vec::new();
        let mut add = |path: String, r: Record| out.push((path, r, 5));
        add(l.leader(), Record::new("ctl-1"));
        for i in ["i1", "i2"] {
            add(l.instance_config(i), InstanceConfig::create(i).record);
        }
        add(
            l.live_instance("i1"),
            LiveInstance::create("i1", "s1", "v", "x").record,
        );
        add(
            l.state_model("MasterSlave"),
            crate::statemodel::builtin("MasterSlave").unwrap().to_record(),
        );
        for r in ["db", "other"] {
            let mut is = IdealState::create(r, 1, "MasterSlave", RebalanceMode::SemiAuto).record;
            is.map_fields
                .insert(format!("{r}_0"), [("i1".into(), "MASTER".into())].into());
            add(l.ideal_state(r), is);
        }
        // db: the external view is the ideal state. other: its MASTER is still on its way.
        let mut ev = Record::new("db");
        ev.map_fields
            .insert("db_0".into(), [("i1".into(), "MASTER".into())].into());
        add(l.external_view("db"), ev);
        let mut ev = Record::new("other");
        ev.map_fields
            .insert("other_0".into(), [("i1".into(), "SLAVE".into())].into());
        add(l.external_view("other"), ev);
        let m = Message::state_transition("m1")
            .source("ctl-1", "c1")
            .target("i1", "s1")
            .replica("other", "other_0")
            .state_model("MasterSlave")
            .transition("SLAVE", "MASTER")
            .build(1)
            .unwrap();
        add(l.message("i1", "m1"), m.record);
        let mut fires = AlertStatus::default();
        let g = Group::Resource("db".into());
        fires.firing.insert(
            ("AVG(x)[RESOURCE=*] > 1".into(), g.clone()),
            Firing {
                rule: "AVG(x)[RESOURCE=*] > 1".into(),
                group: g,
                value: 3.0,
                since_ms: 1,
            },
        );
        add(l.alert_status(), encode_status(&fires));
        out
    }

    #[test]
    fn status_says_who_leads_who_stands_by_what_converged_and_what_fires() {
        let members = [
            member("ctl-1", Status::Alive),
            member("ctl-2", Status::Alive),
            member("ctl-3", Status::Down),
        ];
        let s = build("C", 9, &records(), Some(&members));
        assert_eq!(
            s.leader.as_ref().map(|l| (l.name.as_str(), l.epoch)),
            Some(("ctl-1", 5))
        );
        assert_eq!(s.standbys, Some(vec!["ctl-2".to_string()]));
        let live: Vec<(&str, bool)> = s.instances.iter().map(|i| (i.name.as_str(), i.live)).collect();
        assert_eq!(live, [("i1", true), ("i2", false)]);
        let db = &s.resources[0];
        assert!(db.converged, "{db:?}");
        let other = &s.resources[1];
        assert!(!other.converged);
        assert_eq!(
            (other.pending, other.differences, other.without_top_state),
            (1, 1, 1)
        );
        assert_eq!(s.alerts.len(), 1);
        assert_eq!(s.alerts[0].scope, "RESOURCE=db");
        assert!(!s.healthy());
        // Without a gossip view the standbys are unknown, not "none".
        assert_eq!(build("C", 9, &records(), None).standbys, None);
        let screen = crate::cli::status::render(&s, 1000);
        assert!(screen.contains("standbys    ctl-2"), "{screen}");
        assert!(screen.contains("resources (1 of 2 converged)"), "{screen}");
        assert!(
            screen.contains("NO: 1 pending, 1 differ from the ideal state, 1 without top state"),
            "{screen}"
        );
    }
}
