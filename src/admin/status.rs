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

use super::health::{overview, FiringRow};
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
    let find = |path: String| records.iter().find(|(p, _, _)| *p == path).map(|(_, r, _)| r);
    let health = overview(
        cluster,
        find(l.alerts()),
        None,
        None,
        find(l.alert_status()),
        None,
    );
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
        alerts: health.alerts.into_iter().flat_map(|a| a.firing).collect(),
    }
}
