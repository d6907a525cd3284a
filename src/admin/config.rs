//! Scoped configs: Helix's `--setConfig/--getConfig/--removeConfig`.
//!
//! ```text
//!   scope                        record                              fields
//!   CLUSTER=C                    CONFIGS/CLUSTER/C                   simpleFields
//!   PARTICIPANT=C,localhost_1    CONFIGS/PARTICIPANT/localhost_1     simpleFields
//!   RESOURCE=C,myDB              CONFIGS/RESOURCE/myDB               simpleFields
//!   PARTITION=C,myDB,myDB_0      CONFIGS/RESOURCE/myDB               mapField "myDB_0"
//! ```
//!
//! Scopes are accepted in three spellings: strand's `TYPE=C,arg…` (above), Helix's
//! two-argument form (`CLUSTER` and `MYCLUSTER,myDB` as separate arguments, see
//! [`ConfigScope::from_parts`]) and Helix's older `CLUSTER=C,RESOURCE=myDB`. Values are
//! `k1=v1,k2=v2`; keys `k1,k2`. A participant must be configured and a resource must have an
//! ideal state; a resource config is created on its first key.

use std::collections::BTreeMap;

use crate::model::{Layout, Record};

use super::instance::instance_name;
use super::records::Guard;
use super::{validate_name, Admin, AdminError};

/// The kind of a config scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigScopeType {
    /// The cluster config.
    Cluster,
    /// An instance config.
    Participant,
    /// A resource config.
    Resource,
    /// One partition of a resource config.
    Partition,
}

impl ConfigScopeType {
    /// Parses Helix's spelling (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_uppercase().as_str() {
            "CLUSTER" => Some(Self::Cluster),
            "PARTICIPANT" => Some(Self::Participant),
            "RESOURCE" => Some(Self::Resource),
            "PARTITION" => Some(Self::Partition),
            _ => None,
        }
    }

    /// Helix's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "CLUSTER",
            Self::Participant => "PARTICIPANT",
            Self::Resource => "RESOURCE",
            Self::Partition => "PARTITION",
        }
    }
}

/// Where a config lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConfigScope {
    /// The cluster config.
    Cluster {
        /// The cluster.
        cluster: String,
    },
    /// An instance config.
    Participant {
        /// The cluster.
        cluster: String,
        /// The instance.
        instance: String,
    },
    /// A resource config.
    Resource {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
    },
    /// A partition's mapField in its resource config.
    Partition {
        /// The cluster.
        cluster: String,
        /// The resource.
        resource: String,
        /// The partition.
        partition: String,
    },
}

fn scope_error(text: &str, reason: &str) -> AdminError {
    AdminError::invalid(format!("config scope {text:?}"), reason)
}

const SCOPE_HELP: &str = "expected CLUSTER=C, PARTICIPANT=C,INSTANCE, RESOURCE=C,R or PARTITION=C,R,P";

