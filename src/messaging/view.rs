//! The sender's copy of a cluster's records, kept by a watch, so resolving criteria costs
//! no store round trip.
//!
//! ```text
//!   range(/<C>) at revision r ──► ClusterView (apply each record) ──► ArcSwap
//!   watch(/<C>/, r+1) ──► apply each event ──► a new ClusterView swapped in
//!   compacted past the watch ──► range again
//! ```
//!
//! [`apply`] decides what a record means for the view (pure); the task only feeds it.

use std::sync::Arc;
use std::time::Duration;

use crate::watch;
use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use super::resolve::{ClusterView, LeaderEntry, LiveEntry, PartitionMap};
use super::MessagingError;
use crate::model::fields::SESSION_ID;
use crate::model::{Layout, Record};
use crate::participant::register::ADDR_FIELD;
use crate::propertystore::{ClientError, EventKind, PropertyStore};

/// Applies the record at `path` (`None`: deleted) to the view.
pub fn apply(view: &mut ClusterView, layout: &Layout, path: &str, record: Option<&Record>) {
    let child = |dir: String| path.strip_prefix(&format!("{dir}/")).map(str::to_string);
    let maps = |r: &Record| -> PartitionMap { r.map_fields.clone() };
    if let Some(name) = child(layout.live_instances()) {
        match record {
            Some(r) => {
                view.live.insert(
                    name,
                    LiveEntry {
                        session: r.simple(SESSION_ID).unwrap_or_default().to_string(),
                        addr: r.simple(ADDR_FIELD).and_then(|a| a.parse().ok()),
                    },
                );
            }
            None => {
                view.live.remove(&name);
            }
        }
    } else if let Some(name) = child(layout.instance_configs()) {
        match record {
            Some(_) => view.instances.insert(name),
            None => view.instances.remove(&name),
        };
    } else if let Some(name) = child(layout.external_views()) {
        match record {
            Some(r) => view.external_views.insert(name, maps(r)),
            None => view.external_views.remove(&name),
        };
    } else if let Some(name) = child(layout.ideal_states()) {
        match record {
            Some(r) => view.ideal_states.insert(name, maps(r)),
            None => view.ideal_states.remove(&name),
        };
    } else if path == layout.leader() {
        view.leader = record.map(|r| LeaderEntry {
            name: r.id.clone(),
            session: r.simple(SESSION_ID).unwrap_or_default().to_string(),
            addr: r.simple(ADDR_FIELD).and_then(|a| a.parse().ok()),
        });
    }
}

/// Whether a path can change the view (so other events are skipped unparsed).
fn relevant(layout: &Layout, path: &str) -> bool {
    [
        layout.live_instances(),
        layout.instance_configs(),
        layout.external_views(),
        layout.ideal_states(),
    ]
    .iter()
    .any(|d| path.starts_with(d.as_str()) && path.as_bytes().get(d.len()) == Some(&b'/'))
        || path == layout.leader()
}

