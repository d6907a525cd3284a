//! The minority hold: a member that cannot show it is on the majority side of a cut keeps
//! its suspect→down verdicts to itself.
//!
//! SWIM lets any one member declare another down, and "down" is final for an identity: the
//! accused can only rejoin with a new generation, which ends its sessions. When a minority
//! is cut off (one participant with a store replica, two members of five), each side
//! suspects the other. The majority is right to declare the minority down; the minority's
//! verdicts about the majority, spread when the cut heals, would make every member of the
//! majority rejoin. So before a verdict is given, the shell asks this decision:
//!
//! ```text
//!   verdict due ─► Reach {known, reachable, has_lowest}        (who answered lately)
//!                   │ majority (or half, holding the lowest name) ─► Release: foca judges,
//!                   │                                              the verdict spreads
//!                   │ otherwise: ask the silent members (hello), judge again shortly
//!                   │   (Wait); a whole round without a majority: this node is in
//!                   │   the minority; held since then for max_hold ─► Provisional: the
//!                   │   verdict is applied here only, never spread, and dropped when the
//!                   │   member is heard from again
//!                   ▼ a majority answers again after a verdict waited through a
//!                     minority round (the cut healed) ─► Drop: the suspect gets its
//!                     chance to refute; a new failed probe brings a new verdict
//! ```
//!
//! `known` counts this node, the active members (alive or suspect) and those that went down
//! lately (a cut's first verdicts must not shrink the cluster it is judged against);
//! `reachable` counts this node and the members heard from within the confirmation window,
//! or since the round of hellos in progress began (a round starts when a suspicion begins,
//! so its answers are in when the verdict is due, and again while a verdict waits).
//! An even split goes to the side that holds the lowest name, so exactly one side judges.
//! The hold is bounded (`max_hold`) so a real death of a majority still fails over locally.
//!
//! Pure and synchronous: the caller passes the time and the counts in.

use std::time::{Duration, Instant};

/// How many confirmation windows the answers to a round of hellos are awaited: a starved
/// member of the majority must not take slow answers for a cut (its held verdict about a
/// dead member would be dropped once they arrive).
const ROUND: u32 = 4;

/// The shortest confirmation window (a zero one would never let answers count).
const MIN_CONFIRM: Duration = Duration::from_millis(4);

/// Who this node can count on right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// Members the judgement is taken against, this node included.
    pub known: usize,
    /// Of those, the ones heard from lately, this node included.
    pub reachable: usize,
    /// Whether the lowest name among the known members is among the reachable ones (the
    /// tie-break of an even split).
    pub has_lowest: bool,
}

impl Reach {
    /// Counts `local` (always reachable) and `peers` as `(name, reachable)`.
    pub fn of<'a>(local: &'a str, peers: impl IntoIterator<Item = (&'a str, bool)>) -> Reach {
        let mut reach = Reach {
            known: 1,
            reachable: 1,
            has_lowest: true,
        };
        let mut lowest = local;
        for (name, reachable) in peers {
            if name == local {
                continue;
            }
            reach.known += 1;
            if reachable {
                reach.reachable += 1;
            }
            if name < lowest {
                lowest = name;
                reach.has_lowest = reachable;
            }
        }
        reach
    }

    /// Whether this node is on the majority side: more than half of the known members
    /// reachable, or exactly half with the lowest name among them. With fewer than three
    /// known members there is no majority to keep: a lone peer's silence may be its death
    /// and is judged as usual.
    pub fn majority(&self) -> bool {
        let twice = self.reachable.saturating_mul(2);
        self.known < 3 || twice > self.known || (twice == self.known && self.has_lowest)
    }
}

/// What to do with a verdict that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// A majority is reachable: let foca give the verdict (it spreads).
    Release,
    /// Not shown yet: judge again at `recheck`; with `ask`, first say hello to the members
    /// not heard from lately (their answers decide).
    Wait {
        /// When to judge again.
        recheck: Instant,
        /// Whether to ask the silent members now.
        ask: bool,
    },
    /// In the minority for `max_hold`: give the verdict locally only, never spread it.
    Provisional,
    /// The verdict waited while this node was shown in the minority, and now a majority
    /// answers (the cut healed): the suspect was cut off, not dead; drop the verdict.
    Drop,
}

