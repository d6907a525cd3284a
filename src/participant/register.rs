//! Joining a cluster: the checks Helix makes before a participant may connect, where the
//! gossip seeds come from, and the registration of a session in the store.

use std::net::SocketAddr;

use super::ParticipantError;
use crate::model::fields::HELIX_ENABLED;
use crate::model::{layout, InstanceConfig, Layout, LiveInstance, Record};
use crate::propertystore::{ClientError, Cmp, Condition, Op, OpOutcome, PropertyStore, StoreError, Txn};

/// The simple field of a live-instance (or leader) record naming the process's address
/// (QUIC endpoint and gossip).
pub const ADDR_FIELD: &str = "STRAND_ADDR";
/// The simple field of a live-instance record holding the gossip generation the session
/// was registered with: a `MemberDown` of that generation or later ends the session.
pub const GOSSIP_GENERATION_FIELD: &str = "STRAND_GOSSIP_GENERATION";
/// The cluster config field that lets unregistered participants add themselves.
pub const AUTO_JOIN_FIELD: &str = "allowParticipantAutoJoin";

/// A registered session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The session id (the generation in hex).
    pub session: String,
    /// The session's generation.
    pub generation: u64,
    /// The live-instance record as written (its bytes fence our own later deletes).
    pub live_value: Vec<u8>,
    /// The store revision of the registration.
    pub revision: u64,
}

