//! How the referral table reads to the people who work the referrals.

use chrono::{Datelike, Duration as Days, Utc};

use super::*;

/// A referral's row, as a JS expression.
fn row(id: &str) -> String {
    format!("document.querySelector('[data-testid=referral-row][data-id=\"{id}\"]')")
}

fn in_days(days: i64, hours: i64) -> String {
    (Utc::now() + Days::days(days) + Days::hours(hours)).to_rfc3339()
}

#[tokio::test]
async fn badges_dates_and_expiry_read_as_people_expect() {
    let site = serve(Config::default()).await;
    let year = Utc::now().year();
    let pool = &site.db.pool;
    put(
        pool,
        Spec {
            id: "won-old",
            status: "Closed",
            substatus: "Won",
            updated_at: "2024-03-05T12:00:00Z".to_owned(),
            ..Spec::default()
        },
    )
    .await;
    put(
        pool,
        Spec {
            id: "this-year",
            updated_at: format!("{year}-01-15T12:00:00Z"),
            ..Spec::default()
        },
    )
    .await;
    put(
        pool,
        Spec {
            id: "expiring",
            status: "New",
            substatus: "Pending",
            extra: json!({"expirationDateTime": in_days(3, 1)}),
            ..Spec::default()
        },
    )
    .await;
    put(
        pool,
        Spec {
            id: "later",
            status: "New",
            substatus: "Received",
            extra: json!({"expirationDateTime": in_days(20, 0)}),
            ..Spec::default()
        },
    )
    .await;
    put(
        pool,
        Spec {
            id: "closed-expired",
            status: "Closed",
            substatus: "Expired",
            extra: json!({"expirationDateTime": in_days(-2, 0)}),
            ..Spec::default()
        },
    )
    .await;
    let b = Browser::start("reading", 1400, 900).await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 5"))
        .await;

    // Badges: one phrase with a separator, in the DOM text and in what a copy yields.
    let badges = |id: &str| format!("{}.querySelector('[data-testid=status-badges]')", row(id));
    assert_eq!(
        b.js(&format!("return {}.textContent", badges("won-old")))
            .await,
        "Closed · Won"
    );
    assert_eq!(
        b.js(&format!("return {}.innerText", badges("won-old")))
            .await,
        "Closed · Won",
        "copied text keeps the separator"
    );
    assert_eq!(
        b.js(&format!("return {}.textContent", badges("expiring")))
            .await,
        "New · Pending"
    );

    // Dates: absolute in the cell, relative and exact on hover.
    let updated = |id: &str| {
        format!(
            "{}.querySelector('[data-testid=cell-updated] time')",
            row(id)
        )
    };
    assert_eq!(
        b.js(&format!("return {}.textContent", updated("won-old")))
            .await,
        "2024-03-05",
        "another year: ISO date"
    );
    assert_eq!(
        b.js(&format!("return {}.textContent", updated("this-year")))
            .await,
        "15 Jan",
        "this year: day and month"
    );
    let hover = b.js(&format!("return {}.title", updated("won-old"))).await;
    let (relative, exact) = hover
        .as_str()
        .and_then(|h| h.split_once(" · "))
        .unwrap_or_else(|| panic!("hover text is `relative · exact`: {hover}"));
    assert!(relative.contains("year"), "{hover}");
    assert!(exact.contains("2024"), "{hover}");

    // Expiry: shown for New referrals, highlighted within seven days, in words too.
    let expiry = |id: &str| format!("{}.querySelector('[data-testid=expiry]')", row(id));
    let soon = b
        .js(&format!(
            "const e = {}; return [e.textContent, e.dataset.soon, getComputedStyle(e).backgroundColor]",
            expiry("expiring")
        ))
        .await;
    assert!(
        soon[0].as_str().unwrap().starts_with("Expires ")
            && soon[0].as_str().unwrap().ends_with(" · in 3 days"),
        "{soon}"
    );
    assert_eq!(soon[1], "true");
    assert_ne!(soon[2], "rgba(0, 0, 0, 0)", "the soon one is highlighted");
    let later = b
        .js(&format!(
            "const e = {}; return [e.textContent, e.dataset.soon === undefined, getComputedStyle(e).backgroundColor]",
            expiry("later")
        ))
        .await;
    assert!(
        later[0].as_str().unwrap().starts_with("Expires ")
            && !later[0].as_str().unwrap().contains('·'),
        "{later}"
    );
    assert_eq!(later[1], true);
    assert_eq!(
        later[2], "rgba(0, 0, 0, 0)",
        "a later one is not highlighted"
    );
    assert_eq!(
        b.js(&format!("return {}", expiry("closed-expired"))).await,
        Value::Null,
        "closed referrals do not show an expiry"
    );
    b.screenshot("table").await;
    b.close().await;
}

