//! The client cache: a moka map of records with the revision they were read at, filled by
//! reads and the client's own acknowledged writes, and kept coherent by a watch of `/`. An
//! entry is served only when it, or the watch's progress, is at least the client's last
//! acknowledged revision.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::ops::compute::Op as CacheOp;

use super::watcher::WATCH_WAIT;
use super::{ClientError, Inner, PropertyStore};
use crate::propertystore::core::{EventKind, Record};
use crate::propertystore::protocol::ReadMode;

#[derive(Debug, Clone)]
pub(super) struct CacheEntry {
    record: Option<Arc<Record>>,
    as_of: u64,
}

pub(super) struct Cache {
    pub(super) map: moka::sync::Cache<String, Arc<CacheEntry>>,
    /// Every event up to this revision has been applied to `map`.
    pub(super) progress: AtomicU64,
    /// Bumped when the cache is cleared; a fill started in an older generation is dropped.
    pub(super) generation: AtomicU64,
    /// The watch has every event after this revision (`u64::MAX`: not started); only reads
    /// at or after it may fill the cache.
    pub(super) start: AtomicU64,
}

impl Cache {
    /// Fills from a read or an own write at `as_of`, if the watch covers what follows it.
    pub(super) fn fill(&self, generation: u64, path: &str, record: Option<Record>, as_of: u64) {
        if self.generation.load(Ordering::Acquire) == generation
            && as_of >= self.start.load(Ordering::Acquire)
        {
            self.offer(path, record.map(Arc::new), as_of);
        }
    }

    pub(super) fn offer(&self, path: &str, record: Option<Arc<Record>>, as_of: u64) {
        self.map
            .entry(path.to_string())
            .and_compute_with(|current| match current {
                Some(e) if e.value().as_of >= as_of => CacheOp::Nop,
                _ => CacheOp::Put(Arc::new(CacheEntry { record, as_of })),
            });
    }
}

impl PropertyStore {
    /// Reads `path` from the cache when it can answer without going back in time: never
    /// older than this client's last acknowledged write. Otherwise reads linearizably and
    /// fills the cache. Without a cache, the same as [`PropertyStore::get`].
    pub async fn cached_get(&self, path: &str) -> Result<Option<Record>, ClientError> {
        Ok(self
            .cached_get_shared(path)
            .await?
            .map(|r| Arc::try_unwrap(r).unwrap_or_else(|r| (*r).clone())))
    }

    /// [`PropertyStore::cached_get`] returning the record shared with the cache: a hit
    /// allocates nothing.
    pub async fn cached_get_shared(&self, path: &str) -> Result<Option<Arc<Record>>, ClientError> {
        let Some(cache) = &self.inner.cache else {
            return Ok(self.get(path).await?.map(Arc::new));
        };
        if let Some(hit) = self.cache_lookup(path) {
            return Ok(hit);
        }
        let generation = cache.generation.load(Ordering::Acquire);
        let (record, revision) = self.get_with(path, ReadMode::Linearizable).await?;
        let record = record.map(Arc::new);
        if cache.generation.load(Ordering::Acquire) == generation
            && revision >= cache.start.load(Ordering::Acquire)
        {
            cache.offer(path, record.clone(), revision);
        }
        Ok(record)
    }

    /// The cache's answer for `path`, if it has one it may give (no I/O, no allocation).
    pub fn cache_lookup(&self, path: &str) -> Option<Option<Arc<Record>>> {
        let cache = self.inner.cache.as_ref()?;
        let need = self.inner.last_ack.load(Ordering::Acquire);
        let entry = cache.map.get(path)?;
        (entry.as_of >= need || cache.progress.load(Ordering::Acquire) >= need).then(|| entry.record.clone())
    }

    /// The revision up to which the cache's watch has applied every event (0: not started).
    pub fn cache_progress(&self) -> u64 {
        self.inner
            .cache
            .as_ref()
            .map_or(0, |c| c.progress.load(Ordering::Acquire))
    }
}

pub(super) async fn cache_watch(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let client = PropertyStore {
            inner: strong,
            _watcher: None,
        };
        let mut watcher = client.watch("/", 0);
        drop(client);
        // The first poll (no waiting) fixes where the watch starts: the cache may hold
        // what was read at or after that revision.
        watcher.wait = Duration::ZERO;
        let mut first = true;
        loop {
            let r = watcher.next_batch().await;
            let Some(cache) = watcher.client.inner.cache.as_ref() else {
                return;
            };
            match r {
                Ok(events) => {
                    if first {
                        let start = events
                            .first()
                            .map_or(watcher.next, |e| e.revision)
                            .saturating_sub(1);
                        cache.start.store(start, Ordering::Release);
                        watcher.wait = WATCH_WAIT;
                        first = false;
                    }
                    for e in &events {
                        match &e.kind {
                            EventKind::Put { value, stat } => cache.offer(
                                &e.path,
                                Some(Arc::new(Record {
                                    value: value.clone(),
                                    stat: *stat,
                                })),
                                e.revision,
                            ),
                            EventKind::Delete => cache.offer(&e.path, None, e.revision),
                        }
                    }
                    let upto = watcher.next.saturating_sub(1);
                    // Only this task raises it; a clear below resets it to 0.
                    cache.progress.fetch_max(upto, Ordering::AcqRel);
                }
                Err(e) => {
                    // Fell behind the history (or lost the store for long): start over.
                    tracing::debug!(error = %e, "cache watch restarts; cache cleared");
                    cache.start.store(u64::MAX, Ordering::Release);
                    cache.generation.fetch_add(1, Ordering::AcqRel);
                    cache.progress.store(0, Ordering::Release);
                    cache.map.invalidate_all();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            }
            if Arc::strong_count(&watcher.client.inner) <= 1 {
                return;
            }
        }
    }
}
