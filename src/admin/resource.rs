//! Resources: add (an ideal state like `helix-admin --addResource`, or a whole ideal state
//! from a file), drop, list, describe; enable/disable; ideal-state properties.
//!
//! Dropping a resource deletes its ideal state and resource config only: the controller
//! sees a resource with current states and no ideal state, walks its replicas to DROPPED
//! and removes the external view itself.

use serde::Serialize;

use crate::model::fields::{BUCKET_SIZE, HELIX_ENABLED, MAX_PARTITIONS_PER_INSTANCE};
use crate::model::{IdealState, Layout, RebalanceMode, Record};

use super::records::{delete, put, Guard};
use super::{layout, validate_name, Admin, AdminError};

/// What `add_resource` creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddResource {
    /// `NUM_PARTITIONS`.
    pub partitions: usize,
    /// `STATE_MODEL_DEF_REF`: a state model defined in the cluster.
    pub state_model: String,
    /// `REBALANCE_MODE` (Helix's default: SEMI_AUTO).
    pub mode: RebalanceMode,
    /// `MAX_PARTITIONS_PER_INSTANCE`, if any.
    pub max_partitions_per_instance: Option<usize>,
    /// `BUCKET_SIZE`, if any.
    pub bucket_size: Option<usize>,
}

impl AddResource {
    /// A SEMI_AUTO resource of `partitions` partitions and the given state model.
    pub fn new(partitions: usize, state_model: impl Into<String>) -> Self {
        AddResource {
            partitions,
            state_model: state_model.into(),
            mode: RebalanceMode::SemiAuto,
            max_partitions_per_instance: None,
            bucket_size: None,
        }
    }

    /// With rebalance mode `mode`.
    pub fn mode(mut self, mode: RebalanceMode) -> Self {
        self.mode = mode;
        self
    }

    /// Parses a rebalance mode: FULL_AUTO, SEMI_AUTO, CUSTOMIZED, or Helix's legacy
    /// AUTO_REBALANCE, AUTO, CUSTOM (case-insensitive).
    pub fn parse_mode(text: &str) -> Result<RebalanceMode, AdminError> {
        RebalanceMode::parse(text).ok_or_else(|| {
            AdminError::invalid(
                format!("rebalance mode {text:?}"),
                "expected FULL_AUTO, SEMI_AUTO or CUSTOMIZED (or AUTO_REBALANCE, AUTO, CUSTOM)",
            )
        })
    }
}

/// What `resource info` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceInfo {
    /// The resource.
    pub resource: String,
    /// Its ideal state.
    pub ideal_state: Record,
    /// Its external view, once a controller wrote one.
    pub external_view: Option<Record>,
    /// Its resource config, if it has one.
    pub config: Option<Record>,
}

/// What `partition info` shows: Helix's `--listPartitionInfo` records (id
/// `<resource>/<partition>`, the simpleFields and that partition's list and map).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionInfo {
    /// The ideal state's part.
    pub ideal_state: Record,
    /// The external view's part, once there is an external view.
    pub external_view: Option<Record>,
}

fn partition_part(record: &Record, resource: &str, partition: &str) -> Record {
    let mut out = Record::new(format!("{resource}/{partition}"));
    out.simple_fields = record.simple_fields.clone();
    if let Some(m) = record.map(partition) {
        out.map_fields.insert(partition.to_string(), m.clone());
    }
    if let Some(l) = record.list(partition) {
        out.list_fields.insert(partition.to_string(), l.to_vec());
    }
    out
}

impl Admin {
    /// The resource's ideal state, or why there is none.
    pub(crate) async fn ideal_state_of(&self, l: &Layout, resource: &str) -> Result<IdealState, AdminError> {
        match self.record(&l.ideal_state(resource)).await? {
            Some(r) => Ok(IdealState::new(r)),
            None => {
                self.require_cluster(l).await?;
                Err(AdminError::ResourceNotFound {
                    cluster: l.cluster().to_string(),
                    resource: resource.to_string(),
                })
            }
        }
    }

