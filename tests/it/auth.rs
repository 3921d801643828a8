//! Sign-in, the MSAL token cache and silent refresh, against the emulator over real HTTP;
//! `login` and `logout` also as the real binary.

mod msal_python;
use crate::support;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use partner_center_sync::auth::{self, AuthError, AuthState, TokenProvider};
use partner_center_sync::config::Config;
use pc_emulator::{Emulator, EmulatorConfig, PathKind, Redirect, Service, TokenResponse};
use serde_json::{Value, json};

const SCOPE: &str = "https://api.partner.microsoft.com/user_impersonation";
/// The emulator's granted scope, sorted as MSAL stores `target`.
const GRANTED_TARGET: &str =
    "https://api.partner.microsoft.com/user_impersonation offline_access openid profile";
const USERNAME: &str = "referral-sync@adatumpartners.com";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Azure CLI, a first-party app whose entries an MSAL cache commonly holds too.
const FOREIGN_CLIENT: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

struct Setup {
    emulator: Emulator,
    _dir: tempfile::TempDir,
    cache: PathBuf,
    config: Config,
}

async fn setup(emulator_config: EmulatorConfig) -> Setup {
    log_capture();
    let emulator = Emulator::start(emulator_config)
        .await
        .expect("emulator starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("state").join("msal_token_cache.json");
    let config = Config {
        enabled: true,
        client_id: Some(emulator.client_id()),
        tenant_id: Some(emulator.tenant_id()),
        authority_url: url::Url::parse(&emulator.authority_url()).expect("authority url"),
        api_url: url::Url::parse(&emulator.api_url()).expect("api url"),
        token_cache: cache.clone(),
        retry_max_attempts: 3,
        retry_max_delay: Duration::from_secs(2),
        http_timeout: Duration::from_secs(15),
        ..Config::default()
    };
    Setup {
        emulator,
        _dir: dir,
        cache,
        config,
    }
}

fn provider(s: &Setup) -> TokenProvider {
    let http = partner_center_sync::outbound::http_client(&s.config).expect("http client");
    TokenProvider::new(&s.config, http).expect("provider")
}

/// Compares secrets without printing them when the assertion fails.
fn same(a: &str, b: &str, what: &str) {
    assert!(a == b, "expected the same token: {what}");
}

fn differ(a: &str, b: &str, what: &str) {
    assert!(a != b, "expected a different token: {what}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("cache file"))
        .expect("cache is JSON")
}

fn write_private(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
    std::fs::set_permissions(
        path.parent().expect("parent"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("open cache");
    // MSAL Python's own layout: json.dumps(indent=4).
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    serde::Serialize::serialize(value, &mut ser).expect("serialise");
    f.write_all(&out).expect("write cache");
}

fn requests_to_token(emulator: &Emulator) -> u64 {
    emulator.stats().requests_to(PathKind::Token)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `"<uid>.<utid>"` from a token response's `client_info`.
fn home_account_id(tokens: &TokenResponse) -> String {
    let raw = tokens.client_info.as_deref().expect("client_info");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .expect("base64url");
    let info: Value = serde_json::from_slice(&bytes).expect("json");
    format!(
        "{}.{}",
        info["uid"].as_str().expect("uid"),
        info["utid"].as_str().expect("utid")
    )
}

fn oid(home: &str) -> &str {
    home.split_once('.').expect("uid.utid").0
}

/// An MSAL Python cache in the layout of the identity reference's example (4.6), pointed at
/// the emulator (environment `127.0.0.1`), holding `tokens` for our client, plus another
/// app's entries, an unknown section and unknown fields, as real shared caches do.
fn msal_fixture(s: &Setup, tokens: &TokenResponse, at_expires_on: i64) -> Value {
    let home = home_account_id(tokens);
    let client = s.emulator.client_id();
    let tenant = s.emulator.tenant_id();
    let env = "127.0.0.1";
    let target = SCOPE;
    let cached_at = now() - 600;
    let mut v = json!({
        "AccessToken": {
            format!("{home}-{env}-accesstoken-{client}-{tenant}-{target}"): {
                "credential_type": "AccessToken",
                "secret": tokens.access_token,
                "home_account_id": home,
                "environment": env,
                "client_id": client,
                "target": target,
                "realm": tenant,
                "token_type": "Bearer",
                "cached_at": cached_at.to_string(),
                "expires_on": at_expires_on.to_string(),
                "extended_expires_on": at_expires_on.to_string()
            },
            format!("{home}-{env}-accesstoken-{FOREIGN_CLIENT}-{tenant}-https://management.core.windows.net//user_impersonation"): {
                "credential_type": "AccessToken",
                "secret": "foreign-access-token",
                "home_account_id": home,
                "environment": env,
                "client_id": FOREIGN_CLIENT,
                "target": "https://management.core.windows.net//user_impersonation",
                "realm": tenant,
                "token_type": "Bearer",
                "cached_at": "1795000000",
                "expires_on": "1795004500",
                "extended_expires_on": "1795004500"
            }
        },
        "Account": {
            format!("{home}-{env}-{tenant}"): {
                "home_account_id": home,
                "environment": env,
                "realm": tenant,
                "local_account_id": oid(&home),
                "username": USERNAME,
                "authority_type": "MSSTS",
                "account_source": DEVICE_CODE_GRANT
            },
            "someone.else-login.microsoftonline.com-organizations": {
                "home_account_id": "someone.else",
                "environment": "login.microsoftonline.com",
                "realm": "organizations",
                "local_account_id": "someone",
                "username": "someone@contoso.example",
                "authority_type": "MSSTS"
            }
        },
        "IdToken": {
            format!("{home}-{env}-idtoken-{client}-{tenant}-"): {
                "credential_type": "IdToken",
                "secret": tokens.id_token.clone().expect("id token"),
                "home_account_id": home,
                "environment": env,
                "realm": tenant,
                "client_id": client
            }
        },
        "RefreshToken": {
            format!("{home}-{env}-refreshtoken-{client}--{target}"): {
                "credential_type": "RefreshToken",
                "secret": tokens.refresh_token.clone().expect("refresh token"),
                "home_account_id": home,
                "environment": env,
                "client_id": client,
                "target": target,
                "last_modification_time": cached_at.to_string(),
                "last_modification_app": "msal-node-test"
            },
            format!("{home}-{env}-refreshtoken-{FOREIGN_CLIENT}--"): {
                "credential_type": "RefreshToken",
                "secret": "foreign-refresh-token",
                "home_account_id": home,
                "environment": env,
                "client_id": FOREIGN_CLIENT,
                "target": "",
                "last_modification_time": "1795000000",
                "family_id": "1"
            },
            "someone.else-login.microsoftonline.com-refreshtoken-04b07795-8ddb-461a-bbee-02f9e1bf7b46--": {
                "credential_type": "RefreshToken",
                "secret": "someone-elses-refresh-token",
                "home_account_id": "someone.else",
                "environment": "login.microsoftonline.com",
                "client_id": FOREIGN_CLIENT,
                "last_modification_time": 1795000000
            }
        },
        "AppMetadata": {
            format!("appmetadata-{env}-{client}"): { "client_id": client, "environment": env },
            format!("appmetadata-{env}-{FOREIGN_CLIENT}"): { "client_id": FOREIGN_CLIENT, "environment": env, "family_id": "1" }
        }
    });
    v["FutureSection"] = json!({"written-by": {"a newer MSAL": true}});
    v
}

fn our_refresh_token(cache: &Value, s: &Setup) -> String {
    let client = s.emulator.client_id();
    let ours: Vec<&Value> = cache["RefreshToken"]
        .as_object()
        .expect("section")
        .values()
        .filter(|e| e["client_id"] == client.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "one refresh token for our client: {ours:?}");
    ours[0]["secret"].as_str().expect("secret").to_owned()
}

/// Every entry of the fixture not belonging to our client, by section and key.
fn foreign_entries(cache: &Value, client: &str) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (section, entries) in cache.as_object().expect("object") {
        for (key, entry) in entries.as_object().expect("section") {
            if entry.get("client_id").and_then(Value::as_str) != Some(client)
                && !(section == "Account" && key.contains(USERNAME))
            {
                out.push((section.clone(), key.clone(), entry.clone()));
            }
        }
    }
    out
}

/// Waits (bounded) for the login to show a user code, then approves or declines it.
async fn decide(emulator: &Emulator, approve: bool) {
    for _ in 0..400 {
        if let Some(code) = emulator.pending_user_codes().first() {
            let done = if approve {
                emulator.approve(code)
            } else {
                emulator.decline(code)
            };
            assert!(done, "decision on {code} accepted");
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no device code became pending");
}

async fn login_approved(s: &Setup, force: bool) -> auth::LoginOutcome {
    let (outcome, ()) = tokio::join!(auth::login(&s.config, force), decide(&s.emulator, true));
    outcome.expect("login succeeds")
}

/// Everything logged by this test binary at TRACE, from every crate.
fn log_capture() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let sink = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(move || BufferWriter(sink.clone()))
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
            buffer
        })
        .clone()
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn login_with_approval_writes_a_private_cache_in_msal_format() {
    let s = setup(EmulatorConfig::default()).await;
    let outcome = login_approved(&s, false).await;
    assert_eq!(outcome.account, USERNAME);
    assert_eq!(outcome.tenant_id, s.emulator.tenant_id());
    assert!(!outcome.already_signed_in);
    assert!(outcome.to_string().contains(USERNAME), "{outcome}");

    assert_eq!(mode(&s.cache), 0o600, "cache file mode");
    assert_eq!(
        mode(s.cache.parent().expect("dir")),
        0o700,
        "created directory mode"
    );
    assert!(
        !PathBuf::from(format!("{}.lockfile", s.cache.display())).exists(),
        "lock released"
    );
    let text = std::fs::read_to_string(&s.cache).expect("cache");
    assert!(
        text.starts_with("{\n    \"AccessToken\": {\n        \""),
        "json.dumps(indent=4) layout:\n{text}"
    );

    let cache = read_json(&s.cache);
    let client = s.emulator.client_id();
    let tenant = s.emulator.tenant_id();
    let sections: Vec<&String> = cache.as_object().expect("object").keys().collect();
    assert_eq!(
        sections,
        [
            "AccessToken",
            "Account",
            "IdToken",
            "RefreshToken",
            "AppMetadata"
        ]
    );
    let only = |section: &str| -> (String, Value) {
        let entries = cache[section].as_object().expect("section");
        assert_eq!(entries.len(), 1, "{section}: {entries:?}");
        let (k, v) = entries.iter().next().expect("entry");
        (k.clone(), v.clone())
    };
    let fields =
        |v: &Value| -> Vec<String> { v.as_object().expect("entry").keys().cloned().collect() };

    let (rt_key, rt) = only("RefreshToken");
    let home = rt["home_account_id"].as_str().expect("home").to_owned();
    assert_eq!(home, format!("{}.{tenant}", oid(&home)));
    let expect_key = |k: String| k.to_lowercase();

    let (at_key, at) = only("AccessToken");
    assert_eq!(
        at_key,
        expect_key(format!(
            "{home}-127.0.0.1-accesstoken-{client}-{tenant}-{GRANTED_TARGET}"
        ))
    );
    assert_eq!(
        fields(&at),
        [
            "credential_type",
            "secret",
            "home_account_id",
            "environment",
            "client_id",
            "target",
            "realm",
            "token_type",
            "cached_at",
            "expires_on",
            "extended_expires_on"
        ]
    );
    assert_eq!(at["credential_type"], "AccessToken");
    assert_eq!(at["environment"], "127.0.0.1", "host without the port");
    assert_eq!(at["realm"], tenant.as_str());
    assert_eq!(at["target"], GRANTED_TARGET);
    assert_eq!(at["token_type"], "Bearer");
    for ts in ["cached_at", "expires_on", "extended_expires_on"] {
        let value = at[ts]
            .as_str()
            .unwrap_or_else(|| panic!("{ts} is a string"));
        assert!(value.parse::<i64>().is_ok(), "{ts} = {value}");
    }
    let lifetime = at["expires_on"]
        .as_str()
        .and_then(|v| v.parse::<i64>().ok())
        .expect("expires_on")
        - at["cached_at"]
            .as_str()
            .and_then(|v| v.parse::<i64>().ok())
            .expect("cached_at");
    assert_eq!(lifetime, 3600);

    let (account_key, account) = only("Account");
    assert_eq!(
        account_key,
        expect_key(format!("{home}-127.0.0.1-{tenant}"))
    );
    assert_eq!(
        fields(&account),
        [
            "home_account_id",
            "environment",
            "realm",
            "local_account_id",
            "username",
            "authority_type",
            "account_source"
        ]
    );
    assert_eq!(account["username"], USERNAME);
    assert_eq!(account["local_account_id"], oid(&home));
    assert_eq!(account["authority_type"], "MSSTS");
    assert_eq!(account["account_source"], DEVICE_CODE_GRANT);

    let (id_key, id) = only("IdToken");
    assert_eq!(
        id_key,
        expect_key(format!("{home}-127.0.0.1-idtoken-{client}-{tenant}-"))
    );
    assert_eq!(
        fields(&id),
        [
            "credential_type",
            "secret",
            "home_account_id",
            "environment",
            "realm",
            "client_id"
        ]
    );

    assert_eq!(
        rt_key,
        expect_key(format!(
            "{home}-127.0.0.1-refreshtoken-{client}--{GRANTED_TARGET}"
        ))
    );
    assert_eq!(
        fields(&rt),
        [
            "credential_type",
            "secret",
            "home_account_id",
            "environment",
            "client_id",
            "target",
            "last_modification_time"
        ]
    );
    assert!(rt["secret"].as_str().is_some_and(|s| !s.is_empty()));

    let (md_key, md) = only("AppMetadata");
    assert_eq!(md_key, format!("appmetadata-127.0.0.1-{client}"));
    assert_eq!(md, json!({"client_id": client, "environment": "127.0.0.1"}));

    // Silent use afterwards: the fresh access token, without contacting the authority.
    let before = requests_to_token(&s.emulator);
    let token = provider(&s).access_token().await.expect("token");
    same(
        token.secret(),
        at["secret"].as_str().expect("secret"),
        "the cached access token",
    );
    assert_eq!(requests_to_token(&s.emulator), before);

    // A second `login` keeps the working login; `--force` signs in again.
    let again = auth::login(&s.config, false)
        .await
        .expect("already signed in");
    assert!(again.already_signed_in);
    let codes_before = s.emulator.stats().device_codes_issued;
    let forced = login_approved(&s, true).await;
    assert!(!forced.already_signed_in);
    assert_eq!(s.emulator.stats().device_codes_issued, codes_before + 1);
    differ(
        &our_refresh_token(&read_json(&s.cache), &s),
        rt["secret"].as_str().expect("secret"),
        "a new refresh token",
    );
}

#[tokio::test]
async fn declined_sign_in_stops_with_a_message_and_leaves_the_cache_alone() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() - 60));
    let before = std::fs::read(&s.cache).expect("cache");
    let (result, ()) = tokio::join!(auth::login(&s.config, true), decide(&s.emulator, false));
    let err = result.expect_err("declined");
    assert!(matches!(err, AuthError::LoginDeclined), "{err:?}");
    assert!(
        err.to_string().contains("declined") && err.to_string().contains("nothing was saved"),
        "{err}"
    );
    assert_ne!(err.exit_code(), 0);
    assert_eq!(
        std::fs::read(&s.cache).expect("cache"),
        before,
        "cache unchanged"
    );
}

#[tokio::test]
async fn expired_device_code_stops_with_a_message_and_writes_nothing() {
    let s = setup(EmulatorConfig {
        device_code_lifetime: Duration::from_secs(3),
        ..EmulatorConfig::default()
    })
    .await;
    let err = auth::login(&s.config, false).await.expect_err("expires");
    assert!(matches!(err, AuthError::LoginExpired { .. }), "{err:?}");
    assert!(
        err.to_string().contains("expired") && err.to_string().contains("login"),
        "{err}"
    );
    assert_ne!(err.exit_code(), 0);
    assert!(s.emulator.stats().device_code_polls >= 1, "it polled");
    assert!(!s.cache.exists(), "no cache written");
}

#[tokio::test]
async fn an_msal_python_cache_is_used_silently_and_foreign_entries_survive_a_refresh() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    let fixture = msal_fixture(&s, &tokens, now() + 3000);
    write_private(&s.cache, &fixture);
    let p = provider(&s);
    assert!(
        matches!(p.state(), AuthState::SignedIn { ref account, .. } if account == USERNAME),
        "{:?}",
        p.state()
    );

    // Valid for 50 more minutes: reused, the authority is not contacted.
    let token = p.access_token().await.expect("silent token");
    same(
        token.secret(),
        &tokens.access_token,
        "the fixture's access token",
    );
    assert_eq!(requests_to_token(&s.emulator), 0);
    assert_eq!(
        std::fs::read_to_string(&s.cache).expect("cache"),
        {
            let mut out = Vec::new();
            let mut ser = serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            serde::Serialize::serialize(&fixture, &mut ser).expect("serialise");
            String::from_utf8(out).expect("utf8")
        },
        "a silent hit does not rewrite the file"
    );

    // The API rejected it: one forced refresh, and the cache is rewritten by us.
    let fresh = p.refresh_after_rejection(&token).await.expect("refreshed");
    differ(fresh.secret(), token.secret(), "a new access token");
    assert_eq!(s.emulator.stats().refreshes, 1);
    let rewritten = read_json(&s.cache);
    let client = s.emulator.client_id();
    assert_eq!(
        foreign_entries(&rewritten, &client),
        foreign_entries(&fixture, &client),
        "other apps' entries are kept"
    );
    assert_eq!(
        rewritten["FutureSection"], fixture["FutureSection"],
        "unknown sections are kept"
    );
    let rt_key = format!(
        "{}-127.0.0.1-refreshtoken-{client}--{SCOPE}",
        home_account_id(&tokens)
    )
    .to_lowercase();
    assert_eq!(
        rewritten["RefreshToken"][&rt_key]["last_modification_app"], "msal-node-test",
        "unknown fields are kept"
    );
    assert!(
        rewritten["RefreshToken"][&rt_key]["secret"] != fixture["RefreshToken"][&rt_key]["secret"],
        "rotated in place"
    );
    assert_eq!(mode(&s.cache), 0o600);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_and_the_rotated_refresh_token_persisted() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() + 120));
    let original_rt = tokens.refresh_token.clone().expect("rt");

    let p = provider(&s);
    let token = p.access_token().await.expect("refreshed");
    differ(
        token.secret(),
        &tokens.access_token,
        "under 5 minutes left counts as expired",
    );
    assert!(token.expires_on > chrono::Utc::now() + chrono::Duration::minutes(55));
    assert_eq!(s.emulator.stats().refreshes, 1);

    let cache = read_json(&s.cache);
    let rotated = our_refresh_token(&cache, &s);
    differ(
        &rotated,
        &original_rt,
        "the rotated refresh token is on disk",
    );
    let at_secrets: Vec<&str> = cache["AccessToken"]
        .as_object()
        .expect("section")
        .values()
        .filter(|e| e["client_id"] == s.emulator.client_id().as_str())
        .map(|e| e["secret"].as_str().expect("secret"))
        .collect();
    assert!(
        at_secrets == [token.secret()],
        "the new access token replaced the old one ({} of ours)",
        at_secrets.len()
    );

    // Used again: no second refresh, in this process or a new one.
    same(
        p.access_token().await.expect("cached").secret(),
        token.secret(),
        "from memory",
    );
    same(
        provider(&s)
            .access_token()
            .await
            .expect("from file")
            .secret(),
        token.secret(),
        "from the file",
    );
    assert_eq!(s.emulator.stats().refreshes, 1);

    // The next refresh redeems the rotated token, not the superseded one.
    p.refresh_after_rejection(&token)
        .await
        .expect("second refresh");
    let stats = s.emulator.stats();
    assert_eq!(stats.refreshes, 2);
    assert_eq!(stats.refreshes_with_superseded_token, 0);
}

