//! The everyday helpers: the token prompt, keyboard shortcuts, saved views, "new since
//! your last visit" and paging through the run history.

use chrono::{Duration as Days, Utc};

use super::*;

#[tokio::test]
async fn enter_in_the_token_dialog_signs_in() {
    let config = Config {
        api_token: Some("enter-token-456".to_owned().into()),
        ..Config::default()
    };
    let site = serve(config).await;
    seed(&site.db.pool, 2).await;
    let b = Browser::start("token-enter", 1200, 800).await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for(
        "the token prompt opens",
        "document.getElementById('token-dialog').open",
    )
    .await;
    b.by_testid("token-input")
        .await
        .send_keys("enter-token-456\u{e007}")
        .await
        .unwrap();
    b.wait_for(
        "Enter submitted the token and the rows load",
        &format!("{ROWS}.length === 2 && !document.getElementById('token-dialog').open"),
    )
    .await;
    assert_eq!(
        b.js("return sessionStorage.getItem('partner-center-sync.api-token')")
            .await,
        "enter-token-456"
    );
    b.close().await;
}

/// Every control has a name a screen reader can say.
const UNLABELLED: &str = "return [...document.querySelectorAll('button, input, select, summary, a[href]')]
    .filter(e => e.getClientRects().length > 0)
    .filter(e => !(e.getAttribute('aria-label') || (e.labels && e.labels.length) || e.textContent.trim()))
    .map(e => e.outerHTML.slice(0, 120))";

