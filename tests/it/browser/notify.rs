//! What the change history and the notifications look like to the people who read them:
//! a status change in a referral's timeline with its old and new values, deliveries with
//! their state, a failing destination with its last error, and the demo's inbox. Against
//! the live daemon, the emulator and a webhook receiver in this test (axum on 127.0.0.1
//! port 0) or the demo's own.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use partner_center_sync::config::{Destination, EventKind, Format};
use partner_center_sync::dev::inbox::Inbox;
use pc_emulator::{Activity, ChangeKind};
use secrecy::SecretString;

use super::*;

/// A receiver with one path that takes every message and one that always fails.
async fn receiver() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/ok", post(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/broken",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "maintenance window") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the receiver");
    let addr = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the receiver serves");
    });
    (addr, task)
}

fn destination(name: &str, format: Format, url: String) -> Destination {
    Destination {
        name: name.to_owned(),
        format,
        url: SecretString::from(url),
        secret: Some(SecretString::from("browser-test-hmac-key")),
        events: EventKind::ALL.to_vec(),
        directions: Vec::new(),
        types: Vec::new(),
        statuses: Vec::new(),
        min_deal_value: None,
    }
}

/// Starts a run through the API and waits until `n` runs have succeeded.
async fn sync(live: &Live, n: i64) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/partner-center/referrals/sync",
            live.site.base
        ))
        .send()
        .await
        .expect("the trigger answers");
    assert_eq!(response.status(), 202, "the trigger is accepted");
    let deadline = Instant::now() + WAIT;
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM partner_center_sync_runs WHERE status = 'succeeded'",
        )
        .fetch_one(&live.site.db.pool)
        .await
        .expect("count runs");
        if done >= n {
            return;
        }
        assert!(Instant::now() < deadline, "run {n} did not succeed in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_status_change_shows_in_the_timeline_with_old_and_new_values() {
    let live = live(20, |_, _| {}).await;
    sync(&live, 1).await;
    let closed = live.emu.close_referrals(1).pop().expect("an open referral");
    let before: String =
        sqlx::query_scalar("SELECT status FROM partner_center_referrals WHERE id = $1")
            .bind(&closed)
            .fetch_one(&live.site.db.pool)
            .await
            .expect("the referral was synced");
    assert_ne!(before, "Closed");
    sync(&live, 2).await;

    let b = Browser::start("timeline", 1280, 1000).await;
    b.client
        .goto(&format!("{}/?referral={closed}", live.site.base))
        .await
        .unwrap();
    let status = "document.querySelector('[data-testid=change][data-field=status]')";
    b.wait_for("the timeline shows the status change", status)
        .await;
    let shown = b
        .js(&format!(
            "const c = {status}; return [c.querySelector('[data-testid=change-old]').textContent, \
             c.querySelector('[data-testid=change-new]').textContent, c.textContent]"
        ))
        .await;
    assert_eq!(shown[0], before.as_str(), "the old status: {shown}");
    assert_eq!(shown[1], "Closed", "the new status: {shown}");
    assert!(
        shown[2]
            .as_str()
            .unwrap_or_default()
            .starts_with("Status: "),
        "{shown}"
    );
    // Oldest first: the first sighting, then the change; each with its date and time, the
    // relative form on hover.
    let order = b
        .js("return [...document.querySelectorAll('[data-testid=change]')].map(c => c.dataset.field)")
        .await;
    assert_eq!(order[0], "created", "{order}");
    let when = b
        .js(&format!(
            "const t = {status}.querySelector('.when time'); return [t.textContent, t.title]"
        ))
        .await;
    assert!(
        when[0].as_str().is_some_and(|t| t.contains(':')),
        "the absolute time shows: {when}"
    );
    assert!(
        when[1]
            .as_str()
            .is_some_and(|t| t.contains("ago") || t.contains("now")),
        "the relative time is on hover: {when}"
    );
    b.js("document.querySelector('[data-testid=timeline]').scrollIntoView({block: 'center'})")
        .await;
    b.screenshot("detail").await;
    b.close().await;
}