/// The decision's memory across verdicts: the round of hellos in progress and since when
/// this node has been shown in the minority.
#[derive(Debug, Clone)]
pub struct MinorityHold {
    max_hold: Duration,
    asked_at: Option<Instant>,
    minority_since: Option<Instant>,
    /// When a round last ended without a majority.
    last_minority: Option<Instant>,
}

impl MinorityHold {
    /// A hold that gives provisional verdicts after `max_hold` in the minority.
    pub fn new(max_hold: Duration) -> Self {
        MinorityHold {
            max_hold,
            asked_at: None,
            minority_since: None,
            last_minority: None,
        }
    }

    /// Since when this node has been shown in the minority, if it is.
    pub fn minority_since(&self) -> Option<Instant> {
        self.minority_since
    }

    /// How long before `now` a member must have been heard from to count as reachable:
    /// `confirm`, or since the round of hellos in progress was sent, if that is longer.
    pub fn window(&self, now: Instant, confirm: Duration) -> Duration {
        let confirm = confirm.max(MIN_CONFIRM);
        match self.asked_at {
            Some(asked) if now < asked + confirm * ROUND => now.saturating_duration_since(asked).max(confirm),
            _ => confirm,
        }
    }

    /// A suspicion began at `now`: starts a round of hellos unless one is in progress, so
    /// that the answers are in when the verdict is due (a member of the majority then gives
    /// it without waiting). Returns whether the caller should ask now.
    pub fn suspicion_began(&mut self, now: Instant, confirm: Duration) -> bool {
        let round = confirm.max(MIN_CONFIRM) * ROUND;
        if self.asked_at.is_some_and(|asked| now < asked + round) {
            return false;
        }
        self.asked_at = Some(now);
        true
    }

    /// Forgets everything (this node rejoined under a new identity).
    pub fn reset(&mut self) {
        *self = MinorityHold::new(self.max_hold);
    }