#[tokio::test]
async fn sorting_by_deal_value_groups_currencies() {
    let site = serve(Config::default()).await;
    for (id, currency, value) in [
        ("eur-100", "EUR", "100"),
        ("usd-50", "USD", "50"),
        ("eur-300", "EUR", "300"),
        ("usd-500", "USD", "500"),
        ("gbp-200", "GBP", "200"),
    ] {
        put(
            &site.db.pool,
            Spec {
                id,
                currency,
                value: Some(value),
                ..Spec::default()
            },
        )
        .await;
    }
    let b = Browser::start("currency", 1400, 900).await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 5"))
        .await;
    let order = format!("[...{ROWS}].map(r => r.dataset.id).join(',')");
    let header = "th[data-sort=deal_value] button";
    b.client
        .find(Locator::Css(header))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for(
        "largest first within each currency, currencies A to Z",
        &format!("{order} === 'eur-300,eur-100,gbp-200,usd-500,usd-50'"),
    )
    .await;
    b.client
        .find(Locator::Css(header))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for(
        "smallest first within each currency",
        &format!("{order} === 'eur-100,eur-300,gbp-200,usd-50,usd-500'"),
    )
    .await;
    b.close().await;
}

const HEADERS: &str =
    "[...document.querySelectorAll('#referrals-head th')].map(th => th.dataset.column).join(',')";

#[tokio::test]
async fn chosen_columns_are_remembered_across_reloads() {
    let site = serve(Config::default()).await;
    put(
        &site.db.pool,
        Spec {
            id: "full",
            created_at: "2024-02-01T12:00:00Z".to_owned(),
            extra: json!({
                "team": [{"firstName": "Ana", "lastName": "Lopes"}, {"firstName": "Raj", "lastName": "Iyer"}],
                "details": {"closingDateTime": "2024-09-30T12:00:00Z"},
                "links": {"self": {"uri": "https://api.partner.microsoft.com/v1.0/engagements/referrals/full"}},
            }),
            ..Spec::default()
        },
    )
    .await;
    let b = Browser::start("columns", 1600, 900).await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for("the row loads", &format!("{ROWS}.length === 1"))
        .await;
    assert_eq!(
        b.js(&format!("return {HEADERS}")).await,
        "name,customer,domain,status,type,deal_value,updated"
    );
    b.by_testid("columns-toggle").await.click().await.unwrap();
    for column in [
        "created",
        "key_date",
        "country",
        "qualification",
        "team",
        "link",
    ] {
        b.by_testid(&format!("column-{column}"))
            .await
            .click()
            .await
            .unwrap();
    }
    let all = "name,customer,domain,status,type,deal_value,created,key_date,country,qualification,team,link,updated";
    b.wait_for(
        "the chosen columns appear",
        &format!("{HEADERS} === '{all}'"),
    )
    .await;
    let cells = b
        .js(&format!(
            "const r = {}; return ['created', 'key-date', 'country', 'qualification', 'team', 'link'].map(c => r.querySelector(`[data-testid=cell-${{c}}]`).textContent)",
            row("full")
        ))
        .await;
    assert_eq!(
        cells,
        json!([
            "2024-02-01",
            "Expected 2024-09-30",
            "FR",
            "SalesQualified",
            "Ana Lopes, Raj Iyer",
            "Open ↗"
        ])
    );
    assert_eq!(
        b.js(&format!(
            "return {}.querySelector('[data-testid=cell-link] a').href",
            row("full")
        ))
        .await,
        "https://api.partner.microsoft.com/v1.0/engagements/referrals/full"
    );
    b.screenshot("all-columns").await;

    b.client.refresh().await.unwrap();
    b.wait_for(
        "after a reload the same columns show",
        &format!("{ROWS}.length === 1 && {HEADERS} === '{all}'"),
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('[data-testid=column-team]').checked")
            .await,
        true
    );
    b.by_testid("columns-toggle").await.click().await.unwrap();
    b.by_testid("column-team").await.click().await.unwrap();
    b.client.refresh().await.unwrap();
    b.wait_for(
        "a column taken away stays away",
        &format!(
            "{ROWS}.length === 1 && {HEADERS} === '{}'",
            all.replace(",team", "")
        ),
    )
    .await;
    b.close().await;
}

