//! The filters added for the people who work the referrals (country, qualification,
//! currency, expiring within N days, value range), the pipeline aggregate and the CSV
//! export, which all select rows with the list's own filter.

use chrono::{Duration as Days, Utc};

use super::*;

/// One referral as these tests need it; `expires_in_days` goes into the payload.
struct Deal {
    id: &'static str,
    name: &'static str,
    status: &'static str,
    substatus: &'static str,
    country: &'static str,
    qualification: &'static str,
    currency: Option<&'static str>,
    value: Option<&'static str>,
    expiration: Option<String>,
}

const DEAL: Deal = Deal {
    id: "",
    name: "Deal",
    status: "Active",
    substatus: "Accepted",
    country: "FR",
    qualification: "SalesQualified",
    currency: Some("EUR"),
    value: Some("100"),
    expiration: None,
};

fn in_days(days: i64) -> Option<String> {
    Some((Utc::now() + Days::days(days)).to_rfc3339())
}

async fn put(pool: &PgPool, d: Deal) {
    let mut payload = json!({"id": d.id, "name": d.name, "status": d.status});
    if let Some(expiration) = &d.expiration {
        payload["expirationDateTime"] = json!(expiration);
    }
    sqlx::query(
        "INSERT INTO partner_center_referrals (id, name, status, substatus, type, qualification, direction, \
         customer_name, customer_country, customer_domain, deal_value, currency, created_at, updated_at, payload) \
         VALUES ($1, $2, $3, $4, 'Shared', $5, 'Incoming', 'Customer', $6, 'customer.example', $7::numeric, $8, \
         '2025-01-01T00:00:00Z', '2025-01-02T00:00:00Z', $9)",
    )
    .bind(d.id)
    .bind(d.name)
    .bind(d.status)
    .bind(d.substatus)
    .bind(d.qualification)
    .bind(d.country)
    .bind(d.value)
    .bind(d.currency)
    .bind(payload)
    .execute(pool)
    .await
    .expect("insert referral");
}

