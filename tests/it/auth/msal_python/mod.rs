//! MSAL Python, the real library from the Python package index, signs in against the emulator
//! over TLS (MSAL refuses http authorities), and our `status` reads the token cache it wrote.
//! `scripts/ensure-tools msal` installs it into the project's venv at `target/py`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use partner_center_sync::auth::{self, AuthState};
use pc_emulator::EmulatorConfig;
use serde_json::Value;

use super::{SCOPE, USERNAME, finish, provider, requests_to_token, setup, text};

fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin/python");
    assert!(
        python.exists(),
        "MSAL Python is not installed: run scripts/ensure-tools msal first ({} is missing)",
        python.display()
    );
    python
}

#[tokio::test]
async fn msal_python_signs_in_over_tls_and_our_status_reads_its_cache() {
    let s = setup(EmulatorConfig {
        tls: true,
        // One `authorization_pending` first, so MSAL's polling is exercised too.
        auto_approve_after: Some(1),
        ..EmulatorConfig::default()
    })
    .await;
    let state = s.cache.parent().expect("state dir");
    std::fs::create_dir_all(state).expect("state dir");
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let ca = state.join("emulator-ca.pem");
    std::fs::write(&ca, s.emulator.ca_certificate_pem().expect("tls is on")).expect("CA file");

    let child = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/auth/msal_python/sign_in.py"))
        .arg(format!(
            "{}/{}",
            s.emulator.authority_url(),
            s.emulator.tenant_id()
        ))
        .arg(s.emulator.client_id())
        .arg(SCOPE)
        .arg(&s.cache)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    let out = finish(child).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let outcome: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(outcome["username"], USERNAME, "{outcome}");
    assert_eq!(outcome["tenant_id"], s.emulator.tenant_id().as_str());
    assert_eq!(outcome["environment"], "127.0.0.1");
    assert_eq!(outcome["signed_in_source"], "identity_provider");
    assert_eq!(outcome["refreshed_source"], "identity_provider");
    assert_eq!(outcome["new_access_token"], true, "{outcome}");
    let stats = s.emulator.stats();
    assert_eq!(
        (
            stats.device_codes_issued,
            stats.refreshes,
            stats.tokens_issued
        ),
        (1, 1, 2),
        "one sign-in and one refresh: {stats:?}"
    );

    let report = auth::status(&s.config).expect("status reads MSAL Python's cache");
    assert_eq!(report.account.as_deref(), Some(USERNAME), "{report}");
    assert_eq!(report.tenant, s.emulator.tenant_id());
    assert!(report.access_token_usable, "{report}");
    assert!(!report.sign_in_required, "{report}");
    assert_eq!(report.refresh_token_age_days, Some(0));
    let before = requests_to_token(&s.emulator);
    let p = provider(&s);
    assert!(
        matches!(p.state(), AuthState::SignedIn { ref account, .. } if account == USERNAME),
        "{:?}",
        p.state()
    );
    p.access_token()
        .await
        .expect("MSAL's access token is used as it is");
    assert_eq!(
        requests_to_token(&s.emulator),
        before,
        "the authority is not contacted"
    );
}
