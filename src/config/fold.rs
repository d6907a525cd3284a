//! The state a config subscription keeps: the watched records as of the last event applied,
//! so each store event becomes key-level changes with their old values. Pure.
//!
//! ```text
//!   start now       : records = range(prefix) at r, events from r + 1
//!   start from r    : records = {} at 0, events from 1; changes below r are folded silently
//!   event (rev, path, put | delete) ─► diff(records[path], new) ─► filter ─► changes
//! ```

use std::collections::BTreeMap;

use super::diff::{diff_record, ConfigChange, ConfigFilter};
use crate::model::Record;
use crate::propertystore::{Event, EventKind, Record as StoredRecord};

/// The watched config records and what is delivered.
#[derive(Debug, Clone)]
pub struct ConfigFold {
    filter: ConfigFilter,
    records: BTreeMap<String, Record>,
    /// Changes below this revision update the records but are not delivered.
    deliver_from: u64,
    /// Records that could not be decoded, as (revision, path, reason), for the shell to log.
    malformed: Vec<(u64, String, String)>,
}

/// A stored value as a record: empty (a directory key) or malformed values count as no record,
/// and a malformed one is reported.
fn decode(value: &[u8]) -> Result<Option<Record>, String> {
    Record::from_stored(value).map_err(|e| e.to_string())
}

impl ConfigFold {
    /// A fold that starts from `records` (as read at the revision before `deliver_from`) and
    /// delivers every change from `deliver_from` on.
    pub fn new(filter: ConfigFilter, records: BTreeMap<String, Record>, deliver_from: u64) -> Self {
        ConfigFold {
            filter,
            records,
            deliver_from,
            malformed: Vec::new(),
        }
    }

    /// A fold from range-read entries (store values).
    pub fn from_range(filter: ConfigFilter, entries: &[(String, StoredRecord)], deliver_from: u64) -> Self {
        let mut fold = ConfigFold::new(filter, BTreeMap::new(), deliver_from);
        for (path, stored) in entries {
            fold.set(stored.stat.mod_revision, path, &stored.value);
        }
        fold
    }

    fn set(&mut self, revision: u64, path: &str, value: &[u8]) -> Option<Record> {
        let new = match decode(value) {
            Ok(r) => r,
            Err(reason) => {
                self.malformed.push((revision, path.to_string(), reason));
                None
            }
        };
        match new {
            Some(r) => self.records.insert(path.to_string(), r),
            None => self.records.remove(path),
        }
    }

    /// The first revision whose changes are delivered.
    pub fn deliver_from(&self) -> u64 {
        self.deliver_from
    }

    /// The subscription's filter.
    pub fn filter(&self) -> &ConfigFilter {
        &self.filter
    }

    /// Applies one store event; returns the wanted changes it made (none below the delivery
    /// revision).
    pub fn apply(&mut self, event: &Event) -> Vec<ConfigChange> {
        let old = match &event.kind {
            EventKind::Put { value, .. } => self.set(event.revision, &event.path, value),
            EventKind::Delete => self.records.remove(&event.path),
        };
        if event.revision < self.deliver_from {
            return Vec::new();
        }
        let new = self.records.get(&event.path);
        let mut changes = diff_record(
            self.filter.cluster(),
            &event.path,
            old.as_ref(),
            new,
            event.revision,
        );
        changes.retain(|c| self.filter.matches(c));
        changes
    }

    /// Records that could not be decoded since the last call.
    pub fn take_malformed(&mut self) -> Vec<(u64, String, String)> {
        std::mem::take(&mut self.malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::ConfigScopeType;
    use crate::propertystore::Stat;

    const STAT: Stat = Stat {
        version: 1,
        create_revision: 1,
        mod_revision: 1,
    };

    fn put(revision: u64, path: &str, simple: &[(&str, &str)]) -> Event {
        let mut r = Record::new("x");
        for (k, v) in simple {
            r.simple_fields.insert(k.to_string(), v.to_string());
        }
        Event {
            revision,
            path: path.into(),
            kind: EventKind::Put {
                value: r.to_bytes(),
                stat: STAT,
            },
        }
    }

    fn participants() -> ConfigFilter {
        ConfigFilter::Kind {
            cluster: "C".into(),
            kind: ConfigScopeType::Participant,
        }
    }

    #[test]
    fn a_replay_from_revision_one_delivers_only_from_the_resume_point_with_true_old_values() {
        let p = "/C/CONFIGS/PARTICIPANT/h_1";
        let events = [
            put(1, p, &[("k", "a")]),
            put(2, p, &[("k", "b")]),
            put(3, p, &[("k", "c")]),
        ];
        let mut fold = ConfigFold::new(participants(), BTreeMap::new(), 3);
        let out: Vec<_> = events.iter().flat_map(|e| fold.apply(e)).collect();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].old.as_deref(), out[0].new.as_deref(), out[0].revision),
            (Some("b"), Some("c"), 3)
        );
    }

    #[test]
    fn deletes_directory_keys_and_other_scopes_are_handled() {
        let p = "/C/CONFIGS/PARTICIPANT/h_1";
        let mut fold = ConfigFold::new(participants(), BTreeMap::new(), 0);
        assert_eq!(fold.apply(&put(1, p, &[("k", "a")])).len(), 1);
        // A cluster-scope record is not watched by this filter.
        assert!(fold
            .apply(&put(2, "/C/CONFIGS/CLUSTER/C", &[("k", "a")]))
            .is_empty());
        let gone = fold.apply(&Event {
            revision: 3,
            path: p.into(),
            kind: EventKind::Delete,
        });
        assert_eq!(gone[0].old.as_deref(), Some("a"));
        assert_eq!(gone[0].new, None);
        // A directory key (empty value) is no record.
        let dir = Event {
            revision: 4,
            path: "/C/CONFIGS/PARTICIPANT".into(),
            kind: EventKind::Put {
                value: Vec::new(),
                stat: STAT,
            },
        };
        assert!(fold.apply(&dir).is_empty());
    }

    #[test]
    fn a_malformed_record_counts_as_empty_and_is_reported() {
        let p = "/C/CONFIGS/PARTICIPANT/h_1";
        let mut fold = ConfigFold::new(participants(), BTreeMap::new(), 0);
        fold.apply(&put(1, p, &[("k", "a")]));
        let bad = Event {
            revision: 2,
            path: p.into(),
            kind: EventKind::Put {
                value: b"{not json".to_vec(),
                stat: STAT,
            },
        };
        let out = fold.apply(&bad);
        assert_eq!(out[0].new, None);
        let malformed = fold.take_malformed();
        assert_eq!(malformed.len(), 1);
        assert_eq!(malformed[0].1, p);
    }
}
