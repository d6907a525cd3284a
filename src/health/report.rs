//! What a participant reports: samples accumulated between two writes ([`Pending`]) and
//! the record they are written as, one per instance, overwritten each interval:
//!
//! ```text
//!   /<C>/INSTANCES/<i>/HEALTHREPORT/ParticipantStats
//!   { "id": "ParticipantStats",
//!     "simpleFields": { "TIMESTAMP": "<ms of the write>" },
//!     "mapFields": { "latency_ms@db/db_3": { "STAT": "latency_ms", "RESOURCE": "db",
//!                      "PARTITION": "db_3", "VALUE": "12.5", "COUNT": "4", "TIMESTAMP": "<ms>" } } }
//! ```
//!
//! A (stat, scope) keeps its last value until it is reported again; its `TIMESTAMP` is
//! the write in which it last changed, so the controller folds each new value once.
//! Several reports of one (stat, scope) within an interval are written as their mean.
//! Built-ins, per resource: `transition_latency_ms` (mean duration of the transitions
//! that ended in the interval) and `transition_error_rate` (errors / transitions ended in
//! the interval, 0 in an interval without any, once the resource has had one).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::scope::Scope;
use super::{validate_stat_name, HealthError};
use crate::model::Record;

/// The id (and last path segment) of a participant's report record.
pub const REPORT_NAME: &str = "ParticipantStats";
/// Built-in: mean transition duration per resource, in ms.
pub const TRANSITION_LATENCY_MS: &str = "transition_latency_ms";
/// Built-in: share of transitions that ended in ERROR per resource, 0–1.
pub const TRANSITION_ERROR_RATE: &str = "transition_error_rate";
/// At most this many (stat, scope) pairs are kept per participant.
pub const MAX_SAMPLES: usize = 2000;

const STAT: &str = "STAT";
const RESOURCE: &str = "RESOURCE";
const PARTITION: &str = "PARTITION";
const VALUE: &str = "VALUE";
const COUNT: &str = "COUNT";
const TIMESTAMP: &str = "TIMESTAMP";

/// One reported value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The stat's name.
    pub stat: String,
    /// What it is about.
    pub scope: Scope,
    /// The value (the interval's mean when reported several times).
    pub value: f64,
    /// How many reports it is the mean of.
    pub count: u64,
    /// The write in which it last changed (ms since the Unix epoch).
    pub updated_ms: u64,
}

/// One instance's report as the controller reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The instance.
    pub instance: String,
    /// Its samples.
    pub samples: Vec<Sample>,
}

impl Report {
    /// Reads a report record; entries that are not samples are skipped.
    pub fn from_record(instance: &str, record: &Record) -> Report {
        let mut samples = Vec::new();
        for fields in record.map_fields.values() {
            let Some(stat) = fields.get(STAT).filter(|s| validate_stat_name(s).is_ok()) else {
                continue;
            };
            let scope = Scope {
                resource: fields.get(RESOURCE).cloned(),
                partition: fields.get(PARTITION).cloned(),
            };
            if scope.validate().is_err() {
                continue;
            }
            let Some(value) = fields
                .get(VALUE)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
            else {
                continue;
            };
            samples.push(Sample {
                stat: stat.clone(),
                scope,
                value,
                count: fields.get(COUNT).and_then(|c| c.parse().ok()).unwrap_or(1),
                updated_ms: fields.get(TIMESTAMP).and_then(|t| t.parse().ok()).unwrap_or(0),
            });
        }
        Report {
            instance: instance.to_string(),
            samples,
        }
    }
}

