//! The MSAL token cache format: reading, selecting and writing entries exactly as MSAL
//! Python 1.39 does (identity reference, section 4), without losing anything we do not
//! understand.
//!
//! The document is kept as a `serde_json` object (with `preserve_order`), not as typed
//! structs: other apps' entries, unknown sections and unknown fields must survive a
//! rewrite byte for byte in meaning, and MSAL.NET and MSAL Node add fields of their own.
//! Entries are selected by their field values, never by their keys (other writers use
//! other key formats); keys are computed the MSAL Python way only when we write.
//!
//! - `keys`: environments, targets and the MSAL Python entry keys.
//! - `select`: which account, refresh token and access token MSAL would use.
//! - `write`: sign-ins, refreshes and removals, keeping what we do not understand.

mod keys;
mod select;
mod write;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use secrecy::SecretString;
use serde_json::{Map, Value};

pub(crate) use keys::environment_of;
use keys::same_environment;

/// Access tokens with less than this left are treated as expired (MSAL's 300 s).
pub(crate) const EXPIRY_MARGIN_SECS: i64 = 300;

const ACCESS_TOKEN: &str = "AccessToken";
const REFRESH_TOKEN: &str = "RefreshToken";
const ID_TOKEN: &str = "IdToken";
const ACCOUNT: &str = "Account";
const APP_METADATA: &str = "AppMetadata";

/// Who we are in the cache: the values every lookup and write is scoped by.
#[derive(Clone, Debug)]
pub(crate) struct ClientScope {
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
pub(crate) struct AccountEntry {
    pub home_account_id: String,
    pub environment: String,
    pub realm: String,
    pub username: String,
    pub local_account_id: String,
}

#[derive(Clone, Debug)]
pub(crate) struct AccessTokenEntry {
    pub secret: SecretString,
    pub expires_on: i64,
    pub refresh_on: Option<i64>,
}

#[derive(Clone, Debug)]
pub(crate) struct RefreshTokenEntry {
    /// The key it is stored under, so a rotation updates it in place.
    pub key: String,
    pub secret: SecretString,
    pub last_modification_time: Option<i64>,
}

/// The parts of a token response the cache stores, already decoded.
pub(crate) struct TokenGrant<'a> {
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
pub(crate) struct NewAccount<'a> {
    pub home_account_id: &'a str,
    pub local_account_id: &'a str,
    pub username: &'a str,
    pub account_source: &'a str,
}

/// An MSAL token cache document.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct TokenCache {
    root: Map<String, Value>,
}

impl TokenCache {
    /// MSAL's `deserialize`: `json.loads`, an empty string being an empty cache. Every
    /// section is optional, but one that is present must be an object of objects.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
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
    pub(crate) fn to_json(&self) -> String {
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

    #[cfg(test)]
    fn is_empty(&self) -> bool {
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
fn timestamp_field(entry: &Map<String, Value>, field: &str) -> Option<i64> {
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
