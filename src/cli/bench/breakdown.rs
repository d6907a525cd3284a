//! `strand bench config --breakdown`: where one config change's time goes, hop by hop.
//!
//! ```text
//!   every process (setter, 3 replicas, listener) records stage marks (`telemetry::marks`,
//!   on because this bench sets STRAND_MARKS before it starts them) ─► <dir>/<pid>.marks
//!   change i = the marks between its SetStart and the listener's Delivered (one change at a
//!   time, nothing else writing) ─► each segment of the way: p50 / p99 over the changes
//!   /proc/<pid> before and after ─► CPU time and context switches per change, per process
//! ```
//!
//! The roles are found per change: the leader is the replica that proposed it, the
//! followers the other replicas (a follower stage is the first follower's), the watch is
//! answered by whichever replica the listener polls.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::store::percentile;
use crate::telemetry::marks::{Mark, Stage};

/// Who did something, per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Role {
    /// The bench process (`ConfigAccessor::set`).
    Setter,
    /// The replica that proposed the change.
    Leader,
    /// The first of the other replicas to reach a stage.
    Follower,
    /// Any replica (the watch's).
    Replica,
    /// The `strand admin config watch` process.
    Listener,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Setter => "setter",
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Replica => "replica",
            Role::Listener => "listener",
        }
    }
}

/// Where a segment starts or ends: a stage reached by a role.
type Point = (Role, Stage);

/// The segments reported, in the order of the way: (name, from, to).
const SEGMENTS: &[(&str, Point, Point)] = &[
    (
        "setter: cached read → write sent",
        (Role::Setter, Stage::SetStart),
        (Role::Setter, Stage::WriteSent),
    ),
    (
        "hop: setter → leader's STORE service",
        (Role::Setter, Stage::WriteSent),
        (Role::Leader, Stage::StoreRecv),
    ),
    (
        "leader: STORE → proposed (write batcher)",
        (Role::Leader, Stage::StoreRecv),
        (Role::Leader, Stage::Proposed),
    ),
    (
        "leader: proposed → appended (openraft core)",
        (Role::Leader, Stage::Proposed),
        (Role::Leader, Stage::Appended),
    ),
    (
        "leader: appended → AppendEntries sent",
        (Role::Leader, Stage::Appended),
        (Role::Leader, Stage::AppendSent),
    ),
    (
        "hop: leader → follower",
        (Role::Leader, Stage::AppendSent),
        (Role::Follower, Stage::AppendRecv),
    ),
    (
        "follower: received → appended and fsynced",
        (Role::Follower, Stage::AppendRecv),
        (Role::Follower, Stage::Synced),
    ),
    (
        "follower: fsynced → answered",
        (Role::Follower, Stage::Synced),
        (Role::Follower, Stage::AppendAnswered),
    ),
    (
        "hop: follower → leader",
        (Role::Follower, Stage::AppendAnswered),
        (Role::Leader, Stage::AppendAcked),
    ),
    (
        "leader: acked → applied",
        (Role::Leader, Stage::AppendAcked),
        (Role::Leader, Stage::Applied),
    ),
    (
        "leader: applied → setter has the answer",
        (Role::Leader, Stage::Applied),
        (Role::Setter, Stage::WriteAcked),
    ),
    (
        "leader: applied → a replica answers the watch",
        (Role::Leader, Stage::Applied),
        (Role::Replica, Stage::WatchAnswer),
    ),
    (
        "hop: watch answer → listener",
        (Role::Replica, Stage::WatchAnswer),
        (Role::Listener, Stage::WatchRecv),
    ),
    (
        "listener: watch answer → change delivered",
        (Role::Listener, Stage::WatchRecv),
        (Role::Listener, Stage::Delivered),
    ),
    // Beside the way.
    (
        "(leader's own fsync: appended → synced)",
        (Role::Leader, Stage::Appended),
        (Role::Leader, Stage::Synced),
    ),
    (
        "(leader: acked → commit advertised)",
        (Role::Leader, Stage::AppendAcked),
        (Role::Leader, Stage::CommitSent),
    ),
    (
        "(leader applied → first follower applied)",
        (Role::Leader, Stage::Applied),
        (Role::Follower, Stage::Applied),
    ),
    (
        "total: set start → change delivered",
        (Role::Setter, Stage::SetStart),
        (Role::Listener, Stage::Delivered),
    ),
];

/// The processes of one run, by role.
pub(super) struct Pids {
    pub setter: u32,
    pub listener: u32,
    pub replicas: Vec<u32>,
}

/// One change's first mark of each (role, stage), in ns, and where the watch was served.
#[derive(Debug, Default)]
pub(super) struct Change {
    at: BTreeMap<(Role, Stage), u64>,
    /// The watch answer came from the leader.
    watch_from_leader: Option<bool>,
    /// The leader held a commit index back (its fsync lagged) during the change.
    held: bool,
}

