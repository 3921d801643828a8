//! `partner-center-sync demo`, the README's quickstart, run as a user runs it: the real
//! binary, a browser-facing URL on stderr, Ctrl-C at the end.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const REFERRALS: i64 = 120;

/// Lines of the child's stderr as they arrive, and all of them so far.
struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    /// Waits up to `limit` for a line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {limit:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

#[tokio::test]
async fn the_demo_signs_in_syncs_serves_the_ui_and_cleans_up_on_ctrl_c() {
    let db = support::TestDb::empty().await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let referrals = REFERRALS.to_string();
    let mut child = support::Reaped(
        support::command()
            .args(["demo", "--listen", "127.0.0.1:0", "--referrals", &referrals])
            .env("DATABASE_URL", &db.url)
            .env("TMPDIR", tmp.path())
            .env("HUNTER_PARTNER_CENTER_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the demo"),
    );
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Lines {
        rx,
        seen: Vec::new(),
    };

    let open = lines.wait_for("Open http://", Duration::from_secs(60));
    let base = open
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL")
        .trim_end_matches('/')
        .to_owned();
    assert!(
        lines.seen.iter().any(|l| l.contains("Signed in")),
        "the sign-in is reported: {:?}",
        lines.seen
    );

    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(60);
    let total = loop {
        let body: Value = http
            .get(format!("{base}/api/v1/partner-center/referrals?limit=1"))
            .send()
            .await
            .expect("API answers")
            .json()
            .await
            .expect("JSON");
        if body["total"] == REFERRALS || Instant::now() > until {
            break body["total"].clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(total, REFERRALS, "the start-up sync fills the table");
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .expect("UI answers")
        .text()
        .await
        .expect("HTML");
    assert!(page.contains("<title>Partner Center referrals</title>"));
    assert!(
        std::fs::read_dir(tmp.path())
            .expect("list temp dir")
            .any(|e| e
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with("pcs-demo-")),
        "the demo's token cache lives in a temporary directory"
    );

    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    lines.wait_for("Demo stopped and cleaned up.", Duration::from_secs(40));
    let status = child.wait().expect("demo exits");
    assert!(
        status.success(),
        "Ctrl-C ends the demo with success: {status}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list temp dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        left.is_empty(),
        "the temporary token cache is removed: {left:?}"
    );
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM partner_center_referrals")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(
        kept, REFERRALS,
        "a database named by DATABASE_URL is the user's and is kept"
    );
}
