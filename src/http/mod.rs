//! The HTTP server every strand process can run (`--http ADDR`): Helix's REST API v2,
//! `/livez` and `/readyz`, server-sent events of a cluster's changes, and the dashboard.
//!
//! ```text
//!   browser / curl / scripts
//!        │  HTTPS (cluster CA, client certificate) — or plain HTTP on loopback when asked
//!        ▼
//!   serve ── router ─┬─ rest/      /admin/v2/clusters/…  ──► admin::Admin (the CLI's API)
//!                    ├─ events     /admin/v2/clusters/{c}/events (SSE: journal's backlog + live)
//!                    ├─ health     /livez, /readyz (each role's ReadyCheck)
//!                    ├─ metrics    /metrics (Prometheus exporter; each role's Collector)
//!                    └─ dashboard  /, /assets/*, /api/v1/… (view::build over one range read)
//! ```
//!
//! Decisions (`command`, `view`, `events::describe`, `health::readiness`) are pure; the
//! handlers only read, call `Admin` and print. `journal` keeps each cluster's recent events
//! (store watch + gossip, one recorder per cluster) for the time line and scripts.

pub mod command;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod health;
pub mod journal;
pub mod metrics;
mod rest;
pub mod serve;
pub mod state;
pub mod view;

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;

pub use error::ApiError;
pub use health::{controller_check, participant_check, store_check, Check, ReadyCheck};
pub use serve::{HttpError, HttpServer, Listen};
pub use state::{AppState, Observed};

use crate::admin::Admin;

/// The whole application: every route over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics_text))
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::app_js))
        .route("/assets/style.css", get(dashboard::style))
        .route("/api/v1/server", get(dashboard::server_info))
        .route("/api/v1/clusters/{cluster}/view", get(dashboard::cluster_view))
        .route("/admin/v2/clusters/{cluster}/events", get(events::stream))
        .merge(rest::routes())
        .fallback(|| async {
            ApiError::NotFound {
                reason: "no such path".into(),
            }
        })
        .layer(axum::middleware::map_response(error::json_errors))
        .with_state(state)
}

/// Everything a process gives its HTTP server.
pub struct HttpOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// HTTPS with the node's certificate, or plain HTTP (loopback only).
    pub listen: Listen,
    /// Refuse writes and show no action buttons.
    pub read_only: bool,
}

/// Starts the server of a process: `admin` over its store client, and what it observes of
/// the process's roles (gossip view, readiness checks, metrics collectors).
pub async fn start(options: HttpOptions, admin: Admin, observed: Observed) -> Result<HttpServer, HttpError> {
    let state = AppState::new(admin, options.read_only, observed);
    let server = HttpServer::start(options.addr, options.listen, router(state.clone())).await?;
    // The time line starts now for the clusters that exist, not when a page first opens.
    state.journals().record_existing().await;
    Ok(server)
}

async fn metrics_text(axum::extract::State(s): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = metrics::render(s.collectors());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
