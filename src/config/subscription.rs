//! [`ConfigSubscription`]: config changes of a scope (or of every scope of a kind) in store
//! order, from now or from a revision, over the store's resumable watch.
//!
//! ```text
//!   ConfigStart::Now      range(prefix) at r ─► fold ─┐
//!   ConfigStart::From(r)  {} at 0, watch from 1 ──────┤   (changes below r folded silently)
//!                                                     ▼
//!   Watcher (resumes on any replica, whole revisions) ─► fold.apply ─► changes, in order
//! ```
//!
//! The watcher resumes from the last revision it saw across reconnects and store leader
//! changes, so nothing is skipped or repeated. [`ConfigSubscription::resume_revision`] is
//! where a new subscription continues without a gap after this one is dropped (a process
//! restart): `ConfigStart::From` replays the watched records' history from revision 1 to
//! rebuild the old values, so it fails with [`ConfigError::Compacted`] once that history was
//! compacted.

use std::collections::VecDeque;

use super::diff::{ConfigChange, ConfigFilter};
use super::fold::ConfigFold;
use super::ConfigError;
use crate::propertystore::client::Watcher;
use crate::propertystore::PropertyStore;

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigStart {
    /// Changes after the current state (read when subscribing).
    Now,
    /// Every change at this revision or later (a previous subscription's
    /// [`ConfigSubscription::resume_revision`]).
    From(u64),
}

/// A subscription to config changes. Dropping it ends it.
pub struct ConfigSubscription {
    fold: ConfigFold,
    watcher: Watcher,
    pending: VecDeque<ConfigChange>,
}

impl std::fmt::Debug for ConfigSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSubscription")
            .field("filter", self.fold.filter())
            .field("next_revision", &self.watcher.next_revision())
            .finish_non_exhaustive()
    }
}

impl ConfigSubscription {
    pub(super) async fn open(
        store: &PropertyStore,
        filter: ConfigFilter,
        start: ConfigStart,
    ) -> Result<ConfigSubscription, ConfigError> {
        let prefix = filter.prefix();
        let (fold, from) = match start {
            ConfigStart::Now => {
                let path = prefix.trim_end_matches('/');
                let (entries, revision) = store
                    .range(path)
                    .await
                    .map_err(|e| ConfigError::store(format!("reading {path}"), e))?;
                (
                    ConfigFold::from_range(filter, &entries, revision + 1),
                    revision + 1,
                )
            }
            ConfigStart::From(r) => (ConfigFold::new(filter, Default::default(), r), 1),
        };
        Ok(ConfigSubscription {
            fold,
            watcher: store.watch(&prefix, from),
            pending: VecDeque::new(),
        })
    }

    /// The changes of the next revisions that have any (whole revisions: every change one
    /// transaction made comes in one batch). Waits until there is one.
    pub async fn next_batch(&mut self) -> Result<Vec<ConfigChange>, ConfigError> {
        if !self.pending.is_empty() {
            return Ok(self.pending.drain(..).collect());
        }
        loop {
            let events = self
                .watcher
                .next_batch()
                .await
                .map_err(|e| ConfigError::store(format!("watching {}", self.fold.filter()), e))?;
            let mut out = Vec::new();
            for event in &events {
                out.extend(self.fold.apply(event));
            }
            for (revision, path, reason) in self.fold.take_malformed() {
                tracing::warn!(
                    revision,
                    path,
                    reason,
                    "a config record is malformed; read as empty"
                );
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// The next change. A revision can hold several changes (one transaction); resuming
    /// after only part of one was returned repeats that part — use
    /// [`ConfigSubscription::next_batch`] where that matters.
    pub async fn next(&mut self) -> Result<ConfigChange, ConfigError> {
        loop {
            if let Some(c) = self.pending.pop_front() {
                return Ok(c);
            }
            let batch = self.next_batch().await?;
            self.pending.extend(batch);
        }
    }

    /// Where a later subscription continues with no change skipped or repeated: the first
    /// revision whose changes were not all returned yet.
    pub fn resume_revision(&self) -> u64 {
        match self.pending.front() {
            Some(c) => c.revision,
            // While replaying towards `From(r)` the watch is still below r.
            None => self.watcher.next_revision().max(self.fold.deliver_from()),
        }
    }

    /// What the subscription selects.
    pub fn filter(&self) -> &ConfigFilter {
        self.fold.filter()
    }
}
