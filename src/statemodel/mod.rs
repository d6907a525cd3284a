//! State models: the states a replica moves through, their bounds, and the transitions.
//!
//! A [`StateModelDefinition`] is Helix's STATEMODELDEFS record in typed form:
//!
//! ```text
//!   states in priority order    MASTER(1) > SLAVE(R) > OFFLINE > DROPPED > ERROR
//!   transitions in priority     MASTER-SLAVE, SLAVE-MASTER, OFFLINE-SLAVE, …
//!   next-hop table              OFFLINE → MASTER goes through SLAVE
//! ```
//!
//! Definitions come from the [`StateModelBuilder`], from a record ([`StateModelDefinition::from_record`])
//! or from the built-ins ([`builtin`]). Either way they pass [`validate`] before use; a
//! definition that exists is a valid one.

mod builder;
mod builtins;
mod record_io;
mod validate;

use std::collections::BTreeMap;

pub use builder::StateModelBuilder;
pub use builtins::{builtin, builtin_names, builtins};
pub use validate::{validate, ValidationError};

/// The state every model has for "no longer served here"; every state must reach it.
pub const DROPPED: &str = "DROPPED";
/// The state a replica is in after its transition handler failed.
pub const ERROR: &str = "ERROR";

/// The most replicas of a partition that may be in a state at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpperBound {
    /// A fixed number.
    Count(usize),
    /// `N`: the number of live candidate instances.
    LiveCandidates,
    /// `R`: the resource's replica count.
    Replicas,
    /// No bound (Helix writes `-1`).
    Unbounded,
}

impl UpperBound {
    /// Parses Helix's spelling: a non-negative number, `-1`, `N` or `R`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "N" | "n" => Some(Self::LiveCandidates),
            "R" | "r" => Some(Self::Replicas),
            "-1" => Some(Self::Unbounded),
            v => v.parse::<usize>().ok().map(Self::Count),
        }
    }

    /// Helix's spelling.
    pub fn as_helix(&self) -> String {
        match self {
            Self::Count(n) => n.to_string(),
            Self::LiveCandidates => "N".into(),
            Self::Replicas => "R".into(),
            Self::Unbounded => "-1".into(),
        }
    }

    /// The bound as a number, given the live candidates and the replica count.
    pub fn resolve(&self, live_candidates: usize, replicas: usize) -> usize {
        match *self {
            Self::Count(n) => n,
            Self::LiveCandidates => live_candidates,
            Self::Replicas => replicas,
            Self::Unbounded => usize::MAX,
        }
    }
}

/// A direct transition between two states.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Transition {
    /// Source state.
    pub from: String,
    /// Target state.
    pub to: String,
}

impl Transition {
    /// A transition `from → to`.
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        Transition {
            from: from.into(),
            to: to.into(),
        }
    }
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.from, self.to)
    }
}

/// A validated state model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateModelDefinition {
    name: String,
    initial_state: String,
    /// States, highest priority first.
    states: Vec<String>,
    bounds: BTreeMap<String, UpperBound>,
    /// Direct transitions, highest priority first.
    transitions: Vec<Transition>,
    /// from → (to → next hop).
    next: BTreeMap<String, BTreeMap<String, String>>,
}

impl StateModelDefinition {
    /// Starts a builder, as Helix's `StateModelDefinition.Builder`.
    pub fn builder(name: impl Into<String>) -> StateModelBuilder {
        StateModelBuilder::new(name)
    }

    /// The model's name (`MasterSlave`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state a replica starts in (and returns to when it is reset or fenced).
    pub fn initial_state(&self) -> &str {
        &self.initial_state
    }

    /// All states, highest priority first (DROPPED and ERROR included).
    pub fn states(&self) -> &[String] {
        &self.states
    }

    /// Whether `state` is one of the model's states.
    pub fn has_state(&self, state: &str) -> bool {
        self.states.iter().any(|s| s == state)
    }

    /// The priority of a state: 0 is the highest.
    pub fn state_priority(&self, state: &str) -> Option<usize> {
        self.states.iter().position(|s| s == state)
    }

    /// The highest-priority state (MASTER, LEADER, ONLINE).
    pub fn top_state(&self) -> &str {
        &self.states[0]
    }

    /// The upper bound of a state (unbounded when none was given).
    pub fn upper_bound(&self, state: &str) -> UpperBound {
        self.bounds.get(state).copied().unwrap_or(UpperBound::Unbounded)
    }

    /// The direct transitions, highest priority first.
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// The priority of a direct transition: 0 is the highest.
    pub fn transition_priority(&self, from: &str, to: &str) -> Option<usize> {
        self.transitions.iter().position(|t| t.from == from && t.to == to)
    }

    /// Whether `from → to` is a direct transition.
    pub fn is_transition(&self, from: &str, to: &str) -> bool {
        self.transition_priority(from, to).is_some()
    }

    /// The next state on the way from `from` to `to` (shortest path; ties go to the
    /// higher-priority transition). `None` when `from == to` or `to` is unreachable.
    pub fn next_hop(&self, from: &str, to: &str) -> Option<&str> {
        self.next.get(from)?.get(to).map(String::as_str)
    }

