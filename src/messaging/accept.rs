//! The recipient's decision: run a message, refuse it (why), or answer a duplicate — and
//! the bounded memory of message ids that makes each run at most once, whichever copy
//! (QUIC or the store's) comes first. Pure: time and the recipient's identity are inputs.

use std::collections::{HashMap, VecDeque};

use super::wire::{AppAnswer, AppMessage};

/// Who is receiving, now.
#[derive(Clone, Copy)]
pub struct Recipient<'a> {
    /// This member's name.
    pub name: &'a str,
    /// Its current session (`None`: between sessions).
    pub session: Option<&'a str>,
    /// Whether it may take messages for `cluster` (a controller: whether it leads it).
    pub serves_cluster: &'a dyn Fn(&str) -> bool,
    /// Wall clock, ms.
    pub now_ms: u64,
}

/// What to do with an incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run its handler.
    Run,
    /// Seen before: its earlier answer, or `None` while it still runs (wait for it).
    Duplicate(Option<AppAnswer>),
    /// Refused, for this reason (final; the sender reports it as failed).
    Refuse(String),
}

/// Judges one message (does not remember it: call [`Seen::start`] on `Run`).
pub fn decide(m: &AppMessage, me: &Recipient<'_>, seen: &Seen) -> Decision {
    if let Some(prior) = seen.answer(&m.id) {
        return Decision::Duplicate(prior);
    }
    if m.tgt_name != me.name {
        return Decision::Refuse(format!("addressed to {}, this is {}", m.tgt_name, me.name));
    }
    if !(me.serves_cluster)(&m.cluster) {
        return Decision::Refuse(format!(
            "{} does not take messages for cluster {} (not its leader?)",
            me.name, m.cluster
        ));
    }
    if m.tgt_session != "*" && Some(m.tgt_session.as_str()) != me.session {
        return Decision::Refuse(format!(
            "for session {}, but {} is in session {}",
            m.tgt_session,
            me.name,
            me.session.unwrap_or("(none)")
        ));
    }
    if let Some(e) = m.expiry_ms {
        if me.now_ms > e {
            return Decision::Refuse(format!("expired {} ms ago", me.now_ms - e));
        }
    }
    Decision::Run
}

/// The ids of recent messages and their answers (bounded: the oldest are forgotten).
#[derive(Debug)]
pub struct Seen {
    answers: HashMap<String, Option<AppAnswer>>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Seen {
    /// Remembers at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Seen {
            answers: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// For a seen `id`: its answer, or `None` while it runs.
    pub fn answer(&self, id: &str) -> Option<Option<AppAnswer>> {
        self.answers.get(id).cloned()
    }

    /// Whether `id` was seen.
    pub fn contains(&self, id: &str) -> bool {
        self.answers.contains_key(id)
    }

    /// Notes that `id` started running.
    pub fn start(&mut self, id: &str) {
        if self.answers.insert(id.to_string(), None).is_none() {
            self.order.push_back(id.to_string());
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.answers.remove(&old);
            }
        }
    }

    /// Notes `id`'s answer.
    pub fn finish(&mut self, id: &str, answer: AppAnswer) {
        if let Some(slot) = self.answers.get_mut(id) {
            *slot = Some(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> AppMessage {
        AppMessage {
            id: "m-0".into(),
            correlation_id: "m".into(),
            cluster: "C".into(),
            msg_type: "ECHO".into(),
            subtype: None,
            src_name: "a".into(),
            src_type: "PARTICIPANT".into(),
            tgt_name: "b".into(),
            tgt_session: "*".into(),
            resource: None,
            partition: None,
            partition_state: None,
            body: "null".into(),
            created_ms: 0,
            expiry_ms: None,
            persistent: false,
            retry: 0,
        }
    }

    fn judge(m: &AppMessage, session: Option<&str>, leads: bool, now_ms: u64, seen: &Seen) -> Decision {
        let serves = move |c: &str| leads && c == "C";
        decide(
            m,
            &Recipient {
                name: "b",
                session,
                serves_cluster: &serves,
                now_ms,
            },
            seen,
        )
    }

    #[test]
    fn decision_table() {
        let seen = Seen::new(8);
        let m = msg();
        assert_eq!(judge(&m, Some("s1"), true, 5, &seen), Decision::Run);
        let mut other = msg();
        other.tgt_name = "c".into();
        assert!(
            matches!(judge(&other, Some("s1"), true, 5, &seen), Decision::Refuse(r) if r.contains("addressed to c"))
        );
        assert!(
            matches!(judge(&m, Some("s1"), false, 5, &seen), Decision::Refuse(r) if r.contains("not its leader"))
        );
        let mut s = msg();
        s.tgt_session = "s1".into();
        assert_eq!(judge(&s, Some("s1"), true, 5, &seen), Decision::Run);
        assert!(
            matches!(judge(&s, Some("s2"), true, 5, &seen), Decision::Refuse(r) if r.contains("for session s1"))
        );
        assert!(matches!(judge(&s, None, true, 5, &seen), Decision::Refuse(_)));
        let mut e = msg();
        e.expiry_ms = Some(10);
        assert_eq!(judge(&e, None, true, 10, &seen), Decision::Run);
        assert!(
            matches!(judge(&e, None, true, 11, &seen), Decision::Refuse(r) if r.contains("expired 1 ms ago"))
        );
    }

    #[test]
    fn a_message_runs_at_most_once_and_repeats_get_its_answer() {
        let mut seen = Seen::new(2);
        let m = msg();
        assert_eq!(judge(&m, None, true, 0, &seen), Decision::Run);
        seen.start(&m.id);
        assert_eq!(judge(&m, None, true, 0, &seen), Decision::Duplicate(None));
        seen.finish(&m.id, AppAnswer::Reply("1".into()));
        assert_eq!(
            judge(&m, None, true, 0, &seen),
            Decision::Duplicate(Some(AppAnswer::Reply("1".into())))
        );
        // Bounded: the oldest id is forgotten.
        seen.start("x");
        seen.start("y");
        assert!(!seen.contains(&m.id) && seen.contains("x") && seen.contains("y"));
    }
}