#[tokio::test]
async fn a_refresh_token_rotated_by_another_process_is_picked_up() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() - 60));
    let ours = provider(&s);
    assert!(matches!(ours.state(), AuthState::SignedIn { .. }));

    // Another daemon (its own provider, its own memory) refreshes first and rotates it.
    let other = provider(&s);
    let theirs = other.access_token().await.expect("other process refreshes");
    let rotated = our_refresh_token(&read_json(&s.cache), &s);
    differ(
        &rotated,
        tokens.refresh_token.as_deref().expect("rt"),
        "rotated by the other process",
    );

    // Ours finds their fresh access token in the file: no second refresh at all.
    same(
        ours.access_token().await.expect("picked up").secret(),
        theirs.secret(),
        "their access token",
    );
    assert_eq!(s.emulator.stats().refreshes, 1);

    // And when ours must refresh, it redeems their rotated refresh token.
    ours.refresh_after_rejection(&theirs)
        .await
        .expect("refresh with the rotated token");
    assert_eq!(s.emulator.stats().refreshes_with_superseded_token, 0);
}

#[tokio::test]
async fn invalid_grant_rereads_the_cache_and_retries_with_a_token_another_process_wrote() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    let mut stale = msal_fixture(&s, &tokens, now() - 60);
    let rt_key = format!(
        "{}-127.0.0.1-refreshtoken-{}--{SCOPE}",
        home_account_id(&tokens),
        s.emulator.client_id()
    )
    .to_lowercase();
    stale["RefreshToken"][&rt_key]["secret"] =
        "1.AQ-a-token-the-authority-no-longer-accepts".into();
    write_private(&s.cache, &stale);
    let p = provider(&s);

    // Another process holds the cache lock, about to write a login with a good token.
    let lock = auth::cache_lock::CacheLock::acquire(&s.cache, Duration::ZERO).expect("lock");
    let task = tokio::spawn({
        let p = p.clone();
        async move { p.access_token().await }
    });
    for _ in 0..400 {
        if s.emulator.stats().requests_with(PathKind::Token, 400) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        s.emulator.stats().requests_with(PathKind::Token, 400),
        1,
        "the stale token was refused"
    );
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() - 60));
    drop(lock);

    let token = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("finishes")
        .expect("joins");
    let token = token.expect("not sign-in required: the new refresh token was used");
    differ(
        token.secret(),
        &tokens.access_token,
        "a refreshed access token",
    );
    assert_eq!(s.emulator.stats().refreshes, 1);
    assert!(
        matches!(p.state(), AuthState::SignedIn { .. }),
        "{:?}",
        p.state()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_token_requests_cause_exactly_one_refresh() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() - 60));
    let p = provider(&s);
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let p = p.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                p.access_token().await.map(|t| t.secret().to_owned())
            })
        })
        .collect();
    let mut secrets = Vec::new();
    for t in tasks {
        secrets.push(t.await.expect("joins").expect("token"));
    }
    secrets.dedup();
    assert_eq!(secrets.len(), 1, "everyone got the one new token");
    assert_eq!(s.emulator.stats().refreshes, 1);
    assert_eq!(requests_to_token(&s.emulator), 1);

    // Ten callers reporting the same rejected token: still one refresh.
    let rejected = p.access_token().await.expect("token");
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (p, rejected) = (p.clone(), rejected.clone());
            tokio::spawn(async move {
                p.refresh_after_rejection(&rejected)
                    .await
                    .map(|t| t.secret().to_owned())
            })
        })
        .collect();
    for t in tasks {
        differ(
            &t.await.expect("joins").expect("token"),
            rejected.secret(),
            "a replacement",
        );
    }
    assert_eq!(s.emulator.stats().refreshes, 2);
}

