//! State model definitions in a cluster (`STATEMODELDEFS/<name>`): the built-ins every
//! new cluster gets, custom models added from Helix JSON (validated first), listing and
//! showing them.
//!
//! Helix names one built-in differently: its `STORAGE_DEFAULT_SM_SCHEMATA` is strand's
//! `StorageSchemata`. A new cluster holds both names, so resources written for either work.

use crate::model::Record;
use crate::statemodel::{self, StateModelDefinition};

use super::records::{put, Guard};
use super::{layout, validate_name, Admin, AdminError};

/// Helix's names of built-in state models that strand names differently: (Helix, strand).
pub const HELIX_STATE_MODEL_ALIASES: [(&str, &str); 1] = [("STORAGE_DEFAULT_SM_SCHEMATA", "StorageSchemata")];

/// A built-in state model by strand's or Helix's name.
pub fn resolve_builtin(name: &str) -> Option<StateModelDefinition> {
    statemodel::builtin(name).or_else(|| {
        let (helix, strand) = HELIX_STATE_MODEL_ALIASES.iter().find(|(h, _)| *h == name)?;
        let mut record = statemodel::builtin(strand)?.to_record();
        record.id = helix.to_string();
        StateModelDefinition::from_record(&record).ok()
    })
}

/// The STATEMODELDEFS records a new cluster gets: every built-in under strand's name, and
/// again under each Helix alias.
pub fn builtin_records() -> Vec<Record> {
    let mut out: Vec<Record> = statemodel::builtins().iter().map(|d| d.to_record()).collect();
    for (helix, _) in HELIX_STATE_MODEL_ALIASES {
        if let Some(def) = resolve_builtin(helix) {
            out.push(def.to_record());
        }
    }
    out
}

impl Admin {
    /// Adds a state model definition (Helix's STATEMODELDEFS record). It is validated
    /// first; its id is its name; one of that name must not exist yet.
    pub async fn add_state_model(&self, cluster: &str, record: &Record) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        validate_name("state model", &record.id)?;
        let def =
            StateModelDefinition::from_record(record).map_err(|errors| AdminError::InvalidStateModel {
                state_model: record.id.clone(),
                errors,
            })?;
        let path = l.state_model(def.name());
        let exists = AdminError::StateModelExists {
            cluster: cluster.to_string(),
            state_model: def.name().to_string(),
        };
        self.commit(
            &format!("adding state model {}", def.name()),
            vec![Guard::cluster(&l), Guard::missing(path.clone(), exists)],
            vec![put(path, record)],
        )
        .await
    }

    /// The names of the cluster's state models.
    pub async fn list_state_models(&self, cluster: &str) -> Result<Vec<String>, AdminError> {
        let l = layout(cluster)?;
        self.require_cluster(&l).await?;
        self.children(&l.state_models()).await
    }

    /// A state model's record, as stored.
    pub async fn state_model(&self, cluster: &str, name: &str) -> Result<Record, AdminError> {
        let l = layout(cluster)?;
        validate_name("state model", name)?;
        match self.record(&l.state_model(name)).await? {
            Some(r) => Ok(r),
            None => {
                self.require_cluster(&l).await?;
                Err(AdminError::StateModelNotFound {
                    cluster: cluster.to_string(),
                    state_model: name.to_string(),
                })
            }
        }
    }

    /// A state model's definition: the cluster's record, else a built-in of that name.
    pub async fn state_model_definition(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<StateModelDefinition, AdminError> {
        let l = layout(cluster)?;
        let path = l.state_model(name);
        match self.record(&path).await? {
            Some(r) => {
                StateModelDefinition::from_record(&r).map_err(|errors| AdminError::InvalidStateModel {
                    state_model: name.to_string(),
                    errors,
                })
            }
            None => resolve_builtin(name).ok_or_else(|| AdminError::StateModelNotFound {
                cluster: cluster.to_string(),
                state_model: name.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helix_names_resolve_to_strand_built_ins() {
        let helix = resolve_builtin("STORAGE_DEFAULT_SM_SCHEMATA").unwrap();
        assert_eq!(helix.name(), "STORAGE_DEFAULT_SM_SCHEMATA");
        assert_eq!(helix.top_state(), "MASTER");
        assert_eq!(
            helix.states(),
            resolve_builtin("StorageSchemata").unwrap().states()
        );
        assert!(resolve_builtin("NoSuchModel").is_none());
    }

    #[test]
    fn a_new_cluster_gets_every_built_in_and_the_helix_alias() {
        let names: Vec<String> = builtin_records().into_iter().map(|r| r.id).collect();
        for n in [
            "MasterSlave",
            "LeaderStandby",
            "OnlineOffline",
            "STORAGE_DEFAULT_SM_SCHEMATA",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
        for r in builtin_records() {
            StateModelDefinition::from_record(&r).unwrap();
        }
    }
}
