//! The API's errors: one enum, one exhaustive table to HTTP status and a stable `code`.
//!
//! Key decision: no `_` arm anywhere in the mapping, so a new variant forces a decision
//! about its status and code; bad input is always a 4xx with the offending field's path,
//! and a 5xx body stays generic (the detail goes to the log, not to the client).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use driftline_core::event::FieldError;
use serde::Serialize;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON the endpoint expects.
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// The body parsed but fields are invalid; every bad field is listed.
    #[error("invalid input: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// The body exceeds the configured limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No model is loaded (none registered as champion yet, or it failed to load).
    #[error("no model is serving yet: train one and make it champion (driftline train)")]
    NoModel,
    /// A named version or alias does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the registry's state (a rejected version, nothing to roll
    /// back, no challenger).
    #[error("{0}")]
    Conflict(String),
    /// A resource is held by someone else for now (the event log's writer lock).
    #[error("{0}")]
    Busy(String),
    /// An admin endpoint was called without the configured bearer token.
    #[error("this endpoint needs the admin token: Authorization: Bearer <token>")]
    Unauthorized,
    /// Something on our side failed; the detail is logged, not returned.
    #[error("internal error")]
    Internal(String),
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<driftline_registry::RegistryError> for ApiError {
    fn from(error: driftline_registry::RegistryError) -> Self {
        use driftline_registry::RegistryError as E;
        match error {
            E::ModelNotFound { .. } | E::VersionNotFound { .. } | E::AliasNotFound { .. } => {
                ApiError::NotFound(error.to_string())
            }
            E::RejectedVersion { .. }
            | E::NothingToRollBack { .. }
            | E::NoChallenger { .. }
            | E::InvalidName { .. } => ApiError::Conflict(error.to_string()),
            E::InvalidArtifact { .. }
            | E::Database { .. }
            | E::Migration { .. }
            | E::Corrupt { .. }
            | E::NotCompiled { .. }
            | E::Io { .. } => ApiError::Internal(error.to_string()),
        }
    }
}

impl ApiError {
    /// The HTTP status and stable code of each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Malformed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "malformed_json"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_input"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::NoModel => (StatusCode::SERVICE_UNAVAILABLE, "no_model"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    message: String,
    /// The first offending field's path (`event.transaction_amount`), when one is known.
    field: Option<&'a str>,
    /// Every offending field, for invalid input.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let errors: &[FieldError] = match &self {
            ApiError::Invalid(errors) => errors,
            _ => &[],
        };
        let body = ErrorBody {
            code,
            message: self.to_string(),
            field: errors.first().map(|e| e.field.as_str()),
            errors,
        };
        (status, Json(body)).into_response()
    }
}
