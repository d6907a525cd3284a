//! [`AppPropertyStore`]: Helix's `HelixPropertyStore` — application data under
//! `/<cluster>/PROPERTYSTORE`, through the store client's moka write-through cache.
//!
//! ```text
//!   app path /a/b ─► AppRoot (validated; cannot leave the folder) ─► /<C>/PROPERTYSTORE/a/b
//!   get      cached read: never older than this client's own last acknowledged write
//!   update   read (cache, then fresh after a conflict) → f(old) → set at the version read
//!            → retried on VersionMismatch; an unknown outcome is returned, never retried
//!   watch    store watch of the key (or subtree) from the revision read when subscribing
//! ```
//!
//! Values are bytes; an application that stores Helix records can use
//! [`crate::model::Record::to_bytes`] and [`crate::model::Record::from_stored`].

use std::sync::Arc;

use super::app_path::AppRoot;
use super::ConfigError;
use crate::propertystore::client::Watcher;
use crate::propertystore::protocol::ReadMode;
use crate::propertystore::{ClientError, EventKind, PropertyStore, Record as StoredRecord, StoreError};

/// How many read-compute-write rounds [`AppPropertyStore::update`] tries.
pub const UPDATE_ATTEMPTS: usize = 1000;

/// A value and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppValue {
    /// The bytes.
    pub value: Vec<u8>,
    /// 1 when created, +1 per write.
    pub version: u64,
    /// The store revision of the last write.
    pub revision: u64,
}

impl AppValue {
    fn from_stored(r: &StoredRecord) -> Self {
        AppValue {
            value: r.value.clone(),
            version: r.stat.version,
            revision: r.stat.mod_revision,
        }
    }
}

/// A change to application data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppChange {
    /// Created or set.
    Put(AppValue),
    /// Deleted.
    Deleted,
}

/// A change at an application path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    /// The application path (`/a/b`).
    pub path: String,
    /// What happened.
    pub change: AppChange,
    /// The store revision of the write.
    pub revision: u64,
}

/// One cluster's application property store. Cheap to clone; clones share the client's
/// cache.
#[derive(Clone)]
pub struct AppPropertyStore {
    store: PropertyStore,
    root: AppRoot,
}

impl std::fmt::Debug for AppPropertyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppPropertyStore")
            .field("root", &self.root)
            .finish()
    }
}

fn store_error(what: &str, path: &str, e: ClientError) -> ConfigError {
    match e {
        ClientError::Store(StoreError::AlreadyExists { .. }) => {
            ConfigError::AlreadyExists { path: path.into() }
        }
        ClientError::Store(StoreError::VersionMismatch { expected, actual, .. }) => {
            ConfigError::VersionMismatch {
                path: path.into(),
                expected,
                actual,
            }
        }
        e => ConfigError::store(format!("{what} {path}"), e),
    }
}

impl AppPropertyStore {
    /// The application property store of `cluster` over `store`.
    pub fn new(store: PropertyStore, cluster: &str) -> Self {
        AppPropertyStore {
            store,
            root: AppRoot::new(cluster),
        }
    }

    /// The value at `path`, if any. Served from the cache when it is at least as new as this
    /// client's last acknowledged write (read-your-writes), else read linearizably.
    pub async fn get(&self, path: &str) -> Result<Option<AppValue>, ConfigError> {
        let key = self.root.key(path)?;
        let r = self
            .store
            .cached_get_shared(&key)
            .await
            .map_err(|e| store_error("reading", path, e))?;
        Ok(r.map(|r| AppValue::from_stored(&r)))
    }

    /// The value at `path`, read linearizably (never from the cache).
    pub async fn get_fresh(&self, path: &str) -> Result<Option<AppValue>, ConfigError> {
        let key = self.root.key(path)?;
        let (r, _) = self
            .store
            .get_with(&key, ReadMode::Linearizable)
            .await
            .map_err(|e| store_error("reading", path, e))?;
        Ok(r.as_ref().map(AppValue::from_stored))
    }

    async fn put(&self, path: &str, value: &[u8], expected: Option<u64>) -> Result<AppValue, ConfigError> {
        let key = self.root.key(path)?;
        let stat = self
            .store
            .set(&key, value, expected)
            .await
            .map_err(|e| store_error("writing", path, e))?;
        Ok(AppValue {
            value: value.to_vec(),
            version: stat.version,
            revision: stat.mod_revision,
        })
    }

    /// Writes `path` (creating it if absent).
    pub async fn set(&self, path: &str, value: &[u8]) -> Result<AppValue, ConfigError> {
        self.put(path, value, None).await
    }

    /// Writes `path` only if it is at `version` (0: only if absent).
    pub async fn set_if(&self, path: &str, value: &[u8], version: u64) -> Result<AppValue, ConfigError> {
        self.put(path, value, Some(version)).await
    }

    /// Creates `path`; [`ConfigError::AlreadyExists`] if it is there.
    pub async fn create(&self, path: &str, value: &[u8]) -> Result<AppValue, ConfigError> {
        let key = self.root.key(path)?;
        let stat = self
            .store
            .create(&key, value)
            .await
            .map_err(|e| store_error("creating", path, e))?;
        Ok(AppValue {
            value: value.to_vec(),
            version: stat.version,
            revision: stat.mod_revision,
        })
    }

