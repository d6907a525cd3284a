//! The trace of a run: every fault step and every participant transition, stamped with
//! virtual time, and its digest (the same seed must give the same digest). A failing run
//! prints a minimal trace: the fault steps and the events around the violation.

use std::fmt::Write as _;

/// What a trace line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A fault injected or healed, or a phase of the run.
    Fault,
    /// A participant's transition event.
    Event,
    /// Something else the run noted (a member restarted, a check's result).
    Note,
}

/// One line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Virtual time since the run started, µs.
    pub at_us: u64,
    /// What it is.
    pub kind: Kind,
    /// The text.
    pub text: String,
}

/// A run's trace.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    lines: Vec<Line>,
}

impl Trace {
    /// Appends a line.
    pub fn push(&mut self, at_us: u64, kind: Kind, text: impl Into<String>) {
        self.lines.push(Line {
            at_us,
            kind,
            text: text.into(),
        });
    }

    /// Every line, in the order they were pushed.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// FNV-1a over every line's time, kind and text: equal traces have equal digests.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        for l in &self.lines {
            eat(&l.at_us.to_le_bytes());
            eat(&[l.kind as u8]);
            eat(l.text.as_bytes());
            eat(b"\n");
        }
        h
    }

    /// The fault lines, and the other lines from `window_us` before the first of `around`
    /// (µs) to `window_us` after the last that contain `subject` (any line if `None`), each
    /// with its index (so several can be merged in order).
    pub fn minimal(&self, around: &[u64], window_us: u64, subject: Option<&str>) -> Vec<(usize, &Line)> {
        let from = around
            .iter()
            .min()
            .map_or(u64::MAX, |t| t.saturating_sub(window_us));
        let to = around.iter().max().map_or(0, |t| t.saturating_add(window_us));
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                l.kind == Kind::Fault
                    || (l.at_us >= from
                        && l.at_us <= to
                        && subject.is_none_or(|s| l.text.contains(s) || l.kind == Kind::Note))
            })
            .collect()
    }

    /// Where two runs' traces first differ: the line's index and each run's line there
    /// (`None` where that run's trace had already ended); `None` if they are equal.
    pub fn first_difference<'a>(
        a: &'a [Line],
        b: &'a [Line],
    ) -> Option<(usize, Option<&'a Line>, Option<&'a Line>)> {
        let k = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        (k < a.len().max(b.len())).then(|| (k, a.get(k), b.get(k)))
    }

    /// [`Trace::minimal`] as text, one line each (`  12.345s  text`).
    pub fn render(lines: &[&Line]) -> String {
        let mut out = String::new();
        for l in lines {
            let mark = match l.kind {
                Kind::Fault => "!",
                Kind::Event => " ",
                Kind::Note => "*",
            };
            let _ = writeln!(out, "{mark} {:>10.3}s  {}", l.at_us as f64 / 1e6, l.text);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_changes_with_any_line_and_the_minimal_trace_keeps_faults_and_the_window() {
        let mut a = Trace::default();
        a.push(1_000, Kind::Fault, "crash node-1");
        a.push(2_000, Kind::Event, "node-2 SLAVE->MASTER begin");
        a.push(90_000_000, Kind::Event, "far away");
        let mut b = a.clone();
        assert_eq!(a.digest(), b.digest());
        b.push(3_000, Kind::Note, "x");
        assert_ne!(a.digest(), b.digest());
        let mut c = Trace::default();
        c.push(1_001, Kind::Fault, "crash node-1");
        c.push(2_000, Kind::Event, "node-2 SLAVE->MASTER begin");
        c.push(90_000_000, Kind::Event, "far away");
        assert_ne!(a.digest(), c.digest(), "the time is part of the digest");
        let m = a.minimal(&[2_500], 1_000, None);
        let texts: Vec<&str> = m.iter().map(|(_, l)| l.text.as_str()).collect();
        assert_eq!(texts, ["crash node-1", "node-2 SLAVE->MASTER begin"]);
        let m = a.minimal(&[2_500], 1_000, Some("node-3"));
        let texts: Vec<&str> = m.iter().map(|(_, l)| l.text.as_str()).collect();
        assert_eq!(
            texts,
            ["crash node-1"],
            "only lines about the subject besides faults"
        );
    }

    #[test]
    fn the_first_difference_is_the_first_unequal_line_or_where_one_trace_ends() {
        let mut a = Trace::default();
        a.push(1_000, Kind::Fault, "crash node-1");
        a.push(2_000, Kind::Event, "node-2 SLAVE->MASTER begin");
        assert_eq!(Trace::first_difference(a.lines(), a.lines()), None);
        let mut later = Trace::default();
        later.push(1_000, Kind::Fault, "crash node-1");
        later.push(2_001, Kind::Event, "node-2 SLAVE->MASTER begin");
        let (k, x, y) = Trace::first_difference(a.lines(), later.lines()).unwrap();
        assert_eq!(
            (k, x.map(|l| l.at_us), y.map(|l| l.at_us)),
            (1, Some(2_000), Some(2_001))
        );
        let mut longer = a.clone();
        longer.push(3_000, Kind::Note, "x");
        let (k, x, y) = Trace::first_difference(a.lines(), longer.lines()).unwrap();
        assert_eq!((k, x, y.map(|l| l.text.as_str())), (2, None, Some("x")));
    }
}
