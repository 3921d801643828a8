//! Silent token acquisition: the cached access token while it has more than 5 minutes
//! left, else one shared refresh whose rotated refresh token is on disk before the new
//! access token is handed out.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

use super::cache::{AccessTokenEntry, AccountEntry, EXPIRY_MARGIN_SECS, TokenGrant};
use super::oauth::{Authority, Class, IdentityFailure, TokenResponse};
use super::{AccessToken, AuthError, AuthState, Settings, SignInRequired, blocking, unix_to_utc};
use crate::config::Config;

/// Below this, a cached token is not worth handing out even when the authority is down.
const FALLBACK_MIN_LIFETIME_SECS: i64 = 60;
const BACKOFF_BASE: Duration = Duration::from_millis(500);

/// Silent token acquisition shared by every caller (cheap to clone).
#[derive(Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    authority: Authority,
    max_attempts: u32,
    max_delay: Duration,
    memory: Mutex<Memory>,
    /// Single flight: one refresh at a time; waiters then find its result in `memory`.
    refresh: tokio::sync::Mutex<()>,
}

struct Memory {
    token: Option<AccessToken>,
    /// MSAL's `refresh_on`: past it, refresh early but keep the token as a fallback.
    refresh_on: Option<DateTime<Utc>>,
    state: AuthState,
    /// Whether the current sign-in-required spell was logged at ERROR already.
    sign_in_reported: bool,
    /// The access token the API last rejected: not handed out again, even from the file.
    rejected: Option<SecretString>,
    /// The refresh token the authority refused. It is not offered again, so a revoked
    /// login costs one request per sign-in, not one per sync run; a new `login` writes a
    /// different one and lifts the block.
    refused: Option<(SecretString, SignInRequired)>,
}

