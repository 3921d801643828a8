//! Device-code login, the MSAL-compatible token cache and silent token acquisition.
//!
//! An operator signs in once with `partner-center-sync login` (the device code flow, so
//! MFA works from any browser); from then on [`TokenProvider`] keeps access tokens fresh
//! from the refresh token in an MSAL-format cache file that an MSAL app can share.
//!
//! - `cache`: the MSAL JSON document: keys, selection, writes that keep unknown data.
//! - `cache_file`: the file: 0600/0700, at most 10 MiB, never a symlink, atomic
//!   replacement, corrupt files set aside (by writers; `status` only reports).
//! - [`cache_lock`]: `<cache>.lockfile`, the lock every MSAL persistence layer uses.
//! - `oauth`: the `/devicecode` and `/token` endpoints and error classification.
//! - `device_code`: the `login` flow; `provider`: silent acquisition; `status`: `status`
//!   and `logout`; `sign_in_watch`: a `login` by another process, noticed by a long-running one;
//!   `error`: [`AuthError`] and its exit codes; `sign_in_required`: `SignInRequired`, the
//!   one type every layer wraps.
//!
//! CONTRACT used by the sync engine and the daemon: [`TokenProvider::new`],
//! [`TokenProvider::access_token`], [`TokenProvider::refresh_after_rejection`],
//! [`TokenProvider::state`], `SignInWatch`, [`AccessToken`], [`AuthError`]; the CLI calls [`login`],
//! [`logout`] and [`status`] and maps errors with [`AuthError::exit_code`].

mod cache;
mod cache_file;
pub mod cache_lock;
mod device_code;
mod error;
mod oauth;
mod provider;
mod sign_in_required;
mod sign_in_watch;
mod status;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use cache::{AccountEntry, ClientScope, TokenCache};
use cache_file::CacheFile;

pub use device_code::{LoginOutcome, login};
pub use error::{AuthError, CacheProblem};
pub use provider::TokenProvider;
pub(crate) use sign_in_required::SignInRequired;
pub(crate) use sign_in_watch::SignInWatch;
pub use status::{AuthStatusReport, LogoutOutcome, logout, status};

/// A bearer token; never printed.
#[derive(Clone)]
pub struct AccessToken {
    secret: SecretString,
    pub expires_on: DateTime<Utc>,
}

impl AccessToken {
    fn new(secret: SecretString, expires_on: DateTime<Utc>) -> Self {
        Self { secret, expires_on }
    }

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
    SignInRequired(SignInRequired),
}

/// What every auth operation derives from the configuration.
#[derive(Clone, Debug)]
struct Settings {
    pub file: CacheFile,
    pub scope: ClientScope,
    /// `account`: the username to use when the cache holds several.
    pub account: Option<String>,
}

impl Settings {
    fn from_config(config: &Config) -> Result<Self, AuthError> {
        let client_id = config
            .client_id
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(AuthError::Configuration {
                key: "client_id",
                message: "is not set; it is the Entra app (client) id the sign-in is bound to"
                    .into(),
            })?;
        let tenant = config
            .tenant_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Configuration {
                key: "tenant_id",
                message: "is not set; use the partner tenant's GUID (or `organizations`)".into(),
            })?;
        Ok(Self {
            file: CacheFile::new(&config.token_cache),
            scope: ClientScope {
                client_id: client_id.to_owned(),
                environment: cache::environment_of(&config.authority_url),
                realm: tenant.to_owned(),
                scope: config.scope.trim().to_owned(),
            },
            account: config.account.clone().filter(|a| !a.trim().is_empty()),
        })
    }

    fn no_login(&self) -> SignInRequired {
        let whom = match &self.account {
            Some(a) => format!("for {a} "),
            None => String::new(),
        };
        SignInRequired::new(format!(
            "no saved login {whom}for client {} in {}",
            self.scope.client_id,
            self.file.path().display()
        ))
    }

    /// The account to use: the configured username (any case), else the only one.
    fn select_account(&self, cache: &TokenCache) -> Result<AccountEntry, AuthError> {
        let mut accounts = cache.accounts(&self.scope);
        if let Some(want) = &self.account {
            accounts.retain(|a| a.username.eq_ignore_ascii_case(want));
        }
        match accounts.len() {
            0 => Err(self.no_login().into()),
            1 => Ok(accounts.remove(0)),
            _ => {
                let names: Vec<&str> = accounts.iter().map(|a| a.username.as_str()).collect();
                Err(AuthError::Configuration {
                    key: "account",
                    message: format!(
                        "the token cache {} holds logins of several accounts ({}); set `account` to the one to use",
                        self.file.path().display(),
                        names.join(", ")
                    ),
                })
            }
        }
    }
}

/// Runs blocking file work (lock waits, fsync) off the async workers.
async fn blocking<T, F>(work: F) -> Result<T, AuthError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, AuthError> + Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| AuthError::Internal {
            message: format!("the token cache task failed: {e}"),
        })?
}

fn unix_to_utc(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}
