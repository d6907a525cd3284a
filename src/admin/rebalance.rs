//! `rebalance C R N`: Helix's `--rebalance`, computed by strand's pure engine.
//!
//! ```text
//!   ideal state + every instance config + the state model
//!        │  compute_rebalance (pure): enabled instances (with the resource's
//!        │  INSTANCE_GROUP_TAG) are the candidates, all counted as up;
//!        │  rebalance::pipeline::rebalance_ideal_state places N replicas per partition
//!        │  (balanced, top states balanced, zone-aware) and assigns the states
//!        ▼
//!   REPLICAS = N; SEMI_AUTO and FULL_AUTO: listFields = preference lists (top state
//!   first) and mapFields = the states; CUSTOMIZED: mapFields only (as Helix)
//! ```
//!
//! With 3 instances, 6 partitions and 3 replicas of MasterSlave every instance gets 2
//! MASTERs and 4 SLAVEs, and each preference list starts with its partition's MASTER.

use std::collections::BTreeSet;

use crate::model::fields::INSTANCE_GROUP_TAG;
use crate::model::{IdealState, InstanceConfig, RebalanceMode};
use crate::rebalance::pipeline::rebalance_ideal_state;
use crate::rebalance::InstanceInfo;
use crate::statemodel::StateModelDefinition;

use super::records::Guard;
use super::{layout, validate_name, Admin, AdminError};

/// The engine's view of a configured instance, counted as up.
fn instance_info(config: &InstanceConfig) -> Result<InstanceInfo, crate::model::RecordError> {
    let mut info = InstanceInfo::new(config.name());
    info.enabled = config.enabled()?;
    info.zone = config.zone().map(String::from);
    info.tags = config.tags().iter().cloned().collect();
    if let Some(w) = config.weight()? {
        info.weight = w;
    }
    info.disabled_partitions = config
        .disabled_partitions()
        .into_iter()
        .map(|(r, parts)| (r, parts.into_iter().collect::<BTreeSet<String>>()))
        .collect();
    Ok(info)
}

/// The ideal state `--rebalance` writes: `replicas` replicas of every partition over the
/// enabled `instances` that carry the resource's `INSTANCE_GROUP_TAG`. Pure.
pub fn compute_rebalance(
    ideal: &IdealState,
    instances: &[InstanceConfig],
    model: &StateModelDefinition,
    replicas: usize,
) -> Result<IdealState, AdminError> {
    let resource = ideal.resource().to_string();
    let fail = |reason: String| AdminError::Rebalance {
        resource: resource.clone(),
        reason,
    };
    if replicas == 0 {
        return Err(AdminError::invalid("replicas", "must be at least 1"));
    }
    let infos = instances
        .iter()
        .map(|c| instance_info(c).map_err(|e| fail(format!("instance {}: {e}", c.name()))))
        .collect::<Result<Vec<_>, _>>()?;
    let tag = ideal.instance_group_tag();
    let candidates = infos.iter().filter(|i| i.enabled && i.has_tag(tag)).count();
    if candidates == 0 {
        return Err(fail(match tag {
            Some(t) => format!("no enabled instance has tag {t}"),
            None => "the cluster has no enabled instance".into(),
        }));
    }
    let mode = ideal.rebalance_mode().map_err(|e| fail(e.to_string()))?;
    let mut basis = ideal.clone();
    if mode == RebalanceMode::Customized {
        // Place as SEMI_AUTO would, then keep only the map, as Helix does.
        basis.record.set_simple(
            crate::model::fields::REBALANCE_MODE,
            RebalanceMode::SemiAuto.as_str(),
        );
    }
    let computed = rebalance_ideal_state(&basis, &infos, replicas, model).map_err(|e| fail(e.to_string()))?;
    let mut out = ideal.clone();
    out.record.set_simple(crate::model::fields::REPLICAS, replicas);
    out.record.map_fields = computed.record.map_fields;
    if mode != RebalanceMode::Customized {
        out.record.list_fields = computed.record.list_fields;
    }
    Ok(out)
}

impl Admin {
    /// Helix's `--rebalance C R N`: sets `REPLICAS` to `replicas` and computes the
    /// preference lists and states over every enabled instance of the cluster (with
    /// `instance_group_tag`, which is then written into the ideal state, only over
    /// instances carrying it). Returns the ideal state written.
    pub async fn rebalance(
        &self,
        cluster: &str,
        resource: &str,
        replicas: usize,
        instance_group_tag: Option<&str>,
    ) -> Result<IdealState, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        if let Some(t) = instance_group_tag {
            validate_name("tag", t)?;
        }
        let ideal = self.ideal_state_of(&l, resource).await?;
        let sm = ideal
            .state_model()
            .map_err(|e| AdminError::record(l.ideal_state(resource), e))?
            .to_string();
        let model = self.state_model_definition(cluster, &sm).await?;
        let configs = self.instance_configs(&l).await?;
        let mut computed: Option<IdealState> = None;
        let written = self
            .update_existing(
                &l.ideal_state(resource),
                || vec![Guard::cluster(&l)],
                || AdminError::ResourceNotFound {
                    cluster: cluster.to_string(),
                    resource: resource.to_string(),
                },
                |record| {
                    let mut current = IdealState::new(record.clone());
                    if let Some(t) = instance_group_tag {
                        current.record.set_simple(INSTANCE_GROUP_TAG, t);
                    }
                    let next = compute_rebalance(&current, &configs, &model, replicas)?;
                    *record = next.record.clone();
                    computed = Some(next);
                    Ok(true)
                },
            )
            .await?;
        Ok(computed.unwrap_or_else(|| IdealState::new(written)))
    }
}