/// WCAG contrast of each selector's text against the first opaque background behind it.
pub(super) const CONTRAST: &str = r#"
const parse = (c) => { const p = c.match(/rgba?\(([^)]+)\)/)[1].split(/[\s,\/]+/).filter(Boolean).map(Number); return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
const lum = ({ r, g, b }) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
const behind = (el) => { for (let n = el; n; n = n.parentElement) { const c = parse(getComputedStyle(n).backgroundColor); if (c.a > 0.5) return c; } return parse(getComputedStyle(document.documentElement).backgroundColor); };
const ratio = (el) => { const a = lum(parse(getComputedStyle(el).color)); const b = lum(behind(el)); return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
return Object.fromEntries(arguments[0].map((s) => { const el = document.querySelector(s); return [s, el ? Math.round(ratio(el) * 100) / 100 : null]; }));
"#;

/// The relative luminance of the page background, with [`CONTRAST`]'s helpers.
fn page_luminance() -> String {
    let helpers = CONTRAST.split("return Object").next().unwrap_or_default();
    format!(
        "{helpers} return lum(parse(getComputedStyle(document.documentElement).backgroundColor));"
    )
}

#[tokio::test]
async fn dark_mode_follows_the_system_setting() {
    let site = serve(Config::default()).await;
    seed(&site.db.pool, 12).await;
    put(
        &site.db.pool,
        Spec {
            id: "Expiring this week",
            status: "New",
            substatus: "Pending",
            updated_at: Utc::now().to_rfc3339(),
            extra: json!({"expirationDateTime": in_days(2, 1)}),
            ..Spec::default()
        },
    )
    .await;
    let b = Browser::start("dark", 1440, 900).await;
    b.cdp(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 13"))
        .await;
    assert_eq!(
        b.js("return matchMedia('(prefers-color-scheme: dark)').matches")
            .await,
        true
    );
    let selectors = [
        "#referrals-body td",
        "#referrals-body .sub",
        "[data-testid=referral-open]",
        "[data-testid=badge-status]",
        "[data-testid=badge-substatus]",
        ".badge.s-closed",
        ".badge.ss-won",
        ".badge.ss-lost",
        "#referrals-head th",
        ".expiry.soon",
        "[data-testid=sync-now]",
        "label[for=f-q]",
        "#referrals-summary",
        ".status-text",
    ];
    let ratios = b
        .client
        .execute(CONTRAST, vec![json!(selectors)])
        .await
        .expect("contrast script");
    for selector in selectors {
        let ratio = ratios[selector].as_f64();
        assert!(
            ratio.is_some_and(|r| r >= 4.5),
            "{selector} reads at {ratio:?}:1 in dark mode; WCAG AA asks 4.5:1 ({ratios})"
        );
    }
    let lightness = b.js(&page_luminance()).await;
    assert!(
        lightness.as_f64().is_some_and(|l| l < 0.05),
        "the page is dark: relative luminance {lightness}"
    );
    b.js("document.querySelectorAll('[data-testid=toast]').forEach(t => t.remove())")
        .await;
    b.screenshot("table").await;

    // The same browser in light mode: the page follows the setting, not a fixed theme.
    b.cdp(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "light"}]}),
    )
    .await;
    let lightness = b.js(&page_luminance()).await;
    assert!(
        lightness.as_f64().is_some_and(|l| l > 0.8),
        "back to light: relative luminance {lightness}"
    );
    b.close().await;
}
