use secrecy::ExposeSecret;

use super::keys::*;
use super::*;

const HOME: &str = "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26";
const TENANT: &str = "b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26";
const CLIENT: &str = "e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a";
const SCOPE: &str = "https://api.partner.microsoft.com/user_impersonation";

/// The example cache of the identity reference, section 4.6, verbatim.
const REFERENCE_EXAMPLE: &str = r#"{
  "AccessToken": {
    "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26-login.microsoftonline.com-accesstoken-e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a-b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26-https://api.partner.microsoft.com/user_impersonation": {
      "credential_type": "AccessToken",
      "secret": "eyJ0eXAiOiJKV1QifQ.MADE-UP-ACCESS-TOKEN.sig",
      "home_account_id": "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26",
      "environment": "login.microsoftonline.com",
      "client_id": "e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a",
      "target": "https://api.partner.microsoft.com/user_impersonation",
      "realm": "b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26",
      "token_type": "Bearer",
      "cached_at": "1795000000",
      "expires_on": "1795004500",
      "extended_expires_on": "1795004500"
    }
  },
  "Account": {
    "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26-login.microsoftonline.com-b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26": {
      "home_account_id": "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26",
      "environment": "login.microsoftonline.com",
      "realm": "b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26",
      "local_account_id": "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13",
      "username": "referral-sync@fabrikam.example",
      "authority_type": "MSSTS",
      "account_source": "urn:ietf:params:oauth:grant-type:device_code"
    }
  },
  "IdToken": {
    "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26-login.microsoftonline.com-idtoken-e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a-b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26-": {
      "credential_type": "IdToken",
      "secret": "eyJhbGciOiJub25lIn0.MADE-UP-ID-TOKEN.sig",
      "home_account_id": "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26",
      "environment": "login.microsoftonline.com",
      "realm": "b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26",
      "client_id": "e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a"
    }
  },
  "RefreshToken": {
    "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26-login.microsoftonline.com-refreshtoken-e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a--https://api.partner.microsoft.com/user_impersonation": {
      "credential_type": "RefreshToken",
      "secret": "1.MADE-UP-REFRESH-TOKEN",
      "home_account_id": "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13.b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26",
      "environment": "login.microsoftonline.com",
      "client_id": "e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a",
      "target": "https://api.partner.microsoft.com/user_impersonation",
      "last_modification_time": "1795000000"
    }
  },
  "AppMetadata": {
    "appmetadata-login.microsoftonline.com-e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a": {
      "client_id": "e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a",
      "environment": "login.microsoftonline.com"
    }
  }
}"#;

fn scope_for(environment: &str) -> ClientScope {
    ClientScope {
        client_id: CLIENT.into(),
        environment: environment.into(),
        realm: TENANT.into(),
        scope: SCOPE.into(),
    }
}

fn keys(cache: &TokenCache, section: &str) -> Vec<String> {
    cache.entries(section).map(|(k, _)| k.clone()).collect()
}

fn grant<'a>(access: &'a str, refresh: Option<&'a str>, scope: &'a str) -> TokenGrant<'a> {
    TokenGrant {
        home_account_id: HOME,
        access_token: access,
        refresh_token: refresh,
        id_token: Some("id.token.sig"),
        scope,
        token_type: "Bearer",
        expires_in: 3600,
        ext_expires_in: 3600,
        refresh_in: None,
        family_id: None,
    }
}

#[test]
fn keys_match_the_reference_example() {
    let cache = TokenCache::parse(REFERENCE_EXAMPLE).expect("parses");
    let env = "login.microsoftonline.com";
    assert_eq!(
        keys(&cache, ACCESS_TOKEN),
        [access_token_key(HOME, env, CLIENT, TENANT, SCOPE)]
    );
    assert_eq!(
        keys(&cache, REFRESH_TOKEN),
        [refresh_token_key(HOME, env, CLIENT, SCOPE)]
    );
    assert_eq!(
        keys(&cache, ID_TOKEN),
        [id_token_key(HOME, env, CLIENT, TENANT)]
    );
    assert_eq!(keys(&cache, ACCOUNT), [account_key(HOME, env, TENANT)]);
    assert_eq!(keys(&cache, APP_METADATA), [app_metadata_key(env, CLIENT)]);
}

