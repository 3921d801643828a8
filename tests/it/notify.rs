//! Change history and notifications, end to end: the real binary (`run`, `config`,
//! `notify test`) as a child process, the emulator adding and moving referrals, a real
//! PostgreSQL database, and a webhook receiver in this test (axum on 127.0.0.1 port 0)
//! that records every delivery, checks signatures and parses Teams and Slack payloads as
//! those services do (`teams_slack.rs`).

mod teams_slack;

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use partner_center_sync::auth;
use partner_center_sync::config::Config;
use pc_emulator::{Emulator, EmulatorConfig};
use serde_json::Value;
use sha2::Sha256;
use support::{Daemon, TestDb, wait_for};

/// The HMAC key of the `json` destinations.
const HMAC_KEY: &str = "test-hmac-key-5d1c0b7e";
/// Part of every webhook URL: it must never show in logs or `config show`.
const URL_SECRET: &str = "webhook-secret-path-8f3a91";

/// One request the receiver saw, and what it answered (0: no answer, the test hung it).
#[derive(Clone, Debug)]
struct Hit {
    destination: String,
    headers: HeaderMap,
    body: Bytes,
    answered: u16,
}

impl Hit {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// The webhook receiver: answers 500 while `fail_next` > 0, never answers while `hang`.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    fail_next: Arc<AtomicU32>,
    hang: Arc<AtomicBool>,
    base: String,
}

async fn receive(
    State(r): State<Receiver>,
    Path((destination, _secret)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut hit = Hit {
        destination,
        headers,
        body,
        answered: 0,
    };
    if r.hang.load(Ordering::SeqCst) {
        r.hits.lock().expect("hits").push(hit);
        tokio::time::sleep(Duration::from_secs(120)).await;
        return StatusCode::OK;
    }
    let fail = r
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    hit.answered = status.as_u16();
    r.hits.lock().expect("hits").push(hit);
    status
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let mut r = Receiver {
            base: format!("http://{}", listener.local_addr().expect("addr")),
            ..Receiver::default()
        };
        let app = axum::Router::new()
            .route("/hook/{destination}/{secret}", axum::routing::post(receive))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r.base = r.base.clone();
        r
    }

    fn url(&self, destination: &str) -> String {
        format!("{}/hook/{destination}/{URL_SECRET}", self.base)
    }

    /// Deliveries `destination` accepted (answered 200).
    fn delivered(&self, destination: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .expect("hits")
            .iter()
            .filter(|h| h.destination == destination && h.answered == 200)
            .cloned()
            .collect()
    }

    fn all(&self, destination: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .expect("hits")
            .iter()
            .filter(|h| h.destination == destination)
            .cloned()
            .collect()
    }

    /// Accepted deliveries of `event`, as JSON bodies (json destinations).
    fn events(&self, destination: &str, event: &str) -> Vec<Value> {
        self.delivered(destination)
            .iter()
            .filter(|h| h.header("x-pcs-event") == event)
            .map(Hit::json)
            .collect()
    }
}

/// The emulator, a database, a signed-in token cache, the receiver and a config file.
struct Setup {
    emulator: Emulator,
    db: TestDb,
    dir: tempfile::TempDir,
    cache: PathBuf,
    receiver: Receiver,
}

impl Setup {
    async fn new(referrals: usize) -> Setup {
        let s = Setup::signed_out(referrals).await;
        let config = Config {
            enabled: true,
            client_id: Some(s.emulator.client_id()),
            tenant_id: Some(s.emulator.tenant_id()),
            authority_url: url::Url::parse(&s.emulator.authority_url()).expect("url"),
            api_url: url::Url::parse(&s.emulator.api_url()).expect("url"),
            token_cache: s.cache.clone(),
            ..Config::default()
        };
        auth::login(&config, false).await.expect("sign-in succeeds");
        s
    }

