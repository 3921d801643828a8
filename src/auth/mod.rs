//! Device-code login, the MSAL-compatible token cache and silent token acquisition.
//!
//! CONTRACT (stub until the auth work lands; signatures are what the rest of the crate uses).
//! AUTH ENGINEER: read /work/TEAM.md now (landing protocol, test harness, emulator API, build tips).

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Sign-in required: run `partner-center-sync login` ({reason})")]
    SignInRequired { reason: String },
    #[error("The identity service is temporarily unavailable: {message}")]
    Transient { message: String },
    #[error("Identity configuration problem: {message}; check `{key}`")]
    Configuration { key: &'static str, message: String },
    #[error("Token cache {path}: {message}")]
    Cache {
        path: std::path::PathBuf,
        message: String,
    },
}

/// A bearer token; never printed.
#[derive(Clone)]
pub struct AccessToken {
    secret: SecretString,
    pub expires_on: DateTime<Utc>,
}

impl AccessToken {
    /// Only for building the `Authorization` header.
    pub fn secret(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

/// Last-known auth state, without I/O, for health and metrics.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthState {
    Unknown,
    SignedIn {
        account: String,
        access_token_expires_at: Option<DateTime<Utc>>,
    },
    SignInRequired {
        reason: String,
    },
}

/// Silent token acquisition shared by every caller (cheap to clone).
#[derive(Clone)]
pub struct TokenProvider {}

impl TokenProvider {
    pub fn new(_config: &Config, _http: reqwest::Client) -> Result<Self, AuthError> {
        Ok(Self {})
    }

    /// A token valid for more than 5 minutes, refreshing (once, shared) when needed.
    pub async fn access_token(&self) -> Result<AccessToken, AuthError> {
        Err(AuthError::SignInRequired {
            reason: "auth is not implemented yet".into(),
        })
    }

    /// After the API answered 401 with `rejected`: force one refresh.
    pub async fn refresh_after_rejection(
        &self,
        _rejected: &AccessToken,
    ) -> Result<AccessToken, AuthError> {
        Err(AuthError::SignInRequired {
            reason: "auth is not implemented yet".into(),
        })
    }

    pub fn state(&self) -> AuthState {
        AuthState::Unknown
    }
}
