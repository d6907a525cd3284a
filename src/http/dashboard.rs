//! The dashboard: static assets compiled into the binary (no CDN, nothing fetched at run
//! time) and the one JSON view it renders (`GET /api/v1/clusters/{c}/view`), refreshed by
//! the page on every server-sent event.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::state::AppState;
use super::view::{self, ClusterView, StoredRecord};
use crate::model::{Layout, Record};

/// How long the view waits for the store replicas' status.
const STATUS_WAIT: std::time::Duration = std::time::Duration::from_millis(750);

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

pub(super) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub(super) async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response()
}

pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// What the page needs to know about the server: whether to show action buttons.
pub(super) async fn server_info(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "readOnly": s.read_only(), "version": env!("CARGO_PKG_VERSION") }))
}

pub(super) async fn cluster_view(
    State(s): State<AppState>,
    Path(c): Path<String>,
) -> Result<Json<ClusterView>, ApiError> {
    let view = gather(&s, &c).await?;
    s.journals().journal(&c);
    Ok(Json(view))
}

/// Reads everything the view needs: one range read of `/<C>`, the gossip, the replicas.
pub async fn gather(s: &AppState, cluster: &str) -> Result<ClusterView, ApiError> {
    crate::admin::validate_name("cluster", cluster)?;
    let admin = s.admin();
    admin.cluster_config(cluster).await?;
    let l = Layout::new(cluster);
    let (entries, revision) = admin.store().range(&l.root()).await?;
    let records: Vec<StoredRecord> = entries
        .into_iter()
        .filter_map(|(path, r)| {
            let rec: Record = Record::from_stored(&r.value).ok().flatten()?;
            Some((path, rec, r.stat.mod_revision))
        })
        .collect();
    let members = s.membership().map(|m| m.members()).unwrap_or_default();
    // A replica that is down must not hold the page up: its status is given a short while.
    let replicas: Vec<view::ReplicaAnswer> =
        match tokio::time::timeout(STATUS_WAIT, admin.store().status_all()).await {
            Ok(all) => all
                .into_iter()
                .map(|(addr, r)| (addr.to_string(), r.map_err(|e| e.to_string())))
                .collect(),
            Err(_) => vec![(
                "store".to_string(),
                Err(format!("no status within {} ms", STATUS_WAIT.as_millis())),
            )],
        };
    Ok(view::build(cluster, revision, &records, &members, &replicas))
}
