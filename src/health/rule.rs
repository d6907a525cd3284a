//! The alert rule language:
//!
//! ```text
//!   rule      := spec selector comparator threshold
//!   spec      := SUM(stat) | AVG(stat) | EXPONENTIAL(α)(stat) | WINDOW(n)(stat)
//!   selector  := [INSTANCE=pat] | [RESOURCE=pat] | [PARTITION=pat] | [RESOURCE=pat,PARTITION=pat]
//!   comparator:= > | >= | < | <= | ==
//!   threshold := a decimal number (-1.5, 50, 2e3)
//!   pat       := a name, where * stands for any run of characters
//! ```
//!
//! `AVG(latency_ms)[RESOURCE=*] > 50` fires for each resource whose mean latency over its
//! reporters exceeds 50. Aggregation and scope names are case-insensitive; a rule is kept
//! and shown in its canonical text (upper-case names, single spaces).

use std::fmt;

use super::aggregate::{Aggregation, Alpha, StatSpec, MAX_WINDOW};
use super::scope::{wildcard_match, Group, GroupKind};
use super::{validate_stat_name, HealthError};

/// How a value is compared with a rule's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Comparator {
    /// `>`.
    Greater,
    /// `>=`.
    GreaterOrEqual,
    /// `<`.
    Less,
    /// `<=`.
    LessOrEqual,
    /// `==`.
    Equal,
}

impl Comparator {
    /// Whether `value` compared with `threshold` holds.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparator::Greater => value > threshold,
            Comparator::GreaterOrEqual => value >= threshold,
            Comparator::Less => value < threshold,
            Comparator::LessOrEqual => value <= threshold,
            Comparator::Equal => value == threshold,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Comparator::Greater => ">",
            Comparator::GreaterOrEqual => ">=",
            Comparator::Less => "<",
            Comparator::LessOrEqual => "<=",
            Comparator::Equal => "==",
        }
    }
}

/// Which groups a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// `INSTANCE=` pattern (alone).
    pub instance: Option<String>,
    /// `RESOURCE=` pattern.
    pub resource: Option<String>,
    /// `PARTITION=` pattern.
    pub partition: Option<String>,
}

impl Selector {
    /// The kind of group it selects.
    pub fn kind(&self) -> GroupKind {
        if self.partition.is_some() {
            GroupKind::Partition
        } else if self.resource.is_some() {
            GroupKind::Resource
        } else {
            GroupKind::Instance
        }
    }

    /// Whether `group` is one it selects.
    pub fn matches(&self, group: &Group) -> bool {
        let m = |p: &Option<String>, name: &str| p.as_deref().is_none_or(|p| wildcard_match(p, name));
        match group {
            Group::Instance(i) => self.kind() == GroupKind::Instance && m(&self.instance, i),
            Group::Resource(r) => self.kind() == GroupKind::Resource && m(&self.resource, r),
            Group::Partition { resource, partition } => {
                self.kind() == GroupKind::Partition
                    && m(&self.resource, resource)
                    && m(&self.partition, partition)
            }
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("INSTANCE", &self.instance),
            ("RESOURCE", &self.resource),
            ("PARTITION", &self.partition),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
        write!(f, "[{}]", parts.join(","))
    }
}

/// An alert rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The aggregate it watches.
    pub spec: StatSpec,
    /// The groups it looks at.
    pub selector: Selector,
    /// How the value is compared.
    pub comparator: Comparator,
    /// With what.
    pub threshold: f64,
}

impl Rule {
    /// Parses a rule; the error names the column where the text stops making sense.
    pub fn parse(text: &str) -> Result<Rule, HealthError> {
        let mut c = Cursor::new(text, "alert rule");
        c.skip_ws();
        let spec = c.spec()?;
        c.skip_ws();
        if !c.peek_is('[') {
            return Err(c.error(
                "expected a selector such as [RESOURCE=*], [INSTANCE=*] or [PARTITION=*] after the stat",
            ));
        }
        let selector = c.selector()?;
        c.skip_ws();
        let comparator = c.comparator()?;
        c.skip_ws();
        let threshold = c.number()?;
        c.skip_ws();
        if !c.at_end() {
            return Err(c.error("unexpected text after the threshold"));
        }
        Ok(Rule {
            spec,
            selector,
            comparator,
            threshold,
        })
    }

    /// Whether the rule fires for `value`.
    pub fn fires(&self, value: f64) -> bool {
        self.comparator.holds(value, self.threshold)
    }

    /// The canonical text (what [`fmt::Display`] prints).
    pub fn text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{} {} {}",
            self.spec,
            self.selector,
            self.comparator.as_str(),
            super::format_exact(self.threshold)
        )
    }
}

