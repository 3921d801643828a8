//! The read-only data API as a client sees it: the real router served on loopback,
//! backed by a real PostgreSQL database whose rows the tests insert directly.
//! `http_api/export.rs` covers the newer filters, the pipeline and the CSV export;
//! `http_api/security.rs` hostile hosts, origins and input, and the common headers.

// Beside this file rather than in tests/, where Cargo would build it as its own binary.
#[path = "http_api/export.rs"]
mod export;
#[path = "http_api/security.rs"]
mod security;
use crate::support;

use partner_center_sync::config::Config;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::TestDb;

struct App {
    base: String,
    client: reqwest::Client,
    _daemon: support::TestDaemon,
    _db: TestDb,
    pool: PgPool,
}

async fn spawn(config: Config) -> App {
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let daemon = support::spawn_daemon(config, &db).await;
    App {
        base: daemon.base.clone(),
        client: reqwest::Client::new(),
        _daemon: daemon,
        _db: db,
        pool,
    }
}

impl App {
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn ids(&self, path: &str) -> Vec<String> {
        let body = self.ok(path).await;
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect()
    }
}

#[derive(Clone)]
struct Row {
    id: &'static str,
    name: &'static str,
    status: &'static str,
    substatus: &'static str,
    kind: &'static str,
    direction: &'static str,
    customer: &'static str,
    domain: Option<&'static str>,
    deal_value: Option<&'static str>,
    updated_at: &'static str,
    missing: bool,
}

const BASE: Row = Row {
    id: "",
    name: "",
    status: "New",
    substatus: "Pending",
    kind: "Shared",
    direction: "Incoming",
    customer: "Northwind",
    domain: Some("northwind.example"),
    deal_value: Some("1000"),
    updated_at: "2025-01-10T08:00:00Z",
    missing: false,
};

async fn insert(pool: &PgPool, r: &Row) {
    let payload = json!({
        "id": r.id,
        "name": r.name,
        "status": r.status,
        "team": [{"firstName": "Ana", "lastName": "Lopes", "email": "ana@partner.example", "phoneNumber": "+351 1"}],
        "customerProfile": {"name": r.customer, "team": {"firstName": "Bo", "lastName": "Chen", "title": "CTO"}},
    });
    sqlx::query(
        "INSERT INTO partner_center_referrals (id, engagement_id, name, status, substatus, type, qualification, direction, \
         customer_name, customer_country, customer_domain, deal_value, currency, created_at, updated_at, etag, payload, missing_since) \
         VALUES ($1, 'eng-1', $2, $3, $4, $5, 'SalesQualified', $6, $7, 'FR', $8, $9::numeric, 'EUR', '2024-12-01T00:00:00Z', \
         $10::timestamptz, '\"etag-1\"', $11, CASE WHEN $12 THEN now() END)",
    )
    .bind(r.id)
    .bind(r.name)
    .bind(r.status)
    .bind(r.substatus)
    .bind(r.kind)
    .bind(r.direction)
    .bind(r.customer)
    .bind(r.domain)
    .bind(r.deal_value)
    .bind(r.updated_at)
    .bind(payload)
    .bind(r.missing)
    .execute(pool)
    .await
    .expect("insert referral");
}

/// Eight referrals: two share an `updated_at` (keyset tie-break), one is missing, one
/// has a name with a LIKE wildcard, one has a deal value too large for a float.
async fn seed(pool: &PgPool) {
    let rows = [
        Row {
            id: "r1",
            name: "Contoso – analytics",
            customer: "Contoso",
            domain: Some("contoso.example"),
            updated_at: "2025-01-01T00:00:00Z",
            deal_value: Some("12345678901234.56"),
            ..BASE
        },
        Row {
            id: "r2",
            name: "50% off licences",
            status: "Active",
            substatus: "Accepted",
            updated_at: "2025-01-02T00:00:00Z",
            ..BASE
        },
        Row {
            id: "r3",
            name: "500 offices rollout",
            status: "Active",
            substatus: "Accepted",
            kind: "Independent",
            updated_at: "2025-01-03T00:00:00Z",
            deal_value: None,
            ..BASE
        },
        Row {
            id: "r4",
            name: "Zoë's \"quoted\" 🚀 deal",
            status: "Closed",
            substatus: "Won",
            direction: "Outgoing",
            updated_at: "2025-01-04T00:00:00Z",
            ..BASE
        },
        Row {
            id: "r5",
            name: "Fabrikam ERP",
            customer: "Fabrikam Inc",
            domain: Some("fabrikam.example"),
            updated_at: "2025-01-04T00:00:00Z",
            deal_value: Some("5"),
            ..BASE
        },
        Row {
            id: "r6",
            name: "Litware pilot",
            status: "Closed",
            substatus: "Lost",
            updated_at: "2025-01-05T00:00:00Z",
            deal_value: Some("99.5"),
            ..BASE
        },
        Row {
            id: "r7",
            name: "Gone referral",
            missing: true,
            updated_at: "2025-01-06T00:00:00Z",
            ..BASE
        },
        Row {
            id: "r8",
            name: "Adatum upgrade",
            customer: "Adatum",
            domain: None,
            updated_at: "2025-01-07T00:00:00Z",
            ..BASE
        },
    ];
    for r in &rows {
        insert(pool, r).await;
    }
}

