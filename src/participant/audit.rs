//! Checks the invariant "never more replicas of a partition in a state than its bound, as
//! reported by participants" over the participants' transition logs (the JSON lines
//! `strand participant run` prints, or [`super::TransitionEvent`]s).
//!
//! A replica counts as holding a state conservatively: from the `begin` of the transition
//! into it (the application may start serving then) until the end (`ok` or `error`; a
//! `cancelled` one leaves the replica where it was) of the transition out of it, or until
//! its process was killed (the caller gives kill times), or the end of the log. Two such intervals of one partition in a
//! bounded state that overlap are a violation.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One line of a participant's transition log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LogLine {
    /// Wall clock, µs.
    pub ts_us: u64,
    /// The instance.
    pub instance: String,
    /// The resource.
    pub resource: String,
    /// The partition.
    pub partition: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
    /// begin, ok, error, cancelled, discarded.
    pub phase: String,
}

/// A replica holding a state over an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// The instance.
    pub instance: String,
    /// From (µs).
    pub start_us: u64,
    /// To (µs); `u64::MAX` when it still holds it.
    pub end_us: u64,
}

/// Two replicas of one partition in `state` at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The resource.
    pub resource: String,
    /// The partition.
    pub partition: String,
    /// The state.
    pub state: String,
    /// The replicas' overlapping intervals.
    pub intervals: Vec<Interval>,
}

/// The intervals during which each replica held `state`: (resource, partition) → intervals.
/// `ends` gives, per instance, the times its processes stopped (sorted or not); an interval
/// open when a process stopped ends then.
pub fn intervals(
    lines: &[LogLine],
    state: &str,
    ends: &BTreeMap<String, Vec<u64>>,
) -> BTreeMap<(String, String), Vec<Interval>> {
    let mut sorted: Vec<&LogLine> = lines.iter().collect();
    sorted.sort_by_key(|l| l.ts_us);
    let mut open: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut out: BTreeMap<(String, String), Vec<Interval>> = BTreeMap::new();
    let end_after = |instance: &str, start: u64| -> u64 {
        ends.get(instance)
            .and_then(|v| v.iter().copied().filter(|t| *t >= start).min())
            .unwrap_or(u64::MAX)
    };
    for l in sorted {
        let key = (l.resource.clone(), l.partition.clone(), l.instance.clone());
        if l.to == state && l.phase == "begin" {
            open.entry(key.clone()).or_insert(l.ts_us);
        }
        if l.to == state && (l.phase == "error" || l.phase == "cancelled") {
            // It never got there.
            if let Some(start) = open.remove(&key) {
                out.entry((key.0.clone(), key.1.clone()))
                    .or_default()
                    .push(Interval {
                        instance: key.2.clone(),
                        start_us: start,
                        end_us: l.ts_us,
                    });
            }
        }
        // A cancelled transition out of the state leaves the replica in it (the step-down
        // that follows reports when it really leaves).
        if l.from == state && matches!(l.phase.as_str(), "ok" | "error") {
            if let Some(start) = open.remove(&key) {
                out.entry((key.0.clone(), key.1.clone()))
                    .or_default()
                    .push(Interval {
                        instance: key.2.clone(),
                        start_us: start,
                        end_us: l.ts_us.min(end_after(&key.2, start)),
                    });
            }
        }
    }
    for ((r, p, i), start) in open {
        let end = end_after(&i, start);
        out.entry((r, p)).or_default().push(Interval {
            instance: i,
            start_us: start,
            end_us: end,
        });
    }
    out
}

/// Every time more than `bound` replicas of a partition held `state` at once.
pub fn violations(
    lines: &[LogLine],
    state: &str,
    bound: usize,
    ends: &BTreeMap<String, Vec<u64>>,
) -> Vec<Violation> {
    overlaps(intervals(lines, state, ends), state, bound)
}

