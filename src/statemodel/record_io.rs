//! Import and export in Helix's STATEMODELDEFS record form.
//!
//! ```text
//!   simpleFields  INITIAL_STATE
//!   listFields    STATE_PRIORITY_LIST, STATE_TRANSITION_PRIORITYLIST ("FROM-TO")
//!   mapFields     <STATE>.meta {count: 1|N|R|-1},  <STATE>.next {to: next hop}
//! ```

use std::collections::BTreeMap;

use super::builder::add_error_state;
use super::{StateModelDefinition, Transition, UpperBound, ValidationError, ERROR};
use crate::model::Record;

const INITIAL_STATE: &str = "INITIAL_STATE";
const STATE_PRIORITY_LIST: &str = "STATE_PRIORITY_LIST";
const STATE_TRANSITION_PRIORITYLIST: &str = "STATE_TRANSITION_PRIORITYLIST";

impl StateModelDefinition {
    /// Reads a STATEMODELDEFS record. Every broken rule is reported, not just the first.
    ///
    /// When the record has `<STATE>.next` maps they are the next-hop table (and a state's
    /// direct transitions are the entries whose hop is the destination itself); otherwise
    /// the transition priority list defines the transitions and the table is computed.
    pub fn from_record(record: &Record) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let name = record.id.clone();
        let initial = record.simple(INITIAL_STATE).unwrap_or("").trim().to_string();
        let mut states: Vec<String> = record.list(STATE_PRIORITY_LIST).unwrap_or(&[]).to_vec();

        let mut bounds = BTreeMap::new();
        for (key, meta) in &record.map_fields {
            if let Some(state) = key.strip_suffix(".meta") {
                if let Some(count) = meta.get("count") {
                    match UpperBound::parse(count) {
                        Some(b) => {
                            bounds.insert(state.to_string(), b);
                        }
                        None => errors.push(ValidationError::InvalidBound {
                            state: state.into(),
                            value: count.clone(),
                        }),
                    }
                }
            }
        }

        let priority_list: Vec<Transition> = record
            .list(STATE_TRANSITION_PRIORITYLIST)
            .unwrap_or(&[])
            .iter()
            .map(|entry| split_transition(entry, &states))
            .collect();

        let mut next: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (key, hops) in &record.map_fields {
            if let Some(state) = key.strip_suffix(".next") {
                next.insert(state.to_string(), hops.clone());
            }
        }

        let (mut transitions, table) = if next.is_empty() {
            (dedup(priority_list), None)
        } else {
            let direct: Vec<Transition> = next
                .iter()
                .flat_map(|(from, hops)| {
                    hops.iter()
                        .filter(|(to, hop)| to == hop)
                        .map(move |(to, _)| Transition::new(from, to))
                })
                .collect();
            let mut ordered = Vec::new();
            for t in &priority_list {
                if direct.contains(t) {
                    if !ordered.contains(t) {
                        ordered.push(t.clone());
                    }
                } else {
                    errors.push(ValidationError::UnknownTransitionInPriorityList {
                        transition: t.to_string(),
                    });
                }
            }
            let prio = |s: &str| states.iter().position(|x| x == s).unwrap_or(usize::MAX);
            let mut rest: Vec<Transition> = direct
                .into_iter()
                .filter(|t| !ordered.contains(t) && t.from != ERROR)
                .collect();
            rest.sort_by_key(|t| (prio(&t.from), prio(&t.to), t.clone()));
            ordered.extend(rest);
            (ordered, Some(next))
        };
        let erroring: Vec<Transition> = table
            .as_ref()
            .and_then(|t| t.get(ERROR))
            .map(|hops| {
                hops.iter()
                    .filter(|(to, hop)| to == hop)
                    .map(|(to, _)| Transition::new(ERROR, to))
                    .collect()
            })
            .unwrap_or_default();
        add_error_state(&mut states, &mut transitions, &mut bounds, &initial);
        for t in erroring {
            if !transitions.contains(&t) {
                transitions.push(t);
            }
        }
        let table = table.map(|mut table| {
            if states.contains(&initial) {
                let row = table.entry(ERROR.to_string()).or_default();
                for to in [initial.as_str(), super::DROPPED]
                    .into_iter()
                    .filter(|to| states.iter().any(|s| s == to))
                {
                    row.entry(to.to_string()).or_insert_with(|| to.to_string());
                }
            }
            table
        });
        StateModelDefinition::assemble(name, initial, states, bounds, transitions, table, errors)
    }

    /// Writes the definition as a STATEMODELDEFS record, as Helix stores it.
    pub fn to_record(&self) -> Record {
        let mut r = Record::new(&self.name);
        r.set_simple(INITIAL_STATE, &self.initial_state);
        r.list_fields
            .insert(STATE_PRIORITY_LIST.into(), self.states.clone());
        r.list_fields.insert(
            STATE_TRANSITION_PRIORITYLIST.into(),
            self.transitions
                .iter()
                .filter(|t| t.from != ERROR)
                .map(Transition::to_string)
                .collect(),
        );
        for state in &self.states {
            let meta = BTreeMap::from([("count".to_string(), self.upper_bound(state).as_helix())]);
            r.map_fields.insert(format!("{state}.meta"), meta);
            if let Some(hops) = self.next.get(state) {
                r.map_fields.insert(format!("{state}.next"), hops.clone());
            }
        }
        r
    }
}

/// Splits `FROM-TO`, preferring a split whose halves are both known states (state names
/// may themselves contain `-`).
fn split_transition(entry: &str, states: &[String]) -> Transition {
    let entry = entry.trim();
    let known = |s: &str| states.iter().any(|x| x == s);
    for (i, _) in entry.match_indices('-') {
        let (from, to) = (&entry[..i], &entry[i + 1..]);
        if known(from) && known(to) {
            return Transition::new(from, to);
        }
    }
    match entry.split_once('-') {
        Some((from, to)) => Transition::new(from, to),
        None => Transition::new(entry, ""),
    }
}

fn dedup(list: Vec<Transition>) -> Vec<Transition> {
    let mut out: Vec<Transition> = Vec::with_capacity(list.len());
    for t in list {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}
