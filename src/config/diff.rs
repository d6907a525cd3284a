//! Key-level config changes, computed purely from a record before and after one store event.
//!
//! ```text
//!   CONFIGS/CLUSTER/<C>       simpleFields        → CLUSTER=C            key, old, new
//!   CONFIGS/PARTICIPANT/<I>   simpleFields        → PARTICIPANT=C,I      key, old, new
//!   CONFIGS/RESOURCE/<R>      simpleFields        → RESOURCE=C,R         key, old, new
//!                             mapFields[<P>]      → PARTITION=C,R,P      key, old, new
//! ```
//!
//! Changes come out sorted by scope, then key, so one event always yields the same list.

use std::collections::BTreeMap;

use crate::admin::{ConfigScope, ConfigScopeType};
use crate::model::Record;

/// One key of one scope changed at a store revision.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigChange {
    /// Where the key lives.
    #[serde(serialize_with = "scope_as_text")]
    pub scope: ConfigScope,
    /// The key.
    pub key: String,
    /// Its value before the change (`None`: it was not set).
    pub old: Option<String>,
    /// Its value after the change (`None`: it was removed).
    pub new: Option<String>,
    /// The store revision of the write that changed it.
    pub revision: u64,
}

fn scope_as_text<S: serde::Serializer>(scope: &ConfigScope, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&scope.to_string())
}

/// What a config record's path says: which scope kind and which name, in cluster `cluster`.
/// `None` for any other path (directory keys included).
pub fn record_scope(cluster: &str, path: &str) -> Option<(ConfigScopeType, String)> {
    let rest = path
        .strip_prefix('/')?
        .strip_prefix(cluster)?
        .strip_prefix("/CONFIGS/")?;
    let (dir, name) = rest.split_once('/')?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let kind = match dir {
        "CLUSTER" if name == cluster => ConfigScopeType::Cluster,
        "PARTICIPANT" => ConfigScopeType::Participant,
        "RESOURCE" => ConfigScopeType::Resource,
        _ => return None,
    };
    Some((kind, name.to_string()))
}

fn diff_fields(
    scope: &ConfigScope,
    old: Option<&BTreeMap<String, String>>,
    new: Option<&BTreeMap<String, String>>,
    revision: u64,
    out: &mut Vec<ConfigChange>,
) {
    let empty = BTreeMap::new();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (o, n) = (old.get(key), new.get(key));
        if o != n {
            out.push(ConfigChange {
                scope: scope.clone(),
                key: key.clone(),
                old: o.cloned(),
                new: n.cloned(),
                revision,
            });
        }
    }
}

/// The key-level changes between two versions of the config record at `path` (`None`: absent
/// or a directory key). Resource records yield resource-scope changes (simpleFields) and
/// partition-scope changes (one mapField per partition); list fields are not config keys.
pub fn diff_record(
    cluster: &str,
    path: &str,
    old: Option<&Record>,
    new: Option<&Record>,
    revision: u64,
) -> Vec<ConfigChange> {
    let Some((kind, name)) = record_scope(cluster, path) else {
        return Vec::new();
    };
    let cluster_s = cluster.to_string();
    let scope = match kind {
        ConfigScopeType::Cluster => ConfigScope::Cluster { cluster: cluster_s },
        ConfigScopeType::Participant => ConfigScope::Participant {
            cluster: cluster_s,
            instance: name.clone(),
        },
        _ => ConfigScope::Resource {
            cluster: cluster_s,
            resource: name.clone(),
        },
    };
    let mut out = Vec::new();
    diff_fields(
        &scope,
        old.map(|r| &r.simple_fields),
        new.map(|r| &r.simple_fields),
        revision,
        &mut out,
    );
    if kind == ConfigScopeType::Resource {
        let mut partitions: Vec<&String> = old
            .iter()
            .chain(new.iter())
            .flat_map(|r| r.map_fields.keys())
            .collect();
        partitions.sort();
        partitions.dedup();
        for p in partitions {
            let scope = ConfigScope::Partition {
                cluster: cluster.to_string(),
                resource: name.clone(),
                partition: p.clone(),
            };
            diff_fields(
                &scope,
                old.and_then(|r| r.map(p)),
                new.and_then(|r| r.map(p)),
                revision,
                &mut out,
            );
        }
    }
    out
}

/// Which changes a subscription wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFilter {
    /// Exactly one scope (a resource scope does not include its partitions).
    Scope(ConfigScope),
    /// Every scope of a kind in a cluster (every participant, every resource, every
    /// partition of every resource).
    Kind {
        /// The cluster.
        cluster: String,
        /// The kind.
        kind: ConfigScopeType,
    },
}

impl ConfigFilter {
    /// The cluster watched.
    pub fn cluster(&self) -> &str {
        match self {
            ConfigFilter::Scope(s) => s.cluster(),
            ConfigFilter::Kind { cluster, .. } => cluster,
        }
    }

    /// The store prefix whose events can hold wanted changes (a string prefix: the fold
    /// checks each event's path exactly).
    pub fn prefix(&self) -> String {
        match self {
            ConfigFilter::Scope(s) => s.path(),
            ConfigFilter::Kind { cluster, kind } => {
                let l = crate::model::Layout::new(cluster);
                match kind {
                    ConfigScopeType::Cluster => l.cluster_config(),
                    ConfigScopeType::Participant => format!("{}/", l.instance_configs()),
                    ConfigScopeType::Resource | ConfigScopeType::Partition => {
                        format!("{}/", l.resource_configs())
                    }
                }
            }
        }
    }