    /// Adds a resource: an ideal state as `helix-admin --addResource` writes it
    /// (`REPLICAS` 0 until a rebalance; `IDEAL_STATE_MODE` in Helix's legacy spelling).
    pub async fn add_resource(
        &self,
        cluster: &str,
        resource: &str,
        spec: &AddResource,
    ) -> Result<IdealState, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        validate_name("state model", &spec.state_model)?;
        if spec.partitions == 0 {
            return Err(AdminError::invalid("number of partitions", "must be at least 1"));
        }
        if spec.partitions > crate::model::MAX_GENERATED_PARTITIONS {
            return Err(AdminError::invalid(
                "number of partitions",
                format!("at most {}", crate::model::MAX_GENERATED_PARTITIONS),
            ));
        }
        let mut is = IdealState::create(resource, spec.partitions, &spec.state_model, spec.mode);
        if let Some(n) = spec.max_partitions_per_instance.filter(|n| *n > 0) {
            is.record.set_simple(MAX_PARTITIONS_PER_INSTANCE, n);
        }
        if let Some(n) = spec.bucket_size.filter(|n| *n > 0) {
            is.record.set_simple(BUCKET_SIZE, n);
        }
        self.create_ideal_state(&l, &is).await?;
        Ok(is)
    }

    /// Adds a resource from a whole ideal state record (Helix's `--addIdealState`): its id
    /// must be the resource's name, and it must name a state model of the cluster.
    pub async fn add_ideal_state(
        &self,
        cluster: &str,
        resource: &str,
        record: Record,
    ) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        if record.id != resource {
            return Err(AdminError::invalid(
                format!("ideal state {:?}", record.id),
                format!("its id must be the resource's name, {resource}"),
            ));
        }
        let is = IdealState::new(record);
        let path = l.ideal_state(resource);
        let sm = is.state_model().map_err(|e| AdminError::record(&path, e))?;
        validate_name("state model", sm)?;
        is.rebalance_mode().map_err(|e| AdminError::record(&path, e))?;
        is.partitions().map_err(|e| AdminError::record(&path, e))?;
        is.replicas().map_err(|e| AdminError::record(&path, e))?;
        self.create_ideal_state(&l, &is).await
    }

    async fn create_ideal_state(&self, l: &Layout, is: &IdealState) -> Result<(), AdminError> {
        let resource = is.resource();
        let sm = is
            .state_model()
            .map_err(|e| AdminError::record(l.ideal_state(resource), e))?;
        let path = l.ideal_state(resource);
        let exists = AdminError::ResourceExists {
            cluster: l.cluster().to_string(),
            resource: resource.to_string(),
        };
        self.commit(
            &format!("adding resource {resource}"),
            vec![
                Guard::cluster(l),
                Guard::missing(path.clone(), exists),
                Guard::state_model(l, sm),
            ],
            vec![put(path, &is.record)],
        )
        .await
    }

    /// Drops a resource: deletes its ideal state and resource config (the controller walks
    /// its replicas to DROPPED and removes the external view).
    pub async fn drop_resource(&self, cluster: &str, resource: &str) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        for _ in 0..8 {
            let is = self.read(&l.ideal_state(resource)).await?;
            if is.version == 0 {
                self.ideal_state_of(&l, resource).await?;
            }
            let rc = self.read(&l.resource_config(resource)).await?;
            let mut ops = vec![delete(l.ideal_state(resource))];
            if rc.version > 0 {
                ops.push(delete(l.resource_config(resource)));
            }
            let guards = vec![
                Guard::cluster(&l),
                Guard::version(&l.ideal_state(resource), is.version),
                Guard::version(&l.resource_config(resource), rc.version),
            ];
            match self
                .commit(&format!("dropping resource {resource}"), guards, ops)
                .await
            {
                Err(AdminError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(AdminError::Conflict {
            path: l.ideal_state(resource),
        })
    }

    /// The cluster's resources, sorted; with `tag`, only those whose `INSTANCE_GROUP_TAG`
    /// is `tag`.
    pub async fn list_resources(&self, cluster: &str, tag: Option<&str>) -> Result<Vec<String>, AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        let names = self.children(&l.ideal_states()).await?;
        let Some(tag) = tag else { return Ok(names) };
        let mut out = Vec::new();
        for n in names {
            if let Some(r) = self.record(&l.ideal_state(&n)).await? {
                if IdealState::new(r).instance_group_tag() == Some(tag) {
                    out.push(n);
                }
            }
        }
        Ok(out)
    }

    /// A resource's ideal state.
    pub async fn ideal_state(&self, cluster: &str, resource: &str) -> Result<IdealState, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        self.ideal_state_of(&l, resource).await
    }

    /// A resource's external view, once a controller wrote one.
    pub async fn external_view(&self, cluster: &str, resource: &str) -> Result<Option<Record>, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        self.record(&l.external_view(resource)).await
    }

    /// A resource's ideal state, external view and config.
    pub async fn resource_info(&self, cluster: &str, resource: &str) -> Result<ResourceInfo, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        let ideal = self.ideal_state_of(&l, resource).await?;
        Ok(ResourceInfo {
            resource: resource.to_string(),
            ideal_state: ideal.record,
            external_view: self.record(&l.external_view(resource)).await?,
            config: self.record(&l.resource_config(resource)).await?,
        })
    }

    /// One partition's part of the ideal state and of the external view.
    pub async fn partition_info(
        &self,
        cluster: &str,
        resource: &str,
        partition: &str,
    ) -> Result<PartitionInfo, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        let ideal = self.ideal_state_of(&l, resource).await?;
        let known = ideal
            .partitions()
            .map_err(|e| AdminError::record(l.ideal_state(resource), e))?;
        if !known.iter().any(|p| p == partition) {
            return Err(AdminError::PartitionNotFound {
                cluster: cluster.to_string(),
                resource: resource.to_string(),
                partitions: partition.to_string(),
            });
        }
        let ev = self.record(&l.external_view(resource)).await?;
        Ok(PartitionInfo {
            ideal_state: partition_part(&ideal.record, resource, partition),
            external_view: ev.map(|r| partition_part(&r, resource, partition)),
        })
    }

    /// Changes an ideal state that must exist, guarded by the cluster.
    pub(crate) async fn update_ideal_state(
        &self,
        cluster: &str,
        resource: &str,
        f: impl FnMut(&mut Record) -> Result<bool, AdminError>,
    ) -> Result<Record, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        let result = self
            .update_existing(
                &l.ideal_state(resource),
                || vec![Guard::cluster(&l)],
                || AdminError::ResourceNotFound {
                    cluster: cluster.to_string(),
                    resource: resource.to_string(),
                },
                f,
            )
            .await;
        match result {
            Err(AdminError::ResourceNotFound { .. }) => {
                self.require_cluster(&l).await?;
                result
            }
            other => other,
        }
    }

    /// Enables or disables a resource (`HELIX_ENABLED` in its ideal state).
    pub async fn enable_resource(
        &self,
        cluster: &str,
        resource: &str,
        enabled: bool,
    ) -> Result<(), AdminError> {
        self.update_ideal_state(cluster, resource, |r| {
            r.set_simple(HELIX_ENABLED, enabled);
            Ok(true)
        })
        .await
        .map(drop)
    }

    /// Sets a simpleField of the resource's ideal state (Helix's `--addResourceProperty`).
    pub async fn set_resource_property(
        &self,
        cluster: &str,
        resource: &str,
        key: &str,
        value: &str,
    ) -> Result<(), AdminError> {
        check_property_key(key)?;
        self.update_ideal_state(cluster, resource, |r| {
            r.set_simple(key, value);
            Ok(true)
        })
        .await
        .map(drop)
    }

    /// Removes a simpleField of the resource's ideal state (Helix's
    /// `--removeResourceProperty`); removing one that is absent changes nothing.
    pub async fn remove_resource_property(
        &self,
        cluster: &str,
        resource: &str,
        key: &str,
    ) -> Result<(), AdminError> {
        check_property_key(key)?;
        self.update_ideal_state(cluster, resource, |r| Ok(r.simple_fields.remove(key).is_some()))
            .await
            .map(drop)
    }

    /// The simpleFields of the resource's ideal state.
    pub async fn resource_properties(
        &self,
        cluster: &str,
        resource: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, AdminError> {
        Ok(self.ideal_state(cluster, resource).await?.record.simple_fields)
    }
}

