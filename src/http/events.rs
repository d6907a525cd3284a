//! Server-sent events of one cluster (`GET /admin/v2/clusters/{c}/events`), shared by the
//! dashboard and by scripts (`curl -N`): every change under `/<C>` that an operator
//! watches (external views, ideal states, live instances, current states, messages =
//! transitions in flight, leadership, pause, maintenance, instance configs), from a store
//! watch, plus this process's gossip events (member up, suspected, down, left).
//!
//! ```text
//!   store watch(/<C>) ──► describe() ──┐
//!   membership events ──► member()   ──┼─► journal (recent events, numbered) ─► SSE
//! ```
//! [`describe`] and [`member`] are pure; [`super::journal`] keeps and feeds the events, so a
//! stream opens with the cluster's recent past (`id: <boot>-<seq>`, `data: {json}`).

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;

use super::error::ApiError;
use super::journal;
use super::state::AppState;
use crate::membership::MembershipEvent;
use crate::model::layout::Key;
use crate::model::{Layout, Message, Record};
use crate::propertystore::{Event, EventKind};

/// One live event, as sent to clients (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveEvent {
    /// `externalView`, `idealState`, `liveInstance`, `currentState`, `message`, `leader`,
    /// `pause`, `maintenance`, `instanceConfig`, or a gossip event (`MemberDown`, …).
    pub kind: String,
    /// `put` or `delete` for store changes; the gossip status for member events.
    pub action: String,
    /// The store revision (0 for gossip events).
    pub revision: u64,
    /// The resource concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The instance, controller or member concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// A message's id (to pair its creation with its deletion).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// More: a message's `partition FROM-TO`, a member's generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Wall-clock ms since the Unix epoch when this server saw it.
    pub at_ms: u64,
}

/// The live event for a store change under the cluster, or None for keys nobody watches.
pub fn describe(l: &Layout, ev: &Event, at_ms: u64) -> Option<LiveEvent> {
    let mut message_id = None;
    let (kind, resource, instance) = match l.classify(&ev.path)? {
        Key::ExternalView(r) => ("externalView", Some(r), None),
        Key::IdealState(r) => ("idealState", Some(r), None),
        Key::LiveInstance(i) => ("liveInstance", None, Some(i)),
        Key::CurrentState {
            instance, resource, ..
        } => ("currentState", Some(resource), Some(instance)),
        Key::Message { instance, id } => {
            message_id = Some(id.to_string());
            ("message", None, Some(instance))
        }
        Key::Leader => ("leader", None, None),
        Key::Pause => ("pause", None, None),
        Key::Maintenance => ("maintenance", None, None),
        Key::InstanceConfig(i) => ("instanceConfig", None, Some(i)),
        _ => return None,
    };
    let record = match &ev.kind {
        EventKind::Put { value, .. } => Record::from_stored(value).ok().flatten(),
        EventKind::Delete => None,
    };
    let mut resource = resource.map(String::from);
    let mut instance = instance.map(String::from);
    let mut detail = None;
    match kind {
        "message" => {
            if let Some(r) = &record {
                let m = Message::new(r.clone());
                resource = m.resource_name().map(String::from);
                if let (Some(p), Some(f), Some(t)) = (m.partition_name(), m.from_state(), m.to_state()) {
                    detail = Some(format!("{p} {f}-{t}"));
                }
            }
        }
        "leader" => instance = record.as_ref().map(|r| r.id.clone()),
        "maintenance" | "pause" => {
            detail = record.as_ref().and_then(|r| r.simple("REASON")).map(String::from)
        }
        _ => {}
    }
    Some(LiveEvent {
        kind: kind.to_string(),
        action: if record.is_some() || matches!(ev.kind, EventKind::Put { .. }) {
            "put".into()
        } else {
            "delete".into()
        },
        revision: ev.revision,
        resource,
        instance,
        id: message_id,
        detail,
        at_ms,
    })
}

/// The alerts that fired or cleared in a write of `ALERT_HISTORY` (kind `alert`, action
/// `fired` or `cleared`, the rule in `id`, the scope and value in `detail`).
pub fn alert_events(l: &Layout, ev: &Event) -> Vec<LiveEvent> {
    let EventKind::Put { value, .. } = &ev.kind else {
        return Vec::new();
    };
    if ev.path != l.alert_history() {
        return Vec::new();
    }
    let record = Record::from_stored(value).ok().flatten();
    crate::health::records::latest_transitions(record.as_ref())
        .into_iter()
        .map(|h| LiveEvent {
            kind: "alert".into(),
            action: h.event.to_ascii_lowercase(),
            revision: ev.revision,
            resource: None,
            instance: None,
            id: Some(h.rule),
            detail: Some(match h.value {
                Some(v) => format!("{} = {}", h.scope, crate::health::format_value(v)),
                None => h.scope,
            }),
            at_ms: h.at_ms,
        })
        .collect()
}

