//! One error type for every handler: internals are logged in full, clients get a
//! JSON body `{"success": false, "error": "<message>"}` they can show as-is.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error(
        "Partner Center integration is disabled (HUNTER_PARTNER_CENTER_ENABLED is false); enable it to sync."
    )]
    FeatureDisabled,
    #[error("{0}")]
    BadRequest(String),
    #[error("Missing or invalid bearer token; send `Authorization: Bearer <api_token>`.")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A `Host` this daemon does not answer for (see `guard.rs`).
    #[error("{0}")]
    Misdirected(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("Internal error; see the daemon's log.")]
    Internal(#[source] anyhow::Error),
}

/// Every error's body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// What went wrong and what to do, fit to show as it is.
    pub error: String,
}

impl ApiError {
    /// A bad query parameter, named so the caller can fix it.
    pub(crate) fn bad_param(name: &str, problem: impl std::fmt::Display) -> Self {
        Self::BadRequest(format!("Invalid query parameter `{name}`: {problem}"))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::FeatureDisabled | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Misdirected(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(e) => {
                tracing::error!(
                    event = "http_internal_error",
                    error = format!("{e:#}"),
                    "Request failed."
                );
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response = (
            status,
            Json(ErrorBody {
                success: false,
                error: self.to_string(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
