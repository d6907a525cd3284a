//! The routing table: external views indexed for lookups by (resource, partition, state).

use std::collections::BTreeMap;

use crate::model::ExternalView;

/// An immutable snapshot of a cluster's external views.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingTable {
    views: BTreeMap<String, ExternalView>,
    revision: u64,
}

impl RoutingTable {
    /// A table over `views` (resource → external view) as of store `revision`.
    pub fn new(views: BTreeMap<String, ExternalView>, revision: u64) -> Self {
        RoutingTable { views, revision }
    }

    /// The store revision the table reflects.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The resources.
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.views.keys().map(String::as_str)
    }

    /// A resource's whole external view.
    pub fn external_view(&self, resource: &str) -> Option<&ExternalView> {
        self.views.get(resource)
    }

    /// Instances holding `partition` of `resource` in `state`, by name.
    pub fn instances(&self, resource: &str, partition: &str, state: &str) -> Vec<String> {
        self.views
            .get(resource)
            .and_then(|ev| ev.state_map(partition))
            .map(|m| {
                m.iter()
                    .filter(|(_, s)| *s == state)
                    .map(|(i, _)| i.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// partition → {instance → state} of a resource.
    pub fn states(&self, resource: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        self.views
            .get(resource)
            .map(|ev| ev.record.map_fields.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_by_state() {
        let mut ev = ExternalView::create("db");
        ev.set_state("db_0", "a", "MASTER");
        ev.set_state("db_0", "b", "SLAVE");
        ev.set_state("db_0", "c", "SLAVE");
        let t = RoutingTable::new(BTreeMap::from([("db".to_string(), ev)]), 9);
        assert_eq!(t.instances("db", "db_0", "MASTER"), ["a"]);
        assert_eq!(t.instances("db", "db_0", "SLAVE"), ["b", "c"]);
        assert!(t.instances("db", "db_1", "SLAVE").is_empty());
        assert!(t.instances("x", "db_0", "SLAVE").is_empty());
        assert_eq!(t.revision(), 9);
    }
}
