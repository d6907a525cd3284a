//! `/admin/v2/clusters/{c}/alerts` (GET the rules with what fires and the recent
//! transitions; PUT a rule as the body or as `{"rule": …}`; DELETE `?rule=`), `/health` (the aggregates) and
//! `/status` (what `strand status` shows, with standbys from this process's gossip).

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::http::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/v2/clusters/{cluster}/alerts",
            get(list).put(add).delete(remove),
        )
        .route("/admin/v2/clusters/{cluster}/health", get(health))
        .route("/admin/v2/clusters/{cluster}/status", get(status))
}

async fn list(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let o = s.admin().health(&c).await?;
    Ok(Json(json!({ "id": c, "alerts": o.alerts, "history": o.history })))
}

async fn add(
    State(s): State<AppState>,
    Path(c): Path<String>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    s.writable()?;
    // The rule as the body, or `{"rule": "…"}`.
    let text = match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(o)) => match o.get("rule") {
            Some(Value::String(r)) => r.clone(),
            _ => return Err(ApiError::bad("body: expected the rule, or {\"rule\": \"…\"}")),
        },
        _ => body.trim().to_string(),
    };
    let rule = s.admin().add_alert(&c, &text).await?;
    Ok(Json(json!({ "id": c, "rule": rule.text() })))
}

#[derive(Debug, Deserialize)]
struct RuleQuery {
    rule: Option<String>,
}

async fn remove(
    State(s): State<AppState>,
    Path(c): Path<String>,
    Query(q): Query<RuleQuery>,
) -> Result<Json<Value>, ApiError> {
    s.writable()?;
    let rule = q
        .rule
        .ok_or_else(|| ApiError::bad("give the rule to remove as ?rule=…"))?;
    s.admin().remove_alert(&c, &rule).await?;
    Ok(Json(json!({ "id": c, "rule": rule, "removed": true })))
}

async fn health(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let o = s.admin().health(&c).await?;
    Ok(Json(serde_json::to_value(o).unwrap_or_default()))
}

async fn status(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let members = s.membership().map(|m| m.members());
    let st = s.admin().status(&c, members.as_deref()).await?;
    Ok(Json(serde_json::to_value(st).unwrap_or_default()))
}