#[tokio::test]
async fn a_revoked_refresh_token_means_sign_in_required_without_retry_loops() {
    let s = setup(EmulatorConfig::default()).await;
    login_approved(&s, false).await;
    let before = std::fs::read(&s.cache).expect("cache");
    s.emulator.revoke_refresh_tokens();
    let p = provider(&s);
    let token = p
        .access_token()
        .await
        .expect("the access token is still valid");
    let err = p
        .refresh_after_rejection(&token)
        .await
        .expect_err("revoked");
    assert!(err.is_sign_in_required(), "{err:?}");
    assert_eq!(err.exit_code(), 77);
    let text = err.to_string();
    assert!(
        text.starts_with("Sign-in required: run `partner-center-sync login`"),
        "{text}"
    );
    assert!(text.contains("50173"), "names the AADSTS code: {text}");
    assert!(
        matches!(p.state(), AuthState::SignInRequired { .. }),
        "{:?}",
        p.state()
    );
    assert_eq!(
        std::fs::read(&s.cache).expect("cache"),
        before,
        "the old login is kept for diagnosis"
    );

    let requests = requests_to_token(&s.emulator);
    assert!(
        p.access_token()
            .await
            .expect_err("still revoked")
            .is_sign_in_required()
    );
    assert_eq!(
        requests_to_token(&s.emulator),
        requests,
        "a refused refresh token is not retried"
    );

    let report = auth::status(&s.config).expect("status");
    assert_eq!(report.account.as_deref(), Some(USERNAME));

    // A new login lifts it.
    login_approved(&s, true).await;
    let token = p.access_token().await.expect("signed in again");
    assert!(p.refresh_after_rejection(&token).await.is_ok());
}