/// A watched view of one cluster. Dropping it stops the watch.
pub struct ViewHandle {
    view: Arc<ArcSwap<ClusterView>>,
    loaded: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Drop for ViewHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn load(store: &PropertyStore, layout: &Layout) -> Result<ClusterView, ClientError> {
    let (entries, revision) = store.range(&layout.root()).await?;
    let mut v = ClusterView {
        cluster: layout.cluster().to_string(),
        revision,
        ..Default::default()
    };
    for (path, r) in entries {
        if relevant(layout, &path) {
            let rec = Record::from_stored(&r.value).ok().flatten();
            apply(&mut v, layout, &path, rec.as_ref());
        }
    }
    Ok(v)
}

impl ViewHandle {
    /// Starts following `cluster`'s records.
    pub fn start(store: PropertyStore, cluster: &str) -> ViewHandle {
        let layout = Layout::new(cluster);
        let view = Arc::new(ArcSwap::from_pointee(ClusterView {
            cluster: cluster.to_string(),
            ..Default::default()
        }));
        let (tx, loaded) = watch::channel(0);
        let shared = view.clone();
        let task = tokio::spawn(async move {
            loop {
                let mut v = match load(&store, &layout).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "messaging: cannot read the cluster; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let revision = v.revision;
                shared.store(Arc::new(v.clone()));
                tx.send_replace(revision.max(1));
                let mut w = store.watch(&format!("{}/", layout.root()), revision + 1);
                loop {
                    match w.next_batch().await {
                        Ok(events) => {
                            let mut changed = false;
                            for e in events {
                                v.revision = e.revision;
                                if !relevant(&layout, &e.path) {
                                    continue;
                                }
                                changed = true;
                                let rec = match &e.kind {
                                    EventKind::Put { value, .. } => Record::from_stored(value).ok().flatten(),
                                    EventKind::Delete => None,
                                };
                                apply(&mut v, &layout, &e.path, rec.as_ref());
                            }
                            if changed {
                                shared.store(Arc::new(v.clone()));
                                tx.send_replace(v.revision);
                            }
                        }
                        Err(ClientError::Store(e)) => {
                            tracing::warn!(error = %e, "messaging: watch compacted; reading the cluster again");
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "messaging: watch failed; resuming");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        });
        ViewHandle { view, loaded, task }
    }

    /// The view now, once it has been loaded (waits at most `timeout` for the first read).
    pub async fn current(&self, timeout: Duration) -> Result<Arc<ClusterView>, MessagingError> {
        let mut loaded = self.loaded.clone();
        let ok = tokio::time::timeout(timeout, loaded.wait_for(|r| *r > 0)).await;
        match ok {
            Ok(Ok(_)) => Ok(self.view.load_full()),
            _ => Err(MessagingError::Store {
                reason: "the cluster's records could not be read in time".into(),
            }),
        }
    }

    /// The view now, loaded or not.
    pub fn now(&self) -> Arc<ClusterView> {
        self.view.load_full()
    }

    /// Store revisions as the view follows them.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.loaded.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_land_in_the_view_and_deletes_remove_them() {
        let l = Layout::new("C");
        let mut v = ClusterView::default();
        let mut live = Record::new("n1");
        live.set_simple(SESSION_ID, "abc");
        live.set_simple(ADDR_FIELD, "127.0.0.1:7000");
        apply(&mut v, &l, &l.live_instance("n1"), Some(&live));
        assert_eq!(v.live["n1"].session, "abc");
        assert_eq!(v.live["n1"].addr, Some("127.0.0.1:7000".parse().unwrap()));
        let mut ev = Record::new("db");
        ev.map_fields
            .entry("db_0".into())
            .or_default()
            .insert("n1".into(), "MASTER".into());
        apply(&mut v, &l, &l.external_view("db"), Some(&ev));
        apply(&mut v, &l, &l.ideal_state("db"), Some(&ev));
        apply(&mut v, &l, &l.instance_config("n1"), Some(&Record::new("n1")));
        let mut leader = Record::new("ctl");
        leader.set_simple(ADDR_FIELD, "127.0.0.1:7001");
        apply(&mut v, &l, &l.leader(), Some(&leader));
        assert_eq!(v.external_views["db"]["db_0"]["n1"], "MASTER");
        assert_eq!(v.ideal_states["db"]["db_0"]["n1"], "MASTER");
        assert!(v.instances.contains("n1"));
        assert_eq!(v.leader.as_ref().unwrap().name, "ctl");
        // A current state is not part of the view.
        assert!(!relevant(&l, &l.current_state("n1", "abc", "db")));
        assert!(!relevant(&l, "/C/LIVEINSTANCESX/n1"));
        for p in [l.live_instance("n1"), l.external_view("db"), l.leader()] {
            assert!(relevant(&l, &p));
            apply(&mut v, &l, &p, None);
        }
        assert!(v.live.is_empty() && v.external_views.is_empty() && v.leader.is_none());
    }
}
