//! What the daemon sends to journald, as journald receives it: the real binary under a
//! `JOURNAL_STREAM` (as systemd starts it, so `log_format = auto` picks journald), in a
//! private mount namespace (`unshare -m`; the tests run as root) where a directory of
//! the test's is bind-mounted over `/run/systemd`, so journald's fixed socket path
//! `/run/systemd/journal/socket` is a socket this test reads.

mod socket;

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use partner_center_sync::auth;
use partner_center_sync::config::Config;
use pc_emulator::{Emulator, EmulatorConfig};
use socket::{Entry, Journal, field};
use support::TestDb;

/// journald's socket, fixed in the client library; only its directory can be replaced.
const SYSTEMD_RUN_DIR: &str = "/run/systemd";

/// Waits up to `secs` for `$body` (an `Option`), showing what arrived so far on timeout.
macro_rules! wait_for {
    ($journal:expr, $secs:expr, $what:expr, $body:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            if let Some(v) = $body {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {}; the journal got:\n{}",
                $what,
                summary(&$journal.entries())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}

fn summary(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                field(e, "PRIORITY").unwrap_or("-"),
                field(e, "EVENT").unwrap_or("-"),
                field(e, "MESSAGE").unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `partner-center-sync ARGS` in its own mount namespace with the test's directory over
/// `/run/systemd`, and the environment systemd gives a service that logs to the journal.
fn under_journal(run_dir: &Path, args: &[&std::ffi::OsStr]) -> std::process::Command {
    let mut c = std::process::Command::new("unshare");
    let inherited = support::command();
    for (k, v) in inherited.get_envs() {
        if v.is_none() {
            c.env_remove(k);
        }
    }
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$0" /run/systemd && exec "$@""#)
        .arg(run_dir)
        .arg(support::bin())
        .args(args)
        .env("JOURNAL_STREAM", "8:12345")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

struct Setup {
    emulator: Emulator,
    db: TestDb,
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Setup {
    async fn new() -> Setup {
        let emulator = Emulator::start(EmulatorConfig {
            referrals: 5,
            auto_approve_after: Some(0),
            device_code_interval_secs: 0,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("state").join("msal_token_cache.json");
        let config = Config {
            enabled: true,
            client_id: Some(emulator.client_id()),
            tenant_id: Some(emulator.tenant_id()),
            authority_url: url::Url::parse(&emulator.authority_url()).expect("url"),
            api_url: url::Url::parse(&emulator.api_url()).expect("url"),
            token_cache: cache.clone(),
            ..Config::default()
        };
        auth::login(&config, false).await.expect("sign-in succeeds");
        Setup {
            emulator,
            db: TestDb::new().await,
            dir,
            cache,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("stderr.log")
    }

    fn write_config(&self, body: &str) {
        std::fs::write(self.config_path(), body).expect("write config");
    }

    /// The journal's socket directory, bound over `/run/systemd` in the child.
    fn journal(&self) -> (PathBuf, Journal) {
        let run_dir = self.dir.path().join("run-systemd");
        std::fs::create_dir_all(run_dir.join("journal")).expect("journal dir");
        let journal = Journal::bind(&run_dir.join("journal").join("socket"));
        (run_dir, journal)
    }

    fn daemon(&self, run_dir: &Path, port: u16) -> support::Reaped {
        let e = &self.emulator;
        let mut cmd = under_journal(
            run_dir,
            &[
                "--config".as_ref(),
                self.config_path().as_os_str(),
                "run".as_ref(),
            ],
        );
        cmd.env("DATABASE_URL", &self.db.url)
            .env("HUNTER_PARTNER_CENTER_LISTEN", format!("127.0.0.1:{port}"))
            .env("HUNTER_PARTNER_CENTER_CLIENT_ID", e.client_id())
            .env("HUNTER_PARTNER_CENTER_TENANT_ID", e.tenant_id())
            .env("HUNTER_PARTNER_CENTER_AUTHORITY_URL", e.authority_url())
            .env("HUNTER_PARTNER_CENTER_API_URL", e.api_url())
            .env("HUNTER_PARTNER_CENTER_TOKEN_CACHE", &self.cache)
            // Shadows the file's `page_size`: one WARN.
            .env("HUNTER_PARTNER_CENTER_PAGE_SIZE", "50")
            .env("RUST_LOG", "info,partner_center_sync::sync=debug")
            .stderr(std::fs::File::create(self.stderr_path()).expect("stderr file"));
        assert!(
            Path::new(SYSTEMD_RUN_DIR).is_dir(),
            "{SYSTEMD_RUN_DIR} must exist to be replaced in the test's mount namespace"
        );
        support::Reaped(cmd.spawn().expect("unshare runs (util-linux)"))
    }
}

fn assert_one(entries: &[Entry], event: &str) -> Entry {
    entries
        .iter()
        .find(|e| field(e, "EVENT") == Some(event))
        .unwrap_or_else(|| panic!("no {event} entry in:\n{}", summary(entries)))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_sends_plain_fields_and_syslog_priorities_to_journald() {
    let s = Setup::new().await;
    s.write_config("enabled = true\nsync_interval = \"1h\"\npage_size = 100\n");
    let (run_dir, journal) = s.journal();
    let mut daemon = s.daemon(&run_dir, support::free_port());

    let finished = wait_for!(journal, 90, "sync_finished", {
        journal.events("sync_finished").pop()
    });

    // A reload that changes the interval, then one the validation rejects.
    s.write_config("enabled = true\nsync_interval = \"2h\"\npage_size = 100\n");
    daemon.signal(libc::SIGHUP);
    let reloaded = wait_for!(journal, 30, "config_reloaded", {
        journal.events("config_reloaded").pop()
    });
    s.write_config("enabled = true\nsync_interval = \"soon\"\n");
    daemon.signal(libc::SIGHUP);
    let rejected = wait_for!(journal, 30, "config_reload_failed", {
        journal.events("config_reload_failed").pop()
    });
    // An entry too big for one datagram goes through a sealed memfd.
    let huge = "x".repeat(300_000);
    s.write_config(&format!("enabled = true\nsync_interval = \"{huge}\"\n"));
    daemon.signal(libc::SIGHUP);
    let big = wait_for!(journal, 30, "the big config_reload_failed", {
        journal
            .events("config_reload_failed")
            .into_iter()
            .find(|e| field(e, "PROBLEMS").is_some_and(|p| p.contains(&huge)))
    });
    assert_eq!(field(&big, "PRIORITY"), Some("3"));
    daemon.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = daemon.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let stderr = std::fs::read_to_string(s.stderr_path()).expect("stderr");
    assert!(
        stderr.trim().is_empty(),
        "with the journal there, nothing is logged on stderr: {stderr}"
    );
    let entries = journal.entries();

    // Every entry: our identifier, a priority, fields under their own names.
    for e in &entries {
        assert_eq!(
            field(e, "SYSLOG_IDENTIFIER"),
            Some("partner-center-sync"),
            "{e:?}"
        );
        assert!(field(e, "PRIORITY").is_some(), "{e:?}");
        assert!(
            e.keys().all(|k| !k.starts_with("F_")),
            "no field prefix: {e:?}"
        );
        for value in e.values().flatten() {
            for debug_text in ["Some(", "Interval(", "[\"", "None"] {
                assert!(!value.contains(debug_text), "Rust Debug text in {e:?}");
            }
        }
        assert!(
            !field(e, "TARGET")
                .unwrap_or("")
                .starts_with("tokio_cron_scheduler"),
            "the scheduler's bookkeeping stays out of the log: {e:?}"
        );
        assert!(
            !field(e, "MESSAGE")
                .unwrap_or("")
                .contains("already exists, skipping"),
            "PostgreSQL notices stay out of the log: {e:?}"
        );
    }

    let started = assert_one(&entries, "daemon_started");
    assert_eq!(
        field(&started, "PRIORITY"),
        Some("6"),
        "INFO is informational"
    );
    assert!(
        field(&started, "MESSAGE").is_some_and(
            |m| m.starts_with("Daemon ") && m.contains("listening on http://127.0.0.1:")
        ),
        "{started:?}"
    );
    let schedule = assert_one(&entries, "schedule_set");
    assert_eq!(field(&schedule, "SCHEDULE"), Some("every 1h"));
    let shadowed = assert_one(&entries, "config_key_shadowed");
    assert_eq!(field(&shadowed, "PRIORITY"), Some("4"), "WARN is warning");
    let debug = assert_one(&entries, "page_committed");
    assert_eq!(field(&debug, "PRIORITY"), Some("7"), "DEBUG is debug");

    let sync_started = assert_one(&entries, "sync_started");
    assert_eq!(
        field(&sync_started, "MESSAGE"),
        Some("Sync started: full pass (first run).")
    );
    assert!(
        !sync_started.contains_key("SINCE"),
        "no since on a full pass"
    );
    assert_eq!(field(&finished, "PRIORITY"), Some("6"));
    assert_eq!(field(&finished, "FETCHED"), Some("5"));
    assert_eq!(field(&finished, "INSERTED"), Some("5"));
    let run_id = field(&finished, "RUN_ID").expect("the run's span field RUN_ID");
    assert!(run_id.parse::<i64>().is_ok(), "{run_id}");
    assert_eq!(field(&finished, "TRIGGER"), Some("startup"));
    let message = field(&finished, "MESSAGE").expect("MESSAGE");
    let prefix = "Sync finished: 5 fetched, 5 new, 0 updated, 0 errors in ";
    assert!(
        message.starts_with(prefix)
            && message.ends_with(" s.")
            && message[prefix.len()..message.len() - 3]
                .parse::<f64>()
                .is_ok(),
        "{message}"
    );

    assert_eq!(field(&reloaded, "PRIORITY"), Some("6"));
    assert_eq!(field(&reloaded, "CHANGED"), Some("sync_interval"));
    assert_eq!(
        field(&reloaded, "MESSAGE"),
        Some("Configuration reloaded: sync_interval changed.")
    );
    let schedules: Vec<_> = journal
        .events("schedule_set")
        .iter()
        .filter_map(|e| field(e, "SCHEDULE").map(str::to_owned))
        .collect();
    assert_eq!(schedules, ["every 1h", "every 2h"]);

    assert_eq!(field(&rejected, "PRIORITY"), Some("3"), "ERROR is error");
    let problems = field(&rejected, "PROBLEMS").expect("PROBLEMS");
    assert!(problems.contains("sync_interval"), "{problems}");
    assert!(
        field(&rejected, "MESSAGE").is_some_and(|m| m.contains(problems)),
        "the message names the problems itself: {rejected:?}"
    );
    assert_one(&entries, "daemon_stopped");
}
