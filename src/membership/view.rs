//! The member table: foca's member states turned into statuses and past-tense events.
//!
//! foca reports joins, downs and renames but not suspicions, and cannot tell a graceful
//! leave from a crash. After every interaction with foca, the shell hands this table foca's
//! full member list; the table compares it with what it knew and emits the events. Leaves
//! are learnt from strand's own leave notices ([`MemberTable::record_leave`]). The table
//! also keeps what foca does not: when each member was last heard, the last probe's RTT, and
//! whether any peer reaches this node at all (isolation).
//!
//! Pure: the caller passes the time in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::events::{LocalChange, MemberChange, MemberStatus, MembershipEvent, Status};
use super::identity::NodeId;

#[derive(Debug, Clone)]
struct Entry {
    id: NodeId,
    status: Status,
    last_heard: Option<Instant>,
    rtt: Option<Duration>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct MemberTable {
    members: BTreeMap<String, Entry>,
    /// Members that announced a graceful leave: name → generation.
    left: BTreeMap<String, u64>,
    last_ack: Option<Instant>,
    isolated: bool,
    /// Whether a status or identity changed since [`MemberTable::take_changed`].
    changed: bool,
    /// Suspicions that ended with the member alive again (it refuted: a false positive),
    /// since [`MemberTable::take_refuted`].
    refuted: u64,
}

fn status_of(state: foca::State) -> Status {
    match state {
        foca::State::Alive => Status::Alive,
        foca::State::Suspect => Status::Suspect,
        foca::State::Down => Status::Down,
    }
}

impl Default for MemberTable {
    fn default() -> Self {
        Self::new()
    }
}

impl MemberTable {
    /// An empty table.
    pub fn new() -> Self {
        MemberTable {
            members: BTreeMap::new(),
            left: BTreeMap::new(),
            last_ack: None,
            isolated: false,
            changed: false,
            refuted: 0,
        }
    }

    /// `name` (generation `generation`) announced that it leaves.
    pub fn record_leave(&mut self, name: &str, generation: u64) {
        let g = self.left.entry(name.to_string()).or_insert(generation);
        *g = (*g).max(generation);
    }

    fn has_left(&self, id: &NodeId) -> bool {
        self.left.get(&id.name).is_some_and(|g| *g >= id.generation)
    }

    /// A datagram from `name` arrived at `now`.
    pub fn heard_from(&mut self, name: &str, now: Instant) {
        if let Some(e) = self.members.get_mut(name) {
            e.last_heard = Some(now);
        }
    }

    /// Whether a datagram from `name` arrived within `window` before `now`.
    pub fn heard_within(&self, name: &str, now: Instant, window: Duration) -> bool {
        self.members
            .get(name)
            .and_then(|e| e.last_heard)
            .is_some_and(|t| now.saturating_duration_since(t) <= window)
    }

    /// Our direct probe of `name` was acked after `rtt`.
    pub fn probe_acked(&mut self, name: &str, rtt: Duration) {
        if let Some(e) = self.members.get_mut(name) {
            e.rtt = Some(rtt);
        }
    }

    /// Brings the table in line with foca's member list; returns the events, in order.
    pub fn reconcile<'a>(
        &mut self,
        foca_members: impl Iterator<Item = &'a foca::Member<NodeId>>,
        at_unix_ms: u64,
    ) -> Vec<MembershipEvent> {
        let mut events = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for m in foca_members {
            let id = m.id();
            seen.push(&id.name);
            let mut status = status_of(m.state());
            if status == Status::Down && self.has_left(id) {
                status = Status::Left;
            }
            let change = || MemberChange::of(id, at_unix_ms);
            match self.members.get_mut(&id.name) {
                None => {
                    if status.is_active() {
                        events.push(MembershipEvent::MemberUp(change()));
                        if status == Status::Suspect {
                            events.push(MembershipEvent::MemberSuspected(change()));
                        }
                    }
                    self.changed = true;
                    self.members.insert(
                        id.name.clone(),
                        Entry {
                            id: id.clone(),
                            status,
                            last_heard: None,
                            rtt: None,
                        },
                    );
                }
                Some(e) if e.id != *id => {
                    // A new identity for a known name: a restart (new generation) or new
                    // metadata (same generation).
                    let same_session = e.id.generation == id.generation;
                    match (status.is_active(), e.status.is_active()) {
                        (true, was_active) => {
                            if same_session && was_active {
                                events.push(MembershipEvent::MemberUpdated(change()));
                            } else {
                                events.push(MembershipEvent::MemberUp(change()));
                            }
                            if status == Status::Suspect {
                                events.push(MembershipEvent::MemberSuspected(change()));
                            }
                        }
                        (false, true) => events.push(if status == Status::Left {
                            MembershipEvent::MemberLeft(change())
                        } else {
                            MembershipEvent::MemberDown(change())
                        }),
                        (false, false) => {}
                    }
                    if !same_session {
                        e.rtt = None;
                    }
                    self.changed = true;
                    e.id = id.clone();
                    e.status = status;
                }
                Some(e) => {
                    match (e.status, status) {
                        (Status::Alive, Status::Suspect) => {
                            events.push(MembershipEvent::MemberSuspected(change()));
                        }
                        (Status::Suspect, Status::Alive) => self.refuted += 1,
                        (from, Status::Down) if from.is_active() => {
                            events.push(MembershipEvent::MemberDown(change()));
                        }
                        (from, Status::Left) if from.is_active() => {
                            events.push(MembershipEvent::MemberLeft(change()));
                        }
                        // Only after a verdict given here alone was dropped (the shell's
                        // minority hold): the same identity is alive again.
                        (from, to) if !from.is_active() && to.is_active() => {
                            events.push(MembershipEvent::MemberUp(change()));
                            if to == Status::Suspect {
                                events.push(MembershipEvent::MemberSuspected(change()));
                            }
                        }
                        _ => {}
                    }
                    if e.status != status {
                        self.changed = true;
                    }
                    e.status = status;
                }
            }
        }
        if seen.len() != self.members.len() {
            self.members.retain(|name, _| seen.contains(&name.as_str()));
        }
        // A member back with a newer generation than its leave is no longer "left".
        let members = &self.members;
        self.left
            .retain(|name, g| members.get(name).is_none_or(|e| e.id.generation <= *g));
        events
    }