#[tokio::test]
async fn referrals_list_filters_sorts_and_counts() {
    let app = spawn(Config::default()).await;
    seed(&app.pool).await;

    let all = app.ok("/api/v1/partner-center/referrals").await;
    assert_eq!(all["total"], 7, "missing referrals are hidden by default");
    assert_eq!(
        (
            all["limit"].clone(),
            all["offset"].clone(),
            all["next_cursor"].clone()
        ),
        (json!(50), json!(0), Value::Null)
    );
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["r8", "r6", "r4", "r5", "r3", "r2", "r1"],
        "newest first, id breaks the tie"
    );

    let r1 = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "r1")
        .unwrap();
    assert_eq!(
        r1["deal_value"], "12345678901234.56",
        "deal_value keeps its exact digits"
    );
    assert_eq!(r1["type"], "Shared");
    assert_eq!(r1["customer_domain"], "contoso.example");
    assert_eq!(r1["updated_at"], "2025-01-01T00:00:00Z");
    for key in [
        "engagement_id",
        "qualification",
        "customer_country",
        "currency",
        "created_at",
        "first_seen_at",
        "last_seen_at",
        "missing_since",
    ] {
        assert!(r1.get(key).is_some(), "list item has {key}");
    }
    assert!(r1.get("payload").is_none(), "the list stays light");

    let path = "/api/v1/partner-center/referrals";
    assert_eq!(
        app.ids(&format!("{path}?status=Active")).await,
        ["r3", "r2"]
    );
    assert_eq!(
        app.ids(&format!("{path}?status=Active,Closed&substatus=Won"))
            .await,
        ["r4"]
    );
    assert_eq!(
        app.ids(&format!(
            "{path}?status=Closed&status=Active&type=Independent"
        ))
        .await,
        ["r3"]
    );
    assert_eq!(app.ids(&format!("{path}?direction=Outgoing")).await, ["r4"]);
    assert_eq!(
        app.ids(&format!("{path}?domain=FABRIKAM.example")).await,
        ["r5"]
    );
    assert_eq!(
        app.ids(&format!("{path}?q=50%25")).await,
        ["r2"],
        "% is literal, not a wildcard"
    );
    assert_eq!(
        app.ids(&format!("{path}?q=ADATUM")).await,
        ["r8"],
        "case-insensitive, on the customer name too"
    );
    assert_eq!(
        app.ids(&format!("{path}?q=%F0%9F%9A%80")).await,
        ["r4"],
        "emoji search"
    );
    assert_eq!(
        app.ids(&format!("{path}?updated_since=2025-01-05T00:00:00Z"))
            .await,
        ["r8", "r6"]
    );
    assert_eq!(
        app.ids(&format!("{path}?updated_since=2025-01-05")).await,
        ["r8", "r6"]
    );
    assert_eq!(
        app.ids(&format!(
            "{path}?include_missing=true&updated_since=2025-01-06T00:00:00%2B00:00"
        ))
        .await,
        ["r8", "r7"]
    );
    assert_eq!(
        app.ids(&format!("{path}?status=&q=&domain=")).await.len(),
        7,
        "empty values do not filter"
    );
    assert!(app.ids(&format!("{path}?status=Nope")).await.is_empty());

    assert_eq!(
        app.ids(&format!("{path}?sort=deal_value&order=asc")).await,
        ["r5", "r6", "r2", "r4", "r8", "r1", "r3"],
        "nulls last"
    );
    assert_eq!(
        app.ids(&format!("{path}?sort=deal_value&order=desc")).await,
        ["r1", "r2", "r4", "r8", "r6", "r5", "r3"]
    );
    assert_eq!(
        app.ids(&format!("{path}?sort=name&order=asc&limit=2&offset=3"))
            .await,
        ["r1", "r5"]
    );
    assert_eq!(
        app.ids(&format!("{path}?sort=customer_name&order=asc&limit=1"))
            .await,
        ["r8"]
    );
    assert_eq!(
        app.ids(&format!("{path}?sort=updated_at&order=asc")).await,
        ["r1", "r2", "r3", "r5", "r4", "r6", "r8"]
    );

    let page = app.ok(&format!("{path}?sort=name&limit=2")).await;
    assert_eq!(page["total"], 7);
    assert_eq!(
        page["next_cursor"],
        Value::Null,
        "offset paging for other sorts"
    );
}

