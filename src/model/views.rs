//! Typed views over [`Record`]: Helix's field names, parsed with clear errors.
//!
//! A view owns its record, so nothing a view does not understand is lost: unknown fields
//! are kept and printed back.

use std::collections::BTreeMap;

use super::record::{Record, RecordError};

/// Helix's field names, as constants, so a typo is a compile error.
pub mod fields {
    #![allow(missing_docs)]
    pub const NUM_PARTITIONS: &str = "NUM_PARTITIONS";
    pub const REPLICAS: &str = "REPLICAS";
    pub const REBALANCE_MODE: &str = "REBALANCE_MODE";
    pub const IDEAL_STATE_MODE: &str = "IDEAL_STATE_MODE";
    pub const REBALANCE_STRATEGY: &str = "REBALANCE_STRATEGY";
    pub const STATE_MODEL_DEF_REF: &str = "STATE_MODEL_DEF_REF";
    pub const STATE_MODEL_FACTORY_NAME: &str = "STATE_MODEL_FACTORY_NAME";
    pub const MAX_PARTITIONS_PER_INSTANCE: &str = "MAX_PARTITIONS_PER_INSTANCE";
    pub const INSTANCE_GROUP_TAG: &str = "INSTANCE_GROUP_TAG";
    pub const MIN_ACTIVE_REPLICAS: &str = "MIN_ACTIVE_REPLICAS";
    pub const REBALANCE_DELAY: &str = "REBALANCE_DELAY";
    pub const DELAY_REBALANCE_ENABLED: &str = "DELAY_REBALANCE_ENABLED";
    pub const DELAY_REBALANCE_TIME: &str = "DELAY_REBALANCE_TIME";
    pub const HELIX_ENABLED: &str = "HELIX_ENABLED";
    pub const HELIX_HOST: &str = "HELIX_HOST";
    pub const HELIX_PORT: &str = "HELIX_PORT";
    pub const HELIX_DISABLED_PARTITION: &str = "HELIX_DISABLED_PARTITION";
    pub const TAG_LIST: &str = "TAG_LIST";
    pub const HELIX_ZONE_ID: &str = "HELIX_ZONE_ID";
    pub const ZONE_ID: &str = "ZONE_ID";
    pub const INSTANCE_WEIGHT: &str = "INSTANCE_WEIGHT";
    pub const MAX_OFFLINE_INSTANCES_ALLOWED: &str = "MAX_OFFLINE_INSTANCES_ALLOWED";
    pub const STATE_TRANSITION_THROTTLE_CONFIGS: &str = "STATE_TRANSITION_THROTTLE_CONFIGS";
    pub const ANY_LIVEINSTANCE: &str = "ANY_LIVEINSTANCE";
    pub const BUCKET_SIZE: &str = "BUCKET_SIZE";
    pub const SESSION_ID: &str = "SESSION_ID";
    pub const STATE_MODEL_DEF: &str = "STATE_MODEL_DEF";
    pub const CURRENT_STATE: &str = "CURRENT_STATE";
    pub const REQUESTED_STATE: &str = "REQUESTED_STATE";
    pub const PREVIOUS_STATE: &str = "PREVIOUS_STATE";
    pub const INFO: &str = "INFO";
    pub const START_TIME: &str = "START_TIME";
    pub const END_TIME: &str = "END_TIME";
    pub const HELIX_VERSION: &str = "HELIX_VERSION";
    pub const LIVE_INSTANCE: &str = "LIVE_INSTANCE";
    pub const ZKPROPERTYTRANSFERURL: &str = "ZKPROPERTYTRANSFERURL";
    pub const RESOURCE_CAPACITY: &str = "RESOURCE_CAPACITY";
    pub const RESOURCE_TYPE: &str = "RESOURCE_TYPE";
    pub const RESOURCE_GROUP_NAME: &str = "RESOURCE_GROUP_NAME";
    pub const GROUP_ROUTING_ENABLED: &str = "GROUP_ROUTING_ENABLED";
    pub const EXTERNAL_VIEW_DISABLED: &str = "EXTERNAL_VIEW_DISABLED";
    pub const MONITORING_DISABLED: &str = "MONITORING_DISABLED";
    pub const PARTITION_CAPACITY_MAP: &str = "PARTITION_CAPACITY_MAP";
    pub const MSG_ID: &str = "MSG_ID";
    pub const MSG_TYPE: &str = "MSG_TYPE";
    pub const MSG_SUBTYPE: &str = "MSG_SUBTYPE";
    pub const MSG_STATE: &str = "MSG_STATE";
    pub const SRC_NAME: &str = "SRC_NAME";
    pub const TGT_NAME: &str = "TGT_NAME";
    pub const SRC_SESSION_ID: &str = "SRC_SESSION_ID";
    pub const TGT_SESSION_ID: &str = "TGT_SESSION_ID";
    pub const EXE_SESSION_ID: &str = "EXE_SESSION_ID";
    pub const SRC_INSTANCE_TYPE: &str = "SRC_INSTANCE_TYPE";
    pub const FROM_STATE: &str = "FROM_STATE";
    pub const TO_STATE: &str = "TO_STATE";
    pub const PARTITION_NAME: &str = "PARTITION_NAME";
    pub const RESOURCE_NAME: &str = "RESOURCE_NAME";
    pub const CREATE_TIMESTAMP: &str = "CREATE_TIMESTAMP";
    pub const READ_TIMESTAMP: &str = "READ_TIMESTAMP";
    pub const EXECUTE_START_TIMESTAMP: &str = "EXECUTE_START_TIMESTAMP";
    pub const CORRELATION_ID: &str = "CORRELATION_ID";
    pub const MESSAGE_RESULT: &str = "MESSAGE_RESULT";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const RETRY_COUNT: &str = "RETRY_COUNT";
    pub const PARENT_MSG_ID: &str = "PARENT_MSG_ID";
    pub const CONSTRAINT_VALUE: &str = "CONSTRAINT_VALUE";
}
use fields::*;