    /// Whether any member's status or identity changed since the last call (a refutation
    /// changes a status without an event).
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// How many suspected members turned out alive (refuted, same generation) since the
    /// last call: the detector's false positives.
    pub fn take_refuted(&mut self) -> u64 {
        std::mem::take(&mut self.refuted)
    }

    /// A packet from a peer, addressed to this node's current identity, arrived at `now`;
    /// returns `Reconnected` if the node was isolated.
    pub fn acked(&mut self, local: &NodeId, now: Instant, at_unix_ms: u64) -> Option<MembershipEvent> {
        self.last_ack = Some(now);
        if self.isolated {
            self.isolated = false;
            return Some(MembershipEvent::Reconnected(LocalChange {
                name: local.name.clone(),
                generation: local.generation,
                silent_ms: None,
                at_unix_ms,
            }));
        }
        None
    }

    /// Checks isolation at `now`: once reached at least once, with some member not
    /// gone gracefully, and no ack for `after`, the node is isolated.
    pub fn check_isolation(
        &mut self,
        local: &NodeId,
        now: Instant,
        after: Duration,
        at_unix_ms: u64,
    ) -> Option<MembershipEvent> {
        let last = self.last_ack?;
        if self.isolated || !self.members.values().any(|e| e.status != Status::Left) {
            return None;
        }
        let silent = now.saturating_duration_since(last);
        if silent < after {
            return None;
        }
        self.isolated = true;
        Some(MembershipEvent::Isolated(LocalChange {
            name: local.name.clone(),
            generation: local.generation,
            silent_ms: Some(silent.as_millis() as u64),
            at_unix_ms,
        }))
    }

    /// How long since a packet addressed to this node's current identity arrived (`None`:
    /// none yet).
    pub fn silent_for(&self, now: Instant) -> Option<Duration> {
        self.last_ack.map(|last| now.saturating_duration_since(last))
    }

    /// Whether the node is isolated now.
    pub fn is_isolated(&self) -> bool {
        self.isolated
    }

    /// The members that count as present (alive or suspect).
    pub fn active(&self) -> impl Iterator<Item = &NodeId> {
        self.members
            .values()
            .filter(|e| e.status.is_active())
            .map(|e| &e.id)
    }

    /// A member's status.
    pub fn status(&self, name: &str) -> Option<Status> {
        self.members.get(name).map(|e| e.status)
    }

    /// The view at `now`, `local` first.
    pub fn snapshot(&self, local: &NodeId, now: Instant) -> Vec<MemberStatus> {
        let mut rows = vec![MemberStatus::of(local, Status::Alive, None, None, true)];
        rows.extend(self.members.values().map(|e| {
            MemberStatus::of(
                &e.id,
                e.status,
                e.last_heard.map(|t| now.saturating_duration_since(t)),
                e.rtt,
                false,
            )
        }));
        rows
    }
}

#[cfg(test)]
mod tests {
    use foca::{Member, State};

    use super::*;

    fn id(name: &str, generation: u64) -> NodeId {
        NodeId::new(name, "127.0.0.1:7000".parse().unwrap(), generation)
    }

    fn kinds(events: &[MembershipEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind()).collect()
    }

