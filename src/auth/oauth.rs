//! The Microsoft identity platform v2 endpoints: `/devicecode` and `/token`, their
//! responses, and the classification of failures (identity reference, sections 2 and 3).
//!
//! Request bodies and token responses are never logged; what is logged is what Microsoft
//! support asks for: `error`, `error_codes`, `trace_id`, `correlation_id` and our
//! `client-request-id`.

use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::AuthError;
use crate::config::Config;

pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Added to the resource scope: a refresh token, an ID token and the username.
const OIDC_SCOPES: &str = "offline_access openid profile";

/// One tenant's endpoints for our client registration.
#[derive(Clone)]
pub struct Authority {
    http: reqwest::Client,
    /// `{authority_url}/{tenant}/oauth2/v2.0`
    base: String,
    client_id: String,
    client_secret: Option<SecretString>,
    scope: String,
}

/// `/devicecode` answer; `device_code` is a secret.
pub struct DeviceCode {
    pub device_code: SecretString,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: u64,
    pub message: String,
}

/// A successful `/token` answer. Secrets stay in `SecretString`, so `Debug` is safe.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
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

/// The OAuth error body Entra sends (often with HTTP 400, sometimes with 200).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<i64>,
    #[serde(default)]
    pub suberror: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
}

impl OAuthError {
    /// For operators: the error, its AADSTS codes and the first line of the description
    /// (the rest is trace ids and a timestamp, which are logged separately).
    pub fn summary(&self) -> String {
        let mut s = self.error.clone();
        if let Some(sub) = &self.suberror {
            s.push_str(&format!("/{sub}"));
        }
        if let Some(first) = self
            .error_description
            .as_deref()
            .and_then(|d| d.lines().next())
            .filter(|l| !l.is_empty())
        {
            s.push_str(&format!(": {}", first.trim()));
        } else if !self.error_codes.is_empty() {
            let codes: Vec<String> = self
                .error_codes
                .iter()
                .map(|c| format!("AADSTS{c}"))
                .collect();
            s.push_str(&format!(" ({})", codes.join(", ")));
        }
        s
    }
}

/// What went wrong talking to the authority, before classification.
#[derive(Debug)]
pub enum Failure {
    /// An OAuth error body, whatever the status.
    OAuth {
        status: u16,
        body: Box<OAuthError>,
        retry_after: Option<Duration>,
    },
    /// An HTTP error without an OAuth body (a proxy, a load balancer).
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    Network {
        message: String,
    },
    /// A success status with a body we cannot use.
    Malformed {
        message: String,
    },
}

/// How a failure is handled (identity reference, section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    SignIn,
    Misconfigured(&'static str),
    Transient,
    /// A protocol error that is none of the above: reported, not retried.
    Other,
}

impl Failure {
    pub fn class(&self) -> Class {
        match self {
            Failure::OAuth { status, body, .. } => classify(*status, body),
            Failure::Http { status, .. } if *status == 429 || *status >= 500 => Class::Transient,
            Failure::Http { status: 408, .. } => Class::Transient,
            Failure::Http { .. } | Failure::Malformed { .. } => Class::Other,
            Failure::Network { .. } => Class::Transient,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::OAuth { retry_after, .. } | Failure::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Failure::OAuth { body, .. } => Some(&body.error),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Failure::OAuth { status, body, .. } => format!("{} (HTTP {status})", body.summary()),
            Failure::Http { status, .. } => format!("HTTP {status} without an OAuth error body"),
            Failure::Network { message } => message.clone(),
            Failure::Malformed { message } => message.clone(),
        }
    }

    /// The typed error an operator sees.
    pub fn into_error(self) -> AuthError {
        let message = self.describe();
        match self.class() {
            Class::SignIn => AuthError::SignInRequired {
                reason: format!("the identity service refused the saved login: {message}"),
            },
            Class::Misconfigured(key) => AuthError::Configuration {
                key,
                message: format!("the identity service says {message}"),
            },
            Class::Transient => AuthError::Transient { message },
            Class::Other => AuthError::Protocol { message },
        }
    }

    fn log(&self, request_id: &str, what: &'static str) {
        match self {
            Failure::OAuth { status, body, .. } => tracing::info!(
                event = "identity_request_failed",
                request = what,
                status = *status,
                error = %body.error,
                suberror = body.suberror.as_deref().unwrap_or(""),
                error_codes = ?body.error_codes,
                trace_id = body.trace_id.as_deref().unwrap_or(""),
                correlation_id = body.correlation_id.as_deref().unwrap_or(""),
                client_request_id = request_id,
                "The identity service answered with an error."
            ),
            other => tracing::info!(
                event = "identity_request_failed",
                request = what,
                client_request_id = request_id,
                error = %other.describe(),
                "The identity service request failed."
            ),
        }
    }
}

