//! Helix's REST API v2 (`/admin/v2/…`): paths, JSON shapes and `?command=` writes of
//! helix-rest, each mapped onto one [`Admin`](crate::admin::Admin) call — the same calls
//! the CLI makes. One file per noun.

mod alerts;
mod clusters;
mod instances;
mod resources;

use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::error::ApiError;
use super::state::AppState;
use crate::model::Record;

/// The `/admin/v2` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/v2/clusters", get(clusters::list))
        .merge(clusters::routes())
        .merge(alerts::routes())
        .merge(instances::routes())
        .merge(resources::routes())
}

/// A record as Helix's REST prints it (a ZNRecord: id, mapFields, listFields, simpleFields).
pub(crate) fn record_json(r: &Record) -> Value {
    r.to_value()
}

/// A record parsed from a request body, or a 400.
pub(crate) fn parse_record(body: &str) -> Result<Record, ApiError> {
    Record::from_json(body).map_err(|e| ApiError::bad(format!("body: {e}")))
}
