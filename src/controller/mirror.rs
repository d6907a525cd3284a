//! The leader's in-memory copy of one cluster's keys: loaded by one range read at a
//! revision, kept current by the watch from the next revision, and by the leader's own
//! writes as soon as they are acknowledged.
//!
//! Applying the leader's own acknowledged write before the watch brings it back is safe:
//! the watch delivers every event in revision order, so the same value arrives again later
//! and nothing older can overwrite it (an older event is for a key's earlier revision,
//! which the mirror's `mod_revision` check ignores).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::layout::Key;
use crate::model::{Layout, Record};
use crate::propertystore::{Event, EventKind};

/// One key of the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The parsed record; `None` for an empty (directory) key or one that is not a record.
    pub record: Option<Arc<Record>>,
    /// The raw value.
    pub value: Arc<Vec<u8>>,
    /// The key's version.
    pub version: u64,
    /// The revision that last changed it.
    pub mod_revision: u64,
}

/// The cluster's keys.
#[derive(Debug, Clone)]
pub struct Mirror {
    layout: Layout,
    entries: BTreeMap<String, Entry>,
    /// Every change up to this revision is reflected.
    revision: u64,
}

impl Mirror {
    /// A mirror of `layout`'s cluster from a range read at `revision`.
    pub fn load(layout: Layout, entries: Vec<(String, crate::propertystore::Record)>, revision: u64) -> Self {
        let mut m = Mirror {
            layout,
            entries: BTreeMap::new(),
            revision,
        };
        for (path, r) in entries {
            m.put(path, r.value, r.stat.version, r.stat.mod_revision);
        }
        m
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The revision reflected.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    fn put(&mut self, path: String, value: Vec<u8>, version: u64, mod_revision: u64) {
        if let Some(e) = self.entries.get(&path) {
            if e.mod_revision > mod_revision {
                return;
            }
        }
        let record = Record::from_stored(&value).ok().flatten().map(Arc::new);
        self.entries.insert(
            path,
            Entry {
                record,
                value: Arc::new(value),
                version,
                mod_revision,
            },
        );
    }

    /// Applies watch events; returns whether any of them matters to the pipeline (anything
    /// but external views, controller history and the application's property store).
    pub fn apply(&mut self, events: &[Event]) -> bool {
        let mut relevant = false;
        for e in events {
            if !self.is_mine(&e.path) {
                continue;
            }
            relevant |= self.matters(&e.path);
            match &e.kind {
                EventKind::Put { value, stat } => {
                    self.put(e.path.clone(), value.clone(), stat.version, stat.mod_revision);
                }
                EventKind::Delete => {
                    if self
                        .entries
                        .get(&e.path)
                        .is_some_and(|x| x.mod_revision <= e.revision)
                    {
                        self.entries.remove(&e.path);
                    }
                }
            }
            self.revision = self.revision.max(e.revision);
        }
        relevant
    }

    /// Records the leader's own acknowledged write at `revision`.
    pub fn apply_own_put(&mut self, path: &str, value: Vec<u8>, version: u64, revision: u64) {
        self.put(path.to_string(), value, version, revision);
    }

    /// Records the leader's own acknowledged delete.
    pub fn apply_own_delete(&mut self, path: &str) {
        self.entries.remove(path);
    }

    /// Notes the watch's progress (a batch with no events still moves the revision).
    pub fn advance(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    fn is_mine(&self, path: &str) -> bool {
        path == self.layout.root() || path.starts_with(&format!("{}/", self.layout.root()))
    }

    fn matters(&self, path: &str) -> bool {
        !matches!(
            self.layout.classify(path),
            Some(Key::ExternalView(_)) | Some(Key::Other) | None
        )
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The record at `path`.
    pub fn record(&self, path: &str) -> Option<&Arc<Record>> {
        self.entries.get(path).and_then(|e| e.record.as_ref())
    }

    /// Every entry whose path starts with `prefix`, in order.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        self.entries
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// Every entry, with its kind.
    pub fn classified(&self) -> impl Iterator<Item = (Key<'_>, &Entry)> {
        self.entries
            .iter()
            .filter_map(|(k, e)| self.layout.classify(k).map(|c| (c, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propertystore::Stat;

    fn put(path: &str, value: &str, rev: u64, version: u64) -> Event {
        Event {
            revision: rev,
            path: path.into(),
            kind: EventKind::Put {
                value: value.as_bytes().to_vec(),
                stat: Stat {
                    version,
                    create_revision: rev,
                    mod_revision: rev,
                },
            },
        }
    }

    #[test]
    fn events_apply_in_order_and_own_writes_are_not_undone_by_older_events() {
        let mut m = Mirror::load(Layout::new("C"), Vec::new(), 10);
        assert!(m.apply(&[put("/C/IDEALSTATES/db", "{\"id\":\"db\"}", 11, 1)]));
        assert_eq!(m.record("/C/IDEALSTATES/db").unwrap().id, "db");
        // Another cluster's keys and external views do not trigger rounds.
        assert!(!m.apply(&[put("/CX/IDEALSTATES/db", "{}", 12, 1)]));
        assert!(m.get("/CX/IDEALSTATES/db").is_none());
        assert!(!m.apply(&[put("/C/EXTERNALVIEW/db", "{\"id\":\"db\"}", 13, 1)]));
        m.apply_own_put("/C/INSTANCES/i/MESSAGES/m", b"{\"id\":\"m\"}".to_vec(), 1, 20);
        // An event older than the own write for the same key changes nothing.
        m.apply(&[put("/C/INSTANCES/i/MESSAGES/m", "{\"id\":\"old\"}", 15, 1)]);
        assert_eq!(m.record("/C/INSTANCES/i/MESSAGES/m").unwrap().id, "m");
        m.apply(&[Event {
            revision: 21,
            path: "/C/INSTANCES/i/MESSAGES/m".into(),
            kind: EventKind::Delete,
        }]);
        assert!(m.get("/C/INSTANCES/i/MESSAGES/m").is_none());
        assert_eq!(m.revision(), 21);
        assert_eq!(m.under("/C/").count(), 2);
    }
}