#[test]
fn keys_are_lower_cased_except_app_metadata() {
    assert_eq!(
        account_key("A.B", "Login.Windows.Net", "Organizations"),
        "a.b-login.windows.net-organizations"
    );
    assert_eq!(
        refresh_token_key("A.B", "h", "C", "X"),
        "a.b-h-refreshtoken-c--x"
    );
    assert_eq!(id_token_key("A.B", "h", "C", "R"), "a.b-h-idtoken-c-r-");
    assert_eq!(app_metadata_key("h", "ClientID"), "appmetadata-h-ClientID");
}

#[test]
fn environment_is_the_lower_cased_host_without_port() {
    let env = |u: &str| environment_of(&url::Url::parse(u).expect("url"));
    assert_eq!(
        env("https://Login.MicrosoftOnline.com/"),
        "login.microsoftonline.com"
    );
    assert_eq!(env("http://127.0.0.1:43121"), "127.0.0.1");
    assert_eq!(
        env("https://login.microsoftonline.us:443/x"),
        "login.microsoftonline.us"
    );
}

#[test]
fn public_cloud_aliases_are_one_environment() {
    assert!(same_environment(
        "login.windows.net",
        "login.microsoftonline.com"
    ));
    assert!(same_environment("STS.windows.net", "login.microsoft.com"));
    assert!(!same_environment(
        "login.microsoftonline.us",
        "login.microsoftonline.com"
    ));
    assert!(same_environment("127.0.0.1", "127.0.0.1"));
    let cache = TokenCache::parse(
        &REFERENCE_EXAMPLE.replace("login.microsoftonline.com", "login.windows.net"),
    )
    .expect("parses");
    let scope = scope_for("login.microsoftonline.com");
    let accounts = cache.accounts(&scope);
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].username, "referral-sync@fabrikam.example");
    assert!(cache.refresh_token(&scope, HOME).is_some());
    assert!(cache.access_token(&scope, HOME).is_some());
}

#[test]
fn target_is_sorted_and_single_spaced() {
    assert_eq!(
        normalize_target("profile  openid https://x/y offline_access"),
        "https://x/y offline_access openid profile"
    );
    let mut cache = TokenCache::default();
    cache.store_sign_in(
        &scope_for("127.0.0.1"),
        &grant(
            "at",
            Some("rt"),
            "openid https://api.partner.microsoft.com/user_impersonation profile",
        ),
        &NewAccount {
            home_account_id: HOME,
            local_account_id: "oid",
            username: "u@x",
            account_source: "s",
        },
        1_000,
    );
    let at = cache
        .entries(ACCESS_TOKEN)
        .next()
        .expect("stored")
        .1
        .clone();
    assert_eq!(
        at["target"],
        "https://api.partner.microsoft.com/user_impersonation openid profile"
    );
    assert!(
        keys(&cache, ACCESS_TOKEN)[0]
            .ends_with("-https://api.partner.microsoft.com/user_impersonation openid profile")
    );
}

#[test]
fn reads_the_reference_example() {
    let cache = TokenCache::parse(REFERENCE_EXAMPLE).expect("parses");
    let scope = scope_for("login.microsoftonline.com");
    let at = cache.access_token(&scope, HOME).expect("access token");
    assert_eq!(at.expires_on, 1_795_004_500);
    let rt = cache.refresh_token(&scope, HOME).expect("refresh token");
    assert_eq!(rt.secret.expose_secret(), "1.MADE-UP-REFRESH-TOKEN");
    assert_eq!(rt.last_modification_time, Some(1_795_000_000));
    let other_client = ClientScope {
        client_id: "someone-else".into(),
        ..scope.clone()
    };
    assert!(
        cache.accounts(&other_client).is_empty(),
        "an account without our refresh token is not ours"
    );
}

