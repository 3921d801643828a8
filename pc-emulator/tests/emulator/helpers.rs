//! Starting emulators and speaking HTTP to them the way any client would.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pc_emulator::{Emulator, EmulatorConfig};
use reqwest::StatusCode;
use serde_json::Value;

pub const SCOPE: &str =
    "https://api.partner.microsoft.com/user_impersonation offline_access openid profile";
pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub async fn start(config: EmulatorConfig) -> Emulator {
    Emulator::start(config).await.expect("emulator starts")
}

/// Test defaults: no polling interval, small dataset.
pub fn config() -> EmulatorConfig {
    EmulatorConfig {
        device_code_interval_secs: 0,
        ..EmulatorConfig::default()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client builds")
}

pub async fn form(
    client: &reqwest::Client,
    url: &str,
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .form(params)
        .send()
        .await
        .expect("request is answered");
    let status = response.status();
    let body = response.json::<Value>().await.expect("JSON body");
    (status, body)
}

/// `{authority}/{tenant}/oauth2/v2.0/{name}` of the emulator's tenant.
pub fn endpoint(emu: &Emulator, name: &str) -> String {
    format!(
        "{}/{}/oauth2/v2.0/{name}",
        emu.authority_url(),
        emu.tenant_id()
    )
}

pub async fn start_device_flow(client: &reqwest::Client, emu: &Emulator) -> Value {
    let url = endpoint(emu, "devicecode");
    let (status, body) = form(
        client,
        &url,
        &[("client_id", &emu.client_id()), ("scope", SCOPE)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("error").is_none(), "{body}");
    body
}

pub async fn poll(
    client: &reqwest::Client,
    emu: &Emulator,
    device_code: &str,
) -> (StatusCode, Value) {
    let url = endpoint(emu, "token");
    form(
        client,
        &url,
        &[
            ("grant_type", DEVICE_GRANT),
            ("client_id", &emu.client_id()),
            ("device_code", device_code),
            ("client_info", "1"),
        ],
    )
    .await
}

pub async fn refresh(
    client: &reqwest::Client,
    emu: &Emulator,
    refresh_token: &str,
) -> (StatusCode, Value) {
    let url = endpoint(emu, "token");
    form(
        client,
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &emu.client_id()),
            ("refresh_token", refresh_token),
            ("scope", SCOPE),
            ("client_info", "1"),
        ],
    )
    .await
}

/// A complete device-code sign-in; returns the token response.
pub async fn login(client: &reqwest::Client, emu: &Emulator) -> Value {
    let flow = start_device_flow(client, emu).await;
    let (status, pending) = poll(
        client,
        emu,
        flow["device_code"].as_str().expect("device_code"),
    )
    .await;
    assert_eq!(
        (status, pending["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("authorization_pending"))
    );
    assert!(emu.approve(flow["user_code"].as_str().expect("user_code")));
    let (status, tokens) = poll(
        client,
        emu,
        flow["device_code"].as_str().expect("device_code"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

pub fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

pub fn referrals_url(emu: &Emulator) -> String {
    format!("{}/engagements/referrals", emu.api_url())
}

pub async fn get(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request is answered")
}

/// Follows `@odata.nextLink` from `first_url` to the end; returns every page body. Bounded.
pub async fn all_pages(client: &reqwest::Client, first_url: &str, token: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = first_url.to_string();
    for _ in 0..20_000 {
        let response = get(client, &url, token).await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let page: Value = response.json().await.expect("JSON page");
        let next = page["@odata.nextLink"].as_str().map(str::to_string);
        pages.push(page);
        match next {
            Some(next) => url = next,
            None => return pages,
        }
    }
    panic!("paging did not end");
}

pub fn items(pages: &[Value]) -> Vec<Value> {
    pages
        .iter()
        .flat_map(|p| p["value"].as_array().expect("value array").clone())
        .collect()
}

/// An Entra error body: checks its shape and returns (error, first error code).
pub fn aad_error(body: &Value) -> (String, Option<u64>) {
    let error = body["error"].as_str().expect("error").to_string();
    for field in [
        "error_description",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    ] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
    let code = body["error_codes"]
        .as_array()
        .expect("error_codes")
        .first()
        .and_then(Value::as_u64);
    if let Some(code) = code {
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.starts_with(&format!("AADSTS{code}: ")),
            "{description}"
        );
        assert!(
            description.contains("Trace ID: ") && description.contains("Correlation ID: "),
            "{description}"
        );
    }
    (error, code)
}