/// The live event for a gossip event about another member.
pub fn member(ev: &MembershipEvent) -> Option<LiveEvent> {
    let m = ev.member()?;
    Some(LiveEvent {
        kind: ev.kind().to_string(),
        action: ev.kind().trim_start_matches("Member").to_ascii_lowercase(),
        revision: 0,
        resource: None,
        instance: Some(m.name.clone()),
        id: None,
        detail: Some(format!("generation {}", m.generation)),
        at_ms: m.at_unix_ms,
    })
}

pub(super) fn now_ms() -> u64 {
    crate::clock::unix_ms()
}

/// The events of cluster `c` as server-sent events: what the cluster's journal kept (after
/// the client's `Last-Event-ID`, if it names this server run), then each new one. A client
/// too slow to keep up is cut off; its `EventSource` reconnects and resumes from its last id.
pub(super) async fn stream(
    State(s): State<AppState>,
    Path(c): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    s.admin().cluster_config(&c).await?;
    let journals = s.journals();
    let boot = journals.boot();
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (backlog, live) = journals.journal(&c).subscribe(journal::resume_after(boot, last));
    let backlog = futures::stream::iter(backlog);
    let live = futures::stream::unfold(live, |mut rx| async move {
        // Lagging behind ends the stream (the client resumes with its last id).
        let e = rx.recv().await.ok()?;
        Some((e, rx))
    });
    let out = backlog.chain(live).map(move |e| {
        let data = serde_json::to_string(&e.event).unwrap_or_default();
        Ok(SseEvent::default().id(journal::event_id(boot, e.seq)).data(data))
    });
    Ok(Sse::new(out).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propertystore::Stat;

    fn put(path: &str, r: &Record, revision: u64) -> Event {
        Event {
            revision,
            path: path.into(),
            kind: EventKind::Put {
                value: r.to_bytes(),
                stat: Stat {
                    version: 1,
                    create_revision: revision,
                    mod_revision: revision,
                },
            },
        }
    }

    #[test]
    fn store_changes_become_live_events_and_other_keys_are_skipped() {
        let l = Layout::new("C");
        let ev = put(&l.external_view("db"), &Record::new("db"), 7);
        let e = describe(&l, &ev, 100).unwrap();
        assert_eq!(
            (e.kind.as_str(), e.action.as_str(), e.revision),
            ("externalView", "put", 7)
        );
        assert_eq!(e.resource.as_deref(), Some("db"));

        let gone = Event {
            revision: 8,
            path: l.live_instance("i1"),
            kind: EventKind::Delete,
        };
        let e = describe(&l, &gone, 100).unwrap();
        assert_eq!((e.kind.as_str(), e.action.as_str()), ("liveInstance", "delete"));
        assert_eq!(e.instance.as_deref(), Some("i1"));

        let mut m = Record::new("m1");
        m.set_simple("RESOURCE_NAME", "db");
        m.set_simple("PARTITION_NAME", "db_0");
        m.set_simple("FROM_STATE", "SLAVE");
        m.set_simple("TO_STATE", "MASTER");
        let e = describe(&l, &put(&l.message("i1", "m1"), &m, 9), 100).unwrap();
        assert_eq!(e.detail.as_deref(), Some("db_0 SLAVE-MASTER"));
        assert_eq!(e.id.as_deref(), Some("m1"));
        assert_eq!(e.resource.as_deref(), Some("db"));

        assert!(describe(&l, &put("/C/PROPERTYSTORE/x", &Record::new("x"), 10), 1).is_none());
        assert!(alert_events(&l, &ev).is_empty());
        assert!(describe(&l, &put("/OTHER/IDEALSTATES/db", &Record::new("db"), 10), 1).is_none());
    }

    #[test]
    fn alerts_that_fire_or_clear_become_live_events() {
        use crate::health::{AlertTransition, Group, TransitionKind};
        let l = Layout::new("C");
        let t = |kind, value| AlertTransition {
            rule: "AVG(x)[RESOURCE=*] > 5".into(),
            group: Group::Resource("db".into()),
            kind,
            value,
            at_ms: 42,
        };
        let first = crate::health::records::append_history(None, &[t(TransitionKind::Fired, Some(7.0))]);
        let second =
            crate::health::records::append_history(Some(&first), &[t(TransitionKind::Cleared, None)]);
        let e = alert_events(&l, &put(&l.alert_history(), &second, 12));
        assert_eq!(e.len(), 1, "only what the write added: {e:?}");
        assert_eq!(
            (e[0].kind.as_str(), e[0].action.as_str(), e[0].at_ms),
            ("alert", "cleared", 42)
        );
        assert_eq!(e[0].id.as_deref(), Some("AVG(x)[RESOURCE=*] > 5"));
        let e = alert_events(&l, &put(&l.alert_history(), &first, 11));
        assert_eq!(
            (e[0].action.as_str(), e[0].detail.as_deref()),
            ("fired", Some("RESOURCE=db = 7"))
        );
    }
}
