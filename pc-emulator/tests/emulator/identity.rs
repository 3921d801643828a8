//! The identity endpoints: device-code sign-in, refresh, errors, discovery.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pc_emulator::{EmulatorConfig, PathKind};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn device_code_login_goes_pending_then_issues_tokens() {
    let emu = start(config()).await;
    let client = client();
    let flow = start_device_flow(&client, &emu).await;
    for field in ["user_code", "device_code", "verification_uri", "message"] {
        assert!(flow[field].is_string(), "{field}: {flow}");
    }
    assert_eq!(flow["expires_in"], 900);
    assert!(
        flow["message"]
            .as_str()
            .unwrap_or_default()
            .contains(flow["user_code"].as_str().unwrap_or("?"))
    );
    let device_code = flow["device_code"].as_str().expect("device_code");
    let user_code = flow["user_code"].as_str().expect("user_code");

    let (status, body) = poll(&client, &emu, device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        aad_error(&body),
        ("authorization_pending".into(), Some(70016))
    );
    assert_eq!(emu.pending_user_codes(), vec![user_code.to_string()]);

    assert!(
        emu.approve(&user_code.to_lowercase()),
        "user codes are case-insensitive"
    );
    let (status, tokens) = poll(&client, &emu, device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(
        tokens["scope"],
        "https://api.partner.microsoft.com/user_impersonation openid profile offline_access"
    );
    assert_eq!(
        (
            tokens["expires_in"].as_u64(),
            tokens["ext_expires_in"].as_u64()
        ),
        (Some(3600), Some(3600))
    );
    assert!(tokens["refresh_token"].is_string());
    let id = jwt_claims(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id["tid"], emu.tenant_id());
    assert_eq!(id["aud"], emu.client_id());
    for claim in ["oid", "preferred_username", "name", "iss", "exp", "iat"] {
        assert!(!id[claim].is_null(), "{claim}: {id}");
    }
    let info: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(tokens["client_info"].as_str().expect("client_info"))
            .expect("base64url"),
    )
    .expect("JSON");
    assert_eq!(
        (info["uid"].clone(), info["utid"].as_str()),
        (id["oid"].clone(), Some(emu.tenant_id().as_str()))
    );
    let access = jwt_claims(tokens["access_token"].as_str().expect("access_token"));
    assert_eq!(access["aud"], "https://api.partner.microsoft.com");

    let response = get(
        &client,
        &format!("{}?$top=1", referrals_url(&emu)),
        tokens["access_token"].as_str().unwrap_or_default(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    let (status, again) = poll(&client, &emu, device_code).await;
    assert_eq!(
        (status, aad_error(&again).0.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let stats = emu.stats();
    assert_eq!(
        (
            stats.device_codes_issued,
            stats.device_code_polls,
            stats.tokens_issued
        ),
        (1, 3, 1)
    );
    assert_eq!(stats.requests_with(PathKind::Token, 200), 1);
}

#[tokio::test]
async fn polling_faster_than_interval_gets_slow_down() {
    let emu = start(EmulatorConfig {
        device_code_interval_secs: 1,
        ..config()
    })
    .await;
    let client = client();
    let flow = start_device_flow(&client, &emu).await;
    assert_eq!(flow["interval"], 1);
    let code = flow["device_code"].as_str().expect("device_code");
    let (_, first) = poll(&client, &emu, code).await;
    assert_eq!(first["error"], "authorization_pending");
    let (status, second) = poll(&client, &emu, code).await;
    assert_eq!(
        (status, aad_error(&second).0.as_str()),
        (StatusCode::BAD_REQUEST, "slow_down")
    );
}

#[tokio::test]
async fn declined_expired_and_unknown_codes_fail_as_entra_does() {
    let emu = start(config()).await;
    let client = client();
    let declined = start_device_flow(&client, &emu).await;
    assert!(emu.decline(declined["user_code"].as_str().expect("user_code")));
    let (_, body) = poll(
        &client,
        &emu,
        declined["device_code"].as_str().expect("code"),
    )
    .await;
    assert_eq!(aad_error(&body).0, "authorization_declined");

    let (status, body) = poll(&client, &emu, "DAQABnot-a-real-code").await;
    assert_eq!(
        (status, aad_error(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("bad_verification_code".into(), Some(70018))
        )
    );

    let short = start(EmulatorConfig {
        device_code_lifetime: Duration::from_millis(300),
        ..config()
    })
    .await;
    let expiring = start_device_flow(&client, &short).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = poll(
        &client,
        &short,
        expiring["device_code"].as_str().expect("code"),
    )
    .await;
    assert_eq!(
        (status, aad_error(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("expired_token".into(), Some(70019))
        )
    );
    assert!(
        !short.approve(expiring["user_code"].as_str().expect("user_code")),
        "expired codes cannot be approved"
    );
}

#[tokio::test]
async fn auto_approve_after_k_polls() {
    let emu = start(EmulatorConfig {
        auto_approve_after: Some(2),
        ..config()
    })
    .await;
    let client = client();
    let flow = start_device_flow(&client, &emu).await;
    let code = flow["device_code"].as_str().expect("code");
    for _ in 0..2 {
        assert_eq!(
            poll(&client, &emu, code).await.1["error"],
            "authorization_pending"
        );
    }
    let (status, tokens) = poll(&client, &emu, code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}

#[tokio::test]
async fn devicecode_reports_app_errors_with_http_200() {
    let emu = start(config()).await;
    let client = client();
    let url = endpoint(&emu, "devicecode");
    let (status, body) = form(
        &client,
        &url,
        &[
            ("client_id", "00000000-0000-0000-0000-000000000001"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(
        (status, aad_error(&body)),
        (StatusCode::OK, ("unauthorized_client".into(), Some(700016)))
    );
    let (status, body) = form(
        &client,
        &url,
        &[
            ("client_id", &emu.client_id()),
            ("scope", "https://api.partner.microsoft.com/nope"),
        ],
    )
    .await;
    assert_eq!(
        (status, aad_error(&body).0.as_str()),
        (StatusCode::OK, "invalid_scope")
    );
    let (status, body) = form(&client, &url, &[("scope", SCOPE)]).await;
    assert_eq!(
        (status, aad_error(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("invalid_request".into(), Some(900144))
        )
    );
    let other_tenant = format!(
        "{}/11111111-2222-3333-4444-555555555555/oauth2/v2.0/devicecode",
        emu.authority_url()
    );
    let (status, body) = form(
        &client,
        &other_tenant,
        &[("client_id", &emu.client_id()), ("scope", SCOPE)],
    )
    .await;
    assert_eq!(
        (status, aad_error(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("invalid_request".into(), Some(90002))
        )
    );
    let organizations = format!(
        "{}/organizations/oauth2/v2.0/devicecode",
        emu.authority_url()
    );
    let (status, body) = form(
        &client,
        &organizations,
        &[("client_id", &emu.client_id()), ("scope", SCOPE)],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["device_code"].is_string(), "{body}");
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_keeps_working_until_revoked() {
    let emu = start(config()).await;
    let client = client();
    let first = login(&client, &emu).await;
    let old = first["refresh_token"].as_str().expect("refresh_token");
    let (status, second) = refresh(&client, &emu, old).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let new = second["refresh_token"]
        .as_str()
        .expect("rotated refresh_token");
    assert_ne!(new, old);
    assert_ne!(second["access_token"], first["access_token"]);
    assert!(second["client_info"].is_string());
    let response = get(
        &client,
        &referrals_url(&emu),
        second["access_token"].as_str().unwrap_or_default(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    let (status, third) = refresh(&client, &emu, old).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "rotation does not revoke the old token: {third}"
    );
    let stats = emu.stats();
    assert_eq!(
        (stats.refreshes, stats.refreshes_with_superseded_token),
        (2, 1)
    );

    emu.revoke_refresh_tokens();
    for token in [old, new] {
        let (status, body) = refresh(&client, &emu, token).await;
        assert_eq!(
            (status, aad_error(&body)),
            (
                StatusCode::BAD_REQUEST,
                ("invalid_grant".into(), Some(50173))
            )
        );
    }
    let (_, body) = refresh(&client, &emu, "1.AQnot-issued").await;
    assert_eq!(aad_error(&body).0, "invalid_grant");
}

#[tokio::test]
async fn idle_refresh_tokens_expire_with_70008() {
    let emu = start(EmulatorConfig {
        refresh_token_max_inactive: Duration::from_millis(200),
        ..config()
    })
    .await;
    let client = client();
    let tokens = emu.issue_tokens();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = refresh(
        &client,
        &emu,
        tokens.refresh_token.as_deref().expect("refresh_token"),
    )
    .await;
    assert_eq!(
        (status, aad_error(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("invalid_grant".into(), Some(70008))
        )
    );
}

#[tokio::test]
async fn client_secret_rules_follow_the_registration() {
    let public = start(config()).await;
    let client = client();
    let tokens = public.issue_tokens();
    let url = endpoint(&public, "token");
    let rt = tokens.refresh_token.clone().expect("refresh_token");
    let (status, body) = form(
        &client,
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &public.client_id()),
            ("refresh_token", &rt),
            ("client_secret", "s3cret"),
        ],
    )
    .await;
    assert_eq!(
        (status, aad_error(&body)),
        (
            StatusCode::UNAUTHORIZED,
            ("invalid_client".into(), Some(700025))
        )
    );

    let confidential = start(EmulatorConfig {
        client_secret: Some("s3cret".into()),
        ..config()
    })
    .await;
    let rt = confidential
        .issue_tokens()
        .refresh_token
        .expect("refresh_token");
    let url = endpoint(&confidential, "token");
    let client_id = confidential.client_id();
    let base = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id.as_str()),
        ("refresh_token", rt.as_str()),
    ];
    let (status, body) = form(&client, &url, &base).await;
    assert_eq!(
        (status, aad_error(&body).1),
        (StatusCode::UNAUTHORIZED, Some(7000218))
    );
    let (status, body) = form(
        &client,
        &url,
        &[&base[..], &[("client_secret", "wrong")]].concat(),
    )
    .await;
    assert_eq!(
        (status, aad_error(&body).1),
        (StatusCode::UNAUTHORIZED, Some(7000215))
    );
    let (status, body) = form(
        &client,
        &url,
        &[&base[..], &[("client_secret", "s3cret")]].concat(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn api_refuses_missing_unknown_expired_and_foreign_tokens() {
    let emu = start(config()).await;
    let client = client();
    let url = referrals_url(&emu);
    let response = client.get(&url).send().await.expect("answered");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("www-authenticate").is_some());
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert_eq!(
        get(&client, &url, "not-a-token").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let tokens = emu.issue_tokens();
    let (status, csp) = form(
        &client,
        &endpoint(&emu, "token"),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &emu.client_id()),
            (
                "refresh_token",
                tokens.refresh_token.as_deref().unwrap_or_default(),
            ),
            (
                "scope",
                "https://api.partnercenter.microsoft.com/user_impersonation offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{csp}");
    assert_eq!(
        get(
            &client,
            &url,
            csp["access_token"].as_str().unwrap_or_default()
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        get(&client, &url, &tokens.access_token).await.status(),
        StatusCode::OK
    );
    emu.expire_access_tokens();
    assert_eq!(
        get(&client, &url, &tokens.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&client, &url, &emu.issue_tokens().access_token)
            .await
            .status(),
        StatusCode::OK,
        "new tokens still work"
    );

    let short = start(EmulatorConfig {
        access_token_lifetime: Duration::from_millis(200),
        ..config()
    })
    .await;
    let token = short.issue_tokens().access_token;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(&client, &referrals_url(&short), &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn discovery_documents_point_at_the_emulator() {
    let emu = start(config()).await;
    let client = client();
    let url = format!(
        "{}/{}/v2.0/.well-known/openid-configuration",
        emu.authority_url(),
        emu.tenant_id()
    );
    let doc: Value = client
        .get(&url)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let tenant_base = format!("{}/{}", emu.authority_url(), emu.tenant_id());
    assert_eq!(
        doc["token_endpoint"],
        format!("{tenant_base}/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["device_authorization_endpoint"],
        format!("{tenant_base}/oauth2/v2.0/devicecode")
    );
    assert_eq!(doc["issuer"], format!("{tenant_base}/v2.0"));
    let bad = client
        .get(format!(
            "{}/nowhere.example/v2.0/.well-known/openid-configuration",
            emu.authority_url()
        ))
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
