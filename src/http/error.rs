//! Errors of the HTTP API: every failure is a JSON body `{"error": …, "code": …}` with a
//! status code that says what went wrong (Helix's REST answers `{"error": …}` too).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::admin::AdminError;
use crate::propertystore::ClientError;

/// Why an HTTP request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: a bad command, parameter, name or body.
    #[error("{reason}")]
    BadRequest {
        /// What is wrong.
        reason: String,
    },
    /// What the request names does not exist.
    #[error("{reason}")]
    NotFound {
        /// What is missing.
        reason: String,
    },
    /// The request conflicts with the current state (exists already, still live, not in
    /// ERROR, changed concurrently).
    #[error("{reason}")]
    Conflict {
        /// Why.
        reason: String,
    },
    /// This server is read-only and the request would write.
    #[error("this server is read-only")]
    ReadOnly,
    /// The caller's certificate does not allow the request.
    #[error("permission denied: {reason}")]
    PermissionDenied {
        /// Why.
        reason: String,
    },
    /// The store could not be reached or refused; nothing was written.
    #[error("{reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// A write was sent and no answer came: it may or may not have been applied.
    #[error("{reason}")]
    OutcomeUnknown {
        /// Why.
        reason: String,
    },
    /// A stored record cannot be read.
    #[error("{reason}")]
    Internal {
        /// Why.
        reason: String,
    },
}

impl ApiError {
    /// A [`ApiError::BadRequest`].
    pub fn bad(reason: impl Into<String>) -> Self {
        ApiError::BadRequest {
            reason: reason.into(),
        }
    }

    /// The status code the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::ReadOnly | ApiError::PermissionDenied { .. } => StatusCode::FORBIDDEN,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::OutcomeUnknown { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable name of the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::ReadOnly => "read_only",
            ApiError::PermissionDenied { .. } => "permission_denied",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::OutcomeUnknown { .. } => "outcome_unknown",
            ApiError::Internal { .. } => "internal",
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let reason = e.to_string();
        match e {
            AdminError::InvalidArgument { .. }
            | AdminError::InvalidStateModel { .. }
            | AdminError::Rebalance { .. } => ApiError::BadRequest { reason },
            AdminError::ClusterNotFound { .. }
            | AdminError::InstanceNotFound { .. }
            | AdminError::ResourceNotFound { .. }
            | AdminError::PartitionNotFound { .. }
            | AdminError::StateModelNotFound { .. }
            | AdminError::ConstraintNotFound { .. }
            | AdminError::HealthKeyNotFound { .. } => ApiError::NotFound { reason },
            AdminError::ClusterExists { .. }
            | AdminError::InstanceExists { .. }
            | AdminError::ResourceExists { .. }
            | AdminError::StateModelExists { .. }
            | AdminError::InstanceLive { .. }
            | AdminError::InstanceEnabled { .. }
            | AdminError::ClusterHasLiveInstances { .. }
            | AdminError::InstanceNotLive { .. }
            | AdminError::NotInError { .. }
            | AdminError::PendingMessage { .. }
            | AdminError::HealthKeyExists { .. }
            | AdminError::Conflict { .. } => ApiError::Conflict { reason },
            AdminError::OutcomeUnknown { .. } => ApiError::OutcomeUnknown { reason },
            AdminError::Store {
                source: ClientError::PermissionDenied(d),
                ..
            } => ApiError::PermissionDenied {
                reason: d.to_string(),
            },
            AdminError::Store { .. } => ApiError::Unavailable { reason },
            AdminError::InvalidRecord { .. } => ApiError::Internal { reason },
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        ApiError::from(AdminError::store("reading the store", e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.to_string(), "code": self.code() });
        (self.status(), Json(body)).into_response()
    }
}

/// Makes every error answer JSON: the router's own rejections (an unknown method, a path
/// or query that does not decode, a body that is not UTF-8) are plain text; they are wrapped
/// as `{"error": <text>, "code": "bad_request" | …}` with their status kept.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    (status, Json(serde_json::json!({ "error": text, "code": code }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_errors_map_to_status_codes_that_say_what_went_wrong() {
        let nf = ApiError::from(AdminError::ClusterNotFound { cluster: "c".into() });
        assert_eq!(nf.status(), StatusCode::NOT_FOUND);
        assert_eq!(nf.to_string(), "cluster c does not exist");
        let bad = ApiError::from(AdminError::InvalidArgument {
            what: "x".into(),
            reason: "y".into(),
        });
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let exists = ApiError::from(AdminError::ClusterExists { cluster: "c".into() });
        assert_eq!(exists.status(), StatusCode::CONFLICT);
        let unknown = ApiError::from(AdminError::OutcomeUnknown {
            what: "w".into(),
            reason: "r".into(),
        });
        assert_eq!(unknown.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(ApiError::ReadOnly.status(), StatusCode::FORBIDDEN);
    }
}