    /// Whether a change belongs to the subscription.
    pub fn matches(&self, change: &ConfigChange) -> bool {
        match self {
            ConfigFilter::Scope(s) => &change.scope == s,
            ConfigFilter::Kind { cluster, kind } => {
                change.scope.cluster() == cluster && change.scope.kind() == *kind
            }
        }
    }
}

impl std::fmt::Display for ConfigFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigFilter::Scope(s) => write!(f, "{s}"),
            ConfigFilter::Kind { cluster, kind } => write!(f, "every {} scope of {cluster}", kind.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(simple: &[(&str, &str)], maps: &[(&str, &[(&str, &str)])]) -> Record {
        let mut r = Record::new("x");
        for (k, v) in simple {
            r.simple_fields.insert(k.to_string(), v.to_string());
        }
        for (p, kv) in maps {
            let m = r.map_fields.entry(p.to_string()).or_default();
            for (k, v) in *kv {
                m.insert(k.to_string(), v.to_string());
            }
        }
        r
    }

    fn change(scope: &str, key: &str, old: Option<&str>, new: Option<&str>, revision: u64) -> ConfigChange {
        ConfigChange {
            scope: ConfigScope::parse(scope).unwrap(),
            key: key.into(),
            old: old.map(Into::into),
            new: new.map(Into::into),
            revision,
        }
    }

    #[test]
    fn paths_name_their_scope_and_nothing_else_does() {
        assert_eq!(
            record_scope("C", "/C/CONFIGS/CLUSTER/C"),
            Some((ConfigScopeType::Cluster, "C".into()))
        );
        assert_eq!(
            record_scope("C", "/C/CONFIGS/PARTICIPANT/h_1"),
            Some((ConfigScopeType::Participant, "h_1".into()))
        );
        assert_eq!(
            record_scope("C", "/C/CONFIGS/RESOURCE/db"),
            Some((ConfigScopeType::Resource, "db".into()))
        );
        for other in [
            "/C/CONFIGS/CLUSTER/D",
            "/C/CONFIGS/RESOURCE",
            "/C/CONFIGS/RESOURCE/",
            "/C/CONFIGS/RESOURCE/db/x",
            "/C/IDEALSTATES/db",
            "/CX/CONFIGS/CLUSTER/C",
            "/D/CONFIGS/CLUSTER/C",
        ] {
            assert_eq!(record_scope("C", other), None, "{other}");
        }
    }

    #[test]
    fn a_set_a_change_and_a_removal_give_old_and_new_values() {
        let before = record(&[("a", "1"), ("b", "2"), ("same", "x")], &[]);
        let after = record(&[("a", "1"), ("b", "3"), ("c", "4"), ("same", "x")], &[]);
        let p = "/C/CONFIGS/CLUSTER/C";
        assert_eq!(
            diff_record("C", p, Some(&before), Some(&after), 7),
            vec![
                change("CLUSTER=C", "b", Some("2"), Some("3"), 7),
                change("CLUSTER=C", "c", None, Some("4"), 7),
            ]
        );
        let removed = record(&[("a", "1"), ("same", "x")], &[]);
        assert_eq!(
            diff_record("C", p, Some(&before), Some(&removed), 8),
            vec![change("CLUSTER=C", "b", Some("2"), None, 8)]
        );
    }

    #[test]
    fn a_created_or_deleted_record_is_every_key_set_or_removed() {
        let r = record(&[("k", "v")], &[]);
        let p = "/C/CONFIGS/PARTICIPANT/h_1";
        assert_eq!(
            diff_record("C", p, None, Some(&r), 3),
            vec![change("PARTICIPANT=C,h_1", "k", None, Some("v"), 3)]
        );
        assert_eq!(
            diff_record("C", p, Some(&r), None, 4),
            vec![change("PARTICIPANT=C,h_1", "k", Some("v"), None, 4)]
        );
        assert!(diff_record("C", p, Some(&r), Some(&r), 5).is_empty());
    }

    #[test]
    fn resource_records_split_into_resource_and_partition_scopes() {
        let before = record(&[("r", "1")], &[("db_0", &[("k", "a")]), ("db_1", &[("k", "b")])]);
        let after = record(
            &[("r", "2")],
            &[("db_0", &[("k", "a2")]), ("db_2", &[("k", "c")])],
        );
        assert_eq!(
            diff_record("C", "/C/CONFIGS/RESOURCE/db", Some(&before), Some(&after), 9),
            vec![
                change("RESOURCE=C,db", "r", Some("1"), Some("2"), 9),
                change("PARTITION=C,db,db_0", "k", Some("a"), Some("a2"), 9),
                change("PARTITION=C,db,db_1", "k", Some("b"), None, 9),
                change("PARTITION=C,db,db_2", "k", None, Some("c"), 9),
            ]
        );
    }

    #[test]
    fn filters_match_one_scope_or_one_kind() {
        let res = change("RESOURCE=C,db", "k", None, Some("v"), 1);
        let part = change("PARTITION=C,db,db_0", "k", None, Some("v"), 1);
        let one = ConfigFilter::Scope(ConfigScope::parse("RESOURCE=C,db").unwrap());
        assert!(one.matches(&res) && !one.matches(&part));
        let kind = ConfigFilter::Kind {
            cluster: "C".into(),
            kind: ConfigScopeType::Partition,
        };
        assert!(kind.matches(&part) && !kind.matches(&res));
        assert_eq!(kind.prefix(), "/C/CONFIGS/RESOURCE/");
        let other = ConfigFilter::Kind {
            cluster: "D".into(),
            kind: ConfigScopeType::Resource,
        };
        assert!(!other.matches(&res));
    }
}
