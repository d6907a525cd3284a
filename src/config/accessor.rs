//! [`ConfigAccessor`]: Helix's `ConfigAccessor` — get, set and remove keys of a scope, typed
//! views of the keys strand itself reads, and change subscriptions.
//!
//! Reads and writes are the admin layer's guarded transactions ([`Admin::set_config`] and
//! friends, one implementation for the library, `strand admin config` and
//! `helix-admin --setConfig`); this file adds the typed views and subscriptions.

use std::collections::BTreeMap;

use super::diff::ConfigFilter;
use super::subscription::{ConfigStart, ConfigSubscription};
use super::ConfigError;
use crate::admin::{Admin, ConfigScope};
use crate::model::{ClusterConfig, InstanceConfig, Layout, ResourceConfig};
use crate::participant::register::AUTO_JOIN_FIELD;
use crate::propertystore::PropertyStore;

/// Scoped configuration of the clusters in one store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConfigAccessor {
    admin: Admin,
}

impl ConfigAccessor {
    /// An accessor over `store`.
    pub fn new(store: PropertyStore) -> Self {
        ConfigAccessor {
            admin: Admin::new(store),
        }
    }

    /// An accessor that shares `admin`'s store client.
    pub fn from_admin(admin: Admin) -> Self {
        ConfigAccessor { admin }
    }

    /// The scope's keys: those asked for that are set, or (no keys) all of them.
    pub async fn get(
        &self,
        scope: &ConfigScope,
        keys: &[String],
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        Ok(self.admin.get_config(scope, keys).await?)
    }

    /// One key of a scope, if set.
    pub async fn get_key(&self, scope: &ConfigScope, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.get(scope, &[key.to_string()]).await?.remove(key))
    }

    /// Sets keys of a scope in one transaction.
    pub async fn set(
        &self,
        scope: &ConfigScope,
        values: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        Ok(self.admin.set_config(scope, values).await?)
    }

    /// Sets one key of a scope.
    pub async fn set_key(&self, scope: &ConfigScope, key: &str, value: &str) -> Result<(), ConfigError> {
        let values = BTreeMap::from([(key.to_string(), value.to_string())]);
        self.set(scope, &values).await
    }

    /// Removes keys of a scope (keys that are not set are ignored).
    pub async fn remove(&self, scope: &ConfigScope, keys: &[String]) -> Result<(), ConfigError> {
        Ok(self.admin.remove_config(scope, keys).await?)
    }

    /// Subscribes to the changes `filter` selects, from now or from a revision.
    pub async fn subscribe(
        &self,
        filter: ConfigFilter,
        start: ConfigStart,
    ) -> Result<ConfigSubscription, ConfigError> {
        ConfigSubscription::open(self.admin.store(), filter, start).await
    }

    async fn read(&self, path: &str) -> Result<Option<crate::model::Record>, ConfigError> {
        Ok(self.admin.record(path).await?)
    }

    /// The cluster config, as the engine and controller read it (`MAX_OFFLINE_INSTANCES_ALLOWED`,
    /// `DELAY_REBALANCE_*`, `MAX_PARTITIONS_PER_INSTANCE`, throttles).
    pub async fn cluster_config(&self, cluster: &str) -> Result<ClusterConfig, ConfigError> {
        let path = Layout::new(cluster).cluster_config();
        match self.read(&path).await? {
            Some(r) => Ok(ClusterConfig::new(r)),
            None => Err(crate::admin::AdminError::ClusterNotFound {
                cluster: cluster.to_string(),
            }
            .into()),
        }
    }

    /// Whether participants that are not configured may join (`allowParticipantAutoJoin`).
    pub async fn allow_participant_auto_join(&self, cluster: &str) -> Result<bool, ConfigError> {
        let config = self.cluster_config(cluster).await?;
        let scope = ConfigScope::Cluster {
            cluster: cluster.to_string(),
        };
        parse_bool(&scope, AUTO_JOIN_FIELD, config.record.simple(AUTO_JOIN_FIELD)).map(|b| b.unwrap_or(false))
    }

    /// An instance's config (zone, tags, weight, enabled, disabled partitions).
    pub async fn instance_config(
        &self,
        cluster: &str,
        instance: &str,
    ) -> Result<InstanceConfig, ConfigError> {
        let path = Layout::new(cluster).instance_config(instance);
        match self.read(&path).await? {
            Some(r) => Ok(InstanceConfig::new(r)),
            None => Err(crate::admin::AdminError::InstanceNotFound {
                cluster: cluster.to_string(),
                instance: instance.to_string(),
            }
            .into()),
        }
    }

    /// A resource's config, if one was written (replicas, `MIN_ACTIVE_REPLICAS`,
    /// `MAX_PARTITIONS_PER_INSTANCE`, `DELAY_REBALANCE_*`, tags).
    pub async fn resource_config(
        &self,
        cluster: &str,
        resource: &str,
    ) -> Result<Option<ResourceConfig>, ConfigError> {
        let path = Layout::new(cluster).resource_config(resource);
        Ok(self.read(&path).await?.map(ResourceConfig::new))
    }

    /// A key of a scope parsed as `T` (`None` when not set); a value that does not parse is
    /// [`ConfigError::BadValue`].
    pub async fn get_parsed<T>(&self, scope: &ConfigScope, key: &str) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get_key(scope, key).await? {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|e| ConfigError::BadValue {
                    scope: scope.to_string(),
                    key: key.to_string(),
                    value: v.clone(),
                    reason: e.to_string(),
                }),
        }
    }
}

/// Helix's booleans: `true`/`false`, any case.
fn parse_bool(scope: &ConfigScope, key: &str, value: Option<&str>) -> Result<Option<bool>, ConfigError> {
    match value.map(str::trim) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ConfigError::BadValue {
            scope: scope.to_string(),
            key: key.to_string(),
            value: v.to_string(),
            reason: "expected true or false".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_like_helix_and_anything_else_is_a_clear_error() {
        let s = ConfigScope::Cluster { cluster: "C".into() };
        assert_eq!(parse_bool(&s, "k", Some("TRUE")).unwrap(), Some(true));
        assert_eq!(parse_bool(&s, "k", Some(" false ")).unwrap(), Some(false));
        assert_eq!(parse_bool(&s, "k", None).unwrap(), None);
        let e = parse_bool(&s, "allowParticipantAutoJoin", Some("yes"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("allowParticipantAutoJoin") && e.contains("true or false"),
            "{e}"
        );
    }
}