impl ConfigScope {
    /// Parses `TYPE=C[,arg…]` (`PARTICIPANT=MYCLUSTER,localhost_12913`) or Helix's older
    /// `CLUSTER=C[,PARTICIPANT=I|,RESOURCE=R[,PARTITION=P]]`.
    pub fn parse(text: &str) -> Result<Self, AdminError> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let Some((kind, first)) = parts[0].split_once('=') else {
            return Err(scope_error(text, SCOPE_HELP));
        };
        if parts[1..].iter().all(|p| p.contains('=')) && parts.len() > 1 {
            // Helix's older form: every part is KEY=VALUE.
            let mut by_key: BTreeMap<ConfigScopeType, String> = BTreeMap::new();
            for p in &parts {
                let (k, v) = p.split_once('=').unwrap_or((*p, ""));
                let k = ConfigScopeType::parse(k).ok_or_else(|| scope_error(text, SCOPE_HELP))?;
                if by_key.insert(k, v.to_string()).is_some() {
                    return Err(scope_error(text, "a scope key is given twice"));
                }
            }
            let cluster = by_key
                .remove(&ConfigScopeType::Cluster)
                .ok_or_else(|| scope_error(text, "the scope names no CLUSTER"))?;
            let mut args = vec![cluster];
            let kind = if let Some(i) = by_key.remove(&ConfigScopeType::Participant) {
                args.push(i);
                ConfigScopeType::Participant
            } else if let Some(r) = by_key.remove(&ConfigScopeType::Resource) {
                args.push(r);
                match by_key.remove(&ConfigScopeType::Partition) {
                    Some(p) => {
                        args.push(p);
                        ConfigScopeType::Partition
                    }
                    None => ConfigScopeType::Resource,
                }
            } else {
                ConfigScopeType::Cluster
            };
            if !by_key.is_empty() {
                return Err(scope_error(text, SCOPE_HELP));
            }
            return Self::from_args(kind, &args, text);
        }
        let kind = ConfigScopeType::parse(kind).ok_or_else(|| scope_error(text, SCOPE_HELP))?;
        let mut args = vec![first.to_string()];
        args.extend(parts[1..].iter().map(|s| s.to_string()));
        Self::from_args(kind, &args, text)
    }

    /// Helix's current form: the type (`RESOURCE`) and its arguments as one
    /// comma-separated argument (`MYCLUSTER,myDB`).
    pub fn from_parts(kind: &str, args_csv: &str) -> Result<Self, AdminError> {
        let text = format!("{kind} {args_csv}");
        let kind = ConfigScopeType::parse(kind).ok_or_else(|| scope_error(&text, SCOPE_HELP))?;
        let args: Vec<String> = args_csv
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        Self::from_args(kind, &args, &text)
    }

    fn from_args(kind: ConfigScopeType, args: &[String], text: &str) -> Result<Self, AdminError> {
        let want = match kind {
            ConfigScopeType::Cluster => 1,
            ConfigScopeType::Participant | ConfigScopeType::Resource => 2,
            ConfigScopeType::Partition => 3,
        };
        if args.len() != want || args.iter().any(|a| a.is_empty()) {
            let shape = match kind {
                ConfigScopeType::Cluster => "CLUSTER=C",
                ConfigScopeType::Participant => "PARTICIPANT=C,INSTANCE",
                ConfigScopeType::Resource => "RESOURCE=C,RESOURCE",
                ConfigScopeType::Partition => "PARTITION=C,RESOURCE,PARTITION",
            };
            return Err(scope_error(text, &format!("expected {shape}")));
        }
        validate_name("cluster", &args[0])?;
        let cluster = args[0].clone();
        Ok(match kind {
            ConfigScopeType::Cluster => ConfigScope::Cluster { cluster },
            ConfigScopeType::Participant => ConfigScope::Participant {
                cluster,
                instance: instance_name(&args[1])?,
            },
            ConfigScopeType::Resource => {
                validate_name("resource", &args[1])?;
                ConfigScope::Resource {
                    cluster,
                    resource: args[1].clone(),
                }
            }
            ConfigScopeType::Partition => {
                validate_name("resource", &args[1])?;
                ConfigScope::Partition {
                    cluster,
                    resource: args[1].clone(),
                    partition: args[2].clone(),
                }
            }
        })
    }

    /// The scope's kind.
    pub fn kind(&self) -> ConfigScopeType {
        match self {
            ConfigScope::Cluster { .. } => ConfigScopeType::Cluster,
            ConfigScope::Participant { .. } => ConfigScopeType::Participant,
            ConfigScope::Resource { .. } => ConfigScopeType::Resource,
            ConfigScope::Partition { .. } => ConfigScopeType::Partition,
        }
    }

    /// The cluster the scope is in.
    pub fn cluster(&self) -> &str {
        match self {
            ConfigScope::Cluster { cluster }
            | ConfigScope::Participant { cluster, .. }
            | ConfigScope::Resource { cluster, .. }
            | ConfigScope::Partition { cluster, .. } => cluster,
        }
    }

    /// The record's path.
    pub fn path(&self) -> String {
        let l = Layout::new(self.cluster());
        match self {
            ConfigScope::Cluster { .. } => l.cluster_config(),
            ConfigScope::Participant { instance, .. } => l.instance_config(instance),
            ConfigScope::Resource { resource, .. } | ConfigScope::Partition { resource, .. } => {
                l.resource_config(resource)
            }
        }
    }

    fn fields<'a>(&self, record: &'a Record) -> Option<&'a BTreeMap<String, String>> {
        match self {
            ConfigScope::Partition { partition, .. } => record.map(partition),
            _ => Some(&record.simple_fields),
        }
    }

    fn fields_mut<'a>(&self, record: &'a mut Record) -> &'a mut BTreeMap<String, String> {
        match self {
            ConfigScope::Partition { partition, .. } => {
                record.map_fields.entry(partition.clone()).or_default()
            }
            _ => &mut record.simple_fields,
        }
    }

    fn guards(&self) -> Vec<Guard> {
        let l = Layout::new(self.cluster());
        let mut g = vec![Guard::cluster(&l)];
        match self {
            ConfigScope::Cluster { .. } => {}
            ConfigScope::Participant { instance, .. } => g.push(Guard::instance(&l, instance)),
            ConfigScope::Resource { resource, .. } | ConfigScope::Partition { resource, .. } => {
                g.push(Guard::resource(&l, resource))
            }
        }
        g
    }

    /// The id of the record when it is created (resource configs).
    fn record_id(&self) -> &str {
        match self {
            ConfigScope::Cluster { cluster } => cluster,
            ConfigScope::Participant { instance, .. } => instance,
            ConfigScope::Resource { resource, .. } | ConfigScope::Partition { resource, .. } => resource,
        }
    }
}