#[tokio::test]
async fn shortcuts_search_refresh_and_open_the_help() {
    let site = serve(Config::default()).await;
    seed(&site.db.pool, 3).await;
    let b = Browser::start("shortcuts", 1400, 900).await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 3"))
        .await;
    assert_eq!(b.js(UNLABELLED).await, json!([]), "unlabelled controls");

    b.press('/').await;
    b.wait_for(
        "`/` puts the cursor in the search field",
        "document.activeElement.id === 'f-q'",
    )
    .await;
    // Typing there is typing, not shortcuts: `r` is a letter of the search.
    for key in "Referral 002".chars() {
        b.press(key).await;
    }
    b.wait_for(
        "the search filters the rows",
        &format!("{ROWS}.length === 1 && {ROWS}[0].dataset.id === 'ref-002'"),
    )
    .await;
    b.js("document.getElementById('referral-filters').reset(); document.activeElement.blur()")
        .await;
    b.wait_for("the filter is cleared", &format!("{ROWS}.length === 3"))
        .await;

    put(
        &site.db.pool,
        Spec {
            id: "arrived-meanwhile",
            updated_at: Utc::now().to_rfc3339(),
            ..Spec::default()
        },
    )
    .await;
    b.press('r').await;
    b.wait_for(
        "`r` reloads the table with the new referral",
        &format!("{ROWS}.length === 4 && {ROWS}[0].dataset.id === 'arrived-meanwhile'"),
    )
    .await;

    b.press('?').await;
    b.wait_for("`?` opens the help", "document.getElementById('help').open")
        .await;
    let help = b.by_testid("help-shortcuts").await.text().await.unwrap();
    for expected in ["/", "Search", "r", "Refresh", "?"] {
        assert!(help.contains(expected), "help lists {expected}: {help}");
    }
    b.screenshot("help").await;
    b.press('\u{e00c}').await;
    b.wait_for(
        "Escape closes the help",
        "!document.getElementById('help').open",
    )
    .await;
    b.by_testid("help-open").await.click().await.unwrap();
    b.wait_for(
        "the Help button opens it too",
        "document.getElementById('help').open",
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn a_saved_view_is_restored_from_its_url() {
    let site = serve(Config::default()).await;
    seed(&site.db.pool, 24).await;
    let b = Browser::start("views", 1400, 900).await;
    b.client
        .goto(&format!("{}/?status=Closed&substatus=Won", site.base))
        .await
        .unwrap();
    b.wait_for("the Closed/Won rows load", &format!("{ROWS}.length === 6"))
        .await;
    b.by_testid("views-toggle").await.click().await.unwrap();
    b.by_testid("view-name")
        .await
        .send_keys("Won deals\u{e007}")
        .await
        .unwrap();
    b.wait_for(
        "the view is saved, named on screen and in the URL",
        "new URLSearchParams(location.search).get('view') === 'Won deals' \
         && document.querySelector('[data-testid=view-chip-text]').textContent === 'Won deals' \
         && document.querySelector('[data-testid=saved-view]')",
    )
    .await;
    let link = b
        .js("return document.querySelector('[data-testid=saved-view]').href")
        .await;
    let link = link.as_str().unwrap().to_owned();
    let query = url::Url::parse(&link).unwrap();
    let pairs: Vec<(String, String)> = query.query_pairs().into_owned().collect();
    assert!(
        pairs.contains(&("status".into(), "Closed".into()))
            && pairs.contains(&("substatus".into(), "Won".into()))
            && pairs.contains(&("view".into(), "Won deals".into())),
        "the view's link carries its filters: {link}"
    );

    // Someone else's browser: nothing saved there, the link alone restores the view.
    b.js("localStorage.clear(); sessionStorage.clear()").await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for("all rows show", &format!("{ROWS}.length === 24"))
        .await;
    b.client.goto(&link).await.unwrap();
    b.wait_for(
        "the shared link shows the view's rows and name",
        &format!(
            "{ROWS}.length === 6 && [...{ROWS}].every(r => r.dataset.status === 'Closed') \
             && document.getElementById('f-substatus').value === 'Won' \
             && document.querySelector('[data-testid=view-chip-text]').textContent === 'Won deals' \
             && !document.querySelector('[data-testid=view-chip-save]').hidden"
        ),
    )
    .await;
    b.by_testid("view-chip-save").await.click().await.unwrap();
    let saved = b
        .js("return JSON.parse(localStorage.getItem('partner-center-sync.views')).map(v => v.name)")
        .await;
    assert_eq!(saved, json!(["Won deals"]));

    // Changing a filter leaves the view; choosing it from the list brings it back.
    b.by_testid("filter-status")
        .await
        .select_by_value("")
        .await
        .unwrap();
    b.wait_for(
        "the view name goes when the filters change",
        &format!(
            "{ROWS}.length === 6 && new URLSearchParams(location.search).get('view') === null \
             && document.querySelector('[data-testid=view-chip]').hidden"
        ),
    )
    .await;
    b.by_testid("views-toggle").await.click().await.unwrap();
    // The menu redraws its list on its `toggle` event, a task after it opens: a link
    // found before that is gone by the click.
    b.wait_for(
        "the menu is open and its list redrawn",
        "document.getElementById('views-menu').open",
    )
    .await;
    b.click_testid("saved-view").await;
    b.wait_for(
        "the saved view applies again",
        &format!(
            "{ROWS}.length === 6 && document.getElementById('f-status').value === 'Closed' \
             && new URLSearchParams(location.search).get('view') === 'Won deals'"
        ),
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn referrals_new_since_the_last_visit_are_marked_and_counted() {
    let site = serve(Config::default()).await;
    // Updated 0, 1, … 23 minutes ago.
    seed(&site.db.pool, 24).await;
    let b = Browser::start("fresh", 1400, 900).await;
    b.client.goto(&site.base).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 24"))
        .await;
    assert_eq!(
        b.js(&format!(
            "return [...{ROWS}].filter(r => r.dataset.fresh).length"
        ))
        .await,
        0,
        "a first visit marks nothing"
    );
    assert_eq!(
        b.js("return document.querySelector('[data-testid=new-since]').hidden")
            .await,
        true
    );

    // The previous visit was 10.5 minutes ago, in a new tab (a new visit).
    let last_visit = (Utc::now() - Days::seconds(630)).to_rfc3339();
    b.js(&format!(
        "localStorage.setItem('partner-center-sync.last-visit', JSON.stringify('{last_visit}')); sessionStorage.clear()"
    ))
    .await;
    b.client.refresh().await.unwrap();
    let marked =
        format!("[...{ROWS}].filter(r => r.dataset.fresh === 'true').map(r => r.dataset.id)");
    b.wait_for(
        "the eleven referrals updated since then are marked and counted",
        &format!(
            "{ROWS}.length === 24 && {marked}.length === 11 \
             && document.querySelector('[data-testid=new-since]').textContent === '11 referrals new since your last visit' \
             && !document.querySelector('[data-testid=new-since]').hidden"
        ),
    )
    .await;
    let ids = b.js(&format!("return {marked}")).await;
    let expected: Vec<String> = (0..11).map(|i| format!("ref-{i:03}")).collect();
    assert_eq!(ids, json!(expected));
    assert_eq!(
        b.js("return document.querySelector('[data-testid=fresh-mark]').textContent")
            .await,
        "Updated since your last visit"
    );
    b.screenshot("marked").await;

    b.by_testid("new-since").await.click().await.unwrap();
    b.wait_for(
        "the count filters the table to the new ones",
        &format!(
            "{ROWS}.length === 11 && new URLSearchParams(location.search).get('fresh') === 'true' \
             && !document.querySelector('[data-testid=fresh-chip]').hidden"
        ),
    )
    .await;
    b.client.refresh().await.unwrap();
    b.wait_for(
        "a reload in the same tab keeps this visit's marks",
        &format!("{ROWS}.length === 11 && {marked}.length === 11"),
    )
    .await;
    b.by_testid("fresh-chip-clear").await.click().await.unwrap();
    b.wait_for("the filter is removed", &format!("{ROWS}.length === 24"))
        .await;
    b.close().await;
}

#[tokio::test]
async fn the_runs_tab_pages_past_fifty() {
    let site = serve(Config::default()).await;
    sqlx::query(
        "INSERT INTO partner_center_sync_runs (trigger, mode, status, queued_at, started_at, finished_at, fetched) \
         SELECT 'schedule', 'incremental', 'succeeded', now() - make_interval(hours => n), \
                now() - make_interval(hours => n), now() - make_interval(hours => n) + interval '2 seconds', n \
         FROM generate_series(1, 60) AS n",
    )
    .execute(&site.db.pool)
    .await
    .unwrap();
    let b = Browser::start("runs-paging", 1400, 900).await;
    b.client
        .goto(&format!("{}/?tab=runs", site.base))
        .await
        .unwrap();
    let runs = "document.querySelectorAll('[data-testid=run-row]')";
    let summary = "document.querySelector('[data-testid=runs-summary]').textContent";
    b.wait_for(
        "the first fifty runs show",
        &format!("{runs}.length === 50 && {summary} === '1–50 of 60 runs'"),
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('[data-testid=runs-prev]').disabled")
            .await,
        true
    );
    b.by_testid("runs-next").await.click().await.unwrap();
    b.wait_for(
        "the next page has the oldest ten, and the URL keeps the page",
        &format!(
            "{runs}.length === 10 && {summary} === '51–60 of 60 runs' \
             && new URLSearchParams(location.search).get('rpage') === '2' \
             && document.querySelector('[data-testid=runs-next]').disabled"
        ),
    )
    .await;
    let oldest = b.js(&format!("return {runs}[9].dataset.id")).await;
    assert_eq!(oldest, "1", "the oldest run is last");
    b.client.refresh().await.unwrap();
    b.wait_for(
        "a reload stays on page two",
        &format!("{runs}.length === 10"),
    )
    .await;
    b.by_testid("runs-prev").await.click().await.unwrap();
    b.wait_for(
        "back to the newest",
        &format!("{runs}.length === 50 && {runs}[0].dataset.id === '60'"),
    )
    .await;
    b.close().await;
}
