//! The referrals API: paging, filters, get by id, mutation, determinism.

use std::collections::HashSet;

use pc_emulator::{Emulator, EmulatorConfig, PathKind};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn sorted_by_id(mut items: Vec<Value>) -> Vec<Value> {
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    items
}

#[tokio::test]
async fn paging_through_10000_referrals_yields_exactly_the_dataset() {
    let emu = start(EmulatorConfig {
        referrals: 10_000,
        ..config()
    })
    .await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let first = format!(
        "{}?$top=100&$orderby=createdDateTime%20asc",
        referrals_url(&emu)
    );
    let response = get(&client, &first, &token).await;
    for header in ["date", "request-id"] {
        assert!(
            response.headers().get(header).is_some(),
            "{header} header missing"
        );
    }
    let pages = all_pages(&client, &first, &token).await;
    assert_eq!(pages.len(), 100);
    for page in &pages {
        assert_eq!(page["@odata.count"], 10_000);
        assert_eq!(
            page["@odata.context"],
            format!("{}/v1.0/$metadata#Referrals", emu.base_url())
        );
    }
    let next = pages[0]["@odata.nextLink"].as_str().expect("nextLink");
    assert!(
        next.starts_with(&format!(
            "{}/engagements/referrals?$top=100&$skiptoken=",
            emu.api_url()
        )),
        "{next}"
    );
    assert!(pages[99].get("@odata.nextLink").is_none());
    let items = items(&pages);
    let created: Vec<&str> = items
        .iter()
        .map(|r| r["createdDateTime"].as_str().unwrap_or_default())
        .collect();
    assert!(created.first() <= created.last());
    assert_eq!(
        sorted_by_id(items),
        emu.truth(),
        "the listing is exactly the truth"
    );
    assert_eq!(emu.stats().pages_served, 101);
}

#[tokio::test]
async fn the_same_seed_gives_byte_identical_pages() {
    async fn two_pages(emu: &Emulator) -> String {
        let client = client();
        let token = emu.issue_tokens().access_token;
        let url = format!(
            "{}?$top=50&$orderby=updatedDateTime%20asc",
            referrals_url(emu)
        );
        let first = get(&client, &url, &token).await.text().await.expect("body");
        let next: Value = serde_json::from_str(&first).expect("JSON");
        let second = get(
            &client,
            next["@odata.nextLink"].as_str().expect("nextLink"),
            &token,
        )
        .await
        .text()
        .await
        .expect("body");
        format!("{first}{second}").replace(&emu.base_url(), "BASE")
    }
    let a = start(EmulatorConfig {
        referrals: 300,
        seed: 9,
        ..config()
    })
    .await;
    let b = start(EmulatorConfig {
        referrals: 300,
        seed: 9,
        ..config()
    })
    .await;
    let c = start(EmulatorConfig {
        referrals: 300,
        seed: 10,
        ..config()
    })
    .await;
    let page_a = two_pages(&a).await;
    assert_eq!(page_a, two_pages(&b).await);
    assert_ne!(page_a, two_pages(&c).await);
    assert_eq!(a.tenant_id(), b.tenant_id());
    assert_eq!(a.client_id(), b.client_id());
}

#[tokio::test]
async fn quirky_next_link_has_the_documented_form_and_must_be_repaired() {
    let emu = start(EmulatorConfig {
        referrals: 250,
        quirky_next_link: true,
        ..config()
    })
    .await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let first: Value = get(
        &client,
        &format!("{}?$orderby=createdDateTime", referrals_url(&emu)),
        &token,
    )
    .await
    .json()
    .await
    .expect("JSON");
    let next = first["@odata.nextLink"].as_str().expect("nextLink");
    let prefix = format!("{}/v1.0/referrals?$skiptoken=", emu.base_url());
    assert!(
        next.starts_with(&prefix) && next.starts_with("http://"),
        "{next}"
    );
    assert_eq!(
        get(&client, next, &token).await.status(),
        StatusCode::NOT_FOUND,
        "the odd path is not served"
    );
    let query = next.split_once('?').expect("query").1;
    let repaired = format!("{}?{query}", referrals_url(&emu));
    let pages = all_pages_repairing(&client, &emu, &repaired, &token).await;
    let mut ids: Vec<Value> = first["value"].as_array().expect("value").clone();
    ids.extend(pages);
    assert_eq!(sorted_by_id(ids), emu.truth());
}

