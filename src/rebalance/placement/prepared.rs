//! What placement derives from names alone: the canonical orders of partitions and
//! instances, the previous lists as indices, and the tie-breaking hashes. [`place`] prepares
//! them on every call; [`super::super::Engine`] keeps them across rounds for a resource whose
//! ideal state did not change, while only instances' liveness did.
//!
//! [`place`]: super::place

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use super::super::cluster::Fnv;
use super::{hash2, PlacementInput};

/// Placement's name-derived inputs for one resource, one list of partitions and one list of
/// instances.
///
/// A `Prepared` built from one input is valid for another when the other has the same
/// resource name, the same partitions, and the same instances in the same order with the
/// same names and zones (their liveness, enabling and offline times may differ), as long as
/// no two instances share a name ([`Prepared::reusable`]); its previous lists also need the
/// same `previous` map, else [`Prepared::refresh_previous`].
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Indices into the input's partitions, sorted by name, duplicates dropped.
    pub(super) part_order: Vec<u32>,
    /// Indices into the input's instances, sorted by name (then live, enabled, zone,
    /// weight), duplicate names dropped.
    pub(super) inst_order: Vec<u32>,
    /// Whether no instance was dropped as a duplicate.
    distinct: bool,
    /// Each sorted partition's previous list, as indices into the sorted instances.
    pub(super) prev: Vec<Vec<u32>>,
    /// Per sorted partition: its tie-breaking hash.
    pub(super) part_tie: Vec<u64>,
    /// Per sorted instance: its tie-breaking hash.
    pub(super) inst_tie: Vec<u64>,
    /// Per sorted instance: the rank of its fault zone among the sorted, distinct zones.
    pub(super) zone_rank: Vec<u32>,
    /// Per zone rank: the zone's tie-breaking hash.
    pub(super) zone_tie: Vec<u64>,
}

impl Prepared {
    /// Prepares `input`.
    pub fn new(input: &PlacementInput<'_>) -> Self {
        let mut part_order: Vec<u32> = (0..input.partitions.len() as u32).collect();
        let part = |k: &u32| input.partitions[*k as usize].as_str();
        part_order.sort_unstable_by(|a, b| part(a).cmp(part(b)));
        part_order.dedup_by(|b, a| part(a) == part(b));
        let mut inst_order: Vec<u32> = (0..input.instances.len() as u32).collect();
        let inst = |k: u32| &input.instances[k as usize];
        // Stable: among equal keys, the input's order.
        inst_order.sort_by(|&a, &b| {
            let (a, b) = (inst(a), inst(b));
            (a.name.as_str(), !a.live, !a.enabled, a.fault_zone(), a.weight).cmp(&(
                b.name.as_str(),
                !b.live,
                !b.enabled,
                b.fault_zone(),
                b.weight,
            ))
        });
        let before = inst_order.len();
        inst_order.dedup_by(|b, a| inst(*a).name == inst(*b).name);
        let distinct = inst_order.len() == before;
        let part_tie = part_order
            .iter()
            .map(|&k| hash2(input.resource, part(&k)))
            .collect();
        let inst_tie = inst_order
            .iter()
            .map(|&k| hash2(input.resource, &inst(k).name))
            .collect();
        let mut zones: Vec<&str> = inst_order.iter().map(|&k| inst(k).fault_zone()).collect();
        zones.sort_unstable();
        zones.dedup();
        let zone_rank = inst_order
            .iter()
            .map(|&k| zones.binary_search(&inst(k).fault_zone()).unwrap_or(0) as u32)
            .collect();
        let zone_tie = zones.iter().map(|z| hash2(input.resource, z)).collect();
        let mut prepared = Prepared {
            part_order,
            inst_order,
            distinct,
            prev: Vec::new(),
            part_tie,
            inst_tie,
            zone_rank,
            zone_tie,
        };
        prepared.refresh_previous(input);
        prepared
    }

    /// Whether it may serve another input with the same names (see the type's docs): no
    /// instance name was given twice, so liveness never chose between two of them.
    pub fn reusable(&self) -> bool {
        self.distinct
    }

    /// Turns `input.previous` into the previous lists again.
    pub fn refresh_previous(&mut self, input: &PlacementInput<'_>) {
        let inst_index: HashMap<&str, u32, BuildHasherDefault<Fnv>> = self
            .inst_order
            .iter()
            .enumerate()
            .map(|(i, &k)| (input.instances[k as usize].name.as_str(), i as u32))
            .collect();
        self.prev = previous_lists(
            input.previous,
            self.part_order
                .iter()
                .map(|&k| input.partitions[k as usize].as_str()),
            &inst_index,
        );
    }
}

/// The previous lists of the sorted partitions, as instance indices (unknown names dropped).
fn previous_lists<'p>(
    previous: &BTreeMap<String, Vec<String>>,
    parts: impl ExactSizeIterator<Item = &'p str>,
    inst_index: &HashMap<&str, u32, BuildHasherDefault<Fnv>>,
) -> Vec<Vec<u32>> {
    // Both the partitions and the previous map are in name order: merge them.
    let mut prev: Vec<Vec<u32>> = vec![Vec::new(); parts.len()];
    let mut previous = previous.iter().peekable();
    for (p, name) in parts.enumerate() {
        while previous.next_if(|(k, _)| k.as_str() < name).is_some() {}
        if let Some((_, list)) = previous.next_if(|(k, _)| k.as_str() == name) {
            prev[p] = list
                .iter()
                .filter_map(|n| inst_index.get(n.as_str()).copied())
                .collect();
        }
    }
    prev
}
