//! [`StateTransitionThrottleConfig`]: Helix's transition throttles, read from the cluster
//! config's `STATE_TRANSITION_THROTTLE_CONFIGS` list.
//!
//! Each list entry is a small JSON object. Helix (`StateTransitionThrottleConfig.toJSON`)
//! writes `{"THROTTLE_SCOPE":"INSTANCE","MAX_PARTITION_IN_TRANSITION":"10","REBALANCE_TYPE":"LOAD_BALANCE"}`;
//! strand also reads the camelCase keys (`rebalanceType`, `throttleScope`,
//! `maxPartitionInTransition`), numbers as well as strings, and single quotes.

use std::fmt;

use super::record::RecordError;
use super::views::fields::STATE_TRANSITION_THROTTLE_CONFIGS;
use super::views::ClusterConfig;

/// Which transitions a throttle counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RebalanceType {
    /// Transitions that move replicas for balance while every partition is healthy.
    LoadBalance,
    /// Transitions that restore missing replicas or top states.
    RecoveryBalance,
    /// Both.
    Any,
}

impl RebalanceType {
    /// Parses Helix's spelling (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "LOAD_BALANCE" => Some(Self::LoadBalance),
            "RECOVERY_BALANCE" => Some(Self::RecoveryBalance),
            "ANY" => Some(Self::Any),
            _ => None,
        }
    }

    /// Helix's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoadBalance => "LOAD_BALANCE",
            Self::RecoveryBalance => "RECOVERY_BALANCE",
            Self::Any => "ANY",
        }
    }
}

/// Over what a throttle counts transitions in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThrottleScope {
    /// The whole cluster.
    Cluster,
    /// Each resource.
    Resource,
    /// Each instance.
    Instance,
    /// Each partition.
    Partition,
}

impl ThrottleScope {
    /// Parses Helix's spelling (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            "CLUSTER" => Some(Self::Cluster),
            "RESOURCE" => Some(Self::Resource),
            "INSTANCE" => Some(Self::Instance),
            "PARTITION" => Some(Self::Partition),
            _ => None,
        }
    }

    /// Helix's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "CLUSTER",
            Self::Resource => "RESOURCE",
            Self::Instance => "INSTANCE",
            Self::Partition => "PARTITION",
        }
    }
}

/// One throttle: at most `max_partition_in_transition` transitions of `rebalance_type` in
/// flight per `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateTransitionThrottleConfig {
    /// Which transitions are counted.
    pub rebalance_type: RebalanceType,
    /// Over what they are counted.
    pub scope: ThrottleScope,
    /// The maximum in flight.
    pub max_partition_in_transition: usize,
}

impl StateTransitionThrottleConfig {
    /// Parses one list entry; `Err` holds the reason.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let value: serde_json::Value = match serde_json::from_str(entry) {
            Ok(v) => v,
            // Helix users often write single quotes; swap the two quote kinds and retry.
            Err(first) => {
                let swapped: String = entry
                    .chars()
                    .map(|c| match c {
                        '\'' => '"',
                        '"' => '\'',
                        c => c,
                    })
                    .collect();
                serde_json::from_str(&swapped).map_err(|_| format!("not a JSON object: {first}"))?
            }
        };
        let obj = value.as_object().ok_or_else(|| "not a JSON object".to_string())?;
        let (mut rebalance_type, mut scope, mut max) = (None, None, None);
        for (key, v) in obj {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                other => return Err(format!("{key} must be a string or a number, not {other}")),
            };
            match key.replace('_', "").to_ascii_lowercase().as_str() {
                "rebalancetype" => {
                    rebalance_type = Some(RebalanceType::parse(&text).ok_or_else(|| {
                        format!("{key} = '{text}': expected LOAD_BALANCE, RECOVERY_BALANCE or ANY")
                    })?)
                }
                "throttlescope" => {
                    scope = Some(ThrottleScope::parse(&text).ok_or_else(|| {
                        format!("{key} = '{text}': expected CLUSTER, RESOURCE, INSTANCE or PARTITION")
                    })?)
                }
                "maxpartitionintransition" => {
                    max = Some(
                        text.trim()
                            .parse::<usize>()
                            .map_err(|_| format!("{key} = '{text}': expected a non-negative integer"))?,
                    )
                }
                _ => {} // Helix's CONFIG_TYPE and anything newer: ignored.
            }
        }
        Ok(StateTransitionThrottleConfig {
            rebalance_type: rebalance_type.ok_or("rebalanceType (REBALANCE_TYPE) is missing")?,
            scope: scope.ok_or("throttleScope (THROTTLE_SCOPE) is missing")?,
            max_partition_in_transition: max
                .ok_or("maxPartitionInTransition (MAX_PARTITION_IN_TRANSITION) is missing")?,
        })
    }

    /// The entry as Helix writes it (Jackson over a `HashMap`, hence this key order).
    pub fn to_helix_json(&self) -> String {
        format!(
            r#"{{"THROTTLE_SCOPE":"{}","MAX_PARTITION_IN_TRANSITION":"{}","REBALANCE_TYPE":"{}"}}"#,
            self.scope.as_str(),
            self.max_partition_in_transition,
            self.rebalance_type.as_str()
        )
    }
}

impl fmt::Display for StateTransitionThrottleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_helix_json())
    }
}