/// Ten referrals over three currencies (and none), two countries, every qualification,
/// expiries near, far, past, junk and on a referral that is no longer New.
async fn deals(pool: &PgPool) {
    for d in [
        Deal {
            id: "e1",
            status: "New",
            substatus: "Pending",
            value: Some("12345678901234.56"),
            expiration: in_days(3),
            ..DEAL
        },
        Deal {
            id: "e2",
            status: "New",
            substatus: "Pending",
            value: Some("0.44"),
            expiration: in_days(20),
            ..DEAL
        },
        Deal {
            id: "e3",
            status: "New",
            substatus: "Received",
            value: None,
            expiration: Some("not a date".into()),
            ..DEAL
        },
        Deal {
            id: "e4",
            value: Some("2500.50"),
            country: "DE",
            ..DEAL
        },
        Deal {
            id: "e5",
            status: "Closed",
            substatus: "Won",
            value: Some("-10"),
            expiration: in_days(2),
            qualification: "MarketingQualified",
            ..DEAL
        },
        Deal {
            id: "u1",
            status: "New",
            substatus: "Pending",
            currency: Some("USD"),
            value: Some("999"),
            expiration: in_days(-1),
            ..DEAL
        },
        Deal {
            id: "u2",
            currency: Some("USD"),
            value: Some("1000"),
            country: "DE",
            qualification: "Direct",
            ..DEAL
        },
        Deal {
            id: "u3",
            status: "Closed",
            substatus: "Lost",
            currency: Some("USD"),
            value: Some("5"),
            ..DEAL
        },
        Deal {
            id: "j1",
            status: "New",
            substatus: "Received",
            currency: Some("JPY"),
            value: Some("150000"),
            expiration: Some("2026-02-30T00:00:00Z".into()),
            country: "JP",
            qualification: "None",
            ..DEAL
        },
        Deal {
            id: "n1",
            currency: None,
            value: None,
            ..DEAL
        },
    ] {
        put(pool, d).await;
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn the_new_filters_select_what_they_say() {
    let app = spawn(Config::default()).await;
    deals(&app.pool).await;
    let ids = |query: &'static str| {
        let app = &app;
        async move {
            sorted(
                app.ids(&format!("/api/v1/partner-center/referrals?{query}"))
                    .await,
            )
        }
    };
    assert_eq!(
        ids("country=de").await,
        ["e4", "u2"],
        "country ignores case"
    );
    assert_eq!(ids("country=DE,JP").await, ["e4", "j1", "u2"]);
    assert_eq!(
        ids("qualification=Direct&qualification=None").await,
        ["j1", "u2"]
    );
    assert_eq!(ids("currency=usd").await, ["u1", "u2", "u3"]);
    assert_eq!(
        ids("expiring_within_days=7").await,
        ["e1"],
        "New referrals only, not yet expired; junk and impossible dates never match"
    );
    assert_eq!(ids("expiring_within_days=30").await, ["e1", "e2"]);
    assert_eq!(
        ids("min_value=999").await,
        ["e1", "e4", "j1", "u1", "u2"],
        "each amount is compared in its own currency"
    );
    assert_eq!(ids("min_value=999&currency=USD").await, ["u1", "u2"]);
    assert_eq!(
        ids("max_value=0.44").await,
        ["e2", "e5"],
        "inclusive, negatives too"
    );
    assert_eq!(ids("min_value=100&max_value=1000").await, ["u1", "u2"]);
    assert_eq!(
        ids("min_value=12345678901234.56").await,
        ["e1"],
        "exact decimal comparison"
    );
    assert_eq!(
        ids("min_value=12345678901234.57").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn the_pipeline_counts_and_sums_per_currency_status_and_substatus() {
    let app = spawn(Config::default()).await;
    deals(&app.pool).await;
    let body = app.ok("/api/v1/partner-center/referrals/pipeline").await;
    assert_eq!(body["total"], 10);
    let currencies: Vec<&Value> = body["currencies"].as_array().unwrap().iter().collect();
    let names: Vec<&Value> = currencies.iter().map(|c| &c["currency"]).collect();
    assert_eq!(
        names,
        [&json!("EUR"), &json!("JPY"), &json!("USD"), &Value::Null]
    );
    let eur = currencies[0];
    assert_eq!(
        (&eur["count"], &eur["valued"], &eur["value"]),
        (&json!(5), &json!(4), &json!("12345678903725.50")),
        "exact: 12345678901234.56 + 0.44 + 2500.50 - 10"
    );
    let statuses: Vec<&Value> = eur["statuses"].as_array().unwrap().iter().collect();
    assert_eq!(
        statuses
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["New", "Active", "Closed"],
        "lifecycle order"
    );
    assert_eq!(
        statuses[0],
        &json!({"status": "New", "count": 3, "valued": 2, "value": "12345678901235.00", "substatuses": [
            {"substatus": "Pending", "count": 2, "valued": 2, "value": "12345678901235.00"},
            {"substatus": "Received", "count": 1, "valued": 0, "value": "0"},
        ]})
    );
    assert_eq!(
        currencies[3],
        &json!({"currency": null, "count": 1, "valued": 0, "value": "0", "statuses": [
            {"status": "Active", "count": 1, "valued": 0, "value": "0", "substatuses": [
                {"substatus": "Accepted", "count": 1, "valued": 0, "value": "0"}]}]})
    );

    // The same filter selects the same rows as the list, whatever the filter.
    for query in [
        "",
        "country=DE",
        "currency=usd&status=Closed",
        "expiring_within_days=30",
        "min_value=1&max_value=5000",
        "qualification=SalesQualified&q=deal",
        "include_missing=true&updated_since=2025-01-01",
    ] {
        let list = app
            .ok(&format!("/api/v1/partner-center/referrals?{query}"))
            .await;
        let pipeline = app
            .ok(&format!(
                "/api/v1/partner-center/referrals/pipeline?{query}"
            ))
            .await;
        assert_eq!(pipeline["total"], list["total"], "?{query}");
    }
    let empty = app
        .ok("/api/v1/partner-center/referrals/pipeline?status=Nope")
        .await;
    assert_eq!(empty, json!({"total": 0, "currencies": []}));
}

/// The CSV body of a 200 answer, its BOM checked and removed.
async fn csv_body(app: &App, query: &str) -> String {
    let response = app
        .client
        .get(format!(
            "{}/api/v1/partner-center/referrals.csv?{query}",
            app.base
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "?{query}");
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"referrals-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let bytes = response.bytes().await.expect("body");
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    text.strip_prefix('\u{feff}')
        .expect("starts with a byte-order mark")
        .to_owned()
}

fn csv_records(body: &str) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader.headers().expect("a header row").clone();
    let rows = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .expect("RFC 4180 rows");
    (header, rows)
}

#[tokio::test]
async fn the_csv_has_every_matching_row_not_a_page() {
    let app = spawn(Config::default()).await;
    deals(&app.pool).await;
    // More rows than the list's largest page, so a page-sized export would show.
    sqlx::query(
        "INSERT INTO partner_center_referrals (id, name, status, substatus, customer_country, deal_value, currency, \
         updated_at, payload) SELECT 'bulk-' || lpad(i::text, 4, '0'), 'Bulk ' || i, 'Active', 'Accepted', \
         CASE WHEN i % 3 = 0 THEN 'DE' ELSE 'FR' END, i, 'EUR', '2025-02-01T00:00:00Z'::timestamptz + i * interval '1 minute', \
         '{}'::jsonb FROM generate_series(1, 1234) AS i",
    )
    .execute(&app.pool)
    .await
    .expect("bulk insert");
    put(
        &app.pool,
        Deal {
            id: "evil",
            name: "=HYPERLINK(\"http://evil.example\",\"Click\"), \"quoted\"\nnext line",
            country: "DE",
            value: Some("7"),
            ..DEAL
        },
    )
    .await;

    let (header, rows) = csv_records(&csv_body(&app, "").await);
    assert_eq!(header.len(), partner_center_sync::export::CSV_COLUMNS.len());
    assert_eq!(&header[0], "id");
    assert_eq!(rows.len(), 1245, "every row, not a page");

    // The CSV of a filtered view is exactly the API's rows for that filter, in its order.
    let query = "country=DE&sort=deal_value&order=asc";
    let (_, rows) = csv_records(&csv_body(&app, query).await);
    let mut api_ids = Vec::new();
    for offset in (0..).step_by(500) {
        let page = app
            .ids(&format!(
                "/api/v1/partner-center/referrals?{query}&limit=500&offset={offset}"
            ))
            .await;
        if page.is_empty() {
            break;
        }
        api_ids.extend(page);
    }
    let csv_ids: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(csv_ids.len(), 414, "411 bulk rows, e4, u2 and evil");
    assert_eq!(csv_ids, api_ids);

    let evil = rows.iter().find(|r| &r[0] == "evil").expect("the evil row");
    assert_eq!(
        &evil[1], "'=HYPERLINK(\"http://evil.example\",\"Click\"), \"quoted\"\nnext line",
        "the formula is neutralised and the quotes, comma and newline survive"
    );
    assert_eq!(&evil[10], "7", "the value is a bare number");
    assert_eq!(&evil[11], "EUR");
    assert_eq!(&evil[12], "2025-01-01T00:00:00Z", "ISO 8601 dates");

    let (_, rows) = csv_records(&csv_body(&app, "status=Nope").await);
    assert!(rows.is_empty(), "an empty export still has its header");
}

#[tokio::test]
async fn bad_filter_values_are_400_naming_them_on_every_endpoint() {
    let app = spawn(Config::default()).await;
    for path in [
        "/api/v1/partner-center/referrals",
        "/api/v1/partner-center/referrals/pipeline",
        "/api/v1/partner-center/referrals.csv",
    ] {
        for (query, name) in [
            ("expiring_within_days=0", "expiring_within_days"),
            ("expiring_within_days=1000", "expiring_within_days"),
            ("expiring_within_days=week", "expiring_within_days"),
            ("min_value=abc", "min_value"),
            ("max_value=1e6", "max_value"),
            ("max_value=NaN", "max_value"),
            ("min_value=5&max_value=4", "min_value"),
            ("updated_since=soon", "updated_since"),
            ("include_missing=1", "include_missing"),
            ("country=FR&country_code=FR", "country_code"),
        ] {
            assert_bad_param(&app, &format!("{path}?{query}"), name).await;
        }
    }
    for (query, name) in [
        ("sort=value", "sort"),
        ("order=down", "order"),
        ("limit=5", "limit"),
    ] {
        assert_bad_param(
            &app,
            &format!("/api/v1/partner-center/referrals.csv?{query}"),
            name,
        )
        .await;
    }
    assert_bad_param(
        &app,
        "/api/v1/partner-center/referrals/pipeline?sort=name",
        "sort",
    )
    .await;
}

#[tokio::test]
async fn the_pipeline_and_the_csv_need_the_bearer_token_like_the_list() {
    let config = Config {
        api_token: Some("s3cret-token".to_owned().into()),
        ..Config::default()
    };
    let app = spawn(config).await;
    deals(&app.pool).await;
    for path in [
        "/api/v1/partner-center/referrals/pipeline",
        "/api/v1/partner-center/referrals.csv",
    ] {
        let url = format!("{}{path}", app.base);
        let none = app.client.get(&url).send().await.unwrap();
        assert_eq!(none.status(), 401, "{path} without a token");
        let wrong = app
            .client
            .get(&url)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
        let right = app
            .client
            .get(&url)
            .bearer_auth("s3cret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200, "{path} with the token");
    }
}

#[tokio::test]
async fn the_cli_export_writes_what_the_api_serves_for_the_same_filter() {
    let app = spawn(Config::default()).await;
    deals(&app.pool).await;
    put(
        &app.pool,
        Deal {
            id: "evil",
            name: "@SUM(1,2) \"quoted\"",
            country: "DE",
            ..DEAL
        },
    )
    .await;
    let export = |args: &[&str]| {
        support::command()
            .arg("export")
            .args(args)
            .env("DATABASE_URL", &app._db.url)
            .output()
            .expect("run export")
    };

    let out = export(&[
        "--format",
        "csv",
        "--country",
        "de",
        "--min-value",
        "-100",
        "--sort",
        "deal_value",
        "--order",
        "asc",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = csv_body(&app, "country=de&min_value=-100&sort=deal_value&order=asc").await;
    let written = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(
        written.strip_prefix('\u{feff}'),
        Some(served.as_str()),
        "the same bytes as the download"
    );
    let (_, rows) = csv_records(&served);
    assert_eq!(
        rows.iter().map(|r| &r[0]).collect::<Vec<_>>(),
        ["evil", "e4", "u2"]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Exported 3 referral(s)."));

    let out = export(&[
        "--format",
        "jsonl",
        "--currency",
        "USD",
        "--status",
        "Active,Closed",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let api = app
        .ok("/api/v1/partner-center/referrals?currency=USD&status=Active,Closed")
        .await;
    assert_eq!(lines.len(), 2);
    assert_eq!(
        &lines,
        api["items"].as_array().expect("items"),
        "the API's rows, line by line"
    );

    for (args, flag) in [
        (&["--min-value", "abc"][..], "--min-value"),
        (
            &["--expiring-within-days", "0"][..],
            "--expiring-within-days",
        ),
        (&["--sort", "value"][..], "--sort"),
    ] {
        let out = export(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("Invalid {flag}:")),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing on stdout for a usage error");
    }
}

#[tokio::test]
async fn abandoned_downloads_give_their_database_connections_back() {
    let app = spawn(Config::default()).await;
    // Far more than the channel and the loopback socket buffers hold, so each export is
    // still streaming when its client goes.
    sqlx::query(
        "INSERT INTO partner_center_referrals (id, name, deal_value, currency, payload) \
         SELECT 'r' || i, repeat('n', 200) || i, i, 'EUR', '{}'::jsonb FROM generate_series(1, 60000) AS i",
    )
    .execute(&app.pool)
    .await
    .expect("bulk insert");
    // More abandoned downloads than the daemon's pool has connections (8).
    for _ in 0..12 {
        let response = app
            .client
            .get(format!("{}/api/v1/partner-center/referrals.csv", app.base))
            .send()
            .await
            .expect("request");
        let mut body = response.bytes_stream();
        let first = futures::StreamExt::next(&mut body).await;
        assert!(matches!(first, Some(Ok(_))), "the download starts");
    }
    let clock = std::time::Instant::now();
    let body = app.ok("/api/v1/partner-center/referrals?limit=1").await;
    assert_eq!(body["total"], 60000);
    assert!(
        clock.elapsed() < std::time::Duration::from_secs(5),
        "the pool was free again: {:?}",
        clock.elapsed()
    );
}