/// Every time more than `bound` replicas held `state` at once, with spans of each instance
/// (µs) taken out of its intervals: a frozen process serves nothing, so only what it does
/// while running counts. The caller chooses the spans: `SIGSTOP` → `SIGCONT` counts a
/// replica that wakes up still holding the state while another took it over as a violation
/// until it steps down; `strand bench chaos` adds a bounded grace after `SIGCONT` for the
/// step-down itself and reports how long each one took.
pub fn violations_with_pauses(
    lines: &[LogLine],
    state: &str,
    bound: usize,
    ends: &BTreeMap<String, Vec<u64>>,
    pauses: &BTreeMap<String, Vec<(u64, u64)>>,
) -> Vec<Violation> {
    let mut held = intervals(lines, state, ends);
    for ivs in held.values_mut() {
        *ivs = ivs
            .drain(..)
            .flat_map(|iv| {
                let spans = pauses.get(&iv.instance).cloned().unwrap_or_default();
                without_spans(iv, &spans)
            })
            .collect();
    }
    overlaps(held, state, bound)
}

/// `iv` with `spans` cut out of it: the pieces left.
fn without_spans(iv: Interval, spans: &[(u64, u64)]) -> Vec<Interval> {
    let mut pieces = vec![iv];
    for &(from, to) in spans {
        pieces = pieces
            .into_iter()
            .flat_map(|p| {
                let mut left = Vec::new();
                if p.start_us < from.min(p.end_us) {
                    left.push(Interval {
                        end_us: from.min(p.end_us),
                        ..p.clone()
                    });
                }
                if to.max(p.start_us) < p.end_us {
                    left.push(Interval {
                        start_us: to.max(p.start_us),
                        ..p
                    });
                }
                left
            })
            .collect();
    }
    pieces
}

fn overlaps(held: BTreeMap<(String, String), Vec<Interval>>, state: &str, bound: usize) -> Vec<Violation> {
    let mut out = Vec::new();
    for ((resource, partition), mut ivs) in held {
        ivs.sort_by_key(|i| i.start_us);
        // Sweep: at each start, the intervals still open.
        for (k, iv) in ivs.iter().enumerate() {
            let overlapping: Vec<Interval> = ivs[..=k]
                .iter()
                .filter(|o| o.end_us > iv.start_us)
                .cloned()
                .collect();
            if overlapping.len() > bound {
                out.push(Violation {
                    resource: resource.clone(),
                    partition: partition.clone(),
                    state: state.to_string(),
                    intervals: overlapping,
                });
            }
        }
    }
    out
}

