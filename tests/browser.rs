//! The web UI in a real headless Chromium driven over WebDriver (chromedriver), as a
//! salesperson or operator would use it. Needs Debian's `chromium` and
//! `chromium-driver`: `scripts/ensure-chromium` installs them; without them every test
//! here fails with one line saying so, rather than passing without a browser.
//!
//! Screenshots land in `target/screenshots/` (also on failure) so a reviewer can see
//! what the browser saw.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use partner_center_sync::config::Config;
use partner_center_sync::daemon::DaemonHandle;
use partner_center_sync::http::{self, AppState};
use partner_center_sync::metrics::Metrics;
use serde_json::{Value, json};
use sqlx::PgPool;

mod support;

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
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
        let (Some(chromium), Some(chromedriver)) =
            (find_program("chromium"), find_program("chromedriver"))
        else {
            panic!(
                "chromium or chromedriver is not installed: run scripts/ensure-chromium (as root) first"
            );
        };
        let port = free_port();
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
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
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

    async fn by_testid(&self, id: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(&format!("[data-testid=\"{id}\"]")))
            .await
            .unwrap_or_else(|e| panic!("no element data-testid={id}: {e}"))
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

impl Drop for Browser {
    fn drop(&mut self) {
        if matches!(self.driver.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// The real router on loopback over a database the test fills.
struct Site {
    base: String,
    db: TestDb,
}

async fn serve(config: Config) -> Site {
    let db = TestDb::new().await;
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(config));
    let state = AppState {
        pool: db.pool.clone(),
        metrics: Metrics::new(),
        config: rx,
        daemon: DaemonHandle::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, http::router(state))
            .await
            .expect("serve");
    });
    Site {
        base: format!("http://{addr}"),
        db,
    }
}

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
    first.click().await.unwrap();
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
    b.client.goto(&format!("{}/", site.base)).await.unwrap();
    b.wait_for("the rows load", &format!("{ROWS}.length === 8"))
        .await;
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "no horizontal scrolling at 360 px");
    b.screenshot("referrals").await;
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