/// Branches on `error` + `suberror`; `error_codes` only where the reference lists codes
/// that change the class whatever `error` says.
pub fn classify(status: u16, body: &OAuthError) -> Class {
    let has = |codes: &[i64]| body.error_codes.iter().any(|c| codes.contains(c));
    if has(&[53003]) {
        return Class::Misconfigured("tenant_id");
    }
    if has(&[50033, 90006, 90024, 90033, 90090, 50196]) {
        return Class::Transient;
    }
    match body.error.as_str() {
        "invalid_grant" | "interaction_required" => Class::SignIn,
        "consent_required" => match body.suberror.as_deref() {
            Some("client_mismatch" | "protection_policy_required") => {
                Class::Misconfigured("client_id")
            }
            _ => Class::SignIn,
        },
        "invalid_client" => {
            if has(&[7000215, 7000222, 700025]) {
                Class::Misconfigured("client_secret")
            } else {
                Class::Misconfigured("client_id")
            }
        }
        "unauthorized_client" | "invalid_request" => {
            if has(&[90002, 50194]) {
                Class::Misconfigured("tenant_id")
            } else {
                Class::Misconfigured("client_id")
            }
        }
        "invalid_scope" => Class::Misconfigured("scope"),
        "temporarily_unavailable" | "server_error" => Class::Transient,
        _ if status == 429 || status >= 500 => Class::Transient,
        _ => Class::Other,
    }
}

impl Authority {
    pub fn new(config: &Config, http: reqwest::Client) -> Result<Self, AuthError> {
        let client_id = config
            .client_id
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or(AuthError::Configuration {
                key: "client_id",
                message: "is not set".into(),
            })?;
        let tenant = config
            .tenant_id
            .clone()
            .filter(|t| !t.trim().is_empty())
            .ok_or(AuthError::Configuration {
                key: "tenant_id",
                message: "is not set".into(),
            })?;
        let base = format!(
            "{}/{}/oauth2/v2.0",
            config.authority_url.as_str().trim_end_matches('/'),
            tenant.trim()
        );
        Ok(Self {
            http,
            base,
            client_id,
            client_secret: config.client_secret.clone(),
            scope: config.scope.clone(),
        })
    }

    /// The scopes of every request: the resource scope plus the OIDC ones.
    pub fn request_scopes(&self) -> String {
        format!("{} {OIDC_SCOPES}", self.scope)
    }

    pub async fn start_device_code(&self) -> Result<DeviceCode, Failure> {
        let form = vec![
            ("client_id", self.client_id.clone()),
            ("scope", self.request_scopes()),
        ];
        let body = self.post("devicecode", "device_code_start", form).await?;
        let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let number = |name: &str| {
            body.get(name)
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
        };
        let (Some(device_code), Some(user_code)) = (field("device_code"), field("user_code"))
        else {
            return Err(Failure::Malformed {
                message: "the device code answer lacks device_code or user_code".into(),
            });
        };
        let verification_uri = field("verification_uri")
            .or_else(|| field("verification_url"))
            .unwrap_or_else(|| "https://microsoft.com/devicelogin".into());
        let message = field("message").unwrap_or_else(|| {
            format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate.")
        });
        Ok(DeviceCode {
            device_code: SecretString::from(device_code),
            user_code,
            verification_uri,
            expires_in: number("expires_in").unwrap_or(900),
            interval: number("interval").unwrap_or(5),
            message,
        })
    }

    pub async fn poll_device_code(&self, code: &DeviceCode) -> Result<TokenResponse, Failure> {
        let mut form = vec![
            ("grant_type", DEVICE_CODE_GRANT.to_owned()),
            ("client_id", self.client_id.clone()),
            ("device_code", code.device_code.expose_secret().to_owned()),
            ("client_info", "1".to_owned()),
        ];
        self.add_secret(&mut form);
        token_response(self.post("token", "device_code_poll", form).await?)
    }

    pub async fn redeem_refresh_token(
        &self,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, Failure> {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", self.client_id.clone()),
            ("refresh_token", refresh_token.expose_secret().to_owned()),
            ("scope", self.request_scopes()),
            ("client_info", "1".to_owned()),
        ];
        self.add_secret(&mut form);
        token_response(self.post("token", "refresh_token", form).await?)
    }

