//! Clusters: add (Helix's znode layout, the cluster config and the built-in state models in
//! one transaction), list, drop, describe; the operator switches pause and maintenance.
//!
//! ```text
//!   add_cluster(C) ─► /C, /C/{CONFIGS,CONTROLLER,EXTERNALVIEW,IDEALSTATES,INSTANCES,
//!                     LIVEINSTANCES,PROPERTYSTORE,STATEMODELDEFS}, /C/CONFIGS/{CLUSTER,
//!                     PARTICIPANT,RESOURCE}, /C/CONTROLLER/{ERRORS,HISTORY,MESSAGES,
//!                     STATUSUPDATES} (empty values), /C/CONFIGS/CLUSTER/C,
//!                     /C/STATEMODELDEFS/<every built-in>
//! ```

use serde::Serialize;

use crate::model::layout::{CLUSTER_DIRS, CONFIG_DIRS, CONTROLLER_DIRS};
use crate::model::{Layout, Record};
use crate::propertystore::Op;

use super::records::{dir, put, Guard};
use super::statemodel::builtin_records;
use super::{layout, Admin, AdminError};

/// `TRIGGERED_BY` of a maintenance record an operator wrote (Helix's `TriggeringEntity`).
pub const MAINTENANCE_TRIGGERED_BY_USER: &str = "USER";

/// What `cluster info` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterInfo {
    /// The cluster.
    pub cluster: String,
    /// Resources (ideal states), sorted.
    pub resources: Vec<String>,
    /// Configured instances, sorted.
    pub instances: Vec<String>,
    /// Instances with a live session, sorted.
    pub live_instances: Vec<String>,
    /// State models defined in the cluster, sorted.
    pub state_models: Vec<String>,
    /// Whether the cluster is paused (`CONTROLLER/PAUSE` exists).
    pub paused: bool,
    /// The maintenance record, while maintenance mode is on.
    pub maintenance: Option<Record>,
    /// The controller leadership record, if a controller leads.
    pub leader: Option<Record>,
    /// The cluster config record.
    pub config: Record,
}

impl Admin {
    /// Fails with [`AdminError::ClusterNotFound`] unless the cluster exists.
    pub(crate) async fn require_cluster(&self, l: &Layout) -> Result<(), AdminError> {
        if self.key_exists(&l.cluster_config()).await? {
            Ok(())
        } else {
            Err(AdminError::ClusterNotFound {
                cluster: l.cluster().to_string(),
            })
        }
    }

    /// Whether the cluster exists (its config record is there).
    pub async fn cluster_exists(&self, cluster: &str) -> Result<bool, AdminError> {
        let l = layout(cluster)?;
        self.key_exists(&l.cluster_config()).await
    }

