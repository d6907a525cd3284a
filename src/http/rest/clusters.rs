//! `/admin/v2/clusters[/{c}[/controller|/maintenance|/configs|/statemodeldefs[/{m}]]]`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_record, record_json};
use crate::admin::ConfigScope;
use crate::http::command::{maintenance_reason, ClusterCommand};
use crate::http::error::ApiError;
use crate::http::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/v2/clusters/{cluster}",
            get(info).put(create).delete(remove).post(command),
        )
        .route("/admin/v2/clusters/{cluster}/controller", get(controller))
        .route("/admin/v2/clusters/{cluster}/maintenance", get(maintenance))
        .route(
            "/admin/v2/clusters/{cluster}/configs",
            get(configs).post(update_configs),
        )
        .route("/admin/v2/clusters/{cluster}/statemodeldefs", get(state_models))
        .route(
            "/admin/v2/clusters/{cluster}/statemodeldefs/{model}",
            get(state_model).put(add_state_model),
        )
}

/// `?command=` and the other query parameters of writes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CommandQuery {
    pub command: Option<String>,
    pub replicas: Option<String>,
    #[serde(rename = "instanceGroupTag")]
    pub instance_group_tag: Option<String>,
    #[serde(rename = "numPartitions")]
    pub num_partitions: Option<String>,
    #[serde(rename = "stateModelRef")]
    pub state_model_ref: Option<String>,
    #[serde(rename = "rebalancerMode")]
    pub rebalancer_mode: Option<String>,
}

pub(super) async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "clusters": s.admin().list_clusters().await? })))
}

async fn info(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let i = s.admin().cluster_info(&c).await?;
    Ok(Json(json!({
        "id": i.cluster,
        "controller": i.leader.as_ref().map(|r| r.id.clone()).unwrap_or_else(|| NO_LEADER.into()),
        "paused": i.paused,
        "maintenance": i.maintenance.is_some(),
        "resources": i.resources,
        "instances": i.instances,
        "liveInstances": i.live_instances,
    })))
}

/// What helix-rest answers as the controller of a cluster without one.
const NO_LEADER: &str = "No Lead Controller!";

async fn create(State(s): State<AppState>, Path(c): Path<String>) -> Result<StatusCode, ApiError> {
    s.writable()?;
    s.admin().add_cluster(&c).await?;
    s.journals().journal(&c);
    Ok(StatusCode::CREATED)
}

async fn remove(State(s): State<AppState>, Path(c): Path<String>) -> Result<StatusCode, ApiError> {
    s.writable()?;
    s.admin().drop_cluster(&c).await?;
    s.journals().forget(&c);
    Ok(StatusCode::OK)
}

async fn command(
    State(s): State<AppState>,
    Path(c): Path<String>,
    Query(q): Query<CommandQuery>,
    body: String,
) -> Result<StatusCode, ApiError> {
    let cmd = ClusterCommand::parse(q.command.as_deref())?;
    s.writable()?;
    let admin = s.admin();
    match cmd {
        ClusterCommand::Enable => admin.resume_cluster(&c).await?,
        ClusterCommand::Disable => admin.pause_cluster(&c, None).await?,
        ClusterCommand::EnableMaintenanceMode => {
            let reason = maintenance_reason(&body);
            admin.set_maintenance(&c, true, Some(&reason)).await?
        }
        ClusterCommand::DisableMaintenanceMode => admin.set_maintenance(&c, false, None).await?,
    }
    Ok(StatusCode::OK)
}

async fn controller(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let i = s.admin().cluster_info(&c).await?;
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(c));
    match &i.leader {
        Some(r) => {
            out.insert("controller".into(), json!(r.id));
            for (k, v) in &r.simple_fields {
                out.insert(k.clone(), json!(v));
            }
        }
        None => {
            out.insert("controller".into(), json!(NO_LEADER));
        }
    }
    Ok(Json(Value::Object(out)))
}

async fn maintenance(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let m = s.admin().maintenance(&c).await?;
    let mut out = json!({ "maintenance": m.is_some() });
    if let Some(r) = m {
        out["reason"] = json!(r.simple("REASON").unwrap_or(""));
        out["record"] = record_json(&r);
    }
    Ok(Json(out))
}

async fn configs(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(record_json(&s.admin().cluster_config(&c).await?)))
}

/// helix-rest's `POST …/configs?command=update|delete` with a ZNRecord body: its
/// simpleFields are set (update) or removed (delete).
pub(crate) async fn write_config(
    s: &AppState,
    scope: &ConfigScope,
    command: Option<&str>,
    body: &str,
) -> Result<StatusCode, ApiError> {
    let update = match command {
        Some("update") => true,
        Some("delete") => false,
        other => {
            return Err(ApiError::bad(format!(
                "config writes need ?command=update or ?command=delete, not {other:?}"
            )))
        }
    };
    let record = parse_record(body)?;
    s.writable()?;
    if update {
        let values: BTreeMap<String, String> = record.simple_fields.clone();
        s.admin().set_config(scope, &values).await?;
    } else {
        let keys: Vec<String> = record.simple_fields.keys().cloned().collect();
        s.admin().remove_config(scope, &keys).await?;
    }
    Ok(StatusCode::OK)
}

async fn update_configs(
    State(s): State<AppState>,
    Path(c): Path<String>,
    Query(q): Query<CommandQuery>,
    body: String,
) -> Result<StatusCode, ApiError> {
    let scope = ConfigScope::from_parts("CLUSTER", &c)?;
    write_config(&s, &scope, q.command.as_deref(), &body).await
}

async fn state_models(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let names = s.admin().list_state_models(&c).await?;
    Ok(Json(json!({ "id": c, "STATEMODELDEFS": names })))
}

async fn state_model(
    State(s): State<AppState>,
    Path((c, m)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(record_json(&s.admin().state_model(&c, &m).await?)))
}

async fn add_state_model(
    State(s): State<AppState>,
    Path((c, m)): Path<(String, String)>,
    body: String,
) -> Result<StatusCode, ApiError> {
    let record = parse_record(&body)?;
    if record.id != m {
        return Err(ApiError::bad(format!(
            "the record's id {:?} must be the state model's name {m:?}",
            record.id
        )));
    }
    s.writable()?;
    s.admin().add_state_model(&c, &record).await?;
    Ok(StatusCode::CREATED)
}