    /// A confidential client authenticates every token call; a public one must not.
    fn add_secret(&self, form: &mut Vec<(&'static str, String)>) {
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret.expose_secret().to_owned()));
        }
    }

    /// POSTs the form and returns the JSON body of a success, deciding by the body's
    /// `error` rather than the status (`/devicecode` reports errors with HTTP 200).
    async fn post(
        &self,
        endpoint: &str,
        what: &'static str,
        form: Vec<(&'static str, String)>,
    ) -> Result<Value, Failure> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let url = format!("{}/{endpoint}", self.base);
        tracing::debug!(event = "identity_request", request = what, url = %url, client_request_id = %request_id,
            "Calling the identity service.");
        let result = self.send(&url, &request_id, form).await;
        if let Err(failure) = &result {
            failure.log(&request_id, what);
        }
        result
    }

    async fn send(
        &self,
        url: &str,
        request_id: &str,
        form: Vec<(&'static str, String)>,
    ) -> Result<Value, Failure> {
        let response = self
            .http
            .post(url)
            .header("client-request-id", request_id)
            .header("return-client-request-id", "true")
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| Failure::Network {
                message: describe_reqwest(&e),
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response.bytes().await.map_err(|e| Failure::Network {
            message: describe_reqwest(&e),
        })?;
        let body: Option<Value> = serde_json::from_slice(&bytes).ok();
        if let Some(error) = body
            .as_ref()
            .filter(|b| b.get("error").is_some_and(Value::is_string))
        {
            let body = OAuthError::deserialize(error).unwrap_or_else(|_| OAuthError {
                error: error["error"].as_str().unwrap_or_default().to_owned(),
                ..OAuthError::default()
            });
            return Err(Failure::OAuth {
                status,
                body: Box::new(body),
                retry_after,
            });
        }
        if !(200..300).contains(&status) {
            return Err(Failure::Http {
                status,
                retry_after,
            });
        }
        match body {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(Failure::Malformed {
                message: format!("HTTP {status} with a body that is not a JSON object"),
            }),
        }
    }
}

fn token_response(body: Value) -> Result<TokenResponse, Failure> {
    TokenResponse::deserialize(body).map_err(|e| {
        // Only "missing field" messages are repeated: a type error would quote the value.
        let text = e.to_string();
        let why = if text.starts_with("missing field") {
            text
        } else {
            "a field has an unexpected type".into()
        };
        Failure::Malformed {
            message: format!("the token answer is not usable: {why}"),
        }
    })
}

/// reqwest's error text names the URL (no secrets in ours) and the cause chain.
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut message = if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
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
pub struct Identity {
    /// `"<uid>.<utid>"`, the cache's account key.
    pub home_account_id: String,
    /// The object id (`oid`), MSAL's `local_account_id`.
    pub local_account_id: String,
    pub username: String,
    /// The tenant the token was issued in (`tid`), else the home tenant (`utid`).
    pub tenant_id: String,
}

impl TokenResponse {
    pub fn identity(&self) -> Result<Identity, AuthError> {
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

    fn err(error: &str, codes: &[i64], suberror: Option<&str>) -> OAuthError {
        OAuthError {
            error: error.into(),
            error_codes: codes.to_vec(),
            suberror: suberror.map(Into::into),
            ..OAuthError::default()
        }
    }

    #[test]
    fn errors_are_classified_as_the_reference_says() {
        assert_eq!(
            classify(400, &err("invalid_grant", &[70008], None)),
            Class::SignIn
        );
        assert_eq!(
            classify(400, &err("invalid_grant", &[700082], None)),
            Class::SignIn
        );
        assert_eq!(
            classify(400, &err("interaction_required", &[50076], None)),
            Class::SignIn
        );
        assert_eq!(
            classify(400, &err("consent_required", &[65001], None)),
            Class::SignIn
        );
        assert_eq!(
            classify(400, &err("consent_required", &[], Some("client_mismatch"))),
            Class::Misconfigured("client_id")
        );
        assert_eq!(
            classify(401, &err("invalid_client", &[7000218], None)),
            Class::Misconfigured("client_id")
        );
        assert_eq!(
            classify(401, &err("invalid_client", &[7000222], None)),
            Class::Misconfigured("client_secret")
        );
        assert_eq!(
            classify(400, &err("unauthorized_client", &[700016], None)),
            Class::Misconfigured("client_id")
        );
        assert_eq!(
            classify(400, &err("invalid_request", &[90002], None)),
            Class::Misconfigured("tenant_id")
        );
        assert_eq!(
            classify(400, &err("invalid_scope", &[70011], None)),
            Class::Misconfigured("scope")
        );
        assert_eq!(
            classify(400, &err("invalid_grant", &[53003], None)),
            Class::Misconfigured("tenant_id")
        );
        assert_eq!(
            classify(400, &err("temporarily_unavailable", &[], None)),
            Class::Transient
        );
        assert_eq!(
            classify(400, &err("invalid_request", &[90033], None)),
            Class::Transient
        );
        assert_eq!(classify(503, &err("whatever", &[], None)), Class::Transient);
        assert_eq!(classify(400, &err("whatever", &[], None)), Class::Other);
        assert_eq!(
            Failure::Http {
                status: 429,
                retry_after: None
            }
            .class(),
            Class::Transient
        );
        assert_eq!(
            Failure::Network {
                message: "refused".into()
            }
            .class(),
            Class::Transient
        );
    }

    #[test]
    fn sign_in_errors_display_the_login_hint() {
        let f = Failure::OAuth {
            status: 400,
            body: Box::new(err("invalid_grant", &[70008], None)),
            retry_after: None,
        };
        let e = f.into_error();
        assert!(
            e.to_string()
                .starts_with("Sign-in required: run `partner-center-sync login`"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 77);
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

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
