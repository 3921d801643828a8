//! The https listener: what it advertises, whom it serves, and faults that still behave.

use pc_emulator::{Emulator, EmulatorConfig, FaultSpec, PathKind};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn tls() -> EmulatorConfig {
    EmulatorConfig {
        tls: true,
        ..config()
    }
}

/// A client that trusts nothing but the emulator's CA.
fn trusting(emu: &Emulator) -> reqwest::Client {
    let pem = emu.ca_certificate_pem().expect("a CA with tls on");
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("PEM")])
        .build()
        .expect("client builds")
}

async fn json(client: &reqwest::Client, url: &str) -> Value {
    let response = client.get(url).send().await.expect("answered");
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.json().await.expect("JSON")
}

/// Every string in `value` that holds a URL, depth first.
fn urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains("://") => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| urls(v, out)),
        Value::Object(map) => map.values().for_each(|v| urls(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn discovery_and_every_advertised_url_are_https() {
    let emu = start(tls()).await;
    let base = emu.base_url();
    assert_eq!(base, format!("https://{}", emu.local_addr()));
    assert_eq!(emu.authority_url(), base);
    assert_eq!(emu.api_url(), format!("{base}/v1.0"));
    let client = trusting(&emu);
    let tenant = emu.tenant_id();
    let host = emu.local_addr().to_string();

    let openid = json(
        &client,
        &format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
    )
    .await;
    assert_eq!(
        openid["token_endpoint"],
        format!("{base}/{tenant}/oauth2/v2.0/token")
    );
    assert_eq!(
        openid["device_authorization_endpoint"],
        format!("{base}/{tenant}/oauth2/v2.0/devicecode")
    );
    assert_eq!(openid["issuer"], format!("{base}/{tenant}/v2.0"));
    assert_eq!(openid["cloud_instance_name"], host.as_str());
    let instance = json(
        &client,
        &format!(
            "{base}/common/discovery/instance?api-version=1.1&authorization_endpoint={base}/{tenant}/oauth2/v2.0/authorize"
        ),
    )
    .await;
    assert_eq!(
        instance["tenant_discovery_endpoint"],
        format!("{base}/{tenant}/v2.0/.well-known/openid-configuration")
    );
    assert_eq!(instance["metadata"][0]["preferred_network"], host.as_str());
    let index = json(&client, &format!("{base}/_emulator")).await;

    let tokens = login(&client, &emu).await;
    let id_token = jwt_claims(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id_token["iss"], format!("{base}/{tenant}/v2.0"));
    let flow = start_device_flow(&client, &emu).await;
    assert_eq!(flow["verification_uri"], format!("{base}/devicelogin"));
    let page: Value = get(
        &client,
        &format!("{}?$top=10", referrals_url(&emu)),
        tokens["access_token"].as_str().expect("access token"),
    )
    .await
    .json()
    .await
    .expect("JSON page");

    let mut advertised = Vec::new();
    for doc in [&openid, &instance, &index, &flow] {
        urls(doc, &mut advertised);
    }
    urls(&page["@odata.nextLink"], &mut advertised);
    urls(&page["@odata.context"], &mut advertised);
    let ours = advertised.iter().filter(|u| u.contains(&host)).count();
    assert!(ours >= 10, "{advertised:?}");
    assert!(
        !advertised
            .iter()
            .any(|u| u.contains(&format!("http://{host}"))),
        "{advertised:?}"
    );
}

#[tokio::test]
async fn only_clients_that_trust_the_ca_get_an_answer() {
    let plain = start(config()).await;
    assert!(plain.ca_certificate_pem().is_none());
    assert!(plain.base_url().starts_with("http://127.0.0.1:"));

    let emu = start(tls()).await;
    let pem = emu.ca_certificate_pem().expect("CA");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let other = start(tls()).await;
    assert_ne!(
        other.ca_certificate_pem(),
        Some(pem),
        "a fresh CA every start"
    );

    let port = emu.local_addr().port();
    let trusted = trusting(&emu);
    for url in [
        format!("https://127.0.0.1:{port}/_emulator"),
        format!("https://localhost:{port}/_emulator"),
    ] {
        json(&trusted, &url).await;
    }
    let url = format!("{}/_emulator", emu.base_url());
    let error = trusting(&other)
        .get(&url)
        .send()
        .await
        .expect_err("another run's CA is not trusted");
    assert!(error.is_connect(), "{error:?}");
    let error = client()
        .get(&url)
        .send()
        .await
        .expect_err("the platform's roots do not hold the emulator's CA");
    assert!(error.is_connect(), "{error:?}");
    client()
        .get(format!("http://127.0.0.1:{port}/_emulator"))
        .send()
        .await
        .expect_err("no plain http on the https port");
    json(&trusted, &url).await;
    assert_eq!(
        emu.stats().requests_to(PathKind::Control),
        3,
        "failed handshakes never reach the router"
    );
}

#[tokio::test]
async fn a_reset_fault_resets_a_tls_connection() {
    let emu = start(EmulatorConfig {
        faults: FaultSpec::parse("reset:every=2").expect("valid spec"),
        ..tls()
    })
    .await;
    let client = trusting(&emu);
    let token = emu.issue_tokens().access_token;
    let url = referrals_url(&emu);
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    let error = client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect_err("a reset is not a response");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    assert_eq!(emu.stats().requests_with(PathKind::ReferralList, 0), 1);
}

#[tokio::test]
async fn the_quirky_next_link_stays_plain_http_as_documented() {
    let emu = start(EmulatorConfig {
        referrals: 150,
        quirky_next_link: true,
        ..tls()
    })
    .await;
    let page: Value = get(
        &trusting(&emu),
        &referrals_url(&emu),
        &emu.issue_tokens().access_token,
    )
    .await
    .json()
    .await
    .expect("JSON page");
    let next = page["@odata.nextLink"].as_str().expect("nextLink");
    assert!(
        next.starts_with(&format!(
            "http://{}/v1.0/referrals?$skiptoken=",
            emu.local_addr()
        )),
        "{next}"
    );
}
