//! `partner-center-sync login`: the OAuth 2.0 device code flow (RFC 8628 as Entra
//! implements it, identity reference section 2), then the sign-in saved as MSAL saves it.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::time::Instant;

use super::cache::{NewAccount, TokenCache, TokenGrant};
use super::cache_file::Locking;
use super::cache_lock::{CacheLock, LOCK_TIMEOUT};
use super::oauth::{Authority, Class, DEVICE_CODE_GRANT, DeviceCode, TokenResponse};
use super::{AuthError, Settings, TokenProvider, blocking, unix_to_utc};
use crate::config::Config;

/// RFC 8628: `slow_down` adds this to the interval for this and all later polls.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The result of `login`, printed by the CLI (`Display`) or as JSON.
#[derive(Clone, Debug, Serialize)]
pub struct LoginOutcome {
    /// The signed-in username (`preferred_username`).
    pub account: String,
    pub(crate) home_account_id: String,
    /// The tenant the tokens were issued in.
    pub tenant_id: String,
    pub(crate) access_token_expires_on: DateTime<Utc>,
    pub(crate) cache_path: PathBuf,
    /// True when a working login existed and `--force` was not given.
    pub already_signed_in: bool,
}

impl std::fmt::Display for LoginOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = if self.account.is_empty() {
            &self.home_account_id
        } else {
            &self.account
        };
        if self.already_signed_in {
            write!(
                f,
                "Already signed in as {name} (tenant {}); token cache {}. Use `login --force` to sign in again.",
                self.tenant_id,
                self.cache_path.display()
            )
        } else {
            write!(
                f,
                "Signed in as {name} (tenant {}); token cache {}.",
                self.tenant_id,
                self.cache_path.display()
            )
        }
    }
}

/// Signs in with the device code flow, printing Microsoft's instructions on stderr.
///
/// Without `force`, an existing login whose refresh token still works is kept. Decline, expiry
/// and Ctrl-C end the flow without touching the cache.
pub async fn login(config: &Config, force: bool) -> Result<LoginOutcome, AuthError> {
    let settings = Settings::from_config(config)?;
    settings.file.check()?;
    let http = crate::outbound::http_client(config).map_err(|e| AuthError::Internal {
        message: format!("the HTTP client cannot be built: {e}"),
    })?;
    let authority = Authority::new(config, http.clone())?;
    // Ctrl-C ends everything up to the save; the save itself is not interrupted, so
    // "nothing was saved" stays true.
    let flow = async {
        if !force && let Some(outcome) = existing_login(config, &settings, http).await? {
            return Ok(Step::AlreadySignedIn(outcome));
        }
        // A lock nobody releases is found now, before the operator signs in, not after.
        let file = settings.file.clone();
        blocking(move || file.lock().map(drop)).await?;
        let code = authority
            .start_device_code()
            .await
            .map_err(|f| f.into_error())?;
        tracing::info!(
            event = "device_code_started",
            user_code = %code.user_code,
            verification_uri = %code.verification_uri,
            expires_in = code.expires_in,
            interval = code.interval,
            "Waiting for the operator to sign in in a browser."
        );
        eprintln!("{}", code.message);
        poll(&authority, &code).await.map(Step::SignedIn)
    };
    let step = tokio::select! {
        r = flow => r?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!(event = "login_cancelled", "Sign-in cancelled by the operator.");
            return Err(AuthError::LoginCancelled);
        }
    };
    match step {
        Step::AlreadySignedIn(outcome) => Ok(outcome),
        Step::SignedIn(response) => save_sign_in(settings, &authority, response).await,
    }
}

