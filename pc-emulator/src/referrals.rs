//! `GET /v1.0/engagements/referrals` and `GET /v1.0/engagements/referrals/{id}`: bearer auth,
//! OData paging, and the fault injection that sits in front of both.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use uuid::Uuid;

use crate::faults::RequestFaults;
use crate::identity::AccessCheck;
use crate::odata::ListQuery;
use crate::server::{ConnectionReset, KillSwitch};
use crate::state::Shared;
use crate::stats::InFlight;
use crate::timefmt;

/// A JSON response with Partner Center's content type.
fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// `{ "error": { "code", "message" } }`, the API's error shape.
fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({ "error": { "code": code, "message": message } }).to_string(),
    )
}

fn unauthorized(shared: &Shared, message: &str) -> Response {
    let mut response = api_error(StatusCode::UNAUTHORIZED, "unauthenticated", message);
    let challenge = format!(
        "Bearer authorization_uri=\"{}/{}/oauth2/v2.0/authorize\", error=\"invalid_token\"",
        shared.base_url,
        shared.identity().tenant_id
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// What stands before every API handler: the in-flight gauge, authentication and the
/// per-request faults. `Err` is the response to send instead of the real one.
async fn admit<'a>(
    shared: &'a Shared,
    headers: &HeaderMap,
    switch: &KillSwitch,
) -> Result<InFlight<'a>, Response> {
    let in_flight = shared.stats.enter_api();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let expire_after = shared.faults().token_expire_after();
    let check = shared
        .identity()
        .check_access(authorization, expire_after, Instant::now());
    match check {
        AccessCheck::Valid => {}
        AccessCheck::Missing => {
            return Err(unauthorized(
                shared,
                "Authentication failed: the request has no bearer token.",
            ));
        }
        AccessCheck::Unknown => {
            return Err(unauthorized(
                shared,
                "Authentication failed: the access token is invalid.",
            ));
        }
        AccessCheck::Expired => {
            return Err(unauthorized(
                shared,
                "Authentication failed: the access token has expired.",
            ));
        }
        AccessCheck::ExpiredByFault => {
            shared.stats.record_faults(&["token_expire".to_string()]);
            return Err(unauthorized(
                shared,
                "Authentication failed: the access token has expired.",
            ));
        }
        AccessCheck::WrongAudience => {
            return Err(unauthorized(
                shared,
                "Authentication failed: the access token's audience is not https://api.partner.microsoft.com.",
            ));
        }
    }
    let faults: RequestFaults = shared.faults().on_api_request();
    shared.stats.record_faults(&faults.fired);
    if faults.revoke_refresh_tokens {
        shared.identity().revoke_refresh_tokens();
    }
    if let Some(delay) = faults.delay {
        tokio::time::sleep(delay).await;
    }
    if faults.reset {
        switch.trip();
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        response.extensions_mut().insert(ConnectionReset);
        return Err(response);
    }
    if let Some((status, retry_after)) = faults.status {
        return Err(fault_response(status, retry_after));
    }
    Ok(in_flight)
}

/// The bodies a failing Partner Center really sends: the gateway's own shape on 429, HTML from
/// a gateway on 502/504, the API's error shape otherwise.
fn fault_response(status: u16, retry_after: Option<u32>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match status {
        429 => {
            let secs = retry_after.unwrap_or(1);
            json_response(
                code,
                json!({ "statusCode": 429, "message": format!("Rate limit is exceeded. Try again in {secs} seconds.") }).to_string(),
            )
        }
        502 | 504 => (
            code,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
            format!(
                "<html><body><h1>{status} {}</h1></body></html>",
                code.canonical_reason().unwrap_or("Gateway error")
            ),
        )
            .into_response(),
        503 => api_error(
            code,
            "serviceNotAvailable",
            "The service is temporarily unavailable. Try again later.",
        ),
        _ => api_error(
            code,
            "generalException",
            "An unexpected error occurred while processing the request.",
        ),
    };
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(switch): ConnectInfo<KillSwitch>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let _in_flight = match admit(&shared, &headers, &switch).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    let query = match ListQuery::parse(raw.as_deref()) {
        Ok(query) => query,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "invalidRequest", &e.0),
    };
    if shared.config.refuse_updated_filter && query.filter.uses_updated() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "The property 'updatedDateTime' cannot be used in the $filter query option.",
        );
    }
    let (list, page) = {
        let store = shared.store();
        let list = store.ordered(&query.filter, query.order);
        let start = query.offset.min(list.len());
        let end = (query.offset + query.top).min(list.len());
        let page: Vec<Arc<str>> = list[start..end]
            .iter()
            .map(|&i| store.record(i).json.clone())
            .collect();
        (list, page)
    };
    let total = list.len();
    let served_to = (query.offset + page.len()).min(total);
    let mut body = String::with_capacity(page.iter().map(|j| j.len() + 1).sum::<usize>() + 512);
    body.push_str("{\"@odata.context\":");
    body.push_str(&json!(format!("{}/v1.0/$metadata#Referrals", shared.base_url)).to_string());
    body.push_str(",\"@odata.count\":");
    body.push_str(&total.to_string());
    body.push_str(",\"value\":[");
    for (i, json) in page.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(json);
    }
    body.push(']');
    if served_to < total {
        let token: String =
            url::form_urlencoded::byte_serialize(query.next_token(served_to).as_bytes()).collect();
        let link = if shared.config.quirky_next_link {
            format!("http://{}/v1.0/referrals?$skiptoken={token}", shared.host())
        } else {
            format!(
                "{}/v1.0/engagements/referrals?$top={}&$skiptoken={token}",
                shared.base_url, query.top
            )
        };
        body.push_str(",\"@odata.nextLink\":");
        body.push_str(&json!(link).to_string());
    }
    body.push('}');

    let page_number = u32::try_from(query.offset / query.top + 1).unwrap_or(u32::MAX);
    let page_faults = shared.faults().on_page(page_number);
    shared.stats.record_faults(&page_faults.fired);
    shared.stats.update(|s| {
        s.pages_served += 1;
        s.referrals_served += page.len() as u64;
    });
    if let Some(count) = page_faults.mutate {
        let ids = shared
            .store_mut()
            .update_within(&list, served_to, count, timefmt::now_ticks());
        tracing::info!(
            page = page_number,
            updated = ids.len(),
            "Updated referrals mid-listing (fault injection)."
        );
    }
    if page_faults.malformed {
        let mut cut = body.len() / 2;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    json_response(StatusCode::OK, body)
}

pub(crate) async fn get_one(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(switch): ConnectInfo<KillSwitch>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let _in_flight = match admit(&shared, &headers, &switch).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    let found = Uuid::parse_str(&id)
        .ok()
        .and_then(|uuid| shared.store().get(&uuid).map(|r| r.json.clone()));
    let Some(json) = found else {
        return api_error(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            &format!("Referral '{id}' was not found."),
        );
    };
    let etag = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| {
            v["eTag"]
                .as_str()
                .and_then(|e| HeaderValue::from_str(e).ok())
        });
    let mut response = json_response(StatusCode::OK, json.to_string());
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}
