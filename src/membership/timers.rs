//! A timer queue for foca's `Timer` events and the shell's own wake-ups.
//!
//! foca asks to be woken "after D"; the shell turns that into a deadline and keeps the
//! deadlines in a heap. Due entries come out in deadline order, ties in insertion order (so
//! a `SendIndirectProbe` scheduled before the next `ProbeRandomMember` is delivered first, as
//! foca expects). Pure: the caller passes the time in.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

struct Entry<T> {
    due: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse, so the earliest (then the oldest) is on top.
        other.due.cmp(&self.due).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Deadlines and what is due at each.
pub struct TimerQueue<T> {
    heap: BinaryHeap<Entry<T>>,
    seq: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> TimerQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `item` at `due`.
    pub fn schedule(&mut self, due: Instant, item: T) {
        self.seq += 1;
        self.heap.push(Entry {
            due,
            seq: self.seq,
            item,
        });
    }

    /// The earliest deadline.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.due)
    }

    /// The earliest entry if it is due at `now`, with its deadline.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, T)> {
        if self.heap.peek()?.due > now {
            return None;
        }
        self.heap.pop().map(|e| (e.due, e.item))
    }

    /// How many entries are waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn due_entries_come_out_by_deadline_then_insertion() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = TimerQueue::new();
        q.schedule(t0 + ms(30), "c");
        q.schedule(t0 + ms(10), "a");
        q.schedule(t0 + ms(10), "b");
        q.schedule(t0 + ms(50), "d");
        assert_eq!(q.next_due(), Some(t0 + ms(10)));
        assert_eq!(q.pop_due(t0 + ms(5)), None);
        let now = t0 + ms(40);
        let mut out = Vec::new();
        while let Some((_, x)) = q.pop_due(now) {
            out.push(x);
        }
        assert_eq!(out, ["a", "b", "c"]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(t0 + ms(50)), Some((t0 + ms(50), "d")));
        assert!(q.is_empty());
    }
}
