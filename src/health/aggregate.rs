//! Aggregation of reported samples into per-group values.
//!
//! ```text
//!   SUM(stat)            sum of the latest value of every (instance, scope) in the group
//!   AVG(stat)            their mean
//!   EXPONENTIAL(α)(stat) over time: v ← α·x + (1−α)·v, x = mean of the group's samples
//!                        reported since the previous fold (the first x sets v)
//!   WINDOW(n)(stat)      over time: mean of the last n such x
//! ```
//!
//! A sample counts only while its instance is live (the caller passes live instances'
//! reports only); a group without any sample has no aggregate. A sample is new to a fold
//! when its timestamp is later than the last one folded for its instance, which is kept
//! with the aggregates so that a new leader does not fold a report twice.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use super::report::Report;
use super::scope::Group;
use super::HealthError;

/// The smoothing factor of [`Aggregation::Exponential`], in (0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alpha(f64);

impl Alpha {
    /// `α` if it is in (0, 1].
    pub fn new(alpha: f64) -> Option<Alpha> {
        (alpha > 0.0 && alpha <= 1.0).then_some(Alpha(alpha))
    }

    /// The factor.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for Alpha {}

impl PartialOrd for Alpha {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Alpha {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The largest `WINDOW(n)`.
pub const MAX_WINDOW: usize = 1000;

/// How a stat's samples are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aggregation {
    /// Sum of the group's latest samples.
    Sum,
    /// Mean of the group's latest samples.
    Avg,
    /// Exponential decay over time.
    Exponential(Alpha),
    /// Mean of the last `n` observations.
    Window(usize),
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregation::Sum => write!(f, "SUM"),
            Aggregation::Avg => write!(f, "AVG"),
            Aggregation::Exponential(a) => write!(f, "EXPONENTIAL({})", super::format_exact(a.0)),
            Aggregation::Window(n) => write!(f, "WINDOW({n})"),
        }
    }
}

/// A stat with its aggregation: `AVG(latency_ms)`, `WINDOW(5)(latency_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatSpec {
    /// How samples are combined.
    pub aggregation: Aggregation,
    /// The stat's name as participants report it.
    pub stat: String,
}

impl StatSpec {
    /// Parses `AGG(stat)` (`SUM`, `AVG`) or `AGG(param)(stat)` (`EXPONENTIAL(α)`,
    /// `WINDOW(n)`); aggregation names are case-insensitive.
    pub fn parse(text: &str) -> Result<StatSpec, HealthError> {
        super::rule::parse_stat_spec(text)
    }
}

impl fmt::Display for StatSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.aggregation, self.stat)
    }
}

/// One group's aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The value.
    pub value: f64,
    /// SUM/AVG: how many samples; EXPONENTIAL/WINDOW: how many observations were folded.
    pub count: u64,
    /// WINDOW: the observations kept, oldest first.
    pub window: Vec<f64>,
    /// When the value last changed (ms since the Unix epoch).
    pub updated_ms: u64,
}

/// Every aggregate, and how far each instance's reports were folded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregates {
    /// (stat spec, group) → aggregate.
    pub entries: BTreeMap<(StatSpec, Group), Aggregate>,
    /// instance → the latest sample timestamp folded.
    pub folded: BTreeMap<String, u64>,
}

impl Aggregates {
    /// The aggregate of `spec` for `group`.
    pub fn get(&self, spec: &StatSpec, group: &Group) -> Option<&Aggregate> {
        self.entries.get(&(spec.clone(), group.clone()))
    }
}