/// Parses JSON lines, skipping lines that are not transition events.
pub fn parse_lines(text: &str) -> Vec<LogLine> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<LogLine>(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: u64, i: &str, from: &str, to: &str, phase: &str) -> LogLine {
        LogLine {
            ts_us: ts,
            instance: i.into(),
            resource: "db".into(),
            partition: "db_0".into(),
            from: from.into(),
            to: to.into(),
            phase: phase.into(),
        }
    }

    #[test]
    fn a_clean_hand_over_is_no_violation_an_overlap_is() {
        let clean = vec![
            line(10, "a", "SLAVE", "MASTER", "begin"),
            line(11, "a", "SLAVE", "MASTER", "ok"),
            line(20, "a", "MASTER", "SLAVE", "begin"),
            line(21, "a", "MASTER", "SLAVE", "ok"),
            line(30, "b", "SLAVE", "MASTER", "begin"),
            line(31, "b", "SLAVE", "MASTER", "ok"),
        ];
        assert!(violations(&clean, "MASTER", 1, &BTreeMap::new()).is_empty());
        let mut bad = clean.clone();
        bad.push(line(15, "c", "SLAVE", "MASTER", "begin"));
        let v = violations(&bad, "MASTER", 1, &BTreeMap::new());
        assert!(!v.is_empty());
        assert!(v[0].intervals.iter().any(|i| i.instance == "c"));
    }

    #[test]
    fn a_killed_master_ends_at_its_kill_and_a_master_that_never_left_stays_open() {
        let lines = vec![
            line(10, "a", "SLAVE", "MASTER", "begin"),
            line(11, "a", "SLAVE", "MASTER", "ok"),
            line(50, "b", "SLAVE", "MASTER", "begin"),
        ];
        let ends = BTreeMap::from([("a".to_string(), vec![40])]);
        assert!(violations(&lines, "MASTER", 1, &ends).is_empty());
        // Without the kill, a still holds MASTER when b begins.
        assert_eq!(violations(&lines, "MASTER", 1, &BTreeMap::new()).len(), 1);
        // A failed promotion only counts while it ran.
        let failed = vec![
            line(10, "a", "SLAVE", "MASTER", "begin"),
            line(12, "a", "SLAVE", "MASTER", "error"),
            line(13, "b", "SLAVE", "MASTER", "begin"),
        ];
        assert!(violations(&failed, "MASTER", 1, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_cancelled_demotion_leaves_the_replica_master_until_its_step_down_ends() {
        // The session ends while MASTER→SLAVE runs: the demotion is cancelled (the replica is
        // unchanged, still MASTER), then the step-down walks it MASTER→SLAVE for real. A
        // promotion elsewhere before that step-down ends is two MASTERs.
        let lines = vec![
            line(10, "a", "SLAVE", "MASTER", "begin"),
            line(11, "a", "SLAVE", "MASTER", "ok"),
            line(20, "a", "MASTER", "SLAVE", "begin"),
            line(21, "a", "MASTER", "SLAVE", "cancelled"),
            line(25, "b", "SLAVE", "MASTER", "begin"),
            line(30, "a", "MASTER", "SLAVE", "begin"),
            line(31, "a", "MASTER", "SLAVE", "ok"),
        ];
        assert_eq!(violations(&lines, "MASTER", 1, &BTreeMap::new()).len(), 1);
        // The promotion after the step-down is fine.
        let mut later = lines.clone();
        later[4].ts_us = 35;
        assert!(violations(&later, "MASTER", 1, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_paused_master_counts_only_while_it_runs() {
        // a is MASTER, frozen at 20, b promoted at 30, a wakes at 40 and steps down at 45.
        let lines = vec![
            line(10, "a", "SLAVE", "MASTER", "begin"),
            line(11, "a", "SLAVE", "MASTER", "ok"),
            line(30, "b", "SLAVE", "MASTER", "begin"),
            line(31, "b", "SLAVE", "MASTER", "ok"),
            line(44, "a", "MASTER", "SLAVE", "begin"),
            line(45, "a", "MASTER", "SLAVE", "ok"),
        ];
        let none = BTreeMap::new();
        assert_eq!(
            violations(&lines, "MASTER", 1, &none).len(),
            1,
            "overlap by the clock"
        );
        // Woken at 40, it still held MASTER until 45 while b did: a zombie window.
        let woke_early = BTreeMap::from([("a".to_string(), vec![(20, 40)])]);
        let v = violations_with_pauses(&lines, "MASTER", 1, &none, &woke_early);
        assert_eq!(v.len(), 1);
        assert_eq!(
            v[0].intervals
                .iter()
                .map(|i| (i.start_us, i.end_us))
                .collect::<Vec<_>>(),
            vec![(30, u64::MAX), (40, 45)]
        );
        // Paused until its step-down (it stepped down as it woke): no violation.
        let slept_through = BTreeMap::from([("a".to_string(), vec![(20, 45)])]);
        assert!(violations_with_pauses(&lines, "MASTER", 1, &none, &slept_through).is_empty());
        // Pieces on both sides of a pause inside an interval.
        let iv = Interval {
            instance: "a".into(),
            start_us: 10,
            end_us: 100,
        };
        let pieces = without_spans(iv, &[(20, 30), (50, 60), (200, 300)]);
        assert_eq!(
            pieces.iter().map(|i| (i.start_us, i.end_us)).collect::<Vec<_>>(),
            vec![(10, 20), (30, 50), (60, 100)]
        );
    }

    #[test]
    fn parse_skips_other_lines() {
        let text = "{\"event\":\"x\"}\nnot json\n{\"ts_us\":1,\"instance\":\"a\",\"session\":\"s\",\"resource\":\"db\",\"partition\":\"db_0\",\"from\":\"OFFLINE\",\"to\":\"SLAVE\",\"phase\":\"ok\",\"msg_id\":\"m\",\"epoch\":3}\n";
        assert_eq!(parse_lines(text).len(), 1);
    }
}