    /// Everything but the sign-in.
    async fn signed_out(referrals: usize) -> Setup {
        let emulator = Emulator::start(EmulatorConfig {
            referrals,
            auto_approve_after: Some(0),
            device_code_interval_secs: 0,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("state").join("msal_token_cache.json");
        let s = Setup {
            emulator,
            db: TestDb::new().await,
            dir,
            cache,
            receiver: Receiver::start().await,
        };
        std::fs::write(s.dir.path().join("hmac_key"), HMAC_KEY).expect("write the HMAC key");
        s
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// `tables` are `[[notify]]` tables; each `url_env = "URL_<NAME>"` is set by `env`.
    fn write_config(&self, settings: &str, tables: &str) {
        std::fs::write(
            self.config_path(),
            format!("enabled = true\nsync_interval = 3600\npublic_url = \"https://sync.example/\"\n{settings}\n{tables}"),
        )
        .expect("write config");
    }

    fn env(&self, port: u16) -> Vec<(String, String)> {
        let mut env = support::connection_env(&self.emulator, &self.db, &self.cache, port);
        env.extend([
            // Also the delivery lease: a delivery cut short is retried 3 + 5 s later.
            ("HUNTER_PARTNER_CENTER_HTTP_TIMEOUT".into(), "3".into()),
            (
                "CREDENTIALS_DIRECTORY".into(),
                self.dir.path().display().to_string(),
            ),
        ]);
        for name in ["all", "teams", "slack", "filtered", "hook"] {
            env.push((
                format!("URL_{}", name.to_uppercase()),
                self.receiver.url(name),
            ));
        }
        env
    }

    async fn spawn(&self) -> Daemon {
        let port = support::free_port();
        let mut cmd = support::command();
        cmd.arg("--config")
            .arg(self.config_path())
            .arg("run")
            .envs(self.env(port));
        Daemon::start(cmd, port).await
    }

    /// The binary with this setup's environment, for one-shot commands; awaited, so the
    /// receiver on this test's runtime can answer it.
    async fn command(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = support::command();
        cmd.arg("--config")
            .arg(self.config_path())
            .args(args)
            .envs(self.env(1));
        tokio::process::Command::from(cmd)
            .output()
            .await
            .expect("run the binary")
    }
}

/// What these tests ask the daemon over HTTP.
impl Daemon {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Triggers a run and waits until `n` runs have succeeded in all.
    async fn sync(&self, n: i64) {
        let r = self
            .http
            .post(self.url("/api/v1/partner-center/referrals/sync"))
            .send()
            .await
            .expect("POST trigger");
        assert_eq!(r.status(), 202, "{}", self.log_tail());
        wait_for!(self, 60, format!("{n} succeeded runs"), {
            let (_, runs) = self
                .get("/api/v1/partner-center/sync-runs?status=succeeded")
                .await;
            (runs["total"].as_i64().unwrap_or(0) >= n).then_some(())
        });
    }
}

/// `X-PCS-Signature` is `sha256=` HMAC-SHA256 of `<X-PCS-Timestamp>.<body>`.
fn verify_signature(hit: &Hit) {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(HMAC_KEY.as_bytes()).expect("key");
    mac.update(hit.header("x-pcs-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&hit.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        hit.header("x-pcs-signature"),
        expected,
        "the signature verifies"
    );
    let ts: i64 = hit
        .header("x-pcs-timestamp")
        .parse()
        .expect("a Unix timestamp");
    assert!(
        (chrono::Utc::now().timestamp() - ts).abs() < 300,
        "a fresh timestamp"
    );
    assert_eq!(hit.header("x-pcs-delivery-id"), hit.json()["delivery_id"]);
}

fn referral_ids(events: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| {
            e["referral"]["id"]
                .as_str()
                .expect("referral id")
                .to_owned()
        })
        .collect();
    ids.sort();
    ids
}

/// Incoming referrals among `ids`, per the emulator.
fn incoming(s: &Setup, ids: &[String]) -> Vec<String> {
    let mut found: Vec<String> = s
        .emulator
        .truth()
        .iter()
        .filter(|r| ids.iter().any(|id| r["id"] == id.as_str()) && r["direction"] == "Incoming")
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect();
    found.sort();
    found
}

/// A referral's status move from the history: id, old and new status, old and new substatus.
type StatusMove = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

const TABLES: &str = r#"
[[notify]]
name = "all"
format = "json"
url_env = "URL_ALL"
secret_file = "hmac_key"

[[notify]]
name = "teams"
format = "teams"
url_env = "URL_TEAMS"
events = ["referral_new", "referral_status_changed"]

[[notify]]
name = "slack"
format = "slack"
url_env = "URL_SLACK"
events = ["referral_new", "referral_status_changed"]

[[notify]]
name = "filtered"
format = "json"
url_env = "URL_FILTERED"
secret_file = "hmac_key"
events = ["referral_new"]
directions = ["Incoming"]
"#;

#[tokio::test]
async fn the_first_import_is_a_summary_then_each_new_referral_and_status_change_is_notified_once() {
    let s = Setup::new(30).await;
    s.write_config(
        "notify_digest_over = 50\nnotify_expiring_within = \"20d\"",
        TABLES,
    );
    let d = s.spawn().await;
    let r = &s.receiver;

    // The first sync of the empty table: one summary per destination that wants
    // referral_new, no referral_new at all.
    for dest in ["all", "teams", "slack", "filtered"] {
        wait_for!(d, 60, format!("the import summary at {dest}"), {
            (!r.delivered(dest).is_empty()).then_some(())
        });
    }
    let summary = r.events("all", "import_summary");
    assert_eq!(summary.len(), 1, "one summary");
    assert_eq!(summary[0]["imported"], 30);
    assert!(r.events("all", "referral_new").is_empty(), "no flood");
    assert_eq!(r.delivered("teams").len(), 1);

    // New referrals and status changes.
    let added = s.emulator.add_referrals(4);
    let moved = s.emulator.update_referrals(3);
    d.sync(2).await;
    let status_moves: Vec<StatusMove> =
        sqlx::query_as(
            "SELECT referral_id,
                    max(old_value) FILTER (WHERE field = 'status'), max(new_value) FILTER (WHERE field = 'status'),
                    max(old_value) FILTER (WHERE field = 'substatus'), max(new_value) FILTER (WHERE field = 'substatus')
             FROM partner_center_referral_changes
             WHERE field IN ('status', 'substatus') GROUP BY referral_id ORDER BY referral_id",
        )
        .fetch_all(&s.db.pool)
        .await
        .expect("status history");
    assert!(
        !status_moves.is_empty(),
        "the emulator moved some status: {moved:?}"
    );
    let expected_new: Vec<String> = {
        let mut a = added.clone();
        a.sort();
        a
    };
    wait_for!(d, 30, "every new referral and status change at `all`", {
        (referral_ids(&r.events("all", "referral_new")).len() == added.len()
            && r.events("all", "referral_status_changed").len() == status_moves.len())
        .then_some(())
    });
    assert_eq!(referral_ids(&r.events("all", "referral_new")), expected_new);
    for change in r.events("all", "referral_status_changed") {
        let id = change["referral"]["id"].as_str().expect("id");
        let row = status_moves
            .iter()
            .find(|m| m.0 == id)
            .unwrap_or_else(|| panic!("{id} moved in the history"));
        let c = &change["change"];
        // An unchanged status is in the message though not in the history rows.
        let status_now = change["referral"]["status"].as_str().map(str::to_owned);
        let sub_now = change["referral"]["substatus"].as_str().map(str::to_owned);
        assert_eq!(
            c["new_status"].as_str().map(str::to_owned),
            row.2.clone().or(status_now.clone())
        );
        assert_eq!(
            c["new_substatus"].as_str().map(str::to_owned),
            row.4.clone().or(sub_now.clone())
        );
        if row.1.is_some() {
            assert_eq!(c["old_status"].as_str().map(str::to_owned), row.1);
        }
        if row.3.is_some() {
            assert_eq!(c["old_substatus"].as_str().map(str::to_owned), row.3);
        }
        assert_eq!(
            change["referral"]["url"],
            format!("https://sync.example/?referral={id}")
        );
    }
    // The filter: only incoming referrals reach `filtered`.
    let expected_incoming = incoming(&s, &added);
    wait_for!(d, 30, "the filtered destination", {
        (referral_ids(&r.events("filtered", "referral_new")) == expected_incoming).then_some(())
    });

    // Every json delivery is signed; Teams and Slack get what those services accept.
    for hit in r.delivered("all").iter().chain(&r.delivered("filtered")) {
        verify_signature(hit);
    }
    wait_for!(d, 30, "Teams and Slack", {
        (r.delivered("teams").len() == 1 + added.len() + status_moves.len()
            && r.delivered("slack").len() == 1 + added.len() + status_moves.len())
        .then_some(())
    });
    for hit in r.delivered("teams") {
        teams_slack::check_teams(&hit.json());
    }
    for hit in r.delivered("slack") {
        teams_slack::check_slack(&hit.json());
    }

    // Expiring: the incoming ones just added expire in 14 days, inside the 20-day window;
    // another run sees them again and sends nothing more.
    let expiring_before = referral_ids(&r.events("all", "referral_expiring"));
    for id in &expected_incoming {
        assert!(
            expiring_before.contains(id),
            "{id} announced as expiring: {expiring_before:?}"
        );
    }
    d.sync(3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expiring_after = referral_ids(&r.events("all", "referral_expiring"));
    assert_eq!(
        expiring_after, expiring_before,
        "once per referral and window"
    );
    let unique: BTreeSet<&String> = expiring_after.iter().collect();
    assert_eq!(unique.len(), expiring_after.len(), "never twice");

    // History through the API: created first, then the status move.
    let (status, body) = d
        .get(&format!(
            "/api/v1/partner-center/referrals/{}/changes",
            status_moves[0].0
        ))
        .await;
    assert_eq!(status, 200);
    let items = body["items"].as_array().expect("items");
    assert_eq!(items[0]["field"], "created");
    assert!(
        items
            .iter()
            .any(|i| i["field"] == "status" || i["field"] == "substatus")
    );
    let (status, feed) = d.get("/api/v1/partner-center/changes?limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(feed["items"].as_array().map(Vec::len), Some(5));
    let cursor = feed["next_cursor"].as_str().expect("more pages").to_owned();
    let (_, next) = d
        .get(&format!(
            "/api/v1/partner-center/changes?limit=1000&cursor={cursor}"
        ))
        .await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM partner_center_referral_changes")
        .fetch_one(&s.db.pool)
        .await
        .expect("count");
    assert_eq!(
        next["items"].as_array().map(Vec::len),
        Some(total as usize - 5)
    );
    // The last page still gives its position, so a poller keeps it and sees only what
    // is recorded after; an empty page hands the same position back.
    let last = next["next_cursor"]
        .as_str()
        .expect("a short page's position");
    let (_, after) = d
        .get(&format!("/api/v1/partner-center/changes?cursor={last}"))
        .await;
    assert_eq!(after["items"].as_array().map(Vec::len), Some(0));
    assert_eq!(after["next_cursor"], last);
    for (query, param) in [
        ("since=yesterday", "since"),
        ("cursor=abc", "cursor"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = d
            .get(&format!("/api/v1/partner-center/changes?{query}"))
            .await;
        assert_eq!(status, 400, "{query}");
        assert!(
            body["error"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("`{param}`")),
            "{body}"
        );
    }
    let (status, _) = d
        .get("/api/v1/partner-center/referrals/no-such-id/changes")
        .await;
    assert_eq!(status, 404);

    // The notifications list and health name destinations, never their URLs.
    let list = wait_for!(d, 30, "every notification delivered", {
        let (status, list) = d
            .get("/api/v1/partner-center/notifications?limit=500")
            .await;
        assert_eq!(status, 200);
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["state"] == "delivered")
            .then_some(list)
    });
    let names: Vec<&str> = list["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .map(|x| x["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["all", "teams", "slack", "filtered"]);
    let (_, health) = d.get("/healthz").await;
    assert_eq!(health["notifications"]["healthy"], true);
    for text in [list.to_string(), health.to_string(), d.log_text()] {
        assert!(!text.contains(URL_SECRET), "a webhook URL leaked:\n{text}");
    }
    let shown = s.command(&["config", "show"]).await;
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("notify[0].url = \"[redacted]\""), "{shown}");
    assert!(
        shown.contains("notify[3].directions = [\"Incoming\"]"),
        "{shown}"
    );
    assert!(
        !shown.contains(URL_SECRET) && !shown.contains(HMAC_KEY),
        "{shown}"
    );
}

#[tokio::test]
async fn more_events_than_the_threshold_arrive_as_one_digest() {
    let s = Setup::new(10).await;
    s.write_config(
        "notify_digest_over = 3\nnotify_expiring_within = \"1s\"",
        "[[notify]]\nname = \"all\"\nformat = \"json\"\nurl_env = \"URL_ALL\"\nsecret_file = \"hmac_key\"\n",
    );
    let d = s.spawn().await;
    let r = &s.receiver;
    wait_for!(d, 60, "the import summary", {
        (!r.events("all", "import_summary").is_empty()).then_some(())
    });
    let added = s.emulator.add_referrals(6);
    d.sync(2).await;
    let digest = wait_for!(
        d,
        30,
        "a digest",
        r.events("all", "digest").into_iter().next()
    );
    assert_eq!(digest["count"], 6, "{digest}");
    assert_eq!(digest["events"]["referral_new"], 6);
    assert_eq!(
        referral_ids(&digest["items"].as_array().expect("items").clone()),
        {
            let mut a = added.clone();
            a.sort();
            a
        }
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        r.events("all", "referral_new").is_empty(),
        "no single messages besides"
    );
    assert_eq!(r.events("all", "digest").len(), 1);
}

#[tokio::test]
async fn deliveries_are_retried_after_500s_and_after_sigkill_mid_delivery() {
    let s = Setup::new(5).await;
    s.write_config(
        "notify_unhealthy_after = 2\nnotify_expiring_within = \"1s\"",
        "[[notify]]\nname = \"hook\"\nformat = \"json\"\nurl_env = \"URL_HOOK\"\nsecret_file = \"hmac_key\"\n",
    );
    let r = &s.receiver;
    r.fail_next.store(4, Ordering::SeqCst);
    let mut d = s.spawn().await;

    // Three 500s: unhealthy after the second, the backlog kept, then delivered.
    wait_for!(d, 30, "an unhealthy destination in /healthz", {
        let (_, h) = d.get("/healthz").await;
        (h["notifications"]["destinations"][0]["healthy"] == false).then_some(())
    });
    let metrics = d
        .http
        .get(d.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("partner_center_sync_notifications_pending{destination=\"hook\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "partner_center_sync_notifications_destination_healthy{destination=\"hook\"} 0"
        ),
        "{metrics}"
    );
    support::promtool_check_metrics(&metrics);
    wait_for!(d, 30, "the summary after the 500s", {
        (r.delivered("hook").len() == 1).then_some(())
    });
    let tries = r.all("hook");
    assert_eq!(tries.len(), 5);
    let ids: BTreeSet<String> = tries
        .iter()
        .map(|h| h.header("x-pcs-delivery-id"))
        .collect();
    assert_eq!(ids.len(), 1, "every retry carries the same delivery id");
    wait_for!(d, 10, "healthy again", {
        let (_, h) = d.get("/healthz").await;
        (h["notifications"]["destinations"][0]["healthy"] == true).then_some(())
    });
    let metrics = d
        .http
        .get(d.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("partner_center_sync_notifications_failed_total{destination=\"hook\"} 4"),
        "{metrics}"
    );

    // SIGKILL while the receiver holds a delivery: after a restart every event arrives.
    r.hang.store(true, Ordering::SeqCst);
    let added = s.emulator.add_referrals(3);
    d.sync(2).await;
    wait_for!(d, 30, "a delivery in flight", {
        (r.all("hook").len() > tries.len()).then_some(())
    });
    d.kill();
    r.hang.store(false, Ordering::SeqCst);
    let d = s.spawn().await;
    wait_for!(d, 60, "every new referral after the restart", {
        let got: BTreeSet<String> = referral_ids(&r.events("hook", "referral_new"))
            .into_iter()
            .collect();
        (got.len() == added.len()).then_some(())
    });
    let mut by_referral: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for hit in r
        .all("hook")
        .iter()
        .filter(|h| h.header("x-pcs-event") == "referral_new")
    {
        let id = hit.json()["referral"]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        by_referral
            .entry(id)
            .or_default()
            .insert(hit.header("x-pcs-delivery-id"));
    }
    let mut expected = added.clone();
    expected.sort();
    assert_eq!(by_referral.keys().cloned().collect::<Vec<_>>(), expected);
    for (id, ids) in &by_referral {
        assert_eq!(
            ids.len(),
            1,
            "{id}: a duplicate carries the same delivery id"
        );
    }
    for hit in r.delivered("hook") {
        verify_signature(&hit);
    }
}

#[tokio::test]
async fn notify_test_sends_a_sample_of_each_event_and_bad_tables_exit_78() {
    let s = Setup::new(1).await;
    s.write_config("", TABLES);
    for dest in ["teams", "slack", "all"] {
        let out = s.command(&["notify", "test", dest]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all_out = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all_out.contains(URL_SECRET), "{all_out}");
        assert_eq!(s.receiver.delivered(dest).len(), 6, "{dest}: one per event");
    }
    for hit in s.receiver.delivered("teams") {
        teams_slack::check_teams(&hit.json());
    }
    for hit in s.receiver.delivered("slack") {
        teams_slack::check_slack(&hit.json());
    }
    for hit in s.receiver.delivered("all") {
        verify_signature(&hit);
        // Each sample carries what the README's event table says the event carries.
        let body = hit.json();
        let carries: &[&str] = match hit.header("x-pcs-event").as_str() {
            "referral_status_changed" => &["referral", "change"],
            "referral_expiring" => &["referral", "window_seconds"],
            "sign_in_required" => &["reason", "last_success_at"],
            "sync_stale" => &["last_success_at", "stale_after_seconds"],
            _ => &["referral"],
        };
        for key in carries {
            assert!(body.get(*key).is_some(), "{key} in {body}");
        }
        if body["event"] == "referral_status_changed" {
            assert_eq!(body["referral"]["status"], body["change"]["new_status"]);
        }
    }
    let out = s.command(&["notify", "test", "nowhere"]).await;
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("all, teams, slack, filtered"));

    s.receiver.fail_next.store(100, Ordering::SeqCst);
    let out = s.command(&["notify", "test", "all"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("500") && !err.contains(URL_SECRET), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": failed: ")).count(),
        6,
        "what each sample got back: {stdout}"
    );
    assert!(!stdout.contains(URL_SECRET), "{stdout}");

    s.write_config(
        "",
        "[[notify]]\nname = \"x\"\nformat = \"telegram\"\nurl_env = \"NOT_SET_ANYWHERE\"\n",
    );
    let out = s.command(&["config", "check"]).await;
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notify[0].format")
            && err.contains("notify[0].url_env")
            && err.contains("NOT_SET_ANYWHERE"),
        "{err}"
    );
}

fn referral(
    id: &str,
    status: &str,
    substatus: &str,
    value: &str,
    team: &str,
    note: &str,
) -> partner_center_sync::store::referrals::ReferralRow {
    let json = format!(
        r#"{{"id":"{id}","name":"Deal {id}","status":"{status}","substatus":"{substatus}","updatedDateTime":"2026-01-01T00:00:00Z","expirationDateTime":"2026-02-01T00:00:00Z","notes":"{note}","team":[{{"email":"{team}"}}],"details":{{"dealValue":{value},"currency":"EUR"}}}}"#
    );
    partner_center_sync::sync::extract::extract(
        serde_json::value::RawValue::from_string(json).expect("json"),
    )
    .expect("usable")
    .row
}

#[tokio::test]
async fn history_has_one_created_row_each_tracked_change_and_missing_and_returned() {
    use partner_center_sync::store::{history, referrals};
    let db = TestDb::new().await;
    let pool = &db.pool;
    let write = |rows: Vec<_>, run: i64, full: bool, mark: bool| async move {
        let t = sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("SELECT now()")
            .fetch_one(pool)
            .await
            .expect("now");
        let mut tx = pool.begin().await.expect("tx");
        let out = referrals::upsert(&mut tx, &rows, t, Some(run), full)
            .await
            .expect("upsert");
        if mark {
            referrals::mark_missing(&mut tx, t, Some(run))
                .await
                .expect("mark");
        }
        tx.commit().await.expect("commit");
        out
    };
    let a1 = referral("a", "New", "Pending", "100", "ana@p.example", "x");
    let b1 = referral("b", "New", "Pending", "5", "bo@p.example", "x");
    write(vec![a1.clone(), b1.clone()], 1, true, false).await;
    // Only an untracked field moves: no history row, though the row is updated.
    let a_note = referral("a", "New", "Pending", "100", "ana@p.example", "y");
    let out = write(vec![a_note], 2, false, false).await;
    assert_eq!(out.updated, 1);
    let a2 = referral("a", "Active", "Accepted", "250.5", "cy@p.example", "y");
    let out = write(vec![a2.clone()], 3, true, true).await;
    assert_eq!(out.status_changes.len(), 1);
    write(vec![a2, b1], 4, true, true).await;

    let shown =
        |rows: Vec<history::ChangeRow>| -> Vec<(i64, String, Option<String>, Option<String>)> {
            rows.into_iter()
                .map(|c| (c.run_id.unwrap_or(0), c.field, c.old, c.new))
                .collect()
        };
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        shown(history::for_referral(pool, "a").await.expect("a")),
        [
            (1, "created".into(), None, s("New")),
            (3, "status".into(), s("New"), s("Active")),
            (3, "substatus".into(), s("Pending"), s("Accepted")),
            (3, "deal_value".into(), s("100"), s("250.5")),
            (3, "team".into(), s("ana@p.example"), s("cy@p.example")),
        ]
    );
    assert_eq!(
        shown(history::for_referral(pool, "b").await.expect("b")),
        [
            (1, "created".into(), None, s("New")),
            (3, "missing".into(), None, None),
            (4, "returned".into(), None, None),
        ]
    );
    let page = history::page(pool, None, 0, 3).await.expect("page");
    assert_eq!(page.len(), 3);
    let rest = history::page(pool, None, page[2].id, 100)
        .await
        .expect("rest");
    assert_eq!(rest.len(), 5);
}

#[tokio::test]
async fn without_a_sign_in_the_operator_hears_sign_in_required_and_then_sync_stale_once() {
    let s = Setup::signed_out(3).await;
    s.write_config(
        "notify_stale_after = \"1s\"",
        "[[notify]]\nname = \"hook\"\nformat = \"json\"\nurl_env = \"URL_HOOK\"\nsecret_file = \"hmac_key\"\nevents = [\"sign_in_required\", \"sync_stale\"]\n",
    );
    let d = s.spawn().await;
    let r = &s.receiver;
    let sign_in = wait_for!(d, 30, "sign_in_required", {
        r.events("hook", "sign_in_required").into_iter().next()
    });
    assert!(
        sign_in["reason"].as_str().is_some_and(|t| !t.is_empty()),
        "{sign_in}"
    );
    let stale = wait_for!(
        d,
        30,
        "sync_stale",
        r.events("hook", "sync_stale").into_iter().next()
    );
    assert_eq!(stale["last_success_at"], Value::Null);
    // Later checks and failed runs of the same spell send nothing more.
    let (status, _) = d.get("/healthz").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(r.events("hook", "sync_stale").len(), 1);
    assert_eq!(r.events("hook", "sign_in_required").len(), 1);
    for hit in r.delivered("hook") {
        verify_signature(&hit);
    }
}