#[tokio::test]
async fn a_cache_readable_by_others_is_refused() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() + 3000));
    std::fs::set_permissions(&s.cache, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let http = partner_center_sync::outbound::http_client(&s.config).expect("http");
    let err = TokenProvider::new(&s.config, http).err().expect("refused");
    assert!(matches!(err, AuthError::Cache { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("chmod 600 {}", s.cache.display())),
        "{err}"
    );
    assert!(auth::status(&s.config).is_err());
    assert!(auth::login(&s.config, true).await.is_err());
    assert_eq!(
        s.emulator.stats().device_codes_issued,
        0,
        "login refuses before starting"
    );
}

#[tokio::test]
async fn status_and_logout_report_and_remove_only_our_login() {
    let s = setup(EmulatorConfig::default()).await;
    let report = auth::status(&s.config).expect("status without a cache");
    assert!(report.sign_in_required);

    let tokens = s.emulator.issue_tokens();
    let fixture = msal_fixture(&s, &tokens, now() + 3000);
    write_private(&s.cache, &fixture);
    let report = auth::status(&s.config).expect("status");
    assert_eq!(report.account.as_deref(), Some(USERNAME));
    assert_eq!(report.tenant, s.emulator.tenant_id());
    assert!(report.access_token_usable);
    assert!(!report.sign_in_required);
    assert_eq!(report.refresh_token_age_days, Some(0));
    let closes = report.refresh_token_inactivity_expires_on.expect("window");
    assert!(
        (closes - chrono::Utc::now() - chrono::Duration::days(90))
            .num_minutes()
            .abs()
            < 15,
        "{closes}"
    );
    let shown = report.to_string();
    assert!(
        shown.contains(USERNAME) && shown.contains("Sign-in required:     no"),
        "{shown}"
    );
    let json = serde_json::to_value(&report).expect("serialises");
    assert_eq!(json["account"], USERNAME);
    assert!(
        !shown.contains(&tokens.access_token) && !json.to_string().contains(&tokens.access_token)
    );

    let outcome = auth::logout(&s.config).expect("logout");
    assert_eq!(outcome.accounts, [USERNAME]);
    let after = read_json(&s.cache);
    let client = s.emulator.client_id();
    assert_eq!(
        foreign_entries(&after, &client),
        foreign_entries(&fixture, &client),
        "other apps' entries stay"
    );
    assert!(
        after["Account"]
            .as_object()
            .expect("accounts")
            .keys()
            .any(|k| k.contains(oid(&home_account_id(&tokens)))),
        "the account stays while another app still holds tokens for it"
    );
    for section in ["AccessToken", "RefreshToken", "IdToken"] {
        assert!(
            after[section]
                .as_object()
                .expect("section")
                .values()
                .all(|e| e["client_id"] != client.as_str()),
            "{section}"
        );
    }
    assert!(auth::status(&s.config).expect("status").sign_in_required);
    let err = provider(&s).access_token().await.expect_err("signed out");
    assert!(err.is_sign_in_required(), "{err}");
    assert!(
        auth::logout(&s.config)
            .expect("idempotent")
            .accounts
            .is_empty()
    );
}

#[tokio::test]
async fn an_unparseable_cache_is_set_aside_and_reported_as_sign_in_required() {
    let s = setup(EmulatorConfig::default()).await;
    std::fs::create_dir_all(s.cache.parent().expect("dir")).expect("dir");
    std::fs::write(&s.cache, "{\"AccessToken\": {").expect("torn file");
    std::fs::set_permissions(&s.cache, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = provider(&s).access_token().await.expect_err("corrupt");
    assert!(err.is_sign_in_required(), "{err}");
    assert!(err.to_string().contains("moved to"), "{err}");
    assert!(!s.cache.exists());
    login_approved(&s, false).await;
    assert!(provider(&s).access_token().await.is_ok());
}

#[tokio::test]
async fn a_confidential_client_sends_its_secret_and_trace_logs_hold_no_token() {
    let secret = "emulator-client-secret-value-0123456789";
    let s = setup(EmulatorConfig {
        client_secret: Some(secret.into()),
        ..EmulatorConfig::default()
    })
    .await;
    let mut config = s.config.clone();
    config.client_secret = Some(secrecy::SecretString::from(secret));
    let s = Setup { config, ..s };
    let logs = log_capture();

    login_approved(&s, false).await;
    let cache = read_json(&s.cache);
    let first_rt = our_refresh_token(&cache, &s);
    let p = provider(&s);
    let token = p.access_token().await.expect("token");
    let refreshed = p
        .refresh_after_rejection(&token)
        .await
        .expect("refresh with the client secret");
    let cache = read_json(&s.cache);
    let mut secrets: Vec<String> = vec![
        secret.into(),
        first_rt,
        our_refresh_token(&cache, &s),
        token.secret().into(),
        refreshed.secret().into(),
    ];
    for section in ["AccessToken", "IdToken", "RefreshToken"] {
        for entry in cache[section].as_object().expect("section").values() {
            secrets.push(entry["secret"].as_str().expect("secret").to_owned());
        }
    }

    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        text.contains("login_succeeded") && text.contains("access_token_refreshed"),
        "our events were captured"
    );
    assert!(text.contains("TRACE"), "TRACE level was captured");
    for s in &secrets {
        assert!(s.len() > 20);
        assert!(
            !text.contains(s.as_str()),
            "a token or secret leaked into the logs"
        );
    }
    assert!(
        !text.contains("DAQABIQEAAAD"),
        "a device code leaked into the logs"
    );
}

#[tokio::test]
async fn misconfiguration_names_the_key_even_when_reported_with_http_200() {
    let s = setup(EmulatorConfig::default()).await;
    let mut config = s.config.clone();
    config.client_id = Some("00000000-0000-0000-0000-000000000000".into());
    let err = auth::login(&config, false)
        .await
        .expect_err("unknown client");
    assert!(
        matches!(
            err,
            AuthError::Configuration {
                key: "client_id",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 78);
    assert!(err.to_string().contains("700016"), "{err}");
    assert_eq!(
        s.emulator.stats().requests_with(PathKind::DeviceCode, 200),
        1,
        "the emulator answered this error with HTTP 200"
    );

    let mut config = s.config.clone();
    config.tenant_id = Some("11111111-2222-3333-4444-555555555555".into());
    let err = auth::login(&config, false)
        .await
        .expect_err("unknown tenant");
    assert!(
        matches!(
            err,
            AuthError::Configuration {
                key: "tenant_id",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!s.cache.exists());
}

#[tokio::test]
async fn an_unreachable_authority_is_transient_and_a_still_valid_token_is_kept() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    // A port nothing listens on: connection refused, a real network failure.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let mut config = s.config.clone();
    config.authority_url = url::Url::parse(&dead_url).expect("url");
    config.retry_max_attempts = 2;
    config.retry_max_delay = Duration::from_millis(200);
    let s = Setup { config, ..s };

    // Four minutes left: due for a refresh, which fails, so the token is kept for now.
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() + 240));
    let p = provider(&s);
    let token = p.access_token().await.expect("the still-valid token");
    same(
        token.secret(),
        &tokens.access_token,
        "kept while the authority is down",
    );

    // Expired: nothing to fall back on.
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() - 60));
    let err = provider(&s).access_token().await.expect_err("unreachable");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.exit_code(), 75);
    assert!(
        matches!(provider(&s).state(), AuthState::SignedIn { .. }),
        "a network failure is not a sign-out"
    );
}