/// Parses a stat spec alone (for `addStat`).
pub(crate) fn parse_stat_spec(text: &str) -> Result<StatSpec, HealthError> {
    let mut c = Cursor::new(text, "stat");
    c.skip_ws();
    let spec = c.spec()?;
    c.skip_ws();
    if !c.at_end() {
        return Err(c.error(
            "unexpected text after the stat (a stat is e.g. AVG(latency_ms) or WINDOW(5)(latency_ms))",
        ));
    }
    Ok(spec)
}

/// A position in the text being parsed.
struct Cursor<'a> {
    text: &'a str,
    what: &'static str,
    chars: Vec<char>,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str, what: &'static str) -> Self {
        Cursor {
            text,
            what,
            chars: text.chars().collect(),
            at: 0,
        }
    }

    fn error(&self, reason: &str) -> HealthError {
        HealthError::Parse {
            what: self.what,
            text: self.text.to_string(),
            reason: format!("at column {}: {reason}", self.at + 1),
        }
    }

    fn at_end(&self) -> bool {
        self.at >= self.chars.len()
    }

    fn peek_is(&self, c: char) -> bool {
        self.chars.get(self.at) == Some(&c)
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: char, context: &str) -> Result<(), HealthError> {
        self.skip_ws();
        if self.peek_is(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{c}' {context}")))
        }
    }

    /// A run of characters that are none of the delimiters.
    fn word(&mut self) -> String {
        self.skip_ws();
        let start = self.at;
        while self.chars.get(self.at).is_some_and(|c| {
            !c.is_whitespace() && !matches!(c, '(' | ')' | '[' | ']' | ',' | '=' | '<' | '>')
        }) {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn spec(&mut self) -> Result<StatSpec, HealthError> {
        let name_at = self.at;
        let name = self.word();
        if name.is_empty() {
            return Err(self.error("expected an aggregation: SUM, AVG, EXPONENTIAL(α) or WINDOW(n)"));
        }
        self.expect('(', &format!("after {name}"))?;
        let aggregation = match name.to_ascii_uppercase().as_str() {
            "SUM" => Aggregation::Sum,
            "AVG" => Aggregation::Avg,
            "EXPONENTIAL" | "EXP" | "DECAY" => {
                let param_at = self.at;
                let alpha = self.number()?;
                let alpha = Alpha::new(alpha).ok_or_else(|| {
                    self.at = param_at;
                    self.error("the decay factor α must be greater than 0 and at most 1")
                })?;
                self.expect(')', "after the decay factor")?;
                self.expect('(', "before the stat name: EXPONENTIAL(α)(stat)")?;
                Aggregation::Exponential(alpha)
            }
            "WINDOW" => {
                self.skip_ws();
                let param_at = self.at;
                let n = self.word();
                let n = n
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_WINDOW).contains(n))
                    .ok_or_else(|| {
                        self.at = param_at;
                        self.error(&format!(
                            "the window size must be a whole number from 1 to {MAX_WINDOW}"
                        ))
                    })?;
                self.expect(')', "after the window size")?;
                self.expect('(', "before the stat name: WINDOW(n)(stat)")?;
                Aggregation::Window(n)
            }
            _ => {
                self.at = name_at;
                return Err(self.error(&format!(
                    "unknown aggregation {name:?}; expected SUM, AVG, EXPONENTIAL(α) or WINDOW(n)"
                )));
            }
        };
        self.skip_ws();
        let stat_at = self.at;
        let stat = self.word();
        if let Err(HealthError::Invalid { reason, .. }) = validate_stat_name(&stat) {
            self.at = stat_at;
            return Err(self.error(&format!("stat name {stat:?}: {reason}")));
        }
        self.expect(')', "after the stat name")?;
        Ok(StatSpec { aggregation, stat })
    }

    fn selector(&mut self) -> Result<Selector, HealthError> {
        self.expect('[', "to open the selector")?;
        let mut s = Selector {
            instance: None,
            resource: None,
            partition: None,
        };
        loop {
            let key_at = self.at;
            let key = self.word().to_ascii_uppercase();
            let slot = match key.as_str() {
                "INSTANCE" => &mut s.instance,
                "RESOURCE" => &mut s.resource,
                "PARTITION" => &mut s.partition,
                _ => {
                    self.at = key_at;
                    return Err(self.error(&format!(
                        "unknown scope {key:?}; expected INSTANCE, RESOURCE or PARTITION"
                    )));
                }
            };
            if slot.is_some() {
                self.at = key_at;
                return Err(self.error(&format!("{key} is given twice")));
            }
            self.expect('=', &format!("after {key}"))?;
            let pattern_at = self.at;
            let pattern = self.word();
            if pattern.is_empty() {
                return Err(self.error(&format!(
                    "expected a name or pattern after {key}= (use * for any)"
                )));
            }
            if pattern.chars().any(|c| c.is_control() || c == '/') {
                self.at = pattern_at;
                return Err(self.error("a pattern cannot contain '/' or control characters"));
            }
            *slot = Some(pattern);
            self.skip_ws();
            if self.peek_is(',') {
                self.at += 1;
                continue;
            }
            self.expect(']', "to close the selector")?;
            break;
        }
        if s.instance.is_some() && (s.resource.is_some() || s.partition.is_some()) {
            return Err(self.error("INSTANCE cannot be combined with RESOURCE or PARTITION"));
        }
        Ok(s)
    }

    fn comparator(&mut self) -> Result<Comparator, HealthError> {
        let rest: String = self.chars[self.at..].iter().take(2).collect();
        let (c, len) = if rest.starts_with(">=") {
            (Comparator::GreaterOrEqual, 2)
        } else if rest.starts_with("<=") {
            (Comparator::LessOrEqual, 2)
        } else if rest.starts_with("==") {
            (Comparator::Equal, 2)
        } else if rest.starts_with('>') {
            (Comparator::Greater, 1)
        } else if rest.starts_with('<') {
            (Comparator::Less, 1)
        } else {
            return Err(self.error("expected a comparison: >, >=, <, <= or =="));
        };
        self.at += len;
        Ok(c)
    }

    fn number(&mut self) -> Result<f64, HealthError> {
        self.skip_ws();
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        {
            self.at += 1;
        }
        let text: String = self.chars[start..self.at].iter().collect();
        let ok = !text.is_empty() && text.chars().any(|c| c.is_ascii_digit());
        match text.parse::<f64>() {
            Ok(v) if ok && v.is_finite() => Ok(v),
            _ => {
                self.at = start;
                Err(self.error("expected a decimal number"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brief_s_rule_parses_and_prints_canonically() {
        let r = Rule::parse("AVG(latency_ms)[RESOURCE=*] > 50").unwrap();
        assert_eq!(r.spec.aggregation, Aggregation::Avg);
        assert_eq!(r.spec.stat, "latency_ms");
        assert_eq!(r.selector.kind(), GroupKind::Resource);
        assert_eq!(r.comparator, Comparator::Greater);
        assert_eq!(r.threshold, 50.0);
        assert_eq!(r.text(), "AVG(latency_ms)[RESOURCE=*] > 50");
        let loose = Rule::parse("  avg( latency_ms )[ resource = * ]>50.0 ").unwrap();
        assert_eq!(loose.text(), r.text());
    }

    #[test]
    fn every_aggregation_comparator_and_scope_parses() {
        for (text, canonical) in [
            (
                "SUM(errors)[INSTANCE=localhost_*] >= 3",
                "SUM(errors)[INSTANCE=localhost_*] >= 3",
            ),
            (
                "EXPONENTIAL(0.5)(lat)[PARTITION=db_*] < 1.25",
                "EXPONENTIAL(0.5)(lat)[PARTITION=db_*] < 1.25",
            ),
            (
                "decay(0.25)(lat)[RESOURCE=db,PARTITION=*] <= -2",
                "EXPONENTIAL(0.25)(lat)[RESOURCE=db,PARTITION=*] <= -2",
            ),
            (
                "WINDOW(5)(qps)[RESOURCE=db] == 0",
                "WINDOW(5)(qps)[RESOURCE=db] == 0",
            ),
            ("AVG(x)[INSTANCE=*] > 2e3", "AVG(x)[INSTANCE=*] > 2000"),
        ] {
            let r = Rule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.text(), canonical);
            assert_eq!(Rule::parse(canonical).unwrap(), r, "{canonical} round-trips");
        }
    }

    #[test]
    fn comparators_hold_as_written() {
        let c = |t: &str| Rule::parse(&format!("AVG(x)[INSTANCE=*] {t} 5")).unwrap();
        assert!(c(">").fires(5.1) && !c(">").fires(5.0));
        assert!(c(">=").fires(5.0) && !c(">=").fires(4.9));
        assert!(c("<").fires(4.9) && !c("<").fires(5.0));
        assert!(c("<=").fires(5.0) && !c("<=").fires(5.1));
        assert!(c("==").fires(5.0) && !c("==").fires(5.1));
    }

    #[test]
    fn selectors_match_their_kind_of_group_only() {
        let r = Rule::parse("AVG(x)[RESOURCE=db*] > 1").unwrap();
        assert!(r.selector.matches(&Group::Resource("db1".into())));
        assert!(!r.selector.matches(&Group::Resource("other".into())));
        assert!(!r.selector.matches(&Group::Instance("db1".into())));
        let p = Rule::parse("AVG(x)[PARTITION=*_1] > 1").unwrap();
        let part = |r: &str, p: &str| Group::Partition {
            resource: r.into(),
            partition: p.into(),
        };
        assert!(p.selector.matches(&part("db", "db_1")));
        assert!(!p.selector.matches(&part("db", "db_2")));
        let rp = Rule::parse("AVG(x)[RESOURCE=a,PARTITION=*] > 1").unwrap();
        assert!(rp.selector.matches(&part("a", "a_0")) && !rp.selector.matches(&part("b", "b_0")));
    }

    #[test]
    fn bad_rules_get_clear_errors_and_never_panic() {
        for (text, needle) in [
            ("", "expected an aggregation"),
            ("MAX(x)[RESOURCE=*] > 1", "unknown aggregation \"MAX\""),
            ("AVG x [RESOURCE=*] > 1", "expected '('"),
            ("AVG()[RESOURCE=*] > 1", "stat name"),
            ("AVG(a b)[RESOURCE=*] > 1", "expected ')'"),
            ("AVG(x) > 1", "expected a selector"),
            ("AVG(x)[HOST=*] > 1", "unknown scope \"HOST\""),
            ("AVG(x)[RESOURCE=] > 1", "expected a name or pattern"),
            ("AVG(x)[RESOURCE=*,RESOURCE=a] > 1", "given twice"),
            ("AVG(x)[INSTANCE=*,RESOURCE=a] > 1", "cannot be combined"),
            ("AVG(x)[RESOURCE=*", "expected ']'"),
            ("AVG(x)[RESOURCE=*] 1", "expected a comparison"),
            ("AVG(x)[RESOURCE=*] => 1", "expected a comparison"),
            ("AVG(x)[RESOURCE=*] > fifty", "expected a decimal number"),
            ("AVG(x)[RESOURCE=*] > 1.2.3", "expected a decimal number"),
            ("AVG(x)[RESOURCE=*] > inf", "expected a decimal number"),
            ("AVG(x)[RESOURCE=*] > 1e999", "expected a decimal number"),
            ("AVG(x)[RESOURCE=*] > 1 or more", "unexpected text"),
            ("EXPONENTIAL(0)(x)[RESOURCE=*] > 1", "greater than 0"),
            ("EXPONENTIAL(1.5)(x)[RESOURCE=*] > 1", "at most 1"),
            ("EXPONENTIAL(x)[RESOURCE=*] > 1", "expected a decimal number"),
            ("WINDOW(0)(x)[RESOURCE=*] > 1", "window size"),
            ("WINDOW(2.5)(x)[RESOURCE=*] > 1", "window size"),
            ("WINDOW(5)[RESOURCE=*] > 1", "expected '('"),
            ("AVG(é)[RESOURCE=*] > 1", "stat name"),
        ] {
            let e = Rule::parse(text).expect_err(text);
            let msg = e.to_string();
            assert!(msg.contains(needle), "{text:?}: {msg}");
            assert!(msg.contains("column"), "{text:?}: {msg}");
        }
    }

    #[test]
    fn errors_point_at_the_column() {
        let e = Rule::parse("AVG(x)[RESOURCE=*] ? 5").unwrap_err().to_string();
        assert!(e.contains("at column 20"), "{e}");
    }

    #[test]
    fn stat_specs_parse_alone() {
        assert_eq!(
            StatSpec::parse("window(5)(lat)").unwrap().to_string(),
            "WINDOW(5)(lat)"
        );
        assert_eq!(StatSpec::parse("SUM(q)").unwrap().to_string(), "SUM(q)");
        assert!(StatSpec::parse("SUM(q)[RESOURCE=*]").is_err());
        assert!(StatSpec::parse("SUM").is_err());
    }

    /// Found by `tests/fuzz/text.rs`: the canonical text rounded numbers to six decimals,
    /// so `> 0.0000001` was stored as `> 0` (another rule) and `EXPONENTIAL(0.0000001)` as
    /// `EXPONENTIAL(0)`, which no longer parses.
    #[test]
    fn small_thresholds_and_decay_factors_survive_the_canonical_text() {
        for text in [
            "AVG(x)[RESOURCE=*] > 0.0000001",
            "EXPONENTIAL(0.0000001)(x)[INSTANCE=*] < 1",
            "WINDOW(1)(latency_ms)[INSTANCE=*] > 0.000000000000000000000000000000000000000006889976730267272",
        ] {
            let rule = Rule::parse(text).unwrap();
            let back = Rule::parse(&rule.text()).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, rule, "{text}");
        }
        assert_eq!(
            Rule::parse("AVG(x)[RESOURCE=*] > 0.0000001").unwrap().text(),
            "AVG(x)[RESOURCE=*] > 0.0000001"
        );
    }
}
