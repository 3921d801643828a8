//! The MSAL token cache format: reading, selecting and writing entries exactly as MSAL
//! Python 1.39 does (identity reference, section 4), without losing anything we do not
//! understand.
//!
//! The document is kept as a `serde_json` object (with `preserve_order`), not as typed
//! structs: other apps' entries, unknown sections and unknown fields must survive a
//! rewrite byte for byte in meaning, and MSAL.NET and MSAL Node add fields of their own.
//! Entries are selected by their field values, never by their keys (other writers use
//! other key formats); keys are computed the MSAL Python way only when we write.

use secrecy::SecretString;
use serde_json::{Map, Value};

/// Microsoft's public-cloud identity hosts; MSAL treats them as one environment.
pub const PUBLIC_CLOUD_ALIASES: [&str; 4] = [
    "login.microsoftonline.com",
    "login.windows.net",
    "login.microsoft.com",
    "sts.windows.net",
];

/// Access tokens with less than this left are treated as expired (MSAL's 300 s).
pub const EXPIRY_MARGIN_SECS: i64 = 300;

const ACCESS_TOKEN: &str = "AccessToken";
const REFRESH_TOKEN: &str = "RefreshToken";
const ID_TOKEN: &str = "IdToken";
const ACCOUNT: &str = "Account";
const APP_METADATA: &str = "AppMetadata";

/// The cache environment for an authority URL: its host, lower-cased, without the port
/// (MSAL Python uses `urlparse(...).hostname`), so an emulator on any port is `127.0.0.1`.
pub fn environment_of(authority: &url::Url) -> String {
    match authority.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string().to_ascii_lowercase(),
        None => String::new(),
    }
}

/// Whether two cache environments name the same cloud.
pub fn same_environment(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || (PUBLIC_CLOUD_ALIASES
            .iter()
            .any(|x| x.eq_ignore_ascii_case(a))
            && PUBLIC_CLOUD_ALIASES
                .iter()
                .any(|x| x.eq_ignore_ascii_case(b)))
}

/// A `target` as MSAL stores it: scopes split on whitespace, sorted, joined by one space.
pub fn normalize_target(scopes: &str) -> String {
    let mut parts: Vec<&str> = scopes.split_whitespace().collect();
    parts.sort_unstable();
    parts.join(" ")
}

fn join_key(parts: &[&str]) -> String {
    parts.join("-").to_lowercase()
}

pub fn access_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
    target: &str,
) -> String {
    join_key(&[
        home_account_id,
        environment,
        "AccessToken",
        client_id,
        realm,
        target,
    ])
}

/// Refresh tokens are cross-tenant, hence the empty realm part.
pub fn refresh_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    target: &str,
) -> String {
    join_key(&[
        home_account_id,
        environment,
        "RefreshToken",
        client_id,
        "",
        target,
    ])
}

/// The trailing empty part is the (unused) target the schema requires.
pub fn id_token_key(
    home_account_id: &str,
    environment: &str,
    client_id: &str,
    realm: &str,
) -> String {
    join_key(&[
        home_account_id,
        environment,
        "IdToken",
        client_id,
        realm,
        "",
    ])
}

pub fn account_key(home_account_id: &str, environment: &str, realm: &str) -> String {
    join_key(&[home_account_id, environment, realm])
}

/// MSAL Python does not lower-case AppMetadata keys.
pub fn app_metadata_key(environment: &str, client_id: &str) -> String {
    format!("appmetadata-{environment}-{client_id}")
}

/// Who we are in the cache: the values every lookup and write is scoped by.
#[derive(Clone, Debug)]
pub struct ClientScope {
    pub client_id: String,
    /// The configured authority's environment; written into new entries.
    pub environment: String,
    /// The configured tenant segment (MSAL Python's `realm`).
    pub realm: String,
    /// The resource scope we request tokens for (without the OIDC scopes).
    pub scope: String,
}

/// An account that holds a refresh token this client may redeem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountEntry {
    pub home_account_id: String,
    pub environment: String,
    pub realm: String,
    pub username: String,
    pub local_account_id: String,
}

#[derive(Clone, Debug)]
pub struct AccessTokenEntry {
    pub secret: SecretString,
    pub expires_on: i64,
    pub refresh_on: Option<i64>,
}

#[derive(Clone, Debug)]
pub struct RefreshTokenEntry {
    /// The key it is stored under, so a rotation updates it in place.
    pub key: String,
    pub secret: SecretString,
    pub last_modification_time: Option<i64>,
}