/// The real binary's `login`, configured through the environment for this emulator.
fn spawn_cli(s: &Setup, args: &[&str], log_level: &str) -> std::process::Child {
    let mut c = support::command();
    c.args(args)
        .env(
            "HUNTER_PARTNER_CENTER_CLIENT_ID",
            s.config.client_id.as_deref().expect("client id"),
        )
        .env(
            "HUNTER_PARTNER_CENTER_TENANT_ID",
            s.config.tenant_id.as_deref().expect("tenant"),
        )
        .env(
            "HUNTER_PARTNER_CENTER_AUTHORITY_URL",
            s.config.authority_url.as_str(),
        )
        .env("HUNTER_PARTNER_CENTER_TOKEN_CACHE", &s.cache)
        // `status` asks a daemon at `listen` first: none may answer for these tests, even
        // when something runs on the default port on this machine.
        .env(
            "HUNTER_PARTNER_CENTER_LISTEN",
            format!("127.0.0.1:{}", unused_port()),
        )
        .env("RUST_LOG", log_level)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c.spawn().expect("binary starts")
}

/// A loopback port nothing listens on: bound, read, released.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

async fn finish(child: std::process::Child) -> std::process::Output {
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the binary finishes")
        .expect("joins")
        .expect("output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn cli_login_shows_the_code_saves_the_login_and_logs_no_token_at_trace() {
    let s = setup(EmulatorConfig::default()).await;
    let child = spawn_cli(&s, &["login"], "trace");
    decide(&s.emulator, true).await;
    let out = finish(child).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("Signed in as {USERNAME}")),
        "{stdout}"
    );
    assert!(stdout.contains(&s.emulator.tenant_id()), "{stdout}");
    assert!(
        stderr.contains(&format!("{}/devicelogin", s.emulator.base_url()))
            && stderr.contains("enter the code"),
        "Microsoft's message is shown on stderr"
    );
    assert!(
        stderr.contains("TRACE") || stderr.contains("\"level\":\"TRACE\""),
        "TRACE logs were on"
    );
    assert_eq!(mode(&s.cache), 0o600);

    let cache = read_json(&s.cache);
    for section in ["AccessToken", "IdToken", "RefreshToken"] {
        for entry in cache[section].as_object().expect("section").values() {
            let secret = entry["secret"].as_str().expect("secret");
            assert!(
                !stderr.contains(secret) && !stdout.contains(secret),
                "a {section} leaked into the output"
            );
        }
    }
    assert!(
        !stderr.contains("DAQABIQEAAAD"),
        "the device code leaked into the logs"
    );

    let out = finish(spawn_cli(&s, &["logout"], "info")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("Signed out {USERNAME}")),
        "{}",
        text(&out.stdout)
    );
    assert!(auth::status(&s.config).expect("status").sign_in_required);
}

