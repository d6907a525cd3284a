//! `/admin/v2/clusters/{c}/instances[/{i}[/configs|/resources[/{r}]]]`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::clusters::{write_config, CommandQuery};
use super::record_json;
use crate::admin::ConfigScope;
use crate::http::command::{body, InstanceCommand, PartitionsBody, TagsBody};
use crate::http::error::ApiError;
use crate::http::state::AppState;

const PARTITIONS_SHAPE: &str = r#"{"resource": "R", "partitions": ["R_0", …]}"#;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/v2/clusters/{cluster}/instances", get(list))
        .route(
            "/admin/v2/clusters/{cluster}/instances/{instance}",
            get(info).put(add).delete(remove).post(command),
        )
        .route(
            "/admin/v2/clusters/{cluster}/instances/{instance}/configs",
            get(configs).post(update_configs),
        )
        .route(
            "/admin/v2/clusters/{cluster}/instances/{instance}/resources",
            get(resources),
        )
        .route(
            "/admin/v2/clusters/{cluster}/instances/{instance}/resources/{resource}",
            get(resource),
        )
}

async fn list(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let admin = s.admin();
    let instances = admin.list_instances(&c, None).await?;
    let online = admin.live_instances(&c).await?;
    let mut disabled = Vec::new();
    for i in &instances {
        if !admin.instance_config(&c, i).await?.enabled().unwrap_or(true) {
            disabled.push(i.clone());
        }
    }
    Ok(Json(
        json!({ "id": c, "instances": instances, "online": online, "disabled": disabled }),
    ))
}

async fn info(
    State(s): State<AppState>,
    Path((c, i)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let d = s.admin().instance_info(&c, &i).await?;
    Ok(Json(json!({
        "id": d.instance,
        "config": record_json(&d.config),
        "liveInstance": d.live.as_ref().map(record_json),
    })))
}

async fn add(
    State(s): State<AppState>,
    Path((c, i)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.writable()?;
    s.admin().add_instance(&c, &i).await?;
    Ok(StatusCode::CREATED)
}

async fn remove(
    State(s): State<AppState>,
    Path((c, i)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.writable()?;
    s.admin().drop_instance(&c, &i).await?;
    Ok(StatusCode::OK)
}

async fn command(
    State(s): State<AppState>,
    Path((c, i)): Path<(String, String)>,
    Query(q): Query<CommandQuery>,
    text: String,
) -> Result<Json<Value>, ApiError> {
    let cmd = InstanceCommand::parse(q.command.as_deref())?;
    s.writable()?;
    let admin = s.admin();
    let mut out = json!({});
    match cmd {
        InstanceCommand::Enable => admin.enable_instance(&c, &i, true).await?,
        InstanceCommand::Disable => admin.enable_instance(&c, &i, false).await?,
        InstanceCommand::Reset => {
            let sent = if text.trim().is_empty() {
                admin.reset_instance(&c, &i).await?
            } else {
                let b: PartitionsBody = body(&text, PARTITIONS_SHAPE)?;
                if b.partitions.is_empty() {
                    return Err(ApiError::bad(
                        "reset: name at least one partition, or send no body",
                    ));
                }
                admin.reset_partitions(&c, &i, &b.resource, &b.partitions).await?
            };
            out = json!({ "messages": sent.iter().map(|m| m.id().to_string()).collect::<Vec<_>>() });
        }
        InstanceCommand::EnablePartitions | InstanceCommand::DisablePartitions => {
            let b: PartitionsBody = body(&text, PARTITIONS_SHAPE)?;
            let enable = cmd == InstanceCommand::EnablePartitions;
            admin
                .enable_partitions(&c, &i, &b.resource, &b.partitions, enable)
                .await?
        }
        InstanceCommand::AddInstanceTag | InstanceCommand::RemoveInstanceTag => {
            let b: TagsBody = body(&text, r#"{"instanceTags": ["T", …]}"#)?;
            if b.instance_tags.is_empty() {
                return Err(ApiError::bad("instanceTags: name at least one tag"));
            }
            for t in &b.instance_tags {
                if cmd == InstanceCommand::AddInstanceTag {
                    admin.add_instance_tag(&c, &i, t).await?;
                } else {
                    admin.remove_instance_tag(&c, &i, t).await?;
                }
            }
        }
    }
    Ok(Json(out))
}

async fn configs(
    State(s): State<AppState>,
    Path((c, i)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(record_json(
        &s.admin().instance_config(&c, &i).await?.record,
    )))
}

async fn update_configs(
    State(s): State<AppState>,
    Path((c, i)): Path<(String, String)>,
    Query(q): Query<CommandQuery>,
    text: String,
) -> Result<StatusCode, ApiError> {
    let scope = ConfigScope::from_parts("PARTICIPANT", &format!("{c},{i}"))?;
    write_config(&s, &scope, q.command.as_deref(), &text).await
}

async fn resources(
    State(s): State<AppState>,
    Path((c, i)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let d = s.admin().instance_info(&c, &i).await?;
    let names: Vec<&String> = d.current_states.keys().collect();
    Ok(Json(json!({ "id": d.instance, "resources": names })))
}

async fn resource(
    State(s): State<AppState>,
    Path((c, i, r)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let d = s.admin().instance_info(&c, &i).await?;
    let states = d.current_states.get(&r).ok_or_else(|| ApiError::NotFound {
        reason: format!("instance {i} holds nothing of resource {r} in its current session"),
    })?;
    let map: serde_json::Map<String, Value> = states
        .iter()
        .map(|(p, st)| (p.clone(), json!({ "CURRENT_STATE": st })))
        .collect();
    Ok(Json(json!({
        "id": r,
        "simpleFields": { "SESSION_ID": d.session },
        "mapFields": map,
        "listFields": {},
    })))
}