#[derive(Default)]
struct Gathered {
    all: Vec<f64>,
    new: Vec<f64>,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Folds the live instances' `reports` into `prev` for every spec in `specs`.
pub fn fold(specs: &BTreeSet<StatSpec>, reports: &[Report], prev: &Aggregates, now_ms: u64) -> Aggregates {
    // stat → group → samples (all, and new since the last fold).
    let mut by_stat: BTreeMap<&str, BTreeMap<Group, Gathered>> = BTreeMap::new();
    let wanted: BTreeSet<&str> = specs.iter().map(|s| s.stat.as_str()).collect();
    let mut folded = BTreeMap::new();
    for r in reports {
        let since = prev.folded.get(&r.instance).copied().unwrap_or(0);
        let mut latest = since;
        for s in &r.samples {
            latest = latest.max(s.updated_ms);
            if !wanted.contains(s.stat.as_str()) || !s.value.is_finite() {
                continue;
            }
            let groups = by_stat.entry(s.stat.as_str()).or_default();
            for g in s.scope.groups(&r.instance) {
                let e = groups.entry(g).or_default();
                e.all.push(s.value);
                if s.updated_ms > since {
                    e.new.push(s.value);
                }
            }
        }
        folded.insert(r.instance.clone(), latest);
    }
    let mut entries = BTreeMap::new();
    for spec in specs {
        let Some(groups) = by_stat.get(spec.stat.as_str()) else {
            continue;
        };
        for (group, g) in groups {
            let key = (spec.clone(), group.clone());
            let before = prev.entries.get(&key);
            let next = step(spec.aggregation, before, g);
            let updated_ms = match before {
                Some(b) if b.value == next.value && b.count == next.count && b.window == next.window => {
                    b.updated_ms
                }
                _ => now_ms,
            };
            entries.insert(key, Aggregate { updated_ms, ..next });
        }
    }
    Aggregates { entries, folded }
}

fn step(aggregation: Aggregation, before: Option<&Aggregate>, g: &Gathered) -> Aggregate {
    let plain = |value: f64| Aggregate {
        value,
        count: g.all.len() as u64,
        window: Vec::new(),
        updated_ms: 0,
    };
    // The observation of this fold: the mean of what is new, or, for a group that has no
    // aggregate yet (a stat configured after it was reported), of what is there.
    let observation = match (before, g.new.is_empty()) {
        (_, false) => Some(mean(&g.new)),
        (None, true) => Some(mean(&g.all)),
        (Some(_), true) => None,
    };
    match aggregation {
        Aggregation::Sum => plain(g.all.iter().sum()),
        Aggregation::Avg => plain(mean(&g.all)),
        Aggregation::Exponential(alpha) => match (before, observation) {
            (Some(b), None) => b.clone(),
            (Some(b), Some(x)) => Aggregate {
                value: alpha.0 * x + (1.0 - alpha.0) * b.value,
                count: b.count + 1,
                window: Vec::new(),
                updated_ms: 0,
            },
            (None, x) => Aggregate {
                value: x.unwrap_or(0.0),
                count: 1,
                window: Vec::new(),
                updated_ms: 0,
            },
        },
        Aggregation::Window(n) => {
            let mut window: VecDeque<f64> = before
                .map(|b| b.window.iter().copied().collect())
                .unwrap_or_default();
            let count = before.map_or(0, |b| b.count);
            let Some(x) = observation else {
                return before.cloned().unwrap_or_else(|| plain(0.0));
            };
            window.push_back(x);
            while window.len() > n.max(1) {
                window.pop_front();
            }
            let window: Vec<f64> = window.into();
            Aggregate {
                value: mean(&window),
                count: count + 1,
                window,
                updated_ms: 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::report::Sample;
    use crate::health::scope::Scope;

    fn spec(text: &str) -> StatSpec {
        StatSpec::parse(text).unwrap()
    }

    fn report(instance: &str, samples: &[(&str, Scope, f64, u64)]) -> Report {
        Report {
            instance: instance.into(),
            samples: samples
                .iter()
                .map(|(stat, scope, value, at)| Sample {
                    stat: stat.to_string(),
                    scope: scope.clone(),
                    value: *value,
                    count: 1,
                    updated_ms: *at,
                })
                .collect(),
        }
    }

    fn value(a: &Aggregates, s: &str, g: Group) -> Option<f64> {
        a.get(&spec(s), &g).map(|x| x.value)
    }

    #[test]
    fn sum_and_avg_combine_the_latest_samples_per_instance_resource_and_partition() {
        let specs: BTreeSet<StatSpec> = [spec("SUM(qps)"), spec("AVG(qps)")].into();
        let reports = [
            report(
                "i1",
                &[
                    ("qps", Scope::partition("db", "db_0"), 10.0, 5),
                    ("qps", Scope::partition("db", "db_1"), 30.0, 5),
                ],
            ),
            report("i2", &[("qps", Scope::partition("db", "db_0"), 20.0, 5)]),
            report("i3", &[("other", Scope::instance(), 1.0, 5)]),
        ];
        let a = fold(&specs, &reports, &Aggregates::default(), 100);
        assert_eq!(value(&a, "SUM(qps)", Group::Resource("db".into())), Some(60.0));
        assert_eq!(value(&a, "AVG(qps)", Group::Resource("db".into())), Some(20.0));
        assert_eq!(value(&a, "SUM(qps)", Group::Instance("i1".into())), Some(40.0));
        let p0 = Group::Partition {
            resource: "db".into(),
            partition: "db_0".into(),
        };
        assert_eq!(value(&a, "AVG(qps)", p0.clone()), Some(15.0));
        assert_eq!(a.get(&spec("AVG(qps)"), &p0).unwrap().count, 2);
        // Stats nobody configured are not kept; instances without samples have no group.
        assert_eq!(value(&a, "SUM(qps)", Group::Instance("i3".into())), None);
        assert_eq!(a.entries.len(), 2 * 5);
        // i2 is gone (not live): its sample stops counting.
        let b = fold(&specs, &reports[..1], &a, 200);
        assert_eq!(value(&b, "SUM(qps)", Group::Resource("db".into())), Some(40.0));
        assert_eq!(value(&b, "SUM(qps)", Group::Instance("i2".into())), None);
    }

    #[test]
    fn exponential_decay_folds_each_new_report_once() {
        let specs: BTreeSet<StatSpec> = [spec("EXPONENTIAL(0.5)(lat)")].into();
        let g = Group::Instance("i1".into());
        let a = fold(
            &specs,
            &[report("i1", &[("lat", Scope::instance(), 100.0, 1)])],
            &Aggregates::default(),
            1,
        );
        assert_eq!(value(&a, "EXPONENTIAL(0.5)(lat)", g.clone()), Some(100.0));
        // The same report again (nothing new): unchanged, and so is its timestamp.
        let same = fold(
            &specs,
            &[report("i1", &[("lat", Scope::instance(), 100.0, 1)])],
            &a,
            2,
        );
        assert_eq!(same, a);
        let b = fold(
            &specs,
            &[report("i1", &[("lat", Scope::instance(), 0.0, 3)])],
            &a,
            3,
        );
        assert_eq!(value(&b, "EXPONENTIAL(0.5)(lat)", g.clone()), Some(50.0));
        let c = fold(
            &specs,
            &[report("i1", &[("lat", Scope::instance(), 0.0, 4)])],
            &b,
            4,
        );
        assert_eq!(value(&c, "EXPONENTIAL(0.5)(lat)", g.clone()), Some(25.0));
        assert_eq!(c.get(&spec("EXPONENTIAL(0.5)(lat)"), &g).unwrap().count, 3);
        assert_eq!(c.folded["i1"], 4);
    }

    #[test]
    fn a_window_keeps_the_last_n_observations() {
        let specs: BTreeSet<StatSpec> = [spec("WINDOW(3)(lat)")].into();
        let g = Group::Resource("db".into());
        let mut a = Aggregates::default();
        for (t, v) in [(1, 10.0), (2, 20.0), (3, 30.0), (4, 60.0)] {
            a = fold(
                &specs,
                &[report("i1", &[("lat", Scope::resource("db"), v, t)])],
                &a,
                t,
            );
        }
        let w = a.get(&spec("WINDOW(3)(lat)"), &g).unwrap();
        assert_eq!(w.window, vec![20.0, 30.0, 60.0]);
        assert!((w.value - 110.0 / 3.0).abs() < 1e-9);
        assert_eq!(w.count, 4);
        // Two instances reporting in one fold make one observation: their mean.
        let two = [
            report("i1", &[("lat", Scope::resource("db"), 0.0, 9)]),
            report("i2", &[("lat", Scope::resource("db"), 30.0, 9)]),
        ];
        let b = fold(&specs, &two, &a, 9);
        assert_eq!(
            b.get(&spec("WINDOW(3)(lat)"), &g).unwrap().window,
            vec![30.0, 60.0, 15.0]
        );
    }

    #[test]
    fn non_finite_samples_are_ignored() {
        let specs: BTreeSet<StatSpec> = [spec("SUM(x)")].into();
        let a = fold(
            &specs,
            &[report(
                "i1",
                &[
                    ("x", Scope::instance(), f64::NAN, 1),
                    ("x", Scope::resource("r"), 2.0, 1),
                ],
            )],
            &Aggregates::default(),
            1,
        );
        assert_eq!(value(&a, "SUM(x)", Group::Instance("i1".into())), Some(2.0));
    }
}