/// The daemon says "run `login`" once the refresh token is revoked, while the cached
/// access token is still valid for an hour: `login` must not answer "Already signed in".
#[tokio::test]
async fn cli_login_after_revocation_signs_in_again_without_force() {
    let s = setup(EmulatorConfig::default()).await;
    login_approved(&s, false).await;
    let out = finish(spawn_cli(&s, &["login"], "info")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("Already signed in as {USERNAME}")),
        "a working login is kept: {}",
        text(&out.stdout)
    );

    s.emulator.revoke_refresh_tokens();
    let codes_before = s.emulator.stats().device_codes_issued;
    let tokens_before = requests_to_token(&s.emulator);
    let child = spawn_cli(&s, &["login"], "info");
    // The refused refresh, then at least one poll answered `authorization_pending`.
    for _ in 0..200 {
        if requests_to_token(&s.emulator) >= tokens_before + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(requests_to_token(&s.emulator) >= tokens_before + 2);
    decide(&s.emulator, true).await;
    let out = finish(child).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("authorization_pending")
            && !stderr.contains("\"level\":\"WARN\"")
            && !stderr.contains("\"level\":\"ERROR\""),
        "waiting for the operator is not a failure: {stderr}"
    );
    assert!(
        stdout.starts_with(&format!("Signed in as {USERNAME}")),
        "{stdout}"
    );
    assert!(stderr.contains("saved_login_unusable"), "{stderr}");
    assert_eq!(s.emulator.stats().device_codes_issued, codes_before + 1);
    let p = provider(&s);
    let token = p.access_token().await.expect("a token");
    assert!(
        p.refresh_after_rejection(&token).await.is_ok(),
        "the new login's refresh token works"
    );
}

#[tokio::test]
async fn cli_login_exits_nonzero_on_decline_130_on_ctrl_c_and_78_on_a_bad_client_id() {
    let s = setup(EmulatorConfig::default()).await;
    let child = spawn_cli(&s, &["login"], "info");
    decide(&s.emulator, false).await;
    let out = finish(child).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Sign-in was declined"),
        "{}",
        text(&out.stderr)
    );

    let child = spawn_cli(&s, &["login"], "info");
    for _ in 0..400 {
        if !s.emulator.pending_user_codes().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !s.emulator.pending_user_codes().is_empty(),
        "login is polling"
    );
    // SAFETY: kill(2) on the pid of our own child; no memory is involved.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0);
    let out = finish(child).await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cancelled"),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.cache.exists(), "nothing saved");

    let bad_client = Setup {
        config: Config {
            client_id: Some("00000000-0000-0000-0000-000000000000".into()),
            ..s.config.clone()
        },
        ..s
    };
    let out = finish(spawn_cli(&bad_client, &["login"], "info")).await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("check `client_id`"),
        "{}",
        text(&out.stderr)
    );
}