/// The lock for saving a completed sign-in, however long another process holds it: giving
/// up would throw away a sign-in the operator just finished, MFA included.
async fn wait_for_lock(settings: &Settings) -> Result<CacheLock, AuthError> {
    let mut told = false;
    loop {
        let file = settings.file.clone();
        match blocking(move || file.lock_within(LOCK_TIMEOUT)).await? {
            Locking::Held(lock) => return Ok(lock),
            Locking::Busy { holder } => {
                tracing::warn!(event = "login_save_waiting", holder = %holder,
                    "The sign-in is complete but the token cache is locked by another process; waiting to save it.");
                if !told {
                    eprintln!(
                        "Signed in, but the token cache {} is locked by another process ({holder}); \
                         waiting to save the sign-in. Ctrl-C gives up, and the sign-in is then not saved.",
                        settings.file.path().display()
                    );
                    told = true;
                }
            }
        }
    }
}

enum Step {
    AlreadySignedIn(LoginOutcome),
    SignedIn(TokenResponse),
}

/// A login that works now (its refresh token is redeemed), or `None` when one is needed.
async fn existing_login(
    config: &Config,
    settings: &Settings,
    http: reqwest::Client,
) -> Result<Option<LoginOutcome>, AuthError> {
    let file = settings.file.clone();
    let Ok(Some(cache)) = blocking(move || file.load()).await else {
        return Ok(None);
    };
    if settings.select_account(&cache).is_err() {
        return Ok(None);
    }
    let provider = TokenProvider::new(config, http)?.quiet();
    match provider.refresh_now().await {
        Ok(token) => {
            let file = settings.file.clone();
            let cache = blocking(move || file.load()).await?.unwrap_or_default();
            let account = settings.select_account(&cache)?;
            let home_tenant = account
                .home_account_id
                .split_once('.')
                .map_or("", |(_, t)| t)
                .to_owned();
            Ok(Some(LoginOutcome {
                account: account.username,
                tenant_id: home_tenant,
                home_account_id: account.home_account_id,
                access_token_expires_on: token.expires_on,
                cache_path: settings.file.path().to_owned(),
                already_signed_in: true,
            }))
        }
        Err(e) if e.is_sign_in_required() => {
            tracing::info!(event = "saved_login_unusable", reason = %e, "The saved login no longer works; starting a new sign-in.");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Polls `/token` every `interval` until the operator acts or the code expires.
async fn poll(authority: &Authority, code: &DeviceCode) -> Result<TokenResponse, AuthError> {
    let deadline = Instant::now() + Duration::from_secs(code.expires_in);
    let minutes = code.expires_in.div_ceil(60);
    // A zero interval from a misbehaving server must not become a busy loop.
    let mut interval = Duration::from_secs(code.interval.max(1));
    let mut wait = interval;
    loop {
        tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
        if Instant::now() >= deadline {
            return Err(AuthError::LoginExpired { minutes });
        }
        wait = interval;
        let failure = match authority.poll_device_code(code).await {
            Ok(response) => return Ok(response),
            Err(f) => f,
        };
        match failure.oauth_error() {
            Some("authorization_pending") => {}
            Some("slow_down") => {
                interval += SLOW_DOWN_STEP;
                wait = interval;
                tracing::info!(
                    event = "device_code_slow_down",
                    interval_secs = interval.as_secs(),
                    "The identity service asked to poll less often."
                );
            }
            Some("authorization_declined" | "access_denied") => {
                return Err(AuthError::LoginDeclined);
            }
            Some("expired_token") => return Err(AuthError::LoginExpired { minutes }),
            Some("bad_verification_code") => {
                return Err(AuthError::Protocol {
                    message: "the device code was not recognised (bad_verification_code)".into(),
                });
            }
            _ if failure.class() == Class::Transient => {
                if let Some(asked) = failure.retry_after() {
                    wait = wait.max(asked);
                }
                tracing::warn!(event = "device_code_poll_retry", error = %failure.describe(),
                    "Polling for the sign-in failed; trying again until the code expires.");
            }
            _ => return Err(failure.into_error()),
        }
    }
}

/// Writes the sign-in under the lock: this client's previous logins of other accounts
/// are replaced (one login per client), everything else in the file is kept.
async fn save_sign_in(
    settings: Settings,
    authority: &Authority,
    response: TokenResponse,
) -> Result<LoginOutcome, AuthError> {
    let identity = response.identity()?;
    if let Some(want) = &settings.account
        && !identity.username.eq_ignore_ascii_case(want)
    {
        return Err(AuthError::Configuration {
            key: "account",
            message: format!(
                "the sign-in was completed as {} but `account` is {want}; nothing was saved. \
                     Sign in as {want}, or change `account`",
                identity.username
            ),
        });
    }
    let granted_scope = response
        .scope
        .clone()
        .unwrap_or_else(|| settings.scope.scope.clone());
    if !granted_scope
        .split_whitespace()
        .any(|s| s.eq_ignore_ascii_case(&settings.scope.scope))
    {
        tracing::warn!(event = "granted_scope_differs", granted = %granted_scope, requested = %authority.request_scopes(),
            "The identity service granted a scope other than the one configured; cached access tokens will not be reused.");
    }
    if response.refresh_token.is_none() {
        return Err(AuthError::Protocol {
            message: "the sign-in returned no refresh token; check that `offline_access` is allowed for the app".into(),
        });
    }
    // Waiting for the lock may be given up with Ctrl-C; the save itself is not interrupted.
    let lock = tokio::select! {
        lock = wait_for_lock(&settings) => lock?,
        _ = tokio::signal::ctrl_c() => {
            tracing::warn!(event = "login_cancelled", "Sign-in cancelled while waiting for the token cache lock; it was not saved.");
            return Err(AuthError::LoginCancelled);
        }
    };
    let now = Utc::now().timestamp();
    let expires_in = response.expires_in.unwrap_or(600);
    let cache_path = settings.file.path().to_owned();
    let id = identity.clone();
    blocking(move || {
        let grant = TokenGrant {
            home_account_id: &id.home_account_id,
            access_token: response.access_token.expose_secret(),
            refresh_token: response.refresh_token.as_ref().map(|t| t.expose_secret()),
            id_token: response.id_token.as_ref().map(|t| t.expose_secret()),
            scope: &granted_scope,
            token_type: response.token_type.as_deref().unwrap_or("Bearer"),
            expires_in,
            ext_expires_in: response.ext_expires_in.unwrap_or(expires_in),
            refresh_in: response.refresh_in,
            family_id: response.foci.as_deref(),
        };
        let account = NewAccount {
            home_account_id: &id.home_account_id,
            local_account_id: &id.local_account_id,
            username: &id.username,
            account_source: DEVICE_CODE_GRANT,
        };
        let _lock = lock;
        let mut cache = match settings.file.load_locked() {
            Ok(cache) => cache.unwrap_or_default(),
            // A corrupt file has just been set aside; this login replaces it.
            Err(e) if e.is_sign_in_required() => TokenCache::default(),
            Err(e) => return Err(e),
        };
        for home in cache.client_home_accounts(&settings.scope) {
            if !home.eq_ignore_ascii_case(&id.home_account_id) {
                let removed = cache.remove_account(&settings.scope, &home);
                tracing::info!(
                    event = "previous_login_replaced",
                    removed_entries = removed,
                    "Replaced this client's login of another account."
                );
            }
        }
        cache.store_sign_in(&settings.scope, &grant, &account, now);
        settings.file.write(&cache)
    })
    .await?;
    tracing::info!(
        event = "login_succeeded",
        account = %identity.username,
        tenant_id = %identity.tenant_id,
        granted_scope = %response.scope.as_deref().unwrap_or(""),
        "Signed in; the login is saved in the token cache."
    );
    Ok(LoginOutcome {
        account: identity.username,
        home_account_id: identity.home_account_id,
        tenant_id: identity.tenant_id,
        access_token_expires_on: unix_to_utc(now + expires_in).unwrap_or_else(Utc::now),
        cache_path,
        already_signed_in: false,
    })
}
