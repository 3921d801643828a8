//! `partner-center-sync run` as systemd runs it: the real binary as a child process,
//! configured through its environment and a TOML file, against the emulator and a real
//! PostgreSQL database, steered with signals and HTTP, watched through its JSON logs,
//! its `NOTIFY_SOCKET` messages and the `partner_center_sync_runs` table.

use crate::support;

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use partner_center_sync::auth;
use partner_center_sync::config::Config;
use pc_emulator::{Emulator, EmulatorConfig, FaultSpec, PathKind};
use serde_json::Value;
use sqlx::PgPool;
use support::{Daemon, TestDb, wait_for};

const API_TOKEN: &str = "daemon-test-token-0123456789";

/// The emulator, a fresh database, a temp dir with a signed-in token cache.
struct Setup {
    emulator: Emulator,
    db: TestDb,
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Setup {
    async fn new(referrals: usize, faults: &str) -> Setup {
        let emulator = Emulator::start(EmulatorConfig {
            referrals,
            faults: FaultSpec::parse(faults).expect("fault spec parses"),
            auto_approve_after: Some(0),
            device_code_interval_secs: 0,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("state").join("msal_token_cache.json");
        let db = TestDb::new().await;
        Setup {
            emulator,
            db,
            dir,
            cache,
        }
    }

    /// Signs in through the emulator's device-code flow, as `partner-center-sync login` does.
    async fn login(&self) {
        let config = Config {
            enabled: true,
            client_id: Some(self.emulator.client_id()),
            tenant_id: Some(self.emulator.tenant_id()),
            authority_url: url::Url::parse(&self.emulator.authority_url()).expect("url"),
            api_url: url::Url::parse(&self.emulator.api_url()).expect("url"),
            token_cache: self.cache.clone(),
            ..Config::default()
        };
        auth::login(&config, false).await.expect("sign-in succeeds");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Replaces the config file the daemon reads (at start and on SIGHUP).
    fn write_config(&self, body: &str) {
        std::fs::write(self.config_path(), body).expect("write config file");
    }

    /// The daemon's environment: connection settings only; the schedule, the flag and
    /// everything a test reloads live in the config file.
    fn env(&self, port: u16) -> Vec<(String, String)> {
        let mut env = support::connection_env(&self.emulator, &self.db, &self.cache, port);
        env.push(("HUNTER_PARTNER_CENTER_HTTP_TIMEOUT".into(), "30".into()));
        env
    }

    async fn spawn(&self) -> Daemon {
        self.spawn_with(&[], None).await
    }

    /// `extra_env` is added to [`Setup::env`]; `notify` is a test `NOTIFY_SOCKET` whose
    /// `WATCHDOG_PID` is set to the daemon's own pid, as systemd does.
    async fn spawn_with(&self, extra_env: &[(&str, &str)], notify: Option<&Path>) -> Daemon {
        let port = support::free_port();
        let mut cmd = support::command();
        match notify {
            // systemd sets WATCHDOG_PID to the service's pid; `exec` keeps the shell's
            // pid, so `$$` is the daemon's own pid.
            Some(_) => {
                cmd = std::process::Command::new("/bin/sh");
                for (k, _) in std::env::vars() {
                    if k.starts_with("HUNTER_PARTNER_CENTER_")
                        || [
                            "DATABASE_URL",
                            "RUST_LOG",
                            "CREDENTIALS_DIRECTORY",
                            "STATE_DIRECTORY",
                            "JOURNAL_STREAM",
                            "WATCHDOG_PID",
                        ]
                        .contains(&k.as_str())
                    {
                        cmd.env_remove(k);
                    }
                }
                cmd.arg("-c")
                    .arg(r#"WATCHDOG_PID=$$ exec "$0" --config "$1" run"#)
                    .arg(support::bin())
                    .arg(self.config_path());
            }
            None => {
                cmd.arg("--config").arg(self.config_path()).arg("run");
            }
        }
        cmd.envs(self.env(port))
            .envs(extra_env.iter().map(|(k, v)| (*k, *v)));
        if let Some(socket) = notify {
            cmd.env("NOTIFY_SOCKET", socket)
                .env("WATCHDOG_USEC", "600000");
        }
        Daemon::start(cmd, port).await
    }

    fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

/// What these tests ask the daemon over HTTP.
impl Daemon {
    async fn health(&self) -> Value {
        let r = self
            .http
            .get(self.url("/healthz"))
            .send()
            .await
            .expect("GET /healthz");
        assert_eq!(
            r.status(),
            200,
            "/healthz answers 200 while the process lives"
        );
        r.json().await.expect("health JSON")
    }

    async fn trigger(&self, token: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url("/api/v1/partner-center/referrals/sync"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("POST trigger");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    async fn get_status(&self, path: &str, token: Option<&str>) -> u16 {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("GET").status().as_u16()
    }

    async fn metrics(&self) -> String {
        let r = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(r.status(), 200);
        r.text().await.expect("metrics text")
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
struct Run {
    id: i64,
    trigger: String,
    status: String,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    pages: i32,
    fetched: i32,
    inserted: i32,
    pid: Option<i32>,
    error: Option<String>,
}

async fn runs(pool: &PgPool) -> Vec<Run> {
    sqlx::query_as(
        "SELECT id, trigger, status, started_at, finished_at, pages, fetched, inserted, pid, error
         FROM partner_center_sync_runs ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("read partner_center_sync_runs")
}

async fn db_now(pool: &PgPool) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(pool)
        .await
        .expect("now()")
}

/// No two runs that started were ever in progress at the same time.
fn assert_no_overlap(rows: &[Run]) {
    let mut started: Vec<&Run> = rows.iter().filter(|r| r.started_at.is_some()).collect();
    started.sort_by_key(|r| r.started_at);
    for pair in started.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let a_end = a.finished_at.unwrap_or_else(|| {
            panic!(
                "run {} is unfinished yet run {} started after it",
                a.id, b.id
            )
        });
        assert!(
            a_end <= b.started_at.expect("started"),
            "runs overlap: {a:?} and {b:?}"
        );
    }
}

fn succeeded(rows: &[Run]) -> usize {
    rows.iter().filter(|r| r.status == "succeeded").count()
}

/// A counter or gauge sample's value from the Prometheus text, by its exact label set.
fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn api_requests(emulator: &Emulator) -> u64 {
    let s = emulator.stats();
    s.requests_to(PathKind::ReferralList) + s.requests_to(PathKind::ReferralGet)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_follow_the_interval_never_overlap_and_coalesce_ticks() {
    // The start-up run's one request takes 5 s, spanning about five 1 s ticks.
    let s = Setup::new(100, "slow:every=1:ms=5000").await;
    s.login().await;
    s.write_config("enabled = true\nsync_interval = 1\nsync_on_startup = true\n");
    let d = s.spawn().await;
    let pool = s.pool();

    wait_for!(d, 30, "the start-up run's request to be slowed down", {
        (s.emulator.stats().faults("slow") >= 1).then_some(())
    });
    // From now on requests are fast: only the start-up run is slow.
    s.emulator.set_faults(FaultSpec::default());
    let slow = wait_for!(d, 30, "the slow start-up run to finish", {
        runs(pool)
            .await
            .into_iter()
            .find(|r| r.trigger == "startup" && r.finished_at.is_some())
    });
    assert_eq!(slow.status, "succeeded", "{slow:?}");
    let slow_end = slow.finished_at.expect("finished");
    let slow_secs = (slow_end - slow.started_at.expect("started")).num_milliseconds();
    assert!(
        slow_secs >= 4000,
        "the start-up run was slow: {slow_secs} ms"
    );

    // Observe a window of 4 s after the slow run, on the database's clock.
    let window = chrono::Duration::seconds(4);
    wait_for!(d, 30, "4 s to pass after the slow run", {
        (db_now(pool).await > slow_end + window + chrono::Duration::milliseconds(500)).then_some(())
    });
    let rows = runs(pool).await;
    assert_no_overlap(&rows);
    assert!(
        rows.iter()
            .all(|r| r.status != "skipped" && r.status != "failed"),
        "one daemon never skips or fails its own runs: {rows:?}"
    );
    let after: Vec<&Run> = rows
        .iter()
        .filter(|r| {
            r.started_at
                .is_some_and(|t| t >= slow_end && t < slow_end + window)
        })
        .collect();
    // About five ticks fired during the slow run; they coalesce into one follow-up.
    // Then one run per tick: a 4 s window holds at most 4 ticks plus the follow-up.
    assert!(
        after.len() <= 5,
        "ticks during the slow run must coalesce into at most one follow-up; runs started in the 4 s after it: {after:?}"
    );
    assert!(
        after.len() >= 2,
        "runs keep coming at the 1 s interval: only {} in the 4 s after the slow run",
        after.len()
    );
    assert!(after.iter().all(|r| r.trigger == "schedule"), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_flag_off_ticks_are_skipped_and_nothing_is_fetched() {
    let s = Setup::new(100, "").await;
    s.login().await;
    let before = s.emulator.stats();
    s.write_config("enabled = false\nsync_interval = 1\nsync_on_startup = true\n");
    let d = s.spawn().await;

    wait_for!(d, 20, "two feature_flag_disabled log records", {
        (d.events("feature_flag_disabled").len() >= 2).then_some(())
    });
    let (status, body) = d.trigger(None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("disabled")),
        "{body}"
    );
    let health = d.health().await;
    assert_eq!(health["partner_center_enabled"], false, "{health}");
    let metrics = d.metrics().await;
    assert!(
        metric(&metrics, "partner_center_sync_skipped_runs_total").is_some_and(|n| n >= 2.0),
        "{metrics}"
    );

    assert!(
        runs(s.pool()).await.is_empty(),
        "no partner_center_sync_runs rows"
    );
    let after = s.emulator.stats();
    assert_eq!(api_requests(&s.emulator), 0, "no Partner Center request");
    assert_eq!(
        after.requests_to(PathKind::Token),
        before.requests_to(PathKind::Token),
        "not even a token refresh"
    );

    // Turning the flag on is a reload away.
    s.write_config("enabled = true\nsync_interval = 1\nsync_on_startup = true\n");
    d.signal(libc::SIGHUP);
    let reloaded = wait_for!(d, 20, "config_reloaded", d.events("config_reloaded").pop());
    assert!(
        reloaded["changed"]
            .as_str()
            .is_some_and(|c| c.contains("enabled")),
        "{reloaded}"
    );
    wait_for!(d, 20, "a scheduled run once enabled", {
        (succeeded(&runs(s.pool()).await) >= 1).then_some(())
    });
    assert!(api_requests(&s.emulator) > 0);
    assert_eq!(d.health().await["partner_center_enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_trigger_queues_a_run_that_succeeds_and_shows_in_metrics() {
    // Two pages of 1.5 s each: long enough to trigger again while it runs.
    let s = Setup::new(100, "slow:every=1:ms=1500").await;
    s.login().await;
    s.write_config(
        "enabled = true\nsync_interval = 600\nsync_on_startup = false\npage_size = 50\n",
    );
    let d = s.spawn().await;
    let started = Utc::now();
    assert!(runs(s.pool()).await.is_empty(), "no run before the trigger");

    let (status, body) = d.trigger(None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    let id = body["task_id"].as_i64().expect("task_id is a number");
    let row = runs(s.pool())
        .await
        .into_iter()
        .find(|r| r.id == id)
        .expect("the task id is a partner_center_sync_runs row");
    assert_eq!(row.trigger, "manual");
    assert!(
        ["queued", "running"].contains(&row.status.as_str()),
        "{row:?}"
    );

    // A second trigger names the same run rather than starting another.
    let (status, again) = d.trigger(None).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["task_id"], id, "{again}");
    assert!(
        again["status"] == "queued" || again["status"] == "already_running",
        "{again}"
    );
    wait_for!(d, 20, "the run to be running", {
        runs(s.pool())
            .await
            .iter()
            .any(|r| r.id == id && r.status == "running")
            .then_some(())
    });
    let (status, running) = d.trigger(None).await;
    assert_eq!(status, 202, "{running}");
    assert_eq!(running["task_id"], id, "{running}");
    assert_eq!(running["status"], "already_running", "{running}");

    let done = wait_for!(d, 30, "the triggered run to finish", {
        runs(s.pool())
            .await
            .into_iter()
            .find(|r| r.id == id && r.finished_at.is_some())
    });
    assert_eq!(done.status, "succeeded", "{done:?}");
    assert_eq!(done.fetched, 100);
    let rows = runs(s.pool()).await;
    assert_eq!(
        rows.len(),
        1,
        "triggers during the run made no second run: {rows:?}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM partner_center_referrals")
        .fetch_one(s.pool())
        .await
        .expect("count");
    assert_eq!(stored, 100);

    // The counters move just after the run's last transaction commits.
    let m = wait_for!(d, 10, "the run in /metrics", {
        let m = d.metrics().await;
        metric(
            &m,
            r#"partner_center_sync_runs_total{trigger="manual",status="succeeded"}"#,
        )
        .is_some_and(|n| n == 1.0)
        .then_some(m)
    });
    assert!(
        metric(
            &m,
            r#"partner_center_sync_partner_center_requests_total{status="200"}"#
        )
        .is_some_and(|n| n >= 2.0),
        "{m}"
    );
    let last_success = metric(&m, "partner_center_sync_last_success_timestamp_seconds")
        .expect("last success gauge");
    assert!(
        last_success >= started.timestamp() as f64 - 1.0,
        "last success {last_success} is after the daemon started ({started}): {m}"
    );
    let health = d.health().await;
    assert_eq!(health["last_run"]["id"], id, "{health}");
    assert!(health["last_success_at"].is_string(), "{health}");

    // Referrals by status: the gauge equals the table, status by status.
    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM partner_center_referrals GROUP BY 1")
            .fetch_all(s.pool())
            .await
            .expect("counts");
    assert!(by_status.len() > 1, "the dataset has several statuses");
    for (status, n) in by_status {
        let series = format!("partner_center_sync_referrals{{status=\"{status}\"}}");
        assert_eq!(metric(&m, &series), Some(n as f64), "{series} in {m}");
    }
    assert!(
        metric(&m, "process_resident_memory_bytes").is_some_and(|n| n > 0.0),
        "{m}"
    );
    assert!(
        m.contains("partner_center_sync_partner_center_request_duration_seconds_count"),
        "{m}"
    );
    support::promtool_check_metrics(&m);

    // Prometheus asks for OpenMetrics and gets it, `# EOF` terminator included.
    let r = d
        .http
        .get(d.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .expect("GET /metrics as Prometheus does");
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let open_metrics = r.text().await.expect("body");
    assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
    assert!(open_metrics.contains("# TYPE partner_center_sync_runs counter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_interval_from_the_config_file() {
    let s = Setup::new(20, "").await;
    s.login().await;
    s.write_config("enabled = true\nsync_interval = 300\nsync_on_startup = false\n");
    let d = s.spawn().await;
    assert_eq!(d.health().await["sync_interval_seconds"], 300);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(runs(s.pool()).await.is_empty(), "no run before the reload");

    s.write_config("enabled = true\nsync_interval = 1\nsync_on_startup = false\n");
    d.signal(libc::SIGHUP);
    let reloaded = wait_for!(d, 20, "config_reloaded", d.events("config_reloaded").pop());
    assert!(
        reloaded["changed"]
            .as_str()
            .is_some_and(|c| c.contains("sync_interval")),
        "config_reloaded names sync_interval: {reloaded}"
    );
    wait_for!(d, 20, "three scheduled runs at the new 1 s interval", {
        (succeeded(&runs(s.pool()).await) >= 3).then_some(())
    });
    let rows = runs(s.pool()).await;
    assert!(rows.iter().all(|r| r.trigger == "schedule"), "{rows:?}");
    assert_no_overlap(&rows);
    assert_eq!(d.health().await["sync_interval_seconds"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config_keeps_the_running_one() {
    let s = Setup::new(20, "").await;
    s.login().await;
    let good = "enabled = true\nsync_interval = 1\nsync_on_startup = false\n";
    s.write_config(good);
    let mut d = s.spawn().await;
    wait_for!(d, 20, "a first scheduled run", {
        (succeeded(&runs(s.pool()).await) >= 1).then_some(())
    });

    s.write_config("enabled = true\nsync_interval = \"soon\"\npage_size = 1000\n");
    d.signal(libc::SIGHUP);
    let failed = wait_for!(
        d,
        20,
        "config_reload_failed",
        d.events("config_reload_failed").pop()
    );
    let problems = failed["problems"].to_string();
    assert!(
        problems.contains("sync_interval") && problems.contains("page_size"),
        "every problem is logged: {failed}"
    );
    assert!(
        d.events("config_reloaded").is_empty(),
        "nothing was applied"
    );
    assert!(d.is_running(), "the daemon keeps running");
    let health = d.health().await;
    assert_eq!(health["sync_interval_seconds"], 1, "{health}");
    assert_eq!(health["partner_center_enabled"], true, "{health}");

    // The old schedule still fires.
    let before = succeeded(&runs(s.pool()).await);
    wait_for!(d, 20, "two more runs on the old 1 s schedule", {
        (succeeded(&runs(s.pool()).await) >= before + 2).then_some(())
    });
    assert!(d.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_sync_exits_cleanly_and_the_next_run_completes() {
    // Five pages of 20, each served after 1.5 s.
    let s = Setup::new(100, "slow:every=1:ms=1500").await;
    s.login().await;
    s.write_config(
        "enabled = true\nsync_interval = 600\nsync_on_startup = true\npage_size = 20\nshutdown_grace = 3\n",
    );
    let mut d = s.spawn().await;
    wait_for!(d, 30, "two pages of the start-up run to commit", {
        runs(s.pool())
            .await
            .iter()
            .any(|r| r.status == "running" && r.pages >= 2)
            .then_some(())
    });
    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(20).await;
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}\n{}", d.log_tail());
    assert!(
        took < Duration::from_secs(3 + 2),
        "exited {took:?} after SIGTERM; the grace period is 3 s"
    );
    assert!(!d.events("shutdown_started").is_empty(), "{}", d.log_tail());

    let rows = runs(s.pool()).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let run = &rows[0];
    assert!(
        run.status == "cancelled" || run.status == "succeeded",
        "the interrupted run is closed, not left running: {run:?}"
    );
    assert!(run.finished_at.is_some(), "{run:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM partner_center_referrals")
        .fetch_one(s.pool())
        .await
        .expect("count");
    assert_eq!(
        stored,
        i64::from(run.inserted),
        "the table holds exactly the committed pages' rows: {run:?}"
    );
    assert_eq!(stored % 20, 0, "whole pages only: {stored}");
    assert_eq!(i64::from(run.fetched), i64::from(run.pages) * 20, "{run:?}");
    drop(d);

    // The next daemon finishes the job and matches the emulator.
    s.emulator.set_faults(FaultSpec::default());
    let d = s.spawn().await;
    let next = wait_for!(d, 30, "the next start-up run to finish", {
        runs(s.pool())
            .await
            .into_iter()
            .find(|r| r.id != run.id && r.finished_at.is_some())
    });
    assert_eq!(next.status, "succeeded", "{next:?}");
    let stored: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT id, etag FROM partner_center_referrals WHERE missing_since IS NULL ORDER BY id",
    )
    .fetch_all(s.pool())
    .await
    .expect("referrals");
    let truth: Vec<(String, Option<String>)> = s
        .emulator
        .truth()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id").to_owned(),
                r["eTag"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let mut truth = truth;
    truth.sort();
    assert_eq!(stored, truth, "the table equals the emulator's truth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_reloading_watchdog_status_and_stopping() {
    let s = Setup::new(20, "").await;
    s.login().await;
    let socket_path = s.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind NOTIFY_SOCKET");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = messages.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends when the test drops `sink`'s peer (the Arc count falls to one).
        while Arc::strong_count(&sink) > 1 {
            if let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().expect("lock").push(text);
            }
        }
    });
    let seen = |prefix: &str| -> usize {
        messages
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| m.lines().any(|l| l.starts_with(prefix)))
            .count()
    };

    s.write_config("enabled = true\nsync_interval = 300\nsync_on_startup = true\n");
    let mut d = s.spawn_with(&[], Some(&socket_path)).await;
    wait_for!(d, 20, "READY=1", (seen("READY=1") >= 1).then_some(()));
    wait_for!(
        d,
        20,
        "WATCHDOG=1 pings (WATCHDOG_USEC=600000, WATCHDOG_PID = the daemon)",
        (seen("WATCHDOG=1") >= 3).then_some(())
    );
    wait_for!(
        d,
        20,
        "STATUS= with the start-up run's summary",
        messages
            .lock()
            .expect("lock")
            .iter()
            .any(|m| m.contains("STATUS=Last sync #1 succeeded"))
            .then_some(())
    );

    // A good reload, then a rejected one: RELOADING=1 with MONOTONIC_USEC, then READY=1, each time.
    s.write_config("enabled = true\nsync_interval = 200\nsync_on_startup = true\n");
    d.signal(libc::SIGHUP);
    wait_for!(
        d,
        20,
        "READY=1 after the first reload",
        (seen("READY=1") >= 2).then_some(())
    );
    s.write_config("enabled = maybe\n");
    d.signal(libc::SIGHUP);
    wait_for!(
        d,
        20,
        "READY=1 after the rejected reload",
        (seen("READY=1") >= 3).then_some(())
    );
    let log = messages.lock().expect("lock").clone();
    let reloading: Vec<&String> = log.iter().filter(|m| m.contains("RELOADING=1")).collect();
    assert_eq!(reloading.len(), 2, "{log:?}");
    for m in &reloading {
        let usec = m
            .lines()
            .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
            .unwrap_or_else(|| panic!("RELOADING=1 carries MONOTONIC_USEC: {m:?}"));
        assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{m:?}");
    }
    // Each RELOADING=1 is followed by READY=1 before anything else of note.
    let order: Vec<&str> = log
        .iter()
        .filter_map(|m| {
            if m.contains("RELOADING=1") {
                Some("RELOADING")
            } else if m.lines().any(|l| l == "READY=1") {
                Some("READY")
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        order,
        ["READY", "RELOADING", "READY", "RELOADING", "READY"],
        "{log:?}"
    );

    d.signal(libc::SIGTERM);
    let status = d.wait_exit(20).await;
    assert!(status.success(), "{status}");
    assert!(
        seen("STOPPING=1") >= 1,
        "{:?}",
        messages.lock().expect("lock")
    );
    drop(messages);
    reader.join().expect("reader thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_token_guards_the_trigger_and_data_but_not_health() {
    let s = Setup::new(20, "").await;
    s.login().await;
    s.write_config(&format!(
        "enabled = true\nsync_interval = 600\nsync_on_startup = false\napi_token = \"{API_TOKEN}\"\n"
    ));
    let d = s.spawn().await;

    for token in [
        None,
        Some("wrong-token-0123456789abcdef"),
        Some("daemon-test-token"),
    ] {
        let (status, body) = d.trigger(token).await;
        assert_eq!(status, 401, "trigger with {token:?}: {body}");
        for path in [
            "/api/v1/partner-center/referrals",
            "/api/v1/partner-center/companies",
            "/api/v1/partner-center/sync-runs",
        ] {
            assert_eq!(
                d.get_status(path, token).await,
                401,
                "{path} with {token:?}"
            );
        }
    }
    assert!(
        runs(s.pool()).await.is_empty(),
        "a refused trigger creates no run"
    );
    let (status, body) = d.trigger(Some(API_TOKEN)).await;
    assert_eq!(status, 202, "{body}");
    for path in [
        "/api/v1/partner-center/referrals",
        "/api/v1/partner-center/companies",
        "/api/v1/partner-center/sync-runs",
    ] {
        assert_eq!(d.get_status(path, Some(API_TOKEN)).await, 200, "{path}");
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(d.get_status(path, None).await, 200, "{path} stays open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_database_never_sync_at_the_same_time() {
    // Runs (1.5 s to 3 s) are longer than the 1 s interval of both daemons.
    let s = Setup::new(100, "slow:every=1:ms=1500").await;
    s.login().await;
    s.write_config("enabled = true\nsync_interval = 1\nsync_on_startup = true\npage_size = 50\n");
    let mut a = s.spawn().await;
    let mut b = s.spawn().await;
    let pool = s.pool();
    let mut running_max = 0;
    let rows = wait_for!(a, 40, "four succeeded runs and a skipped one", {
        let rows = runs(pool).await;
        running_max = running_max.max(rows.iter().filter(|r| r.status == "running").count());
        (succeeded(&rows) >= 4 && rows.iter().any(|r| r.status == "skipped")).then_some(rows)
    });
    assert_eq!(running_max, 1, "never two runs `running` at once");
    assert_no_overlap(&rows);
    let pids: BTreeSet<i32> = rows.iter().filter_map(|r| r.pid).collect();
    assert!(
        pids.iter().all(|p| *p == a.pid || *p == b.pid),
        "runs come from the two daemons: {pids:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.status == "skipped")
            .all(|r| r.started_at.is_none() && r.error.is_some()),
        "a skipped run never started and says why: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| ["succeeded", "skipped", "running", "queued"].contains(&r.status.as_str())),
        "every run either ran or was skipped; none failed or was cancelled by the other daemon: {rows:?}"
    );
    assert!(a.is_running() && b.is_running());
    assert!(s.emulator.stats().max_concurrent_api_requests <= 1);
}

/// Starts a slow sync of five 20-referral pages, waits for one page to commit, then
/// holds an EXCLUSIVE lock on the referrals table so the next page's transaction blocks
/// inside the database, where the run cannot notice a cancellation.
async fn stuck_in_a_page(s: &Setup, d: &Daemon) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let pool = s.pool();
    wait_for!(d, 30, "the first page to commit", {
        runs(pool)
            .await
            .iter()
            .any(|r| r.status == "running" && r.pages >= 1)
            .then_some(())
    });
    let mut blocker = pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE partner_center_referrals IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock the referrals table");
    wait_for!(
        d,
        30,
        "the daemon's next page to wait for the table lock",
        {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks
             WHERE NOT granted AND relation = 'partner_center_referrals'::regclass",
            )
            .fetch_one(pool)
            .await
            .expect("pg_locks");
            (waiting > 0).then_some(())
        }
    );
    blocker
}

async fn referral_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM partner_center_referrals")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stuck_past_the_grace_period_is_cancelled_and_rolled_back() {
    let s = Setup::new(100, "slow:every=1:ms=1000").await;
    s.login().await;
    s.write_config(
        "enabled = true\nsync_interval = 600\nsync_on_startup = true\npage_size = 20\nshutdown_grace = 2\n",
    );
    let mut d = s.spawn().await;
    let blocker = stuck_in_a_page(&s, &d).await;

    d.signal(libc::SIGTERM);
    let status = d.wait_exit(20).await;
    assert!(status.success(), "exit status {status}\n{}", d.log_tail());
    assert!(
        !d.events("sync_cancelled").is_empty(),
        "the grace period ran out and the run was cancelled\n{}",
        d.log_tail()
    );
    blocker.rollback().await.expect("release the table");

    let rows = runs(s.pool()).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let run = &rows[0];
    assert_eq!(run.status, "cancelled", "{run:?}");
    assert!(run.finished_at.is_some(), "{run:?}");
    assert!(
        run.error.as_deref().is_some_and(|e| e.contains("grace")),
        "{run:?}"
    );
    // The page that was waiting for the lock was rolled back with its counters.
    let stored = referral_count(s.pool()).await;
    assert_eq!(stored, i64::from(run.inserted), "{run:?}");
    assert_eq!(i64::from(run.fetched), i64::from(run.pages) * 20, "{run:?}");
    assert!(stored < 100, "the run did not finish: {stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_exits_at_once_and_the_next_start_recovers() {
    let s = Setup::new(100, "slow:every=1:ms=1000").await;
    s.login().await;
    s.write_config(
        "enabled = true\nsync_interval = 600\nsync_on_startup = true\npage_size = 20\nshutdown_grace = 60\n",
    );
    let mut d = s.spawn().await;
    let blocker = stuck_in_a_page(&s, &d).await;

    d.signal(libc::SIGTERM);
    wait_for!(d, 10, "shutdown_started", {
        (!d.events("shutdown_started").is_empty()).then_some(())
    });
    assert!(
        d.is_running(),
        "the first signal waits for the run (grace 60 s)"
    );
    let signalled = Instant::now();
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(20).await;
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "the second signal does not wait for the 60 s grace period"
    );
    assert!(
        !status.success(),
        "a forced exit is not a clean one: {status}"
    );
    assert!(!d.events("shutdown_forced").is_empty(), "{}", d.log_tail());
    drop(d);
    blocker.rollback().await.expect("release the table");

    // The next daemon closes the abandoned run and completes a run of its own.
    s.emulator.set_faults(FaultSpec::default());
    let d = s.spawn().await;
    let rows = wait_for!(d, 30, "the next start-up run to succeed", {
        let rows = runs(s.pool()).await;
        rows.iter().any(|r| r.status == "succeeded").then_some(rows)
    });
    let abandoned = &rows[0];
    assert_eq!(abandoned.status, "failed", "{rows:?}");
    assert!(abandoned.finished_at.is_some(), "{rows:?}");
    assert!(rows.iter().all(|r| r.status != "running"), "{rows:?}");
    assert_eq!(referral_count(s.pool()).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_sign_in_the_trigger_answers_503_until_login() {
    let s = Setup::new(20, "").await;
    s.write_config("enabled = true\nsync_interval = 600\nsync_on_startup = false\n");
    let d = s.spawn().await;

    let health = d.health().await;
    assert_eq!(health["auth"]["state"], "sign_in_required", "{health}");
    let (status, body) = d.trigger(None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("partner-center-sync login")),
        "the answer says what to do: {body}"
    );
    let m = d.metrics().await;
    assert_eq!(
        metric(&m, "partner_center_sync_sign_in_required"),
        Some(1.0),
        "{m}"
    );
    assert!(runs(s.pool()).await.is_empty());
    assert_eq!(api_requests(&s.emulator), 0);

    // The operator signs in while the daemon runs: health, the alert and "Sync now"
    // follow at once, not at the next scheduled run.
    s.login().await;
    let health = d.health().await;
    assert_eq!(health["auth"]["state"], "signed_in", "{health}");
    let m = d.metrics().await;
    assert_eq!(
        metric(&m, "partner_center_sync_sign_in_required"),
        Some(0.0),
        "{m}"
    );
    let (status, body) = d.trigger(None).await;
    assert_eq!(status, 202, "a trigger after `login` is accepted: {body}");
    let id = body["task_id"].as_i64().expect("task_id");
    wait_for!(d, 30, "the run to succeed", {
        runs(s.pool())
            .await
            .iter()
            .any(|r| r.id == id && r.status == "succeeded")
            .then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_from_the_file_triggers_runs() {
    let s = Setup::new(20, "").await;
    s.login().await;
    s.write_config("enabled = true\nsync_cron = \"* * * * * *\"\nsync_on_startup = false\n");
    let d = s.spawn().await;
    let health = d.health().await;
    assert_eq!(health["sync_cron"], "* * * * * *", "{health}");
    assert!(health["next_run_at"].is_string(), "{health}");
    wait_for!(d, 20, "two runs from the every-second cron schedule", {
        (succeeded(&runs(s.pool()).await) >= 2).then_some(())
    });
    let rows = runs(s.pool()).await;
    assert!(rows.iter().all(|r| r.trigger == "schedule"), "{rows:?}");
    assert_no_overlap(&rows);
}

/// Every `sync_cancelled` record is INFO, and nothing was logged as `sync_failed`.
fn assert_logged_as_cancelled(d: &Daemon) {
    let cancelled = d.events("sync_cancelled");
    assert!(!cancelled.is_empty(), "{}", d.log_tail());
    for record in &cancelled {
        assert_eq!(record["level"], "INFO", "{record}");
    }
    assert!(d.events("sync_failed").is_empty(), "{}", d.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_by_shutdown_is_logged_as_cancelled_at_info_not_as_failed() {
    let s = Setup::new(100, "slow:every=1:ms=1500").await;
    s.login().await;

    // Within the grace period the run stops between pages.
    s.write_config(
        "enabled = true\nsync_interval = 600\nsync_on_startup = true\npage_size = 20\nshutdown_grace = 20\n",
    );
    let mut d = s.spawn().await;
    wait_for!(d, 30, "a page of the start-up run to commit", {
        runs(s.pool())
            .await
            .iter()
            .any(|r| r.status == "running" && r.pages >= 1)
            .then_some(())
    });
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(30).await;
    assert!(status.success(), "exit status {status}\n{}", d.log_tail());
    let rows = runs(s.pool()).await;
    assert_eq!(rows.last().expect("a run").status, "cancelled", "{rows:?}");
    assert_logged_as_cancelled(&d);
    drop(d);

    // Past the grace period the daemon abandons the run inside a page and closes it.
    s.write_config(
        "enabled = true\nsync_interval = 600\nsync_on_startup = true\npage_size = 20\nshutdown_grace = 2\n",
    );
    let mut d = s.spawn().await;
    let blocker = stuck_in_a_page(&s, &d).await;
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(20).await;
    assert!(status.success(), "exit status {status}\n{}", d.log_tail());
    blocker.rollback().await.expect("release the table");
    let rows = runs(s.pool()).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].status, "cancelled", "{rows:?}");
    assert_logged_as_cancelled(&d);
}

/// The newest successful run's end, as Unix seconds.
async fn db_last_success(pool: &PgPool) -> f64 {
    sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM max(finished_at))::float8 FROM partner_center_sync_runs WHERE status = 'succeeded'",
    )
    .fetch_one(pool)
    .await
    .expect("last success")
}

const LAST_SUCCESS: &str = "partner_center_sync_last_success_timestamp_seconds";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_success_gauge_comes_from_the_database_after_a_restart_and_while_another_host_runs()
 {
    let s = Setup::new(20, "").await;
    s.login().await;
    s.write_config("enabled = true\nsync_interval = 600\nsync_on_startup = true\n");
    let d = s.spawn().await;
    wait_for!(d, 30, "the start-up run to succeed", {
        (succeeded(&runs(s.pool()).await) == 1).then_some(())
    });
    drop(d);
    let first = db_last_success(s.pool()).await;

    // This process holds the sync lock, as the other host of an HA pair does while it
    // runs: every run of the restarted daemon is skipped.
    let other_host = partner_center_sync::store::lock::try_acquire(s.pool())
        .await
        .expect("lock query")
        .expect("the sync lock is free");
    s.write_config("enabled = true\nsync_interval = 1\nsync_on_startup = false\n");
    let d = s.spawn().await;
    let gauge = metric(&d.metrics().await, LAST_SUCCESS).expect("gauge");
    assert!(
        (gauge - first).abs() < 1e-3,
        "after a restart the gauge is the database's last success {first}, not {gauge}"
    );

    // The other host finishes a run: the gauge follows, though this daemon ran none.
    let theirs: f64 = sqlx::query_scalar(
        "INSERT INTO partner_center_sync_runs (trigger, mode, status, started_at, finished_at, host)
         VALUES ('schedule', 'incremental', 'succeeded', now(), now(), 'pcs-test-other-host')
         RETURNING EXTRACT(EPOCH FROM finished_at)::float8",
    )
    .fetch_one(s.pool())
    .await
    .expect("the other host's run");
    wait_for!(d, 20, "the gauge to follow the other host's run", {
        let gauge = metric(&d.metrics().await, LAST_SUCCESS).expect("gauge");
        ((gauge - theirs).abs() < 1e-3).then_some(())
    });
    let rows = runs(s.pool()).await;
    assert_eq!(
        succeeded(&rows),
        2,
        "only the first daemon's and the other host's: {rows:?}"
    );
    assert!(rows.iter().any(|r| r.status == "skipped"), "{rows:?}");
    other_host.release().await.expect("release the sync lock");
}

/// Inserts a run as a stopped process on `host` left it: queued, never started.
async fn left_queued(pool: &PgPool, host: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO partner_center_sync_runs (trigger, mode, status, host) VALUES ('manual', 'auto', 'queued', $1) RETURNING id",
    )
    .bind(host)
    .fetch_one(pool)
    .await
    .expect("insert a queued run")
}

async fn run_status_and_host(pool: &PgPool, id: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, host FROM partner_center_sync_runs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_keep_to_their_own_runs() {
    use partner_center_sync::store::runs::TEST_HOSTNAME_VAR;
    const BETA: &str = "pcs-test-beta";
    // The daemon without the override names itself as gethostname(2) does.
    let this_host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the kernel's host name")
        .trim()
        .to_owned();
    let s = Setup::new(20, "").await;
    s.login().await;
    s.write_config("enabled = true\nsync_interval = 600\nsync_on_startup = false\n");
    let pool = s.pool();
    let betas = left_queued(pool, BETA).await;
    let ours = left_queued(pool, &this_host).await;
    let absent = left_queued(pool, "pcs-test-gamma").await;

    let beta = s.spawn_with(&[(TEST_HOSTNAME_VAR, BETA)], None).await;
    assert_eq!(run_status_and_host(pool, betas).await.0, "cancelled");
    assert_eq!(
        run_status_and_host(pool, ours).await.0,
        "queued",
        "another host's queued run is not touched"
    );
    let alpha = s.spawn().await;
    assert_eq!(run_status_and_host(pool, ours).await.0, "cancelled");
    assert_eq!(
        run_status_and_host(pool, absent).await.0,
        "queued",
        "a host that did not start again keeps its queued run"
    );

    for (d, host) in [(&beta, BETA), (&alpha, this_host.as_str())] {
        let (status, body) = d.trigger(None).await;
        assert_eq!(status, 202, "{body}");
        let id = body["task_id"].as_i64().expect("task_id");
        let (status, recorded) = wait_for!(d, 30, "the triggered run to end", {
            let run = run_status_and_host(pool, id).await;
            (run.0 != "queued" && run.0 != "running").then_some(run)
        });
        assert_eq!(status, "succeeded", "{}", d.log_tail());
        assert_eq!(recorded.as_deref(), Some(host), "run {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_warns_again_about_a_file_key_the_environment_overrides() {
    let s = Setup::new(20, "").await;
    s.login().await;
    s.write_config("enabled = true\nsync_interval = 600\nsync_on_startup = false\n");
    let d = s
        .spawn_with(&[("HUNTER_PARTNER_CENTER_SYNC_INTERVAL", "600")], None)
        .await;
    let shadowed = |d: &Daemon| {
        d.events("config_key_shadowed")
            .into_iter()
            .filter(|e| {
                e["key"] == "sync_interval"
                    && e["variable"] == "HUNTER_PARTNER_CENTER_SYNC_INTERVAL"
            })
            .count()
    };
    assert_eq!(shadowed(&d), 1, "at start-up\n{}", d.log_tail());

    // The operator edits the file's interval and reloads: the edit has no effect, and
    // the log says why.
    s.write_config("enabled = true\nsync_interval = 300\nsync_on_startup = false\n");
    d.signal(libc::SIGHUP);
    wait_for!(d, 20, "the reload", {
        (!d.events("config_reloaded").is_empty()).then_some(())
    });
    assert_eq!(shadowed(&d), 2, "again on the reload\n{}", d.log_tail());
    assert_eq!(d.health().await["sync_interval_seconds"], 600);
}

/// `status` from an operator's shell: its own (empty) token cache and no database URL,
/// yet it reports what the daemon at `listen` knows; once the daemon is gone it falls
/// back to what that shell can read, which says a sign-in is required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_from_another_shell_reports_the_running_daemons_state() {
    let s = Setup::new(5, "").await;
    s.login().await;
    s.write_config(&format!(
        "enabled = true\nsync_interval = 600\nsync_on_startup = true\napi_token = \"{API_TOKEN}\"\n"
    ));
    let mut d = s.spawn().await;
    wait_for!(d, 30, "the start-up run", {
        (succeeded(&runs(s.pool()).await) >= 1).then_some(())
    });
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let listen = d.base.trim_start_matches("http://").to_owned();
    let status_with = |json: bool, token: Option<&str>| {
        let mut c = support::command();
        c.arg("status").env("HUNTER_PARTNER_CENTER_LISTEN", &listen);
        if let Some(token) = token {
            c.env("HUNTER_PARTNER_CENTER_API_TOKEN", token);
        }
        c.env("HUNTER_PARTNER_CENTER_ENABLED", "true")
            .env("HUNTER_PARTNER_CENTER_CLIENT_ID", s.emulator.client_id())
            .env("HUNTER_PARTNER_CENTER_TENANT_ID", s.emulator.tenant_id())
            .env(
                "HUNTER_PARTNER_CENTER_TOKEN_CACHE",
                elsewhere.path().join("msal_token_cache.json"),
            )
            .env("HUNTER_PARTNER_CENTER_LOG_FORMAT", "json");
        if json {
            c.arg("--json");
        }
        c.output().expect("status runs")
    };
    let status = |json: bool| status_with(json, Some(API_TOKEN));
    let status_without_token = |json: bool| status_with(json, None);

    let out = status(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Sign-in: signed in as referral-sync@adatumpartners.com"),
        "{stdout}"
    );
    assert!(
        stdout.contains("#1 startup full succeeded") && stdout.contains("fetched 5 inserted 5"),
        "the run list comes from the daemon's database: {stdout}"
    );
    assert!(stdout.contains("as the daemon reports them"), "{stdout}");
    let out = status(true);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(json["source"], "daemon");
    assert_eq!(json["auth"]["state"], "signed_in");
    assert_eq!(json["runs"][0]["fetched"], 5);
    assert_eq!(json["daemon"]["database"]["reachable"], true);

    // Without the token the daemon answers `/healthz` in its public form: the sign-in
    // state still comes through, the runs are said to need the token.
    let out = status_without_token(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("Sign-in: signed in (") && stdout.contains("Runs: unavailable"),
        "{stdout}"
    );
    let json: Value =
        serde_json::from_slice(&status_without_token(true).stdout).expect("status --json");
    assert_eq!(json["source"], "daemon");
    assert_eq!(json["auth"]["state"], "signed_in");

    d.signal(libc::SIGTERM);
    assert!(d.wait_exit(30).await.success());
    let out = status(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(77), "{stdout}");
    assert!(
        stdout.contains("Daemon: not answering") && stdout.contains("Runs: unavailable"),
        "{stdout}"
    );
}

/// A `status` without the daemon's token still hears that a sign-in is required, and
/// exits 77 with the one sign-in sentence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_without_the_token_still_exits_77_when_the_daemon_needs_a_sign_in() {
    let s = Setup::new(5, "").await;
    s.write_config(&format!(
        "enabled = true\nsync_interval = 600\nsync_on_startup = false\napi_token = \"{API_TOKEN}\"\n"
    ));
    let d = s.spawn().await;
    let out = support::command()
        .arg("status")
        .env(
            "HUNTER_PARTNER_CENTER_LISTEN",
            d.base.trim_start_matches("http://"),
        )
        .env("HUNTER_PARTNER_CENTER_LOG_FORMAT", "json")
        .output()
        .expect("status runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stdout}{stderr}");
    assert!(
        stderr.contains("Sign-in required: run `partner-center-sync login`"),
        "{stderr}"
    );
    assert!(stdout.contains("as the daemon reports them"), "{stdout}");
}