/// A second loopback server, where the emulator's redirects point. It records every
/// connection and byte and answers like a willing impostor (a token, a page with a foreign
/// referral), so a client that followed a redirect is caught whatever it did next.
struct Trap {
    url: String,
    received: Arc<Mutex<Vec<u8>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Trap {
    async fn start() -> Trap {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("trap binds");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (bytes, count) = (received.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let bytes = bytes.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf));
                    if let Ok(Ok(n)) = read.await {
                        bytes.lock().expect("trap").extend_from_slice(&buf[..n]);
                    }
                    let body = r#"{"access_token":"impostor","token_type":"Bearer","expires_in":3600,"value":[{"id":"foreign-referral"}]}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Trap {
            url,
            received,
            connections,
            task,
        }
    }

    /// Nothing connected; says how much arrived otherwise, without printing it (secrets).
    fn assert_untouched(&self) {
        let connections = self.connections.load(std::sync::atomic::Ordering::SeqCst);
        let bytes = self.received.lock().expect("trap").len();
        assert!(
            connections == 0 && bytes == 0,
            "the client followed the redirect: {connections} connection(s), {bytes} bytes"
        );
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real binary's `command` against this emulator and `db`, configured through the
/// environment as under systemd.
fn cli_with_db(s: &Setup, db: &support::TestDb, command: &str) -> std::process::Command {
    let mut c = support::command();
    c.arg(command)
        .env("HUNTER_PARTNER_CENTER_ENABLED", "true")
        .env(
            "HUNTER_PARTNER_CENTER_CLIENT_ID",
            s.config.client_id.as_deref().expect("client id"),
        )
        .env(
            "HUNTER_PARTNER_CENTER_TENANT_ID",
            s.config.tenant_id.as_deref().expect("tenant"),
        )
        .env(
            "HUNTER_PARTNER_CENTER_AUTHORITY_URL",
            s.config.authority_url.as_str(),
        )
        .env("HUNTER_PARTNER_CENTER_API_URL", s.config.api_url.as_str())
        .env("HUNTER_PARTNER_CENTER_TOKEN_CACHE", &s.cache)
        .env("HUNTER_PARTNER_CENTER_RETRY_MAX_DELAY", "1")
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

async fn count(db: &support::TestDb, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_307_from_identity_is_not_followed_so_no_secret_reaches_the_other_port() {
    let secret = "emulator-client-secret-value-0123456789";
    let s = setup(EmulatorConfig {
        client_secret: Some(secret.into()),
        ..EmulatorConfig::default()
    })
    .await;
    let tokens = s.emulator.issue_tokens();
    // Expired: the run has to redeem the refresh token first.
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() - 60));
    let before = std::fs::read(&s.cache).expect("cache");
    let trap = Trap::start().await;
    s.emulator.set_redirects(vec![Redirect {
        service: Service::Identity,
        status: 307,
        to: trap.url.clone(),
    }]);
    let db = support::TestDb::new().await;
    let mut cli = cli_with_db(&s, &db, "sync");
    cli.env("HUNTER_PARTNER_CENTER_CLIENT_SECRET", secret);
    let out = finish(cli.spawn().expect("binary starts")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let location = format!("{}/{}/oauth2/v2.0/token", trap.url, s.emulator.tenant_id());
    assert!(
        stderr.contains(&format!("HTTP 307 redirect to {location}, not followed")),
        "{stderr}"
    );
    trap.assert_untouched();
    assert_eq!(
        s.emulator.stats().requests_with(PathKind::Token, 307),
        1,
        "not retried within the run, like any other non-transient failure"
    );
    assert_eq!(
        std::fs::read(&s.cache).expect("cache"),
        before,
        "the cache is unchanged"
    );
    let refresh_token = tokens.refresh_token.as_deref().expect("refresh token");
    assert!(!stderr.contains(secret) && !stderr.contains(refresh_token));
    assert_eq!(
        count(&db, "SELECT count(*) FROM partner_center_referrals").await,
        0
    );
}

#[tokio::test]
async fn a_302_from_the_api_is_not_followed_so_no_token_leaves_and_no_foreign_row_arrives() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() + 3000));
    let trap = Trap::start().await;
    s.emulator.set_redirects(vec![Redirect {
        service: Service::Referrals,
        status: 302,
        to: trap.url.clone(),
    }]);
    let db = support::TestDb::new().await;
    let out = finish(cli_with_db(&s, &db, "sync").spawn().expect("binary starts")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let location = format!("{}/v1.0/engagements/referrals?", trap.url);
    assert!(
        stderr.contains("with a 302 redirect to") && stderr.contains(&location),
        "{stderr}"
    );
    trap.assert_untouched();
    assert!(!stderr.contains(&tokens.access_token));
    assert_eq!(
        s.emulator
            .stats()
            .requests_with(PathKind::ReferralList, 302),
        1,
        "not retried within the run"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM partner_center_referrals").await,
        0,
        "no foreign data"
    );
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, error FROM partner_center_sync_runs")
            .fetch_one(&db.pool)
            .await
            .expect("the run is recorded");
    assert_eq!(status, "failed");
    assert!(
        error.as_deref().is_some_and(|e| e.contains(&location)),
        "{error:?}"
    );

    // The switch off, the next run syncs as usual.
    s.emulator.set_redirects(Vec::new());
    let out = finish(cli_with_db(&s, &db, "sync").spawn().expect("binary starts")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// The real daemon, `run`, over `db`, for what it does at start-up.
async fn run_daemon(s: &Setup, db: &support::TestDb) -> std::process::Output {
    let mut c = cli_with_db(s, db, "run");
    c.env("HUNTER_PARTNER_CENTER_LISTEN", "127.0.0.1:0");
    finish(c.spawn().expect("binary starts")).await
}

#[tokio::test]
async fn a_refused_token_cache_stops_the_daemon_with_78_which_systemd_does_not_restart() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/partner-center-sync.service"
    ))
    .expect("unit file");
    let prevented: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .flat_map(str::split_whitespace)
        .collect();
    assert!(prevented.contains(&"78"), "{prevented:?}");

    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    let db = support::TestDb::new().await;
    write_private(&s.cache, &msal_fixture(&s, &tokens, now() + 3000));
    std::fs::set_permissions(&s.cache, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run_daemon(&s, &db).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 600 {}", s.cache.display())),
        "{stderr}"
    );

    std::fs::set_permissions(&s.cache, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let limit = 10 * 1024 * 1024;
    std::fs::File::options()
        .write(true)
        .open(&s.cache)
        .expect("open")
        .set_len(limit + 1)
        .expect("grow the cache past the limit");
    let out = run_daemon(&s, &db).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&format!("{} bytes, over the 10 MiB limit", limit + 1)),
        "{stderr}"
    );
    let out = finish(cli_with_db(&s, &db, "sync").spawn().expect("binary starts")).await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
}

