//! The web UI in a real headless Chromium driven over WebDriver (chromedriver), as a
//! salesperson or operator would use it. Needs Debian's `chromium` and
//! `chromium-driver`: `scripts/ensure-tools` installs them; without them every test
//! here fails with one line saying so, rather than passing without a browser.
//!
//! Screenshots land in `target/screenshots/` (also on failure) so a reviewer can see
//! what the browser saw.
//!
//! This file holds the harness and the operator's flows; `browser/table.rs` pins how the
//! referral table reads (badges, dates, expiry, currency sort, columns, dark mode) and
//! `browser/comfort.rs` the everyday helpers (token prompt, shortcuts, saved views, new
//! since the last visit, runs paging) and `browser/pipeline.rs` money per currency and the
//! CSV download (totals, the Pipeline view against SQL, the newer filters, Export CSV) and
//! `browser/notify.rs` the change history and notifications (the timeline, the
//! Notifications tab).

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use partner_center_sync::config::Config;
use pc_emulator::{Emulator, EmulatorConfig, FaultSpec, PathKind};
use serde_json::{Value, json};
use sqlx::PgPool;

// Beside this file rather than in tests/, where Cargo would build each as its own binary.
#[path = "browser/comfort.rs"]
mod comfort;
#[path = "browser/notify.rs"]
mod notify;
#[path = "browser/pipeline.rs"]
mod pipeline;
#[path = "browser/public_host.rs"]
mod public_host;
use crate::support;
#[path = "browser/table.rs"]
mod table;

use support::TestDb;