    /// Helix's `update` with a `DataUpdater`: `f` gets the current value (`None`: absent) and
    /// returns the new one, which is written only if nobody wrote in between; otherwise `f`
    /// runs again on the newer value. Concurrent updaters lose no update.
    pub async fn update<F>(&self, path: &str, mut f: F) -> Result<AppValue, ConfigError>
    where
        F: FnMut(Option<&[u8]>) -> Vec<u8>,
    {
        let key = self.root.key(path)?;
        let mut fresh = false;
        for _ in 0..UPDATE_ATTEMPTS {
            let current = if fresh {
                self.store.get(&key).await.map(|r| r.map(Arc::new))
            } else {
                self.store.cached_get_shared(&key).await
            }
            .map_err(|e| store_error("reading", path, e))?;
            let version = current.as_ref().map_or(0, |r| r.stat.version);
            let new = f(current.as_ref().map(|r| r.value.as_slice()));
            match self.store.set(&key, &new, Some(version)).await {
                Ok(stat) => {
                    return Ok(AppValue {
                        value: new,
                        version: stat.version,
                        revision: stat.mod_revision,
                    })
                }
                Err(ClientError::Store(
                    StoreError::VersionMismatch { .. } | StoreError::AlreadyExists { .. },
                )) => {
                    fresh = true;
                }
                Err(e) => return Err(store_error("updating", path, e)),
            }
        }
        Err(ConfigError::Conflict {
            path: path.into(),
            attempts: UPDATE_ATTEMPTS,
        })
    }

    /// The names of `path`'s children.
    pub async fn children(&self, path: &str) -> Result<Vec<String>, ConfigError> {
        let key = self.root.key(path)?;
        self.store
            .children(&key)
            .await
            .map_err(|e| store_error("listing", path, e))
    }

    /// Removes `path` and everything under it (as Helix's `remove`); returns how many keys
    /// went. Removing `/` empties the application's store.
    pub async fn remove(&self, path: &str) -> Result<u64, ConfigError> {
        let key = self.root.key(path)?;
        self.store
            .delete(&key, None, true)
            .await
            .map_err(|e| store_error("removing", path, e))
    }

    /// Watches `path` (with `subtree`, also everything under it) from now: every change
    /// acknowledged after this returns is seen, in order, none skipped or repeated across
    /// reconnects and store leader changes.
    pub async fn watch(&self, path: &str, subtree: bool) -> Result<AppWatch, ConfigError> {
        let key = self.root.key(path)?;
        let (_, revision) = self
            .store
            .get_with(&key, ReadMode::Linearizable)
            .await
            .map_err(|e| store_error("watching", path, e))?;
        self.watch_from(path, subtree, revision + 1)
    }

    /// Watches `path` (or its subtree) from store revision `from` (an [`AppWatch::resume_revision`]).
    pub fn watch_from(&self, path: &str, subtree: bool, from: u64) -> Result<AppWatch, ConfigError> {
        let key = self.root.key(path)?;
        Ok(AppWatch {
            watcher: self.store.watch(&key, from.max(1)),
            root: self.root.clone(),
            path: path.to_string(),
            key,
            subtree,
        })
    }

    /// Calls `listener` for each change of `path` (or its subtree), in order, from a task;
    /// dropping the handle stops it.
    pub async fn listen<F>(
        &self,
        path: &str,
        subtree: bool,
        mut listener: F,
    ) -> Result<ListenerHandle, ConfigError>
    where
        F: FnMut(AppEvent) + Send + 'static,
    {
        let mut watch = self.watch(path, subtree).await?;
        let task = tokio::spawn(async move {
            loop {
                match watch.next_batch().await {
                    Ok(events) => events.into_iter().for_each(&mut listener),
                    Err(ConfigError::Compacted { from, oldest }) => {
                        tracing::error!(
                            path = watch.path,
                            from,
                            oldest,
                            "listener stopped: history compacted"
                        );
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(path = watch.path, error = %e, "listener: watch failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(ListenerHandle(task))
    }
}

/// Stops its listener when dropped.
#[derive(Debug)]
pub struct ListenerHandle(tokio::task::JoinHandle<()>);

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A watch of an application path or subtree. Dropping it ends it.
pub struct AppWatch {
    watcher: Watcher,
    root: AppRoot,
    path: String,
    key: String,
    subtree: bool,
}

impl std::fmt::Debug for AppWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppWatch")
            .field("path", &self.path)
            .field("subtree", &self.subtree)
            .finish_non_exhaustive()
    }
}

impl AppWatch {
    /// The next changes (whole store revisions), waiting until there is one.
    pub async fn next_batch(&mut self) -> Result<Vec<AppEvent>, ConfigError> {
        loop {
            let events = self
                .watcher
                .next_batch()
                .await
                .map_err(|e| ConfigError::store(format!("watching {}", self.path), e))?;
            let out: Vec<AppEvent> = events
                .into_iter()
                .filter(|e| self.root.covers(&self.key, self.subtree, &e.path))
                .filter_map(|e| {
                    let path = self.root.app_path(&e.path)?;
                    let change = match e.kind {
                        EventKind::Put { value, stat } => AppChange::Put(AppValue {
                            value,
                            version: stat.version,
                            revision: stat.mod_revision,
                        }),
                        EventKind::Delete => AppChange::Deleted,
                    };
                    Some(AppEvent {
                        path,
                        change,
                        revision: e.revision,
                    })
                })
                .collect();
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// Where a later watch continues with nothing skipped or repeated.
    pub fn resume_revision(&self) -> u64 {
        self.watcher.next_revision()
    }
}
