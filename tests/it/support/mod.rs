//! Shared by every integration test file: a fresh PostgreSQL database per test, and the
//! path of the real binary. Test modules reach it as `crate::support`.

mod daemon;

use std::sync::OnceLock;

use partner_center_sync::dev::devdb::DatabaseChoice;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

pub use daemon::{Daemon, connection_env, free_port};

/// One server per test run: `DATABASE_URL`, else 127.0.0.1:5432, else a throwaway
/// cluster that a reaper removes when the test binary exits.
fn server() -> &'static str {
    static SERVER: OnceLock<(String, Option<DatabaseChoice>)> = OnceLock::new();
    let (url, _) = SERVER.get_or_init(|| match DatabaseChoice::pick() {
        Ok(choice) => (choice.url(), Some(choice)),
        Err(e) => panic!("{e}"),
    });
    url
}

/// A fresh, migrated database, dropped when the value is dropped.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let db = TestDb::empty().await;
        partner_center_sync::store::migrate(&db.pool)
            .await
            .expect("migrations apply");
        db
    }

    /// A database that exists but has no schema yet, for `migrate` tests.
    pub async fn empty() -> TestDb {
        let admin_url = server().to_owned();
        let name = format!("pcs_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
            .expect("connect to the test server");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        admin.close().await;
        let url = with_database(&admin_url, &name);
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url)
            .await
            .expect("connect to test database");
        TestDb { pool, url, name }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin_url = server().to_owned();
        let name = self.name.clone();
        // Drop cannot be async; a short-lived runtime on its own thread does the cleanup.
        // The pool is not closed from there: its connections belong to the test's runtime,
        // which is blocked in this join; FORCE ends them instead.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

fn with_database(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).expect("server URL parses");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// The real binary under test.
pub fn bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_partner-center-sync"))
}

/// A command for the real binary with a clean environment: no inherited
/// `HUNTER_PARTNER_CENTER_*`, `DATABASE_URL` or `RUST_LOG`, and no system config file.
pub fn command() -> std::process::Command {
    let mut c = std::process::Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("HUNTER_PARTNER_CENTER_")
            || k == "DATABASE_URL"
            || k == "RUST_LOG"
            || k == "CREDENTIALS_DIRECTORY"
            || k == "STATE_DIRECTORY"
            || k == "JOURNAL_STREAM"
            || k == "NOTIFY_SOCKET"
        {
            c.env_remove(k);
        }
    }
    c
}

/// A child process of the real binary, killed and reaped when dropped, so a failing test
/// leaves nothing running behind it.
pub struct Reaped(pub std::process::Child);

impl std::ops::Deref for Reaped {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Reaped {
    pub fn signal(&self, signal: libc::c_int) {
        let pid = i32::try_from(self.0.id()).expect("pid fits");
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// The real daemon, in-process, on 127.0.0.1 port 0 over `db`; stopped on drop.
pub struct TestDaemon {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub async fn spawn_daemon(config: partner_center_sync::config::Config, db: &TestDb) -> TestDaemon {
    spawn_daemon_with(config, db, None).await
}

/// [`spawn_daemon`] serving `routes` beside its own (the demo's inbox).
pub async fn spawn_daemon_with(
    mut config: partner_center_sync::config::Config,
    db: &TestDb,
    routes: Option<axum::Router>,
) -> TestDaemon {
    config.database_url = Some(secrecy::SecretString::from(db.url.clone()));
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let mut daemon = partner_center_sync::daemon::Daemon::build(config, None, None)
        .await
        .expect("daemon builds");
    if let Some(routes) = routes {
        daemon = daemon.with_routes(routes);
    }
    let addr = daemon.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(daemon.run_until(async move {
        let _ = stopped.await;
    }));
    TestDaemon {
        base: format!("http://{addr}"),
        stop: Some(stop),
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `promtool check metrics` (Debian's `prometheus` package, installed by
/// `scripts/ensure-tools`) on a `/metrics` body: the exposition parses and follows
/// Prometheus' naming rules.
pub fn promtool_check_metrics(body: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (scripts/ensure-tools installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write metrics to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `$body` (an expression yielding `Option<T>`, may `.await`) every 100 ms until it
/// is `Some`, or panics after `$secs` seconds naming what was awaited and showing the
/// daemon's last log lines.
macro_rules! wait_for {
    ($daemon:expr, $secs:expr, $what:expr, $body:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            if let Some(v) = $body {
                break v;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {}s waiting for {}\n--- daemon log tail ---\n{}",
                    $secs,
                    $what,
                    $daemon.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }};
}
pub(crate) use wait_for;
