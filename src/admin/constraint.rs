//! Cluster constraints: Helix's `--setConstraint/--getConstraints/--removeConstraint`,
//! stored as a [`ClusterConstraints`] record at `CONFIGS/CONSTRAINT/<type>`.
//!
//! `set_constraint(C, MESSAGE_CONSTRAINT, id, "MESSAGE_TYPE=STATE_TRANSITION,INSTANCE=.*,
//! CONSTRAINT_VALUE=10")` adds or replaces the mapField `id`; the item is checked the way
//! the engine reads it (known attributes, a bound that is a number, ANY, N or R).

use std::collections::BTreeMap;

use crate::model::{ClusterConstraints, ConstraintItem, ConstraintType, Record};

use super::records::Guard;
use super::{layout, Admin, AdminError};

/// Parses `MESSAGE_CONSTRAINT` or `STATE_CONSTRAINT`.
pub fn parse_constraint_type(text: &str) -> Result<ConstraintType, AdminError> {
    ConstraintType::parse(text).ok_or_else(|| {
        AdminError::invalid(
            format!("constraint type {text:?}"),
            "expected MESSAGE_CONSTRAINT or STATE_CONSTRAINT",
        )
    })
}

fn check_id(id: &str) -> Result<(), AdminError> {
    if id.trim().is_empty() {
        return Err(AdminError::invalid("constraint id", "cannot be empty"));
    }
    Ok(())
}

impl Admin {
    /// Adds or replaces constraint `id` of type `constraint_type` with the given
    /// attributes (Helix's names; `CONSTRAINT_VALUE` is the bound).
    pub async fn set_constraint(
        &self,
        cluster: &str,
        constraint_type: ConstraintType,
        id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        check_id(id)?;
        let mut probe = Record::new(constraint_type.as_str());
        probe.map_fields.insert(id.to_string(), attributes.clone());
        let item = ConstraintItem::from_map(&probe, id, attributes)
            .map_err(|e| AdminError::invalid(format!("constraint {id}"), e.to_string()))?;
        self.update(
            &l.constraint(constraint_type.as_str()),
            || vec![Guard::cluster(&l)],
            |current| {
                let mut c =
                    ClusterConstraints::new(current.unwrap_or_else(|| Record::new(constraint_type.as_str())));
                c.set_item(id, &item);
                Ok(Some(c.record))
            },
        )
        .await
        .map(drop)
    }

    /// The cluster's constraints of a type (an empty record when none is set).
    pub async fn constraints(
        &self,
        cluster: &str,
        constraint_type: ConstraintType,
    ) -> Result<ClusterConstraints, AdminError> {
        let l = layout(cluster)?;
        match self.record(&l.constraint(constraint_type.as_str())).await? {
            Some(r) => Ok(ClusterConstraints::new(r)),
            None => {
                self.require_cluster(&l).await?;
                Ok(ClusterConstraints::create(constraint_type))
            }
        }
    }

    /// Removes constraint `id`; fails if there is no such constraint.
    pub async fn remove_constraint(
        &self,
        cluster: &str,
        constraint_type: ConstraintType,
        id: &str,
    ) -> Result<(), AdminError> {
        let l = layout(cluster)?;
        check_id(id)?;
        let missing = || AdminError::ConstraintNotFound {
            cluster: cluster.to_string(),
            constraint_type: constraint_type.as_str().to_string(),
            id: id.to_string(),
        };
        let result = self
            .update_existing(
                &l.constraint(constraint_type.as_str()),
                || vec![Guard::cluster(&l)],
                missing,
                |r| {
                    if r.map_fields.remove(id).is_none() {
                        return Err(missing());
                    }
                    Ok(true)
                },
            )
            .await;
        match result {
            Err(AdminError::ConstraintNotFound { .. }) => {
                self.require_cluster(&l).await?;
                result.map(drop)
            }
            other => other.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_types_parse_with_a_clear_error() {
        assert_eq!(
            parse_constraint_type("message_constraint").unwrap(),
            ConstraintType::MessageConstraint
        );
        let e = parse_constraint_type("SPEED").unwrap_err();
        assert!(
            e.is_usage() && e.to_string().contains("MESSAGE_CONSTRAINT"),
            "{e}"
        );
    }
}
