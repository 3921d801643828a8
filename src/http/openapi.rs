//! The OpenAPI 3.1 document of the HTTP API, made by utoipa from the handlers'
//! `#[utoipa::path]` attributes and the response types, served at `/api/openapi.json`
//! and committed as `docs/openapi.json` (a unit test keeps the file current;
//! `UPDATE_OPENAPI=1 cargo test --lib openapi` rewrites it).
//!
//! Query parameters are read by `params.rs` from the raw query rather than by serde, so
//! they are described here, from the same name lists the parser accepts.

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{Object, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, Required, ResponseBuilder, Schema};
use utoipa::{IntoParams, Modify, OpenApi};

use super::AppState;
use super::error::ErrorBody;
use super::params::{COMPANY_PARAMS, FILTER_PARAMS, REFERRAL_PAGE_PARAMS, RUN_PARAMS, SORT_PARAMS};
use crate::store::read::ReferralSort;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "partner-center-sync",
        description = "The daemon's HTTP API: Partner Center referrals as stored in PostgreSQL, sync runs, health. \
            With `api_token` set, the data endpoints and the trigger need `Authorization: Bearer <api_token>`."
    ),
    paths(
        super::api::list_referrals,
        super::api::referral_pipeline,
        super::export::referrals_csv,
        super::api::get_referral,
        super::api::list_companies,
        super::api::list_runs,
        super::api::get_run,
        super::history::referral_changes,
        super::history::changes,
        super::history::notifications_list,
        super::ops::trigger,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        openapi_json,
    ),
    components(schemas(ErrorBody)),
    modifiers(&CommonAnswers)
)]
struct ApiDoc;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

/// This document. Open: it describes the API and holds no data.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json() -> Json<Document> {
    Json(ApiDoc::openapi())
}

/// What any route may answer besides its own results, added to every operation so the
/// handlers' attributes list only their own; and the bearer scheme.
struct CommonAnswers;

impl Modify for CommonAnswers {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "ErrorBody",
                        ))))
                        .build(),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            let protected = path.starts_with("/api/v1/");
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                let answers = &mut op.responses.responses;
                let mut add = |status: &str, description: &str| {
                    answers
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::T(error(description)));
                };
                add(
                    "421",
                    "The `Host` is not one this daemon answers for (`public_hosts`).",
                );
                add("500", "An internal error; the daemon's log has the cause.");
                add(
                    "503",
                    "The request took too long, or the daemon cannot serve it now.",
                );
                if protected {
                    add("400", "A parameter is invalid; the message names it.");
                    add(
                        "401",
                        "`api_token` is set and the bearer token is missing or wrong.",
                    );
                }
            }
        }
    }
}

enum Kind {
    Text,
    Int(i64, i64),
    Bool,
    OneOf(&'static [&'static str]),
}

fn schema(kind: &Kind) -> Schema {
    let object = match kind {
        Kind::Text => Object::with_type(Type::String),
        Kind::Bool => {
            let mut o = Object::with_type(Type::Boolean);
            o.default = Some(false.into());
            o
        }
        Kind::Int(min, max) => {
            let mut o = Object::with_type(Type::Integer);
            o.minimum = Some((*min as f64).into());
            o.maximum = Some((*max as f64).into());
            o
        }
        Kind::OneOf(values) => {
            let mut o = Object::with_type(Type::String);
            o.enum_values = Some(values.iter().map(|v| (*v).into()).collect());
            o
        }
    };
    let mut object = object;
    if matches!(object.schema_type, SchemaType::Type(Type::String))
        && !matches!(kind, Kind::OneOf(_))
    {
        object.max_length = Some(200);
    }
    Schema::Object(object)
}

fn query(name: &str, kind: Kind, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema(&kind)))
        .build()
}

const MAX_OFFSET: i64 = i32::MAX as i64;