#[tokio::test]
async fn keyset_paging_walks_every_row_once_in_both_orders() {
    let app = spawn(Config::default()).await;
    seed(&app.pool).await;
    let path = "/api/v1/partner-center/referrals";
    for (order, expected) in [
        ("desc", ["r8", "r7", "r6", "r4", "r5", "r3", "r2", "r1"]),
        ("asc", ["r1", "r2", "r3", "r5", "r4", "r6", "r7", "r8"]),
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let mut url = format!("{path}?include_missing=true&limit=3&order={order}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let body = app.ok(&url).await;
            assert_eq!(body["total"], 8);
            seen.extend(
                body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned()),
            );
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "order={order}");
    }

    // A row updated between pages moves to the front and is not seen twice.
    let first = app.ok(&format!("{path}?limit=3")).await;
    sqlx::query(
        "UPDATE partner_center_referrals SET updated_at = '2026-01-01T00:00:00Z' WHERE id = 'r1'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(
        app.ids(&format!("{path}?limit=10&cursor={cursor}")).await,
        ["r5", "r3", "r2"]
    );
}

async fn assert_bad_param(app: &App, path: &str, name: &str) {
    let (status, body) = app.get(path).await;
    assert_eq!(status, 400, "GET {path}: {body}");
    assert_eq!(body["success"], false);
    let error = body["error"].as_str().expect("error message");
    assert!(
        error.contains(&format!("`{name}`")),
        "GET {path}: the error names `{name}`: {error}"
    );
}

#[tokio::test]
async fn bad_parameters_are_refused_with_their_name() {
    let app = spawn(Config::default()).await;
    let r = "/api/v1/partner-center/referrals";
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("sort=popularity", "sort"),
        ("order=up", "order"),
        ("updated_since=yesterday", "updated_since"),
        ("include_missing=maybe", "include_missing"),
        ("stauts=New", "stauts"),
        ("cursor=garbage", "cursor"),
        ("sort=name&cursor=djF8ZGVzY3x8cjE", "cursor"),
        ("limit=1&limit=2", "limit"),
    ] {
        assert_bad_param(&app, &format!("{r}?{query}"), name).await;
    }
    let first = app.ok(&format!("{r}?limit=1")).await;
    assert_eq!(first["items"], json!([]));

    assert_bad_param(
        &app,
        "/api/v1/partner-center/companies?with_referrals=yes",
        "with_referrals",
    )
    .await;
    assert_bad_param(&app, "/api/v1/partner-center/companies?limit=1000", "limit").await;
    assert_bad_param(&app, "/api/v1/partner-center/sync-runs?limit=201", "limit").await;
    assert_bad_param(
        &app,
        "/api/v1/partner-center/sync-runs?status=done",
        "status",
    )
    .await;
}

#[tokio::test]
async fn cursor_from_one_order_is_refused_for_the_other() {
    let app = spawn(Config::default()).await;
    seed(&app.pool).await;
    let body = app.ok("/api/v1/partner-center/referrals?limit=2").await;
    let cursor = body["next_cursor"].as_str().expect("a next page exists");
    assert_bad_param(
        &app,
        &format!("/api/v1/partner-center/referrals?limit=2&order=asc&cursor={cursor}"),
        "cursor",
    )
    .await;
    assert_bad_param(
        &app,
        &format!("/api/v1/partner-center/referrals?limit=2&offset=2&cursor={cursor}"),
        "cursor",
    )
    .await;
}