impl ClusterConfig {
    /// The parsed `STATE_TRANSITION_THROTTLE_CONFIGS` entries, in list order. An entry that
    /// cannot be read is an error naming `STATE_TRANSITION_THROTTLE_CONFIGS[i]` and the reason.
    pub fn state_transition_throttle_configs(
        &self,
    ) -> Result<Vec<StateTransitionThrottleConfig>, RecordError> {
        self.throttle_config_entries()
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                StateTransitionThrottleConfig::parse(entry).map_err(|reason| {
                    let field = format!("{STATE_TRANSITION_THROTTLE_CONFIGS}[{i}]");
                    RecordError::invalid_field(&self.record, &field, entry, reason)
                })
            })
            .collect()
    }

    /// Replaces `STATE_TRANSITION_THROTTLE_CONFIGS` with the given throttles, in Helix's form.
    pub fn set_state_transition_throttle_configs(&mut self, configs: &[StateTransitionThrottleConfig]) {
        let entries = configs
            .iter()
            .map(StateTransitionThrottleConfig::to_helix_json)
            .collect();
        self.record
            .list_fields
            .insert(STATE_TRANSITION_THROTTLE_CONFIGS.to_string(), entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Record;

    fn config(entries: &[&str]) -> ClusterConfig {
        let mut r = Record::new("MYCLUSTER");
        r.list_fields.insert(
            STATE_TRANSITION_THROTTLE_CONFIGS.into(),
            entries.iter().map(|s| s.to_string()).collect(),
        );
        ClusterConfig::new(r)
    }

    #[test]
    fn reads_every_spelling() {
        let c = config(&[
            r#"{"rebalanceType":"LOAD_BALANCE","throttleScope":"INSTANCE","maxPartitionInTransition":"10"}"#,
            r#"{"THROTTLE_SCOPE":"CLUSTER","MAX_PARTITION_IN_TRANSITION":"100","REBALANCE_TYPE":"RECOVERY_BALANCE"}"#,
            "{'rebalanceType':'ANY','throttleScope':'PARTITION','maxPartitionInTransition':1}",
            r#"{"CONFIG_TYPE":"x","REBALANCE_TYPE":"any","THROTTLE_SCOPE":"resource","MAX_PARTITION_IN_TRANSITION":3}"#,
        ]);
        let t = c.state_transition_throttle_configs().unwrap();
        let expected = [
            (RebalanceType::LoadBalance, ThrottleScope::Instance, 10),
            (RebalanceType::RecoveryBalance, ThrottleScope::Cluster, 100),
            (RebalanceType::Any, ThrottleScope::Partition, 1),
            (RebalanceType::Any, ThrottleScope::Resource, 3),
        ];
        let got: Vec<_> = t
            .iter()
            .map(|t| (t.rebalance_type, t.scope, t.max_partition_in_transition))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn writes_helix_form_and_reads_it_back() {
        let mut c = ClusterConfig::new(Record::new("MYCLUSTER"));
        let t = StateTransitionThrottleConfig {
            rebalance_type: RebalanceType::LoadBalance,
            scope: ThrottleScope::Instance,
            max_partition_in_transition: 10,
        };
        c.set_state_transition_throttle_configs(&[t]);
        assert_eq!(
            c.throttle_config_entries()[0],
            r#"{"THROTTLE_SCOPE":"INSTANCE","MAX_PARTITION_IN_TRANSITION":"10","REBALANCE_TYPE":"LOAD_BALANCE"}"#
        );
        assert_eq!(c.state_transition_throttle_configs().unwrap(), vec![t]);
        assert!(config(&[])
            .state_transition_throttle_configs()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn wrong_entries_name_the_index_and_reason() {
        let cases = [
            (
                r#"{"rebalanceType":"SIDEWAYS","throttleScope":"INSTANCE","maxPartitionInTransition":1}"#,
                "SIDEWAYS",
            ),
            (
                r#"{"rebalanceType":"ANY","throttleScope":"RACK","maxPartitionInTransition":1}"#,
                "RACK",
            ),
            (
                r#"{"rebalanceType":"ANY","throttleScope":"CLUSTER","maxPartitionInTransition":-1}"#,
                "non-negative",
            ),
            (
                r#"{"rebalanceType":"ANY","throttleScope":"CLUSTER","maxPartitionInTransition":1.5}"#,
                "non-negative",
            ),
            (
                r#"{"rebalanceType":"ANY","maxPartitionInTransition":1}"#,
                "throttleScope",
            ),
            (
                r#"{"rebalanceType":"ANY","throttleScope":"CLUSTER"}"#,
                "maxPartitionInTransition",
            ),
            (
                r#"{"rebalanceType":["ANY"],"throttleScope":"CLUSTER"}"#,
                "string or a number",
            ),
            ("[1, 2]", "not a JSON object"),
            ("rebalance please", "not a JSON object"),
        ];
        for (entry, needle) in cases {
            let c = config(&[
                r#"{"rebalanceType":"ANY","throttleScope":"CLUSTER","maxPartitionInTransition":1}"#,
                entry,
            ]);
            let err = c.state_transition_throttle_configs().unwrap_err().to_string();
            assert!(
                err.contains("STATE_TRANSITION_THROTTLE_CONFIGS[1]") && err.contains(needle),
                "{entry}: {err}"
            );
        }
    }
}
