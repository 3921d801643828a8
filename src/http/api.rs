//! Read-only JSON data endpoints under `/api/v1/partner-center/`, used by the web UI and by scripts.
//!
//! All of them require `api_token` as a bearer token when it is set (see `auth.rs`).
//! Errors are `{"success": false, "error": "<message>"}`; an unknown query parameter or
//! an invalid value is a 400 whose message names the parameter. An empty value
//! (`status=`) counts as absent, so HTML forms can send every field.
//!
//! `GET /api/v1/partner-center/referrals`, with the filters that the pipeline and the CSV
//! export (`export.rs`) take too (`params.rs` parses them, `store/filter.rs` applies them):
//! - `status`, `substatus`, `type`, `direction`, `qualification`: exact match;
//!   comma-separated or repeated parameters match any of the values.
//! - `country` (customer country code), `currency`: the same, ignoring case.
//! - `domain`: exact customer domain (compared in lower case).
//! - `q`: case-insensitive substring of the name or the customer name; `%` and `_` are literal.
//! - `updated_since`: RFC 3339 timestamp (`2025-01-15T08:00:00Z`) or a date (`2025-01-15`, midnight UTC).
//! - `expiring_within_days`: 1..=366; New referrals whose payload `expirationDateTime` lies
//!   between now and that many days ahead (the ones to answer before they expire).
//! - `min_value`, `max_value`: inclusive bounds on `deal_value`, plain decimals (`1000.50`).
//!   Amounts are compared in each referral's own currency, never converted, so a bound
//!   means the same number in every currency; add `currency` to compare like with like.
//!   Referrals without a value never match a bound. `min_value` above `max_value` is a 400.
//! - `include_missing`: `true` to include referrals Partner Center no longer lists (default `false`).
//! - `sort`: `updated_at` (default), `created_at`, `name`, `customer_name`, `deal_value`, `status`;
//!   `order`: `asc` or `desc` (default). Ties are broken by `id`. `deal_value` sorts by
//!   `currency` (A to Z) first, since amounts in different currencies do not compare.
//! - `limit`: 1..=500 (default 50); `offset` (default 0).
//! - `cursor`: keyset paging, only with `sort=updated_at`: pass the previous page's
//!   `next_cursor` (and the same `order`) to get the rows after it; stable while rows change,
//!   unlike `offset`. Cannot be combined with `offset`.
//!
//! Answer: `{"items": [Referral], "total": n, "limit": n, "offset": n, "next_cursor": string|null}`,
//! where `total` counts every row matching the filters and `next_cursor` is set when sorted
//! by `updated_at` and more rows follow. A Referral is `{id, engagement_id, name, status,
//! substatus, type, qualification, direction, customer_name, customer_country,
//! customer_domain, deal_value, currency, created_at, updated_at, first_seen_at,
//! last_seen_at, missing_since, customer_domain_display, expires_at, closed_at,
//! expected_close_at, team_names, partner_center_url}`; `deal_value` is the exact decimal as
//! a string (or null), timestamps are RFC 3339 UTC, `customer_domain_display` is the domain
//! in Unicode (`bücher.example` for the stored `xn--bcher-kva.example`); the last five come
//! from the payload (`expirationDateTime`, `closedDateTime`, `details.closingDateTime`, the
//! partner `team`, `links.self.uri`) and are null or empty when it lacks them.
//!
//! `GET /api/v1/partner-center/referrals/pipeline` (the filters above): count and value by
//! status and substatus, per currency: `{"total": n, "currencies": [{currency, count,
//! valued, value, statuses: [{status, count, valued, value, substatuses: [{substatus,
//! count, valued, value}]}]}]}`. `count` counts referrals, `valued` those with a deal value,
//! `value` is the exact sum of their values as a decimal string (`"0"` when none has one).
//! Currencies run A to Z (none last), statuses and substatuses in lifecycle order (New,
//! Active, Closed; Pending, Received, Accepted, Won, Lost, Declined, Expired).
//!
//! `GET /api/v1/partner-center/referrals/{id}`: a Referral plus `etag`, `payload` (the raw
//! JSON as Partner Center sent it), `team` and `customer_team` (from the payload's `team` and
//! `customerProfile.team`, each member as `{name, email, phone, title}`). 404 when unknown.
//!
//! `GET /api/v1/partner-center/companies?with_referrals=&q=&limit=&offset=`: companies derived
//! from referral domains, most referrals first: `{"items": [{domain, domain_display, name,
//! referral_count, latest_status, latest_referral_at}], "total": n}`. `with_referrals=true` keeps only those with
//! at least one referral; `q` matches the domain or the name; `limit` 1..=500 (default 50).
//!
//! `GET /api/v1/partner-center/sync-runs?limit=&offset=&status=`: newest first, `limit`
//! 1..=200 (default 20), `offset` (default 0), `status` one or more of `queued`, `running`,
//! `succeeded`, `failed`, `skipped`, `cancelled`: `{"items": [Run], "total": n}` (`total`
//! counts every run matching `status`) with Run `{id, trigger, mode, status, dry_run, queued_at,
//! started_at, finished_at, duration_seconds, pages, fetched, inserted, updated, unchanged,
//! marked_missing, parse_errors, error, host, pid}` (`host` and `pid`: the process that ran it;
//! `parse_errors`: how many `sync_errors` the run recorded).
//!
//! `GET /api/v1/partner-center/sync-runs/{id}`: a Run plus `sync_errors`:
//! `[{id, referral_id, field, reason, created_at}]`, each a referral (or a field of one) the run
//! could not store as sent; `field` is null when the whole referral was unreadable. 404 when
//! unknown.

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use super::error::ErrorBody;
use super::openapi::{
    CompanyQuery as CompanyParams, FilterQuery, ReferralPageQuery, RunQuery, SortQuery,
};
use super::params::{
    COMPANY_PARAMS, FILTER_PARAMS, Params, REFERRAL_PAGE_PARAMS, RUN_PARAMS, SORT_PARAMS, path_id,
};
use super::present::{CompanyView, Member, ReferralView, members};
use crate::store::pipeline::{self, CurrencyTally};
use crate::store::read::{self, CompanyQuery, Cursor, Paging, ReferralQuery, ReferralSort};
use crate::store::runs::{self, RunStatus};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/partner-center/referrals", get(list_referrals))
        .route(
            "/api/v1/partner-center/referrals/pipeline",
            get(referral_pipeline),
        )
        .route("/api/v1/partner-center/referrals/{id}", get(get_referral))
        .route("/api/v1/partner-center/companies", get(list_companies))
        .route("/api/v1/partner-center/sync-runs", get(list_runs))
        .route("/api/v1/partner-center/sync-runs/{id}", get(get_run))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReferralList {
    items: Vec<ReferralView>,
    total: i64,
    limit: i64,
    offset: i64,
    next_cursor: Option<String>,
}

