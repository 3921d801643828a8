//! `/_emulator/...` control endpoints, so a person or an out-of-process test can steer a running
//! emulator, and the `/devicelogin` page a person opens to approve a device code.
//!
//! | Method and path | Effect |
//! |---|---|
//! | `GET /_emulator` | URLs, tenant id and client id |
//! | `GET /_emulator/pending` | pending user codes |
//! | `POST /_emulator/approve?user_code=X` (or `?all=1`), `POST /_emulator/decline?user_code=X` | decide a device code |
//! | `POST /_emulator/mutate?op=update\|add\|close\|hide\|unhide&count=K` | change referrals; returns their ids |
//! | `POST /_emulator/activity` | one round of activity now; returns `{"changes": [{"id", "change"}]}` |
//! | `GET /_emulator/stats`, `GET /_emulator/truth` | statistics, all visible referrals |
//! | `POST /_emulator/faults` (body: a fault spec) | replace the faults |
//! | `POST /_emulator/revoke-refresh-tokens`, `POST /_emulator/expire-access-tokens` | kill tokens |
//! | `POST /_emulator/issue-tokens` | a token response, as after a sign-in |

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};

use crate::faults::{FaultEngine, FaultSpec};
use crate::state::Shared;
use crate::timefmt;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator", get(index))
        .route("/_emulator/", get(index))
        .route("/_emulator/pending", get(pending))
        .route("/_emulator/approve", post(approve))
        .route("/_emulator/decline", post(decline))
        .route("/_emulator/mutate", post(mutate))
        .route("/_emulator/activity", post(activity))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/truth", get(truth))
        .route("/_emulator/faults", post(faults))
        .route("/_emulator/revoke-refresh-tokens", post(revoke))
        .route("/_emulator/expire-access-tokens", post(expire))
        .route("/_emulator/issue-tokens", post(issue))
        .route("/devicelogin", get(login_page).post(login_submit))
}

type Params = Query<HashMap<String, String>>;

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

async fn index(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let identity = shared.identity();
    let base = &shared.base_url;
    Json(json!({
        "base_url": base,
        "authority_url": base,
        "api_url": format!("{base}/v1.0"),
        "tenant_id": identity.tenant_id,
        "client_id": identity.client_id,
    }))
}

async fn pending(State(shared): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(shared.identity().pending_user_codes(Instant::now()))
}

async fn approve(State(shared): State<Arc<Shared>>, Query(params): Params) -> Response {
    let now = Instant::now();
    let approved = if params.get("all").is_some_and(|v| v == "1" || v == "true") {
        shared.identity().approve_all(now)
    } else if let Some(code) = params.get("user_code") {
        usize::from(shared.identity().set_user_decision(code, true, now))
    } else {
        return bad_request("give ?user_code=CODE or ?all=1".into());
    };
    Json(json!({ "approved": approved })).into_response()
}

async fn decline(State(shared): State<Arc<Shared>>, Query(params): Params) -> Response {
    let Some(code) = params.get("user_code") else {
        return bad_request("give ?user_code=CODE".into());
    };
    let declined = shared
        .identity()
        .set_user_decision(code, false, Instant::now());
    Json(json!({ "declined": usize::from(declined) })).into_response()
}

async fn mutate(State(shared): State<Arc<Shared>>, Query(params): Params) -> Response {
    let count = match params.get("count").map(|c| c.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request("count must be a whole number".into()),
    };
    let now = timefmt::now_ticks();
    let mut store = shared.store_mut();
    let ids = match params.get("op").map(String::as_str) {
        Some("update") => store.update(count, now),
        Some("add") => store.add(count, now),
        Some("close") => store.close(count, now),
        Some("hide") => store.hide(count),
        Some("unhide") => store.unhide_all(),
        other => {
            return bad_request(format!(
                "op {other:?} is not one of update, add, close, hide, unhide"
            ));
        }
    };
    Json(json!({ "ids": ids })).into_response()
}

async fn activity(State(shared): State<Arc<Shared>>) -> Response {
    let Some(changes) = shared.activity_round() else {
        return bad_request(
            "this emulator runs without activity; start it with --activity SECONDS".into(),
        );
    };
    let changes: Vec<Value> = changes
        .iter()
        .map(|c| json!({ "id": c.id, "change": c.kind.to_string() }))
        .collect();
    Json(json!({ "changes": changes })).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.stats.snapshot()).into_response()
}

async fn truth(State(shared): State<Arc<Shared>>) -> Response {
    let all = shared.store().truth();
    let mut body = String::with_capacity(all.iter().map(|j| j.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, json) in all.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(json);
    }
    body.push(']');
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn faults(State(shared): State<Arc<Shared>>, body: String) -> Response {
    match FaultSpec::parse(&body) {
        Ok(spec) => {
            let text = spec.to_string();
            shared.replace_faults(FaultEngine::new(spec, shared.config.seed));
            Json(json!({ "faults": text })).into_response()
        }
        Err(e) => bad_request(e.to_string()),
    }
}

async fn revoke(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.identity().revoke_refresh_tokens();
    StatusCode::NO_CONTENT
}

async fn expire(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.identity().expire_access_tokens();
    StatusCode::NO_CONTENT
}

async fn issue(State(shared): State<Arc<Shared>>) -> Response {
    let tokens = shared.identity().issue_full(Instant::now());
    shared.stats.update(|s| s.tokens_issued += 1);
    Json(tokens).into_response()
}

const PAGE_STYLE: &str =
    "body{font-family:sans-serif;max-width:32rem;margin:4rem auto}input{font-size:1.4rem}";

async fn login_page() -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Enter code</title><style>{PAGE_STYLE}</style></head>\
         <body><h1>Enter code</h1><p>Enter the code displayed by the application to allow it to sign in \
         as the emulated user.</p><form method=\"post\"><input name=\"otc\" autofocus autocomplete=\"off\"> \
         <button name=\"decision\" value=\"approve\">Sign in</button> \
         <button name=\"decision\" value=\"decline\">Decline</button></form></body></html>"
    ))
}

async fn login_submit(
    State(shared): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let code = form.get("otc").map(String::as_str).unwrap_or_default();
    let approve = form.get("decision").is_none_or(|d| d != "decline");
    let done = shared
        .identity()
        .set_user_decision(code, approve, Instant::now());
    let (status, text) = match (done, approve) {
        (true, true) => (
            StatusCode::OK,
            "You have signed in. You may now close this window.",
        ),
        (true, false) => (
            StatusCode::OK,
            "Sign-in declined. You may now close this window.",
        ),
        (false, _) => (
            StatusCode::BAD_REQUEST,
            "That code is unknown, expired or already used.",
        ),
    };
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in</title><style>{PAGE_STYLE}</style></head><body><p>{text}</p></body></html>"
        )),
    )
        .into_response()
}
