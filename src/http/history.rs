//! Change history and notifications, under `/api/v1/partner-center/` (bearer token as the
//! other data endpoints).
//!
//! `GET /api/v1/partner-center/referrals/{id}/changes`: `{"items": [Change]}`, oldest
//! first; 404 when the referral is unknown. A Change is `{referral_id, observed_at,
//! run_id, field, old, new}`: `field` is a tracked field (`status`, `substatus`,
//! `deal_value`, `currency`, `qualification`, `expiration_date`, `close_date`,
//! `expected_close_date`, `team`) or `created` (first sighting; `new` is the status),
//! `missing` (a full pass no longer returned it) or `returned` (back after missing);
//! `old` and `new` are strings or null; `observed_at` is the database clock at the start
//! of the run that saw it.
//!
//! `GET /api/v1/partner-center/changes?since=&cursor=&limit=`: every referral's changes
//! in the order they were recorded, for downstream tools: `{"items": [Change],
//! "next_cursor": string|null}`. `since`: RFC 3339 time or date (changes observed then or
//! later); `cursor`: the previous page's `next_cursor`; `limit` 1..=1000 (default 100).
//! `next_cursor` is the position after the page's last item, also on a short page, so a
//! poller keeps the last one it got and the next poll returns only what was recorded since;
//! an empty page hands back the cursor sent (null when none was sent and nothing exists).
//!
//! `GET /api/v1/partner-center/notifications?limit=`: `{"destinations": [{name, format,
//! events, healthy, pending, failed_total, last_error, last_delivered_at}], "items":
//! [{id, delivery_id, destination, event, referral_id, state, attempts, last_error,
//! created_at, delivered_at}]}`, newest first, `limit` 1..=500 (default 50). `state` is
//! `pending`, `failed` (the last attempt failed; it is retried) or `delivered`. Webhook
//! URLs are never part of it.

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::openapi::{ChangeQuery, NotificationQuery};
use super::params::Params;
use crate::config::Config;
use crate::store::history::{self, ChangeRow};
use crate::store::notifications::{self, NotificationRow};
use crate::store::{StoreError, read};

const CHANGE_PARAMS: &[&str] = &["since", "cursor", "limit"];
const NOTIFICATION_PARAMS: &[&str] = &["limit"];

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/partner-center/referrals/{id}/changes",
            get(referral_changes),
        )
        .route("/api/v1/partner-center/changes", get(changes))
        .route(
            "/api/v1/partner-center/notifications",
            get(notifications_list),
        )
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ChangeList {
    items: Vec<ChangeRow>,
}

#[utoipa::path(get, path = "/api/v1/partner-center/referrals/{id}/changes", tag = "history",
    params(("id" = String, Path, description = "The referral id")), security((), ("api_token" = [])),
    responses((status = 200, description = "The referral's changes, oldest first", body = ChangeList),
        (status = 404, description = "No referral with that id", body = ErrorBody)))]
pub(super) async fn referral_changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ChangeList>, ApiError> {
    let items = history::for_referral(&state.pool, &id).await?;
    if items.is_empty() && read::referral(&state.pool, &id).await?.is_none() {
        return Err(ApiError::NotFound(format!("No referral with id `{id}`.")));
    }
    Ok(Json(ChangeList { items }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ChangePage {
    items: Vec<ChangeRow>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/partner-center/changes", tag = "history",
    params(ChangeQuery), security((), ("api_token" = [])),
    responses((status = 200, description = "Every referral's changes in the order recorded", body = ChangePage)))]
pub(super) async fn changes(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ChangePage>, ApiError> {
    let p = Params::parse(raw, CHANGE_PARAMS)?;
    let since = p.since("since")?;
    let after = p.cursor("cursor")?;
    let limit = p.int("limit", 100, 1, 1000)?;
    let items = history::page(&state.pool, since, after, limit).await?;
    // An empty page hands the cursor back, so a poller can always keep the last one.
    let next_cursor = items
        .last()
        .map(|c| c.id)
        .or((after > 0).then_some(after))
        .map(|id| id.to_string());
    Ok(Json(ChangePage { items, next_cursor }))
}

/// A destination as the API and `/healthz` show it: never its URL or key.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DestinationView {
    pub name: String,
    pub format: &'static str,
    pub events: Vec<&'static str>,
    pub healthy: bool,
    pub pending: i64,
    pub failed_total: i64,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// Every configured destination with its delivery record.
pub(crate) async fn destinations(
    pool: &sqlx::PgPool,
    config: &Config,
) -> Result<Vec<DestinationView>, StoreError> {
    let names: Vec<String> = config.notify.iter().map(|d| d.name.clone()).collect();
    let stats = notifications::destination_stats(pool, &names).await?;
    let unhealthy_after = i32::try_from(config.notify_unhealthy_after).unwrap_or(i32::MAX);
    Ok(config
        .notify
        .iter()
        .zip(stats)
        .map(|(d, s)| DestinationView {
            name: d.name.clone(),
            format: d.format.as_str(),
            events: d.events.iter().map(|e| e.as_str()).collect(),
            healthy: s.consecutive_failures < unhealthy_after,
            pending: s.pending,
            failed_total: s.failed_total,
            last_error: s.last_error,
            last_delivered_at: s.last_delivered_at,
        })
        .collect())
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct NotificationList {
    destinations: Vec<DestinationView>,
    items: Vec<NotificationRow>,
}

#[utoipa::path(get, path = "/api/v1/partner-center/notifications", tag = "history",
    params(NotificationQuery), security((), ("api_token" = [])),
    responses((status = 200, description = "The destinations and the latest notifications", body = NotificationList)))]
pub(super) async fn notifications_list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<NotificationList>, ApiError> {
    let p = Params::parse(raw, NOTIFICATION_PARAMS)?;
    let limit = p.int("limit", 50, 1, 500)?;
    let config = state.config.borrow().clone();
    Ok(Json(NotificationList {
        destinations: destinations(&state.pool, &config).await?,
        items: notifications::recent(&state.pool, limit).await?,
    }))
}