fn check_property_key(key: &str) -> Result<(), AdminError> {
    if key.trim().is_empty() {
        return Err(AdminError::invalid("property name", "cannot be empty"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_accept_helix_legacy_names() {
        assert_eq!(
            AddResource::parse_mode("AUTO_REBALANCE").unwrap(),
            RebalanceMode::FullAuto
        );
        assert_eq!(AddResource::parse_mode("auto").unwrap(), RebalanceMode::SemiAuto);
        assert_eq!(
            AddResource::parse_mode("CUSTOM").unwrap(),
            RebalanceMode::Customized
        );
        assert!(AddResource::parse_mode("SIDEWAYS").unwrap_err().is_usage());
    }

    #[test]
    fn a_partition_part_keeps_only_that_partition() {
        let mut r = Record::new("db");
        r.set_simple("REPLICAS", 2);
        r.list_fields.insert("db_0".into(), vec!["a".into()]);
        r.list_fields.insert("db_1".into(), vec!["b".into()]);
        r.map_fields
            .entry("db_1".into())
            .or_default()
            .insert("b".into(), "MASTER".into());
        let p = partition_part(&r, "db", "db_1");
        assert_eq!(p.id, "db/db_1");
        assert_eq!(p.simple("REPLICAS"), Some("2"));
        assert_eq!(p.list_fields.keys().collect::<Vec<_>>(), ["db_1"]);
        assert_eq!(p.map_fields.keys().collect::<Vec<_>>(), ["db_1"]);
    }
}
