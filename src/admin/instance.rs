//! Instances: add (`host:port` → `host_port`, its config and its directories), drop, list,
//! describe; enable/disable an instance or some of its partitions; tags, zone and weight.
//!
//! Every switch is a field of the instance config (`CONFIGS/PARTICIPANT/<i>`), read by the
//! controller: `HELIX_ENABLED`, mapField `HELIX_DISABLED_PARTITION` (resource → comma list),
//! listField `TAG_LIST`, `HELIX_ZONE_ID`, `INSTANCE_WEIGHT`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::fields::{
    HELIX_DISABLED_PARTITION, HELIX_ENABLED, HELIX_ZONE_ID, INSTANCE_WEIGHT, SESSION_ID, TAG_LIST, ZONE_ID,
};
use crate::model::layout::INSTANCE_DIRS;
use crate::model::{CurrentState, IdealState, InstanceConfig, Layout, Record};
use crate::propertystore::Op;

use super::records::{dir, put, Guard};
use super::{layout, validate_name, Admin, AdminError};

/// The instance name Helix gives an instance id: `host:port` becomes `host_port`; a name
/// without `:` is kept.
pub fn instance_name(id: &str) -> Result<String, AdminError> {
    let id = id.trim();
    let name = match id.rsplit_once(':') {
        Some((host, port)) => {
            if host.is_empty() || port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
                return Err(AdminError::invalid(
                    format!("instance {id:?}"),
                    "expected host:port (like localhost:12913) or an instance name",
                ));
            }
            format!("{host}_{port}")
        }
        None => id.to_string(),
    };
    validate_name("instance", &name)?;
    Ok(name)
}

/// What `instance info` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceDetails {
    /// The instance.
    pub instance: String,
    /// Its config record.
    pub config: Record,
    /// Its live-instance record, while it has a session.
    pub live: Option<Record>,
    /// The current session, while live.
    pub session: Option<String>,
    /// What it holds in the current session: resource → partition → state.
    pub current_states: BTreeMap<String, BTreeMap<String, String>>,
}

impl Admin {
    /// Registers an instance (`host:port` or a name): its config and its directories under
    /// `INSTANCES/<name>`, as `helix-admin --addNode` does. Returns its name.
    pub async fn add_instance(&self, cluster: &str, id: &str) -> Result<String, AdminError> {
        let l = layout(cluster)?;
        let name = instance_name(id)?;
        let config = InstanceConfig::create(&name);
        let mut ops: Vec<Op> = vec![dir(l.instance(&name))];
        ops.extend(
            INSTANCE_DIRS
                .iter()
                .map(|d| dir(format!("{}/{d}", l.instance(&name)))),
        );
        ops.push(put(l.instance_config(&name), &config.record));
        let exists = AdminError::InstanceExists {
            cluster: cluster.to_string(),
            instance: name.clone(),
        };
        self.commit(
            &format!("adding instance {name}"),
            vec![
                Guard::cluster(&l),
                Guard::missing(l.instance_config(&name), exists),
            ],
            ops,
        )
        .await?;
        Ok(name)
    }

