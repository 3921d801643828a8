//! `partner-center-sync run` as a child process: its stderr (JSON log lines) captured,
//! started once it answers `/healthz`, killed and reaped when dropped. The areas that
//! drive it (`daemon.rs`, `notify.rs`) add their own requests in `impl Daemon` blocks.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pc_emulator::Emulator;
use serde_json::Value;

use super::{Reaped, TestDb};

/// How long a debug build may take to answer `/healthz` after spawn.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port: bound, read, released, then handed to a child or left unused.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// What connects a daemon on `port` to the emulator, `db` and the token cache `cache`,
/// with JSON logs at INFO (what [`Daemon::events`] reads).
pub fn connection_env(
    emulator: &Emulator,
    db: &TestDb,
    cache: &std::path::Path,
    port: u16,
) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", db.url.clone()),
        ("HUNTER_PARTNER_CENTER_LISTEN", format!("127.0.0.1:{port}")),
        ("HUNTER_PARTNER_CENTER_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info".into()),
        ("HUNTER_PARTNER_CENTER_CLIENT_ID", emulator.client_id()),
        ("HUNTER_PARTNER_CENTER_TENANT_ID", emulator.tenant_id()),
        (
            "HUNTER_PARTNER_CENTER_AUTHORITY_URL",
            emulator.authority_url(),
        ),
        ("HUNTER_PARTNER_CENTER_API_URL", emulator.api_url()),
        (
            "HUNTER_PARTNER_CENTER_TOKEN_CACHE",
            cache.display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The running child; killed and reaped when dropped, so a failing test leaves nothing behind.
pub struct Daemon {
    pub child: Reaped,
    pub pid: i32,
    pub base: String,
    pub http: reqwest::Client,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Spawns `cmd` (a `run` listening on `port`) with its stderr captured line by line,
    /// and waits until it answers `/healthz`; panics with its log if it exits first.
    pub async fn start(mut cmd: Command, port: u16) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn partner-center-sync run");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let mut d = Daemon {
            pid: i32::try_from(child.id()).expect("pid fits"),
            child: Reaped(child),
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            logs,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = d.child.try_wait().expect("try_wait") {
                panic!(
                    "the daemon exited with {status} before answering /healthz\n{}",
                    d.log_tail()
                );
            }
            if let Ok(r) = d.http.get(d.url("/healthz")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "the daemon did not answer /healthz within {START_TIMEOUT:?}\n{}",
                d.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn signal(&self, signal: libc::c_int) {
        self.child.signal(signal);
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    pub fn log_tail(&self) -> String {
        let lines = self.log_lines();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// JSON log records whose `event` field is `event`.
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {secs}s\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}