#[tokio::test]
async fn referral_detail_has_payload_and_teams_and_unknown_is_404() {
    let app = spawn(Config::default()).await;
    seed(&app.pool).await;
    let r4 = app.ok("/api/v1/partner-center/referrals/r4").await;
    assert_eq!(r4["name"], "Zoë's \"quoted\" 🚀 deal");
    assert_eq!(r4["etag"], "\"etag-1\"");
    assert_eq!(r4["payload"]["customerProfile"]["name"], "Northwind");
    assert_eq!(
        r4["team"],
        json!([{"name": "Ana Lopes", "email": "ana@partner.example", "phone": "+351 1", "title": null}])
    );
    assert_eq!(
        r4["customer_team"],
        json!([{"name": "Bo Chen", "email": null, "phone": null, "title": "CTO"}])
    );

    let (status, body) = app.get("/api/v1/partner-center/referrals/no-such-id").await;
    assert_eq!(status, 404);
    assert_eq!(body["success"], false);
    assert!(body["error"].as_str().unwrap().contains("no-such-id"));
}

#[tokio::test]
async fn companies_filter_by_referrals_and_text() {
    let app = spawn(Config::default()).await;
    sqlx::query(
        "INSERT INTO partner_center_companies (domain, name, referral_count, latest_status, latest_referral_at) VALUES \
         ('contoso.example', 'Contoso', 3, 'Active', '2025-01-03T00:00:00Z'), \
         ('fabrikam.example', 'Fabrikam', 5, 'New', '2025-01-02T00:00:00Z'), \
         ('old_co.example', 'Old Co', 0, NULL, NULL)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let all = app.ok("/api/v1/partner-center/companies").await;
    assert_eq!(all["total"], 3);
    let domains: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        domains,
        ["fabrikam.example", "contoso.example", "old_co.example"],
        "most referrals first"
    );
    assert_eq!(
        all["items"][0],
        json!({"domain": "fabrikam.example", "domain_display": "fabrikam.example", "name": "Fabrikam", "referral_count": 5, "latest_status": "New", "latest_referral_at": "2025-01-02T00:00:00Z"})
    );
    let with = app
        .ok("/api/v1/partner-center/companies?with_referrals=true")
        .await;
    assert_eq!(with["total"], 2);
    let text = app.ok("/api/v1/partner-center/companies?q=_co").await;
    assert_eq!(text["total"], 1, "underscore is literal");
    assert_eq!(text["items"][0]["domain"], "old_co.example");
    let paged = app
        .ok("/api/v1/partner-center/companies?limit=1&offset=1")
        .await;
    assert_eq!(
        (paged["total"].clone(), paged["items"][0]["domain"].clone()),
        (json!(3), json!("contoso.example"))
    );
}

