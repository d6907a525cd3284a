//! Reply aggregation and the retry rule: who answered, who failed, who timed out.
//!
//! A [`Tally`] starts with every target pending; each attempt's result is
//! [`Tally::handle_attempt`]ed (which says whether to try again), and [`Tally::finish`]
//! turns whatever is still pending at the deadline into "timed out". Pure: time is the
//! caller's.

use serde::Serialize;

use super::resolve::Target;

/// What one attempt to reach a target came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The recipient's handler answered (`send_and_wait`), or its endpoint accepted the
    /// message (`send`).
    Answered(String),
    /// The recipient took it and refused it or its handler failed: final.
    Failed(String),
    /// Nothing was delivered (no connection): safe to try again.
    NotDelivered(String),
    /// The connection broke before an answer: may have been delivered. The recipient runs
    /// each message id at most once, so trying again cannot run it twice.
    Lost(String),
    /// No answer in time.
    TimedOut,
}

/// A reply, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    /// Who answered (`instance` or `instance/resource/partition/state`).
    pub from: String,
    /// The instance.
    pub instance: String,
    /// The body the handler returned (JSON text; `"accepted"` for `send`).
    pub body: String,
}

/// A recipient that did not answer with a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Who (`instance` or `instance/resource/partition/state`).
    pub from: String,
    /// Why.
    pub reason: String,
}

/// The result of one send: every target appears in exactly one of the three lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SendResult {
    /// The message id (each recipient's copy is `<id>-<n>`).
    pub id: String,
    /// How many recipients the criteria resolved to.
    pub recipients: usize,
    /// Replies, in the order they arrived.
    pub replies: Vec<Reply>,
    /// Recipients that refused or failed.
    pub failed: Vec<Failure>,
    /// Recipients that gave no answer in time (outcome unknown).
    pub timed_out: Vec<String>,
    /// Recipients that are down: a persistent message waits for them in the store.
    pub queued: Vec<String>,
}

impl SendResult {
    /// Whether every recipient answered.
    pub fn all_answered(&self) -> bool {
        self.failed.is_empty() && self.timed_out.is_empty()
    }
}

/// The bookkeeping of one send.
#[derive(Debug)]
pub struct Tally {
    targets: Vec<Target>,
    pending: Vec<bool>,
    attempts: Vec<u32>,
    max_retries: u32,
    result: SendResult,
}

/// What the caller should do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The target is settled.
    Done,
    /// Send to it again (attempt number given, from 1).
    Retry(u32),
}

impl Tally {
    /// A tally over `targets` that retries each at most `max_retries` times.
    pub fn new(id: impl Into<String>, targets: Vec<Target>, max_retries: u32) -> Self {
        let n = targets.len();
        Tally {
            pending: vec![true; n],
            attempts: vec![0; n],
            max_retries,
            result: SendResult {
                id: id.into(),
                recipients: n,
                ..Default::default()
            },
            targets,
        }
    }

    /// The targets, by index.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Whether target `i` is still waiting.
    pub fn is_pending(&self, i: usize) -> bool {
        self.pending.get(i).copied().unwrap_or(false)
    }

    /// Whether nothing is pending.
    pub fn is_settled(&self) -> bool {
        !self.pending.iter().any(|p| *p)
    }

    /// Records an attempt for target `i`; `expired` says the message's deadline has
    /// passed (no retry then). Returns the reply it settled, if any, and what to do next.
    pub fn handle_attempt(&mut self, i: usize, attempt: Attempt, expired: bool) -> (Option<Reply>, Next) {
        if !self.is_pending(i) {
            return (None, Next::Done);
        }
        let t = &self.targets[i];
        let from = t.label();
        match attempt {
            Attempt::Answered(body) => {
                self.pending[i] = false;
                let r = Reply {
                    from,
                    instance: t.instance.clone(),
                    body,
                };
                self.result.replies.push(r.clone());
                (Some(r), Next::Done)
            }
            Attempt::Failed(reason) => {
                self.pending[i] = false;
                self.result.failed.push(Failure { from, reason });
                (None, Next::Done)
            }
            Attempt::TimedOut => {
                self.pending[i] = false;
                self.result.timed_out.push(from);
                (None, Next::Done)
            }
            Attempt::NotDelivered(reason) | Attempt::Lost(reason) => {
                self.attempts[i] += 1;
                if !expired && self.attempts[i] <= self.max_retries {
                    return (None, Next::Retry(self.attempts[i]));
                }
                self.pending[i] = false;
                let tries = self.attempts[i];
                self.result.failed.push(Failure {
                    from,
                    reason: format!(
                        "{reason} (after {tries} attempt{})",
                        if tries == 1 { "" } else { "s" }
                    ),
                });
                (None, Next::Done)
            }
        }
    }

    /// The result; whatever is still pending timed out.
    pub fn finish(mut self) -> SendResult {
        for (i, p) in self.pending.iter().enumerate() {
            if *p {
                self.result.timed_out.push(self.targets[i].label());
            }
        }
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(i: &str) -> Target {
        Target {
            instance: i.into(),
            session: "s".into(),
            addr: None,
            resource: None,
            partition: None,
            partition_state: None,
        }
    }

    #[test]
    fn each_target_ends_in_exactly_one_list() {
        let mut t = Tally::new("m", vec![target("a"), target("b"), target("c"), target("d")], 1);
        let (r, n) = t.handle_attempt(0, Attempt::Answered("{\"x\":1}".into()), false);
        assert_eq!(r.unwrap().from, "a");
        assert_eq!(n, Next::Done);
        // A second answer for a settled target changes nothing.
        assert_eq!(
            t.handle_attempt(0, Attempt::Failed("late".into()), false).1,
            Next::Done
        );
        t.handle_attempt(1, Attempt::Failed("no handler for type X".into()), false);
        t.handle_attempt(2, Attempt::TimedOut, false);
        assert!(!t.is_settled());
        let r = t.finish();
        assert_eq!(r.recipients, 4);
        assert_eq!(r.replies.len(), 1);
        assert_eq!(
            r.failed,
            vec![Failure {
                from: "b".into(),
                reason: "no handler for type X".into()
            }]
        );
        assert_eq!(r.timed_out, vec!["c".to_string(), "d".to_string()]);
        assert!(!r.all_answered());
    }

    #[test]
    fn undelivered_and_lost_are_retried_up_to_the_limit_and_never_after_expiry() {
        let mut t = Tally::new("m", vec![target("a"), target("b")], 2);
        assert_eq!(
            t.handle_attempt(0, Attempt::NotDelivered("down".into()), false).1,
            Next::Retry(1)
        );
        assert_eq!(
            t.handle_attempt(0, Attempt::Lost("reset".into()), false).1,
            Next::Retry(2)
        );
        assert_eq!(
            t.handle_attempt(0, Attempt::NotDelivered("down".into()), false).1,
            Next::Done
        );
        assert_eq!(
            t.handle_attempt(1, Attempt::NotDelivered("down".into()), true).1,
            Next::Done
        );
        let r = t.finish();
        assert_eq!(r.failed.len(), 2);
        assert!(r.failed[0].reason.contains("after 3 attempts"), "{:?}", r.failed);
        assert!(r.failed[1].reason.contains("after 1 attempt)"), "{:?}", r.failed);
        // Failures that the recipient decided (refusals) are never retried.
        let mut t = Tally::new("m", vec![target("a")], 5);
        assert_eq!(
            t.handle_attempt(0, Attempt::Failed("expired".into()), false).1,
            Next::Done
        );
    }
}
