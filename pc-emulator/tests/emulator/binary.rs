//! The `pc-emulator` binary: prints its URLs, obeys the control endpoints, stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
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

/// Starts the binary with `args` and reads its `key=value` lines: `lines` of them.
fn spawn(args: &[&str], lines: usize) -> (Reap, Vec<(String, String)>) {
    let child = Command::new(env!("CARGO_BIN_EXE_pc-emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut child = Reap(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let printed = BufReader::new(stdout)
        .lines()
        .take(lines)
        .map(|line| {
            let line = line.expect("line");
            let (k, v) = line.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    (child, printed)
}

fn value(lines: &[(String, String)], key: &str) -> String {
    lines
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .expect(key)
}

/// Sends SIGTERM and waits (bounded) for a clean exit.
async fn terminate(child: &mut Reap) {
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
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the binary did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn binary_prints_urls_serves_and_stops_on_sigterm() {
    let (mut child, lines) = spawn(
        &[
            "--referrals",
            "50",
            "--auto-approve-after",
            "0",
            "--faults",
            "429:every=1000",
        ],
        6,
    );
    let value = |key: &str| value(&lines, key);
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

    terminate(&mut child).await;
}

#[tokio::test]
async fn binary_with_tls_serves_https_and_removes_its_ca_file_at_stop() {
    let (mut child, lines) = spawn(&["--referrals", "5", "--tls"], 7);
    let base = value(&lines, "base_url");
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let ca_cert = PathBuf::from(value(&lines, "ca_cert"));
    let pem = std::fs::read(&ca_cert).expect("the CA file is written");
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("PEM")])
        .build()
        .expect("client builds");
    let index: Value = client
        .get(value(&lines, "control_url"))
        .send()
        .await
        .expect("answered over https")
        .json()
        .await
        .expect("JSON");
    assert_eq!(index["authority_url"], base);

    terminate(&mut child).await;
    assert!(!ca_cert.exists(), "{} outlived the run", ca_cert.display());
}
