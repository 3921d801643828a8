//! Error bodies shaped like Entra's, so clients branch on `error` (and `suberror`) and log
//! `error_codes`, `trace_id` and `correlation_id` exactly as they will against Microsoft.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use uuid::Uuid;

use crate::timefmt;

/// One Entra error: OAuth `error`, AADSTS number (absent for RFC-only errors such as `slow_down`)
/// and the description text that follows `AADSTSnnnnn: `.
#[derive(Debug, Clone)]
pub(crate) struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: Option<u32>,
    pub description: String,
}

impl AadError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> AadError {
        AadError {
            status,
            error,
            code: Some(code),
            description: description.into(),
        }
    }

    /// An error without an AADSTS number (Entra documents none for these).
    pub fn plain(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> AadError {
        AadError {
            status,
            error,
            code: None,
            description: description.into(),
        }
    }

    pub fn missing_parameter(name: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    /// The same error answered with another status: `/devicecode` reports some errors with 200.
    pub fn with_status(mut self, status: StatusCode) -> AadError {
        self.status = status;
        self
    }

    /// Renders the body; `correlation_id` echoes the client's `client-request-id` as Entra does.
    pub fn render(&self, base_url: &str, correlation_id: Option<&str>) -> Response {
        let now = timefmt::now_ticks();
        let timestamp = timefmt::entra_timestamp(now);
        let trace_id = Uuid::new_v4().to_string();
        let correlation_id = correlation_id
            .map(str::to_string)
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        let prefix = self
            .code
            .map(|c| format!("AADSTS{c}: "))
            .unwrap_or_default();
        let description = format!(
            "{prefix}{}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
            self.description
        );
        let code = self.code.unwrap_or(0);
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": self.code.map(|c| vec![c]).unwrap_or_default(),
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("{base_url}/error?code={code}"),
        });
        (self.status, Json(body)).into_response()
    }
}
