//! Redirect switches: the identity endpoints or the referrals API answer with a 3xx to another
//! address instead of answering, as a captive proxy, a hijacked DNS name or a misconfigured
//! gateway would. A client must not follow: it would carry its secrets or bring foreign data back.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header::LOCATION};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

/// Which service a [`Redirect`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `/devicecode` and `/token`.
    Identity,
    /// `/v1.0/engagements/referrals` and `/v1.0/engagements/referrals/{id}`.
    Referrals,
}

/// Answer every request to `service` with `status` and `Location: {to}{path}?{query}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub service: Service,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// Scheme, host and port of the place to send clients, e.g. `http://127.0.0.1:9`.
    pub to: String,
}

impl Service {
    fn matches(self, path: &str) -> bool {
        match self {
            Service::Identity => {
                path.ends_with("/oauth2/v2.0/token") || path.ends_with("/oauth2/v2.0/devicecode")
            }
            Service::Referrals => path.starts_with("/v1.0/engagements/referrals"),
        }
    }
}

/// Middleware: redirects when a switch for the request's service is on, else passes it on.
pub(crate) async fn redirect(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let hit = shared
        .redirects()
        .iter()
        .find(|r| r.service.matches(path))
        .cloned();
    let Some(rule) = hit else {
        return next.run(request).await;
    };
    let target = match request.uri().query() {
        Some(q) => format!("{}{path}?{q}", rule.to.trim_end_matches('/')),
        None => format!("{}{path}", rule.to.trim_end_matches('/')),
    };
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
    match HeaderValue::from_str(&target) {
        Ok(location) => (status, [(LOCATION, location)]).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "bad redirect target").into_response(),
    }
}