fn key(stat: &str, scope: &Scope) -> String {
    match (&scope.resource, &scope.partition) {
        (Some(r), Some(p)) => format!("{stat}@{r}/{p}"),
        (Some(r), None) => format!("{stat}@{r}"),
        _ => stat.to_string(),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    ended: u64,
    errors: u64,
    duration_ms_sum: f64,
    durations: u64,
}

/// What a participant accumulates between two writes of its report.
#[derive(Debug, Default)]
pub struct Pending {
    /// The last value of every (stat, scope) reported so far.
    latest: BTreeMap<(String, Scope), Sample>,
    /// (sum, count) of what was reported in this interval.
    interval: BTreeMap<(String, Scope), (f64, u64)>,
    /// Transitions begun and not ended: id → (resource, begin µs).
    begun: HashMap<String, (String, u64)>,
    /// This interval's ended transitions per resource.
    tallies: BTreeMap<String, Tally>,
    /// Resources that ever had a transition (their error rate is reported every interval).
    resources: BTreeSet<String>,
}

impl Pending {
    /// An empty accumulator.
    pub fn new() -> Self {
        Pending::default()
    }

    /// Records one value of `stat` about `scope`.
    pub fn report(&mut self, stat: &str, value: f64, scope: Scope) -> Result<(), HealthError> {
        validate_stat_name(stat)?;
        scope.validate()?;
        if !value.is_finite() {
            return Err(HealthError::invalid(
                format!("value of {stat}"),
                "must be a finite number",
            ));
        }
        let k = (stat.to_string(), scope);
        if !self.latest.contains_key(&k) && !self.interval.contains_key(&k) && self.size() >= MAX_SAMPLES {
            return Err(HealthError::invalid(
                format!("stat {stat}"),
                format!("a participant reports at most {MAX_SAMPLES} (stat, scope) pairs"),
            ));
        }
        let e = self.interval.entry(k).or_insert((0.0, 0));
        e.0 += value;
        e.1 += 1;
        Ok(())
    }

    fn size(&self) -> usize {
        let mut keys: BTreeSet<&(String, Scope)> = self.latest.keys().collect();
        keys.extend(self.interval.keys());
        keys.len()
    }

    /// A transition `id` of `resource` began at `at_us`.
    pub fn transition_begun(&mut self, id: &str, resource: &str, at_us: u64) {
        if self.begun.len() < 100_000 {
            self.begun.insert(id.to_string(), (resource.to_string(), at_us));
        }
    }

    /// Transition `id` ended at `at_us`: `ok`, or in ERROR; `None`: cancelled (not counted).
    pub fn transition_ended(&mut self, id: &str, ok: Option<bool>, at_us: u64) {
        let Some((resource, began)) = self.begun.remove(id) else {
            return;
        };
        let Some(ok) = ok else {
            return;
        };
        self.resources.insert(resource.clone());
        let t = self.tallies.entry(resource).or_default();
        t.ended += 1;
        if !ok {
            t.errors += 1;
        }
        t.duration_ms_sum += at_us.saturating_sub(began) as f64 / 1000.0;
        t.durations += 1;
    }

    /// Ends the interval: the record to write at `now_ms`, or `None` when nothing was
    /// reported since the last one.
    pub fn take(&mut self, now_ms: u64) -> Option<Record> {
        let mut changed = false;
        let mut set =
            |latest: &mut BTreeMap<(String, Scope), Sample>, k: (String, Scope), value: f64, count: u64| {
                changed = true;
                let (stat, scope) = k.clone();
                latest.insert(
                    k,
                    Sample {
                        stat,
                        scope,
                        value,
                        count,
                        updated_ms: now_ms,
                    },
                );
            };
        for (k, (sum, n)) in std::mem::take(&mut self.interval) {
            set(&mut self.latest, k, sum / n as f64, n);
        }
        let tallies = std::mem::take(&mut self.tallies);
        for r in &self.resources {
            let t = tallies.get(r).copied().unwrap_or_default();
            let rate = if t.ended == 0 {
                0.0
            } else {
                t.errors as f64 / t.ended as f64
            };
            set(
                &mut self.latest,
                (TRANSITION_ERROR_RATE.into(), Scope::resource(r)),
                rate,
                t.ended,
            );
            if t.durations > 0 {
                set(
                    &mut self.latest,
                    (TRANSITION_LATENCY_MS.into(), Scope::resource(r)),
                    t.duration_ms_sum / t.durations as f64,
                    t.durations,
                );
            }
        }
        if !changed {
            return None;
        }
        let mut record = Record::new(REPORT_NAME);
        record.set_simple(TIMESTAMP, now_ms);
        for s in self.latest.values() {
            let mut f = BTreeMap::new();
            f.insert(STAT.to_string(), s.stat.clone());
            if let Some(r) = &s.scope.resource {
                f.insert(RESOURCE.to_string(), r.clone());
            }
            if let Some(p) = &s.scope.partition {
                f.insert(PARTITION.to_string(), p.clone());
            }
            f.insert(VALUE.to_string(), s.value.to_string());
            f.insert(COUNT.to_string(), s.count.to_string());
            f.insert(TIMESTAMP.to_string(), s.updated_ms.to_string());
            record.map_fields.insert(key(&s.stat, &s.scope), f);
        }
        Some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_s_reports_are_written_as_their_mean_and_read_back() {
        let mut p = Pending::new();
        assert_eq!(p.take(1), None, "nothing reported, nothing written");
        p.report("latency_ms", 10.0, Scope::partition("db", "db_3"))
            .unwrap();
        p.report("latency_ms", 20.0, Scope::partition("db", "db_3"))
            .unwrap();
        p.report("qps", 7.0, Scope::instance()).unwrap();
        let r = p.take(100).unwrap();
        assert_eq!(r.id, REPORT_NAME);
        let back = Report::from_record("i1", &Record::from_json(&r.to_helix_json()).unwrap());
        assert_eq!(back.instance, "i1");
        assert_eq!(back.samples.len(), 2);
        let lat = back.samples.iter().find(|s| s.stat == "latency_ms").unwrap();
        assert_eq!((lat.value, lat.count, lat.updated_ms), (15.0, 2, 100));
        assert_eq!(lat.scope, Scope::partition("db", "db_3"));
        // The next interval keeps what was not reported again, with its old timestamp.
        p.report("qps", 9.0, Scope::instance()).unwrap();
        let back = Report::from_record("i1", &p.take(200).unwrap());
        let lat = back.samples.iter().find(|s| s.stat == "latency_ms").unwrap();
        let qps = back.samples.iter().find(|s| s.stat == "qps").unwrap();
        assert_eq!(lat.updated_ms, 100);
        assert_eq!((qps.value, qps.updated_ms), (9.0, 200));
        assert_eq!(p.take(300), None);
    }

    #[test]
    fn bad_reports_are_refused() {
        let mut p = Pending::new();
        assert!(p.report("a b", 1.0, Scope::instance()).is_err());
        assert!(p.report("x", f64::INFINITY, Scope::instance()).is_err());
        assert!(p.report("x", 1.0, Scope::resource("a,b")).is_err());
        assert_eq!(p.take(1), None);
        for i in 0..MAX_SAMPLES {
            p.report("x", 1.0, Scope::resource(format!("r{i}"))).unwrap();
        }
        assert!(p.report("x", 1.0, Scope::resource("one-more")).is_err());
        assert!(
            p.report("x", 2.0, Scope::resource("r0")).is_ok(),
            "a known pair is still accepted"
        );
    }

    #[test]
    fn transitions_give_latency_and_error_rate_per_resource() {
        let mut p = Pending::new();
        p.transition_begun("m1", "db", 1_000);
        p.transition_begun("m2", "db", 2_000);
        p.transition_begun("m3", "db", 2_000);
        p.transition_ended("m1", Some(true), 11_000);
        p.transition_ended("m2", Some(false), 32_000);
        p.transition_ended("m3", None, 40_000);
        p.transition_ended("unknown", Some(true), 40_000);
        let r = Report::from_record("i", &p.take(50).unwrap());
        let get = |s: &str| r.samples.iter().find(|x| x.stat == s).map(|x| x.value);
        assert_eq!(get(TRANSITION_LATENCY_MS), Some(20.0));
        assert_eq!(get(TRANSITION_ERROR_RATE), Some(0.5));
        // A quiet interval: the error rate drops to 0, the latency keeps its last value.
        let r = Report::from_record("i", &p.take(60).unwrap());
        let rate = r
            .samples
            .iter()
            .find(|x| x.stat == TRANSITION_ERROR_RATE)
            .unwrap();
        let lat = r
            .samples
            .iter()
            .find(|x| x.stat == TRANSITION_LATENCY_MS)
            .unwrap();
        assert_eq!((rate.value, rate.updated_ms), (0.0, 60));
        assert_eq!((lat.value, lat.updated_ms), (20.0, 50));
    }

    #[test]
    fn malformed_entries_are_skipped() {
        let mut r = Record::new(REPORT_NAME);
        let entry = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        r.map_fields
            .insert("a".into(), entry(&[("STAT", "ok"), ("VALUE", "1")]));
        r.map_fields
            .insert("b".into(), entry(&[("STAT", "bad name"), ("VALUE", "1")]));
        r.map_fields
            .insert("c".into(), entry(&[("STAT", "x"), ("VALUE", "NaN")]));
        r.map_fields.insert(
            "d".into(),
            entry(&[("STAT", "x"), ("VALUE", "1"), ("PARTITION", "p")]),
        );
        r.map_fields.insert("e".into(), entry(&[("VALUE", "1")]));
        let rep = Report::from_record("i", &r);
        assert_eq!(rep.samples.len(), 1);
        assert_eq!(rep.samples[0].stat, "ok");
    }
}
