//! Money per currency and getting the list out: the totals above the table, the Pipeline
//! view, the newer filters' controls and the CSV download, each checked against
//! PostgreSQL or the API for the same filter.

use std::collections::BTreeMap;

use chrono::{Duration as Days, Utc};

use super::*;

/// `(currency, status, substatus)` → `(count, exact value)`, as the page or SQL gives it.
type Groups = BTreeMap<(String, String, String), (i64, String)>;

/// A mixed book: three currencies and one without, four statuses, two countries, values
/// with cents, some without a value, and a New referral expiring in three days.
async fn book(pool: &PgPool) {
    let cases: [(&str, &str, &str, &str, Option<&str>); 14] = [
        ("new-eur-1", "New", "Pending", "EUR", Some("1200.50")),
        ("new-eur-2", "New", "Received", "EUR", Some("800")),
        ("act-eur-1", "Active", "Accepted", "EUR", Some("15000.25")),
        ("act-eur-2", "Active", "Accepted", "EUR", None),
        ("won-eur-1", "Closed", "Won", "EUR", Some("42000")),
        ("lost-eur-1", "Closed", "Lost", "EUR", Some("9999.99")),
        ("new-usd-1", "New", "Pending", "USD", Some("5000")),
        ("act-usd-1", "Active", "Accepted", "USD", Some("73000.10")),
        ("won-usd-1", "Closed", "Won", "USD", Some("120000")),
        ("exp-usd-1", "Closed", "Expired", "USD", Some("300")),
        ("act-gbp-1", "Active", "Accepted", "GBP", Some("2500")),
        ("won-gbp-1", "Closed", "Won", "GBP", Some("61000.75")),
        ("dec-gbp-1", "Closed", "Declined", "GBP", Some("450")),
        ("act-none-1", "Active", "Accepted", "", None),
    ];
    for (id, status, substatus, currency, value) in cases {
        let extra = if id == "new-eur-1" {
            json!({"expirationDateTime": (Utc::now() + Days::days(3)).to_rfc3339()})
        } else {
            json!({})
        };
        put(
            pool,
            Spec {
                id,
                status,
                substatus,
                currency,
                value,
                extra,
                ..Spec::default()
            },
        )
        .await;
    }
    sqlx::query(
        "UPDATE partner_center_referrals SET customer_country = 'DE', qualification = 'MarketingQualified' \
         WHERE id IN ('new-eur-2', 'won-eur-1', 'won-usd-1', 'dec-gbp-1', 'act-none-1')",
    )
    .execute(pool)
    .await
    .expect("some referrals are German");
    sqlx::query("UPDATE partner_center_referrals SET currency = NULL WHERE currency = ''")
        .execute(pool)
        .await
        .expect("one has no currency");
}

/// `(currency, status, substatus, count, value)` as SQL returns it.
type SqlGroup = (Option<String>, Option<String>, Option<String>, i64, String);

/// The aggregate written out in plain SQL, independently of the daemon's query.
async fn sql_groups(pool: &PgPool, filter: &str) -> Groups {
    let rows: Vec<SqlGroup> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT currency, status, substatus, count(*), coalesce(sum(deal_value), 0)::text \
             FROM partner_center_referrals WHERE missing_since IS NULL AND {filter} \
             GROUP BY currency, status, substatus"
    )))
    .fetch_all(pool)
    .await
    .expect("the SQL aggregate");
    rows.into_iter()
        .map(|(c, s, ss, n, v)| {
            (
                (
                    c.unwrap_or_default(),
                    s.unwrap_or_default(),
                    ss.unwrap_or_default(),
                ),
                (n, v),
            )
        })
        .collect()
}

/// The page's rows with `testid` as groups; the key leaves out what the row does not carry.
async fn page_groups(b: &Browser, testid: &str) -> Groups {
    let rows = b
        .js(&format!(
            "return [...document.querySelectorAll('[data-testid={testid}]')].map(r => \
             [r.dataset.currency, r.dataset.status || '', r.dataset.substatus || '', Number(r.dataset.count), r.dataset.value])"
        ))
        .await;
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let text = |i: usize| r[i].as_str().unwrap_or_default().to_owned();
            (
                (text(0), text(1), text(2)),
                (r[3].as_i64().expect("a count"), text(4)),
            )
        })
        .collect()
}

/// Rolls groups up to a coarser key, adding counts; values are summed by PostgreSQL.
async fn rolled_up(pool: &PgPool, filter: &str, by: &str) -> Groups {
    let rows: Vec<(Option<String>, Option<String>, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT currency, {by}, count(*), coalesce(sum(deal_value), 0)::text \
             FROM partner_center_referrals WHERE missing_since IS NULL AND {filter} GROUP BY currency, {by}"
        )))
        .fetch_all(pool)
        .await
        .expect("the SQL roll-up");
    rows.into_iter()
        .map(|(c, s, n, v)| {
            (
                (c.unwrap_or_default(), s.unwrap_or_default(), String::new()),
                (n, v),
            )
        })
        .collect()
}