/// How each parameter is described; `params.rs` has what each means.
fn describe(name: &str) -> Parameter {
    let (kind, description) = match name {
        "status" | "substatus" | "type" | "direction" | "qualification" | "country"
        | "currency" => (
            Kind::Text,
            "Exact match; comma-separated or repeated values match any of them.",
        ),
        "domain" => (Kind::Text, "Exact customer domain."),
        "q" => (
            Kind::Text,
            "Case-insensitive substring of the name or the customer name.",
        ),
        "updated_since" => (
            Kind::Text,
            "RFC 3339 timestamp or a date (YYYY-MM-DD, midnight UTC).",
        ),
        "expiring_within_days" => (
            Kind::Int(1, 366),
            "New referrals expiring within that many days.",
        ),
        "min_value" | "max_value" => (
            Kind::Text,
            "Inclusive bound on deal_value, a plain decimal like 1000.50.",
        ),
        "include_missing" => (
            Kind::Bool,
            "Include referrals Partner Center no longer lists.",
        ),
        "with_referrals" => (Kind::Bool, "Only companies with at least one referral."),
        "sort" => (
            Kind::OneOf(ReferralSort::NAMES),
            "Sort key; ties are broken by id.",
        ),
        "order" => (Kind::OneOf(&["asc", "desc"]), "Sort order (default desc)."),
        "limit" => (
            Kind::Int(1, 500),
            "Page size (default 50; sync runs: at most 200, default 20).",
        ),
        "offset" => (Kind::Int(0, MAX_OFFSET), "Rows to skip (default 0)."),
        "cursor" => (
            Kind::Text,
            "The previous page's next_cursor; only with sort=updated_at, not with offset.",
        ),
        _ => (Kind::Text, ""),
    };
    query(name, kind, description)
}

fn params(lists: &[&[&str]]) -> Vec<Parameter> {
    lists
        .iter()
        .flat_map(|l| l.iter())
        .map(|n| describe(n))
        .collect()
}

/// The referral filters (list, pipeline, CSV).
pub(crate) struct FilterQuery;
/// `sort` and `order` (list, CSV).
pub(crate) struct SortQuery;
/// `limit`, `offset`, `cursor` of the referral list.
pub(crate) struct ReferralPageQuery;
pub(crate) struct CompanyQuery;
pub(crate) struct RunQuery;
/// `since`, `cursor`, `limit` of the change feed.
pub(crate) struct ChangeQuery;
/// `limit` of the notification list.
pub(crate) struct NotificationQuery;

impl IntoParams for ChangeQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            query(
                "since",
                Kind::Text,
                "Changes observed at or after this RFC 3339 time or date (YYYY-MM-DD, midnight UTC).",
            ),
            query("cursor", Kind::Text, "The previous page's next_cursor."),
            query("limit", Kind::Int(1, 1000), "Page size (default 100)."),
        ]
    }
}

impl IntoParams for NotificationQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![query(
            "limit",
            Kind::Int(1, 500),
            "How many, newest first (default 50).",
        )]
    }
}

impl IntoParams for FilterQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        params(&[FILTER_PARAMS])
    }
}

impl IntoParams for SortQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        params(&[SORT_PARAMS])
    }
}

impl IntoParams for ReferralPageQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        params(&[REFERRAL_PAGE_PARAMS])
    }
}

impl IntoParams for CompanyQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        params(&[COMPANY_PARAMS])
    }
}

impl IntoParams for RunQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut p = params(&[RUN_PARAMS]);
        for param in &mut p {
            if param.name == "limit" {
                *param = query("limit", Kind::Int(1, 200), "Page size (default 20).");
            } else if param.name == "status" {
                *param = query(
                    "status",
                    Kind::Text,
                    "One or more of queued, running, succeeded, failed, skipped, cancelled (comma-separated).",
                );
            }
        }
        p
    }
}

/// The document as committed: pretty JSON with a final newline.
#[cfg(test)]
fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
        let current = document();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &current).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/openapi.json is not what the handlers describe; run `UPDATE_OPENAPI=1 cargo test --lib openapi` and commit it"
        );
    }

    #[test]
    fn every_route_of_the_router_is_documented() {
        let doc = ApiDoc::openapi();
        let documented: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        for path in [
            "/api/v1/partner-center/referrals",
            "/api/v1/partner-center/referrals/pipeline",
            "/api/v1/partner-center/referrals.csv",
            "/api/v1/partner-center/referrals/{id}",
            "/api/v1/partner-center/referrals/sync",
            "/api/v1/partner-center/companies",
            "/api/v1/partner-center/sync-runs",
            "/api/v1/partner-center/sync-runs/{id}",
            "/api/v1/partner-center/referrals/{id}/changes",
            "/api/v1/partner-center/changes",
            "/api/v1/partner-center/notifications",
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/openapi.json",
        ] {
            assert!(documented.contains(&path), "{path} is not documented");
        }
        assert_eq!(documented.len(), 15, "{documented:?}");
    }
}
