//! `partner-center-sync demo`, the README's quickstart, run as a user runs it: the real
//! binary, a browser-facing URL on stderr, notifications arriving in the demo's inbox as
//! the emulator's activity changes referrals, Ctrl-C at the end.

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

/// Polls `url` (JSON) until `found` picks something out of it, for at most `limit`.
async fn poll<T>(
    http: &reqwest::Client,
    url: &str,
    limit: Duration,
    found: impl Fn(&Value) -> Option<T>,
) -> T {
    let until = Instant::now() + limit;
    loop {
        let body: Value = http
            .get(url)
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("JSON");
        if let Some(hit) = found(&body) {
            return hit;
        }
        assert!(
            Instant::now() < until,
            "nothing found at {url} within {limit:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The inbox's messages with event `event`.
fn messages<'a>(inbox: &'a Value, event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    inbox["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |m| m["event"] == event)
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

    // The first import reaches the inbox as one summary, signed, not 120 messages.
    let inbox_url = format!("{base}/api/v1/demo/inbox");
    let summary = poll(&http, &inbox_url, Duration::from_secs(60), |inbox| {
        messages(inbox, "import_summary").next().cloned()
    })
    .await;
    assert_eq!(summary["verified"], true, "{summary}");
    assert_eq!(summary["body"]["imported"], REFERRALS, "{summary}");
    let inbox: Value = http
        .get(&inbox_url)
        .send()
        .await
        .expect("inbox")
        .json()
        .await
        .expect("JSON");
    assert!(
        messages(&inbox, "referral_new").next().is_none(),
        "no message per imported referral: {inbox}"
    );

    // A round of the emulator's activity moves a referral; the next sync records it in the
    // history and the inbox hears of it.
    let emulator = lines
        .seen
        .iter()
        .find_map(|l| l.split("Partner Center emulator: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the demo prints the emulator's address")
        .to_owned();
    let mut moved = None;
    for _ in 0..20 {
        let round: Value = http
            .post(format!("{emulator}/_emulator/activity"))
            .send()
            .await
            .expect("emulator answers")
            .json()
            .await
            .expect("JSON");
        moved = round["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|c| {
                ["accepted", "won", "lost", "declined"]
                    .contains(&c["change"].as_str().unwrap_or_default())
                    .then(|| c["id"].as_str().unwrap_or_default().to_owned())
            });
        if moved.is_some() {
            break;
        }
    }
    let moved = moved.expect("a round changes a status within 20 rounds");
    let trigger = http
        .post(format!("{base}/api/v1/partner-center/referrals/sync"))
        .send()
        .await
        .expect("trigger answers");
    assert!(
        trigger.status().is_success() || trigger.status() == 409,
        "{}",
        trigger.status()
    );
    let changed = poll(&http, &inbox_url, Duration::from_secs(90), |inbox| {
        messages(inbox, "referral_status_changed")
            .chain(messages(inbox, "digest"))
            .find(|m| m["body"].to_string().contains(&moved))
            .cloned()
    })
    .await;
    assert_eq!(changed["verified"], true, "{changed}");
    let history: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT field, old_value, new_value FROM partner_center_referral_changes \
         WHERE referral_id = $1 ORDER BY id",
    )
    .bind(&moved)
    .fetch_all(&db.pool)
    .await
    .expect("history");
    assert_eq!(
        history.first().map(|h| h.0.as_str()),
        Some("created"),
        "{history:?}"
    );
    assert!(
        history
            .iter()
            .any(|(field, old, new)| field == "status" && old != new),
        "the status change is in the history: {history:?}"
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
    assert!(
        kept >= REFERRALS,
        "a database named by DATABASE_URL is the user's and is kept: {kept} referrals"
    );
}
