//! The identity endpoints, shaped like `https://login.microsoftonline.com/{tenant}/...`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::aad_error::AadError;
use crate::identity::Grant;
use crate::state::Shared;

/// Form parameters; a body that is not form-encoded counts as empty, so it fails the way a
/// request without parameters does.
fn form(headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return HashMap::new();
    }
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn correlation_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn param<'a>(form: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    form.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`. Errors about the app or its scopes come back with
/// HTTP 200 and an `error` body, the quirk the reference warns about; malformed requests (a
/// missing parameter, an unknown tenant) with 400.
pub(crate) async fn device_code(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(&headers, &body);
    let corr = correlation_id(&headers);
    let result = (|| {
        let mut identity = shared.identity();
        identity.check_tenant(&tenant)?;
        let client_id = param(&form, "client_id");
        if client_id.is_none() {
            return Err(AadError::missing_parameter("client_id"));
        }
        identity
            .check_client(client_id, None, false)
            .map_err(|e| e.with_status(StatusCode::OK))?;
        let scope = param(&form, "scope").ok_or_else(|| AadError::missing_parameter("scope"))?;
        let grant = Grant::parse(scope).map_err(|e| e.with_status(StatusCode::OK))?;
        Ok(identity.start_device_flow(&tenant, grant, Instant::now()))
    })();
    match result {
        Ok(answer) => {
            shared.stats.update(|s| s.device_codes_issued += 1);
            Json(answer).into_response()
        }
        Err(e) => e.render(&shared.base_url, corr.as_deref()),
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`: the device-code and refresh-token grants.
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(&headers, &body);
    let corr = correlation_id(&headers);
    let client_info = param(&form, "client_info") == Some("1");
    let now = Instant::now();
    let grant_type = param(&form, "grant_type");
    let result = {
        let mut identity = shared.identity();
        identity
            .check_tenant(&tenant)
            .and_then(|()| {
                identity.check_client(
                    param(&form, "client_id"),
                    param(&form, "client_secret"),
                    true,
                )
            })
            .and_then(|()| match grant_type {
                Some("urn:ietf:params:oauth:grant-type:device_code") => {
                    shared.stats.update(|s| s.device_code_polls += 1);
                    let code = param(&form, "device_code")
                        .ok_or_else(|| AadError::missing_parameter("device_code"))?;
                    identity
                        .poll_device_code(&tenant, code, client_info, now)
                        .map(|tokens| (tokens, false, false))
                }
                Some("refresh_token") => {
                    let token = param(&form, "refresh_token")
                        .ok_or_else(|| AadError::missing_parameter("refresh_token"))?;
                    identity
                        .refresh(token, param(&form, "scope"), client_info, now)
                        .map(|r| (r.tokens, true, r.superseded))
                }
                Some(other) => Err(AadError::new(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    70003,
                    format!("The app requested an unsupported grant type '{other}'."),
                )),
                None => Err(AadError::missing_parameter("grant_type")),
            })
    };
    match result {
        Ok((tokens, refreshed, superseded)) => {
            shared.stats.update(|s| {
                s.tokens_issued += 1;
                if refreshed {
                    s.refreshes += 1;
                }
                if superseded {
                    s.refreshes_with_superseded_token += 1;
                }
            });
            (
                [
                    (header::CACHE_CONTROL, "no-store, no-cache"),
                    (header::PRAGMA, "no-cache"),
                ],
                Json(tokens),
            )
                .into_response()
        }
        Err(e) => e.render(&shared.base_url, corr.as_deref()),
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`, so standard clients find the endpoints.
pub(crate) async fn openid_configuration(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (check, tenant_id) = {
        let identity = shared.identity();
        (identity.check_tenant(&tenant), identity.tenant_id.clone())
    };
    if let Err(e) = check {
        return e.render(&shared.base_url, correlation_id(&headers).as_deref());
    }
    let base = &shared.base_url;
    let specific = !matches!(
        tenant.to_ascii_lowercase().as_str(),
        "organizations" | "common"
    );
    // Entra's multi-tenant documents name the issuer with a literal `{tenantid}` placeholder.
    let issuer_tenant = if specific {
        tenant_id.as_str()
    } else {
        "{tenantid}"
    };
    let host = shared.host();
    Json(json!({
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
            "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{tenant}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": host,
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }))
    .into_response()
}

/// `GET /common/discovery/instance`, which MSAL calls for authorities it does not know.
pub(crate) async fn instance_discovery(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let authorize = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "authorization_endpoint")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let base = &shared.base_url;
    let tenant = authorize
        .strip_prefix(base.as_str())
        .and_then(|rest| rest.trim_start_matches('/').split('/').next())
        .filter(|t| !t.is_empty())
        .unwrap_or("common")
        .to_string();
    let host = shared.host();
    (
        StatusCode::OK,
        Json(json!({
            "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [{ "preferred_network": host, "preferred_cache": host, "aliases": [host] }],
        })),
    )
        .into_response()
}
