//! The `pc-emulator` binary: prints its URLs, obeys the control endpoints, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::client;

/// Kills the child if the test fails before it stops, so no emulator outlives the test.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn binary_prints_urls_serves_and_stops_on_sigterm() {
    let child = Command::new(env!("CARGO_BIN_EXE_pc-emulator"))
        .args([
            "--referrals",
            "50",
            "--auto-approve-after",
            "0",
            "--faults",
            "429:every=1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut child = Reap(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let lines: Vec<(String, String)> = BufReader::new(stdout)
        .lines()
        .take(6)
        .map(|line| {
            let line = line.expect("line");
            let (k, v) = line.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let value = |key: &str| {
        lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .expect(key)
    };
    assert!(value("base_url").starts_with("http://127.0.0.1:"));
    assert_eq!(value("api_url"), format!("{}/v1.0", value("base_url")));

    let client = client();
    let index: Value = client
        .get(value("control_url"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(index["tenant_id"], value("tenant_id"));
    let issued: Value = client
        .post(format!("{}/issue-tokens", value("control_url")))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let page: Value = client
        .get(format!("{}/engagements/referrals", value("api_url")))
        .bearer_auth(issued["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(page["@odata.count"], 50);

    let pid = child.0.id().to_string();
    assert!(
        Command::new("sh")
            // The shell's builtin `kill`, so no procps package is needed.
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .expect("kill runs")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the binary did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
