//! `/livez` (the server answers) and `/readyz` (every role of this process is serving: a
//! store replica knows its leader and has applied its log, a participant holds a live
//! session, a controller leads or stands by for each of its clusters with a running,
//! non-isolated gossip view). Each role gives a [`ReadyCheck`]; [`readiness`] decides.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::state::AppState;

use crate::controller::{Controller, Role};
use crate::participant::{Participant, SessionStatus};
use crate::propertystore::StoreServer;

/// One role's readiness now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `store`, `participant`, `controller`.
    pub role: String,
    /// The role's name (replica id, instance, controller name).
    pub name: String,
    /// Whether it serves.
    pub ready: bool,
    /// What was seen.
    pub detail: String,
}

/// A readiness check, evaluated on each `/readyz`.
pub type ReadyCheck = Arc<dyn Fn() -> Check + Send + Sync>;

/// The status code and body of `/readyz` for these checks: 200 when every one is ready
/// (a process with no role is ready as soon as it serves), 503 otherwise.
pub fn readiness(checks: &[Check]) -> (StatusCode, Value) {
    let ready = checks.iter().all(|c| c.ready);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, json!({ "ready": ready, "checks": checks }))
}

pub(super) async fn livez() -> Json<Value> {
    Json(json!({ "live": true }))
}

pub(super) async fn readyz(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    let checks: Vec<Check> = s.checks().iter().map(|c| c()).collect();
    let (code, body) = readiness(&checks);
    (code, Json(body))
}

/// A controller is ready when each of its clusters has it leading or standing by and its
/// gossip runs and is not isolated (so a standby's view of the leader is fresh).
pub fn controller_check(c: &Controller, clusters: &[String]) -> ReadyCheck {
    let name = c.name().to_string();
    let roles: Vec<_> = clusters.iter().map(|k| (k.clone(), c.role(k))).collect();
    let view = c.membership().view();
    Arc::new(move || {
        let mut parts = Vec::new();
        let mut ready = view.is_running() && !view.is_isolated();
        if !ready {
            parts.push("gossip stopped or isolated".to_string());
        }
        for (k, r) in &roles {
            match r.as_ref().map(|r| *r.borrow()) {
                Some(Role::Leader { epoch }) => parts.push(format!("{k}: leader (epoch {epoch})")),
                Some(Role::Standby) => parts.push(format!("{k}: standby")),
                None => {
                    ready = false;
                    parts.push(format!("{k}: not controlled"));
                }
            }
        }
        Check {
            role: "controller".into(),
            name: name.clone(),
            ready,
            detail: parts.join("; "),
        }
    })
}

/// A participant is ready while it holds a live, registered session.
pub fn participant_check(p: &Participant) -> ReadyCheck {
    let name = p.instance().to_string();
    let status = p.status();
    Arc::new(move || {
        let (ready, detail) = match &*status.borrow() {
            SessionStatus::Live(s) => (true, format!("session {s} registered")),
            SessionStatus::Connecting => (false, "registering a session".to_string()),
            SessionStatus::Stopped => (false, "stopped".to_string()),
        };
        Check {
            role: "participant".into(),
            name: name.clone(),
            ready,
            detail,
        }
    })
}

/// A store replica is ready when it knows a leader and has applied every entry of its log.
pub fn store_check(s: &StoreServer) -> ReadyCheck {
    let id = s.id();
    let metrics = s.raft().metrics();
    Arc::new(move || {
        let m = metrics.borrow();
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        let last = m.last_log_index.unwrap_or(0);
        let ready = m.current_leader.is_some() && applied >= last;
        Check {
            role: "store".into(),
            name: format!("replica {id}"),
            ready,
            detail: format!(
                "leader {:?}, applied {applied} of {last} log entries",
                m.current_leader
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ready: bool) -> Check {
        Check {
            role: "store".into(),
            name: "replica 1".into(),
            ready,
            detail: String::new(),
        }
    }

    #[test]
    fn ready_only_when_every_role_serves() {
        assert_eq!(readiness(&[]).0, StatusCode::OK);
        assert_eq!(readiness(&[check(true), check(true)]).0, StatusCode::OK);
        let (code, body) = readiness(&[check(true), check(false)]);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["ready"], json!(false));
        assert_eq!(body["checks"].as_array().map(Vec::len), Some(2));
    }
}