    /// The whole next-hop table: from → (to → next hop).
    pub fn next_hop_table(&self) -> &BTreeMap<String, BTreeMap<String, String>> {
        &self.next
    }

    /// How many replicas of a partition should be in each state, highest priority first,
    /// given the live candidate instances and the replica count (Helix's
    /// `getStateCountMap`): fixed bounds first, in priority order, capped by the candidates
    /// left; an `N` state takes all remaining candidates; the `R` state takes what is left
    /// of the replicas. The initial state, DROPPED and ERROR are never targets.
    pub fn state_counts(&self, live_candidates: usize, replicas: usize) -> Vec<(String, usize)> {
        let targets = self
            .states
            .iter()
            .filter(|s| *s != &self.initial_state && *s != DROPPED && *s != ERROR)
            .map(|s| (s.as_str(), self.upper_bound(s)));
        count_states(targets, live_candidates, replicas)
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect()
    }

    /// Builds the definition from parts, computing the next-hop table by shortest paths
    /// when `next` is `None`, and validates it.
    fn assemble(
        name: String,
        initial_state: String,
        states: Vec<String>,
        bounds: BTreeMap<String, UpperBound>,
        transitions: Vec<Transition>,
        next: Option<BTreeMap<String, BTreeMap<String, String>>>,
        extra_errors: Vec<ValidationError>,
    ) -> Result<Self, Vec<ValidationError>> {
        let next = next.unwrap_or_else(|| shortest_path_table(&states, &transitions));
        let mut bounds = bounds;
        for s in &states {
            bounds.entry(s.clone()).or_insert(UpperBound::Unbounded);
        }
        let def = StateModelDefinition {
            name,
            initial_state,
            states,
            bounds,
            transitions,
            next,
        };
        let mut errors = extra_errors;
        errors.extend(validate(&def));
        if errors.is_empty() {
            Ok(def)
        } else {
            Err(errors)
        }
    }
}

/// For every state, a breadth-first search over the transitions in priority order; the
/// first hop of the first shortest path found is the next hop. Transitions into ERROR are
/// never planned, and ERROR's row holds only its direct exits (reset and drop), as Helix's.
fn shortest_path_table(
    states: &[String],
    transitions: &[Transition],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut table: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for from in states {
        let mut hops: BTreeMap<String, String> = BTreeMap::new();
        let mut queue: std::collections::VecDeque<(&str, &str)> = std::collections::VecDeque::new();
        let mut seen: std::collections::BTreeSet<&str> = std::collections::BTreeSet::from([from.as_str()]);
        // (state reached, first hop used to reach it)
        for t in transitions.iter().filter(|t| &t.from == from && t.to != ERROR) {
            if seen.insert(&t.to) {
                queue.push_back((&t.to, &t.to));
            }
        }
        while let Some((state, first)) = queue.pop_front() {
            hops.insert(state.to_string(), first.to_string());
            if from == ERROR {
                // A replica leaves ERROR only by reset or drop, never on a longer path.
                continue;
            }
            for t in transitions.iter().filter(|t| t.from == state && t.to != ERROR) {
                if seen.insert(&t.to) {
                    queue.push_back((&t.to, first));
                }
            }
        }
        if !hops.is_empty() {
            table.insert(from.clone(), hops);
        }
    }
    table
}

#[cfg(test)]
mod tests;

/// The state-count walk behind [`StateModelDefinition::state_counts`] and the engine's
/// per-resource bounds: `targets` are the states that may be targets (not the initial
/// state, DROPPED or ERROR) with their bounds, highest priority first. Fixed bounds are
/// filled in order, capped by the candidates left; an `N` state takes every remaining
/// candidate; the `R` state takes what is left of the replicas. The result keeps priority
/// order.
pub fn count_states<'a, I>(targets: I, live_candidates: usize, replicas: usize) -> Vec<(&'a str, usize)>
where
    I: Iterator<Item = (&'a str, UpperBound)> + Clone,
{
    let mut out: Vec<(usize, &str, usize)> = Vec::new();
    let mut candidates = live_candidates;
    let mut remaining = replicas;
    for (k, (state, bound)) in targets.clone().enumerate() {
        if candidates == 0 {
            break;
        }
        match bound {
            UpperBound::LiveCandidates => {
                out.push((k, state, candidates));
                remaining = remaining.saturating_sub(candidates);
                candidates = 0;
                break;
            }
            UpperBound::Count(n) if n > 0 => {
                let count = n.min(candidates).min(remaining);
                if count > 0 {
                    out.push((k, state, count));
                }
                candidates -= count;
                remaining -= count;
            }
            _ => {}
        }
    }
    let r_state = targets.enumerate().find(|(_, (_, b))| *b == UpperBound::Replicas);
    if let Some((k, (state, _))) = r_state {
        let count = remaining.min(candidates);
        if count > 0 {
            let at = out.iter().position(|(j, _, _)| *j > k).unwrap_or(out.len());
            out.insert(at, (k, state, count));
        }
    }
    out.into_iter().map(|(_, s, n)| (s, n)).collect()
}
