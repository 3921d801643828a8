//! Operations endpoints: health, readiness, metrics (open) and the sync trigger
//! (protected by `api_token` when set).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::history::{DestinationView, destinations};
use crate::auth::AuthState;
use crate::daemon::handle::{TriggerError, TriggerOutcome};
use crate::store::runs::{self, RunRow, RunStatus};

/// A database that does not answer within this is reported unreachable rather than
/// letting health checks hang.
const DB_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn open_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

pub(crate) fn protected_router() -> Router<AppState> {
    Router::new().route("/api/v1/partner-center/referrals/sync", post(trigger))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    status: &'static str,
    version: &'static str,
    partner_center_enabled: bool,
    database: DatabaseHealth,
    auth: AuthHealth,
    current_run: Option<RunRow>,
    last_run: Option<RunRow>,
    last_success_at: Option<DateTime<Utc>>,
    next_run_at: Option<DateTime<Utc>>,
    sync_interval_seconds: Option<u64>,
    sync_cron: Option<String>,
    shutting_down: bool,
    notifications: NotificationsHealth,
}

/// Each destination's delivery health; `healthy` is false after `notify_unhealthy_after`
/// failures in a row (its backlog is kept and retried).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct NotificationsHealth {
    healthy: bool,
    destinations: Vec<DestinationView>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DatabaseHealth {
    reachable: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct AuthHealth {
    state: &'static str,
    account: Option<String>,
    access_token_expires_at: Option<DateTime<Utc>>,
    message: Option<String>,
}

/// What `/healthz` shows a caller without the token when `api_token` is set: enough
/// for a load balancer, nothing about the account, the host or error texts.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PublicHealth {
    status: &'static str,
    partner_center_enabled: bool,
    database: DatabaseHealth,
    signed_in: bool,
    sign_in_required: bool,
    sync_running: bool,
    shutting_down: bool,
}

impl From<Health> for PublicHealth {
    fn from(h: Health) -> Self {
        PublicHealth {
            status: h.status,
            partner_center_enabled: h.partner_center_enabled,
            database: h.database,
            signed_in: h.auth.state == "signed_in",
            sign_in_required: h.auth.state == "sign_in_required",
            sync_running: h.current_run.is_some(),
            shutting_down: h.shutting_down,
        }
    }
}

/// The whole document, or the public summary.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum HealthAnswer {
    Full(Box<Health>),
    Public(PublicHealth),
}

/// 200 while the process lives; the body says how well it is doing. With `api_token`
/// set, only a caller that sends it gets the whole document.
#[utoipa::path(get, path = "/healthz", tag = "operations", security((), ("api_token" = [])),
    responses((status = 200, description = "Alive; the body says how well", body = HealthAnswer)))]
pub(super) async fn healthz(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Json<HealthAnswer> {
    let full = super::auth::token_accepted(&state.config.borrow().clone(), &headers);
    let health = health(&state).await;
    Json(if full {
        HealthAnswer::Full(Box::new(health))
    } else {
        HealthAnswer::Public(PublicHealth::from(health))
    })
}

async fn health(state: &AppState) -> Health {
    let config = state.config.borrow().clone();
    let pool = &state.pool;
    let runs = async {
        let current = runs::find_active(pool).await?;
        let finished = [
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Skipped,
        ];
        let last = runs::list(pool, &finished, 1).await?.into_iter().next();
        let last_success = runs::last_success_at(pool).await?;
        Ok::<_, crate::store::StoreError>((current, last, last_success))
    };
    let (reachable, current_run, last_run, last_success_at) =
        match tokio::time::timeout(DB_PROBE_TIMEOUT, runs).await {
            Ok(Ok((c, l, s))) => (true, c, l, s),
            _ => (false, None, None, None),
        };
    let notify = tokio::time::timeout(DB_PROBE_TIMEOUT, destinations(pool, &config))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let auth = match state.daemon.current_auth_state().await {
        AuthState::Unknown => AuthHealth {
            state: "unknown",
            account: None,
            access_token_expires_at: None,
            message: None,
        },
        AuthState::SignedIn {
            account,
            access_token_expires_at,
        } => AuthHealth {
            state: "signed_in",
            account: Some(account),
            access_token_expires_at,
            message: None,
        },
        AuthState::SignInRequired(required) => AuthHealth {
            state: "sign_in_required",
            account: None,
            access_token_expires_at: None,
            message: Some(required.to_string()),
        },
    };
    Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        partner_center_enabled: config.enabled,
        database: DatabaseHealth { reachable },
        auth,
        current_run,
        last_run,
        last_success_at,
        next_run_at: config.enabled.then(|| state.daemon.next_run_at()).flatten(),
        sync_interval_seconds: config
            .sync_cron
            .is_none()
            .then(|| config.sync_interval.as_secs()),
        sync_cron: config.sync_cron.clone(),
        shutting_down: state.daemon.is_shutting_down(),
        notifications: NotificationsHealth {
            healthy: notify.iter().all(|d| d.healthy),
            destinations: notify,
        },
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Readiness {
    ready: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// 200 only when the database answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready, and why", body = Readiness)))]
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let check = tokio::time::timeout(
        DB_PROBE_TIMEOUT,
        crate::store::schema_is_current(&state.pool),
    )
    .await;
    match check {
        Ok(Ok(true)) => (
            StatusCode::OK,
            Json(Readiness {
                ready: true,
                reason: None,
            }),
        )
            .into_response(),
        Ok(Ok(false)) => not_ready(
            "the database schema is behind this binary; run `partner-center-sync migrate`",
        ),
        Ok(Err(e)) => not_ready(&format!("the database did not answer: {e}")),
        Err(_) => not_ready("the database did not answer in time"),
    }
}

fn not_ready(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Readiness {
            ready: false,
            reason: Some(reason.to_owned()),
        }),
    )
        .into_response()
}

