//! The rules every state model must follow, each with its own clear error.

use std::collections::BTreeSet;

use super::{StateModelDefinition, DROPPED, ERROR};

/// A broken rule of a state model definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The model has no name.
    #[error("the state model has no name")]
    MissingName,
    /// No initial state was given.
    #[error("no initial state (INITIAL_STATE) is given")]
    MissingInitialState,
    /// The initial state is not one of the states.
    #[error("initial state {state} is not one of the states")]
    InitialStateNotAState {
        /// The initial state named.
        state: String,
    },
    /// DROPPED is not one of the states.
    #[error("the states do not include DROPPED")]
    MissingDropped,
    /// A state is listed twice.
    #[error("state {state} is listed more than once")]
    DuplicateState {
        /// The repeated state.
        state: String,
    },
    /// A bound is not a number, `N`, `R` or `-1`.
    #[error("state {state}: upper bound '{value}' is not a number, N or R")]
    InvalidBound {
        /// The state.
        state: String,
        /// The bound given.
        value: String,
    },
    /// A bound is given for a state the model does not have.
    #[error("an upper bound is given for {state}, which is not a state")]
    BoundOnUnknownState {
        /// The state named.
        state: String,
    },
    /// A transition names a state the model does not have.
    #[error("transition {transition} names {state}, which is not a state")]
    UnknownStateInTransition {
        /// The transition.
        transition: String,
        /// The unknown state.
        state: String,
    },
    /// A state has no path to DROPPED.
    #[error("state {state} cannot reach DROPPED")]
    CannotReachDropped {
        /// The state.
        state: String,
    },
    /// A state cannot be reached from the initial state.
    #[error("state {state} cannot be reached from the initial state {initial}")]
    UnreachableFromInitial {
        /// The state.
        state: String,
        /// The initial state.
        initial: String,
    },
    /// The next-hop table names a hop that is not a direct transition.
    #[error("next hop from {from} toward {to} is {hop}, but {from}-{hop} is not a transition")]
    NextHopNotATransition {
        /// Source.
        from: String,
        /// Destination.
        to: String,
        /// The hop named.
        hop: String,
    },
    /// Following the next hops from one state toward another comes back to a state.
    #[error("next hops from {from} toward {to} loop: {path}")]
    NextHopLoop {
        /// Source.
        from: String,
        /// Destination.
        to: String,
        /// The states visited, joined by `→`.
        path: String,
    },
    /// Following the next hops stops at a state with no hop toward the destination.
    #[error("next hops from {from} toward {to} stop at {at}, which has no next hop toward {to}")]
    NextHopDeadEnd {
        /// Source.
        from: String,
        /// Destination.
        to: String,
        /// Where the path stops.
        at: String,
    },
    /// The transition priority list names something that is not a direct transition.
    #[error("transition priority list names {transition}, which is not a direct transition")]
    UnknownTransitionInPriorityList {
        /// The entry.
        transition: String,
    },
}

/// Checks every rule; an empty list means the definition is valid.
pub fn validate(def: &StateModelDefinition) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    if def.name.trim().is_empty() {
        errors.push(ValidationError::MissingName);
    }
    let mut seen = BTreeSet::new();
    for s in &def.states {
        if !seen.insert(s.as_str()) {
            errors.push(ValidationError::DuplicateState { state: s.clone() });
        }
    }
    let initial_ok = if def.initial_state.is_empty() {
        errors.push(ValidationError::MissingInitialState);
        false
    } else if !def.has_state(&def.initial_state) {
        errors.push(ValidationError::InitialStateNotAState {
            state: def.initial_state.clone(),
        });
        false
    } else {
        true
    };
    let dropped_ok = def.has_state(DROPPED);
    if !dropped_ok {
        errors.push(ValidationError::MissingDropped);
    }
    for state in def.bounds.keys() {
        if !def.has_state(state) {
            errors.push(ValidationError::BoundOnUnknownState { state: state.clone() });
        }
    }
    let mut transitions_ok = true;
    for t in &def.transitions {
        for s in [&t.from, &t.to] {
            if !def.has_state(s) {
                transitions_ok = false;
                errors.push(ValidationError::UnknownStateInTransition {
                    transition: t.to_string(),
                    state: s.clone(),
                });
            }
        }
    }
    let table_ok = check_next_hops(def, &mut errors);
    if !(transitions_ok && table_ok) {
        return errors;
    }
    if dropped_ok {
        for s in &def.states {
            if s != DROPPED && def.next_hop(s, DROPPED).is_none() {
                errors.push(ValidationError::CannotReachDropped { state: s.clone() });
            }
        }
    }
    if initial_ok {
        for s in &def.states {
            if s != &def.initial_state && s != ERROR && def.next_hop(&def.initial_state, s).is_none() {
                errors.push(ValidationError::UnreachableFromInitial {
                    state: s.clone(),
                    initial: def.initial_state.clone(),
                });
            }
        }
    }
    errors
}

/// Every hop must be a direct transition, and following hops must reach the destination
/// without revisiting a state. Returns whether the table is sound.
fn check_next_hops(def: &StateModelDefinition, errors: &mut Vec<ValidationError>) -> bool {
    let before = errors.len();
    for (from, hops) in &def.next {
        for (to, hop) in hops {
            if !def.is_transition(from, hop) {
                errors.push(ValidationError::NextHopNotATransition {
                    from: from.clone(),
                    to: to.clone(),
                    hop: hop.clone(),
                });
            }
        }
    }
    if errors.len() > before {
        return false;
    }
    for (from, hops) in &def.next {
        for to in hops.keys() {
            let mut path = vec![from.as_str()];
            let mut at = from.as_str();
            while at != to {
                match def.next_hop(at, to) {
                    None => {
                        errors.push(ValidationError::NextHopDeadEnd {
                            from: from.clone(),
                            to: to.clone(),
                            at: at.to_string(),
                        });
                        break;
                    }
                    Some(next) if path.contains(&next) => {
                        path.push(next);
                        errors.push(ValidationError::NextHopLoop {
                            from: from.clone(),
                            to: to.clone(),
                            path: path.join("→"),
                        });
                        break;
                    }
                    Some(next) => {
                        path.push(next);
                        at = next;
                    }
                }
            }
        }
    }
    errors.len() == before
}
