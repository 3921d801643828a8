//! Fault injection, one kind at a time, observed with a plain client.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pc_emulator::{EmulatorConfig, FaultSpec, PathKind};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn with_faults(spec: &str, referrals: usize) -> EmulatorConfig {
    EmulatorConfig {
        referrals,
        faults: FaultSpec::parse(spec).expect("valid spec"),
        ..config()
    }
}

#[tokio::test]
async fn throttling_and_server_errors_carry_their_documented_shapes() {
    let emu = start(with_faults("429:every=3:retry_after=2", 10)).await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let url = referrals_url(&emu);
    let statuses = {
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(get(&client, &url, &token).await);
        }
        out
    };
    assert_eq!(
        statuses
            .iter()
            .map(|r| r.status().as_u16())
            .collect::<Vec<_>>(),
        [200, 200, 429]
    );
    let throttled = statuses.into_iter().nth(2).expect("third");
    assert_eq!(
        throttled
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let body: Value = throttled.json().await.expect("JSON");
    assert_eq!(body["statusCode"], 429, "the gateway's own body: {body}");
    assert_eq!(emu.stats().faults("429"), 1);

    emu.set_faults(FaultSpec::parse("503:p=1:retry_after=4").expect("valid"));
    let unavailable = get(&client, &url, &token).await;
    assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        unavailable
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("4")
    );
    assert_eq!(
        unavailable.json::<Value>().await.expect("JSON")["error"]["code"],
        "serviceNotAvailable"
    );

    emu.set_faults(FaultSpec::parse("500:every=1").expect("valid"));
    let failed = get(&client, &url, &token).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(failed.headers().get("retry-after").is_none());
    assert_eq!(
        failed.json::<Value>().await.expect("JSON")["error"]["code"],
        "generalException"
    );

    emu.set_faults(FaultSpec::parse("502:every=1").expect("valid"));
    let gateway = get(&client, &url, &token).await;
    assert_eq!(gateway.status(), StatusCode::BAD_GATEWAY);
    assert!(
        serde_json::from_str::<Value>(&gateway.text().await.expect("body")).is_err(),
        "gateway bodies are not JSON"
    );

    emu.set_faults(FaultSpec::none());
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn probability_faults_are_seeded() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let emu = start(EmulatorConfig {
            seed,
            ..with_faults("503:p=0.3", 5)
        })
        .await;
        let client = client();
        let token = emu.issue_tokens().access_token;
        let mut out = Vec::new();
        for _ in 0..40 {
            out.push(
                get(&client, &referrals_url(&emu), &token)
                    .await
                    .status()
                    .as_u16(),
            );
        }
        out
    }
    let a = pattern(1).await;
    assert_eq!(a, pattern(1).await);
    let failures = a.iter().filter(|s| **s == 503).count();
    assert!((3..=25).contains(&failures), "{a:?}");
}