#[tokio::test]
async fn deal_value_sorts_by_currency_then_amount() {
    let app = spawn(Config::default()).await;
    for (id, value) in [
        ("eur-100", Some("100")),
        ("usd-50", Some("50")),
        ("eur-300", Some("300")),
        ("usd-500", Some("500")),
        ("eur-none", None),
        ("no-currency", Some("1")),
    ] {
        insert(
            &app.pool,
            &Row {
                id,
                name: id,
                deal_value: value,
                ..BASE
            },
        )
        .await;
    }
    sqlx::query(
        "UPDATE partner_center_referrals SET currency = CASE WHEN id LIKE 'usd%' THEN 'USD' \
         WHEN id = 'no-currency' THEN NULL ELSE 'EUR' END",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let path = "/api/v1/partner-center/referrals?sort=deal_value";
    assert_eq!(
        app.ids(&format!("{path}&order=asc")).await,
        [
            "eur-100",
            "eur-300",
            "eur-none",
            "usd-50",
            "usd-500",
            "no-currency"
        ]
    );
    assert_eq!(
        app.ids(&format!("{path}&order=desc")).await,
        [
            "eur-300",
            "eur-100",
            "eur-none",
            "usd-500",
            "usd-50",
            "no-currency"
        ],
        "currencies stay grouped whichever way the amounts run"
    );
}

#[tokio::test]
async fn list_rows_carry_the_payload_dates_team_and_link() {
    let app = spawn(Config::default()).await;
    insert(
        &app.pool,
        &Row {
            id: "r1",
            name: "With dates",
            ..BASE
        },
    )
    .await;
    sqlx::query(
        "UPDATE partner_center_referrals SET payload = payload || jsonb_build_object( \
         'expirationDateTime', '2025-01-24T08:00:00.1234567Z', 'closedDateTime', 'soon', \
         'details', jsonb_build_object('closingDateTime', '2025-06-30T00:00:00Z'), \
         'links', jsonb_build_object('self', jsonb_build_object('uri', 'https://api.partner.microsoft.com/v1.0/engagements/referrals/r1')))",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let list = app.ok("/api/v1/partner-center/referrals").await;
    let r = &list["items"][0];
    assert_eq!(r["expires_at"], "2025-01-24T08:00:00.123456Z");
    assert_eq!(
        r["closed_at"],
        Value::Null,
        "an unreadable date is left out"
    );
    assert_eq!(r["expected_close_at"], "2025-06-30T00:00:00Z");
    assert_eq!(r["team_names"], json!(["Ana Lopes"]));
    assert_eq!(
        r["partner_center_url"],
        "https://api.partner.microsoft.com/v1.0/engagements/referrals/r1"
    );
    assert!(r.get("payload").is_none(), "the list stays light");
    let detail = app.ok("/api/v1/partner-center/referrals/r1").await;
    assert_eq!(detail["expires_at"], r["expires_at"]);
    assert_eq!(detail["team_names"], r["team_names"]);
}

#[tokio::test]
async fn international_domains_come_with_their_display_form() {
    let app = spawn(Config::default()).await;
    insert(
        &app.pool,
        &Row {
            id: "idn",
            name: "Bücher",
            domain: Some("xn--bcher-kva.example"),
            ..BASE
        },
    )
    .await;
    insert(
        &app.pool,
        &Row {
            id: "none",
            name: "No domain",
            domain: None,
            ..BASE
        },
    )
    .await;
    sqlx::query(
        "INSERT INTO partner_center_companies (domain, name, referral_count) VALUES ('xn--bcher-kva.example', 'Bücher', 1)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let list = app
        .ok("/api/v1/partner-center/referrals?sort=name&order=asc")
        .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items[0]["customer_domain"], "xn--bcher-kva.example");
    assert_eq!(items[0]["customer_domain_display"], "bücher.example");
    assert_eq!(items[1]["customer_domain_display"], Value::Null);
    let detail = app.ok("/api/v1/partner-center/referrals/idn").await;
    assert_eq!(detail["customer_domain_display"], "bücher.example");
    let companies = app.ok("/api/v1/partner-center/companies").await;
    assert_eq!(companies["items"][0]["domain"], "xn--bcher-kva.example");
    assert_eq!(companies["items"][0]["domain_display"], "bücher.example");
}

#[tokio::test]
async fn sync_runs_list_and_detail_with_errors() {
    let app = spawn(Config::default()).await;
    sqlx::query(
        "INSERT INTO partner_center_sync_runs (id, trigger, mode, status, queued_at, started_at, finished_at, pages, fetched, inserted, error, host, pid) VALUES \
         (1, 'schedule', 'full', 'succeeded', '2025-01-01T00:00:00Z', '2025-01-01T00:00:01Z', '2025-01-01T00:00:31.5Z', 8, 739, 739, NULL, 'sync-a', 4242), \
         (2, 'manual', 'incremental', 'failed', '2025-01-02T00:00:00Z', '2025-01-02T00:00:01Z', '2025-01-02T00:00:02Z', 0, 0, 0, 'Partner Center answered 403: permission denied', NULL, NULL), \
         (3, 'manual', 'auto', 'queued', '2025-01-03T00:00:00Z', NULL, NULL, 0, 0, 0, NULL, NULL, NULL)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO partner_center_sync_errors (run_id, referral_id, reason) VALUES (1, 'r9', 'dealValue is not a number')")
        .execute(&app.pool)
        .await
        .unwrap();

    let runs = app.ok("/api/v1/partner-center/sync-runs").await;
    let ids: Vec<i64> = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2, 1], "newest first");
    let first = &runs["items"][2];
    assert_eq!(first["duration_seconds"], 30.5);
    assert_eq!(
        (
            first["fetched"].clone(),
            first["inserted"].clone(),
            first["dry_run"].clone()
        ),
        (json!(739), json!(739), json!(false))
    );
    assert_eq!(
        (first["host"].clone(), first["pid"].clone()),
        (json!("sync-a"), json!(4242)),
        "which process ran it"
    );
    assert_eq!(
        runs["items"][0]["duration_seconds"],
        Value::Null,
        "a queued run has no duration"
    );

    let failed = app
        .ok("/api/v1/partner-center/sync-runs?status=failed")
        .await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        failed["items"][0]["error"],
        "Partner Center answered 403: permission denied"
    );
    let two = app
        .ok("/api/v1/partner-center/sync-runs?status=failed,queued")
        .await;
    let ids: Vec<i64> = two["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [3, 2], "any of the listed statuses");
    assert_eq!(
        app.ok("/api/v1/partner-center/sync-runs?limit=1").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let page = app
        .ok("/api/v1/partner-center/sync-runs?limit=2&offset=1")
        .await;
    let ids: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 1], "offset pages through the history");
    assert_eq!(page["total"], 3, "total counts every run, not the page");
    assert_eq!(failed["total"], 1, "total follows the status filter");
    assert_bad_param(&app, "/api/v1/partner-center/sync-runs?offset=-1", "offset").await;

    let one = app.ok("/api/v1/partner-center/sync-runs/1").await;
    assert_eq!(one["status"], "succeeded");
    assert_eq!(one["sync_errors"][0]["referral_id"], "r9");
    assert_eq!(one["sync_errors"][0]["reason"], "dealValue is not a number");
    for path in [
        "/api/v1/partner-center/sync-runs/99",
        "/api/v1/partner-center/sync-runs/abc",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["success"], false);
    }
}