#[test]
fn sign_in_writes_what_msal_python_writes() {
    let mut cache = TokenCache::default();
    let scope = scope_for("127.0.0.1");
    cache.store_sign_in(
        &scope,
        &TokenGrant {
            refresh_in: Some(1800),
            ..grant("at-1", Some("rt-1"), SCOPE)
        },
        &NewAccount {
            home_account_id: HOME,
            local_account_id: "6d1f4c2a-8b3e-4f70-9a15-2c4e6b8d0f13",
            username: "User@Example.com",
            account_source: "urn:ietf:params:oauth:grant-type:device_code",
        },
        1_795_000_000,
    );
    let v: Value = serde_json::from_str(&cache.to_json()).expect("json");
    let sections: Vec<&String> = v.as_object().expect("object").keys().collect();
    assert_eq!(
        sections,
        [ACCESS_TOKEN, ACCOUNT, ID_TOKEN, REFRESH_TOKEN, APP_METADATA]
    );
    let at = &v[ACCESS_TOKEN][access_token_key(HOME, "127.0.0.1", CLIENT, TENANT, SCOPE)];
    assert_eq!(at["cached_at"], "1795000000");
    assert_eq!(at["expires_on"], "1795003600");
    assert_eq!(at["extended_expires_on"], "1795003600");
    assert_eq!(at["refresh_on"], "1795001800");
    assert_eq!(at["realm"], TENANT);
    let account = &v[ACCOUNT][account_key(HOME, "127.0.0.1", TENANT)];
    assert_eq!(account["authority_type"], "MSSTS");
    assert_eq!(account["username"], "User@Example.com");
    let rt = &v[REFRESH_TOKEN][refresh_token_key(HOME, "127.0.0.1", CLIENT, SCOPE)];
    assert_eq!(rt["last_modification_time"], "1795000000");
    assert!(rt.get("realm").is_none());
    assert!(
        v[APP_METADATA][app_metadata_key("127.0.0.1", CLIENT)]
            .get("family_id")
            .is_none()
    );
    assert!(
        cache
            .to_json()
            .starts_with("{\n    \"AccessToken\": {\n        \""),
        "indent of 4 like json.dumps"
    );
}

#[test]
fn refresh_rotates_in_place_and_keeps_foreign_entries_and_fields() {
    let mut text: Value = serde_json::from_str(REFERENCE_EXAMPLE).expect("json");
    text["FutureSection"] = serde_json::json!({"k": {"x": 1}});
    let rt_key = refresh_token_key(HOME, "login.microsoftonline.com", CLIENT, SCOPE);
    text[REFRESH_TOKEN][&rt_key]["last_modification_app"] = "msal-node".into();
    text[REFRESH_TOKEN]["other-app-rt"] = serde_json::json!({
        "credential_type": "RefreshToken", "secret": "foreign", "home_account_id": HOME,
        "environment": "login.microsoftonline.com", "client_id": "other-client", "target": "x",
    });
    let mut cache = TokenCache::parse(&text.to_string()).expect("parses");
    let scope = scope_for("login.microsoftonline.com");
    let found = cache.refresh_token(&scope, HOME).expect("rt");
    assert!(cache.store_refresh(
        &scope,
        &grant("at-2", Some("rt-2"), SCOPE),
        &found.key,
        1_796_000_000
    ));
    let v: Value = serde_json::from_str(&cache.to_json()).expect("json");
    assert_eq!(v[REFRESH_TOKEN][&rt_key]["secret"], "rt-2");
    assert_eq!(
        v[REFRESH_TOKEN][&rt_key]["last_modification_time"],
        "1796000000"
    );
    assert_eq!(
        v[REFRESH_TOKEN][&rt_key]["last_modification_app"],
        "msal-node"
    );
    assert_eq!(v[REFRESH_TOKEN]["other-app-rt"]["secret"], "foreign");
    assert_eq!(v["FutureSection"]["k"]["x"], 1);
    assert_eq!(
        v[ACCESS_TOKEN].as_object().expect("section").len(),
        1,
        "the expired token is replaced"
    );
    assert_eq!(
        cache
            .access_token(&scope, HOME)
            .expect("at")
            .secret
            .expose_secret(),
        "at-2"
    );
    assert!(
        !cache.store_refresh(&scope, &grant("a", Some("r"), SCOPE), "gone", 1),
        "a signed-out account is not revived"
    );
}