#[tokio::test]
async fn reset_drops_the_connection_without_a_response() {
    let emu = start(with_faults("reset:every=2", 10)).await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let url = referrals_url(&emu);
    assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
    let outcome = client.get(&url).bearer_auth(&token).send().await;
    let error = outcome.expect_err("a reset is not a response");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert_eq!(
        get(&client, &url, &token).await.status(),
        StatusCode::OK,
        "the next connection works"
    );
    let stats = emu.stats();
    assert_eq!(
        (
            stats.faults("reset"),
            stats.requests_with(PathKind::ReferralList, 0)
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn slow_responses_arrive_late() {
    let emu = start(with_faults("slow:every=2:ms=400", 10)).await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let url = referrals_url(&emu);
    let mut elapsed = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(get(&client, &url, &token).await.status(), StatusCode::OK);
        elapsed.push(started.elapsed());
    }
    assert!(
        elapsed[1] >= Duration::from_millis(400) && elapsed[0] < elapsed[1],
        "{elapsed:?}"
    );
    assert_eq!(emu.stats().faults("slow"), 1);
}

#[tokio::test]
async fn malformed_json_is_served_once_on_the_given_page() {
    let emu = start(with_faults("malformed:page=2", 30)).await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let first: Value = get(&client, &format!("{}?$top=10", referrals_url(&emu)), &token)
        .await
        .json()
        .await
        .expect("JSON");
    let next = first["@odata.nextLink"].as_str().expect("nextLink");
    let broken = get(&client, next, &token).await;
    assert_eq!(broken.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&broken.text().await.expect("body")).is_err());
    let again = get(&client, next, &token).await.text().await.expect("body");
    assert!(serde_json::from_str::<Value>(&again).is_ok(), "only once");
    assert_eq!(emu.stats().faults("malformed"), 1);
}

#[tokio::test]
async fn access_tokens_expire_after_n_requests() {
    let emu = start(with_faults("token_expire:after=3", 10)).await;
    let client = client();
    let tokens = emu.issue_tokens();
    let url = referrals_url(&emu);
    for _ in 0..3 {
        assert_eq!(
            get(&client, &url, &tokens.access_token).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        get(&client, &url, &tokens.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, fresh) = refresh(
        &client,
        &emu,
        tokens.refresh_token.as_deref().expect("refresh_token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let fresh_token = fresh["access_token"].as_str().expect("access_token");
    assert_eq!(
        get(&client, &url, fresh_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(emu.stats().faults("token_expire"), 1);
}

#[tokio::test]
async fn refresh_tokens_are_revoked_after_n_requests() {
    let emu = start(with_faults("refresh_revoke:after=2", 10)).await;
    let client = client();
    let tokens = emu.issue_tokens();
    let rt = tokens.refresh_token.clone().expect("refresh_token");
    let url = referrals_url(&emu);
    assert_eq!(
        get(&client, &url, &tokens.access_token).await.status(),
        StatusCode::OK
    );
    assert_eq!(refresh(&client, &emu, &rt).await.0, StatusCode::OK);
    assert_eq!(
        get(&client, &url, &tokens.access_token).await.status(),
        StatusCode::OK
    );
    let (status, body) = refresh(&client, &emu, &rt).await;
    assert_eq!(
        (status, aad_error(&body)),
        (
            StatusCode::BAD_REQUEST,
            ("invalid_grant".into(), Some(50173))
        )
    );
    assert_eq!(emu.stats().faults("refresh_revoke"), 1);
}

/// Pages the whole listing naively; returns distinct ids seen.
async fn naive_ids(emu: &pc_emulator::Emulator, order: &str) -> (HashSet<String>, usize) {
    let client = client();
    let token = emu.issue_tokens().access_token;
    let url = format!("{}?$top=20&$orderby={order}", referrals_url(emu));
    let all = items(&all_pages(&client, &url, &token).await);
    let seen = all.len();
    (
        all.into_iter()
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect(),
        seen,
    )
}

#[tokio::test]
async fn updates_during_paging_make_a_naive_client_miss_rows() {
    let emu = start(with_faults("mutate_during_paging:page=2:count=5", 200)).await;
    let (ids, seen) = naive_ids(&emu, "updatedDateTime%20asc").await;
    assert_eq!(emu.stats().faults("mutate_during_paging"), 1);
    assert_eq!(seen, 200, "the pages still add up to the count");
    assert_eq!(ids.len(), 195, "five rows shifted into pages already read");
    let truth: HashSet<String> = emu
        .truth()
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(truth.difference(&ids).count(), 5);

    let stable = start(with_faults("mutate_during_paging:page=2:count=5", 200)).await;
    let (ids, _) = naive_ids(&stable, "createdDateTime%20asc").await;
    assert_eq!(
        ids.len(),
        200,
        "createdDateTime never changes, so nothing shifts"
    );
}

#[tokio::test]
async fn concurrency_is_measured() {
    let emu = start(with_faults("slow:every=1:ms=300", 10)).await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let url = referrals_url(&emu);
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let request = client.get(&url).bearer_auth(&token);
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    for handle in handles {
        let status = handle.await.expect("request task").expect("answered");
        assert_eq!(status, StatusCode::OK);
    }
    assert!(
        emu.stats().max_concurrent_api_requests >= 2,
        "{:?}",
        emu.stats()
    );
}
