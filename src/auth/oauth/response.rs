//! What a successful answer carries: the device code, the tokens, and who signed in.
//! Secrets stay in `SecretString`, so `Debug` on any of these is safe.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::AuthError;

/// `/devicecode` answer; `device_code` is a secret.
pub(crate) struct DeviceCode {
    pub device_code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
    pub message: String,
}

/// A successful `/token` answer. Secrets stay in `SecretString`, so `Debug` is safe.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default, deserialize_with = "lenient_int")]
    pub expires_in: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int")]
    pub ext_expires_in: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int")]
    pub refresh_in: Option<i64>,
    pub access_token: SecretString,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub id_token: Option<SecretString>,
    #[serde(default)]
    pub client_info: Option<String>,
    #[serde(default)]
    pub foci: Option<String>,
}

fn lenient_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// Who signed in, from `client_info` and the (unverified, as MSAL does) ID token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `"<uid>.<utid>"`, the cache's account key.
    pub home_account_id: String,
    /// The object id (`oid`), MSAL's `local_account_id`.
    pub local_account_id: String,
    pub username: String,
    /// The tenant the token was issued in (`tid`), else the home tenant (`utid`).
    pub tenant_id: String,
}

impl TokenResponse {
    pub(crate) fn identity(&self) -> Result<Identity, AuthError> {
        let claims = self
            .id_token
            .as_ref()
            .and_then(|t| decode_jwt_claims(t.expose_secret()))
            .unwrap_or_default();
        let claim = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let info = self
            .client_info
            .as_deref()
            .and_then(decode_base64_json)
            .unwrap_or_default();
        let info_field = |name: &str| info.get(name).and_then(Value::as_str).map(str::to_owned);
        let home_account_id = match (info_field("uid"), info_field("utid")) {
            (Some(uid), Some(utid)) => format!("{uid}.{utid}"),
            _ => claim("sub").ok_or_else(|| AuthError::Protocol {
                message: "the token answer has neither client_info nor an ID token to identify the account".into(),
            })?,
        };
        Ok(Identity {
            local_account_id: claim("oid").or_else(|| claim("sub")).unwrap_or_default(),
            username: claim("preferred_username")
                .or_else(|| claim("upn"))
                .unwrap_or_default(),
            tenant_id: claim("tid")
                .or_else(|| info_field("utid"))
                .unwrap_or_default(),
            home_account_id,
        })
    }
}

fn decode_base64_json(part: &str) -> Option<serde_json::Map<String, Value>> {
    let trimmed = part.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

fn decode_jwt_claims(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    decode_base64_json(jwt.split('.').nth(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_comes_from_client_info_and_id_token() {
        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let id_token = format!(
            "{}.{}.",
            b64(r#"{"alg":"none"}"#),
            b64(
                r#"{"oid":"o-1","sub":"s","tid":"t-1","preferred_username":"ops@contoso.example"}"#
            )
        );
        let response: TokenResponse = serde_json::from_value(serde_json::json!({
            "access_token": "a", "expires_in": "3599", "id_token": id_token,
            "client_info": b64(r#"{"uid":"u-1","utid":"ut-1"}"#),
        }))
        .expect("parses");
        assert_eq!(response.expires_in, Some(3599));
        let id = response.identity().expect("identity");
        assert_eq!(id.home_account_id, "u-1.ut-1");
        assert_eq!(id.local_account_id, "o-1");
        assert_eq!(id.username, "ops@contoso.example");
        assert_eq!(id.tenant_id, "t-1");
        assert!(
            !format!("{response:?}").contains(&id_token),
            "Debug never shows tokens"
        );
    }
}
