//! Resetting replicas in ERROR: Helix's `--resetPartition`, `--resetInstance`,
//! `--resetResource`.
//!
//! ```text
//!   LIVEINSTANCES/<i>                       SESSION_ID = s   (not live: refused)
//!   INSTANCES/<i>/CURRENTSTATES/s/<R>       partition P: CURRENT_STATE = ERROR (else refused)
//!   INSTANCES/<i>/MESSAGES/*                none pending for R/P (else refused)
//!        ▼  one transaction, only while the session and the current state are unchanged
//!   INSTANCES/<i>/MESSAGES/<id>             STATE_TRANSITION ERROR → initial state,
//!                                           TGT_SESSION_ID s, SRC_NAME admin
//! ```
//!
//! The participant runs the ERROR → initial transition and the controller takes the
//! replica from there.

use std::collections::BTreeMap;

use crate::model::fields::{SESSION_ID, SRC_NAME};
use crate::model::{CurrentState, Layout, Message};
use crate::statemodel::ERROR;

use super::records::{put, Guard};
use super::{layout, validate_name, Admin, AdminError, ADMIN_SOURCE};

/// Messages per transaction (the store takes 256 operations and conditions).
const MESSAGES_PER_TXN: usize = 200;

/// The message that resets one replica: a `STATE_TRANSITION` from ERROR to the model's
/// initial state for the instance's session `session`, sent by `admin`. Pure.
#[allow(clippy::too_many_arguments)]
pub fn reset_message(
    id: &str,
    now_ms: u64,
    instance: &str,
    session: &str,
    resource: &str,
    partition: &str,
    state_model: &str,
    initial_state: &str,
    factory: Option<&str>,
) -> Result<Message, AdminError> {
    let mut b = Message::state_transition(id)
        .target(instance, session)
        .replica(resource, partition)
        .state_model(state_model)
        .transition(ERROR, initial_state);
    if let Some(f) = factory {
        b = b.factory(f);
    }
    let mut m = b.build(now_ms).map_err(|e| {
        AdminError::invalid(format!("reset message for {resource}/{partition}"), e.to_string())
    })?;
    m.record.set_simple(SRC_NAME, ADMIN_SOURCE);
    Ok(m)
}

