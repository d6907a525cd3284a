//! Wing & Gong's search for a linearization with Lowe's memoisation, as Porcupine runs it.
//!
//! The history is a doubly linked list of call and return events in time order (a call
//! before a return at equal times: such operations overlap). Walking from the head, each call
//! met is tried: if the model accepts it in the current state and the pair (set of operations
//! linearized, state after it) was never reached before, the operation is linearized — its
//! call and return are lifted out of the list — and the walk restarts from the head. Meeting a
//! return means the operation it ends was not placed before its answer: the last choice is
//! undone and the walk continues after that call. An operation whose outcome is unknown has
//! no return event: it may be placed any time after its call, or left out; the search
//! succeeds once every operation with an answer is placed.

use std::collections::HashSet;
use std::hash::Hash;

use super::Time;

/// One operation for the search.
pub(super) struct Entry<O> {
    pub op: O,
    pub invoke: Time,
    /// `None`: the outcome is unknown.
    pub complete: Option<Time>,
}

/// The search's answer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    Linearizable,
    /// No linearization; the largest set of operations placed in one partial linearization.
    None {
        best: Vec<usize>,
    },
    /// The step budget ran out.
    Undecided {
        steps: u64,
    },
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn ones(&self) -> Vec<usize> {
        (0..self.0.len() * 64)
            .filter(|i| self.0[i / 64] & (1 << (i % 64)) != 0)
            .collect()
    }
}

/// The event list: node 0 is the head, node `n + 1` the tail, node `i + 1` event `i`.
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl List {
    fn new(n: usize) -> List {
        List {
            next: (1..=n + 2).collect(),
            prev: (0..n + 2).map(|i| i.saturating_sub(1)).collect(),
        }
    }
    fn remove(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = n;
        self.prev[n] = p;
    }
    /// Undoes the `remove(x)` that was the last one not yet undone.
    fn restore(&mut self, x: usize) {
        let (p, n) = (self.prev[x], self.next[x]);
        self.next[p] = x;
        self.prev[n] = x;
    }
}

struct Event {
    op: usize,
    call: bool,
}

/// Searches for a linearization of `entries` from `init`; `step` is the model. Gives up
/// after `max_steps` moves.
pub(super) fn search<O, S: Clone + Eq + Hash>(
    entries: &[Entry<O>],
    init: S,
    step: impl Fn(&S, &O) -> Option<S>,
    max_steps: u64,
) -> Found {
    // Events in time order: (time, return after call at equal time, op).
    let mut order: Vec<(Time, bool, usize)> = Vec::with_capacity(entries.len() * 2);
    for (i, e) in entries.iter().enumerate() {
        order.push((e.invoke, false, i));
        if let Some(c) = e.complete {
            order.push((c.max(e.invoke), true, i));
        }
    }
    order.sort_unstable();
    let events: Vec<Event> = order
        .iter()
        .map(|&(_, ret, op)| Event { op, call: !ret })
        .collect();
    let n = events.len();
    let tail = n + 1;
    // Each op's call and return nodes.
    let mut nodes = vec![(0usize, None::<usize>); entries.len()];
    for (i, e) in events.iter().enumerate() {
        if e.call {
            nodes[e.op].0 = i + 1;
        } else {
            nodes[e.op].1 = Some(i + 1);
        }
    }
    let mut list = List::new(n);
    let mut known_left = entries.iter().filter(|e| e.complete.is_some()).count();
    let mut linearized = Bits::new(entries.len());
    let mut placed = 0usize;
    let mut best = (0usize, linearized.clone());
    let mut state = init;
    let mut seen: HashSet<(Bits, S)> = HashSet::new();
    let mut stack: Vec<(usize, S)> = Vec::new();
    let mut node = list.next[0];
    let mut steps = 0u64;
    while known_left > 0 {
        if steps >= max_steps {
            return Found::Undecided { steps };
        }
        steps += 1;
        if node == tail {
            // Only calls of unknown outcome were left to try, and a known op is unplaced:
            // cannot happen (its return lies ahead), but never loop on it.
            break;
        }
        let event = &events[node - 1];
        if event.call {
            let op = event.op;
            if let Some(next_state) = step(&state, &entries[op].op) {
                let mut next_set = linearized.clone();
                next_set.set(op);
                if seen.insert((next_set.clone(), next_state.clone())) {
                    stack.push((node, std::mem::replace(&mut state, next_state)));
                    linearized = next_set;
                    list.remove(node);
                    if let Some(r) = nodes[op].1 {
                        list.remove(r);
                        known_left -= 1;
                    }
                    placed += 1;
                    if placed > best.0 {
                        best = (placed, linearized.clone());
                    }
                    node = list.next[0];
                    continue;
                }
            }
            node = list.next[node];
        } else {
            let Some((call, previous)) = stack.pop() else {
                break;
            };
            let op = events[call - 1].op;
            state = previous;
            linearized.clear(op);
            placed -= 1;
            if let Some(r) = nodes[op].1 {
                list.restore(r);
                known_left += 1;
            }
            list.restore(call);
            node = list.next[call];
        }
    }
    if known_left == 0 {
        Found::Linearizable
    } else {
        Found::None { best: best.1.ones() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter: `Some(n)` reads n, `None` increments.
    fn counter(s: &u64, op: &Option<u64>) -> Option<u64> {
        match op {
            Some(n) => (n == s).then_some(*s),
            None => Some(s + 1),
        }
    }

    fn e(op: Option<u64>, invoke: Time, complete: Option<Time>) -> Entry<Option<u64>> {
        Entry { op, invoke, complete }
    }

    #[test]
    fn overlapping_operations_may_go_either_way() {
        let h = [
            e(None, 0, Some(10)),
            e(Some(0), 1, Some(2)),
            e(Some(1), 3, Some(4)),
        ];
        assert_eq!(search(&h, 0, counter, 1000), Found::Linearizable);
    }

    #[test]
    fn a_read_after_a_completed_increment_must_see_it() {
        let h = [e(None, 0, Some(1)), e(Some(0), 2, Some(3))];
        assert_eq!(search(&h, 0, counter, 1000), Found::None { best: vec![0] });
    }

    #[test]
    fn unknown_operations_may_be_left_out_or_placed_late() {
        let never = [e(None, 0, None), e(Some(0), 5, Some(6))];
        assert_eq!(search(&never, 0, counter, 1000), Found::Linearizable);
        let late = [e(None, 0, None), e(Some(0), 5, Some(6)), e(Some(1), 7, Some(8))];
        assert_eq!(search(&late, 0, counter, 1000), Found::Linearizable);
        let undone = [e(None, 0, None), e(Some(1), 5, Some(6)), e(Some(0), 7, Some(8))];
        assert!(matches!(search(&undone, 0, counter, 1000), Found::None { .. }));
    }

    #[test]
    fn operations_ending_and_starting_at_one_instant_overlap() {
        let h = [e(None, 0, Some(5)), e(Some(0), 5, Some(6))];
        assert_eq!(search(&h, 0, counter, 1000), Found::Linearizable);
    }

    #[test]
    fn the_budget_stops_the_search() {
        let h: Vec<_> = (0..40).map(|i| e(Some(1000 + i), 0, Some(100))).collect();
        assert!(matches!(
            search(&h, 0, counter, 10),
            Found::Undecided { steps: 10 }
        ));
    }
}