impl TokenProvider {
    /// Checks the settings and the cache file's permissions; no network.
    pub fn new(config: &Config, http: reqwest::Client) -> Result<Self, AuthError> {
        let settings = Settings::from_config(config)?;
        let authority = Authority::new(config, http)?;
        settings.file.check()?;
        let (token, state) = initial_state(&settings);
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                authority,
                max_attempts: config.retry_max_attempts.max(1),
                max_delay: config.retry_max_delay,
                memory: Mutex::new(Memory {
                    token,
                    refresh_on: None,
                    state,
                    rejected: None,
                    sign_in_reported: false,
                    refused: None,
                }),
                refresh: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// For `login`, which reports an unusable saved login itself and then replaces it.
    pub(crate) fn quiet(self) -> Self {
        self.memory().sign_in_reported = true;
        self
    }

    /// A token valid for more than 5 minutes, refreshing (once, shared) when needed.
    pub async fn access_token(&self) -> Result<AccessToken, AuthError> {
        if let Some(token) = self.fresh_in_memory() {
            return Ok(token);
        }
        let _flight = self.inner.refresh.lock().await;
        if let Some(token) = self.fresh_in_memory() {
            return Ok(token);
        }
        self.acquire().await
    }

    /// After the API answered 401 with `rejected`: force one refresh, unless another
    /// caller already replaced that token.
    pub async fn refresh_after_rejection(
        &self,
        rejected: &AccessToken,
    ) -> Result<AccessToken, AuthError> {
        let _flight = self.inner.refresh.lock().await;
        if let Some(token) = self.fresh_in_memory()
            && token.secret() != rejected.secret()
        {
            return Ok(token);
        }
        tracing::info!(event = "access_token_rejected", expires_on = %rejected.expires_on,
            "The API rejected the access token; refreshing it.");
        self.refresh_replacing(rejected).await
    }

    /// For `login`: proves the saved login by redeeming its refresh token, whatever the
    /// cached access token says. An access token outlives the revocation of its refresh
    /// token, so only a refresh shows that a new sign-in is needed.
    pub(crate) async fn refresh_now(&self) -> Result<AccessToken, AuthError> {
        let current = self.access_token().await?;
        let _flight = self.inner.refresh.lock().await;
        self.refresh_replacing(&current).await
    }

    /// A refresh that will not hand out `old` again, from memory or from the file.
    async fn refresh_replacing(&self, old: &AccessToken) -> Result<AccessToken, AuthError> {
        {
            let mut memory = self.memory();
            memory.token = None;
            memory.rejected = Some(SecretString::from(old.secret()));
        }
        self.acquire().await
    }

    pub fn state(&self) -> AuthState {
        self.memory().state.clone()
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // A panic while holding this lock cannot leave it inconsistent (plain assignments).
        self.inner.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh_in_memory(&self) -> Option<AccessToken> {
        let memory = self.memory();
        let token = memory.token.as_ref()?;
        let now = Utc::now();
        let fresh = (token.expires_on - now).num_seconds() > EXPIRY_MARGIN_SECS
            && memory.refresh_on.is_none_or(|r| now < r);
        fresh.then(|| token.clone())
    }

    async fn acquire(&self) -> Result<AccessToken, AuthError> {
        let rejected = self.memory().rejected.clone();
        let rejected = rejected.as_ref().map(|r| r.expose_secret());
        let result = self.acquire_uncached(rejected).await;
        match &result {
            Ok(_) => self.memory().sign_in_reported = false,
            Err(AuthError::SignInRequired(required)) => {
                let first = {
                    let mut memory = self.memory();
                    memory.token = None;
                    memory.state = AuthState::SignInRequired(required.clone());
                    !std::mem::replace(&mut memory.sign_in_reported, true)
                };
                let reason = required.reason();
                if first {
                    tracing::error!(
                        event = "sign_in_required",
                        reason,
                        "{required} Nothing can be synced until then."
                    );
                } else {
                    tracing::debug!(
                        event = "sign_in_required",
                        reason,
                        "Still waiting for a sign-in."
                    );
                }
            }
            Err(e) => {
                tracing::warn!(event = "token_acquisition_failed", error = %e, exit_code = e.exit_code(),
                "Could not get an access token.")
            }
        }
        result
    }

    async fn acquire_uncached(&self, rejected: Option<&str>) -> Result<AccessToken, AuthError> {
        let settings = self.inner.settings.clone();
        let file = settings.file.clone();
        let cache = blocking(move || file.load())
            .await?
            .ok_or_else(|| settings.no_login())?;
        let account = settings.select_account(&cache)?;
        let now = Utc::now().timestamp();
        let cached = cache
            .access_token(&settings.scope, &account.home_account_id)
            .filter(|at| rejected.is_none_or(|r| at.secret.expose_secret() != r));
        if let Some(at) = &cached
            && at.expires_on - now > EXPIRY_MARGIN_SECS
            && at.refresh_on.is_none_or(|r| now < r)
        {
            tracing::debug!(event = "access_token_from_cache", account = %account.username,
                    expires_on = at.expires_on, "Using the access token from the token cache.");
            return Ok(self.remember(&account, at.secret.clone(), at.expires_on, at.refresh_on));
        }
        let fallback = cached.filter(|at| at.expires_on - now > FALLBACK_MIN_LIFETIME_SECS);
        let rt = cache
            .refresh_token(&settings.scope, &account.home_account_id)
            .ok_or_else(|| settings.no_login())?;
        if let Some((refused, required)) = &self.memory().refused
            && refused.expose_secret() == rt.secret.expose_secret()
        {
            return Err(required.clone().into());
        }

        match self.redeem(&rt.secret).await {
            Ok(response) => self.persist(response, &account, rt.key).await,
            Err(failure) if failure.class() == Class::SignIn => {
                self.after_refusal(failure, &account, rt.secret, rejected)
                    .await
            }
            Err(failure) if failure.class() == Class::Transient => match fallback {
                Some(at) => {
                    tracing::warn!(event = "token_refresh_deferred", error = %failure.describe(), expires_on = at.expires_on,
                        "The identity service is unavailable; keeping the still-valid access token for now.");
                    Ok(self.remember(&account, at.secret, at.expires_on, None))
                }
                None => Err(failure.into_error()),
            },
            Err(failure) => Err(failure.into_error()),
        }
    }

    /// `invalid_grant` and friends. Another process (a second daemon, `login`, an MSAL
    /// app) may have rotated the refresh token after we read it: re-read the cache under
    /// the lock and, if it changed, retry once with the new one.
    async fn after_refusal(
        &self,
        failure: IdentityFailure,
        account: &AccountEntry,
        used: SecretString,
        rejected: Option<&str>,
    ) -> Result<AccessToken, AuthError> {
        let settings = self.inner.settings.clone();
        let file = settings.file.clone();
        let reread = blocking(move || {
            let _lock = file.lock()?;
            file.load_locked()
        })
        .await?;
        let newer = reread.as_ref().and_then(|cache| {
            let now_account = settings.select_account(cache).ok()?;
            let rt = cache.refresh_token(&settings.scope, &now_account.home_account_id)?;
            let at = cache.access_token(&settings.scope, &now_account.home_account_id);
            (rt.secret.expose_secret() != used.expose_secret()).then_some((now_account, rt, at))
        });
        let Some((account_now, rt, at)) = newer else {
            let error = failure.into_error();
            if let AuthError::SignInRequired(required) = &error {
                self.memory().refused = Some((used, required.clone()));
            }
            return Err(error);
        };
        tracing::info!(event = "refresh_token_rotated_elsewhere", account = %account.username,
            "Another process rotated the refresh token; retrying with the new one.");
        let now = Utc::now().timestamp();
        if let Some(at) = at.filter(|at: &AccessTokenEntry| {
            at.expires_on - now > EXPIRY_MARGIN_SECS
                && rejected.is_none_or(|r| at.secret.expose_secret() != r)
        }) {
            return Ok(self.remember(&account_now, at.secret, at.expires_on, at.refresh_on));
        }
        match self.redeem(&rt.secret).await {
            Ok(response) => self.persist(response, &account_now, rt.key).await,
            Err(failure) => {
                let error = failure.into_error();
                if let AuthError::SignInRequired(required) = &error {
                    self.memory().refused = Some((rt.secret, required.clone()));
                }
                Err(error)
            }
        }
    }

    /// The refresh-token grant, retrying transient failures with jittered exponential
    /// backoff, honouring `Retry-After`, within `retry_max_attempts` and `retry_max_delay`.
    async fn redeem(&self, refresh_token: &SecretString) -> Result<TokenResponse, IdentityFailure> {
        let mut attempt = 1;
        loop {
            let failure = match self
                .inner
                .authority
                .redeem_refresh_token(refresh_token)
                .await
            {
                Ok(response) => return Ok(response),
                Err(f) => f,
            };
            if failure.class() != Class::Transient || attempt >= self.inner.max_attempts {
                return Err(failure);
            }
            let delay = match failure.retry_after() {
                // Waiting less than asked would only be refused again.
                Some(asked) if asked > self.inner.max_delay => return Err(failure),
                Some(asked) => asked,
                None => backoff(attempt, self.inner.max_delay),
            };
            tracing::warn!(event = "token_refresh_retry", attempt, delay_ms = delay.as_millis() as u64,
                error = %failure.describe(), "Refreshing the access token failed; retrying.");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Saves the rotated refresh token and the new tokens under the lock, re-reading the
    /// cache first so other writers' changes are kept; only then is the token used.
    async fn persist(
        &self,
        response: TokenResponse,
        account: &AccountEntry,
        rt_key: String,
    ) -> Result<AccessToken, AuthError> {
        let settings = self.inner.settings.clone();
        let now = Utc::now().timestamp();
        let expires_in = response.expires_in.unwrap_or(600);
        let home = account.home_account_id.clone();
        let access_token = response.access_token.clone();
        let refresh_on = response.refresh_in.map(|r| now + r);
        blocking(move || {
            let scope = &settings.scope;
            let grant = TokenGrant {
                home_account_id: &home,
                access_token: response.access_token.expose_secret(),
                refresh_token: response.refresh_token.as_ref().map(|t| t.expose_secret()),
                id_token: response.id_token.as_ref().map(|t| t.expose_secret()),
                scope: response.scope.as_deref().unwrap_or(&scope.scope),
                token_type: response.token_type.as_deref().unwrap_or("Bearer"),
                expires_in,
                ext_expires_in: response.ext_expires_in.unwrap_or(expires_in),
                refresh_in: response.refresh_in,
                family_id: response.foci.as_deref(),
            };
            let _lock = settings.file.lock()?;
            let signed_out = || {
                AuthError::from(SignInRequired::new(format!(
                    "the login was removed from {} while refreshing",
                    settings.file.path().display()
                )))
            };
            let mut cache = settings.file.load_locked()?.ok_or_else(signed_out)?;
            let stored = cache.store_refresh(scope, &grant, &rt_key, now)
                || cache
                    .refresh_token(scope, &home)
                    .is_some_and(|current| cache.store_refresh(scope, &grant, &current.key, now));
            if !stored {
                return Err(signed_out());
            }
            settings.file.write(&cache)
        })
        .await?;
        tracing::info!(event = "access_token_refreshed", account = %account.username, expires_in,
            "Refreshed the access token and saved the rotated refresh token.");
        {
            let mut memory = self.memory();
            memory.refused = None;
        }
        Ok(self.remember(account, access_token, now + expires_in, refresh_on))
    }

    fn remember(
        &self,
        account: &AccountEntry,
        secret: SecretString,
        expires_on: i64,
        refresh_on: Option<i64>,
    ) -> AccessToken {
        let expires_on = unix_to_utc(expires_on).unwrap_or_else(Utc::now);
        let token = AccessToken::new(secret, expires_on);
        let mut memory = self.memory();
        memory.token = Some(token.clone());
        memory.refresh_on = refresh_on.and_then(unix_to_utc);
        memory.state = AuthState::SignedIn {
            account: account.username.clone(),
            access_token_expires_at: Some(expires_on),
        };
        token
    }
}

/// What the cache says at start-up, read without locking or setting anything aside:
/// health can show the account before the first sync.
fn initial_state(settings: &Settings) -> (Option<AccessToken>, AuthState) {
    let signed_out = || (None, AuthState::SignInRequired(settings.no_login()));
    let cache = match settings.file.read() {
        Ok(super::cache_file::Contents::Parsed(cache)) => cache,
        Ok(super::cache_file::Contents::Missing) => return signed_out(),
        _ => return (None, AuthState::Unknown),
    };
    let account = match settings.select_account(&cache) {
        Ok(account) => account,
        Err(e) if e.is_sign_in_required() => return signed_out(),
        Err(_) => return (None, AuthState::Unknown),
    };
    let at = cache.access_token(&settings.scope, &account.home_account_id);
    let expires = at.as_ref().and_then(|a| unix_to_utc(a.expires_on));
    let now = Utc::now().timestamp();
    let token = at
        .filter(|a| a.expires_on - now > EXPIRY_MARGIN_SECS && a.refresh_on.is_none())
        .and_then(|a| Some(AccessToken::new(a.secret, unix_to_utc(a.expires_on)?)));
    (
        token,
        AuthState::SignedIn {
            account: account.username,
            access_token_expires_at: expires,
        },
    )
}

/// Exponential from 0.5 s, capped, with jitter in the upper half so that daemons
/// sharing an outage do not retry in step.
fn backoff(attempt: u32, max: Duration) -> Duration {
    let exp = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(max);
    let half = exp / 2;
    half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let max = Duration::from_secs(5);
        for attempt in 1..20 {
            let d = backoff(attempt, max);
            assert!(d <= max, "{attempt}: {d:?}");
            let exp = BACKOFF_BASE
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(max);
            assert!(d >= exp / 2, "{attempt}: {d:?}");
        }
    }
}
