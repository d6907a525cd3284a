//! Health reports and alerts (Helix's "health monitoring and alerting"), the pure part.
//!
//! ```text
//!  participant                       store                              leading controller
//!   report(stat, value, scope) ─┐
//!   built-ins from transitions ─┴► report::Pending ─ one write per interval ─►
//!                                   /<C>/INSTANCES/<i>/HEALTHREPORT/ParticipantStats
//!                                                                      mirror ─► decide::decide
//!   admin: rules (rule) ─► /<C>/CONTROLLER/ALERTS                       (aggregate::fold over the
//!          stats (StatSpec) ─► /<C>/CONTROLLER/STATS                     live reports; alert::evaluate)
//!                                   /<C>/CONTROLLER/PERSISTENTSTATS ◄── fenced writes of what changed
//!                                   /<C>/CONTROLLER/ALERT_STATUS    ◄──
//!                                   /<C>/CONTROLLER/ALERT_HISTORY   ◄── (the last 100 transitions)
//! ```
//!
//! - [`scope`]: where a sample was measured and the groups aggregates are kept for
//!   (`INSTANCE=i`, `RESOURCE=r`, `RESOURCE=r,PARTITION=p`), with `*` patterns.
//! - [`aggregate`]: `SUM`, `AVG` (over the group's reporters, latest value of each),
//!   `EXPONENTIAL(α)` and `WINDOW(n)` (over time, one observation per new report).
//! - [`rule`]: the alert rule language, `AVG(latency_ms)[RESOURCE=*] > 50`.
//! - [`alert`]: evaluation, firing and clearing per (rule, group).
//! - [`report`]: what a participant accumulates between two writes, and its record.
//! - [`records`]: the controller's records (aggregates, alert status, history, rules, stats).
//! - [`decide`]: one controller tick, from inputs to the records to write.
//!
//! Nothing here does I/O or reads a clock: time comes from the caller.

pub mod aggregate;
pub mod alert;
pub mod decide;
pub mod records;
pub mod report;
pub mod rule;
pub mod scope;

pub use aggregate::{Aggregate, Aggregates, Aggregation, StatSpec};
pub use alert::{AlertStatus, AlertTransition, Firing, TransitionKind};
pub use report::{Pending, Report, Sample};
pub use rule::{Comparator, Rule, Selector};
pub use scope::{Group, GroupKind, Scope};

/// Why a stat, a rule, a scope or a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// An alert rule or a stat does not parse; nothing was changed.
    #[error("{what} {text:?}: {reason}")]
    Parse {
        /// `alert rule` or `stat`.
        what: &'static str,
        /// The text given.
        text: String,
        /// What is wrong, with the column (1-based) where it was found.
        reason: String,
    },
    /// A stat name, resource or partition name, or value cannot be reported.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was given.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl HealthError {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        HealthError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Checks a stat name: 1–128 characters of letters, digits, `_`, `.`, `-` and `:`.
pub fn validate_stat_name(name: &str) -> Result<(), HealthError> {
    let bad = |reason: &str| HealthError::invalid(format!("stat name {name:?}"), reason);
    if name.is_empty() {
        return Err(bad("a stat name cannot be empty"));
    }
    if name.len() > 128 {
        return Err(bad("a stat name has at most 128 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
    {
        return Err(bad("only letters, digits, '_', '.', '-' and ':' are allowed"));
    }
    Ok(())
}

/// Formats a number of a rule or stat spec in their canonical text: the shortest decimal
/// that reads back as the same number (`0.0000001`, not [`format_value`]'s `0`), so a
/// rule stored as text means what was added.
pub fn format_exact(v: f64) -> String {
    format!("{v}")
}

/// Formats a value for records and tables: integers without a fraction, others with at
/// most six significant decimals.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_are_checked() {
        assert!(validate_stat_name("latency_ms").is_ok());
        assert!(validate_stat_name("db.read-qps:p99").is_ok());
        for bad in ["", "a b", "x(y)", "a,b", &"x".repeat(129)] {
            assert!(validate_stat_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_print_short() {
        assert_eq!(format_value(50.0), "50");
        assert_eq!(format_value(-3.0), "-3");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(1.0 / 3.0), "0.333333");
        for v in [1e-7, 1.0 / 3.0, 1e300, -2.5, 6.889976730267272e-289, 50.0] {
            assert_eq!(format_exact(v).parse::<f64>().unwrap(), v);
        }
        assert_eq!(format_exact(50.0), "50");
    }
}
