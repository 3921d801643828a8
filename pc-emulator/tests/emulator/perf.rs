//! Throughput checks, ignored by default because they mean something only in release builds:
//! `cargo test --release -p pc-emulator -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use pc_emulator::EmulatorConfig;

use crate::helpers::*;

/// Serving must never be a benchmark's bottleneck: 100,000 referrals in pages of 100 should take
/// a fraction of the time Postgres needs to store them.
#[tokio::test]
#[ignore = "release-only throughput check"]
async fn serves_100k_referrals_quickly() {
    let started = Instant::now();
    let emu = start(EmulatorConfig {
        referrals: 100_000,
        ..config()
    })
    .await;
    let generated = started.elapsed();
    let client = client();
    let token = emu.issue_tokens().access_token;
    let mut url = format!(
        "{}?$top=100&$orderby=updatedDateTime%20asc",
        referrals_url(&emu)
    );
    let started = Instant::now();
    let (mut pages, mut bytes) = (0, 0);
    for _ in 0..2_000 {
        let body = get(&client, &url, &token).await.text().await.expect("body");
        pages += 1;
        bytes += body.len();
        // Find the link without parsing the page: this measures the emulator, not serde.
        let Some(at) = body.rfind("\"@odata.nextLink\":\"") else {
            break;
        };
        let rest = &body[at + 19..];
        url = rest[..rest.find('"').expect("closing quote")].to_string();
    }
    let served = started.elapsed();
    eprintln!(
        "generated 100k in {generated:?}; served {pages} pages ({bytes} bytes) in {served:?}"
    );
    assert_eq!(pages, 1000);
    assert!(served < Duration::from_secs(3), "{served:?}");
}