impl std::fmt::Display for ConfigScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigScope::Cluster { cluster } => write!(f, "CLUSTER={cluster}"),
            ConfigScope::Participant { cluster, instance } => write!(f, "PARTICIPANT={cluster},{instance}"),
            ConfigScope::Resource { cluster, resource } => write!(f, "RESOURCE={cluster},{resource}"),
            ConfigScope::Partition {
                cluster,
                resource,
                partition,
            } => write!(f, "PARTITION={cluster},{resource},{partition}"),
        }
    }
}

/// Parses Helix's `k1=v1,k2=v2` (a value may contain `=`, not `,`).
pub fn parse_key_values(text: &str) -> Result<BTreeMap<String, String>, AdminError> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(AdminError::invalid(
                format!("key-value list {text:?}"),
                format!("{item:?} is not key=value"),
            ));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(AdminError::invalid(
                format!("key-value list {text:?}"),
                format!("{item:?} has an empty key"),
            ));
        }
        out.insert(k.to_string(), v.trim().to_string());
    }
    if out.is_empty() {
        return Err(AdminError::invalid(
            format!("key-value list {text:?}"),
            "expected k1=v1,k2=v2",
        ));
    }
    Ok(out)
}

/// Parses a key list `k1,k2` (commas or spaces).
pub fn parse_keys(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Admin {
    /// Sets keys in a scope's config.
    pub async fn set_config(
        &self,
        scope: &ConfigScope,
        values: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        let path = scope.path();
        self.update(
            &path,
            || scope.guards(),
            |current| {
                let mut r = match (current, scope.kind()) {
                    (Some(r), _) => r,
                    (None, ConfigScopeType::Resource | ConfigScopeType::Partition) => {
                        Record::new(scope.record_id())
                    }
                    (None, _) => return Err(self.scope_missing(scope)),
                };
                scope.fields_mut(&mut r).extend(values.clone());
                Ok(Some(r))
            },
        )
        .await
        .map(drop)
    }

    /// The scope's config: the keys asked for that are set, or (no keys) all of them.
    pub async fn get_config(
        &self,
        scope: &ConfigScope,
        keys: &[String],
    ) -> Result<BTreeMap<String, String>, AdminError> {
        let record = self.record(&scope.path()).await?;
        if record.is_none() {
            self.check_scope(scope).await?;
        }
        let fields = record
            .as_ref()
            .and_then(|r| scope.fields(r))
            .cloned()
            .unwrap_or_default();
        Ok(if keys.is_empty() {
            fields
        } else {
            fields.into_iter().filter(|(k, _)| keys.contains(k)).collect()
        })
    }

    /// Removes keys from a scope's config; keys that are not set are ignored.
    pub async fn remove_config(&self, scope: &ConfigScope, keys: &[String]) -> Result<(), AdminError> {
        let path = scope.path();
        let result = self
            .update(
                &path,
                || scope.guards(),
                |current| {
                    let Some(mut r) = current else { return Ok(None) };
                    let fields = scope.fields_mut(&mut r);
                    let before = fields.len();
                    fields.retain(|k, _| !keys.contains(k));
                    let changed = fields.len() != before;
                    if let ConfigScope::Partition { partition, .. } = scope {
                        if r.map_fields.get(partition).is_some_and(BTreeMap::is_empty) {
                            r.map_fields.remove(partition);
                        }
                    }
                    Ok(changed.then_some(r))
                },
            )
            .await?;
        if result.is_none() {
            self.check_scope(scope).await?;
        }
        Ok(())
    }

    fn scope_missing(&self, scope: &ConfigScope) -> AdminError {
        match scope {
            ConfigScope::Cluster { cluster } => AdminError::ClusterNotFound {
                cluster: cluster.clone(),
            },
            ConfigScope::Participant { cluster, instance } => AdminError::InstanceNotFound {
                cluster: cluster.clone(),
                instance: instance.clone(),
            },
            ConfigScope::Resource { cluster, resource }
            | ConfigScope::Partition {
                cluster, resource, ..
            } => AdminError::ResourceNotFound {
                cluster: cluster.clone(),
                resource: resource.clone(),
            },
        }
    }

    /// Fails with what is missing for the scope (cluster, instance or resource).
    async fn check_scope(&self, scope: &ConfigScope) -> Result<(), AdminError> {
        let l = Layout::new(scope.cluster());
        self.require_cluster(&l).await?;
        match scope {
            ConfigScope::Cluster { .. } => Ok(()),
            ConfigScope::Participant { instance, .. } => {
                if self.key_exists(&l.instance_config(instance)).await? {
                    Ok(())
                } else {
                    Err(self.scope_missing(scope))
                }
            }
            ConfigScope::Resource { resource, .. } | ConfigScope::Partition { resource, .. } => {
                if self.key_exists(&l.ideal_state(resource)).await? {
                    Ok(())
                } else {
                    Err(self.scope_missing(scope))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(text: &str) -> ConfigScope {
        ConfigScope::parse(text).unwrap()
    }

    #[test]
    fn scopes_parse_in_every_spelling() {
        let cluster = ConfigScope::Cluster { cluster: "C".into() };
        assert_eq!(scope("CLUSTER=C"), cluster);
        assert_eq!(ConfigScope::from_parts("CLUSTER", "C").unwrap(), cluster);
        let participant = ConfigScope::Participant {
            cluster: "C".into(),
            instance: "localhost_12913".into(),
        };
        assert_eq!(scope("PARTICIPANT=C,localhost_12913"), participant);
        assert_eq!(scope("PARTICIPANT=C,localhost:12913"), participant);
        assert_eq!(scope("CLUSTER=C,PARTICIPANT=localhost_12913"), participant);
        assert_eq!(
            ConfigScope::from_parts("PARTICIPANT", "C,localhost_12913").unwrap(),
            participant
        );
        let resource = ConfigScope::Resource {
            cluster: "C".into(),
            resource: "myDB".into(),
        };
        assert_eq!(scope("RESOURCE=C,myDB"), resource);
        assert_eq!(scope("CLUSTER=C,RESOURCE=myDB"), resource);
        let partition = ConfigScope::Partition {
            cluster: "C".into(),
            resource: "myDB".into(),
            partition: "myDB_0".into(),
        };
        assert_eq!(scope("PARTITION=C,myDB,myDB_0"), partition);
        assert_eq!(scope("CLUSTER=C,RESOURCE=myDB,PARTITION=myDB_0"), partition);
        assert_eq!(partition.to_string(), "PARTITION=C,myDB,myDB_0");
        assert_eq!(partition.path(), "/C/CONFIGS/RESOURCE/myDB");
    }

    #[test]
    fn bad_scopes_say_what_is_expected() {
        for bad in [
            "C",
            "NODE=C",
            "RESOURCE=C",
            "PARTITION=C,myDB",
            "CLUSTER=C,x",
            "RESOURCE=C,PARTICIPANT=i",
            "CLUSTER=a/b",
        ] {
            let e = ConfigScope::parse(bad).unwrap_err();
            assert!(e.is_usage(), "{bad}: {e}");
        }
        let e = ConfigScope::parse("NODE=C").unwrap_err().to_string();
        assert!(e.contains("PARTICIPANT=C,INSTANCE"), "{e}");
    }

    #[test]
    fn key_values_parse_like_helix() {
        let kv = parse_key_values("k1=v1, k2=a=b").unwrap();
        assert_eq!(kv["k1"], "v1");
        assert_eq!(kv["k2"], "a=b");
        assert!(parse_key_values("k1").unwrap_err().is_usage());
        assert!(parse_key_values("=v").unwrap_err().is_usage());
        assert!(parse_key_values("").unwrap_err().is_usage());
        assert_eq!(parse_keys("a,b c"), ["a", "b", "c"]);
    }
}