/// The referrals matching the filters, a page at a time.
#[utoipa::path(get, path = "/api/v1/partner-center/referrals", tag = "referrals",
    params(FilterQuery, SortQuery, ReferralPageQuery), security((), ("api_token" = [])),
    responses((status = 200, description = "A page of referrals", body = ReferralList)))]
pub(super) async fn list_referrals(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ReferralList>, ApiError> {
    let known = [FILTER_PARAMS, SORT_PARAMS, REFERRAL_PAGE_PARAMS].concat();
    let p = Params::parse(raw, &known)?;
    let filter = p.referral_filter()?;
    let sort = p.sort()?;
    let order = p.order()?;
    let limit = p.int("limit", 50, 1, 500)?;
    let offset = p.int("offset", 0, 0, i64::from(i32::MAX))?;
    let paging = match p.one("cursor")? {
        None => Paging::Offset(offset),
        Some(_) if sort != ReferralSort::UpdatedAt => {
            return Err(ApiError::bad_param(
                "cursor",
                "keyset paging needs sort=updated_at; use offset with other sorts",
            ));
        }
        Some(_) if offset != 0 => {
            return Err(ApiError::bad_param(
                "cursor",
                "cannot be combined with offset",
            ));
        }
        Some(v) => {
            let cursor = Cursor::decode(v).ok_or_else(|| {
                ApiError::bad_param(
                    "cursor",
                    "not a cursor this API issued; pass `next_cursor` unchanged",
                )
            })?;
            if cursor.order != order {
                return Err(ApiError::bad_param(
                    "cursor",
                    "was issued for the other `order`; pass the same order as the first page",
                ));
            }
            Paging::After(cursor)
        }
    };
    let page = read::referrals(
        &state.pool,
        &ReferralQuery {
            filter,
            sort,
            order,
            limit,
            paging,
        },
    )
    .await?;
    Ok(Json(ReferralList {
        items: page
            .items
            .into_iter()
            .map(|row| ReferralView::new(row.referral, &row.payload))
            .collect(),
        total: page.total,
        limit,
        offset,
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Pipeline {
    /// Referrals matching the filter, all currencies together.
    total: i64,
    currencies: Vec<CurrencyTally>,
}

/// Count and value of the matching referrals by currency, status and substatus.
#[utoipa::path(get, path = "/api/v1/partner-center/referrals/pipeline", tag = "referrals",
    params(FilterQuery), security((), ("api_token" = [])),
    responses((status = 200, description = "The pipeline", body = Pipeline)))]
pub(super) async fn referral_pipeline(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Pipeline>, ApiError> {
    let filter = Params::parse(raw, FILTER_PARAMS)?.referral_filter()?;
    let currencies = pipeline::pipeline(&state.pool, &filter).await?;
    Ok(Json(Pipeline {
        total: currencies.iter().map(|c| c.tally.count).sum(),
        currencies,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReferralDetailBody {
    #[serde(flatten)]
    referral: ReferralView,
    etag: Option<String>,
    team: Vec<Member>,
    customer_team: Vec<Member>,
    /// The referral as Partner Center sent it.
    #[schema(value_type = Object)]
    payload: Value,
}

/// One referral with its raw payload and teams.
#[utoipa::path(get, path = "/api/v1/partner-center/referrals/{id}", tag = "referrals",
    params(("id" = String, Path, description = "The referral id")), security((), ("api_token" = [])),
    responses((status = 200, description = "The referral", body = ReferralDetailBody),
        (status = 404, description = "No referral with that id", body = ErrorBody)))]
pub(super) async fn get_referral(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReferralDetailBody>, ApiError> {
    let id = path_id(&id)?;
    let detail = read::referral(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No referral with id `{id}`.")))?;
    let team = members(detail.payload.get("team"));
    let customer_team = members(
        detail
            .payload
            .get("customerProfile")
            .and_then(|c| c.get("team")),
    );
    Ok(Json(ReferralDetailBody {
        referral: ReferralView::new(detail.referral, &detail.payload),
        etag: detail.etag,
        team,
        customer_team,
        payload: detail.payload,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CompanyList {
    items: Vec<CompanyView>,
    total: i64,
}

/// Companies derived from referral domains, most referrals first.
#[utoipa::path(get, path = "/api/v1/partner-center/companies", tag = "referrals",
    params(CompanyParams), security((), ("api_token" = [])),
    responses((status = 200, description = "A page of companies", body = CompanyList)))]
pub(super) async fn list_companies(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CompanyList>, ApiError> {
    let p = Params::parse(raw, COMPANY_PARAMS)?;
    let query = CompanyQuery {
        with_referrals: p.bool("with_referrals")?,
        text: p.text("q")?,
        limit: p.int("limit", 50, 1, 500)?,
        offset: p.int("offset", 0, 0, i64::from(i32::MAX))?,
    };
    let (items, total) = read::companies(&state.pool, &query).await?;
    Ok(Json(CompanyList {
        items: items.into_iter().map(CompanyView::from).collect(),
        total,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RunList {
    items: Vec<runs::RunRow>,
    total: i64,
}

/// Sync runs, newest first.
#[utoipa::path(get, path = "/api/v1/partner-center/sync-runs", tag = "sync",
    params(RunQuery), security((), ("api_token" = [])),
    responses((status = 200, description = "A page of runs", body = RunList)))]
pub(super) async fn list_runs(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RunList>, ApiError> {
    let p = Params::parse(raw, RUN_PARAMS)?;
    let limit = p.int("limit", 20, 1, 200)?;
    let offset = p.int("offset", 0, 0, i64::from(i32::MAX))?;
    let statuses = p
        .list("status")?
        .iter()
        .map(|s| {
            RunStatus::parse(s).ok_or_else(|| {
                let known: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::bad_param(
                    "status",
                    format!("`{s}` is not one of {}", known.join(", ")),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(RunList {
        items: runs::list_page(&state.pool, &statuses, limit, offset).await?,
        total: runs::count(&state.pool, &statuses).await?,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RunDetail {
    #[serde(flatten)]
    run: runs::RunRow,
    sync_errors: Vec<runs::ParseError>,
}

/// One sync run with the errors it recorded.
#[utoipa::path(get, path = "/api/v1/partner-center/sync-runs/{id}", tag = "sync",
    params(("id" = String, Path, description = "The run id (an integer)")), security((), ("api_token" = [])),
    responses((status = 200, description = "The run", body = RunDetail),
        (status = 404, description = "No run with that id", body = ErrorBody)))]
pub(super) async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let id = path_id(&id)?;
    let not_found = || ApiError::NotFound(format!("No sync run with id `{id}`."));
    let run_id: i64 = id.parse().map_err(|_| not_found())?;
    let run = runs::get(&state.pool, run_id)
        .await?
        .ok_or_else(not_found)?;
    let sync_errors = runs::parse_errors(&state.pool, run_id).await?;
    Ok(Json(RunDetail { run, sync_errors }))
}
