//! Spectators: watch the external views of a cluster and answer "who serves partition p in
//! state s" on a request path without taking a lock.
//!
//! ```text
//!   range(/<C>/EXTERNALVIEW) at revision r ──► routing table (immutable, shared)
//!   watch(/<C>/EXTERNALVIEW/, r+1) ──► new table, swapped in atomically ──► change stream
//!   readers: Spectator::table() clones an Arc (no lock, no allocation beyond it)
//! ```

mod routing;

use std::sync::Arc;
use std::time::Duration;

use crate::watch;
use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

pub use routing::RoutingTable;

use crate::model::{ExternalView, Layout, Record};
use crate::propertystore::{ClientError, EventKind, PropertyStore};

/// Reads a spectator's current table from anywhere (lock-free); clones share it.
#[derive(Clone)]
pub struct TableReader(Arc<ArcSwap<RoutingTable>>);

impl TableReader {
    /// The routing table now.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.0.load_full()
    }
}

/// A running spectator of one cluster. Dropping it stops it.
pub struct Spectator {
    store: PropertyStore,
    cluster: String,
    app_store: crate::config::AppPropertyStore,
    table: Arc<ArcSwap<RoutingTable>>,
    changes: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Spectator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spectator").finish_non_exhaustive()
    }
}

impl Drop for Spectator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Spectator {
    /// Reads the cluster's external views and keeps following them.
    pub async fn connect(store: PropertyStore, cluster: &str) -> Result<Spectator, ClientError> {
        let layout = Layout::new(cluster);
        let dir = layout.external_views();
        let (entries, revision) = store.range(&dir).await?;
        let own_store = store.clone();
        let app_store = crate::config::AppPropertyStore::new(store.clone(), cluster);
        let prefix = format!("{dir}/");
        let mut views = std::collections::BTreeMap::new();
        for (path, r) in entries {
            if let Some(name) = path.strip_prefix(&prefix) {
                if let Ok(Some(rec)) = Record::from_stored(&r.value) {
                    views.insert(name.to_string(), ExternalView::new(rec));
                }
            }
        }
        let table = Arc::new(ArcSwap::from_pointee(RoutingTable::new(views.clone(), revision)));
        let (tx, changes) = watch::channel(revision);
        let shared = table.clone();
        let task = tokio::spawn(async move {
            let mut watcher = store.watch(&prefix, revision + 1);
            loop {
                match watcher.next_batch().await {
                    Ok(events) if events.is_empty() => continue,
                    Ok(events) => {
                        let mut last = revision;
                        for e in events {
                            last = e.revision;
                            let Some(name) = e.path.strip_prefix(&prefix) else {
                                continue;
                            };
                            match e.kind {
                                EventKind::Put { value, .. } => match Record::from_stored(&value) {
                                    Ok(Some(rec)) => {
                                        views.insert(name.to_string(), ExternalView::new(rec));
                                    }
                                    _ => {
                                        views.remove(name);
                                    }
                                },
                                EventKind::Delete => {
                                    views.remove(name);
                                }
                            }
                        }
                        shared.store(Arc::new(RoutingTable::new(views.clone(), last)));
                        tx.send_replace(last);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "spectator watch failed; resuming");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(Spectator {
            store: own_store,
            cluster: cluster.to_string(),
            app_store,
            table,
            changes,
            task,
        })
    }

    /// A messaging handle that sends by criteria from endpoint `transport` (named `name`),
    /// as `SRC_INSTANCE_TYPE` SPECTATOR. Replies come back on the same requests, so a
    /// client endpoint is enough; spectators register no address in the cluster's records,
    /// so criteria cannot address them.
    pub fn messaging(
        &self,
        name: &str,
        transport: Arc<dyn crate::transport::Transport>,
    ) -> Result<crate::messaging::Messaging, crate::messaging::MessagingError> {
        crate::messaging::Messaging::builder(name, &self.cluster, transport, self.store.clone())
            .sender_type("SPECTATOR")
            .build()
    }

    /// The cluster's application property store (`/<C>/PROPERTYSTORE`), sharing this
    /// spectator's store client and cache.
    pub fn property_store(&self) -> &crate::config::AppPropertyStore {
        &self.app_store
    }

    /// The routing table now (a cheap, lock-free snapshot).
    pub fn table(&self) -> Arc<RoutingTable> {
        self.table.load_full()
    }

    /// A cheap, cloneable reader of the table, for other tasks.
    pub fn reader(&self) -> TableReader {
        TableReader(self.table.clone())
    }

    /// Instances serving `partition` of `resource` in `state`, now.
    pub fn instances(&self, resource: &str, partition: &str, state: &str) -> Vec<String> {
        self.table.load().instances(resource, partition, state)
    }

    /// Changes: the store revision of the latest external view change applied.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Waits until `pred` holds for the table, at most `timeout`; returns whether it did.
    pub async fn wait_until(&self, timeout: Duration, mut pred: impl FnMut(&RoutingTable) -> bool) -> bool {
        let mut changes = self.changes.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.table.load()) {
                return true;
            }
            // Checked here too: the select below is biased towards changes.
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                biased;
                r = changes.changed() => if r.is_err() { return pred(&self.table.load()) },
                _ = tokio::time::sleep_until(deadline) => return pred(&self.table.load()),
            }
        }
    }
}
