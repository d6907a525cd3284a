//! Which partitions each instance holds in one resource's current states: what a patch
//! ([`super::plan`]) reads to find the partitions a changed instance holds without reading
//! every holder of every partition.

use std::collections::BTreeMap;

use super::pipeline::Cluster;

/// partition → {instance → state}, as a resource snapshot lists its current states.
type CurrentStates = BTreeMap<String, BTreeMap<String, String>>;

/// Per configured instance, the partitions it holds a replica of (in any state, live or
/// not) in one resource's current states. It describes one value of those current states:
/// its owner updates it with every partition whose holders changed.
#[derive(Debug, Clone, Default)]
pub(super) struct Holdings {
    /// By index into the instances sorted by name ([`Cluster::index`]): partitions, sorted.
    by_instance: Vec<Vec<String>>,
}

impl Holdings {
    /// The holdings of `current` (holders that are not configured instances are left out:
    /// only configured instances change liveness).
    pub fn of(cluster: &Cluster<'_>, current: &CurrentStates) -> Self {
        let mut by_instance = vec![Vec::new(); cluster.instances.len()];
        // In partition order: every list is built sorted.
        for (p, holders) in current {
            for i in holders.keys() {
                if let Some(&k) = cluster.index.get(i.as_str()) {
                    by_instance[k].push(p.clone());
                }
            }
        }
        Holdings { by_instance }
    }

    /// The partitions instance `k` holds.
    pub fn held_by(&self, k: usize) -> &[String] {
        self.by_instance.get(k).map_or(&[], Vec::as_slice)
    }

    /// Partition `p`'s holders changed from `before` to `after`.
    pub fn update(
        &mut self,
        cluster: &Cluster<'_>,
        p: &str,
        before: Option<&BTreeMap<String, String>>,
        after: Option<&BTreeMap<String, String>>,
    ) {
        let index = |i: &String| cluster.index.get(i.as_str()).copied();
        for k in before.into_iter().flat_map(|h| h.keys()).filter_map(index) {
            let list = &mut self.by_instance[k];
            if let Ok(at) = list.binary_search_by(|q| q.as_str().cmp(p)) {
                list.remove(at);
            }
        }
        for k in after.into_iter().flat_map(|h| h.keys()).filter_map(index) {
            let list = &mut self.by_instance[k];
            if let Err(at) = list.binary_search_by(|q| q.as_str().cmp(p)) {
                list.insert(at, p.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rebalance::{ClusterSnapshot, InstanceInfo};

    fn states(pairs: &[(&str, &[&str])]) -> CurrentStates {
        pairs
            .iter()
            .map(|(p, hs)| {
                let holders = hs.iter().map(|h| (h.to_string(), "SLAVE".to_string())).collect();
                (p.to_string(), holders)
            })
            .collect()
    }

    #[test]
    fn updated_holdings_equal_the_holdings_of_the_new_states() {
        let snap = ClusterSnapshot {
            instances: ["c", "a", "b"].into_iter().map(InstanceInfo::new).collect(),
            ..Default::default()
        };
        let cluster = Cluster::new(&snap).unwrap();
        let before = states(&[("p1", &["a", "b"]), ("p2", &["b", "zz"]), ("p3", &["c"])]);
        let after = states(&[("p0", &["c"]), ("p1", &["a"]), ("p3", &["c", "b"])]);
        let mut h = Holdings::of(&cluster, &before);
        assert_eq!(h.held_by(1), ["p1", "p2"]); // b
        for p in ["p0", "p1", "p2", "p3"] {
            h.update(&cluster, p, before.get(p), after.get(p));
        }
        let fresh = Holdings::of(&cluster, &after);
        for k in 0..3 {
            assert_eq!(h.held_by(k), fresh.held_by(k), "instance {k}");
        }
        assert_eq!(h.held_by(2), ["p0", "p3"]); // c
        assert!(h.held_by(7).is_empty());
    }
}