/// How strand decides an ideal state's placement and states (Helix's `REBALANCE_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RebalanceMode {
    /// strand places replicas and picks states (legacy `AUTO_REBALANCE`).
    FullAuto,
    /// The application orders preference lists; strand picks states (legacy `AUTO`).
    SemiAuto,
    /// The application gives the whole map; strand only orders transitions (legacy `CUSTOM`).
    Customized,
}

impl RebalanceMode {
    /// Parses `REBALANCE_MODE` values and the legacy `IDEAL_STATE_MODE` values.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "FULL_AUTO" | "AUTO_REBALANCE" => Some(Self::FullAuto),
            "SEMI_AUTO" | "AUTO" => Some(Self::SemiAuto),
            "CUSTOMIZED" | "CUSTOM" => Some(Self::Customized),
            _ => None,
        }
    }

    /// Helix's `REBALANCE_MODE` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullAuto => "FULL_AUTO",
            Self::SemiAuto => "SEMI_AUTO",
            Self::Customized => "CUSTOMIZED",
        }
    }

    /// Helix's legacy `IDEAL_STATE_MODE` spelling.
    pub fn legacy_str(self) -> &'static str {
        match self {
            Self::FullAuto => "AUTO_REBALANCE",
            Self::SemiAuto => "AUTO",
            Self::Customized => "CUSTOMIZED",
        }
    }
}

/// The replica count of a resource (`REPLICAS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    /// A fixed number of replicas per partition.
    Count(usize),
    /// One replica on every live, eligible instance (`ANY_LIVEINSTANCE`).
    AnyLiveInstance,
}