#[tokio::test]
async fn bearer_token_guards_the_data_but_not_the_page() {
    let config = Config {
        api_token: Some("s3cret-token".to_owned().into()),
        ..Config::default()
    };
    let app = spawn(config).await;
    for path in [
        "/api/v1/partner-center/referrals",
        "/api/v1/partner-center/companies",
        "/api/v1/partner-center/sync-runs",
        "/api/v1/partner-center/referrals/r1",
    ] {
        let url = format!("{}{path}", app.base);
        let none = app.client.get(&url).send().await.unwrap();
        assert_eq!(none.status(), 401, "{path} without a token");
        let wrong = app
            .client
            .get(&url)
            .bearer_auth("s3cret-tokeN")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
        let body: Value = wrong.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert!(
            !body.to_string().contains("s3cret"),
            "the token is never echoed"
        );
    }
    let right = app
        .client
        .get(format!("{}/api/v1/partner-center/referrals", app.base))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let page = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.status(),
        200,
        "the page itself holds no data and stays open"
    );
    for open in ["/healthz", "/readyz", "/metrics"] {
        let r = app
            .client
            .get(format!("{}{open}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{open} stays open");
    }
    let unknown = app
        .client
        .get(format!("{}/no/such/page", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        404,
        "an unknown path is not found, not unauthorized"
    );
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let app = spawn(Config::default()).await;
    let page = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/assets/app.js") && html.contains("data-testid=\"sync-now\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN or other external resource"
    );
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let asset = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        let text = asset.text().await.unwrap();
        assert!(
            !text.contains("innerHTML"),
            "{path} never turns data into markup"
        );
    }
    // app.js is the entry module: every module it reaches is served the same way.
    let mut queue = vec!["/assets/app.js".to_owned()];
    let mut seen = Vec::new();
    while let Some(path) = queue.pop() {
        if seen.contains(&path) {
            continue;
        }
        let asset = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript"),
            "{path}"
        );
        assert_eq!(asset.headers()["content-security-policy"], csp.as_str());
        let text = asset.text().await.unwrap();
        assert!(
            !text.contains("innerHTML") && !text.contains("http://") && !text.contains("https://"),
            "{path} never turns data into markup and loads nothing from elsewhere"
        );
        let dir = &path[..=path.rfind('/').unwrap()];
        for spec in text
            .lines()
            .filter(|l| l.starts_with("import "))
            .filter_map(|l| l.split(" from './").nth(1))
            .filter_map(|s| s.strip_suffix("';"))
        {
            queue.push(format!("{dir}{spec}"));
        }
        seen.push(path);
    }
    assert!(seen.len() > 5, "app.js imports its modules: {seen:?}");
}
