//! The local-health guard: how much the node itself can be trusted right now (Lifeguard).
//!
//! SWIM assumes that a member that misses an ack is the one at fault. When the *prober* is
//! the slow one (its event loop stalled, its CPU starved), it accuses healthy members. foca
//! has no defence against that, so the shell wraps it with this guard:
//!
//! ```text
//!   timer fired late ─┐                         ┌─► stretch probe period, probe timeout and
//!   ack late / missed ├─► score 0..=max_score ──┤   suspicion timeout by (1 + score)
//!   we were suspected ┘   (on-time acks -1)     └─► hold accusations (suspect, down) back
//!                                                   while a stall was just seen
//! ```
//!
//! Pure and synchronous: every input carries the time it happened, nothing reads a clock.

use std::time::{Duration, Instant};

/// How the guard judges the node's own health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// A timer that fires later than this counts as a stall of the node's own loop.
    pub stall_threshold: Duration,
    /// The highest health score; timeouts stretch by at most `1 + max_score`.
    pub max_score: u32,
    /// After a stall, accusations are held back for twice the stall, at least this long.
    pub min_hold: Duration,
    /// ... and at most this long.
    pub max_hold: Duration,
    /// Failed probes of two different members within this window implicate this node
    /// (one dead member cannot fail two probes of different targets).
    pub failure_window: Duration,
}

impl Default for HealthConfig {
    /// LAN defaults: a stall is a timer 50 ms late; score up to 4; holds of 150 ms to 2 s;
    /// failures of two different probe targets within 250 ms (consecutive probes at the
    /// default 100 ms period) count against this node.
    fn default() -> Self {
        HealthConfig {
            stall_threshold: Duration::from_millis(50),
            max_score: 4,
            min_hold: Duration::from_millis(150),
            max_hold: Duration::from_secs(2),
            failure_window: Duration::from_millis(250),
        }
    }
}

/// What one input did to the guard (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// Nothing changed.
    Unchanged,
    /// The score went up (the node looks less healthy).
    Worse,
    /// The score went down.
    Better,
}

/// The guard's state. See the module documentation.
#[derive(Debug, Clone)]
pub struct LocalHealth {
    config: HealthConfig,
    score: u32,
    hold_until: Option<Instant>,
    stalls: u64,
    worst_stall: Duration,
    /// When the last stall was noticed: timers due before then belong to that stall.
    last_stall: Option<Instant>,
    /// The last failed probe: its target and when.
    last_failure: Option<(String, Instant)>,
}

impl LocalHealth {
    /// A healthy guard.
    pub fn new(config: HealthConfig) -> Self {
        LocalHealth {
            config,
            score: 0,
            hold_until: None,
            stalls: 0,
            worst_stall: Duration::ZERO,
            last_stall: None,
            last_failure: None,
        }
    }

    /// The current health score: 0 is healthy, `max_score` is the worst.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// How many stalls were seen so far.
    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    /// The longest stall seen so far.
    pub fn worst_stall(&self) -> Duration {
        self.worst_stall
    }

    /// By how much timeouts are stretched now.
    pub fn multiplier(&self) -> u32 {
        1 + self.score
    }

    /// `base` stretched by the current multiplier.
    pub fn stretch(&self, base: Duration) -> Duration {
        base.saturating_mul(self.multiplier())
    }

    /// Until when accusations are held back, if they are at `now`.
    pub fn holding(&self, now: Instant) -> Option<Instant> {
        self.hold_until.filter(|until| *until > now)
    }

    fn worse(&mut self) -> HealthChange {
        if self.score < self.config.max_score {
            self.score += 1;
            HealthChange::Worse
        } else {
            HealthChange::Unchanged
        }
    }

    fn better(&mut self) -> HealthChange {
        if self.score > 0 {
            self.score -= 1;
            HealthChange::Better
        } else {
            HealthChange::Unchanged
        }
    }

    /// A timer due at `due` fired at `now`. Late by more than the threshold: the node's loop
    /// stalled; the score rises and accusations are held back for a while.
    pub fn timer_fired(&mut self, due: Instant, now: Instant) -> HealthChange {
        let late = now.saturating_duration_since(due);
        if late <= self.config.stall_threshold {
            return HealthChange::Unchanged;
        }
        let hold = late.saturating_mul(2).clamp(
            self.config.min_hold,
            self.config.max_hold.max(self.config.min_hold),
        );
        let until = now + hold;
        self.hold_until = Some(self.hold_until.map_or(until, |u| u.max(until)));
        // Every timer that was due during one stall fires late at once: count the stall once.
        if self.last_stall.is_some_and(|at| due < at) {
            return HealthChange::Unchanged;
        }
        self.last_stall = Some(now);
        self.stalls += 1;
        self.worst_stall = self.worst_stall.max(late);
        self.worse()
    }

    /// An ack for our probe came back after `rtt`; `timeout` is the probe timeout in force.
    /// On time it is evidence of health, late it is evidence of lag.
    pub fn ack_received(&mut self, rtt: Duration, timeout: Duration) -> HealthChange {
        if rtt <= timeout {
            self.better()
        } else {
            self.worse()
        }
    }

    /// Our probe of `target` got no ack, direct or indirect, by `now`. A failure alone may be
    /// the target's fault; failures of two different targets close together are ours.
    pub fn probe_failed(&mut self, target: &str, now: Instant) -> HealthChange {
        let correlated = self.last_failure.as_ref().is_some_and(|(t, at)| {
            t != target && now.saturating_duration_since(*at) <= self.config.failure_window
        });
        self.last_failure = Some((target.to_string(), now));
        if correlated {
            self.worse()
        } else {
            HealthChange::Unchanged
        }
    }

