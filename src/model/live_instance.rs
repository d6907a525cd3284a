//! [`LiveInstance`]: the record a participant registers while its session lasts.
//!
//! Helix keeps it at `LIVEINSTANCES/<instance>` (an ephemeral znode): simpleFields
//! `SESSION_ID`, `HELIX_VERSION`, `LIVE_INSTANCE` (`pid@host`), optionally
//! `ZKPROPERTYTRANSFERURL`, and a mapField `RESOURCE_CAPACITY` (resource → quota).

use std::collections::BTreeMap;

use super::record::{Record, RecordError};
use super::views::fields::*;

/// A LiveInstance record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInstance {
    /// The underlying record (`id` is the instance name).
    pub record: Record,
}

impl LiveInstance {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        LiveInstance { record }
    }

    /// The record a participant writes when it joins: its session, its version, and
    /// `pid@host` (Helix's `LIVE_INSTANCE`).
    pub fn create(instance: &str, session_id: &str, version: &str, live_instance: &str) -> Self {
        let mut r = Record::new(instance);
        r.set_simple(SESSION_ID, session_id);
        r.set_simple(HELIX_VERSION, version);
        r.set_simple(LIVE_INSTANCE, live_instance);
        LiveInstance { record: r }
    }

    /// The instance's name.
    pub fn instance_name(&self) -> &str {
        &self.record.id
    }

    /// `SESSION_ID` (required).
    pub fn session_id(&self) -> Result<&str, RecordError> {
        self.required(SESSION_ID)
    }

    /// Sets `SESSION_ID`.
    pub fn set_session_id(&mut self, session_id: &str) {
        self.record.set_simple(SESSION_ID, session_id);
    }

    /// `HELIX_VERSION` (required by Helix's validity check).
    pub fn helix_version(&self) -> Result<&str, RecordError> {
        self.required(HELIX_VERSION)
    }

    /// Sets `HELIX_VERSION`.
    pub fn set_helix_version(&mut self, version: &str) {
        self.record.set_simple(HELIX_VERSION, version);
    }

    /// `LIVE_INSTANCE`: the process, as `pid@host`, if set.
    pub fn live_instance(&self) -> Option<&str> {
        self.record.simple(LIVE_INSTANCE)
    }

    /// Sets `LIVE_INSTANCE`.
    pub fn set_live_instance(&mut self, live_instance: &str) {
        self.record.set_simple(LIVE_INSTANCE, live_instance);
    }

    /// `ZKPROPERTYTRANSFERURL`, if set.
    pub fn webservice_url(&self) -> Option<&str> {
        self.record.simple(ZKPROPERTYTRANSFERURL)
    }

    /// `RESOURCE_CAPACITY`: compute resource (threads, cores, …) → quota.
    pub fn resource_capacity(&self) -> Result<BTreeMap<String, u64>, RecordError> {
        let mut out = BTreeMap::new();
        for (name, quota) in self.record.map(RESOURCE_CAPACITY).into_iter().flatten() {
            let n = quota.trim().parse::<u64>().map_err(|_| {
                let field = format!("{RESOURCE_CAPACITY}.{name}");
                RecordError::invalid_field(
                    &self.record,
                    &field,
                    quota,
                    "expected a non-negative integer quota",
                )
            })?;
            out.insert(name.clone(), n);
        }
        Ok(out)
    }

    /// Sets `RESOURCE_CAPACITY`.
    pub fn set_resource_capacity(&mut self, capacity: &BTreeMap<String, u64>) {
        let map = capacity.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        self.record.map_fields.insert(RESOURCE_CAPACITY.to_string(), map);
    }

    /// Checks what Helix checks (`SESSION_ID` and `HELIX_VERSION` present) and the capacities.
    pub fn validate(&self) -> Result<(), RecordError> {
        self.session_id()?;
        self.helix_version()?;
        self.resource_capacity()?;
        Ok(())
    }

    fn required(&self, field: &str) -> Result<&str, RecordError> {
        self.record
            .simple(field)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| RecordError::missing_field(&self.record, field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_read_back() {
        let mut li = LiveInstance::create("localhost_12913", "localhost_12913#7", "0.1.0", "4242@localhost");
        li.set_resource_capacity(&BTreeMap::from([("TASK_EXEC_THREAD".to_string(), 40)]));
        li.validate().unwrap();
        assert_eq!(li.instance_name(), "localhost_12913");
        assert_eq!(li.session_id().unwrap(), "localhost_12913#7");
        assert_eq!(li.helix_version().unwrap(), "0.1.0");
        assert_eq!(li.live_instance(), Some("4242@localhost"));
        assert_eq!(li.resource_capacity().unwrap()["TASK_EXEC_THREAD"], 40);
    }

    #[test]
    fn missing_version_and_bad_capacity_are_errors() {
        let mut li = LiveInstance::new(Record::new("n1"));
        li.set_session_id("s");
        let err = li.validate().unwrap_err();
        assert_eq!(
            err,
            RecordError::MissingField {
                record: "n1".into(),
                field: HELIX_VERSION.into()
            }
        );
        li.set_helix_version("0.9.8");
        li.record
            .map_fields
            .entry(RESOURCE_CAPACITY.into())
            .or_default()
            .insert("CPU".into(), "lots".into());
        let err = li.validate().unwrap_err().to_string();
        assert!(
            err.contains("RESOURCE_CAPACITY.CPU") && err.contains("lots"),
            "{err}"
        );
    }
}
