//! [`StateModelBuilder`]: Helix's `StateModelDefinition.Builder`, in Rust.

use std::collections::BTreeMap;

use super::{StateModelDefinition, Transition, UpperBound, ValidationError, DROPPED, ERROR};

/// Builds a [`StateModelDefinition`].
///
/// As in Helix, a lower priority number means a higher priority and "no number" means the
/// lowest; items with equal priority keep the order they were added in. `build` adds what
/// Helix adds on its own: DROPPED (and `initial → DROPPED`) when missing, and ERROR with
/// `ERROR → initial` (reset) and `ERROR → DROPPED`.
#[derive(Debug, Clone)]
pub struct StateModelBuilder {
    name: String,
    initial_state: Option<String>,
    states: Vec<(String, u32)>,
    bounds: BTreeMap<String, UpperBound>,
    transitions: Vec<(Transition, u32)>,
    errors: Vec<ValidationError>,
}

impl StateModelBuilder {
    pub(super) fn new(name: impl Into<String>) -> Self {
        StateModelBuilder {
            name: name.into(),
            initial_state: None,
            states: Vec::new(),
            bounds: BTreeMap::new(),
            transitions: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The state replicas start in (required).
    pub fn initial_state(mut self, state: impl Into<String>) -> Self {
        self.initial_state = Some(state.into());
        self
    }

    /// Adds a state with a priority (lower is higher priority).
    pub fn state_with_priority(mut self, state: impl Into<String>, priority: u32) -> Self {
        let state = state.into();
        if self.states.iter().any(|(s, _)| *s == state) {
            self.errors.push(ValidationError::DuplicateState { state });
        } else {
            self.states.push((state, priority));
        }
        self
    }

    /// Adds a state with the lowest priority.
    pub fn state(self, state: impl Into<String>) -> Self {
        self.state_with_priority(state, u32::MAX)
    }

    /// Sets a state's upper bound.
    pub fn upper_bound(mut self, state: impl Into<String>, bound: UpperBound) -> Self {
        self.bounds.insert(state.into(), bound);
        self
    }

    /// Sets a state's bound from Helix's spelling (`"1"`, `"N"`, `"R"`, `"-1"`).
    pub fn dynamic_upper_bound(mut self, state: impl Into<String>, bound: &str) -> Self {
        let state = state.into();
        match UpperBound::parse(bound) {
            Some(b) => {
                self.bounds.insert(state, b);
            }
            None => self.errors.push(ValidationError::InvalidBound {
                state,
                value: bound.to_string(),
            }),
        }
        self
    }

    /// Adds a direct transition with a priority (lower is higher priority).
    pub fn transition_with_priority(
        mut self,
        from: impl Into<String>,
        to: impl Into<String>,
        priority: u32,
    ) -> Self {
        let t = Transition::new(from, to);
        if !self.transitions.iter().any(|(x, _)| *x == t) {
            self.transitions.push((t, priority));
        }
        self
    }

    /// Adds a direct transition with the lowest priority.
    pub fn transition(self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.transition_with_priority(from, to, u32::MAX)
    }

    /// Validates and builds the definition; every broken rule is reported.
    pub fn build(self) -> Result<StateModelDefinition, Vec<ValidationError>> {
        let errors = self.errors;
        let initial = self.initial_state.unwrap_or_default();
        let mut states = self.states;
        states.sort_by_key(|(_, p)| *p); // stable: ties keep insertion order
        let mut states: Vec<String> = states.into_iter().map(|(s, _)| s).collect();
        let mut transitions = self.transitions;
        transitions.sort_by_key(|(_, p)| *p);
        let mut transitions: Vec<Transition> = transitions.into_iter().map(|(t, _)| t).collect();
        let mut bounds = self.bounds;

        if !initial.is_empty() {
            if !states.contains(&DROPPED.to_string()) {
                states.push(DROPPED.into());
            }
            let to_dropped = Transition::new(&initial, DROPPED);
            if !transitions.contains(&to_dropped) {
                transitions.push(to_dropped);
            }
        }
        add_error_state(&mut states, &mut transitions, &mut bounds, &initial);
        StateModelDefinition::assemble(self.name, initial, states, bounds, transitions, None, errors)
    }
}

/// ERROR is always a state, with reset (`ERROR → initial`) and `ERROR → DROPPED`.
pub(super) fn add_error_state(
    states: &mut Vec<String>,
    transitions: &mut Vec<Transition>,
    bounds: &mut BTreeMap<String, UpperBound>,
    initial: &str,
) {
    if !states.iter().any(|s| s == ERROR) {
        states.push(ERROR.into());
    }
    for b in [DROPPED, ERROR] {
        if states.iter().any(|s| s == b) {
            bounds.entry(b.into()).or_insert(UpperBound::Unbounded);
        }
    }
    if initial.is_empty() || !states.iter().any(|s| s == initial) {
        return; // reported as a missing or unknown initial state, not as a bad transition
    }
    for to in [initial, DROPPED] {
        let t = Transition::new(ERROR, to);
        if states.iter().any(|s| s == to) && !transitions.contains(&t) {
            transitions.push(t);
        }
    }
}
