//! `/admin/v2/clusters/{c}/resources[/{r}[/idealState|/externalView|/configs|/partitions/{p}]]`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::clusters::{write_config, CommandQuery};
use super::{parse_record, record_json};
use crate::admin::{AddResource, ConfigScope};
use crate::http::command::ResourceCommand;
use crate::http::error::ApiError;
use crate::http::state::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/v2/clusters/{cluster}/resources", get(list))
        .route(
            "/admin/v2/clusters/{cluster}/resources/{resource}",
            get(info).put(add).delete(remove).post(command),
        )
        .route(
            "/admin/v2/clusters/{cluster}/resources/{resource}/idealState",
            get(ideal_state),
        )
        .route(
            "/admin/v2/clusters/{cluster}/resources/{resource}/externalView",
            get(external_view),
        )
        .route(
            "/admin/v2/clusters/{cluster}/resources/{resource}/configs",
            get(configs).post(update_configs),
        )
        .route(
            "/admin/v2/clusters/{cluster}/resources/{resource}/partitions/{partition}",
            get(partition),
        )
}

async fn list(State(s): State<AppState>, Path(c): Path<String>) -> Result<Json<Value>, ApiError> {
    let admin = s.admin();
    let ideal = admin.list_resources(&c, None).await?;
    let mut external = Vec::new();
    for r in &ideal {
        if admin.external_view(&c, r).await?.is_some() {
            external.push(r.clone());
        }
    }
    Ok(Json(
        json!({ "id": c, "idealStates": ideal, "externalViews": external }),
    ))
}

async fn info(
    State(s): State<AppState>,
    Path((c, r)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let i = s.admin().resource_info(&c, &r).await?;
    Ok(Json(json!({
        "id": i.resource,
        "resourceConfig": i.config.as_ref().map(record_json),
        "idealState": record_json(&i.ideal_state),
        "externalView": i.external_view.as_ref().map(record_json),
    })))
}

/// `PUT`: a whole ideal state as the body, or helix-admin's `--addResource` as
/// `?numPartitions=N&stateModelRef=SM[&rebalancerMode=M]`.
async fn add(
    State(s): State<AppState>,
    Path((c, r)): Path<(String, String)>,
    Query(q): Query<CommandQuery>,
    text: String,
) -> Result<StatusCode, ApiError> {
    if !text.trim().is_empty() {
        let record = parse_record(&text)?;
        s.writable()?;
        s.admin().add_ideal_state(&c, &r, record).await?;
        return Ok(StatusCode::CREATED);
    }
    let (Some(n), Some(sm)) = (q.num_partitions.as_deref(), q.state_model_ref.as_deref()) else {
        return Err(ApiError::bad(
            "adding a resource needs an ideal state body, or ?numPartitions=N&stateModelRef=SM",
        ));
    };
    let n: usize = n
        .parse()
        .map_err(|_| ApiError::bad(format!("numPartitions {n:?} is not a number")))?;
    let mut spec = AddResource::new(n, sm);
    if let Some(m) = q.rebalancer_mode.as_deref() {
        spec = spec.mode(AddResource::parse_mode(m)?);
    }
    s.writable()?;
    s.admin().add_resource(&c, &r, &spec).await?;
    Ok(StatusCode::CREATED)
}

async fn remove(
    State(s): State<AppState>,
    Path((c, r)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.writable()?;
    s.admin().drop_resource(&c, &r).await?;
    Ok(StatusCode::OK)
}

async fn command(
    State(s): State<AppState>,
    Path((c, r)): Path<(String, String)>,
    Query(q): Query<CommandQuery>,
) -> Result<Json<Value>, ApiError> {
    let cmd = ResourceCommand::parse(q.command.as_deref())?;
    s.writable()?;
    let admin = s.admin();
    Ok(Json(match cmd {
        ResourceCommand::Enable => {
            admin.enable_resource(&c, &r, true).await?;
            json!({})
        }
        ResourceCommand::Disable => {
            admin.enable_resource(&c, &r, false).await?;
            json!({})
        }
        ResourceCommand::Rebalance => {
            let replicas = match q.replicas.as_deref() {
                Some(v) => v
                    .parse::<usize>()
                    .map_err(|_| ApiError::bad(format!("replicas {v:?} is not a number")))?,
                None => {
                    let is = admin.ideal_state(&c, &r).await?;
                    match is.record.simple("REPLICAS").and_then(|v| v.parse().ok()) {
                        Some(n) if n > 0 => n,
                        _ => return Err(ApiError::bad("rebalance needs ?replicas=N")),
                    }
                }
            };
            let is = admin
                .rebalance(&c, &r, replicas, q.instance_group_tag.as_deref())
                .await?;
            record_json(&is.record)
        }
        ResourceCommand::Reset => {
            let sent = admin.reset_resource(&c, &r).await?;
            json!({ "messages": sent.iter().map(|m| m.id().to_string()).collect::<Vec<_>>() })
        }
    }))
}

async fn ideal_state(
    State(s): State<AppState>,
    Path((c, r)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(record_json(&s.admin().ideal_state(&c, &r).await?.record)))
}

async fn external_view(
    State(s): State<AppState>,
    Path((c, r)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let admin = s.admin();
    match admin.external_view(&c, &r).await? {
        Some(ev) => Ok(Json(record_json(&ev))),
        None => {
            // Tell a missing resource from one without an external view yet.
            admin.ideal_state(&c, &r).await?;
            Err(ApiError::NotFound {
                reason: format!("resource {r} in cluster {c} has no external view yet"),
            })
        }
    }
}

async fn configs(
    State(s): State<AppState>,
    Path((c, r)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let i = s.admin().resource_info(&c, &r).await?;
    Ok(Json(i.config.as_ref().map(record_json).unwrap_or_else(
        || json!({ "id": r, "mapFields": {}, "listFields": {}, "simpleFields": {} }),
    )))
}

async fn update_configs(
    State(s): State<AppState>,
    Path((c, r)): Path<(String, String)>,
    Query(q): Query<CommandQuery>,
    text: String,
) -> Result<StatusCode, ApiError> {
    let scope = ConfigScope::from_parts("RESOURCE", &format!("{c},{r}"))?;
    write_config(&s, &scope, q.command.as_deref(), &text).await
}

async fn partition(
    State(s): State<AppState>,
    Path((c, r, p)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let i = s.admin().partition_info(&c, &r, &p).await?;
    Ok(Json(json!({
        "id": p,
        "idealState": record_json(&i.ideal_state),
        "externalView": i.external_view.as_ref().map(record_json),
    })))
}