#[test]
fn newest_refresh_token_wins_and_family_tokens_need_family_metadata() {
    let mut v: Value = serde_json::from_str(REFERENCE_EXAMPLE).expect("json");
    v[REFRESH_TOKEN]["newer"] = serde_json::json!({
        "credential_type": "RefreshToken", "secret": "newer-rt", "home_account_id": HOME,
        "environment": "login.windows.net", "client_id": CLIENT, "last_modification_time": 1_795_000_100,
    });
    v[REFRESH_TOKEN]["family"] = serde_json::json!({
        "credential_type": "RefreshToken", "secret": "family-rt", "home_account_id": HOME,
        "environment": "login.microsoftonline.com", "client_id": "first-party", "family_id": "1",
        "last_modification_time": "1795000200",
    });
    let scope = scope_for("login.microsoftonline.com");
    let cache = TokenCache::parse(&v.to_string()).expect("parses");
    assert_eq!(
        cache
            .refresh_token(&scope, HOME)
            .expect("rt")
            .secret
            .expose_secret(),
        "newer-rt"
    );
    v[APP_METADATA][app_metadata_key("login.microsoftonline.com", CLIENT)]["family_id"] =
        "1".into();
    let cache = TokenCache::parse(&v.to_string()).expect("parses");
    assert_eq!(
        cache
            .refresh_token(&scope, HOME)
            .expect("rt")
            .secret
            .expose_secret(),
        "family-rt"
    );
}

#[test]
fn timestamps_may_be_strings_or_numbers_and_nulls_are_tolerated() {
    let mut v: Value = serde_json::from_str(REFERENCE_EXAMPLE).expect("json");
    let at_key = access_token_key(HOME, "login.microsoftonline.com", CLIENT, TENANT, SCOPE);
    v[ACCESS_TOKEN][&at_key]["expires_on"] = 1_795_004_501.into();
    let acc_key = account_key(HOME, "login.microsoftonline.com", TENANT);
    v[ACCOUNT][&acc_key]["username"] = Value::Null;
    v[APP_METADATA][app_metadata_key("login.microsoftonline.com", CLIENT)]["family_id"] =
        Value::Null;
    let cache = TokenCache::parse(&v.to_string()).expect("parses");
    let scope = scope_for("login.microsoftonline.com");
    assert_eq!(
        cache.access_token(&scope, HOME).expect("at").expires_on,
        1_795_004_501
    );
    assert_eq!(cache.accounts(&scope)[0].username, "");
}

#[test]
fn empty_text_is_an_empty_cache_and_garbage_is_refused() {
    assert!(TokenCache::parse("").expect("empty").is_empty());
    assert!(TokenCache::parse("{\"AccessToken\": [1]}").is_err());
    assert!(TokenCache::parse("{\"AccessToken\": {\"k\": 1}}").is_err());
    assert!(TokenCache::parse("{\"Access").is_err());
    assert!(TokenCache::parse("[]").is_err());
}

#[test]
fn non_ascii_is_escaped_like_python() {
    let cache = TokenCache::parse(r#"{"Account": {"k": {"username": "zoë😀"}}}"#).expect("parses");
    assert!(
        cache.to_json().contains(r#""zo\u00eb\ud83d\ude00""#),
        "{}",
        cache.to_json()
    );
    assert_eq!(
        TokenCache::parse(&cache.to_json()).expect("round trip"),
        cache
    );
}

#[test]
fn remove_account_leaves_other_clients_and_shared_accounts() {
    let mut v: Value = serde_json::from_str(REFERENCE_EXAMPLE).expect("json");
    v[REFRESH_TOKEN]["other-app-rt"] = serde_json::json!({
        "credential_type": "RefreshToken", "secret": "foreign", "home_account_id": HOME,
        "environment": "login.microsoftonline.com", "client_id": "other-client",
    });
    let scope = scope_for("login.microsoftonline.com");
    let mut cache = TokenCache::parse(&v.to_string()).expect("parses");
    assert_eq!(cache.remove_account(&scope, HOME), 3);
    assert_eq!(
        keys(&cache, ACCOUNT).len(),
        1,
        "another app still uses the account"
    );
    assert_eq!(keys(&cache, REFRESH_TOKEN), ["other-app-rt"]);
    let mut cache = TokenCache::parse(REFERENCE_EXAMPLE).expect("parses");
    assert_eq!(cache.remove_account(&scope, HOME), 4);
    assert!(keys(&cache, ACCOUNT).is_empty());
    assert_eq!(keys(&cache, APP_METADATA).len(), 1);
}
