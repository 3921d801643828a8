//! Operations endpoints: health, readiness, metrics (open) and the sync trigger
//! (protected by `api_token` when set).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::history::{DestinationView, destinations};
use crate::auth::AuthState;
use crate::daemon::handle::{TriggerError, TriggerOutcome};
use crate::store::runs::{self, RunRow, RunStatus};

/// A database that does not answer within this is reported unreachable rather than
/// letting health checks hang.
const DB_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn open_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

pub fn protected_router() -> Router<AppState> {
    Router::new().route("/api/v1/partner-center/referrals/sync", post(trigger))
}

#[derive(Serialize)]
struct Health {
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
#[derive(Serialize)]
struct NotificationsHealth {
    healthy: bool,
    destinations: Vec<DestinationView>,
}

#[derive(Serialize)]
struct DatabaseHealth {
    reachable: bool,
}

#[derive(Serialize)]
struct AuthHealth {
    state: &'static str,
    account: Option<String>,
    access_token_expires_at: Option<DateTime<Utc>>,
    message: Option<String>,
}

/// 200 while the process lives; the body says how well it is doing.
async fn healthz(State(state): State<AppState>) -> Json<Health> {
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
        AuthState::SignInRequired { reason } => AuthHealth {
            state: "sign_in_required",
            account: None,
            access_token_expires_at: None,
            message: Some(format!(
                "Sign-in required: run `partner-center-sync login` ({reason})."
            )),
        },
    };
    Json(Health {
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
    })
}

/// 200 only when the database answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> Response {
    let check = tokio::time::timeout(
        DB_PROBE_TIMEOUT,
        crate::store::schema_is_current(&state.pool),
    )
    .await;
    match check {
        Ok(Ok(true)) => (StatusCode::OK, Json(json!({"ready": true}))).into_response(),
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
        Json(json!({"ready": false, "reason": reason})),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
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
        AuthState::SignInRequired { .. } => {
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
async fn trigger(State(state): State<AppState>) -> Result<Response, ApiError> {
    let outcome = state.daemon.trigger_manual().await.map_err(|e| match e {
        TriggerError::Disabled => ApiError::FeatureDisabled,
        TriggerError::SignInRequired(message) => ApiError::Unavailable(message),
        TriggerError::ShuttingDown => ApiError::Unavailable(e.to_string()),
        TriggerError::Store(e) => ApiError::Internal(e.into()),
    })?;
    let (id, status) = match outcome {
        TriggerOutcome::Queued(id) => (id, "queued"),
        TriggerOutcome::AlreadyRunning(id) => (id, "already_running"),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"success": true, "task_id": id, "status": status})),
    )
        .into_response())
}
