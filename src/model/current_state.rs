//! [`CurrentState`]: what one participant, in one session, holds of one resource.
//!
//! Helix stores it at `INSTANCES/<instance>/CURRENTSTATES/<session>/<resource>`: simpleFields
//! `SESSION_ID`, `STATE_MODEL_DEF`, `STATE_MODEL_FACTORY_NAME` (and `BUCKET_SIZE`), and one
//! mapField per partition with `CURRENT_STATE` plus, while a transition runs or after it
//! failed, `REQUESTED_STATE`, `INFO`, `PREVIOUS_STATE`, `START_TIME` and `END_TIME`.

use std::collections::BTreeMap;

use super::record::{Record, RecordError};
use super::views::fields::*;
use super::views::sort_partitions;

/// A CurrentState record of one resource on one participant session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentState {
    /// The underlying record (`id` is the resource name).
    pub record: Record,
}

impl CurrentState {
    /// Wraps a record.
    pub fn new(record: Record) -> Self {
        CurrentState { record }
    }

    /// An empty current state, as a participant creates it when its first transition for the
    /// resource arrives (factory `DEFAULT`).
    pub fn create(resource: &str, session_id: &str, state_model: &str) -> Self {
        let mut r = Record::new(resource);
        r.set_simple(SESSION_ID, session_id);
        r.set_simple(STATE_MODEL_DEF, state_model);
        r.set_simple(STATE_MODEL_FACTORY_NAME, "DEFAULT");
        CurrentState { record: r }
    }

    /// The resource's name.
    pub fn resource(&self) -> &str {
        &self.record.id
    }

    /// `SESSION_ID` (required).
    pub fn session_id(&self) -> Result<&str, RecordError> {
        required(&self.record, SESSION_ID)
    }

    /// Sets `SESSION_ID`.
    pub fn set_session_id(&mut self, session_id: &str) {
        self.record.set_simple(SESSION_ID, session_id);
    }

    /// `STATE_MODEL_DEF` (required).
    pub fn state_model(&self) -> Result<&str, RecordError> {
        required(&self.record, STATE_MODEL_DEF)
    }

    /// Sets `STATE_MODEL_DEF`.
    pub fn set_state_model(&mut self, state_model: &str) {
        self.record.set_simple(STATE_MODEL_DEF, state_model);
    }

    /// `STATE_MODEL_FACTORY_NAME`, if set.
    pub fn state_model_factory_name(&self) -> Option<&str> {
        self.record.simple(STATE_MODEL_FACTORY_NAME)
    }

    /// Sets `STATE_MODEL_FACTORY_NAME`.
    pub fn set_state_model_factory_name(&mut self, name: &str) {
        self.record.set_simple(STATE_MODEL_FACTORY_NAME, name);
    }

    /// `BUCKET_SIZE` (0 when absent).
    pub fn bucket_size(&self) -> Result<usize, RecordError> {
        Ok(self.record.simple_parsed(BUCKET_SIZE)?.unwrap_or(0))
    }

    /// The partitions this record mentions, in natural order.
    pub fn partitions(&self) -> Vec<String> {
        let mut names: Vec<String> = self.record.map_fields.keys().cloned().collect();
        sort_partitions(&mut names);
        names
    }

    /// partition → `CURRENT_STATE`, for the partitions that have one.
    pub fn partition_states(&self) -> BTreeMap<String, String> {
        self.record
            .map_fields
            .iter()
            .filter_map(|(p, m)| m.get(CURRENT_STATE).map(|s| (p.clone(), s.clone())))
            .collect()
    }

    /// `CURRENT_STATE` of a partition.
    pub fn state(&self, partition: &str) -> Option<&str> {
        self.partition_field(partition, CURRENT_STATE)
    }

    /// Sets `CURRENT_STATE` of a partition.
    pub fn set_state(&mut self, partition: &str, state: &str) {
        self.set_partition_field(partition, CURRENT_STATE, state);
    }

    /// `REQUESTED_STATE` of a partition: the target of a transition in progress.
    pub fn requested_state(&self, partition: &str) -> Option<&str> {
        self.partition_field(partition, REQUESTED_STATE)
    }

    /// Sets `REQUESTED_STATE` of a partition.
    pub fn set_requested_state(&mut self, partition: &str, state: &str) {
        self.set_partition_field(partition, REQUESTED_STATE, state);
    }

    /// Clears `REQUESTED_STATE` of a partition (the transition ended).
    pub fn clear_requested_state(&mut self, partition: &str) {
        if let Some(m) = self.record.map_fields.get_mut(partition) {
            m.remove(REQUESTED_STATE);
        }
    }

    /// `INFO` of a partition: a message from the last transition (an error, usually).
    pub fn info(&self, partition: &str) -> Option<&str> {
        self.partition_field(partition, INFO)
    }

    /// Sets `INFO` of a partition.
    pub fn set_info(&mut self, partition: &str, info: &str) {
        self.set_partition_field(partition, INFO, info);
    }

    /// `PREVIOUS_STATE` of a partition.
    pub fn previous_state(&self, partition: &str) -> Option<&str> {
        self.partition_field(partition, PREVIOUS_STATE)
    }

    /// `START_TIME` of a partition's last transition, in milliseconds since the epoch.
    pub fn start_time_ms(&self, partition: &str) -> Result<Option<u64>, RecordError> {
        self.partition_millis(partition, START_TIME)
    }