    /// A verdict first judged at `held_since` is due at `now`; `reach` counts members heard
    /// from within [`MinorityHold::window`] before `now`. Answers to a round of hellos are
    /// awaited for four times `confirm`; a round that ends without a majority shows this
    /// node in the minority (held verdicts are judged again every quarter of `confirm`, so
    /// rounds follow each other while any verdict waits). An episode in the minority ends
    /// when a majority answers, or when no round ended in the minority for `max_hold` (the
    /// cut is long over).
    pub fn judge(&mut self, now: Instant, held_since: Instant, confirm: Duration, reach: Reach) -> Judgement {
        let confirm = confirm.max(MIN_CONFIRM);
        let step = confirm / 4;
        let round = confirm * ROUND;
        if reach.majority() {
            self.minority_since = None;
            let waited_in_minority = self.last_minority.is_some_and(|at| at >= held_since);
            return if waited_in_minority {
                Judgement::Drop
            } else {
                Judgement::Release
            };
        }
        if self
            .last_minority
            .is_some_and(|at| now.saturating_duration_since(at) > self.max_hold.max(round * 2))
        {
            self.minority_since = None;
        }
        if let Some(asked) = self.asked_at {
            if now < asked + round {
                return Judgement::Wait {
                    recheck: now + step,
                    ask: false,
                };
            }
            // The round ended without a majority.
            if now.saturating_duration_since(asked) < round * 2 {
                self.last_minority = Some(now);
                let since = *self.minority_since.get_or_insert(asked);
                if now.saturating_duration_since(since) >= self.max_hold {
                    return Judgement::Provisional;
                }
            }
        }
        self.asked_at = Some(now);
        Judgement::Wait {
            recheck: now + step,
            ask: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn reach(known: usize, reachable: usize, has_lowest: bool) -> Reach {
        Reach {
            known,
            reachable,
            has_lowest,
        }
    }

    #[test]
    fn counts_and_tie_break() {
        let r = Reach::of("n3", [("n0", false), ("n1", false), ("n2", false), ("n4", true)]);
        assert_eq!(r, reach(5, 2, false));
        assert!(!r.majority());
        let r = Reach::of("n0", [("n1", true), ("n2", true), ("n3", false), ("n4", false)]);
        assert_eq!(r, reach(5, 3, true));
        assert!(r.majority());
        // An even split: the side with the lowest name judges, the other holds.
        let a = Reach::of("n1", [("n0", true), ("n2", false), ("n3", false)]);
        let b = Reach::of("n2", [("n0", false), ("n1", false), ("n3", true)]);
        assert!(a.majority());
        assert!(!b.majority());
        // This node is the lowest.
        assert!(Reach::of("a", [("b", false), ("c", false), ("d", true)]).majority());
        assert!(!Reach::of("b", [("a", false), ("c", true), ("d", false)]).majority());
        // Two members: a lone peer's silence is judged as usual, on both sides.
        assert!(Reach::of("a", [("b", false)]).majority());
        assert!(Reach::of("b", [("a", false)]).majority());
        // Three: one of them alone is in the minority.
        assert!(!Reach::of("a", [("b", false), ("c", false)]).majority());
        // Alone, or listed twice: no panic, counted once.
        assert!(Reach::of("x", []).majority());
        assert_eq!(Reach::of("x", [("x", false)]), reach(1, 1, true));
    }

    #[test]
    fn a_majority_releases_at_once_without_asking() {
        let t0 = Instant::now();
        let mut h = MinorityHold::new(ms(3000));
        assert_eq!(h.judge(t0, t0, ms(100), reach(5, 3, false)), Judgement::Release);
        assert_eq!(h.minority_since(), None);
    }

    #[test]
    fn an_unknown_side_asks_then_releases_when_answers_show_a_majority() {
        let t0 = Instant::now();
        let mut h = MinorityHold::new(ms(3000));
        assert_eq!(
            h.judge(t0, t0, ms(100), reach(5, 1, false)),
            Judgement::Wait {
                recheck: t0 + ms(25),
                ask: true
            }
        );
        // A second verdict during the round does not ask again.
        assert_eq!(
            h.judge(t0 + ms(10), t0 + ms(10), ms(100), reach(5, 1, false)),
            Judgement::Wait {
                recheck: t0 + ms(35),
                ask: false
            }
        );
        // The answers came within the round: a crash, judged as usual.
        assert_eq!(
            h.judge(t0 + ms(25), t0, ms(100), reach(5, 4, true)),
            Judgement::Release
        );
        assert_eq!(h.minority_since(), None);
    }

    /// Judges one verdict first seen at `t0` every recheck until it is not held any more;
    /// returns the outcome, when, and how many rounds of hellos it took.
    fn hold_until_decided(
        h: &mut MinorityHold,
        t0: Instant,
        reach_at: impl Fn(Instant) -> Reach,
    ) -> (Judgement, Instant, usize) {
        let mut t = t0;
        let mut asks = 0;
        loop {
            match h.judge(t, t0, ms(100), reach_at(t)) {
                Judgement::Wait { recheck, ask } => {
                    assert_eq!(recheck, t + ms(25));
                    asks += usize::from(ask);
                    t = recheck;
                }
                other => return (other, t, asks),
            }
            assert!(t < t0 + ms(60_000), "never decided");
        }
    }

    #[test]
    fn the_minority_holds_asks_again_each_round_and_is_provisional_after_max_hold() {
        let t0 = Instant::now();
        let mut h = MinorityHold::new(ms(1000));
        let minority = reach(5, 2, false);
        let (outcome, at, asks) = hold_until_decided(&mut h, t0, |_| minority);
        assert_eq!(outcome, Judgement::Provisional);
        // Shown in the minority when the first round ended without answers (asked at t0).
        assert_eq!(h.minority_since(), Some(t0));
        // Rounds of 400 ms: the first one that ends after max_hold.
        assert_eq!(at, t0 + ms(1200));
        assert_eq!(asks, 3);
        // Later verdicts of the same episode are provisional at once.
        assert_eq!(
            h.judge(at + ms(25), at + ms(25), ms(100), minority),
            Judgement::Provisional
        );
    }

    #[test]
    fn a_verdict_held_in_the_minority_is_dropped_when_the_cut_heals() {
        let t0 = Instant::now();
        let mut h = MinorityHold::new(ms(3000));
        // Cut off for 1.5 s, then a majority answers again.
        let healed = t0 + ms(1500);
        let (outcome, at, _) = hold_until_decided(&mut h, t0, |t| {
            if t < healed {
                reach(5, 2, false)
            } else {
                reach(5, 5, true)
            }
        });
        assert_eq!((outcome, at), (Judgement::Drop, healed));
        assert_eq!(h.minority_since(), None);
        // A verdict held since before the heal is dropped too; a new one is judged as usual.
        assert_eq!(
            h.judge(healed + ms(10), t0 + ms(700), ms(100), reach(5, 5, true)),
            Judgement::Drop
        );
        assert_eq!(
            h.judge(healed + ms(500), healed + ms(500), ms(100), reach(5, 4, true)),
            Judgement::Release
        );
    }

    #[test]
    fn a_slow_round_that_ends_in_a_majority_still_releases_a_verdict_that_never_saw_a_minority() {
        let t0 = Instant::now();
        let mut h = MinorityHold::new(ms(3000));
        // The answers take 60 ms: within the round.
        let (outcome, at, asks) = hold_until_decided(&mut h, t0, |t| {
            if t < t0 + ms(360) {
                reach(7, 2, false)
            } else {
                reach(7, 6, true)
            }
        });
        assert_eq!((outcome, at, asks), (Judgement::Release, t0 + ms(375), 1));
        // Answers that came since the round started count, however long ago.
        let mut h = MinorityHold::new(ms(3000));
        assert_eq!(h.window(t0, ms(100)), ms(100));
        h.judge(t0, t0, ms(100), reach(7, 2, false));
        assert_eq!(h.window(t0 + ms(50), ms(100)), ms(100));
        assert_eq!(h.window(t0 + ms(350), ms(100)), ms(350));
        assert_eq!(h.window(t0 + ms(400), ms(100)), ms(100));
    }

    #[test]
    fn an_old_episode_or_round_does_not_count_for_a_new_cut() {
        let t0 = Instant::now();
        let mut h = MinorityHold::new(ms(300));
        let minority = reach(3, 1, false);
        let (outcome, at, _) = hold_until_decided(&mut h, t0, |_| minority);
        assert_eq!(outcome, Judgement::Provisional);
        // Nothing judged for longer than max_hold (the cut healed; this node rejoined and
        // was not told): a new cut is judged afresh, with a new round of hellos, and held
        // for max_hold again.
        assert_eq!(at, t0 + ms(400));
        let later = at + ms(1000);
        let (outcome, decided, _) = hold_until_decided(&mut h, later, |_| minority);
        assert_eq!((outcome, decided), (Judgement::Provisional, later + ms(400)));
        h.reset();
        assert_eq!(h.minority_since(), None);
    }

    #[test]
    fn a_round_started_by_the_suspicion_lets_the_majority_judge_without_waiting() {
        let t0 = Instant::now();
        let mut h = MinorityHold::new(ms(3000));
        assert!(h.suspicion_began(t0, ms(100)));
        assert!(!h.suspicion_began(t0 + ms(50), ms(100)), "one round at a time");
        // The verdict is due 200 ms later: the answers (heard since the round began) count.
        assert_eq!(h.window(t0 + ms(200), ms(100)), ms(200));
        assert_eq!(
            h.judge(t0 + ms(200), t0 + ms(200), ms(100), reach(5, 4, true)),
            Judgement::Release
        );
        // In the minority the verdict waits for the round to end, then holds.
        let mut h = MinorityHold::new(ms(3000));
        h.suspicion_began(t0, ms(100));
        assert_eq!(
            h.judge(t0 + ms(200), t0 + ms(200), ms(100), reach(5, 2, false)),
            Judgement::Wait {
                recheck: t0 + ms(225),
                ask: false
            }
        );
        assert_eq!(
            h.judge(t0 + ms(400), t0 + ms(200), ms(100), reach(5, 2, false)),
            Judgement::Wait {
                recheck: t0 + ms(425),
                ask: true
            }
        );
        assert_eq!(h.minority_since(), Some(t0));
        assert!(h.suspicion_began(t0 + ms(800), ms(100)));
    }

    #[test]
    fn a_tiny_confirmation_window_still_makes_progress() {
        let t0 = Instant::now();
        let mut h = MinorityHold::new(ms(0));
        let j = h.judge(t0, t0, Duration::ZERO, reach(3, 1, false));
        let Judgement::Wait { recheck, ask: true } = j else {
            panic!("{j:?}");
        };
        assert!(recheck > t0);
        assert!(matches!(
            h.judge(t0 + ms(4), t0, Duration::ZERO, reach(3, 1, false)),
            Judgement::Wait { ask: false, .. }
        ));
        assert_eq!(
            h.judge(t0 + ms(16), t0, Duration::ZERO, reach(3, 1, false)),
            Judgement::Provisional
        );
    }
}