#[tokio::test]
async fn totals_and_the_pipeline_equal_sql_for_the_same_filter() {
    let site = serve(Config::default()).await;
    let pool = &site.db.pool;
    book(pool).await;
    let b = Browser::start("pipeline", 1400, 1000).await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 14"))
        .await;

    // Totals per currency for everything: counted and summed by the server, never mixed.
    b.wait_for(
        "the totals show four groups",
        "document.querySelectorAll('[data-testid=currency-total]').length === 4",
    )
    .await;
    let totals = page_groups(&b, "currency-total").await;
    assert_eq!(totals, rolled_up(pool, "true", "NULL::text").await);
    let eur = b
        .js("return document.querySelector('[data-testid=currency-total][data-currency=EUR]').textContent")
        .await;
    assert_eq!(eur, "€69,000.74 in 6 EUR referrals");

    // The newer filters from their controls, into the URL.
    b.by_testid("filter-country")
        .await
        .send_keys("de")
        .await
        .unwrap();
    b.by_testid("filter-min-value")
        .await
        .send_keys("400")
        .await
        .unwrap();
    b.wait_for(
        "the URL keeps the country and the lower bound",
        "location.search === '?country=de&min_value=400'",
    )
    .await;
    let filter = "upper(customer_country) = 'DE' AND deal_value >= 400";
    b.wait_for(
        "the table and the totals follow the filter",
        &format!(
            "{ROWS}.length === 4 && document.querySelectorAll('[data-testid=currency-total]').length === 3"
        ),
    )
    .await;
    assert_eq!(
        page_groups(&b, "currency-total").await,
        rolled_up(pool, filter, "NULL::text").await
    );

    // The Pipeline tab: the same filter, every number equal to SQL's.
    b.by_testid("tab-pipeline").await.click().await.unwrap();
    b.wait_for(
        "the pipeline shows a card per currency",
        "document.querySelectorAll('[data-testid=pipeline-currency]').length === 3",
    )
    .await;
    assert_eq!(
        b.client.current_url().await.unwrap().query(),
        Some("tab=pipeline&country=de&min_value=400")
    );
    assert_eq!(
        page_groups(&b, "pipeline-substatus").await,
        sql_groups(pool, filter).await
    );
    assert_eq!(
        page_groups(&b, "pipeline-status").await,
        rolled_up(pool, filter, "status").await
    );
    assert_eq!(
        page_groups(&b, "pipeline-currency").await,
        rolled_up(pool, filter, "NULL::text").await
    );
    let charts = b
        .js("return [...document.querySelectorAll('[data-testid=pipeline-chart]')].map(c => \
             [c.getAttribute('role'), c.getAttribute('aria-label'), c.querySelectorAll('[data-testid=chart-segment]').length])")
        .await;
    assert_eq!(charts.as_array().map(Vec::len), Some(3), "{charts}");
    for chart in charts.as_array().unwrap() {
        assert_eq!(chart[0], "img");
        assert!(
            chart[1].as_str().unwrap().contains("pipeline by value"),
            "{chart}"
        );
        assert!(chart[2].as_i64().unwrap() >= 1, "{chart}");
    }

    // Without a filter: all four groups, the one without a currency last.
    b.by_testid("filter-reset").await.click().await.unwrap();
    b.wait_for(
        "every currency shows",
        "document.querySelectorAll('[data-testid=pipeline-currency]').length === 4 && location.search === '?tab=pipeline'",
    )
    .await;
    assert_eq!(
        page_groups(&b, "pipeline-substatus").await,
        sql_groups(pool, "true").await
    );
    assert_eq!(
        b.js("return [...document.querySelectorAll('[data-testid=pipeline-currency] h2')].map(h => h.textContent)")
            .await,
        json!(["EUR", "GBP", "USD", "No currency"])
    );
    b.screenshot("view").await;

    // A pipeline row leads to its referrals.
    b.client
        .find(Locator::Css(
            "[data-testid=pipeline-substatus][data-currency=USD][data-substatus=Won] button",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for(
        "the referrals tab shows USD Closed · Won",
        &format!(
            "location.search === '?status=Closed&substatus=Won&currency=USD' && {ROWS}.length === 1 \
             && {ROWS}[0].dataset.id === 'won-usd-1'"
        ),
    )
    .await;

    // Expiring within 7 days, from its select.
    b.by_testid("filter-reset").await.click().await.unwrap();
    b.by_testid("filter-expiring")
        .await
        .select_by_value("7")
        .await
        .unwrap();
    b.wait_for(
        "only the New referral expiring in three days remains",
        &format!(
            "location.search === '?expiring_within_days=7' && {ROWS}.length === 1 && {ROWS}[0].dataset.id === 'new-eur-1'"
        ),
    )
    .await;

    // A bad value is the server's 400, named, not a broken page.
    b.client
        .goto(&format!("{}/?min_value=10&max_value=5", site.base))
        .await
        .unwrap();
    b.wait_for(
        "the table says which parameter is wrong",
        "document.querySelector('[data-testid=referrals-empty]').textContent.includes('`min_value`')",
    )
    .await;
    b.close().await;
}

/// Waits for one finished download in `dir` and returns its name and bytes.
async fn downloaded(dir: &std::path::Path) -> (String, Vec<u8>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("download dir")
            .map(|e| e.expect("entry").path())
            .collect();
        if let [file] = files.as_slice() {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".crdownload") {
                return (name, std::fs::read(file).expect("read the download"));
            }
        }
        assert!(
            Instant::now() < deadline,
            "no finished download in {}: {files:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_csv_download_is_every_row_of_the_filter_and_defuses_formulas() {
    let config = Config {
        api_token: Some("csv-token".to_owned().into()),
        ..Config::default()
    };
    let site = serve(config).await;
    seed(&site.db.pool, 130).await;
    put(
        &site.db.pool,
        Spec {
            id: "formula",
            status: "Closed",
            substatus: "Won",
            extra: json!({}),
            ..Spec::default()
        },
    )
    .await;
    sqlx::query(
        "UPDATE partner_center_referrals SET name = '=HYPERLINK(\"http://evil.example\",\"Open\")', \
         customer_name = '@SUM(1+1), \"Ltd\"' WHERE id = 'formula'",
    )
    .execute(&site.db.pool)
    .await
    .expect("a formula-injection referral");
    let downloads = tempfile::tempdir().expect("download dir");
    let b = Browser::start("csv", 1400, 900).await;
    b.cdp(
        "Browser.setDownloadBehavior",
        json!({"behavior": "allow", "downloadPath": downloads.path()}),
    )
    .await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for(
        "the token prompt opens",
        "document.getElementById('token-dialog').open",
    )
    .await;
    b.by_testid("token-input")
        .await
        .send_keys("csv-token\u{e007}")
        .await
        .unwrap();
    b.by_testid("filter-status")
        .await
        .select_by_value("Closed")
        .await
        .unwrap();
    b.wait_for(
        "a page of 50 of the 65 Closed referrals",
        &format!(
            "{ROWS}.length === 50 && document.querySelector('[data-testid=referrals-summary]').textContent === '1–50 of 65 referrals'"
        ),
    )
    .await;
    b.by_testid("export-csv").await.click().await.unwrap();
    let (name, bytes) = downloaded(downloads.path()).await;
    assert!(
        name.starts_with("referrals-") && name.ends_with(".csv"),
        "{name}"
    );
    let text = String::from_utf8(bytes).expect("UTF-8");
    let body = text
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark for Excel");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("RFC 4180 rows");

    // The API's rows for the same filter, in the same order: every one, not the page.
    let api: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/partner-center/referrals?status=Closed&limit=500",
            site.base
        ))
        .bearer_auth("csv-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_ids: Vec<&str> = api["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let csv_ids: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(api["total"], 65);
    assert_eq!(csv_ids, api_ids);

    let formula = rows.iter().find(|r| &r[0] == "formula").expect("the row");
    assert_eq!(
        &formula[1], "'=HYPERLINK(\"http://evil.example\",\"Open\")",
        "the formula reads as text"
    );
    assert_eq!(&formula[7], "'@SUM(1+1), \"Ltd\"");
    assert_eq!(&formula[10], "1000", "the value stays a number");
    assert_eq!(&formula[11], "EUR", "its currency in a column of its own");
    assert_eq!(&formula[12], "2024-03-05T12:00:00Z", "ISO dates");
    b.wait_for(
        "a toast says the export is ready",
        &format!("{TOASTS}.some(t => t.textContent.includes('Export ready'))"),
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn the_pipeline_reads_at_360_pixels() {
    let site = serve(Config::default()).await;
    book(&site.db.pool).await;
    let b = Browser::start("pipeline-narrow", 360, 800).await;
    b.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    b.client
        .goto(&format!("{}/?tab=pipeline", site.base))
        .await
        .unwrap();
    b.wait_for(
        "the pipeline shows",
        "document.querySelectorAll('[data-testid=pipeline-currency]').length === 4",
    )
    .await;
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "no horizontal scrolling at 360 px");
    let tabs = b
        .js("const t = document.querySelector('.tabs'); return t.scrollWidth - t.clientWidth")
        .await;
    assert_eq!(tabs, 0, "every tab shows without scrolling the tab strip");
    b.js("document.querySelector('[data-testid=pipeline-body]').scrollIntoView()")
        .await;
    b.screenshot("cards").await;
    b.close().await;
}