    /// `END_TIME` of a partition's last transition, in milliseconds since the epoch.
    pub fn end_time_ms(&self, partition: &str) -> Result<Option<u64>, RecordError> {
        self.partition_millis(partition, END_TIME)
    }

    /// Records a completed transition: `PREVIOUS_STATE`, `CURRENT_STATE`, `START_TIME`,
    /// `END_TIME`, and clears `REQUESTED_STATE`.
    pub fn record_transition(&mut self, partition: &str, from: &str, to: &str, start_ms: u64, end_ms: u64) {
        self.set_partition_field(partition, PREVIOUS_STATE, from);
        self.set_partition_field(partition, CURRENT_STATE, to);
        self.set_partition_field(partition, START_TIME, &start_ms.to_string());
        self.set_partition_field(partition, END_TIME, &end_ms.to_string());
        self.clear_requested_state(partition);
    }

    /// Removes a partition (it reached DROPPED); returns its fields if it had any.
    pub fn remove_partition(&mut self, partition: &str) -> Option<BTreeMap<String, String>> {
        self.record.map_fields.remove(partition)
    }

    /// Checks what Helix checks (`SESSION_ID` and `STATE_MODEL_DEF` present), and that every
    /// partition's times are numbers.
    pub fn validate(&self) -> Result<(), RecordError> {
        self.session_id()?;
        self.state_model()?;
        self.bucket_size()?;
        for partition in self.record.map_fields.keys() {
            self.start_time_ms(partition)?;
            self.end_time_ms(partition)?;
        }
        Ok(())
    }

    fn partition_field(&self, partition: &str, key: &str) -> Option<&str> {
        self.record.map(partition)?.get(key).map(String::as_str)
    }

    fn set_partition_field(&mut self, partition: &str, key: &str, value: &str) {
        self.record
            .map_fields
            .entry(partition.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    fn partition_millis(&self, partition: &str, key: &str) -> Result<Option<u64>, RecordError> {
        match self.partition_field(partition, key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                let field = format!("{partition}.{key}");
                RecordError::invalid_field(&self.record, &field, v, "expected milliseconds since the epoch")
            }),
        }
    }
}

fn required<'a>(record: &'a Record, field: &str) -> Result<&'a str, RecordError> {
    record
        .simple(field)
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| RecordError::missing_field(record, field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_read_back() {
        let mut cs = CurrentState::create("myDB", "13d0e34675e0002", "MasterSlave");
        cs.set_state("myDB_1", "MASTER");
        cs.set_state("myDB_0", "SLAVE");
        cs.set_requested_state("myDB_0", "MASTER");
        assert_eq!(cs.session_id().unwrap(), "13d0e34675e0002");
        assert_eq!(cs.state_model().unwrap(), "MasterSlave");
        assert_eq!(cs.state_model_factory_name(), Some("DEFAULT"));
        assert_eq!(cs.state("myDB_1"), Some("MASTER"));
        assert_eq!(cs.requested_state("myDB_0"), Some("MASTER"));
        assert_eq!(cs.partition_states().len(), 2);
        cs.record_transition("myDB_0", "SLAVE", "MASTER", 10, 25);
        assert_eq!(cs.state("myDB_0"), Some("MASTER"));
        assert_eq!(cs.previous_state("myDB_0"), Some("SLAVE"));
        assert_eq!(cs.requested_state("myDB_0"), None);
        assert_eq!(cs.end_time_ms("myDB_0").unwrap(), Some(25));
        cs.validate().unwrap();
    }

    #[test]
    fn parses_the_helix_concepts_example() {
        let text = r#"{"id":"MyResource","simpleFields":{"SESSION_ID":"13d0e34675e0002","INSTANCE_NAME":"node1",
            "STATE_MODEL_DEF":"MasterSlave"},"mapFields":{"MyResource_0":{"CURRENT_STATE":"SLAVE"},
            "MyResource_1":{"CURRENT_STATE":"MASTER"},"MyResource_2":{"CURRENT_STATE":"MASTER"}}}"#;
        let cs = CurrentState::new(Record::from_json(text).unwrap());
        cs.validate().unwrap();
        assert_eq!(
            cs.partitions(),
            vec!["MyResource_0", "MyResource_1", "MyResource_2"]
        );
        assert_eq!(cs.state("MyResource_0"), Some("SLAVE"));
        // Fields strand does not interpret are kept.
        assert_eq!(cs.record.simple("INSTANCE_NAME"), Some("node1"));
    }

    #[test]
    fn missing_session_is_an_error() {
        let mut cs = CurrentState::create("myDB", "s1", "MasterSlave");
        cs.record.simple_fields.remove(SESSION_ID);
        let err = cs.validate().unwrap_err();
        assert_eq!(
            err,
            RecordError::MissingField {
                record: "myDB".into(),
                field: SESSION_ID.into()
            }
        );
    }

    #[test]
    fn bad_time_names_partition_and_field() {
        let mut cs = CurrentState::create("myDB", "s1", "MasterSlave");
        cs.set_partition_field("myDB_3", START_TIME, "yesterday");
        let err = cs.validate().unwrap_err().to_string();
        assert!(
            err.contains("myDB_3.START_TIME") && err.contains("yesterday"),
            "{err}"
        );
    }
}