    /// Removes an instance: its config and everything under `INSTANCES/<i>`. Refused while
    /// it is live or enabled (as `helix-admin --dropNode`).
    pub async fn drop_instance(&self, cluster: &str, instance: &str) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        let name = instance_name(instance)?;
        let path = l.instance_config(&name);
        let current = self.read(&path).await?;
        let Some(record) = current.record else {
            return Err(self.instance_missing(&l, &name).await);
        };
        if self.key_exists(&l.live_instance(&name)).await? {
            return Err(AdminError::InstanceLive {
                cluster: cluster.to_string(),
                instance: name,
            });
        }
        let enabled = InstanceConfig::new(record)
            .enabled()
            .map_err(|e| AdminError::record(&path, e))?;
        if enabled {
            return Err(AdminError::InstanceEnabled {
                cluster: cluster.to_string(),
                instance: name,
            });
        }
        let mut ops = vec![super::records::delete(path.clone())];
        if self.key_exists(&l.instance(&name)).await? || !self.children(&l.instance(&name)).await?.is_empty()
        {
            ops.push(Op::Delete {
                path: l.instance(&name),
                expected_version: None,
                recursive: true,
            });
        }
        self.commit(
            &format!("dropping instance {name}"),
            vec![
                Guard::cluster(&l),
                Guard::version(&path, current.version),
                Guard::missing(
                    l.live_instance(&name),
                    AdminError::InstanceLive {
                        cluster: cluster.to_string(),
                        instance: name.clone(),
                    },
                ),
            ],
            ops,
        )
        .await
    }

    /// The error for an instance config that is not there: the cluster's, if it is missing.
    pub(crate) async fn instance_missing(&self, l: &Layout, name: &str) -> AdminError {
        if let Err(e) = self.require_cluster(l).await {
            return e;
        }
        AdminError::InstanceNotFound {
            cluster: l.cluster().to_string(),
            instance: name.to_string(),
        }
    }

    /// The configured instances, sorted; with `tag`, only those carrying it.
    pub async fn list_instances(&self, cluster: &str, tag: Option<&str>) -> Result<Vec<String>, AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        let names = self.children(&l.instance_configs()).await?;
        let Some(tag) = tag else { return Ok(names) };
        let mut out = Vec::new();
        for n in names {
            if let Some(r) = self.record(&l.instance_config(&n)).await? {
                if InstanceConfig::new(r).tags().iter().any(|t| t == tag) {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    /// Every instance config of the cluster, by name.
    pub(crate) async fn instance_configs(&self, l: &Layout) -> Result<Vec<InstanceConfig>, AdminError> {
        let mut out = Vec::new();
        for n in self.children(&l.instance_configs()).await? {
            if let Some(r) = self.record(&l.instance_config(&n)).await? {
                out.push(InstanceConfig::new(r));
            }
        }
        Ok(out)
    }

    /// The instances with a live session, sorted.
    pub async fn live_instances(&self, cluster: &str) -> Result<Vec<String>, AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        self.children(&l.live_instances()).await
    }

    /// An instance's config record.
    pub async fn instance_config(&self, cluster: &str, instance: &str) -> Result<InstanceConfig, AdminError> {
        let l = layout(cluster)?;
        let name = instance_name(instance)?;
        match self.record(&l.instance_config(&name)).await? {
            Some(r) => Ok(InstanceConfig::new(r)),
            None => Err(self.instance_missing(&l, &name).await),
        }
    }

    /// An instance's config, live session and what it holds in that session.
    pub async fn instance_info(&self, cluster: &str, instance: &str) -> Result<InstanceDetails, AdminError> {
        let l = layout(cluster)?;
        let config = self.instance_config(cluster, instance).await?;
        let name = config.name().to_string();
        let live = self.record(&l.live_instance(&name)).await?;
        let session = live.as_ref().and_then(|r| r.simple(SESSION_ID)).map(String::from);
        let mut current_states = BTreeMap::new();
        if let Some(s) = &session {
            for resource in self.children(&l.session_current_states(&name, s)).await? {
                if let Some(r) = self.record(&l.current_state(&name, s, &resource)).await? {
                    current_states.insert(resource, CurrentState::new(r).partition_states());
                }
            }
        }
        Ok(InstanceDetails {
            instance: name,
            config: config.record,
            live,
            session,
            current_states,
        })
    }

    /// Changes an instance config that must exist, guarded by the cluster and the instance.
    async fn update_instance(
        &self,
        cluster: &str,
        instance: &str,
        extra: impl Fn(&Layout) -> Vec<Guard>,
        f: impl FnMut(&mut Record) -> Result<bool, AdminError>,
    ) -> Result<Record, AdminError> {
        let l = layout(cluster)?;
        let name = instance_name(instance)?;
        let path = l.instance_config(&name);
        let result = self
            .update_existing(
                &path,
                || {
                    let mut g = vec![Guard::cluster(&l), Guard::instance(&l, &name)];
                    g.extend(extra(&l));
                    g
                },
                || AdminError::InstanceNotFound {
                    cluster: cluster.to_string(),
                    instance: name.clone(),
                },
                f,
            )
            .await;
        match result {
            Err(AdminError::InstanceNotFound { .. }) => Err(self.instance_missing(&l, &name).await),
            other => other,
        }
    }

    /// Enables or disables an instance (`HELIX_ENABLED`).
    pub async fn enable_instance(
        &self,
        cluster: &str,
        instance: &str,
        enabled: bool,
    ) -> Result<(), AdminError> {
        self.update_instance(
            cluster,
            instance,
            |_| vec![],
            |r| {
                r.set_simple(HELIX_ENABLED, enabled);
                Ok(true)
            },
        )
        .await
        .map(drop)
    }

    /// Enables or disables partitions of a resource on one instance (the instance config's
    /// mapField `HELIX_DISABLED_PARTITION`: resource → comma-separated partitions). Every
    /// partition must be one of the resource's.
    pub async fn enable_partitions(
        &self,
        cluster: &str,
        instance: &str,
        resource: &str,
        partitions: &[String],
        enabled: bool,
    ) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        if partitions.is_empty() {
            return Err(AdminError::invalid("partitions", "name at least one partition"));
        }
        let ideal = self.ideal_state_of(&l, resource).await?;
        self.instance_config(cluster, instance).await?;
        let known = ideal
            .partitions()
            .map_err(|e| AdminError::record(l.ideal_state(resource), e))?;
        let unknown: Vec<&str> = partitions
            .iter()
            .filter(|p| !known.contains(p))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(AdminError::PartitionNotFound {
                cluster: cluster.to_string(),
                resource: resource.to_string(),
                partitions: unknown.join(", "),
            });
        }
        self.update_instance(
            cluster,
            instance,
            |l| vec![Guard::resource(l, resource)],
            |r| {
                let map = r
                    .map_fields
                    .entry(HELIX_DISABLED_PARTITION.to_string())
                    .or_default();
                let mut list: Vec<String> = map
                    .get(resource)
                    .map(|v| {
                        v.split(',')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                for p in partitions {
                    if enabled {
                        list.retain(|x| x != p);
                    } else if !list.contains(p) {
                        list.push(p.clone());
                    }
                }
                if list.is_empty() {
                    map.remove(resource);
                } else {
                    map.insert(resource.to_string(), list.join(","));
                }
                if map.is_empty() {
                    r.map_fields.remove(HELIX_DISABLED_PARTITION);
                }
                if enabled {
                    if let Some(legacy) = r.list_fields.get_mut(HELIX_DISABLED_PARTITION) {
                        legacy.retain(|x| !partitions.contains(x));
                        if legacy.is_empty() {
                            r.list_fields.remove(HELIX_DISABLED_PARTITION);
                        }
                    }
                }
                Ok(true)
            },
        )
        .await
        .map(drop)
    }

    /// Adds a tag to an instance (`TAG_LIST`); a tag it has is not added twice.
    pub async fn add_instance_tag(&self, cluster: &str, instance: &str, tag: &str) -> Result<(), AdminError> {
        validate_name("tag", tag)?;
        self.update_instance(
            cluster,
            instance,
            |_| vec![],
            |r| {
                let tags = r.list_fields.entry(TAG_LIST.to_string()).or_default();
                if tags.iter().any(|t| t == tag) {
                    return Ok(false);
                }
                tags.push(tag.to_string());
                Ok(true)
            },
        )
        .await
        .map(drop)
    }

    /// Removes a tag from an instance; removing a tag it lacks changes nothing.
    pub async fn remove_instance_tag(
        &self,
        cluster: &str,
        instance: &str,
        tag: &str,
    ) -> Result<(), AdminError> {
        self.update_instance(
            cluster,
            instance,
            |_| vec![],
            |r| {
                let Some(tags) = r.list_fields.get_mut(TAG_LIST) else {
                    return Ok(false);
                };
                let before = tags.len();
                tags.retain(|t| t != tag);
                Ok(tags.len() != before)
            },
        )
        .await
        .map(drop)
    }

    /// Sets (or, with `None`, clears) an instance's fault zone (`HELIX_ZONE_ID`).
    pub async fn set_instance_zone(
        &self,
        cluster: &str,
        instance: &str,
        zone: Option<&str>,
    ) -> Result<(), AdminError> {
        if let Some(z) = zone {
            validate_name("zone", z)?;
        }
        self.update_instance(
            cluster,
            instance,
            |_| vec![],
            |r| {
                match zone {
                    Some(z) => r.set_simple(HELIX_ZONE_ID, z),
                    None => {
                        r.simple_fields.remove(HELIX_ZONE_ID);
                        r.simple_fields.remove(ZONE_ID);
                    }
                }
                Ok(true)
            },
        )
        .await
        .map(drop)
    }

    /// Sets (or, with `None`, clears) an instance's weight (`INSTANCE_WEIGHT`).
    pub async fn set_instance_weight(
        &self,
        cluster: &str,
        instance: &str,
        weight: Option<u32>,
    ) -> Result<(), AdminError> {
        self.update_instance(
            cluster,
            instance,
            |_| vec![],
            |r| {
                match weight {
                    Some(w) => r.set_simple(INSTANCE_WEIGHT, w),
                    None => {
                        r.simple_fields.remove(INSTANCE_WEIGHT);
                    }
                }
                Ok(true)
            },
        )
        .await
        .map(drop)
    }

    /// Replaces `old` by `new` in the preference lists and maps of every SEMI_AUTO and
    /// CUSTOMIZED resource (FULL_AUTO ones place replicas themselves), as Helix's
    /// `--swapInstance`: `new` must be configured; `old` is dropped first (so it must be
    /// disabled and not live) unless it is already gone.
    pub async fn swap_instance(
        &self,
        cluster: &str,
        old: &str,
        new: &str,
    ) -> Result<Vec<String>, AdminError> {
        let l = layout(cluster)?;
        let old = instance_name(old)?;
        let new = self.instance_config(cluster, new).await?.name().to_string();
        if old == new {
            return Ok(Vec::new());
        }
        match self.drop_instance(cluster, &old).await {
            Ok(()) | Err(AdminError::InstanceNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut changed = Vec::new();
        for resource in self.children(&l.ideal_states()).await? {
            let path = l.ideal_state(&resource);
            let mut swapped = false;
            self.update(
                &path,
                || vec![Guard::cluster(&l)],
                |current| {
                    swapped = false;
                    let Some(mut r) = current else { return Ok(None) };
                    let is = IdealState::new(r.clone());
                    if is.rebalance_mode().ok() == Some(crate::model::RebalanceMode::FullAuto) {
                        return Ok(None);
                    }
                    let mut touched = false;
                    for map in r.map_fields.values_mut() {
                        if let Some(state) = map.remove(&old) {
                            map.insert(new.clone(), state);
                            touched = true;
                        }
                    }
                    for list in r.list_fields.values_mut() {
                        for x in list.iter_mut().filter(|x| **x == old) {
                            *x = new.clone();
                            touched = true;
                        }
                    }
                    swapped = touched;
                    Ok(touched.then_some(r))
                },
            )
            .await?;
            if swapped {
                changed.push(resource);
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_becomes_the_helix_instance_name() {
        assert_eq!(instance_name("localhost:12913").unwrap(), "localhost_12913");
        assert_eq!(instance_name("localhost_12913").unwrap(), "localhost_12913");
        assert_eq!(instance_name(" node-1 ").unwrap(), "node-1");
        for bad in ["localhost:", ":12", "h:p", "", "a/b:1"] {
            assert!(instance_name(bad).unwrap_err().is_usage(), "{bad:?}");
        }
    }
}