async fn all_pages_repairing(
    client: &reqwest::Client,
    emu: &Emulator,
    url: &str,
    token: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = url.to_string();
    for _ in 0..100 {
        let page: Value = get(client, &url, token).await.json().await.expect("JSON");
        out.extend(page["value"].as_array().expect("value").clone());
        match page["@odata.nextLink"].as_str() {
            Some(next) => {
                url = format!(
                    "{}?{}",
                    referrals_url(emu),
                    next.split_once('?').expect("query").1
                )
            }
            None => return out,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn filters_top_and_get_by_id() {
    let emu = start(EmulatorConfig {
        referrals: 1000,
        ..config()
    })
    .await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let truth = emu.truth();
    let expected: Vec<Value> = truth
        .iter()
        .filter(|r| r["status"] == "Active" && r["direction"] == "Incoming")
        .cloned()
        .collect();
    let url = format!(
        "{}?$filter=status%20eq%20%27Active%27%20and%20direction%20eq%20%27Incoming%27&$top=37",
        referrals_url(&emu)
    );
    let pages = all_pages(&client, &url, &token).await;
    assert_eq!(pages[0]["@odata.count"], expected.len());
    assert_eq!(sorted_by_id(items(&pages)), expected);

    let since = "2025-06-01T00:00:00Z";
    let url = format!(
        "{}?$filter=updatedDateTime%20ge%20{since}&$orderby=updatedDateTime%20asc",
        referrals_url(&emu)
    );
    let got = items(&all_pages(&client, &url, &token).await);
    let want = truth
        .iter()
        .filter(|r| r["updatedDateTime"].as_str().unwrap_or_default() >= since)
        .count();
    assert!(got.len() == want && want > 0, "{} vs {want}", got.len());

    for bad in [
        "$top=101",
        "$filter=status%20ne%20%27New%27",
        "$orderby=name",
        "$skiptoken=garbage",
        "$select=id",
    ] {
        let response = get(&client, &format!("{}?{bad}", referrals_url(&emu)), &token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], "invalidRequest", "{bad}");
    }

    let one = &truth[7];
    let id = one["id"].as_str().expect("id");
    let response = get(&client, &format!("{}/{id}", referrals_url(&emu)), &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("etag").and_then(|v| v.to_str().ok()),
        one["eTag"].as_str()
    );
    assert_eq!(&response.json::<Value>().await.expect("JSON"), one);
    let missing = get(
        &client,
        &format!(
            "{}/00000000-0000-4000-8000-000000000000",
            referrals_url(&emu)
        ),
        &token,
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json::<Value>().await.expect("JSON")["error"]["code"],
        "itemNotFound"
    );
    assert_eq!(emu.stats().requests_with(PathKind::ReferralGet, 404), 1);
}

#[tokio::test]
async fn mutations_show_up_in_the_api_and_the_truth() {
    let emu = start(EmulatorConfig {
        referrals: 200,
        ..config()
    })
    .await;
    let client = client();
    let token = emu.issue_tokens().access_token;
    let before = emu.truth();
    let find = |truth: &[Value], id: &str| truth.iter().find(|r| r["id"] == id).cloned();

    let updated = emu.update_referrals(5);
    assert_eq!(updated.len(), 5);
    let after = emu.truth();
    for id in &updated {
        let (old, new) = (
            find(&before, id).expect("old"),
            find(&after, id).expect("new"),
        );
        assert!(new["updatedDateTime"].as_str() > old["updatedDateTime"].as_str());
        assert_ne!(new["eTag"], old["eTag"]);
    }
    let url = format!(
        "{}?$orderby=updatedDateTime%20desc&$top=5",
        referrals_url(&emu)
    );
    let newest: Value = get(&client, &url, &token).await.json().await.expect("JSON");
    let newest: HashSet<&str> = newest["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(newest, updated.iter().map(String::as_str).collect());

    let added = emu.add_referrals(3);
    assert_eq!(emu.truth().len(), 203);
    assert!(
        find(&emu.truth(), &added[0])
            .is_some_and(|r| r["status"] == "New" || r["status"] == "Active")
    );
    for id in emu.close_referrals(4) {
        assert_eq!(find(&emu.truth(), &id).expect("closed")["status"], "Closed");
    }
    let hidden = emu.hide_referrals(2);
    assert_eq!(emu.truth().len(), 201);
    let gone = get(
        &client,
        &format!("{}/{}", referrals_url(&emu), hidden[0]),
        &token,
    )
    .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let count: Value = get(&client, &referrals_url(&emu), &token)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(count["@odata.count"], 201);
    assert_eq!(emu.unhide_all().len(), 2);
    assert_eq!(emu.truth().len(), 203);
}
