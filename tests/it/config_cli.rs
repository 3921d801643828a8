//! The CLI's configuration and migration commands, run as the real binary.

use crate::support;

use std::process::Output;

use support::{TestDb, command};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = command();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write_config(content: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, content).expect("write config");
    (dir, path.to_string_lossy().into_owned())
}

const DB: (&str, &str) = (
    "DATABASE_URL",
    "postgres://postgres@127.0.0.1:5432/postgres",
);

#[test]
fn three_mistakes_are_all_reported_with_exit_78() {
    let (_dir, path) = write_config(
        "enabled = true\nsync_interval = \"soon\"\napi_url = \"http://example.com/v1.0\"\n",
    );
    let o = run(&["--config", &path, "config", "check"], &[DB]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    let err = stderr(&o);
    for key in ["client_id", "tenant_id", "sync_interval", "api_url"] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(
        err.contains("HUNTER_PARTNER_CENTER_CLIENT_ID"),
        "the fix names the env var:\n{err}"
    );
    assert!(
        err.contains(&format!("file {path}")),
        "the source is named:\n{err}"
    );
}

#[test]
fn type_error_and_bad_url_in_one_file_are_both_reported() {
    let (_dir, path) =
        write_config("sync_interval = \"soon\"\nauthority_url = \"login dot microsoft\"\n");
    let o = run(&["--config", &path, "config", "check"], &[DB]);
    assert_eq!(o.status.code(), Some(78));
    let err = stderr(&o);
    assert!(
        err.contains("sync_interval") && err.contains("`soon` is not a duration"),
        "{err}"
    );
    assert!(
        err.contains("authority_url") && err.contains("not an absolute http(s) URL"),
        "{err}"
    );
}

#[test]
fn a_missing_config_file_is_an_error_not_an_empty_config() {
    let o = run(
        &[
            "--config",
            "/nonexistent/partner-center-sync.toml",
            "config",
            "check",
        ],
        &[DB],
    );
    assert_eq!(o.status.code(), Some(78));
    assert!(
        stderr(&o).contains("/nonexistent/partner-center-sync.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn env_overrides_file_and_a_numeric_client_id_is_a_string() {
    let (_dir, path) = write_config("client_id = \"from-file\"\nlisten = \"127.0.0.1:9000\"\n");
    let o = run(
        &["--config", &path, "config", "show"],
        &[("HUNTER_PARTNER_CENTER_CLIENT_ID", "0123456789"), DB],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("client_id = \"0123456789\"  # env HUNTER_PARTNER_CENTER_CLIENT_ID"),
        "{out}"
    );
    assert!(
        out.contains(&format!("listen = \"127.0.0.1:9000\"  # file {path}")),
        "{out}"
    );
}

#[test]
fn secrets_never_appear_in_config_show_or_logs() {
    let secret = "Zx9-very-secret-client-value";
    let token = "api-token-value-0123456789abcdef";
    let o = run(
        &["config", "show"],
        &[
            ("HUNTER_PARTNER_CENTER_CLIENT_SECRET", secret),
            ("HUNTER_PARTNER_CENTER_API_TOKEN", token),
            (
                "DATABASE_URL",
                "postgres://app:db-password-42@127.0.0.1:5432/app",
            ),
            ("RUST_LOG", "trace"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    for s in [secret, token, "db-password-42"] {
        assert!(!all.contains(s), "{s} leaked:\n{all}");
    }
    assert!(
        stdout(&o).contains("client_secret = \"[redacted]\""),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_valid_config_checks_ok() {
    let o = run(
        &["config", "check"],
        &[
            ("HUNTER_PARTNER_CENTER_ENABLED", "true"),
            (
                "HUNTER_PARTNER_CENTER_CLIENT_ID",
                "e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a",
            ),
            (
                "HUNTER_PARTNER_CENTER_TENANT_ID",
                "b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26",
            ),
            DB,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn the_sample_config_file_is_valid() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/partner-center-sync.toml"
    );
    let o = run(&["--config", sample, "config", "check"], &[DB]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[tokio::test]
async fn migrate_twice_is_a_no_op_and_creates_the_documented_columns() {
    let db = TestDb::empty().await;
    let first = run(&["migrate"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(!stdout(&first).contains("Applied 0 "), "{}", stdout(&first));
    let second = run(&["migrate"], &[("DATABASE_URL", &db.url)]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("Applied 0 migration(s)"),
        "{}",
        stdout(&second)
    );

    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = 'partner_center_referrals'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("columns");
    let has = |name: &str, ty: &str| columns.iter().any(|(n, t)| n == name && t == ty);
    for (name, ty) in [
        ("id", "text"),
        ("engagement_id", "text"),
        ("name", "text"),
        ("status", "text"),
        ("substatus", "text"),
        ("type", "text"),
        ("qualification", "text"),
        ("direction", "text"),
        ("customer_name", "text"),
        ("customer_country", "text"),
        ("customer_domain", "text"),
        ("deal_value", "numeric"),
        ("currency", "text"),
        ("created_at", "timestamp with time zone"),
        ("updated_at", "timestamp with time zone"),
        ("etag", "text"),
        ("payload", "jsonb"),
        ("first_seen_at", "timestamp with time zone"),
        ("last_seen_at", "timestamp with time zone"),
        ("missing_since", "timestamp with time zone"),
    ] {
        assert!(has(name, ty), "column {name} {ty} missing: {columns:?}");
    }
}

/// Payloads are written with lz4 where the server has it (PostgreSQL 14 or later, built
/// with lz4); either way one log line says which compression applies, and only once.
#[tokio::test]
async fn migrate_prefers_lz4_for_payloads_and_says_which_compression_applies() {
    let db = TestDb::empty().await;
    let env = [
        ("DATABASE_URL", db.url.as_str()),
        ("HUNTER_PARTNER_CENTER_LOG_FORMAT", "json"),
    ];
    let events = |o: &Output| -> Vec<serde_json::Value> {
        stderr(o)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "payload_compression")
            .collect()
    };
    let first = run(&["migrate"], &env);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let server_has_lz4: bool = sqlx::query_scalar(
        "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )
    .fetch_optional(&db.pool)
    .await
    .expect("settings")
    .unwrap_or(false);
    let said = events(&first);
    assert_eq!(said.len(), 1, "{}", stderr(&first));
    let expected = if server_has_lz4 { "lz4" } else { "default" };
    assert_eq!(said[0]["compression"], expected, "{}", stderr(&first));

    if server_has_lz4 {
        sqlx::query(
            "INSERT INTO partner_center_referrals (id, payload)
             VALUES ('big', jsonb_build_object('notes', repeat('Contoso wants 40 seats. ', 2000)))",
        )
        .execute(&db.pool)
        .await
        .expect("insert");
        let stored: String = sqlx::query_scalar(
            "SELECT pg_column_compression(payload) FROM partner_center_referrals",
        )
        .fetch_one(&db.pool)
        .await
        .expect("compression");
        assert_eq!(stored, "lz4");
    }

    let second = run(&["migrate"], &env);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let again = events(&second);
    assert_eq!(
        again.len(),
        usize::from(!server_has_lz4),
        "{}",
        stderr(&second)
    );
}

#[test]
fn migrate_without_a_database_url_names_the_key() {
    let o = run(&["migrate"], &[]);
    assert_eq!(o.status.code(), Some(78));
    assert!(stderr(&o).contains("DATABASE_URL"), "{}", stderr(&o));
}

/// The path the harness and the demo take when nothing listens on 5432 and no
/// DATABASE_URL is set, exercised directly so it is tested on every machine.
#[tokio::test]
async fn a_throwaway_cluster_starts_answers_and_is_removed() {
    let pg = partner_center_sync::dev::devdb::ThrowawayPostgres::start()
        .expect("throwaway cluster starts");
    let url = pg.url();
    let port = url::Url::parse(&url).expect("url").port().expect("port");
    assert_ne!(port, 5432);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connects");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("query");
    assert_eq!(one, 1);
    pool.close().await;
    drop(pg);
    let gone = std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
    assert!(gone, "the cluster still listens on {port} after drop");
}

#[test]
fn a_network_listen_address_without_an_api_token_is_a_config_error() {
    let o = run(
        &["config", "check"],
        &[("HUNTER_PARTNER_CENTER_LISTEN", "0.0.0.0:8000"), DB],
    );
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    let err = stderr(&o);
    for name in [
        "listen",
        "api_token",
        "HUNTER_PARTNER_CENTER_API_TOKEN",
        "allow_unauthenticated_network",
    ] {
        assert!(err.contains(name), "{name} missing from:\n{err}");
    }

    // `run` refuses to start the same way, before it binds anything.
    let o = run(
        &["run"],
        &[("HUNTER_PARTNER_CENTER_LISTEN", "[::]:8000"), DB],
    );
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));

    for allowed in [
        (
            "HUNTER_PARTNER_CENTER_API_TOKEN",
            "api-token-value-0123456789abcdef",
        ),
        (
            "HUNTER_PARTNER_CENTER_ALLOW_UNAUTHENTICATED_NETWORK",
            "true",
        ),
    ] {
        let o = run(
            &["config", "check"],
            &[
                ("HUNTER_PARTNER_CENTER_LISTEN", "0.0.0.0:8000"),
                allowed,
                DB,
            ],
        );
        assert_eq!(o.status.code(), Some(0), "{allowed:?}: {}", stderr(&o));
    }
}

#[test]
fn public_hosts_are_listed_normalised_and_a_bad_entry_is_refused() {
    let (_dir, path) = write_config("public_hosts = [\"Sync.Example.com\", \"sync.internal\"]\n");
    let o = run(&["--config", &path, "config", "show"], &[DB]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "public_hosts = [\"sync.example.com\", \"sync.internal\"]  # file {path}"
        )),
        "{}",
        stdout(&o)
    );

    let o = run(
        &["config", "check"],
        &[
            (
                "HUNTER_PARTNER_CENTER_PUBLIC_HOSTS",
                "sync.example.com, https://sync.example.com:443",
            ),
            DB,
        ],
    );
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("public_hosts")
            && stderr(&o).contains("`https://sync.example.com:443`"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn a_password_in_the_database_url_query_never_appears() {
    let db = TestDb::empty().await;
    let secret = "db-query-pass-77";
    let mut url = url::Url::parse(&db.url).expect("test URL");
    url.query_pairs_mut()
        .append_pair("sslmode", "disable")
        .append_pair("password", secret);
    let env = [("DATABASE_URL", url.as_str()), ("RUST_LOG", "trace")];

    let show = run(&["config", "show"], &env);
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    assert!(
        stdout(&show).contains("sslmode=disable&password=redacted"),
        "{}",
        stdout(&show)
    );
    // Connecting, migrating and logging at trace level: still nowhere.
    let migrate = run(&["migrate"], &env);
    assert_eq!(migrate.status.code(), Some(0), "{}", stderr(&migrate));
    for o in [&show, &migrate] {
        let all = format!("{}{}", stdout(o), stderr(o));
        assert!(!all.contains(secret), "the password leaked:\n{all}");
    }
}

#[test]
fn durations_accept_the_usual_forms() {
    let (_dir, path) = write_config("sync_interval = \"1h30m\"\nrun_deadline = \"90s\"\n");
    let o = run(
        &["--config", &path, "config", "show"],
        &[("HUNTER_PARTNER_CENTER_INCREMENTAL_OVERLAP", "10min"), DB],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "sync_interval = 5400  # file",
        "run_deadline = 90  # file",
        "incremental_overlap = 600  # env",
    ] {
        assert!(out.contains(line), "{line} missing from:\n{out}");
    }
}

#[test]
fn every_fix_names_the_file_key_and_the_environment_variable() {
    let (_dir, path) = write_config("enabled = true\nsync_interval = \"soon\"\npage_size = 500\n");
    let o = run(&["--config", &path, "config", "check"], &[DB]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    let err = stderr(&o);
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("  - ")).collect();
    assert_eq!(problems.len(), 4, "{err}");
    for (key, env) in [
        ("client_id", "HUNTER_PARTNER_CENTER_CLIENT_ID"),
        ("tenant_id", "HUNTER_PARTNER_CENTER_TENANT_ID"),
        ("sync_interval", "HUNTER_PARTNER_CENTER_SYNC_INTERVAL"),
        ("page_size", "HUNTER_PARTNER_CENTER_PAGE_SIZE"),
    ] {
        let line = problems
            .iter()
            .find(|l| l.starts_with(&format!("  - {key} ")))
            .unwrap_or_else(|| panic!("no problem for {key}:\n{err}"));
        assert!(
            line.contains(&format!("`{key}`")) && line.contains(env),
            "{line}"
        );
    }
}

const TYPO: (&str, &str) = ("HUNTER_PARTNER_CENTER_SYNC_INTERVALL", "60");

#[test]
fn a_misspelt_variable_fails_config_check_with_a_suggestion_and_warns_elsewhere() {
    let o = run(&["config", "check"], &[TYPO, DB]);
    assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("HUNTER_PARTNER_CENTER_SYNC_INTERVALL")
            && err.contains(
                "did you mean HUNTER_PARTNER_CENTER_SYNC_INTERVAL (file key `sync_interval`"
            ),
        "{err}"
    );

    let o = run(
        &["config", "show"],
        &[TYPO, DB, ("HUNTER_PARTNER_CENTER_LOG_FORMAT", "json")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let warning = json_events(&stderr(&o), "config_env_unknown")
        .pop()
        .unwrap_or_else(|| panic!("no config_env_unknown:\n{}", stderr(&o)));
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["variable"], TYPO.0, "{warning}");
    assert_eq!(
        warning["did_you_mean"], "HUNTER_PARTNER_CENTER_SYNC_INTERVAL",
        "{warning}"
    );
}

fn json_events(log: &str, event: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}

/// `run` as systemd starts it: the environment overrides a key the file sets, and a
/// variable is misspelt; both are warnings at start-up and the daemon runs.
#[tokio::test]
async fn run_warns_about_shadowed_file_keys_and_unknown_variables_at_start_up() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    let db = TestDb::new().await;
    let (dir, path) = write_config("sync_interval = 600\nlog_format = \"json\"\n");
    let cache = dir.path().join("msal_token_cache.json");
    let mut cmd = command();
    cmd.args(["--config", &path, "run"])
        .env("DATABASE_URL", &db.url)
        .env("HUNTER_PARTNER_CENTER_LISTEN", "127.0.0.1:0")
        .env("HUNTER_PARTNER_CENTER_SYNC_INTERVAL", "60")
        .env("HUNTER_PARTNER_CENTER_TOKEN_CACHE", &cache)
        .env(TYPO.0, TYPO.1)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = support::Reaped(cmd.spawn().expect("spawn run"));
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = String::new();
    while json_events(&log, "daemon_started").is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => log.push_str(&format!("{line}\n")),
            Err(_) => panic!("the daemon did not start within 60 s:\n{log}"),
        }
    }
    let shadowed = json_events(&log, "config_key_shadowed");
    assert_eq!(shadowed.len(), 1, "{log}");
    assert_eq!(shadowed[0]["level"], "WARN");
    assert_eq!(shadowed[0]["key"], "sync_interval");
    assert_eq!(
        shadowed[0]["variable"],
        "HUNTER_PARTNER_CENTER_SYNC_INTERVAL"
    );
    assert_eq!(shadowed[0]["shadowed"], format!("file {path}"));
    let unknown = json_events(&log, "config_env_unknown");
    assert_eq!(unknown.len(), 1, "{log}");
    assert_eq!(unknown[0]["variable"], TYPO.0);
}

/// `config show | head -1` (a reader that leaves early) ends the command the Unix way, by
/// SIGPIPE, never with a Rust panic and exit 101.
#[test]
fn a_closed_stdout_ends_config_show_and_status_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["config", "show"][..], &["status"][..]] {
        let mut child = command()
            .args(args)
            // Nothing answers here, so `status` reads locally and prints at once.
            .env("HUNTER_PARTNER_CENTER_LISTEN", "127.0.0.1:9")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}
