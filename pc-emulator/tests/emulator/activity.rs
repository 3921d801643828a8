//! Activity: New referrals that expire days ahead, and rounds of changes that move referrals
//! along their lifecycle, the same ones for the same seed.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pc_emulator::{Activity, ChangeKind, EmulatorConfig};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn live(seed: u64, every: Option<Duration>) -> EmulatorConfig {
    EmulatorConfig {
        referrals: 400,
        seed,
        activity: Some(Activity { every, changes: 6 }),
        ..config()
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn by_id(truth: Vec<Value>) -> HashMap<String, Value> {
    truth
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap_or_default().to_owned(), r))
        .collect()
}

#[tokio::test]
async fn new_referrals_expire_days_ahead_some_within_48_hours() {
    let started = Utc::now();
    let emu = start(live(42, None)).await;
    let new: Vec<Value> = emu
        .truth()
        .into_iter()
        .filter(|r| r["status"] == "New")
        .collect();
    assert!(new.len() > 30, "{} New referrals", new.len());
    let hours: Vec<i64> = new
        .iter()
        .map(|r| {
            let expires = time(&r["expirationDateTime"]).expect("a New referral has an expiry");
            let created = time(&r["createdDateTime"]).expect("created");
            let updated = time(&r["updatedDateTime"]).expect("updated");
            assert_eq!(expires - created, chrono::Duration::days(14), "{}", r["id"]);
            assert!(updated >= created && updated <= Utc::now(), "{}", r["id"]);
            (expires - started).num_hours()
        })
        .collect();
    assert!(
        hours.iter().all(|&h| (0..14 * 24).contains(&h)),
        "{hours:?}"
    );
    let soon = hours.iter().filter(|&&h| h < 48).count();
    assert!(
        soon * 10 >= new.len() && soon * 3 <= new.len(),
        "{soon} of {} expire within 48 h",
        new.len()
    );

    // Without an activity, the dataset stays in the past, whatever the clock says.
    let still = start(EmulatorConfig {
        referrals: 400,
        ..config()
    })
    .await;
    let anchor = time(&Value::from("2025-11-01T00:00:00Z")).expect("a time");
    assert!(
        still
            .truth()
            .iter()
            .all(|r| time(&r["updatedDateTime"]).is_some_and(|t| t < anchor))
    );
}

#[tokio::test]
async fn rounds_move_referrals_along_their_lifecycle_the_same_way_for_a_seed() {
    let a = start(live(7, None)).await;
    let b = start(live(7, None)).await;
    let other = start(live(8, None)).await;
    let before = by_id(a.truth());
    let mut rounds_a = Vec::new();
    let mut rounds_b = Vec::new();
    let mut rounds_other = Vec::new();
    for _ in 0..10 {
        rounds_a.extend(a.activity_round().expect("activity is on"));
        rounds_b.extend(b.activity_round().expect("activity is on"));
        rounds_other.extend(other.activity_round().expect("activity is on"));
    }
    assert_eq!(
        rounds_a, rounds_b,
        "the same seed changes the same referrals"
    );
    assert_ne!(rounds_a, rounds_other, "another seed changes others");
    assert!(
        rounds_a.len() >= 50,
        "{} changes in 10 rounds",
        rounds_a.len()
    );

    let after = by_id(a.truth());
    let mut seen = std::collections::HashSet::new();
    let mut first_changes = std::collections::HashSet::new();
    for change in &rounds_a {
        seen.insert(change.kind);
        if !first_changes.insert(change.id.clone()) {
            // Its state before this change is not the one before the rounds.
            continue;
        }
        let now = &after[&change.id];
        let Some(old) = before.get(&change.id) else {
            assert_eq!(change.kind, ChangeKind::Added, "{change:?}");
            continue;
        };
        assert!(
            time(&now["updatedDateTime"]) > time(&old["updatedDateTime"]),
            "{change:?} moved updatedDateTime"
        );
        let was = (old["status"].as_str(), old["substatus"].as_str());
        match change.kind {
            ChangeKind::Accepted | ChangeKind::Declined | ChangeKind::Received => {
                assert_eq!(was.0, Some("New"), "{change:?}");
            }
            ChangeKind::Won | ChangeKind::Lost => assert_eq!(was.0, Some("Active"), "{change:?}"),
            _ => {}
        }
    }
    // The final state of a referral changed twice is its last change's.
    let last: HashMap<&str, ChangeKind> =
        rounds_a.iter().map(|c| (c.id.as_str(), c.kind)).collect();
    for (id, kind) in last {
        let status = (
            after[id]["status"].as_str().unwrap_or_default(),
            after[id]["substatus"].as_str().unwrap_or_default(),
        );
        let expected = match kind {
            ChangeKind::Accepted => Some(("Active", "Accepted")),
            ChangeKind::Received => Some(("New", "Received")),
            ChangeKind::Declined => Some(("Closed", "Declined")),
            ChangeKind::Expired => Some(("Closed", "Expired")),
            ChangeKind::Won => Some(("Closed", "Won")),
            ChangeKind::Lost => Some(("Closed", "Lost")),
            ChangeKind::ValueChanged | ChangeKind::Added => None,
        };
        if let Some(expected) = expected {
            assert_eq!(status, expected, "{id} after {kind}");
        }
    }
    for kind in [
        ChangeKind::Accepted,
        ChangeKind::Won,
        ChangeKind::ValueChanged,
        ChangeKind::Added,
    ] {
        assert!(seen.contains(&kind), "no {kind} in {seen:?}");
    }
    let revised = rounds_a
        .iter()
        .find(|c| c.kind == ChangeKind::ValueChanged && before.contains_key(&c.id))
        .expect("a revised deal value");
    assert_ne!(
        before[&revised.id]["details"]["dealValue"], after[&revised.id]["details"]["dealValue"],
        "{revised:?}"
    );
}

#[tokio::test]
async fn timed_rounds_run_by_themselves_and_the_control_endpoint_runs_one_now() {
    let emu = start(live(3, Some(Duration::from_millis(200)))).await;
    let first = emu.truth();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while emu.truth() == first {
        assert!(
            std::time::Instant::now() < deadline,
            "no timed round changed anything"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let client = client();
    let url = format!("{}/_emulator/activity", emu.base_url());
    let response = client.post(&url).send().await.expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    let changes = body["changes"].as_array().expect("changes");
    assert!(!changes.is_empty(), "{body}");
    assert!(
        changes
            .iter()
            .all(|c| c["id"].is_string() && c["change"].is_string())
    );

    let quiet = start(config()).await;
    let response = client
        .post(format!("{}/_emulator/activity", quiet.base_url()))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("JSON");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("--activity"),
        "{body}"
    );
}