#[tokio::test]
async fn the_notifications_tab_shows_deliveries_and_an_unhealthy_destination_with_its_error() {
    let (addr, _receiver) = receiver().await;
    let live = live(12, |_, config| {
        config.notify = vec![
            destination("sales-team", Format::Json, format!("http://{addr}/ok")),
            destination("ops-teams", Format::Teams, format!("http://{addr}/broken")),
        ];
        config.notify_unhealthy_after = 1;
    })
    .await;
    sync(&live, 1).await;

    let b = Browser::start("notifications", 1440, 1000).await;
    b.client
        .goto(&format!("{}/?tab=notifications", live.site.base))
        .await
        .unwrap();
    let row = |dest: &str, state: &str| {
        format!(
            "document.querySelector('[data-testid=delivery-row][data-destination={dest}][data-state={state}]')"
        )
    };
    b.wait_for(
        "the import summary is delivered to the working destination",
        &row("sales-team", "delivered"),
    )
    .await;
    let delivered = b
        .js(&format!(
            "return {}.textContent",
            row("sales-team", "delivered")
        ))
        .await;
    assert!(
        delivered
            .as_str()
            .is_some_and(|t| t.contains("Import summary") && t.contains("delivered")),
        "{delivered}"
    );
    let broken = "document.querySelector('[data-testid=destination][data-name=ops-teams]')";
    b.wait_for(
        "the failing destination is marked unhealthy with its last error",
        &format!(
            "{broken} && {broken}.dataset.healthy === 'false' && {broken}.querySelector('[data-testid=destination-error]')"
        ),
    )
    .await;
    let card = b
        .js(&format!(
            "return [{broken}.querySelector('[data-testid=destination-health]').textContent, \
             {broken}.querySelector('[data-testid=destination-error]').textContent]"
        ))
        .await;
    assert_eq!(card[0], "Unhealthy");
    let error = card[1].as_str().unwrap_or_default();
    assert!(
        error.contains("500") && error.contains("maintenance window"),
        "the receiver's answer is the last error: {error}"
    );
    assert!(
        !error.contains(&addr.to_string()),
        "the webhook URL is never shown: {error}"
    );
    assert_eq!(
        b.js("return document.querySelector('[data-testid=destination][data-name=sales-team]').dataset.healthy")
            .await,
        "true"
    );
    b.wait_for(
        "the failed delivery is listed with its state and error",
        &format!(
            "{r} && {r}.querySelector('[data-testid=delivery-error]')",
            r = row("ops-teams", "failed")
        ),
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('[data-testid=inbox]').hidden")
            .await,
        true,
        "no demo inbox outside the demo"
    );
    b.screenshot("panel").await;

    // Dark mode and a phone's width: no sideways scrolling, the error still reads.
    b.cdp(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    b.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    b.client.refresh().await.unwrap();
    b.wait_for(
        "the page loads 360 px wide with the failing destination",
        &format!("window.innerWidth === 360 && {broken}"),
    )
    .await;
    let tabs = b
        .js("const t = document.querySelector('.tabs'); return t.scrollWidth - t.clientWidth")
        .await;
    assert_eq!(tabs, 0, "five tabs wrap rather than scroll at 360 px");
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "no horizontal scrolling at 360 px");
    let ratios = b
        .client
        .execute(
            super::table::CONTRAST,
            vec![json!([
                "[data-testid=destination-error]",
                "[data-testid=destination-health]",
                "[data-testid=delivery-state]"
            ])],
        )
        .await
        .expect("contrast script");
    for (selector, ratio) in ratios.as_object().expect("ratios") {
        assert!(
            ratio.as_f64().is_some_and(|r| r >= 4.5),
            "{selector} reads at {ratio}:1 in dark mode"
        );
    }
    b.screenshot("narrow-dark").await;
    b.close().await;
}

#[tokio::test]
async fn the_demo_inbox_shows_what_it_received_signed() {
    let inbox = Inbox::start().await.expect("the demo inbox starts");
    let destination = inbox.destination();
    let live = live_with(
        15,
        |emu, config| {
            emu.activity = Some(Activity {
                every: None,
                changes: 3,
            });
            config.notify = vec![destination];
        },
        Some(inbox.routes()),
    )
    .await;
    sync(&live, 1).await;
    let b = Browser::start("inbox", 1280, 1000).await;
    b.client
        .goto(&format!("{}/?tab=notifications", live.site.base))
        .await
        .unwrap();
    let summary =
        "document.querySelector('[data-testid=inbox-message][data-event=import_summary]')";
    b.wait_for("the import summary arrives in the inbox", summary)
        .await;
    let text = b.js(&format!("return {summary}.textContent")).await;
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains("15 referrals imported") && text.contains("Signature verified"),
        "{text}"
    );

    // The emulator moves a referral on; the next sync's message shows old and new status.
    let moved = loop {
        let round = live.emu.activity_round().expect("activity is on");
        if let Some(c) = round.iter().find(|c| {
            matches!(
                c.kind,
                ChangeKind::Accepted | ChangeKind::Won | ChangeKind::Lost | ChangeKind::Declined
            )
        }) {
            break c.id.clone();
        }
    };
    sync(&live, 2).await;
    let changed = format!(
        "[...document.querySelectorAll('[data-testid=inbox-message][data-event=referral_status_changed]')]\
         .find(m => m.textContent.includes('{moved}'))"
    );
    b.wait_for(
        "the status change arrives in the inbox while the tab is open",
        &changed,
    )
    .await;
    let text = b.js(&format!("return {changed}.textContent")).await;
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains(" → ") && text.contains("Signature verified"),
        "{text}"
    );
    assert_eq!(
        b.js("return document.querySelector('[data-testid=inbox]').hidden")
            .await,
        false
    );
    b.js("document.querySelector('[data-testid=inbox]').scrollIntoView()")
        .await;
    b.screenshot("panel").await;
    b.close().await;
}