/// Splits every process's marks into changes: change i is what happened from the setter's
/// i-th `SetStart` to the next one (the last: to the end).
pub(super) fn changes(pids: &Pids, marks: &BTreeMap<u32, Vec<Mark>>) -> Vec<Change> {
    let empty = Vec::new();
    let setter = marks.get(&pids.setter).unwrap_or(&empty);
    let starts: Vec<u64> = setter
        .iter()
        .filter(|m| m.stage == Stage::SetStart)
        .map(|m| m.at_ns)
        .collect();
    let mut out = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(u64::MAX);
        let window = |pid: u32| {
            marks
                .get(&pid)
                .unwrap_or(&empty)
                .iter()
                .filter(move |m| m.at_ns >= start && m.at_ns < end)
        };
        let first = |pid: u32, stage: Stage| window(pid).find(|m| m.stage == stage).map(|m| m.at_ns);
        let mut c = Change::default();
        let leader = pids
            .replicas
            .iter()
            .copied()
            .find(|&p| first(p, Stage::Proposed).is_some());
        for stage in Stage::ALL {
            if let Some(t) = first(pids.setter, stage) {
                c.at.insert((Role::Setter, stage), t);
            }
            if let Some(t) = first(pids.listener, stage) {
                c.at.insert((Role::Listener, stage), t);
            }
            if let Some(l) = leader {
                if let Some(t) = first(l, stage) {
                    c.at.insert((Role::Leader, stage), t);
                }
                let follower = pids
                    .replicas
                    .iter()
                    .filter(|&&p| p != l)
                    .filter_map(|&p| first(p, stage))
                    .min();
                if let Some(t) = follower {
                    c.at.insert((Role::Follower, stage), t);
                }
            }
        }
        let watch = pids
            .replicas
            .iter()
            .filter_map(|&p| first(p, Stage::WatchAnswer).map(|t| (t, p)))
            .min();
        if let Some((t, p)) = watch {
            c.at.insert((Role::Replica, Stage::WatchAnswer), t);
            c.watch_from_leader = Some(Some(p) == leader);
        }
        c.held = leader.is_some_and(|l| first(l, Stage::CommitHeld).is_some());
        out.push(c);
    }
    out
}

fn signed_percentile(v: &mut [i64], p: f64) -> i64 {
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

/// Each segment's p50 / p99 in µs over `changes` (a change missing either end is left out
/// of that segment), the offsets of every (role, stage) from the change's start, and how
/// the watch was served.
pub(super) fn report(changes: &[Change]) -> serde_json::Value {
    let mut segments = Vec::new();
    for (name, from, to) in SEGMENTS {
        let mut d: Vec<i64> = changes
            .iter()
            .filter_map(|c| Some(*c.at.get(to)? as i64 - *c.at.get(from)? as i64))
            .collect();
        let n = d.len();
        segments.push(json!({
            "segment": name,
            "p50_us": signed_percentile(&mut d, 0.5) as f64 / 1000.0,
            "p99_us": signed_percentile(&mut d, 0.99) as f64 / 1000.0,
            "samples": n,
        }));
    }
    let mut offsets = serde_json::Map::new();
    let keys: std::collections::BTreeSet<(Role, Stage)> =
        changes.iter().flat_map(|c| c.at.keys().copied()).collect();
    let mut keys: Vec<_> = keys.into_iter().collect();
    // In the order of the way: by median offset.
    let start = (Role::Setter, Stage::SetStart);
    let median = |k: &(Role, Stage)| {
        let mut d: Vec<i64> = changes
            .iter()
            .filter_map(|c| Some(*c.at.get(k)? as i64 - *c.at.get(&start)? as i64))
            .collect();
        (signed_percentile(&mut d, 0.5), d)
    };
    keys.sort_by_cached_key(|k| median(k).0);
    for k in keys {
        let (_, mut d) = median(&k);
        offsets.insert(
            format!("{}.{}", k.0.name(), k.1.name()),
            json!({
                "p50_us": signed_percentile(&mut d, 0.5) as f64 / 1000.0,
                "p99_us": signed_percentile(&mut d, 0.99) as f64 / 1000.0,
                "samples": d.len(),
            }),
        );
    }
    let served: Vec<bool> = changes.iter().filter_map(|c| c.watch_from_leader).collect();
    json!({
        "segments": segments,
        "offsets_from_set_start": offsets,
        "watch_answered_by_leader": served.iter().filter(|b| **b).count(),
        "watch_answered_by_follower": served.iter().filter(|b| !**b).count(),
        "commit_held_back": changes.iter().filter(|c| c.held).count(),
        "changes": changes.len(),
    })
}

/// A process's CPU time and context switches so far (all its live threads).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProcUsage {
    /// User + system time, in ticks of 10 ms (USER_HZ).
    ticks: u64,
    voluntary: u64,
    involuntary: u64,
}

