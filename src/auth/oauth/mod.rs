//! The Microsoft identity platform v2 endpoints: `/devicecode` and `/token`, their
//! responses, and the classification of failures (identity reference, sections 2 and 3).
//!
//! Request bodies and token responses are never logged; what is logged is what Microsoft
//! support asks for: `error`, `error_codes`, `trace_id`, `correlation_id` and our
//! `client-request-id`.
//!
//! - `response`: what a success carries: the device code, the tokens, who signed in.
//! - `failure`: what a failure carries, and how it is classified and reported.

mod failure;
mod response;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::AuthError;
use crate::config::Config;

pub(crate) use failure::{Class, IdentityFailure, OAuthError};
pub(crate) use response::{DeviceCode, TokenResponse};

pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Added to the resource scope: a refresh token, an ID token and the username.
const OIDC_SCOPES: &str = "offline_access openid profile";

/// One tenant's endpoints for our client registration.
#[derive(Clone)]
pub(crate) struct Authority {
    http: reqwest::Client,
    /// `{authority_url}/{tenant}/oauth2/v2.0`
    base: String,
    client_id: String,
    client_secret: Option<SecretString>,
    scope: String,
}

impl Authority {
    pub(crate) fn new(config: &Config, http: reqwest::Client) -> Result<Self, AuthError> {
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
    pub(crate) fn request_scopes(&self) -> String {
        format!("{} {OIDC_SCOPES}", self.scope)
    }

    pub(crate) async fn start_device_code(&self) -> Result<DeviceCode, IdentityFailure> {
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
            return Err(IdentityFailure::Malformed {
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

    pub(crate) async fn poll_device_code(
        &self,
        code: &DeviceCode,
    ) -> Result<TokenResponse, IdentityFailure> {
        let mut form = vec![
            ("grant_type", DEVICE_CODE_GRANT.to_owned()),
            ("client_id", self.client_id.clone()),
            ("device_code", code.device_code.expose_secret().to_owned()),
            ("client_info", "1".to_owned()),
        ];
        self.add_secret(&mut form);
        token_response(self.post("token", "device_code_poll", form).await?)
    }

    pub(crate) async fn redeem_refresh_token(
        &self,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, IdentityFailure> {
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
    ) -> Result<Value, IdentityFailure> {
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
    ) -> Result<Value, IdentityFailure> {
        let response = self
            .http
            .post(url)
            .header("client-request-id", request_id)
            .header("return-client-request-id", "true")
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| IdentityFailure::Network {
                message: describe_reqwest(&e),
            })?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(IdentityFailure::Redirect {
                status,
                location: crate::outbound::location(response.headers()),
            });
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| IdentityFailure::Network {
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
            return Err(IdentityFailure::OAuth {
                status,
                body: Box::new(body),
                retry_after,
            });
        }
        if !(200..300).contains(&status) {
            return Err(IdentityFailure::Http {
                status,
                retry_after,
            });
        }
        match body {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(IdentityFailure::Malformed {
                message: format!("HTTP {status} with a body that is not a JSON object"),
            }),
        }
    }
}

fn token_response(body: Value) -> Result<TokenResponse, IdentityFailure> {
    TokenResponse::deserialize(body).map_err(|e| {
        // Only "missing field" messages are repeated: a type error would quote the value.
        let text = e.to_string();
        let why = if text.starts_with("missing field") {
            text
        } else {
            "a field has an unexpected type".into()
        };
        IdentityFailure::Malformed {
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
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