    #[test]
    fn join_suspect_refute_down() {
        let mut t = MemberTable::new();
        let a = id("a", 1);
        let ev = t.reconcile([Member::new(a.clone(), 0, State::Alive)].iter(), 1);
        assert_eq!(kinds(&ev), ["MemberUp"]);
        assert!(t
            .reconcile([Member::new(a.clone(), 0, State::Alive)].iter(), 2)
            .is_empty());
        let ev = t.reconcile([Member::new(a.clone(), 0, State::Suspect)].iter(), 3);
        assert_eq!(kinds(&ev), ["MemberSuspected"]);
        assert!(t.take_changed());
        let ev = t.reconcile([Member::new(a.clone(), 1, State::Alive)].iter(), 4);
        assert!(ev.is_empty());
        assert!(t.take_changed(), "a refutation is a change without an event");
        assert!(!t.take_changed());
        assert_eq!(t.take_refuted(), 1, "a refuted suspicion is a false positive");
        assert_eq!(t.take_refuted(), 0);
        assert_eq!(t.status("a"), Some(Status::Alive));
        let ev = t.reconcile([Member::new(a.clone(), 1, State::Down)].iter(), 5);
        assert_eq!(kinds(&ev), ["MemberDown"]);
        assert_eq!(ev[0].member().unwrap().at_unix_ms, 5);
        assert_eq!(
            t.take_refuted(),
            0,
            "a suspicion that ends down was no false positive"
        );
    }

    #[test]
    fn a_dropped_verdict_brings_the_same_identity_back_up() {
        let mut t = MemberTable::new();
        let a = id("a", 3);
        t.reconcile([Member::new(a.clone(), 2, State::Suspect)].iter(), 1);
        let ev = t.reconcile([Member::new(a.clone(), 2, State::Down)].iter(), 2);
        assert_eq!(kinds(&ev), ["MemberDown"]);
        // The shell dropped its provisional verdict and foca knows `a` alive again.
        let ev = t.reconcile([Member::new(a.clone(), 2, State::Alive)].iter(), 3);
        assert_eq!(kinds(&ev), ["MemberUp"]);
        assert_eq!(t.status("a"), Some(Status::Alive));
        t.reconcile([Member::new(a.clone(), 2, State::Down)].iter(), 4);
        let ev = t.reconcile([Member::new(a, 2, State::Suspect)].iter(), 5);
        assert_eq!(kinds(&ev), ["MemberUp", "MemberSuspected"]);
    }

    #[test]
    fn a_leave_notice_turns_down_into_left() {
        let mut t = MemberTable::new();
        let a = id("a", 7);
        t.reconcile([Member::alive(a.clone())].iter(), 1);
        t.record_leave("a", 7);
        let ev = t.reconcile([Member::down(a.clone())].iter(), 2);
        assert_eq!(kinds(&ev), ["MemberLeft"]);
        assert_eq!(t.status("a"), Some(Status::Left));
        // Back with a new generation: up again, no longer left.
        let ev = t.reconcile([Member::alive(id("a", 8))].iter(), 3);
        assert_eq!(kinds(&ev), ["MemberUp"]);
        assert_eq!(ev[0].member().unwrap().generation, 8);
        assert!(t.left.is_empty());
    }

    #[test]
    fn restart_and_metadata_change() {
        let mut t = MemberTable::new();
        t.reconcile([Member::alive(id("a", 1))].iter(), 1);
        let ev = t.reconcile([Member::alive(id("a", 2))].iter(), 2);
        assert_eq!(kinds(&ev), ["MemberUp"]);
        let mut updated = id("a", 2);
        updated.revision = 1;
        updated.clusters = vec!["C".into()];
        let ev = t.reconcile([Member::alive(updated)].iter(), 3);
        assert_eq!(kinds(&ev), ["MemberUpdated"]);
        // Down members never seen up produce nothing; forgotten members leave the table.
        let ev = t.reconcile([Member::down(id("b", 1))].iter(), 4);
        assert!(ev.is_empty());
        assert_eq!(t.status("a"), None);
    }

    #[test]
    fn isolation_after_silence_and_reconnection() {
        let t0 = Instant::now();
        let local = id("me", 1);
        let mut t = MemberTable::new();
        let d = Duration::from_millis(400);
        // Never reached: not isolated, just not joined.
        assert!(t.check_isolation(&local, t0 + d * 3, d, 0).is_none());
        t.reconcile([Member::alive(id("a", 1))].iter(), 0);
        assert!(t.acked(&local, t0, 0).is_none());
        assert!(t.check_isolation(&local, t0 + d / 2, d, 0).is_none());
        let ev = t.check_isolation(&local, t0 + d, d, 9).unwrap();
        assert_eq!(ev.kind(), "Isolated");
        assert!(t.is_isolated());
        assert!(t.check_isolation(&local, t0 + d * 2, d, 0).is_none());
        assert_eq!(t.acked(&local, t0 + d * 3, 0).unwrap().kind(), "Reconnected");
        assert!(!t.is_isolated());
    }

    #[test]
    fn snapshot_puts_the_local_node_first_with_ages() {
        let t0 = Instant::now();
        let mut t = MemberTable::new();
        t.reconcile([Member::alive(id("a", 1))].iter(), 0);
        t.heard_from("a", t0);
        t.probe_acked("a", Duration::from_micros(250));
        let rows = t.snapshot(&id("me", 3), t0 + Duration::from_millis(20));
        assert!(rows[0].is_local);
        assert_eq!(rows[1].last_heard_ms, Some(20));
        assert_eq!(rows[1].rtt_ms, Some(0.25));
    }
}