    /// Someone suspected this node and it had to refute: likely the node is the slow one.
    pub fn refuted_suspicion(&mut self) -> HealthChange {
        self.worse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn on_time_timers_change_nothing() {
        let t0 = Instant::now();
        let mut h = LocalHealth::new(HealthConfig::default());
        assert_eq!(h.timer_fired(t0, t0 + ms(3)), HealthChange::Unchanged);
        assert_eq!(h.timer_fired(t0, t0 + ms(50)), HealthChange::Unchanged);
        assert_eq!(h.score(), 0);
        assert_eq!(h.holding(t0 + ms(50)), None);
        assert_eq!(h.stretch(ms(100)), ms(100));
    }

    #[test]
    fn a_stall_holds_accusations_back_for_twice_its_length() {
        let t0 = Instant::now();
        let mut h = LocalHealth::new(HealthConfig::default());
        let now = t0 + ms(300);
        assert_eq!(h.timer_fired(t0, now), HealthChange::Worse);
        assert_eq!(h.stalls(), 1);
        assert_eq!(h.worst_stall(), ms(300));
        assert_eq!(h.holding(now), Some(now + ms(600)));
        assert_eq!(h.holding(now + ms(599)), Some(now + ms(600)));
        assert_eq!(h.holding(now + ms(600)), None);
        assert_eq!(h.multiplier(), 2);
        assert_eq!(h.stretch(ms(100)), ms(200));
    }

    #[test]
    fn short_and_huge_stalls_are_clamped() {
        let t0 = Instant::now();
        let mut h = LocalHealth::new(HealthConfig::default());
        h.timer_fired(t0, t0 + ms(60));
        assert_eq!(h.holding(t0 + ms(60)), Some(t0 + ms(60) + ms(150)));
        let t1 = t0 + ms(1000);
        h.timer_fired(t1, t1 + ms(10_000));
        assert_eq!(h.holding(t1 + ms(10_000)), Some(t1 + ms(10_000) + ms(2000)));
    }

    #[test]
    fn the_timers_of_one_stall_count_once() {
        let t0 = Instant::now();
        let mut h = LocalHealth::new(HealthConfig::default());
        let now = t0 + ms(400);
        assert_eq!(h.timer_fired(t0, now), HealthChange::Worse);
        assert_eq!(h.timer_fired(t0 + ms(40), now), HealthChange::Unchanged);
        assert_eq!(h.timer_fired(t0 + ms(100), now + ms(1)), HealthChange::Unchanged);
        assert_eq!((h.stalls(), h.score()), (1, 1));
        // A timer due after that stall, and late again: a second stall.
        assert_eq!(h.timer_fired(now + ms(10), now + ms(200)), HealthChange::Worse);
        assert_eq!((h.stalls(), h.score()), (2, 2));
    }

    #[test]
    fn score_is_bounded_and_recovers_with_on_time_acks() {
        let t0 = Instant::now();
        let mut h = LocalHealth::new(HealthConfig::default());
        for i in 0..10 {
            let due = t0 + ms(i * 1000);
            h.timer_fired(due, due + ms(200));
        }
        assert_eq!(h.score(), 4);
        assert_eq!(h.multiplier(), 5);
        assert_eq!(h.ack_received(ms(100), ms(40)), HealthChange::Unchanged);
        for _ in 0..4 {
            assert_eq!(h.ack_received(ms(1), ms(40)), HealthChange::Better);
        }
        assert_eq!(h.score(), 0);
        assert_eq!(h.ack_received(ms(1), ms(40)), HealthChange::Unchanged);
    }

    #[test]
    fn one_dead_target_does_not_implicate_us_two_failing_targets_do() {
        let t0 = Instant::now();
        let mut h = LocalHealth::new(HealthConfig::default());
        assert_eq!(h.probe_failed("a", t0), HealthChange::Unchanged);
        assert_eq!(h.probe_failed("a", t0 + ms(100)), HealthChange::Unchanged);
        assert_eq!(h.score(), 0);
        assert_eq!(h.probe_failed("b", t0 + ms(200)), HealthChange::Worse);
        // Too far apart: not correlated.
        assert_eq!(h.probe_failed("c", t0 + ms(1000)), HealthChange::Unchanged);
        assert_eq!(h.score(), 1);
    }

    #[test]
    fn late_acks_and_refutations_make_the_node_less_trusted() {
        let mut h = LocalHealth::new(HealthConfig::default());
        assert_eq!(h.ack_received(ms(41), ms(40)), HealthChange::Worse);
        assert_eq!(h.refuted_suspicion(), HealthChange::Worse);
        assert_eq!(h.score(), 2);
        assert_eq!(h.stretch(ms(250)), ms(750));
    }

    #[test]
    fn a_later_shorter_stall_does_not_shorten_the_hold() {
        let t0 = Instant::now();
        let mut h = LocalHealth::new(HealthConfig::default());
        h.timer_fired(t0, t0 + ms(500)); // hold until t0 + 1500
        h.timer_fired(t0 + ms(500), t0 + ms(560)); // would hold until t0 + 710
        assert_eq!(h.holding(t0 + ms(800)), Some(t0 + ms(1500)));
    }
}