fn invalid(record: &Record, field: &str, value: &str, reason: &str) -> RecordError {
    RecordError::InvalidField {
        record: record.id.clone(),
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// An IdealState record: partition → {instance → state} plus preference lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdealState {
    /// The underlying record (`id` is the resource name).
    pub record: Record,
}

impl IdealState {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        IdealState { record }
    }

    /// A fresh ideal state like `helix-admin --addResource` creates.
    pub fn create(resource: &str, partitions: usize, state_model: &str, mode: RebalanceMode) -> Self {
        let mut r = Record::new(resource);
        r.set_simple(NUM_PARTITIONS, partitions);
        r.set_simple(REPLICAS, 0);
        r.set_simple(REBALANCE_MODE, mode.as_str());
        r.set_simple(IDEAL_STATE_MODE, mode.legacy_str());
        r.set_simple(REBALANCE_STRATEGY, "DEFAULT");
        r.set_simple(STATE_MODEL_DEF_REF, state_model);
        r.set_simple(STATE_MODEL_FACTORY_NAME, "DEFAULT");
        IdealState { record: r }
    }

    /// The resource's name.
    pub fn resource(&self) -> &str {
        &self.record.id
    }

    /// `REBALANCE_MODE`, else the legacy `IDEAL_STATE_MODE`, else SEMI_AUTO (Helix's default).
    pub fn rebalance_mode(&self) -> Result<RebalanceMode, RecordError> {
        for field in [REBALANCE_MODE, IDEAL_STATE_MODE] {
            if let Some(v) = self.record.simple(field) {
                return RebalanceMode::parse(v).ok_or_else(|| {
                    invalid(
                        &self.record,
                        field,
                        v,
                        "expected FULL_AUTO, SEMI_AUTO or CUSTOMIZED (or AUTO_REBALANCE, AUTO, CUSTOM)",
                    )
                });
            }
        }
        Ok(RebalanceMode::SemiAuto)
    }

    /// `NUM_PARTITIONS` (0 when absent).
    pub fn num_partitions(&self) -> Result<usize, RecordError> {
        Ok(self.record.simple_parsed(NUM_PARTITIONS)?.unwrap_or(0))
    }

    /// `REPLICAS`: a number or `ANY_LIVEINSTANCE`. Absent means 0 … which, in SEMI_AUTO and
    /// CUSTOMIZED, means "as many as the lists/maps say".
    pub fn replicas(&self) -> Result<Replicas, RecordError> {
        match self.record.simple(REPLICAS).map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case(ANY_LIVEINSTANCE) => Ok(Replicas::AnyLiveInstance),
            _ => Ok(Replicas::Count(self.record.simple_parsed(REPLICAS)?.unwrap_or(0))),
        }
    }

    /// `STATE_MODEL_DEF_REF`.
    pub fn state_model(&self) -> Result<&str, RecordError> {
        self.record
            .simple(STATE_MODEL_DEF_REF)
            .ok_or_else(|| RecordError::MissingField {
                record: self.record.id.clone(),
                field: STATE_MODEL_DEF_REF.into(),
            })
    }

    /// `MAX_PARTITIONS_PER_INSTANCE`, if set and positive.
    pub fn max_partitions_per_instance(&self) -> Result<Option<usize>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(MAX_PARTITIONS_PER_INSTANCE)?
            .filter(|v| *v > 0)
            .map(|v| v as usize))
    }

    /// `INSTANCE_GROUP_TAG`, if set.
    pub fn instance_group_tag(&self) -> Option<&str> {
        self.record.simple(INSTANCE_GROUP_TAG).filter(|t| !t.is_empty())
    }

    /// `MIN_ACTIVE_REPLICAS`, if set (negative means unset, as in Helix).
    pub fn min_active_replicas(&self) -> Result<Option<usize>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(MIN_ACTIVE_REPLICAS)?
            .filter(|v| *v >= 0)
            .map(|v| v as usize))
    }

    /// `REBALANCE_DELAY` in milliseconds, if set.
    pub fn rebalance_delay_ms(&self) -> Result<Option<u64>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(REBALANCE_DELAY)?
            .filter(|v| *v >= 0)
            .map(|v| v as u64))
    }

    /// `DELAY_REBALANCE_ENABLED`, if set.
    pub fn delay_rebalance_enabled(&self) -> Result<Option<bool>, RecordError> {
        self.record.simple_bool(DELAY_REBALANCE_ENABLED)
    }

    /// `HELIX_ENABLED` (resources are enabled unless it says false).
    pub fn enabled(&self) -> Result<bool, RecordError> {
        Ok(self.record.simple_bool(HELIX_ENABLED)?.unwrap_or(true))
    }

    /// The partition names: those named in list or map fields, else `<resource>_<i>`.
    pub fn partitions(&self) -> Result<Vec<String>, RecordError> {
        let mut names: Vec<String> = self
            .record
            .list_fields
            .keys()
            .chain(self.record.map_fields.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            let n = self.num_partitions()?;
            if n > MAX_GENERATED_PARTITIONS {
                let value = self.record.simple(NUM_PARTITIONS).unwrap_or_default();
                let reason =
                    format!("at most {MAX_GENERATED_PARTITIONS} partitions can be named <resource>_<i>");
                return Err(invalid(&self.record, NUM_PARTITIONS, value, &reason));
            }
            names = (0..n).map(|i| format!("{}_{}", self.record.id, i)).collect();
        }
        sort_partitions(&mut names);
        Ok(names)
    }

    /// The preference list of a partition (SEMI_AUTO, or FULL_AUTO's computed one).
    pub fn preference_list(&self, partition: &str) -> Option<&[String]> {
        self.record.list(partition)
    }

    /// The instance → state map of a partition (CUSTOMIZED, or a computed one).
    pub fn instance_state_map(&self, partition: &str) -> Option<&BTreeMap<String, String>> {
        self.record.map(partition)
    }
}