/// Reads `/proc/<pid>`; `None` if the process is gone or the files are not as expected.
pub(super) fn usage(pid: u32) -> Option<ProcUsage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14,
    // stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let mut u = ProcUsage {
        ticks,
        ..ProcUsage::default()
    };
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            let value = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let Some(v) = value("voluntary_ctxt_switches:") {
                u.voluntary += v;
            } else if let Some(v) = value("nonvoluntary_ctxt_switches:") {
                u.involuntary += v;
            }
        }
    }
    Some(u)
}

/// Per change, what each process spent between `before` and `after`.
pub(super) fn usage_per_change(
    names: &[(String, u32)],
    before: &[Option<ProcUsage>],
    after: &[Option<ProcUsage>],
    changes: usize,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    let n = changes.max(1) as f64;
    let (mut cpu, mut vol, mut invol) = (0.0, 0.0, 0.0);
    for (((name, _), b), a) in names.iter().zip(before).zip(after) {
        let (Some(b), Some(a)) = (b, a) else { continue };
        let cpu_us = a.ticks.saturating_sub(b.ticks) as f64 * 10_000.0 / n;
        let v = a.voluntary.saturating_sub(b.voluntary) as f64 / n;
        let i = a.involuntary.saturating_sub(b.involuntary) as f64 / n;
        cpu += cpu_us;
        vol += v;
        invol += i;
        out.insert(
            name.clone(),
            json!({
                "cpu_us": round1(cpu_us),
                "voluntary_switches": round2(v),
                "involuntary_switches": round2(i),
            }),
        );
    }
    out.insert(
        "all".into(),
        json!({
            "cpu_us": round1(cpu),
            "voluntary_switches": round2(vol),
            "involuntary_switches": round2(invol),
        }),
    );
    serde_json::Value::Object(out)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Reads the marks of `dir` by process id.
pub(super) fn read_marks(dir: &Path) -> Result<BTreeMap<u32, Vec<Mark>>, String> {
    crate::telemetry::marks::read_dir(dir)
        .map(|v| v.into_iter().collect())
        .map_err(|e| format!("cannot read the marks in {}: {e}", dir.display()))
}

/// Percentiles of plain µs samples (for the notify figure measured beside the marks).
pub(super) fn summary_us(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    json!({
        "p50": percentile(&v, 0.5),
        "p99": percentile(&v, 0.99),
        "samples": v.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(at_ns: u64, stage: Stage) -> Mark {
        Mark { at_ns, stage, key: 0 }
    }

    #[test]
    fn marks_are_split_into_changes_by_the_setters_starts_and_roles_found_per_change() {
        let pids = Pids {
            setter: 1,
            listener: 2,
            replicas: vec![10, 11, 12],
        };
        let mut marks = BTreeMap::new();
        marks.insert(1, vec![m(100, Stage::SetStart), m(1000, Stage::SetStart)]);
        marks.insert(2, vec![m(500, Stage::Delivered), m(1500, Stage::Delivered)]);
        // Replica 10 leads the first change, replica 11 the second.
        marks.insert(
            10,
            vec![
                m(150, Stage::Proposed),
                m(300, Stage::WatchAnswer),
                m(1200, Stage::AppendRecv),
            ],
        );
        marks.insert(
            11,
            vec![
                m(200, Stage::AppendRecv),
                m(1100, Stage::Proposed),
                m(1300, Stage::WatchAnswer),
            ],
        );
        marks.insert(12, vec![m(250, Stage::AppendRecv), m(1150, Stage::AppendRecv)]);
        let c = changes(&pids, &marks);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].at[&(Role::Leader, Stage::Proposed)], 150);
        assert_eq!(c[0].at[&(Role::Follower, Stage::AppendRecv)], 200);
        assert_eq!(c[0].watch_from_leader, Some(true));
        assert_eq!(c[1].at[&(Role::Leader, Stage::Proposed)], 1100);
        assert_eq!(
            c[1].at[&(Role::Follower, Stage::AppendRecv)],
            1150,
            "replica 12 was first"
        );
        assert_eq!(c[1].watch_from_leader, Some(true));
        assert_eq!(c[1].at[&(Role::Listener, Stage::Delivered)], 1500);
        let r = report(&c);
        let total = r["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["segment"].as_str().unwrap().starts_with("total"))
            .unwrap();
        assert_eq!(total["samples"], 2);
        assert_eq!(total["p50_us"].as_f64(), Some(0.5), "of 0.4 and 0.5 µs");
    }
}
