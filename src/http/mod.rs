//! The HTTP surface: operations endpoints, the JSON API and the embedded web UI.
//!
//! - `ops.rs`: `/healthz`, `/readyz`, `/metrics`, the sync trigger.
//! - `api.rs`: read-only data endpoints under `/api/v1/partner-center/`.
//! - `params.rs`: their query parameters, and the referral filter the list, the
//!   pipeline and the export share.
//! - `history.rs`: change history and notifications (deliveries, destination health).
//! - `export.rs`: the streamed CSV download of every referral matching a filter.
//! - `ui.rs`: the single page at `/` and its embedded assets.
//! - `present.rs`: what responses add to stored rows for display (domain in Unicode,
//!   payload dates, team, link).
//! - `auth.rs`: the optional bearer token on the trigger and data endpoints.
//! - `guard.rs`: the `Host` every request names, and the origin of state-changing ones.
//! - `openapi.rs`: the OpenAPI document at `/api/openapi.json` (`docs/openapi.json`).
//! - `layers.rs`: access log, timeout, compression, common headers, JSON error bodies.
//! - `error.rs`: the one error type, mapped to status codes and JSON bodies.

mod api;
mod auth;
mod error;
mod export;
mod guard;
mod history;
mod layers;
mod openapi;
mod ops;
pub(crate) mod params;
pub(crate) mod present;
mod ui;

use std::sync::Arc;

use axum::Router;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::config::Config;
use crate::daemon::handle::DaemonHandle;
use crate::metrics::Metrics;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub metrics: Metrics,
    /// The live configuration; SIGHUP swaps in a new one.
    pub config: watch::Receiver<Arc<Config>>,
    pub daemon: DaemonHandle,
}

/// The whole application router. Health, readiness and metrics stay open; the
/// trigger and data endpoints, and `extra` routes (the demo's), require `api_token` when
/// it is set. Every route, the UI's assets and the 404 included, answers only the
/// allowed hosts (`guard.rs`).
pub(crate) fn router(state: AppState, extra: Option<Router>) -> Router {
    let token = axum::middleware::from_fn_with_state(state.clone(), auth::require_api_token);
    let protected = Router::new()
        .merge(api::router())
        .merge(export::router())
        .merge(history::router())
        .merge(ops::protected_router())
        // `route_layer`: only matched routes are guarded, so an unknown path is a 404,
        // not a 401 that would hint something exists there.
        .route_layer(token.clone());
    let mut routes = Router::new()
        .merge(ops::open_router())
        .merge(ui::router())
        .merge(openapi::router())
        .merge(protected)
        .fallback(layers::not_found)
        .with_state(state.clone());
    if let Some(extra) = extra {
        routes = routes.merge(extra.route_layer(token));
    }
    layers::wrap(
        routes
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                guard::check_origin,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state,
                guard::check_host,
            )),
    )
}