/// The most partitions [`IdealState::partitions`] generates from `NUM_PARTITIONS` alone: a
/// larger number is refused rather than exhausting memory.
pub const MAX_GENERATED_PARTITIONS: usize = 10_000_000;

/// Sorts partition names naturally: `myDB_2` before `myDB_10`.
pub fn sort_partitions(names: &mut [String]) {
    // Each name's key is parsed once, not at every comparison; the names are then moved
    // into the sorted order.
    let order: Vec<usize> = {
        let mut keyed: Vec<((&str, u64, &str), usize)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (natural_key(n), i))
            .collect();
        keyed.sort_unstable();
        keyed.into_iter().map(|(_, i)| i).collect()
    };
    let mut taken: Vec<String> = names.iter_mut().map(std::mem::take).collect();
    for (slot, i) in names.iter_mut().zip(order) {
        *slot = std::mem::take(&mut taken[i]);
    }
}

fn natural_key(name: &str) -> (&str, u64, &str) {
    match name.rsplit_once('_') {
        Some((prefix, n)) => match n.parse::<u64>() {
            Ok(v) => (prefix, v, name),
            Err(_) => (name, 0, name),
        },
        None => (name, 0, name),
    }
}

/// An instance's configuration (`CONFIGS/PARTICIPANT/<instance>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// The underlying record (`id` is the instance name).
    pub record: Record,
}

impl InstanceConfig {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        InstanceConfig { record }
    }

    /// A config like `helix-admin --addNode localhost:12913` creates.
    pub fn create(name: &str) -> Self {
        let mut r = Record::new(name);
        let (host, port) = name.rsplit_once('_').unwrap_or((name, ""));
        r.set_simple(HELIX_HOST, host);
        r.set_simple(HELIX_PORT, port);
        r.set_simple(HELIX_ENABLED, true);
        InstanceConfig { record: r }
    }

    /// The instance's name.
    pub fn name(&self) -> &str {
        &self.record.id
    }

    /// `HELIX_ENABLED` (instances are enabled unless it says false).
    pub fn enabled(&self) -> Result<bool, RecordError> {
        Ok(self.record.simple_bool(HELIX_ENABLED)?.unwrap_or(true))
    }

    /// `TAG_LIST`.
    pub fn tags(&self) -> &[String] {
        self.record.list(TAG_LIST).unwrap_or(&[])
    }

    /// `HELIX_ZONE_ID` (or Helix's `ZONE_ID`), if set.
    pub fn zone(&self) -> Option<&str> {
        self.record
            .simple(HELIX_ZONE_ID)
            .or_else(|| self.record.simple(ZONE_ID))
            .filter(|z| !z.is_empty())
    }

    /// `INSTANCE_WEIGHT`, if set.
    pub fn weight(&self) -> Result<Option<u32>, RecordError> {
        self.record.simple_parsed(INSTANCE_WEIGHT)
    }

    /// Disabled partitions per resource: mapFields `HELIX_DISABLED_PARTITION` (resource →
    /// comma-separated partitions), and the legacy listField of partition names (returned
    /// under the empty resource name, meaning "any resource").
    pub fn disabled_partitions(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(map) = self.record.map(HELIX_DISABLED_PARTITION) {
            for (resource, list) in map {
                let parts = list
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from);
                out.entry(resource.clone()).or_default().extend(parts);
            }
        }
        if let Some(list) = self.record.list(HELIX_DISABLED_PARTITION) {
            out.entry(String::new()).or_default().extend(list.iter().cloned());
        }
        out
    }
}

/// The cluster-wide configuration (`CONFIGS/CLUSTER/<cluster>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The underlying record (`id` is the cluster name).
    pub record: Record,
}