impl Admin {
    /// The live session of an instance, and the version of its live-instance key.
    async fn session_of(&self, l: &Layout, instance: &str) -> Result<(String, u64), AdminError> {
        let path = l.live_instance(instance);
        let live = self.read(&path).await?;
        let Some(record) = live.record else {
            return Err(AdminError::InstanceNotLive {
                cluster: l.cluster().to_string(),
                instance: instance.to_string(),
            });
        };
        let session = record
            .simple(SESSION_ID)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                AdminError::record(
                    &path,
                    crate::model::RecordError::missing_field(&record, SESSION_ID),
                )
            })?;
        Ok((session.to_string(), live.version))
    }

    /// Resets `partitions` of `resource` on `instance`: each must be in ERROR in the
    /// instance's current session. Returns the messages written.
    pub async fn reset_partitions(
        &self,
        cluster: &str,
        instance: &str,
        resource: &str,
        partitions: &[String],
    ) -> Result<Vec<Message>, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        if partitions.is_empty() {
            return Err(AdminError::invalid("partitions", "name at least one partition"));
        }
        let name = self.instance_config(cluster, instance).await?.name().to_string();
        let (session, live_version) = self.session_of(&l, &name).await?;
        let cs_path = l.current_state(&name, &session, resource);
        let cs = self.read(&cs_path).await?;
        let ideal = self.record(&l.ideal_state(resource)).await?;
        if cs.record.is_none() && ideal.is_none() {
            self.require_cluster(&l).await?;
            return Err(AdminError::ResourceNotFound {
                cluster: cluster.to_string(),
                resource: resource.to_string(),
            });
        }
        let Some(current) = cs.record.map(CurrentState::new) else {
            return Err(AdminError::NotInError {
                instance: name,
                resource: resource.to_string(),
                partition: partitions[0].clone(),
                state: "not held".into(),
            });
        };
        for p in partitions {
            let state = current.state(p);
            if state != Some(ERROR) {
                return Err(AdminError::NotInError {
                    instance: name.clone(),
                    resource: resource.to_string(),
                    partition: p.clone(),
                    state: state.unwrap_or("not held").to_string(),
                });
            }
        }
        let sm = current
            .state_model()
            .map_err(|e| AdminError::record(&cs_path, e))?
            .to_string();
        let model = self.state_model_definition(cluster, &sm).await?;
        self.check_no_pending(&l, &name, resource, partitions).await?;

        let now = self.now_ms();
        let messages = partitions
            .iter()
            .map(|p| {
                reset_message(
                    &self.next_id(),
                    now,
                    &name,
                    &session,
                    resource,
                    p,
                    &sm,
                    model.initial_state(),
                    current.state_model_factory_name(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in messages.chunks(MESSAGES_PER_TXN) {
            let ops = chunk
                .iter()
                .map(|m| put(l.message(&name, m.id()), &m.record))
                .collect();
            self.commit(
                &format!("resetting {resource} on {name}"),
                vec![
                    Guard::cluster(&l),
                    Guard::version(&l.live_instance(&name), live_version),
                    Guard::version(&cs_path, cs.version),
                ],
                ops,
            )
            .await?;
        }
        Ok(messages)
    }

    async fn check_no_pending(
        &self,
        l: &Layout,
        instance: &str,
        resource: &str,
        partitions: &[String],
    ) -> Result<(), AdminError> {
        let pending = self.pending(l, instance, resource).await?;
        if let Some(p) = partitions.iter().find(|p| pending.contains_key(*p)) {
            return Err(AdminError::PendingMessage {
                instance: instance.to_string(),
                resource: resource.to_string(),
                partition: p.clone(),
                message: pending[p].clone(),
            });
        }
        Ok(())
    }

    /// The partitions of `resource` with a message waiting on `instance`: partition →
    /// message id.
    async fn pending(
        &self,
        l: &Layout,
        instance: &str,
        resource: &str,
    ) -> Result<BTreeMap<String, String>, AdminError> {
        let mut out = BTreeMap::new();
        for id in self.children(&l.messages(instance)).await? {
            let Some(r) = self.record(&l.message(instance, &id)).await? else {
                continue;
            };
            let m = Message::new(r);
            if m.resource_name() == Some(resource) {
                if let Some(p) = m.partition_name() {
                    out.insert(p.to_string(), id);
                }
            }
        }
        Ok(out)
    }

    /// Resets every replica the instance holds in ERROR in its current session (those with
    /// a message already waiting are left to it).
    pub async fn reset_instance(&self, cluster: &str, instance: &str) -> Result<Vec<Message>, AdminError> {
        let l = layout(cluster)?;
        let name = self.instance_config(cluster, instance).await?.name().to_string();
        let (session, _) = self.session_of(&l, &name).await?;
        let mut out = Vec::new();
        for resource in self.children(&l.session_current_states(&name, &session)).await? {
            let errored = self.errored(&l, &name, &session, &resource).await?;
            if !errored.is_empty() {
                out.extend(self.reset_partitions(cluster, &name, &resource, &errored).await?);
            }
        }
        Ok(out)
    }

    /// Resets every replica of the resource in ERROR on every live instance (those with a
    /// message already waiting are left to it).
    pub async fn reset_resource(&self, cluster: &str, resource: &str) -> Result<Vec<Message>, AdminError> {
        let l = layout(cluster)?;
        validate_name("resource", resource)?;
        self.ideal_state_of(&l, resource).await?;
        let mut out = Vec::new();
        for instance in self.children(&l.live_instances()).await? {
            let Ok((session, _)) = self.session_of(&l, &instance).await else {
                continue;
            };
            let errored = self.errored(&l, &instance, &session, resource).await?;
            if !errored.is_empty() {
                out.extend(
                    self.reset_partitions(cluster, &instance, resource, &errored)
                        .await?,
                );
            }
        }
        Ok(out)
    }

    /// The partitions of `resource` in ERROR in the session, without a pending message.
    async fn errored(
        &self,
        l: &Layout,
        instance: &str,
        session: &str,
        resource: &str,
    ) -> Result<Vec<String>, AdminError> {
        let Some(r) = self.record(&l.current_state(instance, session, resource)).await? else {
            return Ok(Vec::new());
        };
        let pending = self.pending(l, instance, resource).await?;
        Ok(CurrentState::new(r)
            .partition_states()
            .into_iter()
            .filter(|(p, s)| s == ERROR && !pending.contains_key(p))
            .map(|(p, _)| p)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_message_goes_from_error_to_the_initial_state() {
        let m = reset_message(
            "m1",
            1_700_000_000_000,
            "localhost_12913",
            "s7",
            "myDB",
            "myDB_0",
            "MasterSlave",
            "OFFLINE",
            None,
        )
        .unwrap();
        let r = &m.record;
        assert_eq!(r.id, "m1");
        assert_eq!(r.simple("MSG_TYPE"), Some("STATE_TRANSITION"));
        assert_eq!(r.simple("MSG_STATE"), Some("new"));
        assert_eq!(r.simple("FROM_STATE"), Some("ERROR"));
        assert_eq!(r.simple("TO_STATE"), Some("OFFLINE"));
        assert_eq!(r.simple("TGT_NAME"), Some("localhost_12913"));
        assert_eq!(r.simple("TGT_SESSION_ID"), Some("s7"));
        assert_eq!(r.simple("SRC_NAME"), Some("admin"));
        assert_eq!(r.simple("PARTITION_NAME"), Some("myDB_0"));
        assert_eq!(r.simple("STATE_MODEL_DEF"), Some("MasterSlave"));
        m.validate().unwrap();
    }
}