/// The parts of a token response the cache stores, already decoded.
pub struct TokenGrant<'a> {
    pub home_account_id: &'a str,
    pub access_token: &'a str,
    pub refresh_token: Option<&'a str>,
    pub id_token: Option<&'a str>,
    /// The response's `scope`, or the requested scopes when it has none.
    pub scope: &'a str,
    pub token_type: &'a str,
    pub expires_in: i64,
    pub ext_expires_in: i64,
    pub refresh_in: Option<i64>,
    pub family_id: Option<&'a str>,
}

/// The identity of a newly signed-in account, from `client_info` and the ID token.
pub struct NewAccount<'a> {
    pub home_account_id: &'a str,
    pub local_account_id: &'a str,
    pub username: &'a str,
    pub account_source: &'a str,
}

/// An MSAL token cache document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenCache {
    root: Map<String, Value>,
}

impl TokenCache {
    /// MSAL's `deserialize`: `json.loads`, an empty string being an empty cache. Every
    /// section is optional, but one that is present must be an object of objects.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
        let Value::Object(root) = value else {
            return Err("the top level is not a JSON object".into());
        };
        for section in [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN, ACCOUNT, APP_METADATA] {
            match root.get(section) {
                None | Some(Value::Null) => {}
                Some(Value::Object(entries)) => {
                    if let Some((key, _)) = entries.iter().find(|(_, e)| !e.is_object()) {
                        return Err(format!("the {section} entry {key:?} is not a JSON object"));
                    }
                }
                Some(_) => return Err(format!("the {section} section is not a JSON object")),
            }
        }
        Ok(Self { root })
    }

    /// MSAL Python's `serialize`: `json.dumps(cache, indent=4)`, which also escapes every
    /// non-ASCII character (`ensure_ascii`), so our file diffs cleanly against theirs.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        serde::Serialize::serialize(&self.root, &mut ser).expect("a JSON value always serialises");
        let text = String::from_utf8(out).expect("serde_json writes UTF-8");
        // Non-ASCII can only occur inside JSON strings, so escaping it anywhere is exact.
        let mut escaped = String::with_capacity(text.len());
        for ch in text.chars() {
            if (ch as u32) < 0x7f {
                escaped.push(ch);
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    escaped.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        escaped
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    fn entries(&self, section: &str) -> impl Iterator<Item = (&String, &Map<String, Value>)> {
        self.root
            .get(section)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(k, v)| v.as_object().map(|o| (k, o)))
    }

    fn section_mut(&mut self, section: &str) -> &mut Map<String, Value> {
        let slot = self
            .root
            .entry(section.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        slot.as_object_mut().expect("made an object just above")
    }

    /// Whether this client should redeem family (FOCI) refresh tokens: only when our own
    /// AppMetadata says we are in a family. MSAL also tries them when AppMetadata is
    /// missing, then falls back; a failed family redemption would read as `invalid_grant`
    /// here, so we do not guess.
    fn client_in_family(&self, scope: &ClientScope) -> bool {
        self.entries(APP_METADATA).any(|(_, e)| {
            field_eq(e, "client_id", &scope.client_id)
                && env_matches(e, &scope.environment)
                && str_field(e, "family_id").is_some_and(|f| !f.is_empty())
        })
    }

    fn usable_refresh_tokens<'a>(
        &'a self,
        scope: &'a ClientScope,
        home_account_id: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Map<String, Value>)> + 'a {
        let family = self.client_in_family(scope);
        self.entries(REFRESH_TOKEN).filter(move |(_, e)| {
            str_field(e, "secret").is_some_and(|s| !s.is_empty())
                && env_matches(e, &scope.environment)
                && field_eq(e, "home_account_id", home_account_id)
                && (field_eq(e, "client_id", &scope.client_id)
                    || (family && str_field(e, "family_id") == Some("1")))
        })
    }

    /// Accounts in our environment (exact host first, else an alias) that hold a refresh
    /// token this client can redeem, one per home account (the entry for our realm if
    /// there is one). Other apps' accounts are not ours to pick.
    pub fn accounts(&self, scope: &ClientScope) -> Vec<AccountEntry> {
        let candidates = |exact: bool| -> Vec<AccountEntry> {
            self.entries(ACCOUNT)
                .filter(|(_, e)| {
                    let env = str_field(e, "environment").unwrap_or_default();
                    let env_ok = if exact {
                        env.eq_ignore_ascii_case(&scope.environment)
                    } else {
                        same_environment(env, &scope.environment)
                    };
                    env_ok && matches!(str_field(e, "authority_type"), Some("MSSTS" | "ADFS"))
                })
                .filter_map(|(_, e)| {
                    let home = str_field(e, "home_account_id")?;
                    self.usable_refresh_tokens(scope, home).next()?;
                    Some(AccountEntry {
                        home_account_id: home.to_owned(),
                        environment: str_field(e, "environment").unwrap_or_default().to_owned(),
                        realm: str_field(e, "realm").unwrap_or_default().to_owned(),
                        username: str_field(e, "username").unwrap_or_default().to_owned(),
                        local_account_id: str_field(e, "local_account_id")
                            .unwrap_or_default()
                            .to_owned(),
                    })
                })
                .collect()
        };
        let mut found = candidates(true);
        if found.is_empty() {
            found = candidates(false);
        }
        let mut unique: Vec<AccountEntry> = Vec::new();
        for account in found {
            match unique.iter_mut().find(|u| {
                u.home_account_id
                    .eq_ignore_ascii_case(&account.home_account_id)
            }) {
                Some(existing) => {
                    if account.realm.eq_ignore_ascii_case(&scope.realm) {
                        *existing = account;
                    }
                }
                None => unique.push(account),
            }
        }
        unique
    }

    /// The refresh token MSAL would redeem for this account: family tokens first when we
    /// are in a family, then ours; the most recently modified first.
    pub fn refresh_token(
        &self,
        scope: &ClientScope,
        home_account_id: &str,
    ) -> Option<RefreshTokenEntry> {
        self.usable_refresh_tokens(scope, home_account_id)
            .max_by_key(|(_, e)| {
                let family = str_field(e, "family_id") == Some("1");
                (
                    family,
                    timestamp_field(e, "last_modification_time").unwrap_or(0),
                )
            })
            .map(|(key, e)| RefreshTokenEntry {
                key: key.clone(),
                secret: SecretString::from(str_field(e, "secret").unwrap_or_default()),
                last_modification_time: timestamp_field(e, "last_modification_time"),
            })
    }

    /// The latest-expiring access token for this client, account and realm whose target
    /// holds our scope (expired ones included: the caller decides what is usable).
    pub fn access_token(
        &self,
        scope: &ClientScope,
        home_account_id: &str,
    ) -> Option<AccessTokenEntry> {
        self.entries(ACCESS_TOKEN)
            .filter(|(_, e)| {
                str_field(e, "secret").is_some_and(|s| !s.is_empty())
                    && field_eq(e, "client_id", &scope.client_id)
                    && env_matches(e, &scope.environment)
                    && field_eq(e, "realm", &scope.realm)
                    && field_eq(e, "home_account_id", home_account_id)
                    && target_holds(str_field(e, "target").unwrap_or_default(), &scope.scope)
            })
            .filter_map(|(_, e)| {
                Some(AccessTokenEntry {
                    secret: SecretString::from(str_field(e, "secret")?),
                    expires_on: timestamp_field(e, "expires_on")?,
                    refresh_on: timestamp_field(e, "refresh_on"),
                })
            })
            .max_by_key(|at| at.expires_on)
    }

    /// Stores a device-code sign-in the way MSAL Python's `TokenCache.add` does:
    /// AccessToken, Account, IdToken, RefreshToken, AppMetadata, MSAL Python keys.
    pub fn store_sign_in(
        &mut self,
        scope: &ClientScope,
        grant: &TokenGrant<'_>,
        account: &NewAccount<'_>,
        now: i64,
    ) {
        self.store_access_token(scope, grant, now);
        let key = account_key(account.home_account_id, &scope.environment, &scope.realm);
        let entry = object([
            ("home_account_id", account.home_account_id.into()),
            ("environment", scope.environment.as_str().into()),
            ("realm", scope.realm.as_str().into()),
            ("local_account_id", account.local_account_id.into()),
            ("username", account.username.into()),
            ("authority_type", "MSSTS".into()),
            ("account_source", account.account_source.into()),
        ]);
        merge_entry(self.section_mut(ACCOUNT), key, entry);
        self.store_id_token(scope, grant);
        if let Some(rt) = grant.refresh_token {
            let target = normalize_target(grant.scope);
            let key = refresh_token_key(
                grant.home_account_id,
                &scope.environment,
                &scope.client_id,
                &target,
            );
            let mut entry = object([
                ("credential_type", REFRESH_TOKEN.into()),
                ("secret", rt.into()),
                ("home_account_id", grant.home_account_id.into()),
                ("environment", scope.environment.as_str().into()),
                ("client_id", scope.client_id.as_str().into()),
                ("target", target.into()),
                ("last_modification_time", now.to_string().into()),
            ]);
            if let Some(f) = grant.family_id {
                entry.insert("family_id".into(), f.into());
            }
            merge_entry(self.section_mut(REFRESH_TOKEN), key, entry);
        }
        self.store_app_metadata(scope, grant);
    }

    /// Stores a refresh-token redemption as MSAL Python does: new AccessToken and IdToken,
    /// the refresh token rotated in place (`secret`, `last_modification_time`) under the key
    /// it was found at, the Account left alone. Returns false when that refresh token is
    /// gone (the account was signed out meanwhile), in which case nothing is changed.
    pub fn store_refresh(
        &mut self,
        scope: &ClientScope,
        grant: &TokenGrant<'_>,
        rt_key: &str,
        now: i64,
    ) -> bool {
        let Some(rt) = self
            .section_mut(REFRESH_TOKEN)
            .get_mut(rt_key)
            .and_then(Value::as_object_mut)
        else {
            return false;
        };
        if let Some(new_rt) = grant.refresh_token {
            rt.insert("secret".into(), new_rt.into());
            rt.insert("last_modification_time".into(), now.to_string().into());
        }
        self.store_access_token(scope, grant, now);
        self.store_id_token(scope, grant);
        self.store_app_metadata(scope, grant);
        true
    }

    fn store_access_token(&mut self, scope: &ClientScope, grant: &TokenGrant<'_>, now: i64) {
        let target = normalize_target(grant.scope);
        // Our expired tokens (MSAL deletes those it meets) and those the new one replaces
        // (same realm, a target holding our scope; MSAL.NET drops such overlaps too) go.
        let home = grant.home_account_id;
        let superseded: Vec<String> = self
            .entries(ACCESS_TOKEN)
            .filter(|(_, e)| {
                field_eq(e, "client_id", &scope.client_id)
                    && env_matches(e, &scope.environment)
                    && field_eq(e, "home_account_id", home)
                    && (timestamp_field(e, "expires_on").is_none_or(|t| t <= now)
                        || (field_eq(e, "realm", &scope.realm)
                            && target_holds(
                                str_field(e, "target").unwrap_or_default(),
                                &scope.scope,
                            )))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let section = self.section_mut(ACCESS_TOKEN);
        for k in superseded {
            section.shift_remove(&k);
        }
        let key = access_token_key(
            home,
            &scope.environment,
            &scope.client_id,
            &scope.realm,
            &target,
        );
        let mut entry = object([
            ("credential_type", ACCESS_TOKEN.into()),
            ("secret", grant.access_token.into()),
            ("home_account_id", home.into()),
            ("environment", scope.environment.as_str().into()),
            ("client_id", scope.client_id.as_str().into()),
            ("target", target.into()),
            ("realm", scope.realm.as_str().into()),
            ("token_type", grant.token_type.into()),
            ("cached_at", now.to_string().into()),
            ("expires_on", (now + grant.expires_in).to_string().into()),
            (
                "extended_expires_on",
                (now + grant.ext_expires_in).to_string().into(),
            ),
        ]);
        if let Some(r) = grant.refresh_in {
            entry.insert("refresh_on".into(), (now + r).to_string().into());
        }
        replace_entry(section, key, entry, &["refresh_on", "key_id"]);
    }

    fn store_id_token(&mut self, scope: &ClientScope, grant: &TokenGrant<'_>) {
        let Some(id_token) = grant.id_token else {
            return;
        };
        let key = id_token_key(
            grant.home_account_id,
            &scope.environment,
            &scope.client_id,
            &scope.realm,
        );
        let entry = object([
            ("credential_type", ID_TOKEN.into()),
            ("secret", id_token.into()),
            ("home_account_id", grant.home_account_id.into()),
            ("environment", scope.environment.as_str().into()),
            ("realm", scope.realm.as_str().into()),
            ("client_id", scope.client_id.as_str().into()),
        ]);
        merge_entry(self.section_mut(ID_TOKEN), key, entry);
    }

    fn store_app_metadata(&mut self, scope: &ClientScope, grant: &TokenGrant<'_>) {
        let key = app_metadata_key(&scope.environment, &scope.client_id);
        let mut entry = object([
            ("client_id", scope.client_id.as_str().into()),
            ("environment", scope.environment.as_str().into()),
        ]);
        if let Some(f) = grant.family_id {
            entry.insert("family_id".into(), f.into());
        }
        merge_entry(self.section_mut(APP_METADATA), key, entry);
    }

    /// Home accounts this client holds any credential for, in first-seen order.
    pub fn client_home_accounts(&self, scope: &ClientScope) -> Vec<String> {
        let mut homes: Vec<String> = Vec::new();
        for section in [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN] {
            for (_, e) in self.entries(section) {
                if field_eq(e, "client_id", &scope.client_id) && env_matches(e, &scope.environment)
                {
                    if let Some(home) = str_field(e, "home_account_id") {
                        if !homes.iter().any(|h| h.eq_ignore_ascii_case(home)) {
                            homes.push(home.to_owned());
                        }
                    }
                }
            }
        }
        homes
    }

    /// The username an Account entry gives this home account, if any.
    pub fn username_of(&self, scope: &ClientScope, home_account_id: &str) -> Option<String> {
        self.entries(ACCOUNT)
            .find(|(_, e)| {
                env_matches(e, &scope.environment)
                    && field_eq(e, "home_account_id", home_account_id)
            })
            .and_then(|(_, e)| str_field(e, "username"))
            .map(str::to_owned)
    }

    /// Removes this client's credentials for one account, and the Account entry itself
    /// once no other client holds credentials for it; other apps' entries stay.
    /// Returns how many entries were removed.
    pub fn remove_account(&mut self, scope: &ClientScope, home_account_id: &str) -> usize {
        let of_account = |e: &Map<String, Value>| {
            env_matches(e, &scope.environment) && field_eq(e, "home_account_id", home_account_id)
        };
        let mut removed = 0;
        for section in [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN] {
            removed += self.remove_where(section, |e| {
                field_eq(e, "client_id", &scope.client_id) && of_account(e)
            });
        }
        let still_used = [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN]
            .iter()
            .any(|section| self.entries(section).any(|(_, e)| of_account(e)));
        if !still_used {
            removed += self.remove_where(ACCOUNT, of_account);
        }
        removed
    }

    /// Removes the entries of `section` that `matches`; returns how many.
    fn remove_where(
        &mut self,
        section: &str,
        matches: impl Fn(&Map<String, Value>) -> bool,
    ) -> usize {
        let keys: Vec<String> = self
            .entries(section)
            .filter(|(_, e)| matches(e))
            .map(|(k, _)| k.clone())
            .collect();
        let Some(Value::Object(m)) = self.root.get_mut(section) else {
            return 0;
        };
        keys.iter().filter(|k| m.shift_remove(*k).is_some()).count()
    }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Updates known fields in place and keeps any others (MSAL.NET and Node add their own).
fn merge_entry(section: &mut Map<String, Value>, key: String, entry: Map<String, Value>) {
    match section.get_mut(&key).and_then(Value::as_object_mut) {
        Some(existing) => existing.extend(entry),
        None => {
            section.insert(key, Value::Object(entry));
        }
    }
}

/// Like [`merge_entry`], but optional fields that the new entry lacks are dropped, so a
/// stale `refresh_on` cannot outlive the token it described.
fn replace_entry(
    section: &mut Map<String, Value>,
    key: String,
    entry: Map<String, Value>,
    optional: &[&str],
) {
    if let Some(existing) = section.get_mut(&key).and_then(Value::as_object_mut) {
        for field in optional {
            if !entry.contains_key(*field) {
                existing.remove(*field);
            }
        }
    }
    merge_entry(section, key, entry);
}

fn str_field<'a>(entry: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    entry.get(field).and_then(Value::as_str)
}

/// GUIDs and host names compare without regard to case; MSAL lower-cases keys anyway.
fn field_eq(entry: &Map<String, Value>, field: &str, expected: &str) -> bool {
    str_field(entry, field).is_some_and(|v| v.eq_ignore_ascii_case(expected))
}

fn env_matches(entry: &Map<String, Value>, environment: &str) -> bool {
    str_field(entry, "environment").is_some_and(|v| same_environment(v, environment))
}

fn target_holds(target: &str, scope: &str) -> bool {
    scope.split_whitespace().all(|wanted| {
        target
            .split_whitespace()
            .any(|have| have.eq_ignore_ascii_case(wanted))
    })
}

/// Unix seconds written as a string (MSAL's schema) or, by older writers, as a number.
pub fn timestamp_field(entry: &Map<String, Value>, field: &str) -> Option<i64> {
    match entry.get(field)? {
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

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
        let cache =
            TokenCache::parse(r#"{"Account": {"k": {"username": "zoë😀"}}}"#).expect("parses");
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
}