    /// Creates a cluster: Helix's layout of directory keys, the cluster config and every
    /// built-in state model, in one transaction. Fails if `/<cluster>` exists.
    pub async fn add_cluster(&self, cluster: &str) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        let exists = || AdminError::ClusterExists {
            cluster: cluster.to_string(),
        };
        let mut ops: Vec<Op> = vec![dir(l.root())];
        ops.extend(CLUSTER_DIRS.iter().map(|d| dir(l.dir(d))));
        ops.extend(
            CONFIG_DIRS
                .iter()
                .map(|d| dir(format!("{}/{d}", l.dir("CONFIGS")))),
        );
        ops.extend(
            CONTROLLER_DIRS
                .iter()
                .map(|d| dir(format!("{}/{d}", l.controller()))),
        );
        ops.push(put(l.cluster_config(), &Record::new(cluster)));
        for r in builtin_records() {
            ops.push(put(l.state_model(&r.id), &r));
        }
        self.commit(
            &format!("adding cluster {cluster}"),
            vec![
                Guard::missing(l.root(), exists()),
                Guard::missing(l.cluster_config(), exists()),
            ],
            ops,
        )
        .await
    }

    /// The clusters in the store (top-level names with a cluster config), sorted.
    pub async fn list_clusters(&self) -> Result<Vec<String>, AdminError> {
        let mut out = Vec::new();
        for name in self.children("/").await? {
            if super::validate_name("cluster", &name).is_ok()
                && self.key_exists(&Layout::new(&name).cluster_config()).await?
            {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Deletes a cluster and everything under it. Refused while instances are live (as in
    /// Helix): their participants would keep writing under it.
    pub async fn drop_cluster(&self, cluster: &str) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        let live = self.children(&l.live_instances()).await?;
        if !live.is_empty() {
            return Err(AdminError::ClusterHasLiveInstances {
                cluster: cluster.to_string(),
                instances: live.join(", "),
            });
        }
        self.commit(
            &format!("dropping cluster {cluster}"),
            vec![Guard::cluster(&l)],
            vec![Op::Delete {
                path: l.root(),
                expected_version: None,
                recursive: true,
            }],
        )
        .await
    }

    /// The cluster's resources, instances, live instances, switches and config.
    pub async fn cluster_info(&self, cluster: &str) -> Result<ClusterInfo, AdminError> {
        let l = layout(cluster)?;
        let config = self
            .record(&l.cluster_config())
            .await?
            .ok_or_else(|| AdminError::ClusterNotFound {
                cluster: cluster.to_string(),
            })?;
        Ok(ClusterInfo {
            cluster: cluster.to_string(),
            resources: self.children(&l.ideal_states()).await?,
            instances: self.children(&l.instance_configs()).await?,
            live_instances: self.children(&l.live_instances()).await?,
            state_models: self.children(&l.state_models()).await?,
            paused: self.key_exists(&l.pause()).await?,
            maintenance: self.record(&l.maintenance()).await?,
            leader: self.record(&l.leader()).await?,
            config,
        })
    }

    /// The cluster config record.
    pub async fn cluster_config(&self, cluster: &str) -> Result<Record, AdminError> {
        let l = layout(cluster)?;
        self.record(&l.cluster_config())
            .await?
            .ok_or_else(|| AdminError::ClusterNotFound {
                cluster: cluster.to_string(),
            })
    }

    /// Pauses the cluster: the controller sends no transitions while `CONTROLLER/PAUSE`
    /// exists (Helix's `enableCluster C false`). Pausing a paused cluster changes nothing.
    pub async fn pause_cluster(&self, cluster: &str, reason: Option<&str>) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        let mut signal = Record::new("pause");
        if let Some(reason) = reason {
            signal.set_simple("REASON", reason);
        }
        self.commit(
            &format!("pausing cluster {cluster}"),
            vec![Guard::cluster(&l)],
            vec![put(l.pause(), &signal)],
        )
        .await
    }

    /// Resumes a paused cluster (deletes `CONTROLLER/PAUSE`); resuming a running cluster
    /// changes nothing.
    pub async fn resume_cluster(&self, cluster: &str) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        self.remove_switch(&l, &l.pause(), "resuming").await
    }

    /// Whether the cluster is paused.
    pub async fn is_paused(&self, cluster: &str) -> Result<bool, AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        self.key_exists(&l.pause()).await
    }

    /// Switches maintenance mode on (a `CONTROLLER/MAINTENANCE` record with `REASON`,
    /// `TRIGGERED_BY` = `USER`, `TIMESTAMP` in ms and the `OPERATOR`) or off (deletes it).
    pub async fn set_maintenance(
        &self,
        cluster: &str,
        on: bool,
        reason: Option<&str>,
    ) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        if !on {
            return self
                .remove_switch(&l, &l.maintenance(), "ending maintenance of")
                .await;
        }
        let mut signal = Record::new("maintenance");
        signal.set_simple("REASON", reason.unwrap_or(""));
        signal.set_simple("TRIGGERED_BY", MAINTENANCE_TRIGGERED_BY_USER);
        signal.set_simple("TIMESTAMP", self.now_ms());
        signal.set_simple("OPERATOR", &self.user);
        self.commit(
            &format!("starting maintenance of cluster {cluster}"),
            vec![Guard::cluster(&l)],
            vec![put(l.maintenance(), &signal)],
        )
        .await
    }

    /// The maintenance record, while maintenance mode is on.
    pub async fn maintenance(&self, cluster: &str) -> Result<Option<Record>, AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        self.record(&l.maintenance()).await
    }

    async fn remove_switch(&self, l: &Layout, path: &str, doing: &str) -> Result<(), AdminError> {
        self.require_cluster(l).await?;
        for _ in 0..8 {
            let version = self.read(path).await?.version;
            if version == 0 {
                return Ok(());
            }
            match self
                .commit(
                    &format!("{doing} cluster {}", l.cluster()),
                    vec![Guard::cluster(l), Guard::version(path, version)],
                    vec![super::records::delete(path.to_string())],
                )
                .await
            {
                Err(AdminError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(AdminError::Conflict {
            path: path.to_string(),
        })
    }
}
