//! Whether gossip's view of a participant ends the session it registered: the judgement the
//! leader makes for every live instance each reconciliation, as a pure function.
//!
//! A session carries the gossip generation its participant registered with. It stops
//! counting when gossip declares that generation down (or left), or when gossip has not
//! shown it for the grace period since the leader first saw the session. The second is a
//! judgement without a verdict: on a loaded machine a new participant's gossip join can
//! take longer than the grace, and the participant itself never hears of it (no gossip
//! verdict reaches it, so it keeps its generation and registers again with it). So a
//! generation the leader recorded gone counts again once gossip shows that very generation
//! alive; without that, every later session of the participant would be ended at once,
//! for ever. A real down verdict is final in gossip (the participant must rejoin with a
//! new generation, and is told so), so it does not come back this way.

use crate::membership::Status;

/// What gossip shows of a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The generation gossip knows it at.
    pub generation: u64,
    /// Its status at that generation.
    pub status: Status,
}

/// The judgement on one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It counts.
    Counts,
    /// Its generation is gone: sessions of it and older stop counting.
    Gone,
    /// Its generation was recorded gone but gossip shows it alive now: forget the record;
    /// the session counts.
    Revived,
    /// Its generation was recorded gone and nothing says otherwise.
    StaysEnded,
}

/// Judges a session of gossip generation `generation`. `recorded_down` is the generation the
/// leader last recorded gone for the participant, `seen` what gossip shows of it, and
/// `unseen_for_grace` whether the grace period since the leader first saw this generation
/// has passed.
pub fn judge(
    generation: u64,
    recorded_down: Option<u64>,
    seen: Option<Seen>,
    unseen_for_grace: bool,
) -> Verdict {
    if recorded_down.is_some_and(|d| d >= generation) {
        let alive_again = recorded_down == Some(generation)
            && seen.is_some_and(|s| s.generation == generation && s.status == Status::Alive);
        return if alive_again {
            Verdict::Revived
        } else {
            Verdict::StaysEnded
        };
    }
    match seen {
        Some(s) if s.generation >= generation => {
            if matches!(s.status, Status::Down | Status::Left) {
                Verdict::Gone
            } else {
                Verdict::Counts
            }
        }
        _ if unseen_for_grace => Verdict::Gone,
        _ => Verdict::Counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(generation: u64, status: Status) -> Option<Seen> {
        Some(Seen { generation, status })
    }

    #[test]
    fn a_session_counts_while_gossip_shows_its_generation_alive_or_suspect() {
        assert_eq!(judge(5, None, seen(5, Status::Alive), true), Verdict::Counts);
        assert_eq!(judge(5, None, seen(5, Status::Suspect), true), Verdict::Counts);
        assert_eq!(judge(5, None, seen(6, Status::Alive), true), Verdict::Counts);
    }

    #[test]
    fn a_down_or_left_verdict_at_its_generation_or_later_ends_it() {
        assert_eq!(judge(5, None, seen(5, Status::Down), false), Verdict::Gone);
        assert_eq!(judge(5, None, seen(5, Status::Left), false), Verdict::Gone);
        assert_eq!(judge(5, None, seen(7, Status::Down), false), Verdict::Gone);
    }

    #[test]
    fn a_generation_gossip_does_not_show_ends_after_the_grace_only() {
        assert_eq!(judge(5, None, None, false), Verdict::Counts);
        assert_eq!(judge(5, None, None, true), Verdict::Gone);
        // Gossip knows only an older generation: as if unseen.
        assert_eq!(judge(5, None, seen(4, Status::Alive), false), Verdict::Counts);
        assert_eq!(judge(5, None, seen(4, Status::Alive), true), Verdict::Gone);
    }

    /// The chaos run's stuck participants (2026-12-08, load 12): ended once because gossip
    /// had not shown them within the grace, each later session of the same generation was
    /// ended again, for minutes, while gossip showed them alive.
    #[test]
    fn a_generation_ended_for_want_of_a_sighting_counts_again_once_gossip_shows_it_alive() {
        assert_eq!(judge(5, None, None, true), Verdict::Gone);
        assert_eq!(judge(5, Some(5), seen(5, Status::Alive), true), Verdict::Revived);
    }

    #[test]
    fn a_recorded_down_generation_stays_ended_unless_that_generation_is_alive() {
        assert_eq!(judge(5, Some(5), None, true), Verdict::StaysEnded);
        assert_eq!(
            judge(5, Some(5), seen(5, Status::Down), true),
            Verdict::StaysEnded
        );
        assert_eq!(
            judge(5, Some(5), seen(5, Status::Suspect), true),
            Verdict::StaysEnded
        );
        // The participant rejoined at 6 but this record is still of 5: it re-registers.
        assert_eq!(
            judge(5, Some(5), seen(6, Status::Alive), true),
            Verdict::StaysEnded
        );
        // A record older than the generation recorded gone never comes back.
        assert_eq!(
            judge(4, Some(5), seen(4, Status::Alive), true),
            Verdict::StaysEnded
        );
        // A newer generation than the one recorded is judged afresh.
        assert_eq!(judge(6, Some(5), seen(6, Status::Alive), true), Verdict::Counts);
    }
}