impl ClusterConfig {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        ClusterConfig { record }
    }

    /// `MAX_OFFLINE_INSTANCES_ALLOWED`: past this many offline instances the cluster enters
    /// maintenance mode automatically. Absent or negative means no limit.
    pub fn max_offline_instances_allowed(&self) -> Result<Option<usize>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(MAX_OFFLINE_INSTANCES_ALLOWED)?
            .filter(|v| *v >= 0)
            .map(|v| v as usize))
    }

    /// `DELAY_REBALANCE_ENABLED` (cluster-wide switch; default true as in Helix).
    pub fn delay_rebalance_enabled(&self) -> Result<bool, RecordError> {
        Ok(self.record.simple_bool(DELAY_REBALANCE_ENABLED)?.unwrap_or(true))
    }

    /// `DELAY_REBALANCE_TIME` in milliseconds, if set.
    pub fn rebalance_delay_ms(&self) -> Result<Option<u64>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(DELAY_REBALANCE_TIME)?
            .filter(|v| *v >= 0)
            .map(|v| v as u64))
    }

    /// Cluster-wide `MAX_PARTITIONS_PER_INSTANCE`, if set and positive.
    pub fn max_partitions_per_instance(&self) -> Result<Option<usize>, RecordError> {
        Ok(self
            .record
            .simple_parsed::<i64>(MAX_PARTITIONS_PER_INSTANCE)?
            .filter(|v| *v > 0)
            .map(|v| v as usize))
    }

    /// The raw `STATE_TRANSITION_THROTTLE_CONFIGS` entries (each a small JSON object, with
    /// Helix's keys `REBALANCE_TYPE`, `THROTTLE_SCOPE`, `MAX_PARTITION_IN_TRANSITION`; the
    /// camelCase spellings are accepted too). Parsed by
    /// [`ClusterConfig::state_transition_throttle_configs`].
    pub fn throttle_config_entries(&self) -> &[String] {
        self.record.list(STATE_TRANSITION_THROTTLE_CONFIGS).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_modes_map_to_new_ones() {
        let mut is = IdealState::create("myDB", 6, "MasterSlave", RebalanceMode::SemiAuto);
        is.record.simple_fields.remove(REBALANCE_MODE);
        is.record.set_simple(IDEAL_STATE_MODE, "AUTO_REBALANCE");
        assert_eq!(is.rebalance_mode().unwrap(), RebalanceMode::FullAuto);
        is.record.set_simple(REBALANCE_MODE, "CUSTOMIZED");
        assert_eq!(is.rebalance_mode().unwrap(), RebalanceMode::Customized);
        is.record.set_simple(REBALANCE_MODE, "SIDEWAYS");
        assert!(is
            .rebalance_mode()
            .unwrap_err()
            .to_string()
            .contains("REBALANCE_MODE"));
    }

    #[test]
    fn partitions_default_to_numbered_names_in_natural_order() {
        let is = IdealState::create("myDB", 12, "MasterSlave", RebalanceMode::FullAuto);
        let p = is.partitions().unwrap();
        assert_eq!(p.len(), 12);
        assert_eq!(p[2], "myDB_2");
        assert_eq!(p[10], "myDB_10");
    }

    #[test]
    fn huge_num_partitions_is_refused_not_allocated() {
        let is = IdealState::create("myDB", 999_999_999_999, "MasterSlave", RebalanceMode::FullAuto);
        let err = is.partitions().unwrap_err().to_string();
        assert!(err.contains("NUM_PARTITIONS") && err.contains("at most"), "{err}");
    }

    #[test]
    fn replicas_accepts_any_liveinstance() {
        let mut is = IdealState::create("myDB", 1, "OnlineOffline", RebalanceMode::FullAuto);
        is.record.set_simple(REPLICAS, "ANY_LIVEINSTANCE");
        assert_eq!(is.replicas().unwrap(), Replicas::AnyLiveInstance);
        is.record.set_simple(REPLICAS, "3");
        assert_eq!(is.replicas().unwrap(), Replicas::Count(3));
    }

    #[test]
    fn instance_config_reads_disabled_partitions_both_ways() {
        let mut c = InstanceConfig::create("localhost_12913");
        c.record
            .map_fields
            .entry(HELIX_DISABLED_PARTITION.into())
            .or_default()
            .insert("myDB".into(), "myDB_0, myDB_1".into());
        c.record
            .list_fields
            .insert(HELIX_DISABLED_PARTITION.into(), vec!["old_3".into()]);
        let d = c.disabled_partitions();
        assert_eq!(d["myDB"], vec!["myDB_0", "myDB_1"]);
        assert_eq!(d[""], vec!["old_3"]);
        assert_eq!(c.record.simple(HELIX_PORT), Some("12913"));
    }
}