/// Prometheus metrics (OpenMetrics when asked for in `Accept`).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
pub(super) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Gauges that reflect state rather than events are refreshed at scrape time.
    match state.daemon.current_auth_state().await {
        AuthState::SignedIn {
            access_token_expires_at,
            ..
        } => {
            state.metrics.sign_in_required.set(0);
            if let Some(at) = access_token_expires_at {
                state.metrics.access_token_expiry.set(at.timestamp() as f64);
            }
        }
        AuthState::SignInRequired(_) => {
            state.metrics.sign_in_required.set(1);
        }
        AuthState::Unknown => {}
    }
    // A database that does not answer leaves the last counts in place: the scrape itself
    // must not fail, and `/readyz` reports the outage.
    match crate::store::read::counts_by_status(&state.pool).await {
        Ok(counts) => state.metrics.set_referrals_by_status(&counts),
        Err(e) => tracing::debug!(error = %e, "Could not count referrals for /metrics."),
    }
    let config = state.config.borrow().clone();
    match destinations(&state.pool, &config).await {
        Ok(list) => {
            for d in list {
                let labels = crate::metrics::Metrics::destination(&d.name);
                let m = &state.metrics;
                m.notifications_pending
                    .get_or_create(&labels)
                    .set(d.pending);
                m.notifications_healthy
                    .get_or_create(&labels)
                    .set(i64::from(d.healthy));
                // Present from the first scrape, so a rate() has a start.
                let _ = m.notifications_failed.get_or_create(&labels);
            }
        }
        Err(e) => tracing::debug!(error = %e, "Could not read notification health for /metrics."),
    }
    let wants_open_metrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if wants_open_metrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            state.metrics.encode_prometheus_text(),
        )
            .into_response()
    }
}

/// The old UI read `success` and `task_id`; both are kept.
#[derive(Serialize, utoipa::ToSchema)]
struct Triggered {
    success: bool,
    /// The run's id (`/sync-runs/{id}`).
    task_id: i64,
    /// `queued`, or `already_running` when a run was queued or running already.
    status: &'static str,
}

/// Queues a sync run (at most one is queued or running).
#[utoipa::path(post, path = "/api/v1/partner-center/referrals/sync", tag = "sync",
    request_body(content = Option<Object>, description = "Nothing, or a JSON object (ignored)", content_type = "application/json"),
    security((), ("api_token" = [])),
    responses((status = 202, description = "Queued, or already running", body = Triggered),
        (status = 403, description = "A cross-site request", body = super::error::ErrorBody),
        (status = 415, description = "A body that is not JSON", body = super::error::ErrorBody)))]
pub(super) async fn trigger(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    check_trigger_body(&headers, &body)?;
    let outcome = state.daemon.trigger_manual().await.map_err(|e| match e {
        TriggerError::Disabled => ApiError::FeatureDisabled,
        TriggerError::SignInRequired(_) | TriggerError::ShuttingDown => {
            ApiError::Unavailable(e.to_string())
        }
        TriggerError::Store(e) => ApiError::Internal(e.into()),
    })?;
    let (id, status) = match outcome {
        TriggerOutcome::Queued(id) => (id, "queued"),
        TriggerOutcome::AlreadyRunning(id) => (id, "already_running"),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Triggered {
            success: true,
            task_id: id,
            status,
        }),
    )
        .into_response())
}

/// Only an empty body or a JSON object: a cross-site page can send `text/plain` or a
/// form without asking the browser's permission, but not `application/json`. The
/// object's members are ignored; the trigger takes no options yet.
fn check_trigger_body(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?"));
    let is_json = |ct: &str| {
        ct.split(';')
            .next()
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
    };
    match content_type {
        None if body.is_empty() => Ok(()),
        Some(ct) if is_json(ct) => {
            if body.is_empty()
                || serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body)
                    .is_ok()
            {
                Ok(())
            } else {
                Err(ApiError::BadRequest(
                    "The body must be a JSON object (such as {}) or empty.".to_owned(),
                ))
            }
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "Send no body, or `Content-Type: application/json` with a JSON object.".to_owned(),
        )),
    }
}
