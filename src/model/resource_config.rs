//! [`ResourceConfig`]: a resource's configuration (`CONFIGS/RESOURCE/<resource>`).
//!
//! It holds the same knobs as the ideal state (`NUM_PARTITIONS`, `REPLICAS`,
//! `STATE_MODEL_DEF_REF`, `MIN_ACTIVE_REPLICAS`, `MAX_PARTITIONS_PER_INSTANCE`,
//! `INSTANCE_GROUP_TAG`, `HELIX_ENABLED`, the rebalance config's `REBALANCE_MODE`,
//! `REBALANCE_DELAY`, `DELAY_REBALANCE_ENABLED`, …), user preference lists in listFields,
//! and `PARTITION_CAPACITY_MAP` (partition or `DEFAULT` → JSON `{capacity key: number}`).
//! Unset knobs read as `None`, so callers can fall back to the ideal state or the cluster.

use std::collections::BTreeMap;

use super::record::{Record, RecordError};
use super::views::fields::*;
use super::views::{RebalanceMode, Replicas};

/// A resource's configuration record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceConfig {
    /// The underlying record (`id` is the resource name).
    pub record: Record,
}

impl ResourceConfig {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        ResourceConfig { record }
    }

    /// An empty configuration for a resource.
    pub fn create(resource: &str) -> Self {
        ResourceConfig {
            record: Record::new(resource),
        }
    }

    /// The resource's name.
    pub fn resource(&self) -> &str {
        &self.record.id
    }

    /// `NUM_PARTITIONS`, if set.
    pub fn num_partitions(&self) -> Result<Option<usize>, RecordError> {
        self.record.simple_parsed(NUM_PARTITIONS)
    }

    /// `STATE_MODEL_DEF_REF`, if set.
    pub fn state_model(&self) -> Option<&str> {
        self.record.simple(STATE_MODEL_DEF_REF).filter(|s| !s.is_empty())
    }

    /// `STATE_MODEL_FACTORY_NAME`, if set.
    pub fn state_model_factory_name(&self) -> Option<&str> {
        self.record
            .simple(STATE_MODEL_FACTORY_NAME)
            .filter(|s| !s.is_empty())
    }

    /// `REPLICAS`: a number or `ANY_LIVEINSTANCE`, if set.
    pub fn replicas(&self) -> Result<Option<Replicas>, RecordError> {
        match self.record.simple(REPLICAS).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case(ANY_LIVEINSTANCE) => Ok(Some(Replicas::AnyLiveInstance)),
            Some(v) => v.parse().map(|n| Some(Replicas::Count(n))).map_err(|_| {
                RecordError::invalid_field(
                    &self.record,
                    REPLICAS,
                    v,
                    "expected a number of replicas or ANY_LIVEINSTANCE",
                )
            }),
        }
    }

    /// Sets `REPLICAS`.
    pub fn set_replicas(&mut self, replicas: Replicas) {
        match replicas {
            Replicas::Count(n) => self.record.set_simple(REPLICAS, n),
            Replicas::AnyLiveInstance => self.record.set_simple(REPLICAS, ANY_LIVEINSTANCE),
        }
    }

    /// `MIN_ACTIVE_REPLICAS`, if set (negative means unset, as in Helix).
    pub fn min_active_replicas(&self) -> Result<Option<usize>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(MIN_ACTIVE_REPLICAS)?
            .and_then(|v| usize::try_from(v).ok()))
    }

    /// `MAX_PARTITIONS_PER_INSTANCE`, if set and positive.
    pub fn max_partitions_per_instance(&self) -> Result<Option<usize>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(MAX_PARTITIONS_PER_INSTANCE)?
            .filter(|v| *v > 0)
            .and_then(|v| usize::try_from(v).ok()))
    }

    /// `INSTANCE_GROUP_TAG`, if set.
    pub fn instance_group_tag(&self) -> Option<&str> {
        self.record.simple(INSTANCE_GROUP_TAG).filter(|t| !t.is_empty())
    }

    /// `HELIX_ENABLED` (resources are enabled unless it says false).
    pub fn enabled(&self) -> Result<bool, RecordError> {
        Ok(self.record.simple_bool(HELIX_ENABLED)?.unwrap_or(true))
    }

    /// Sets `HELIX_ENABLED`.
    pub fn set_enabled(&mut self, enabled: bool) {
        self.record.set_simple(HELIX_ENABLED, enabled);
    }

    /// `REBALANCE_MODE` (or the legacy `IDEAL_STATE_MODE`), if set.
    pub fn rebalance_mode(&self) -> Result<Option<RebalanceMode>, RecordError> {
        for field in [REBALANCE_MODE, IDEAL_STATE_MODE] {
            if let Some(v) = self.record.simple(field).filter(|v| !v.trim().is_empty()) {
                return RebalanceMode::parse(v).map(Some).ok_or_else(|| {
                    RecordError::invalid_field(
                        &self.record,
                        field,
                        v,
                        "expected FULL_AUTO, SEMI_AUTO or CUSTOMIZED (or AUTO_REBALANCE, AUTO, CUSTOM)",
                    )
                });
            }
        }
        Ok(None)
    }

    /// `REBALANCE_DELAY` in milliseconds, if set (negative means unset).
    pub fn rebalance_delay_ms(&self) -> Result<Option<u64>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(REBALANCE_DELAY)?
            .and_then(|v| u64::try_from(v).ok()))
    }

    /// `DELAY_REBALANCE_ENABLED`, if set.
    pub fn delay_rebalance_enabled(&self) -> Result<Option<bool>, RecordError> {
        self.record.simple_bool(DELAY_REBALANCE_ENABLED)
    }

    /// `RESOURCE_TYPE`, if set.
    pub fn resource_type(&self) -> Option<&str> {
        self.record.simple(RESOURCE_TYPE)
    }

    /// `RESOURCE_GROUP_NAME`, if set.
    pub fn resource_group_name(&self) -> Option<&str> {
        self.record.simple(RESOURCE_GROUP_NAME)
    }

    /// `GROUP_ROUTING_ENABLED` (default false).
    pub fn group_routing_enabled(&self) -> Result<bool, RecordError> {
        Ok(self.record.simple_bool(GROUP_ROUTING_ENABLED)?.unwrap_or(false))
    }

    /// `EXTERNAL_VIEW_DISABLED` (default false): no external view is written for the resource.
    pub fn external_view_disabled(&self) -> Result<bool, RecordError> {
        Ok(self.record.simple_bool(EXTERNAL_VIEW_DISABLED)?.unwrap_or(false))
    }

    /// `MONITORING_DISABLED` (default false).
    pub fn monitoring_disabled(&self) -> Result<bool, RecordError> {
        Ok(self.record.simple_bool(MONITORING_DISABLED)?.unwrap_or(false))
    }

    /// The user's preference list of a partition (listFields), if any.
    pub fn preference_list(&self, partition: &str) -> Option<&[String]> {
        self.record.list(partition)
    }

    /// Sets the preference list of a partition.
    pub fn set_preference_list(&mut self, partition: &str, instances: Vec<String>) {
        self.record.list_fields.insert(partition.to_string(), instances);
    }

    /// `PARTITION_CAPACITY_MAP`: partition (or `DEFAULT`) → {capacity key → amount}. Each
    /// value is a JSON object, as Helix stores it; amounts must be non-negative integers.
    pub fn partition_capacity_map(&self) -> Result<BTreeMap<String, BTreeMap<String, u64>>, RecordError> {
        let mut out = BTreeMap::new();
        for (partition, json) in self.record.map(PARTITION_CAPACITY_MAP).into_iter().flatten() {
            let field = format!("{PARTITION_CAPACITY_MAP}.{partition}");
            let bad = |reason: &str| RecordError::invalid_field(&self.record, &field, json, reason);
            let parsed: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)
                .map_err(|e| bad(&format!("expected a JSON object of capacities: {e}")))?;
            let mut caps = BTreeMap::new();
            for (key, value) in parsed {
                let n = match &value {
                    serde_json::Value::Number(n) => n.as_u64(),
                    serde_json::Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                let n = n.ok_or_else(|| bad(&format!("capacity {key} must be a non-negative integer")))?;
                caps.insert(key, n);
            }
            out.insert(partition.clone(), caps);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_knobs_are_none() {
        let rc = ResourceConfig::create("myDB");
        assert_eq!(rc.num_partitions().unwrap(), None);
        assert_eq!(rc.replicas().unwrap(), None);
        assert_eq!(rc.rebalance_mode().unwrap(), None);
        assert!(rc.enabled().unwrap());
        assert!(rc.partition_capacity_map().unwrap().is_empty());
    }

    #[test]
    fn reads_the_knobs() {
        let mut rc = ResourceConfig::create("myDB");
        rc.record.set_simple(NUM_PARTITIONS, 6);
        rc.set_replicas(Replicas::AnyLiveInstance);
        rc.record.set_simple(MIN_ACTIVE_REPLICAS, -1);
        rc.record.set_simple(MAX_PARTITIONS_PER_INSTANCE, 4);
        rc.record.set_simple(IDEAL_STATE_MODE, "AUTO_REBALANCE");
        rc.record.set_simple(REBALANCE_DELAY, 60000);
        rc.set_enabled(false);
        rc.set_preference_list("myDB_0", vec!["a".into(), "b".into()]);
        rc.record
            .map_fields
            .entry(PARTITION_CAPACITY_MAP.into())
            .or_default()
            .insert("DEFAULT".into(), r#"{"CPU": 3, "DISK": "10"}"#.into());
        assert_eq!(rc.num_partitions().unwrap(), Some(6));
        assert_eq!(rc.replicas().unwrap(), Some(Replicas::AnyLiveInstance));
        assert_eq!(rc.min_active_replicas().unwrap(), None);
        assert_eq!(rc.max_partitions_per_instance().unwrap(), Some(4));
        assert_eq!(rc.rebalance_mode().unwrap(), Some(RebalanceMode::FullAuto));
        assert_eq!(rc.rebalance_delay_ms().unwrap(), Some(60000));
        assert!(!rc.enabled().unwrap());
        assert_eq!(rc.preference_list("myDB_0").unwrap(), ["a", "b"]);
        assert_eq!(rc.partition_capacity_map().unwrap()["DEFAULT"]["DISK"], 10);
    }

    #[test]
    fn wrong_values_name_the_field_and_reason() {
        let mut rc = ResourceConfig::create("myDB");
        rc.record.set_simple(REPLICAS, "three");
        let err = rc.replicas().unwrap_err().to_string();
        assert!(
            err.contains("REPLICAS") && err.contains("ANY_LIVEINSTANCE"),
            "{err}"
        );
        rc.record.set_simple(REBALANCE_MODE, "SIDEWAYS");
        assert!(rc
            .rebalance_mode()
            .unwrap_err()
            .to_string()
            .contains("REBALANCE_MODE"));
        rc.record.set_simple(HELIX_ENABLED, "yes");
        assert!(rc
            .enabled()
            .unwrap_err()
            .to_string()
            .contains("expected true or false"));
        rc.record
            .map_fields
            .entry(PARTITION_CAPACITY_MAP.into())
            .or_default()
            .insert("myDB_0".into(), r#"{"CPU": -1}"#.into());
        let err = rc.partition_capacity_map().unwrap_err().to_string();
        assert!(
            err.contains("PARTITION_CAPACITY_MAP.myDB_0") && err.contains("CPU"),
            "{err}"
        );
    }
}