#[tokio::test]
async fn a_symlinked_cache_is_refused_by_every_command_and_left_as_it_is() {
    let s = setup(EmulatorConfig::default()).await;
    let tokens = s.emulator.issue_tokens();
    let real = s
        .cache
        .parent()
        .and_then(Path::parent)
        .expect("dir")
        .join("elsewhere")
        .join("msal_token_cache.json");
    write_private(&real, &msal_fixture(&s, &tokens, now() + 3000));
    std::fs::create_dir_all(s.cache.parent().expect("dir")).expect("dir");
    std::os::unix::fs::symlink(&real, &s.cache).expect("symlink");
    let before = std::fs::read(&real).expect("target");
    let refusal = format!("is a symbolic link to {}", real.display());

    let out = finish(spawn_cli(&s, &["login"], "info")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains(&refusal) && stderr.contains(&s.cache.display().to_string()),
        "{stderr}"
    );
    assert_eq!(s.emulator.stats().device_codes_issued, 0);

    let out = finish(spawn_cli(&s, &["logout"], "info")).await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));
    let out = finish(spawn_cli(&s, &["status"], "info")).await;
    assert!(
        text(&out.stdout).contains(&refusal),
        "{}",
        text(&out.stdout)
    );
    let db = support::TestDb::new().await;
    let out = run_daemon(&s, &db).await;
    assert_eq!(out.status.code(), Some(78), "{}", text(&out.stderr));

    let link = std::fs::symlink_metadata(&s.cache).expect("link");
    assert!(link.file_type().is_symlink(), "the link was not replaced");
    assert_eq!(std::fs::read(&real).expect("target"), before);
}

/// Every file in `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            let meta = e.metadata().expect("meta");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap_or_default(),
                meta.modified().expect("mtime"),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn status_reports_a_corrupt_cache_and_changes_nothing_on_disk() {
    let s = setup(EmulatorConfig::default()).await;
    let out = finish(spawn_cli(&s, &["status"], "info")).await;
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    assert!(
        !s.cache.parent().expect("dir").exists(),
        "status creates no directory"
    );

    let dir = s.cache.parent().expect("dir");
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(&s.cache, "{\"AccessToken\": {").expect("torn file");
    std::fs::set_permissions(&s.cache, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let before = snapshot(dir);
    let out = finish(spawn_cli(&s, &["status"], "info")).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    assert!(
        stdout.contains("could not be parsed") && stdout.contains("left as it is"),
        "{stdout}"
    );
    let out = finish(spawn_cli(&s, &["status", "--json"], "info")).await;
    assert_eq!(out.status.code(), Some(77), "{}", text(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["auth"]["sign_in_required"], true);
    assert_eq!(snapshot(dir), before, "nothing moved, created or rewritten");
}

#[tokio::test]
async fn login_waits_for_a_held_cache_lock_and_then_saves_the_completed_sign_in() {
    let s = setup(EmulatorConfig::default()).await;
    let child = spawn_cli(&s, &["login"], "info");
    for _ in 0..400 {
        if !s.emulator.pending_user_codes().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Another process (this test, as a daemon refreshing would) holds the lock while the
    // operator completes the sign-in, and keeps it past the lock timeout.
    let lock = auth::cache_lock::CacheLock::acquire(&s.cache, Duration::from_secs(5))
        .expect("lock after the login's own check");
    decide(&s.emulator, true).await;
    for _ in 0..400 {
        if s.emulator.stats().tokens_issued > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(s.emulator.stats().tokens_issued, 1, "the sign-in completed");
    tokio::time::sleep(auth::cache_lock::LOCK_TIMEOUT + Duration::from_secs(3)).await;
    assert!(
        !s.cache.exists(),
        "nothing is written while the lock is held"
    );
    drop(lock);
    let out = finish(child).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("is locked by another process") && stderr.contains("waiting to save"),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains(&format!("Signed in as {USERNAME}")));
    assert!(!auth::status(&s.config).expect("status").sign_in_required);
}

#[tokio::test]
async fn login_stops_before_the_device_flow_when_the_cache_lock_stays_taken() {
    let s = setup(EmulatorConfig::default()).await;
    std::fs::create_dir_all(s.cache.parent().expect("dir")).expect("dir");
    let lock = auth::cache_lock::CacheLock::acquire(&s.cache, Duration::ZERO).expect("lock");
    let out = finish(spawn_cli(&s, &["login"], "info")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("is locked by another process"), "{stderr}");
    assert_eq!(
        s.emulator.stats().device_codes_issued,
        0,
        "no sign-in was started that could not be saved"
    );
    drop(lock);
}

/// What `as-service COMMAND` (README, Install) hands the binary, without systemd as PID 1:
/// the transient unit's `STATE_DIRECTORY` and `CREDENTIALS_DIRECTORY`, the config file, no
/// token cache or database URL of its own. `config check` finds the database URL among the
/// credentials, `login` saves the cache in the state directory, and `status` then reads
/// both (no daemon answers at `listen`).
#[tokio::test]
async fn commands_as_the_service_runs_them_use_its_state_directory_and_credentials() {
    let s = setup(EmulatorConfig::default()).await;
    let db = support::TestDb::new().await;
    let root = tempfile::tempdir().expect("tempdir");
    let state = root.path().join("state");
    let credentials = root.path().join("credentials");
    for dir in [&state, &credentials] {
        std::fs::create_dir(dir).expect("dir");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    std::fs::write(credentials.join("database_url"), format!("{}\n", db.url)).expect("credential");
    let config = root.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "enabled = true\nclient_id = \"{}\"\ntenant_id = \"{}\"\nauthority_url = \"{}\"\n\
             api_url = \"{}\"\nlisten = \"127.0.0.1:{}\"\n",
            s.emulator.client_id(),
            s.emulator.tenant_id(),
            s.emulator.authority_url(),
            s.emulator.api_url(),
            unused_port()
        ),
    )
    .expect("config");
    let as_service = |args: &[&str]| {
        let mut c = support::command();
        c.arg("--config")
            .arg(&config)
            .args(args)
            .env("STATE_DIRECTORY", &state)
            .env("CREDENTIALS_DIRECTORY", &credentials)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };

    let out = finish(as_service(&["config", "check"]).spawn().expect("runs")).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let child = as_service(&["login"]).spawn().expect("runs");
    decide(&s.emulator, true).await;
    let out = finish(child).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let cache = state.join("msal_token_cache.json");
    assert!(
        text(&out.stdout).contains(&cache.display().to_string()),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(mode(&cache), 0o600);

    let out = finish(as_service(&["status"]).spawn().expect("runs")).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("Account:              {USERNAME}"))
            && stdout.contains("Runs: none yet")
            && stdout.contains("Daemon: not answering"),
        "{stdout}"
    );
}