fn record_at(path: &str, value: &[u8]) -> Result<Option<Record>, ParticipantError> {
    Record::from_stored(value).map_err(|e| ParticipantError::Record {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// Checks that the cluster exists and the instance may join; with auto-join, adds the
/// instance config (and its directories) when missing.
pub async fn admit(
    store: &PropertyStore,
    layout: &Layout,
    instance: &str,
    zone: Option<&str>,
    tags: &std::collections::BTreeSet<String>,
) -> Result<(), ParticipantError> {
    let config_path = layout.cluster_config();
    let cluster_config = match store.get(&config_path).await? {
        Some(r) => record_at(&config_path, &r.value)?,
        None => {
            if store.get(&layout.root()).await?.is_none() {
                return Err(ParticipantError::NoCluster {
                    cluster: layout.cluster().to_string(),
                });
            }
            None
        }
    };
    let path = layout.instance_config(instance);
    if store.get(&path).await?.is_some() {
        return Ok(());
    }
    let auto_join = cluster_config
        .as_ref()
        .and_then(|r| r.simple(AUTO_JOIN_FIELD))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !auto_join {
        return Err(ParticipantError::NotRegistered {
            cluster: layout.cluster().to_string(),
            instance: instance.to_string(),
        });
    }
    let mut config = InstanceConfig::create(instance);
    config.record.set_simple(HELIX_ENABLED, true);
    if let Some(z) = zone {
        config.record.set_simple(crate::model::fields::HELIX_ZONE_ID, z);
    }
    if !tags.is_empty() {
        config.record.list_fields.insert(
            crate::model::fields::TAG_LIST.to_string(),
            tags.iter().cloned().collect(),
        );
    }
    let mut success = vec![Op::Create {
        path: path.clone(),
        value: config.record.to_bytes(),
    }];
    let mut conditions = vec![Condition::Missing { path: path.clone() }];
    let base = layout.instance(instance);
    for dir in std::iter::once(String::new()).chain(layout::INSTANCE_DIRS.iter().map(|d| format!("/{d}"))) {
        let p = format!("{base}{dir}");
        if store.get(&p).await?.is_none() {
            conditions.push(Condition::Missing { path: p.clone() });
            success.push(Op::Create {
                path: p,
                value: Vec::new(),
            });
        }
    }
    let written = store
        .txn(Txn {
            conditions,
            success,
            failure: Vec::new(),
        })
        .await?;
    if !written.succeeded {
        // Someone else added it meanwhile; it exists now, which is all we need.
        tracing::debug!(instance, "instance config appeared while auto-joining");
    }
    Ok(())
}

/// Gossip seeds from the store: the leading controllers of the cluster and every live
/// instance's address, except `own_name`.
pub async fn seeds(
    store: &PropertyStore,
    layout: &Layout,
    own_name: &str,
) -> Result<Vec<SocketAddr>, ClientError> {
    let mut out = Vec::new();
    let mut add = |record: Option<Record>| {
        if let Some(r) = record {
            if r.id != own_name {
                if let Some(addr) = r.simple(ADDR_FIELD).and_then(|a| a.parse().ok()) {
                    if !out.contains(&addr) {
                        out.push(addr);
                    }
                }
            }
        }
    };
    if let Some(r) = store.get(&layout.leader()).await? {
        add(Record::from_stored(&r.value).ok().flatten());
    }
    let dir = layout.live_instances();
    for name in store.children(&dir).await? {
        if let Some(r) = store.get(&format!("{dir}/{name}")).await? {
            add(Record::from_stored(&r.value).ok().flatten());
        }
    }
    Ok(out)
}

/// The generation the next session of `instance` takes: above the last one registered and
/// at least the clock's milliseconds. Returns it with the version of the key holding it.
pub async fn next_generation(
    store: &PropertyStore,
    layout: &Layout,
    instance: &str,
    now_ms: u64,
) -> Result<(u64, u64), ClientError> {
    let path = layout.session_generation(instance);
    let (last, version) = match store.get(&path).await? {
        Some(r) => (
            std::str::from_utf8(&r.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0),
            r.stat.version,
        ),
        None => (0, 0),
    };
    Ok((now_ms.max(last.saturating_add(1)).max(1), version))
}

/// Registers a new session: the generation key and `LIVEINSTANCES/<i>` in one transaction
/// conditional on the generation key being unchanged since it was read (two processes
/// with one name cannot both take the same generation).
pub async fn register(
    store: &PropertyStore,
    layout: &Layout,
    instance: &str,
    addr: SocketAddr,
    gossip_generation: u64,
    now_ms: impl Fn() -> u64,
) -> Result<Registered, ParticipantError> {
    for _ in 0..10 {
        let (generation, version) = next_generation(store, layout, instance, now_ms()).await?;
        let session = format!("{generation:x}");
        let mut live = LiveInstance::create(
            instance,
            &session,
            concat!("strand-", env!("CARGO_PKG_VERSION")),
            &crate::entropy::pid_at(hostname()),
        );
        live.record.set_simple(ADDR_FIELD, addr);
        live.record.set_simple(GOSSIP_GENERATION_FIELD, gossip_generation);
        let live_value = live.record.to_bytes();
        let gen_path = layout.session_generation(instance);
        let txn = Txn {
            conditions: vec![Condition::Version {
                path: gen_path.clone(),
                cmp: Cmp::Eq,
                version,
            }],
            success: vec![
                Op::Set {
                    path: gen_path,
                    value: generation.to_string().into_bytes(),
                    expected_version: None,
                },
                Op::Set {
                    path: layout.live_instance(instance),
                    value: live_value.clone(),
                    expected_version: None,
                },
            ],
            failure: Vec::new(),
        };
        let written = store.txn(txn).await?;
        if written.succeeded {
            return Ok(Registered {
                session,
                generation,
                live_value,
                revision: written.revision,
            });
        }
    }
    Err(ParticipantError::Store(ClientError::Store(
        StoreError::VersionMismatch {
            path: layout.session_generation(instance),
            expected: 0,
            actual: 0,
        },
    )))
}

/// Ends our own session in the store if it is still ours (a graceful leave, or the cleanup
/// after a session was lost): deletes `LIVEINSTANCES/<i>` only if it holds `live_value`.
pub async fn unregister(store: &PropertyStore, layout: &Layout, instance: &str, live_value: &[u8]) {
    let path = layout.live_instance(instance);
    let txn = Txn {
        conditions: vec![Condition::Value {
            path: path.clone(),
            cmp: Cmp::Eq,
            value: live_value.to_vec(),
        }],
        success: vec![Op::Delete {
            path,
            expected_version: None,
            recursive: false,
        }],
        failure: Vec::new(),
    };
    if let Err(e) = store.txn(txn).await {
        tracing::debug!(instance, error = %e, "could not end the session in the store");
    }
}

/// Removes the current states of every session of `instance` but `keep`.
pub async fn clear_old_sessions(store: &PropertyStore, layout: &Layout, instance: &str, keep: &str) {
    clear_sessions(store, layout, instance, Some(keep)).await
}

/// Deletes the current states of every session of `instance` but `keep`.
pub async fn clear_sessions(store: &PropertyStore, layout: &Layout, instance: &str, keep: Option<&str>) {
    let dir = layout.current_states(instance);
    let sessions = match store.children(&dir).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(instance, error = %e, "cannot list old sessions");
            return;
        }
    };
    for s in sessions.into_iter().filter(|s| Some(s.as_str()) != keep) {
        let path = format!("{dir}/{s}");
        let txn = Txn {
            conditions: Vec::new(),
            success: vec![Op::Delete {
                path,
                expected_version: None,
                recursive: true,
            }],
            failure: Vec::new(),
        };
        // A session "directory" with no key of its own cannot be deleted as a key; delete its
        // children one by one then.
        if store.txn(txn).await.is_err() {
            if let Ok(resources) = store.children(&format!("{dir}/{s}")).await {
                for r in resources {
                    let _ = store.delete(&format!("{dir}/{s}/{r}"), None, true).await;
                }
            }
        }
    }
}

/// The outcome of a put in a transaction's results, for `path`.
pub fn put_version(ops: &[OpOutcome], path: &str) -> Option<u64> {
    ops.iter().find_map(|o| match o {
        OpOutcome::Put { path: p, stat } if p == path => Some(stat.version),
        _ => None,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
