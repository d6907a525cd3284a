//! [`ExternalView`]: what the replicas of a resource actually are, as spectators see it.
//!
//! The controller aggregates the current states of every live participant into one record
//! per resource (`EXTERNALVIEW/<resource>`): mapFields partition → {instance → state}. Like
//! Helix, strand copies the ideal state's simpleFields into it and adds `BUCKET_SIZE`.
//!
//! ```text
//!   CURRENTSTATES/<instance>/<session>/<resource>  ──(controller)──▶  EXTERNALVIEW/<resource>
//! ```

use std::collections::BTreeMap;

use super::record::{Record, RecordError};
use super::views::fields::*;
use super::views::{sort_partitions, IdealState};

/// An ExternalView record: partition → {instance → state}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalView {
    /// The underlying record (`id` is the resource name).
    pub record: Record,
}

impl ExternalView {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        ExternalView { record }
    }

    /// An empty external view for a resource (Helix's `new ExternalView(resource)`).
    pub fn create(resource: &str) -> Self {
        ExternalView {
            record: Record::new(resource),
        }
    }

    /// An empty external view carrying the ideal state's simpleFields and `BUCKET_SIZE` 0,
    /// as Helix's controller writes it before any replica is reported.
    pub fn for_ideal_state(ideal_state: &IdealState) -> Self {
        let mut record = Record::new(ideal_state.resource());
        record.simple_fields = ideal_state.record.simple_fields.clone();
        if !record.simple_fields.contains_key(BUCKET_SIZE) {
            record.set_simple(BUCKET_SIZE, 0);
        }
        ExternalView { record }
    }

    /// The resource's name.
    pub fn resource(&self) -> &str {
        &self.record.id
    }

    /// `STATE_MODEL_DEF_REF`, if set.
    pub fn state_model(&self) -> Option<&str> {
        self.record.simple(STATE_MODEL_DEF_REF).filter(|s| !s.is_empty())
    }

    /// `BUCKET_SIZE` (0, meaning "not bucketed", when absent).
    pub fn bucket_size(&self) -> Result<usize, RecordError> {
        Ok(self.record.simple_parsed(BUCKET_SIZE)?.unwrap_or(0))
    }

    /// Sets `BUCKET_SIZE`.
    pub fn set_bucket_size(&mut self, size: usize) {
        self.record.set_simple(BUCKET_SIZE, size);
    }

    /// The partitions that have at least an entry, in natural order (`myDB_2` before `myDB_10`).
    pub fn partitions(&self) -> Vec<String> {
        let mut names: Vec<String> = self.record.map_fields.keys().cloned().collect();
        sort_partitions(&mut names);
        names
    }

    /// The instance → state map of a partition.
    pub fn state_map(&self, partition: &str) -> Option<&BTreeMap<String, String>> {
        self.record.map(partition)
    }

    /// The state of one replica.
    pub fn state(&self, partition: &str, instance: &str) -> Option<&str> {
        self.record.map(partition)?.get(instance).map(String::as_str)
    }

    /// Sets the state of one replica.
    pub fn set_state(&mut self, partition: &str, instance: &str, state: &str) {
        self.record
            .map_fields
            .entry(partition.to_string())
            .or_default()
            .insert(instance.to_string(), state.to_string());
    }

    /// Replaces the instance → state map of a partition.
    pub fn set_state_map(&mut self, partition: &str, map: BTreeMap<String, String>) {
        self.record.map_fields.insert(partition.to_string(), map);
    }

    /// Removes a partition; returns its map if it had one.
    pub fn remove_partition(&mut self, partition: &str) -> Option<BTreeMap<String, String>> {
        self.record.map_fields.remove(partition)
    }

    /// The instances holding a partition in the given state, sorted by name.
    pub fn instances_in_state(&self, partition: &str, state: &str) -> Vec<&str> {
        self.record
            .map(partition)
            .map(|m| {
                m.iter()
                    .filter(|(_, s)| s.as_str() == state)
                    .map(|(i, _)| i.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many replicas each instance holds in the given state, over all partitions.
    pub fn count_by_instance(&self, state: &str) -> BTreeMap<String, usize> {
        let mut out: BTreeMap<String, usize> = BTreeMap::new();
        for map in self.record.map_fields.values() {
            for (instance, s) in map {
                if s == state {
                    *out.entry(instance.clone()).or_default() += 1;
                }
            }
        }
        out
    }

    /// Checks what readers rely on: `BUCKET_SIZE` is a number and no replica has an empty state.
    pub fn validate(&self) -> Result<(), RecordError> {
        self.bucket_size()?;
        for (partition, map) in &self.record.map_fields {
            for (instance, state) in map {
                if state.trim().is_empty() {
                    let field = format!("{partition}.{instance}");
                    return Err(RecordError::invalid_field(
                        &self.record,
                        &field,
                        state,
                        "expected a state name",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RebalanceMode;

    #[test]
    fn copies_the_ideal_state_fields_and_adds_bucket_size() {
        let is = IdealState::create("myDB", 6, "MasterSlave", RebalanceMode::SemiAuto);
        let ev = ExternalView::for_ideal_state(&is);
        assert_eq!(ev.resource(), "myDB");
        assert_eq!(ev.record.simple(BUCKET_SIZE), Some("0"));
        assert_eq!(ev.record.simple(NUM_PARTITIONS), Some("6"));
        assert_eq!(ev.state_model(), Some("MasterSlave"));
        assert!(ev.partitions().is_empty());
    }

    #[test]
    fn states_per_partition_and_instance() {
        let mut ev = ExternalView::create("myDB");
        ev.set_state("myDB_10", "a", "MASTER");
        ev.set_state("myDB_2", "a", "SLAVE");
        ev.set_state("myDB_2", "b", "MASTER");
        assert_eq!(ev.partitions(), vec!["myDB_2", "myDB_10"]);
        assert_eq!(ev.state("myDB_2", "b"), Some("MASTER"));
        assert_eq!(ev.instances_in_state("myDB_2", "SLAVE"), vec!["a"]);
        assert_eq!(
            ev.count_by_instance("MASTER"),
            BTreeMap::from([("a".into(), 1), ("b".into(), 1)])
        );
        assert!(ev.remove_partition("myDB_10").is_some());
        assert_eq!(ev.state("myDB_10", "a"), None);
    }

    #[test]
    fn bad_bucket_size_names_the_field() {
        let mut ev = ExternalView::create("myDB");
        ev.record.set_simple(BUCKET_SIZE, "-3");
        let err = ev.bucket_size().unwrap_err();
        assert!(
            matches!(&err, RecordError::InvalidField { field, .. } if field == BUCKET_SIZE),
            "{err}"
        );
        assert!(ev.validate().is_err());
    }

    #[test]
    fn empty_state_is_rejected() {
        let mut ev = ExternalView::create("myDB");
        ev.set_state("myDB_0", "a", " ");
        let err = ev.validate().unwrap_err().to_string();
        assert!(err.contains("myDB_0.a"), "{err}");
    }
}