const WAIT: Duration = Duration::from_secs(20);

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// One headless Chromium behind its own chromedriver, both killed when dropped.
struct Browser {
    client: Client,
    driver: Child,
    name: &'static str,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(name: &'static str, width: u32, height: u32) -> Self {
        Self::start_with(name, width, height, &[]).await
    }

    /// With extra Chromium switches (`--host-resolver-rules` for a public name).
    async fn start_with(name: &'static str, width: u32, height: u32, extra: &[String]) -> Self {
        let (Some(chromium), Some(chromedriver)) =
            (find_program("chromium"), find_program("chromedriver"))
        else {
            panic!(
                "chromium or chromedriver is not installed: run scripts/ensure-tools (as root) first"
            );
        };
        let port = support::free_port();
        let mut command = Command::new(chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so the browsers it starts die with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--lang=en-US".to_owned(),
            // WebDriver reads text of an element at opacity 0 as empty, so a panel caught
            // in its fade-in would read blank; reduced motion (which the page honours)
            // takes the animations out of every assertion.
            "--force-prefers-reduced-motion".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let args = [args, extra.to_vec()].concat();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({"binary": chromium, "args": args}),
        );
        let client = ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .expect("WebDriver session with chromium");
        Self {
            client,
            driver,
            name,
            _profile: profile,
        }
    }

    async fn screenshot(&self, label: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = screenshot_dir().join(format!("{}-{label}.png", self.name));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("run script")
    }

    /// Presses one key on whatever has focus, as a person would (not into an element).
    async fn press(&self, key: char) {
        let keys = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client
            .perform_actions(keys)
            .await
            .unwrap_or_else(|e| panic!("press {key:?}: {e}"));
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver.
    async fn cdp(&self, cmd: &'static str, params: Value) {
        self.client
            .issue_cmd(Cdp { cmd, params })
            .await
            .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"));
    }

    async fn by_testid(&self, id: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(&format!("[data-testid=\"{id}\"]")))
            .await
            .unwrap_or_else(|e| panic!("no element data-testid={id}: {e}"))
    }

    /// Clicks the element with this test id. A list that redraws itself (the views menu on
    /// its `toggle` event) can replace the element between the find and the click; that
    /// stale element is found again, at most 5 times.
    async fn click_testid(&self, id: &str) {
        for attempt in 1..=5 {
            match self.by_testid(id).await.click().await {
                Ok(()) => return,
                Err(e) if attempt < 5 && format!("{e:?}").to_lowercase().contains("stale") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click data-testid={id}: {e}"),
            }
        }
    }

    /// Polls `script` (a JS expression) until it is truthy; on timeout saves a screenshot
    /// and fails with `what`.
    async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.js(&format!("return ({script});")).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot("failure").await;
                panic!(
                    "timed out waiting until {what}; screenshot {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        self.kill();
    }

    fn kill(&mut self) {
        // SAFETY: kill(2) only sends a signal, to the process group of our own child.
        let pgid = i32::try_from(self.driver.id()).expect("pid fits");
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// chromedriver's `goog/cdp/execute`: DevTools commands WebDriver has no verb for.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if matches!(self.driver.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// The real daemon (in-process, on loopback) over a fresh database.
struct Site {
    base: String,
    _daemon: support::TestDaemon,
    db: TestDb,
}

async fn serve(config: Config) -> Site {
    serve_with(config, None).await
}

async fn serve_with(config: Config, routes: Option<axum::Router>) -> Site {
    let db = TestDb::new().await;
    let daemon = support::spawn_daemon_with(config, &db, routes).await;
    Site {
        base: daemon.base.clone(),
        _daemon: daemon,
        db,
    }
}

/// A daemon wired to the emulator and signed in through the real device-code login (the
/// emulator approves it by itself), as the demo runs it. No run happens until the test
/// asks: no start-up run, an hour between scheduled ones.
struct Live {
    emu: Emulator,
    site: Site,
    _dir: tempfile::TempDir,
}

async fn live(referrals: usize, tweak: impl FnOnce(&mut EmulatorConfig, &mut Config)) -> Live {
    live_with(referrals, tweak, None).await
}

/// [`live`] with `routes` served beside the daemon's own.
async fn live_with(
    referrals: usize,
    tweak: impl FnOnce(&mut EmulatorConfig, &mut Config),
    routes: Option<axum::Router>,
) -> Live {
    let mut emu_config = EmulatorConfig {
        referrals,
        auto_approve_after: Some(1),
        device_code_interval_secs: 0,
        ..EmulatorConfig::default()
    };
    let mut config = Config {
        enabled: true,
        sync_on_startup: false,
        sync_interval: Duration::from_secs(3600),
        retry_max_delay: Duration::from_secs(1),
        http_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    tweak(&mut emu_config, &mut config);
    let emu = Emulator::start(emu_config).await.expect("emulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    config.client_id = Some(emu.client_id());
    config.tenant_id = Some(emu.tenant_id());
    config.api_url = emu.api_url().parse().expect("api url");
    config.authority_url = emu.authority_url().parse().expect("authority url");
    config.token_cache = dir.path().join("msal_token_cache.json");
    if config.enabled {
        partner_center_sync::auth::login(&config, true)
            .await
            .expect("device-code login against the emulator");
    }
    let site = serve_with(config, routes).await;
    Live {
        emu,
        site,
        _dir: dir,
    }
}

const STATE: &str = "document.querySelector('[data-testid=sync-status]').dataset.state";
const TOASTS: &str = "[...document.querySelectorAll('[data-testid=toast]')]";

/// A tricky name: quotes, markup, accents and an emoji must show exactly as typed.
const TRICKY_NAME: &str = "Zoë's \"Café\" <b>bold</b> 🚀 rollout";

async fn seed(pool: &PgPool, n: usize) {
    let statuses = [
        ("New", "Pending"),
        ("Active", "Accepted"),
        ("Closed", "Won"),
        ("Closed", "Lost"),
    ];
    for i in 0..n {
        let (status, substatus) = statuses[i % statuses.len()];
        let name = if i == 0 {
            TRICKY_NAME.to_owned()
        } else {
            format!("Referral {i:03}")
        };
        let id = format!("ref-{i:03}");
        let payload = json!({
            "id": id, "name": name, "status": status, "substatus": substatus,
            "details": {"dealValue": 1000 + i, "currency": "EUR", "notes": "Wants a pilot."},
            "team": [{"firstName": "Ana", "lastName": "Lopes", "email": "ana@partner.example"}],
            "customerProfile": {"name": format!("Customer {}", i % 5), "address": {"country": "FR"},
                "team": [{"firstName": "Bo", "lastName": "Chen", "email": "bo@customer.example"}]},
        });
        sqlx::query(
            "INSERT INTO partner_center_referrals (id, engagement_id, name, status, substatus, type, qualification, \
             direction, customer_name, customer_country, customer_domain, deal_value, currency, created_at, updated_at, \
             etag, payload) VALUES ($1, 'eng', $2, $3, $4, 'Shared', 'SalesQualified', 'Incoming', $5, 'FR', $6, \
             $7::numeric, 'EUR', now() - interval '30 days', now() - make_interval(mins => $8), '\"e\"', $9)",
        )
        .bind(&id)
        .bind(&name)
        .bind(status)
        .bind(substatus)
        .bind(format!("Customer {}", i % 5))
        .bind(format!("customer{}.example", i % 5))
        .bind(format!("{}.50", 1000 + i))
        .bind(i32::try_from(i).expect("small"))
        .bind(payload)
        .execute(pool)
        .await
        .expect("insert referral");
    }
}

const ROWS: &str = "document.querySelectorAll('[data-testid=referral-row]')";

/// One referral as a test needs it; `extra` is merged into the payload, times are RFC 3339.
struct Spec {
    id: &'static str,
    status: &'static str,
    substatus: &'static str,
    currency: &'static str,
    value: Option<&'static str>,
    created_at: String,
    updated_at: String,
    extra: Value,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            id: "",
            status: "Active",
            substatus: "Accepted",
            currency: "EUR",
            value: Some("1000"),
            created_at: "2024-03-05T12:00:00Z".to_owned(),
            updated_at: "2024-03-05T12:00:00Z".to_owned(),
            extra: json!({}),
        }
    }
}

async fn put(pool: &PgPool, s: Spec) {
    let mut payload =
        json!({"id": s.id, "name": s.id, "status": s.status, "substatus": s.substatus});
    if let (Some(map), Value::Object(extra)) = (payload.as_object_mut(), s.extra) {
        map.extend(extra);
    }
    sqlx::query(
        "INSERT INTO partner_center_referrals (id, name, status, substatus, type, qualification, direction, \
         customer_name, customer_country, customer_domain, deal_value, currency, created_at, updated_at, payload) \
         VALUES ($1, $1, $2, $3, 'Shared', 'SalesQualified', 'Incoming', 'Customer', 'FR', 'customer.example', \
         $4::numeric, $5, $6::timestamptz, $7::timestamptz, $8)",
    )
    .bind(s.id)
    .bind(s.status)
    .bind(s.substatus)
    .bind(s.value)
    .bind(s.currency)
    .bind(s.created_at)
    .bind(s.updated_at)
    .bind(payload)
    .execute(pool)
    .await
    .expect("insert referral");
}

#[tokio::test]
async fn filtering_by_status_changes_the_rows_and_the_url_keeps_it() {
    let site = serve(Config::default()).await;
    seed(&site.db.pool, 24).await;
    let b = Browser::start("filter", 1400, 1000).await;
    b.client.goto(&format!("{}/", site.base)).await.unwrap();
    b.wait_for(
        "the table shows all 24 rows",
        &format!("{ROWS}.length === 24"),
    )
    .await;

    b.by_testid("filter-status")
        .await
        .select_by_value("Closed")
        .await
        .unwrap();
    b.wait_for(
        "only Closed rows remain",
        &format!("{ROWS}.length === 12 && [...{ROWS}].every(r => r.dataset.status === 'Closed')"),
    )
    .await;
    let summary = b.by_testid("referrals-summary").await.text().await.unwrap();
    assert_eq!(summary, "1–12 of 12 referrals");
    let url = b.client.current_url().await.unwrap();
    assert_eq!(url.query(), Some("status=Closed"));
    b.screenshot("closed").await;

    // Sorting is done by the server and kept in the URL too.
    b.client
        .find(Locator::Css("th[data-sort=deal_value] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for(
        "rows sorted by deal value, largest first",
        &format!(
            "location.search === '?status=Closed&sort=deal_value&order=desc' \
             && document.querySelector('th[data-sort=deal_value]').getAttribute('aria-sort') === 'descending' \
             && {ROWS}[0].dataset.id === 'ref-023'"
        ),
    )
    .await;

    // The URL is the shareable view: a fresh load restores the filter.
    b.client
        .goto(&format!("{}/?status=Closed&substatus=Won", site.base))
        .await
        .unwrap();
    b.wait_for(
        "the shared view shows only Closed/Won",
        &format!("{ROWS}.length === 6"),
    )
    .await;
    let selected = b
        .js("return document.getElementById('f-substatus').value")
        .await;
    assert_eq!(selected, "Won");
    b.close().await;
}

#[tokio::test]
async fn detail_view_shows_key_fields_and_the_raw_json() {
    let site = serve(Config::default()).await;
    seed(&site.db.pool, 3).await;
    let b = Browser::start("detail", 1400, 1000).await;
    b.client.goto(&format!("{}/", site.base)).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 3"))
        .await;
    let first = b.by_testid("referral-open").await;
    assert_eq!(
        first.text().await.unwrap(),
        TRICKY_NAME,
        "untrusted text shows as typed"
    );
    assert_eq!(
        b.js("return document.querySelectorAll('#referrals-body b').length")
            .await,
        0,
        "markup in a name is never interpreted"
    );
    // Keyboard: the name is a button, so Enter opens the panel.
    first.send_keys("\u{e007}").await.unwrap();
    b.wait_for(
        "the detail panel opens with the name",
        &format!(
            "document.getElementById('detail').open && document.getElementById('detail-title').textContent === {}",
            serde_json::to_string(TRICKY_NAME).unwrap()
        ),
    )
    .await;
    let body = b.by_testid("detail-body").await.text().await.unwrap();
    for expected in [
        "€1,000.50",
        "Customer 0",
        "Bo Chen",
        "Ana Lopes",
        "Created in Partner Center",
        "ref-000",
    ] {
        assert!(body.contains(expected), "detail shows {expected}: {body}");
    }
    assert!(
        b.client.current_url().await.unwrap().query() == Some("referral=ref-000"),
        "the open referral is in the URL"
    );

    b.by_testid("raw-json-toggle").await.click().await.unwrap();
    let raw = b.by_testid("raw-json").await.text().await.unwrap();
    let parsed: Value = serde_json::from_str(&raw).expect("raw JSON is valid JSON");
    assert_eq!(parsed["id"], "ref-000");
    assert_eq!(parsed["name"], TRICKY_NAME);
    b.js("document.querySelector('[data-testid=raw-json]').scrollIntoView({block: 'center'})")
        .await;
    b.screenshot("open").await;

    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys("\u{e00c}")
        .await
        .unwrap();
    b.wait_for(
        "Escape closes the panel and the URL forgets it",
        "!document.getElementById('detail').open && location.search === ''",
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn readable_at_360_pixels() {
    let site = serve(Config::default()).await;
    seed(&site.db.pool, 8).await;
    let b = Browser::start("narrow", 360, 800).await;
    // Headless Chromium keeps its window at least 500 px wide; emulate the phone's viewport.
    b.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    b.client.goto(&format!("{}/", site.base)).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 8"))
        .await;
    assert_eq!(b.js("return window.innerWidth").await, 360);
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "no horizontal scrolling at 360 px");
    b.screenshot("referrals").await;

    // The menus, every optional column and the help fit the screen too.
    let inside = "(() => { const r = document.querySelector(SEL).getBoundingClientRect(); \
                  return r.width > 0 && r.left >= 0 && r.right <= document.documentElement.clientWidth; })()";
    for (toggle, panel) in [
        ("views-toggle", "#views-menu .menu-body"),
        ("columns-toggle", "#columns-menu .menu-body"),
    ] {
        b.by_testid(toggle).await.click().await.unwrap();
        b.wait_for(
            &format!("{panel} opens within the screen"),
            &inside.replace("SEL", &format!("'{panel}'")),
        )
        .await;
    }
    b.js(
        "document.querySelectorAll('#columns-choices input').forEach(c => c.checked || c.click())",
    )
    .await;
    b.wait_for(
        "every optional column shows",
        "document.querySelectorAll('#referrals-head th').length === 13",
    )
    .await;
    b.screenshot("columns").await;
    b.press('\u{e00c}').await;
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "no horizontal scrolling with every column");
    b.js("document.getElementById('referrals-body').scrollIntoView()")
        .await;
    b.screenshot("cards").await;
    b.by_testid("help-open").await.click().await.unwrap();
    b.wait_for(
        "the help fits the screen",
        &inside.replace("SEL", "'#help'"),
    )
    .await;
    b.screenshot("help").await;
    b.close().await;
}

#[tokio::test]
async fn the_page_asks_for_the_api_token_once_and_keeps_it_for_the_tab() {
    let config = Config {
        api_token: Some("ui-token-123".to_owned().into()),
        ..Config::default()
    };
    let site = serve(config).await;
    seed(&site.db.pool, 2).await;
    let b = Browser::start("token", 1200, 800).await;
    b.client.goto(&format!("{}/", site.base)).await.unwrap();
    b.wait_for(
        "the token prompt opens",
        "document.getElementById('token-dialog').open",
    )
    .await;
    b.screenshot("prompt").await;
    b.by_testid("token-input")
        .await
        .send_keys("ui-token-123")
        .await
        .unwrap();
    b.by_testid("token-submit").await.click().await.unwrap();
    b.wait_for(
        "the rows load with the token",
        &format!("{ROWS}.length === 2"),
    )
    .await;
    assert_eq!(
        b.js("return sessionStorage.getItem('partner-center-sync.api-token')")
            .await,
        "ui-token-123"
    );
    b.client.refresh().await.unwrap();
    b.wait_for(
        "after a reload the rows load without asking again",
        &format!("{ROWS}.length === 2"),
    )
    .await;
    assert_eq!(
        b.js("return document.getElementById('token-dialog').open")
            .await,
        false
    );
    b.close().await;
}

#[tokio::test]
async fn sync_now_fills_the_table_shows_toasts_and_live_status() {
    // Small, slowed pages so the run lasts a few seconds and its live counts can be seen.
    let live = live(137, |emu, config| {
        emu.faults = FaultSpec::parse("slow:every=1:ms=800").expect("fault spec");
        config.page_size = 20;
    })
    .await;
    let b = Browser::start("sync", 1440, 900).await;
    b.client.goto(&live.site.base).await.unwrap();
    b.wait_for(
        "the status says nothing was synced yet",
        &format!("{STATE} === 'idle'"),
    )
    .await;
    b.wait_for(
        "the empty table invites a sync",
        "document.querySelector('[data-testid=referrals-empty]').textContent.includes('Sync now')",
    )
    .await;
    assert_eq!(b.js(&format!("return {ROWS}.length")).await, 0);

    b.by_testid("sync-now").await.click().await.unwrap();
    b.wait_for(
        "a toast says the sync was queued",
        &format!("{TOASTS}.some(t => t.textContent.includes('Sync queued'))"),
    )
    .await;
    b.wait_for(
        "the status shows the running run with live counts and progress",
        &format!(
            "{STATE} === 'running' && /\\d+ fetched/.test(document.querySelector('[data-testid=sync-status]').textContent) \
             && !document.querySelector('[data-testid=sync-progress]').hidden \
             && document.querySelector('[data-testid=sync-now]').disabled"
        ),
    )
    .await;
    b.screenshot("running").await;
    b.wait_for(
        "a success toast gives the inserted and updated counts",
        &format!(
            "{TOASTS}.some(t => t.dataset.kind === 'success' && t.textContent.includes('137 referrals inserted, 0 updated'))"
        ),
    )
    .await;
    b.wait_for(
        "the table fills with the first page of 137",
        &format!(
            "{ROWS}.length === 50 && document.querySelector('[data-testid=referrals-summary]').textContent === '1–50 of 137 referrals'"
        ),
    )
    .await;
    b.wait_for(
        "the status turns to succeeded",
        &format!("{STATE} === 'succeeded'"),
    )
    .await;
    let last = b.by_testid("last-success").await.text().await.unwrap();
    assert_eq!(last, "just now");
    b.wait_for(
        "Sync now is usable again",
        "!document.querySelector('[data-testid=sync-now]').disabled",
    )
    .await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM partner_center_referrals")
        .fetch_one(&live.site.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 137);
    assert_eq!(live.emu.referral_count(), 137);
    b.screenshot("done").await;
    b.js("document.querySelectorAll('[data-testid=toast]').forEach(t => t.remove())")
        .await;
    b.screenshot("overview").await;
    b.by_testid("referral-open").await.click().await.unwrap();
    b.wait_for(
        "the detail panel opens on the first referral",
        "document.getElementById('detail').open && document.querySelector('[data-testid=timeline] li') \
         && document.getAnimations().every(a => a.animationName !== 'slidein' || a.playState === 'finished')",
    )
    .await;
    b.screenshot("detail").await;
    b.by_testid("detail-close").await.click().await.unwrap();

    b.by_testid("tab-companies").await.click().await.unwrap();
    b.wait_for(
        "companies derived from the referrals are listed",
        "document.querySelectorAll('[data-testid=company-row]').length > 0",
    )
    .await;
    let domain = b
        .js("return document.querySelector('[data-testid=company-row]').dataset.domain")
        .await;
    b.by_testid("company-open").await.click().await.unwrap();
    b.wait_for(
        "clicking a company shows its referrals",
        &format!(
            "new URLSearchParams(location.search).get('domain') === {domain} && {ROWS}.length > 0 \
             && [...{ROWS}].every(r => r.dataset.domain === {domain}) \
             && !document.getElementById('domain-chip-row').hidden"
        ),
    )
    .await;
    b.close().await;
}

#[tokio::test]
async fn with_the_flag_off_sync_now_is_disabled_and_the_api_refuses() {
    let live = live(10, |_, config| config.enabled = false).await;
    let b = Browser::start("disabled", 1280, 720).await;
    b.client.goto(&live.site.base).await.unwrap();
    b.wait_for(
        "the status says sync is disabled",
        &format!("{STATE} === 'disabled'"),
    )
    .await;
    let button = b.by_testid("sync-now").await;
    assert!(!button.is_enabled().await.unwrap(), "Sync now is disabled");
    let hint = b.by_testid("sync-hint").await;
    assert!(hint.is_displayed().await.unwrap());
    let hint = hint.text().await.unwrap();
    assert!(hint.contains("HUNTER_PARTNER_CENTER_ENABLED"), "{hint}");
    b.screenshot("header").await;
    b.close().await;

    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/partner-center/referrals/sync",
            live.site.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert!(
        body["error"].as_str().unwrap().contains("disabled"),
        "{body}"
    );
    assert_eq!(
        live.emu.stats().requests_to(PathKind::ReferralList),
        0,
        "nothing was fetched"
    );
}

#[tokio::test]
async fn a_failed_run_shows_its_error() {
    let live = live(30, |emu, config| {
        emu.faults = FaultSpec::parse("500:every=1").expect("fault spec");
        config.retry_max_attempts = 1;
    })
    .await;
    let b = Browser::start("failed", 1440, 900).await;
    b.client.goto(&live.site.base).await.unwrap();
    b.wait_for("the page is ready", &format!("{STATE} === 'idle'"))
        .await;
    b.by_testid("sync-now").await.click().await.unwrap();
    b.wait_for(
        "an error toast says the sync failed",
        &format!("{TOASTS}.some(t => t.dataset.kind === 'error' && t.textContent.includes('Sync failed'))"),
    )
    .await;
    b.wait_for(
        "the status shows the failure",
        &format!("{STATE} === 'failed'"),
    )
    .await;
    let error: String =
        sqlx::query_scalar("SELECT error FROM partner_center_sync_runs WHERE status = 'failed'")
            .fetch_one(&live.site.db.pool)
            .await
            .expect("one failed run with an error");
    assert_eq!(
        b.by_testid("status-detail").await.text().await.unwrap(),
        error
    );
    b.screenshot("header").await;

    b.by_testid("tab-runs").await.click().await.unwrap();
    b.wait_for(
        "the runs tab lists the failed run with its error",
        "document.querySelector('[data-testid=run-row][data-status=failed] [data-testid=run-error]')",
    )
    .await;
    let shown = b
        .js("return document.querySelector('[data-testid=run-row][data-status=failed] [data-testid=run-error]').textContent")
        .await;
    assert_eq!(shown, error.as_str());
    b.screenshot("runs").await;
    b.close().await;
}
